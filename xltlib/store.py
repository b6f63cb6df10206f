"""The run store: run identity, locks, atomic result files and the results table.

A run directory ``{runs_dir}/{run_id}/`` holds ``config.json``, ``env.json``,
``checkpoint.pt`` while training, ``log.txt`` and, last of all, ``metrics.parquet``, with
the sizes and sha256 of all but the log in ``checksums.json``.
The metrics file is written only when everything else succeeded, so its presence is
what "complete" means: a complete run is not recomputed (:mod:`xltlib.pipeline`) unless
it is *stale*, computed by other code (:func:`code_version`) and asked to be recomputed,
or damaged: every record is checked when read (:mod:`xltlib.records`).

Every row carries its run's ``config_id`` (the hash of everything the run computes but
its seed, so the seeds of one configuration share it), ``settings`` (that configuration
as canonical JSON) and ``code_version``: the analysis keys cells by configuration and
flags stale runs from the table alone, in one pass over the store.
"""

from __future__ import annotations

import ast
import functools
import json
import logging
import os
import platform
import socket
import subprocess
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from xltlib import integrity
from xltlib.config import RunConfig
from xltlib.files import LOCK_TIMEOUT, atomic_write, canonical_sha256, file_lock
from xltlib.records import METRICS_FILE, record_damage

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "run_id",
    "config_id",
    "profile",
    "task",
    "model",
    "draw",
    "method",
    "seed",
    "src_lang",
    "tgt_lang",
    "corpus",
    "layer",
    "pooling",
    "metric",
    "value",
    "settings",
    "code_version",
]
"""``corpus``: what an alignment row was measured on, ``task`` (the task's own parallel sentences)
or ``tatoeba``; empty on accuracy rows (and on runs stored before the column existed, which
measured the task's)."""


COMPUTE_CODE = ("config", "data", "methods", "evaluation", "models.py", "run_data.py", "training.py", "pipeline.py")
"""The parts of ``xltlib`` whose source can change a run's numbers (the report, the store's
bookkeeping, the grid and the synthetic encoder's builder cannot: shipped encoders and data
files enter a run's identity by content)."""
PROFILE_CODE = {
    "synthetic": (
        "config/synthetic.py",
        "data/synthetic_tasks.py",
        "data/word_alignment.py",
        "synthetic/grammar.py",
        "synthetic/languages.py",
        "synthetic/examples.py",
        "synthetic/generated.py",
    )
}
"""Compute code of one profile only: the synthetic world's grammar, examples and generator, its tasks, fine-tuning
defaults and word alignments count in the code version of synthetic runs only (even where they sit inside a part of
:data:`COMPUTE_CODE`), so a change there leaves the other profiles' runs current."""


PACKAGE = Path(__file__).resolve().parent


PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "numpy", "pandas", "pyarrow")


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def run_lock(run_dir: Path, timeout: float = LOCK_TIMEOUT):
    """The run directory's lock (:func:`xltlib.files.file_lock`): a second writer waits, then finds the run complete."""
    return file_lock(run_dir / ".lock", f"run {run_dir.name}", timeout)


def code_version(profile: str | None = None) -> str:
    """12 hex digits of the sha256 of the syntax trees of the compute code of ``profile``'s runs
    (:data:`COMPUTE_CODE`, with :data:`PROFILE_CODE`'s files for that profile only) in :data:`PACKAGE`: an edit
    that changes what the code does makes runs computed before it *stale* (flagged by the book, recomputed on
    request). Docstrings, comments and layout are left out, so reformatting or re-documenting the code keeps every
    stored run current."""
    return _code_version(PACKAGE, profile)


@functools.cache
def _code_version(package: Path, profile: str | None) -> str:
    common = {file for part in COMPUTE_CODE for file in _python_files(package / part)}
    common -= {package / part for parts in PROFILE_CODE.values() for part in parts}
    files = sorted(common | {package / part for part in PROFILE_CODE.get(profile, ())})
    return canonical_sha256({file.relative_to(package).as_posix(): _syntax_tree(file) for file in files})[:12]


def _python_files(path: Path) -> list[Path]:
    return list(path.rglob("*.py")) if path.is_dir() else [path]


def _syntax_tree(file: Path) -> str:
    """The module's syntax tree without its string statements (docstrings, attribute docs), as text: what the code
    does, not how it is laid out or documented."""
    tree = ast.parse(file.read_text())
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                setattr(node, name, [s for s in block if not _is_string_statement(s)] or [ast.Pass()])
    return ast.dump(tree, annotate_fields=False)


def _is_string_statement(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def configuration(config: RunConfig) -> dict[str, Any]:
    """What a run computes except its seed: the seeds of one configuration are its replicates."""
    identity = config.identity()
    identity.pop("seed")
    return identity


def git_commit() -> str | None:
    """The commit of the code that produced a run (``+dirty`` when uncommitted changes exist)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def env_info(device, profile: str | None = None) -> dict[str, Any]:
    """Versions, commit and device: what is needed to tell whether two runs are comparable."""
    import torch

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": git_commit(),
        "code_version": code_version(profile),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; ``platform.processor()``, often just the architecture,
    elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor()
    )


def result_rows(config: RunConfig, metrics: list[dict[str, Any]]) -> pd.DataFrame:
    """Tidy rows (DESIGN.md §3) from ``{tgt_lang, metric, value[, layer, pooling]}`` dicts."""
    settings = configuration(config)
    base = {
        "run_id": config.run_id(),
        "config_id": canonical_sha256(settings)[:12],
        "profile": config.profile,
        "task": config.task,
        "model": config.model_name,
        "draw": config.draw,
        "method": config.method,
        "seed": config.seed,
        "src_lang": config.src_lang,
        "settings": json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str),
        "code_version": code_version(config.profile),
    }
    frame = pd.DataFrame(
        [{**base, "layer": None, "pooling": None, "corpus": None, **row} for row in metrics], columns=RESULT_COLUMNS
    )
    return frame.astype(
        {
            "draw": "Int64",
            "layer": "Int64",
            "pooling": "string",
            "corpus": "string",
            "seed": "int64",
            "value": "float64",
        }
    )


def is_complete(run_dir: Path) -> bool:
    return (run_dir / METRICS_FILE).exists()


def is_stale(run_dir: Path) -> bool:
    """Whether a complete run was computed by other code than this checkout's (:func:`code_version`)."""
    stored = pd.read_parquet(run_dir / METRICS_FILE)
    if "code_version" not in stored or stored.empty:
        return True
    return set(stored.code_version) != {code_version(stored.profile.iloc[0])}


def set_aside(run_dir: Path) -> Path:
    """Move a stale run's results to ``metrics.<its code version>.parquet`` (kept, never read, its checksum
    forgotten) before it is recomputed."""
    stored = pd.read_parquet(run_dir / METRICS_FILE)
    version = stored.code_version.iloc[0] if "code_version" in stored and len(stored) else "unknown"
    target = run_dir / f"metrics.{version}.parquet"
    os.replace(run_dir / METRICS_FILE, target)
    integrity.forget(run_dir, [METRICS_FILE])
    return target


def load_results(runs_dir: str | Path = "runs", run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Complete runs' rows as one tidy table (empty, with the schema, when none).

    ``run_ids``: exactly these runs (a study's; those not complete are absent); None: every
    complete run in the folder. Runs stored before a column existed have it empty, except
    ``config_id``, which is then the hash of their ``config.json`` without the seed, so that
    they too are never pooled with another configuration. A run whose records are damaged
    (:func:`~xltlib.records.record_damage`) is absent too, with a warning that names it.
    """
    runs_dir = Path(runs_dir)
    paths = (
        [runs_dir / run_id / METRICS_FILE for run_id in dict.fromkeys(run_ids)]
        if run_ids is not None
        else sorted(runs_dir.glob(f"*/{METRICS_FILE}"))
    )
    frames = [_with_config_id(pd.read_parquet(path), path.parent) for path in paths if _sound(path.parent)]
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=RESULT_COLUMNS)


def _sound(run_dir: Path) -> bool:
    """Whether a run is complete with sound records; a damaged one is named in a warning (batches repair them before
    their chapters read them)."""
    if not (run_dir / METRICS_FILE).exists():
        return False
    damaged, _ = record_damage(run_dir)
    if damaged:
        log.warning(
            "%s: run skipped; `python -m xltlib runs verify --repair` sets it aside, and the next `study` or `run` "
            "recomputes it",
            "; ".join(map(str, damaged)),
        )
    return not damaged


def _with_config_id(frame: pd.DataFrame, run_dir: Path) -> pd.DataFrame:
    if "config_id" in frame:
        return frame
    stored = json.loads((run_dir / "config.json").read_text())
    stored.pop("seed", None)
    return frame.assign(config_id=canonical_sha256(stored)[:12])


def stale_runs(results: pd.DataFrame) -> pd.DataFrame:
    """The runs of ``results`` computed by other code than this checkout's (:func:`code_version`), one row each."""
    runs = results.drop_duplicates("run_id")
    current = runs.profile.map(lambda profile: code_version(None if pd.isna(profile) else profile))
    stale = runs[runs.code_version.fillna("") != current]
    return stale[["run_id", "task", "method", "seed", "code_version"]].reset_index(drop=True)
