"""A run folder's files checked when read: its records and its training state (issue 43).

A run's *records* are ``config.json``, ``env.json`` and ``metrics.parquet``, each recorded in the
folder's ``checksums.json`` (:mod:`xltlib.integrity`) when :func:`xltlib.pipeline.ensure_run` writes
it, ``metrics.parquet`` last. They are small, so they are checked in full (size and sha256) whenever
a complete run is read. Its *training state* (``checkpoint.pt``, ``best.pt``, a first stage's
``stage.pt``) is recorded while it is written and checked in full before training reads it: once
per resume, or once per run that reads a first stage.

A run stored before checksums were kept has none. Its records are *adopted* (recorded as they are)
when they read cleanly (``config.json`` and ``env.json`` parse, ``metrics.parquet`` reads) and are
damage when they do not; its training files are adopted when torch opens them. So a sound store
written by older code is never recomputed for want of checksums.

On damage nothing is deleted. The files are set aside (:func:`xltlib.integrity.set_aside`), one
warning of this module's logger names the damage, the cause and where the files went, and the
caller computes them again. A run's records go aside together, so metrics set aside keep the
config and environment that made them; so do a checkpoint and the best weights beside it, which
belong to one trajectory. Temporary files of killed writes hold nothing a run can use: they are
deleted, each named in the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from xltlib import integrity
from xltlib.integrity import Damage

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.parquet"
RECORDS = ("config.json", "env.json", METRICS_FILE)
"""A run's records, in the order they are written: one set (see the module doc)."""

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
"""The best weights so far of a run that selects its checkpoint on source dev (removed once the run is complete)."""
STAGE_FILE = "stage.pt"
"""A finished first stage: its weights and the random state after it."""
FIRST_STAGES = "first-stages"
"""Folder of the runs directory holding the shared first stages (one per encoder, seed and training settings)."""

ADOPTED = (
    f"had no checksums ({integrity.SIDECAR} is missing or lacks them: written before checksums were kept, or it "
    "was lost) and read cleanly: adopted, their checksums recorded"
)


def record_damage(run_dir: Path) -> tuple[list[Damage], list[str]]:
    """The damage among a run's records, and its records without a checksum that read cleanly (to adopt).

    A record that ``checksums.json`` lists is checked against it; one it does not list (a run stored before
    checksums were kept, or killed between writing its metrics and recording them) is read instead. Only a
    complete run's records are checked, as a run being computed rewrites them; but a recorded ``metrics.parquet``
    that is gone is damage: a complete run lost its results.
    """
    run_dir = Path(run_dir)
    entries = integrity.read_sidecar(run_dir) or {}
    if not (run_dir / METRICS_FILE).exists():
        return (integrity.damage(run_dir, [METRICS_FILE]) if METRICS_FILE in entries else []), []
    damaged = _damage(run_dir, [name for name in RECORDS if name in entries])
    unrecorded = [name for name in RECORDS if name not in entries]
    for name in unrecorded:
        if (cause := _unreadable(run_dir / name)) is not None:
            damaged.append(Damage(run_dir / name, f"{cause}, and no checksum of it was recorded"))
    return damaged, [name for name in unrecorded if all(damage.path.name != name for damage in damaged)]


def _damage(folder: Path, recorded: list[str], full: bool = True) -> list[Damage]:
    """:func:`integrity.damage` of files the sidecar lists (none: no damage, where it would name the sidecar)."""
    return integrity.damage(folder, recorded, full) if recorded else []


def _unreadable(path: Path) -> str | None:
    """Why a record without a checksum does not read cleanly, or None."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    try:
        if path.suffix == ".parquet":
            pq.read_table(path)
        elif not isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
            return "not a JSON object"
    except (OSError, ValueError) as error:  # pyarrow raises ArrowInvalid (a ValueError) or OSError
        return f"unreadable ({_first_line(error)})"
    return None


def _first_line(error: BaseException) -> str:
    return next(iter(str(error).splitlines()), type(error).__name__)


def sidecar_damage(folder: Path) -> Damage | None:
    """``checksums.json`` when it is there but unreadable (cut short, emptied, a byte flipped)."""
    path = Path(folder) / integrity.SIDECAR
    if path.exists() and integrity.read_sidecar(folder) is None:
        return Damage(path, "unreadable (not the JSON object it was written as)")
    return None


def needs_repair(run_dir: Path) -> bool:
    """Whether :func:`repair_records` has anything to do; read-only, so a sound complete run is read without its
    lock."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return False
    if integrity.leftover_temporaries(run_dir) or sidecar_damage(run_dir):
        return True
    damaged, unrecorded = record_damage(run_dir)
    return bool(damaged or unrecorded)


def tidy(folder: Path, what: str) -> None:
    """Under the folder's lock: delete the temporary files of killed writes, and set an unreadable
    ``checksums.json`` aside (its files are then checked as files without checksums)."""
    folder = Path(folder)
    for leftover in integrity.leftover_temporaries(folder):
        leftover.unlink()
        log.info("%s: deleted %s, the temporary file of a write that was killed", what, leftover)
    if (damage := sidecar_damage(folder)) is not None:
        target = integrity.set_aside(damage.path)
        log.warning("%s; set aside as %s; the files it recorded are checked by reading them", damage, target.name)


def repair_records(run_dir: Path, then: str) -> bool:
    """Under the run's lock: :func:`tidy` the folder, adopt records that read cleanly without a checksum, and set
    the records aside when one is damaged (``then``: what follows, for the log line). Whether they were set aside.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return False
    tidy(run_dir, f"run {run_dir.name}")
    damaged, unrecorded = record_damage(run_dir)
    if damaged:
        _set_aside(run_dir, RECORDS, damaged, then)
    elif unrecorded:
        integrity.record(run_dir, unrecorded)
        log.info("run %s: %s %s", run_dir.name, ", ".join(unrecorded), ADOPTED)
    return bool(damaged)


def training_damage(folder: Path, names: Sequence[str], full: bool = True) -> tuple[list[Damage], list[str]]:
    """The damage among the torch files ``names`` of ``folder`` (those there or recorded), and those there without a
    checksum that torch opens (to adopt). ``full=False`` checks recorded ones by size only."""
    folder = Path(folder)
    entries = integrity.read_sidecar(folder) or {}
    damaged = _damage(folder, [name for name in names if name in entries], full)
    unrecorded = [name for name in names if name not in entries and (folder / name).exists()]
    for name in unrecorded:
        if (cause := _unloadable(folder / name)) is not None:
            damaged.append(Damage(folder / name, f"{cause}, and no checksum of it was recorded"))
    return damaged, [name for name in unrecorded if all(damage.path.name != name for damage in damaged)]


def _unloadable(path: Path) -> str | None:
    import torch

    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    try:  # mmap: the structure is read and checked, the tensors only mapped
        torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as error:  # whatever torch raises on a file it cannot open, the file is damaged
        return f"unreadable ({_first_line(error)})"
    return None


def check_training_state(folder: Path, names: Sequence[str], then: str, full: bool = True) -> bool:
    """Before training reads ``names`` of ``folder`` (a checkpoint and the best weights so far, or a first stage):
    when one is damaged, every one is set aside and ``then`` (for the log line) follows; ones without a checksum
    that torch opens are adopted. Whether they were set aside."""
    damaged, unrecorded = training_damage(folder, names, full)
    if damaged:
        _set_aside(Path(folder), names, damaged, then)
    elif unrecorded:
        integrity.record(folder, unrecorded)
        log.info("%s: %s %s", folder, ", ".join(unrecorded), ADOPTED)
    return bool(damaged)


def _set_aside(folder: Path, names: Sequence[str], damaged: list[Damage], then: str) -> None:
    """Set ``names`` aside together (those there), forget their checksums, and log it all in one line."""
    kept = [integrity.set_aside(folder / name).name for name in names if (folder / name).exists()]
    integrity.forget(folder, names)
    where = f"set aside as {', '.join(kept)}" if kept else "nothing left to set aside"
    log.warning("%s; %s; %s", "; ".join(map(str, damaged)), where, then)


class _Collector(logging.Handler):
    def __init__(self, into: list[str]):
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@contextmanager
def collecting_repairs(into: list[str]) -> Iterator[list[str]]:
    """Append the repairs of the block (this module's warnings) to ``into``: what a batch's summary lists, also
    from a Ray worker, whose log reaches no one."""
    handler = _Collector(into)
    log.addHandler(handler)
    try:
        yield into
    finally:
        log.removeHandler(handler)
