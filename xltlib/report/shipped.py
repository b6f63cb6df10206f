"""Shipped results: the run records of a study too long for a 2-core CPU, versioned with the code.

A profile whose study takes longer than the default command may (the e5 profile: about an hour
and a half on 2 cores) ships its run records in ``data/<profile>-results/``: each run's
``config.json``, ``env.json`` and ``metrics.parquet`` (no weights, no checkpoints), and a
``manifest.json`` with every file's sha256 and the command that recomputes them. The default
book reads them without computing anything; each record's ``code_version`` still flags runs that
the current code would compute differently (the chapters' stale-run warning).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

from xltlib.errors import XltError, unknown
from xltlib.files import atomic_directory, atomic_write_json, file_sha256
from xltlib.store import METRICS_FILE, is_complete

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {"e5": "data/e5-results"}
"""Profile → its shipped results folder (relative to the repository)."""
RECORD_FILES = ("config.json", "env.json", METRICS_FILE)
MANIFEST = "manifest.json"
RECOMPUTE = {"e5": "python -m xltlib study --profile e5 && python -m xltlib results ship e5"}
"""Profile → the command that recomputes its runs (in runs/) and ships them anew."""


def shipped_folder(profile: str, root: Path = REPO) -> Path:
    """The profile's shipped results, every file its manifest lists checked against its sha256 first (the others, a
    killed write's temporary say, are never read)."""
    if profile not in SHIPPED:
        raise unknown("profile with shipped results", profile, SHIPPED)
    folder = root / SHIPPED[profile]
    restore = f"restore it with `git checkout -- {SHIPPED[profile]}`, or recompute it: {RECOMPUTE[profile]}"
    for name, digest in recorded_files(folder, restore).items():
        path = folder / name
        if not path.is_file():
            raise XltError(f"{path} is missing from the shipped {profile} results; {restore}")
        if file_sha256(path) != digest:
            cause = "empty: 0 bytes" if path.stat().st_size == 0 else f"its sha256 is not the one {MANIFEST} records"
            raise XltError(f"{path} is damaged ({cause}); {restore}")
    return folder


def recorded_files(folder: Path, restore: str) -> dict[str, str]:
    """The shipped files of ``folder`` (relative name → sha256), from its manifest; ``restore``: how to restore it."""
    path = folder / MANIFEST
    if not path.is_file():
        raise XltError(f"{path} is missing: the shipped results in {folder} are incomplete; {restore}")
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as error:  # not JSON, or not the manifest's shape
        raise XltError(f"{path} is damaged ({type(error).__name__}: {error}); {restore}") from None
    if not isinstance(files, dict) or not all(isinstance(digest, str) for digest in files.values()):
        raise XltError(f"{path} is damaged (its files are not names with their sha256); {restore}")
    return files


def ship(profile: str, runs_dir: str | Path, run_ids: list[str], root: Path = REPO) -> Path:
    """Copy the records of ``run_ids`` from ``runs_dir`` into the profile's shipped folder (replacing it) with its
    manifest."""
    runs_dir = Path(runs_dir)
    incomplete = [run_id for run_id in run_ids if not is_complete(runs_dir / run_id)]
    if incomplete:
        raise XltError(
            f"{len(incomplete)} of the {profile} study's {len(run_ids)} runs are not complete in {runs_dir} "
            f"(e.g. {incomplete[0]}); run `python -m xltlib study --profile {profile}` first"
        )
    folder = root / SHIPPED[profile]
    staging = folder.with_name(f".{folder.name}.shipping")  # the old records stay until the new set is complete
    shutil.rmtree(staging, ignore_errors=True)
    files = {}
    with atomic_directory(staging, "it is a leftover of a killed ship") as tmp:
        for run_id in sorted(run_ids):
            (tmp / run_id).mkdir()
            for name in RECORD_FILES:
                shutil.copy2(runs_dir / run_id / name, tmp / run_id / name)
                files[f"{run_id}/{name}"] = file_sha256(tmp / run_id / name)
        atomic_write_json(
            tmp / MANIFEST, {"profile": profile, "recompute": RECOMPUTE[profile], "runs": len(run_ids), "files": files}
        )
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    return folder


def stored_runs(folder: Path, task: str) -> tuple[list[SimpleNamespace], list[str]]:
    """The stored configurations (as attribute bundles: their files need not exist here) and run ids of ``task``'s
    runs: those the manifest lists, never another folder beside them."""
    configs, fine_tuned, pretrained = [], [], []
    listed = recorded_files(folder, f"restore it (`git checkout -- {folder}`)")
    for path in sorted({folder / name.split("/")[0] / "config.json" for name in listed}):
        config = json.loads(path.read_text())
        if config["task"] != task:
            continue
        if config["method"] == "pretrained":
            pretrained.append(path.parent.name)
        else:
            configs.append(SimpleNamespace(**config))
            fine_tuned.append(path.parent.name)
    if not configs:
        raise XltError(f"{folder} holds no fine-tuned run of task {task}")
    return configs, fine_tuned + pretrained
