"""``python -m xltlib runs verify [DIR]``: a run store's damaged and stale records, listed; with ``--repair``, set
aside so that the next ``study`` or ``run`` recomputes them.

It checks the whole store at once as :mod:`xltlib.records` checks a run when it is read: every run's
records in full (they are small), its checkpoint and best weights and the first stages' files by size
(in full with ``--full``: gigabytes), the temporary files of killed writes, and whether each sound
complete run was computed by this checkout's code (:func:`xltlib.store.is_stale`). Runs stored
before checksums were kept are listed apart, not as damage: they are adopted when they read cleanly,
here with ``--repair`` or when next read. ``--repair`` takes each run's lock, so a run being computed
is left alone (and said so).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xltlib.errors import XltError
from xltlib.integrity import leftover_temporaries
from xltlib.records import (
    BEST_FILE,
    CHECKPOINT_FILE,
    FIRST_STAGES,
    METRICS_FILE,
    STAGE_FILE,
    check_training_state,
    record_damage,
    repair_records,
    sidecar_damage,
    tidy,
    training_damage,
)
from xltlib.store import is_complete, is_stale, run_lock, set_aside

PROBLEMS = ("damaged", "stale")
"""The kinds of finding that make ``verify`` fail; the others (leftover temporary files, records without
checksums) are listed, and tidied by ``--repair``, but do no harm."""
RECOMPUTED = "the next `study` or `run` recomputes it"


@dataclass(frozen=True)
class Finding:
    """One thing found in a run's (or first stage's) folder: ``kind`` (damaged, stale, leftover, unrecorded), and
    what, in words that name the file."""

    kind: str
    folder: Path
    text: str


def folders(runs_dir: Path) -> tuple[list[Path], list[Path]]:
    """The run folders of a store, and its first stages' folders."""
    runs = sorted(p for p in runs_dir.iterdir() if p.is_dir() and p.name != FIRST_STAGES and p.name[0] != ".")
    stages = runs_dir / FIRST_STAGES
    return runs, sorted(p for p in stages.iterdir() if p.is_dir()) if stages.is_dir() else []


def verify(runs_dir: Path, full: bool = False) -> list[Finding]:
    """Every finding in the store ``runs_dir``, run by run, then first stage by first stage."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise XltError(f"{runs_dir} is not a folder; give the runs folder to verify (default: runs)")
    runs, stages = folders(runs_dir)
    found = [finding for folder in runs for finding in _check_run(folder, full)]
    for folder in stages:
        found += _check_files(folder, (STAGE_FILE, CHECKPOINT_FILE), full)
    return found


def _check_run(run_dir: Path, full: bool) -> list[Finding]:
    found = _check_files(run_dir, (CHECKPOINT_FILE, BEST_FILE), full)
    damaged, unrecorded = record_damage(run_dir)
    found += [Finding("damaged", run_dir, str(damage)) for damage in damaged]
    if unrecorded:
        text = f"{run_dir}: {', '.join(unrecorded)} have no checksums (stored before they were kept) and read cleanly"
        found.append(Finding("unrecorded", run_dir, text))
    if not damaged and is_complete(run_dir) and is_stale(run_dir):
        stored = pd.read_parquet(run_dir / METRICS_FILE)
        versions = sorted(set(stored.code_version.dropna())) if "code_version" in stored else []
        text = f"{run_dir}: computed by other code than this checkout's (code version {', '.join(versions) or '?'})"
        found.append(Finding("stale", run_dir, text))
    return found


def _check_files(folder: Path, names: tuple[str, ...], full: bool) -> list[Finding]:
    """Leftover temporary files, an unreadable ``checksums.json``, and the torch files ``names``."""
    killed = "the temporary file of a killed write (or of one in progress)"
    found = [Finding("leftover", folder, f"{path}: {killed}") for path in leftover_temporaries(folder)]
    if (damage := sidecar_damage(folder)) is not None:
        found.append(Finding("damaged", folder, str(damage)))
    damaged, unrecorded = training_damage(folder, names, full)
    found += [Finding("damaged", folder, str(damage)) for damage in damaged]
    if unrecorded:
        text = (
            f"{folder}: {', '.join(unrecorded)} have no checksums (written before they were kept) and torch opens them"
        )
        found.append(Finding("unrecorded", folder, text))
    return found


def repair(findings: list[Finding], full: bool = False) -> list[str]:
    """Under each folder's lock: set its damaged and stale records aside, delete leftover temporary files, adopt
    sound files without checksums (each logged by :mod:`xltlib.records`). The folders left alone, with why."""
    left_alone = []
    for folder in sorted({finding.folder for finding in findings}):
        kinds = {finding.kind for finding in findings if finding.folder == folder}
        try:
            with run_lock(folder, timeout=0):
                _repair_folder(folder, kinds, full)
        except XltError as error:  # its lock is held: the run is being computed, and its writer repairs it
            left_alone.append(f"{folder}: left alone: {error}")
    return left_alone


def _repair_folder(folder: Path, kinds: set[str], full: bool) -> None:
    if folder.parent.name == FIRST_STAGES:
        tidy(folder, f"first stage {folder.name}")
        check_training_state(folder, (STAGE_FILE,), "the next run that needs it computes it again", full)
        check_training_state(folder, (CHECKPOINT_FILE,), "the first stage restarts from scratch", full)
        return
    repair_records(folder, RECOMPUTED)
    check_training_state(folder, (CHECKPOINT_FILE, BEST_FILE), "its training restarts from scratch", full)
    if "stale" in kinds and is_complete(folder):
        print(f"{folder}: stale results kept as {set_aside(folder).name}; {RECOMPUTED}")


def cmd_runs(args: argparse.Namespace) -> int:
    """``runs verify``: print the findings and a summary; 1 when damaged or stale records were found and not set
    aside."""
    findings = verify(Path(args.dir), args.full)
    for finding in findings:
        if finding.kind != "unrecorded":  # a store written before checksums has one per run: counted, not listed
            print(f"{finding.kind:<9} {finding.text}")
    runs, stages = folders(Path(args.dir))
    problems = [finding for finding in findings if finding.kind in PROBLEMS]
    counts = ", ".join(f"{sum(f.kind == kind for f in problems)} {kind}" for kind in PROBLEMS)
    if unrecorded := sum(finding.kind == "unrecorded" for finding in findings):
        print(
            f"{unrecorded} folders hold files without checksums (written before they were kept) that read cleanly: "
            "adopted when next read, or now by --repair"
        )
    print(f"{args.dir}: {len(runs)} run(s) and {len(stages)} first stage(s) checked; {counts}")
    if not args.repair:
        if problems:
            print(f"`python -m xltlib runs verify {args.dir} --repair` sets them aside for the next `study` or `run`")
        return 1 if problems else 0
    left_alone = repair(findings, args.full)
    for line in left_alone:
        print(line)
    if problems:
        print("what was damaged or stale is set aside, kept beside it; the next `study` or `run` recomputes it")
    return 1 if left_alone else 0


def add_runs_command(commands) -> None:
    """The ``runs`` command of :mod:`xltlib.__main__`."""
    runs = commands.add_parser(
        "runs", help="check a run store: verify lists damaged and stale records; --repair sets them aside for recompute"
    )
    runs.add_argument("action", choices=["verify"])
    runs.add_argument("dir", nargs="?", default="runs", help="the runs folder (default: runs)")
    runs.add_argument(
        "--repair",
        action="store_true",
        help="set damaged and stale records aside (kept, renamed) so that the next study or run recomputes them",
    )
    runs.add_argument("--full", action="store_true", help="hash checkpoints too (default: their sizes; gigabytes)")
    runs.set_defaults(handler=cmd_runs)


def print_repairs(study_runs: Path) -> None:
    """The repairs of the last batch (``book/chapters/runs.json``): each run whose damaged files were set aside and
    recomputed."""
    try:
        recorded = json.loads(study_runs.read_text(encoding="utf-8")) if study_runs.exists() else {}
    except ValueError:  # damaged since the batch wrote it: its repairs were logged as they happened
        return
    repaired = recorded.get("repaired", {}) if isinstance(recorded, dict) else {}
    for run_id, repairs in repaired.items():
        print(f"repaired {run_id}: {' | '.join(repairs)}")
    if repaired:
        print(f"{len(repaired)} runs had damaged files: set aside (kept) and recomputed")
