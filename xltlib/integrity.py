"""Stored files checked when read: each folder's sidecar records its files' sizes and sha256 at write time.

Writes are atomic (:mod:`xltlib.files`), so a file is never half-written by this project;
but a run store and a cache live long, get copied between machines, run out of disk and
are edited by hand. A file that exists is therefore not trusted: a folder's writer records
each file it finishes in the folder's :data:`SIDECAR` (:func:`record`), and a reader asks
:func:`damage` what, if anything, no longer matches. The causes are named for a person
(missing, empty, cut short, changed, no record, a temporary file left by a killed write).

What to do with damage is the reader's call: a computed file is moved aside, never deleted
(:func:`set_aside`), and computed again; a shipped one is refused with the command that
restores it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from xltlib.files import atomic_write, atomic_write_json, build_once, file_lock, file_sha256

log = logging.getLogger(__name__)

SIDECAR = "checksums.json"
"""Per folder: file name → ``{"bytes": size, "sha256": hex}``, written after the files it lists."""
HIDDEN_SIDECAR = ".checksums.json"
"""The sidecar of a folder that runs name by its content (a model, generated data): hidden, because
:func:`xltlib.files.content_sha256` leaves hidden files out, so recording such a folder keeps every run's id."""

TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.\d+\.tmp(?P<suffix>\.[^.]*)?$")
""":func:`xltlib.files.atomic_write`'s temporary name, ``.{stem}.{pid}.tmp{suffix}``: left behind only by a killed
write."""


@dataclass(frozen=True)
class Damage:
    """One file that does not match its record: where, and why in words."""

    path: Path
    cause: str

    def __str__(self) -> str:
        return f"{self.path}: {self.cause}"


def describe(path: Path) -> dict[str, int | str]:
    """The record of one file: its size and sha256."""
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def record(
    folder: Path, names: Iterable[str] = (), known: dict[str, dict] | None = None, *, sidecar: str = SIDECAR
) -> None:
    """Add ``names`` (files of ``folder``, just written) to the folder's sidecar, keeping the other entries;
    ``known``: records already computed while writing (:class:`HashingWriter`)."""
    folder = Path(folder)
    entries = read_sidecar(folder, sidecar=sidecar) or {}
    entries |= {name: describe(folder / name) for name in names} | (known or {})
    atomic_write_json(folder / sidecar, entries)


def forget(folder: Path, names: Iterable[str]) -> None:
    """Drop ``names`` from the folder's sidecar (files deleted or set aside), keeping the other entries."""
    folder, names = Path(folder), set(names)
    entries = read_sidecar(folder)
    if entries is not None and names & entries.keys():
        atomic_write_json(folder / SIDECAR, {name: entry for name, entry in entries.items() if name not in names})


def read_sidecar(folder: Path, *, sidecar: str = SIDECAR) -> dict[str, dict] | None:
    """The folder's records, or ``None`` when it has no sidecar (or one that is itself damaged)."""
    try:
        entries = json.loads((Path(folder) / sidecar).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entries if isinstance(entries, dict) else None


def damage(
    folder: Path, names: Iterable[str] | None = None, full: bool = True, *, sidecar: str = SIDECAR
) -> list[Damage]:
    """The damaged files among ``names`` of ``folder`` (default: every file its sidecar lists).

    A listed file must exist, be non-empty where it was recorded non-empty, have its recorded size and (with
    ``full``) its recorded sha256; ``full=False`` checks sizes only, for files too large to hash on every read.
    A file asked for that the sidecar does not list, or a folder without a sidecar, is damage too ("no record").
    """
    folder = Path(folder)
    entries = read_sidecar(folder, sidecar=sidecar)
    if entries is None:
        unrecorded = list(names) if names is not None else []
        cause = f"no record of its content ({sidecar} is missing or unreadable)"
        return [Damage(folder / name, cause) for name in unrecorded] or [Damage(folder / sidecar, cause)]
    found = []
    for name in names if names is not None else entries:
        entry = entries.get(name)
        if entry is None:
            found.append(Damage(folder / name, f"no record of its content in {sidecar}"))
        elif (cause := _mismatch(folder / name, entry, full)) is not None:
            found.append(Damage(folder / name, cause))
    return found


def _mismatch(path: Path, entry: dict, full: bool) -> str | None:
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size == 0 and entry["bytes"]:
        return f"empty (0 bytes; {entry['bytes']:,} were written)"
    if size < entry["bytes"]:
        return f"cut short: {size:,} of the {entry['bytes']:,} bytes written"
    if size != entry["bytes"]:
        return f"{size:,} bytes, but {entry['bytes']:,} were written"
    if full and file_sha256(path) != entry["sha256"]:
        return "changed since it was written (same size, other content: a flipped byte or an edit)"
    return None


def leftover_temporaries(folder: Path) -> list[Path]:
    """Temporary files of writes that were killed before their rename (:data:`TEMPORARY`)."""
    folder = Path(folder)
    return sorted(path for path in folder.iterdir() if path.is_file() and TEMPORARY.match(path.name))


def set_aside(path: Path, reason: str = "damaged") -> Path:
    """Rename ``path`` (a file or folder) to ``{name}.{reason}-{time}``, beside it: kept for a person, never read."""
    path = Path(path)
    target = path.with_name(f"{path.name}.{reason}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(path, target)
    return target


class HashingWriter:
    """A binary file (``handle``, open for writing) that hashes what is written to it, so a large file (a checkpoint)
    is recorded without a second pass over it: ``torch.save(state, writer)``, then :meth:`entry`
    (:func:`write_recorded` does both)."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle  # closed by close(), as a file object is
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(memoryview(data).cast("B"))
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()

    def entry(self) -> dict[str, int | str]:
        """The record of what was written (:func:`describe`'s, without reading the file again)."""
        return {"bytes": self.size, "sha256": self.digest.hexdigest()}


def write_recorded(path: Path, write: Callable[[HashingWriter], object]) -> None:
    """``write(handle)`` into ``path`` atomically (:func:`~xltlib.files.atomic_write`), then record it: the file is
    hashed while it is written (:class:`HashingWriter`), never read back, as a multi-GB checkpoint should be."""
    path = Path(path)
    writers: list[HashingWriter] = []
    atomic_write(path, lambda tmp: writers.append(_filled(HashingWriter(open(tmp, "wb")), write)))
    record(path.parent, known={path.name: writers[0].entry()})


def _filled(writer: HashingWriter, write: Callable[[HashingWriter], object]) -> HashingWriter:
    try:
        write(writer)
    finally:
        writer.close()
    return writer


def content_files(folder: Path) -> list[str]:
    """Every file under ``folder`` by its relative path, in order; hidden ones (sidecars, temporaries) are not
    content."""
    files = (path.relative_to(folder) for path in sorted(Path(folder).rglob("*")) if path.is_file())
    return [file.as_posix() for file in files if not any(part.startswith(".") for part in file.parts)]


def record_tree(folder: Path, *, sidecar: str = SIDECAR) -> None:
    """Record every file of :func:`content_files`."""
    record(folder, content_files(folder), sidecar=sidecar)


def tree_damage(folder: Path, *, sidecar: str = SIDECAR) -> list[Damage]:
    """:func:`damage` of every file the folder's sidecar lists, hashed once per process while the files keep their
    sizes and modification times: a cache entry of hundreds of MB is asked for by every run of a grid."""
    folder = Path(folder)
    entries = read_sidecar(folder, sidecar=sidecar) or {}
    stamps = tuple((name, _stamp(folder / name)) for name in [sidecar, *sorted(entries)])
    return list(_tree_damage(folder, sidecar, stamps))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _tree_damage(folder: Path, sidecar: str, stamps: tuple) -> tuple[Damage, ...]:
    return tuple(damage(folder, sidecar=sidecar))


def ensure_whole(
    path: Path,
    build: Callable[[Path], object],
    what: str,
    check: Callable[[Path], list[Damage]] = tree_damage,
    redo: str = "built again",
) -> Path:
    """``path``, a folder that ``build`` writes whole and records (:func:`xltlib.files.build_once`): built on first
    use, and, when ``check`` finds damage, set aside (kept) with one log line naming it and the damage, and built
    again. The repair holds the build's lock, so of several processes that find the damage one repairs it."""
    path = Path(path)
    if path.exists() and check(path):
        with file_lock(path.with_name(f".{path.name}.lock"), f"the repair of {path}"):  # build_once's lock
            if path.exists() and (found := check(path)):
                kept = set_aside(path)
                more = f", and {len(found) - 1} more" if len(found) > 1 else ""
                log.warning(
                    "%s %s is damaged (%s%s): set aside as %s, and %s", what, path, found[0], more, kept.name, redo
                )
    return build_once(path, build)
