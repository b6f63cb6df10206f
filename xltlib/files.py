"""Files that appear whole or not at all, and content hashes that are the same on every machine.

Every write of the project goes through :func:`atomic_write` (a file) or
:func:`atomic_directory` (a folder): readers never see a partial one, and a crash keeps
the previous version. Work that several processes may ask for at once (a run, a cache
entry) is done under :func:`file_lock`: one does it, the others wait and read it. Every identity (a run's id, a recipe's
hash) is a
:func:`canonical_sha256`.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xltlib.errors import XltError

log = logging.getLogger(__name__)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it to ``path``.

    The rename is atomic, so ``path`` holds either its previous content or the new one;
    a failed ``write`` leaves no temporary file behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # the suffix kept: writers go by it
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def canonical_sha256(value: Any) -> str:
    """sha256 of ``value``'s canonical JSON (sorted keys, no spaces): the same on every machine."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def content_sha256(path: str | Path, ignore: tuple[str, ...] = ()) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative name → sha256; hidden files and ``ignore`` names left
    out).

    It identifies local models and data by what they hold, not where they live, so a run
    gets the same id on every machine and in every checkout. Hashes are computed once per
    content and cached (in this process, and on disk in :data:`HASH_CACHE` keyed by path,
    sizes and modification times), so a 2 GB model is read once, not per run.
    """
    path = Path(path).resolve()
    files = (
        [path]
        if path.is_file()
        else sorted(f for f in path.rglob("*") if f.is_file() and not _hidden(f, path) and f.name not in ignore)
    )
    stamp = canonical_sha256([[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files])
    cached = _hash_cache()
    if stamp not in cached:
        hashes = {str(f.relative_to(path)) if f != path else "": file_sha256(f) for f in files}
        cached[stamp] = hashes[""] if path.is_file() else canonical_sha256(hashes)
        _save_hash_cache(cached)
    return cached[stamp]


HASH_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "xltlib" / "content-sha256.json"


def _hidden(file: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in file.relative_to(root).parts)


@functools.cache
def _hash_cache() -> dict[str, str]:
    try:
        return json.loads(HASH_CACHE.read_text())
    except (OSError, ValueError):
        return {}


def _save_hash_cache(cached: dict[str, str]) -> None:
    try:
        HASH_CACHE.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(HASH_CACHE, {**_read_json(HASH_CACHE), **cached})  # keep what other processes added
    except OSError as error:  # a read-only home only costs rehashing
        log.debug("content hashes not cached: %s", error)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextmanager
def atomic_directory(out: str | Path, reuse_hint: str) -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to fill; it becomes ``out`` only if the block succeeds.

    A crash or interrupt leaves no half-written ``out`` behind, so a cache keyed by the
    folder's name can trust that an existing folder is complete.
    """
    out = Path(out)
    if out.exists():
        raise XltError(f"{out} already exists; remove it first, or {reuse_hint}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


LOCK_TIMEOUT = 24 * 3600.0
"""Seconds a writer waits for another process's lock before giving up (a real-profile run can take hours)."""
LOCK_POLL = 1.0


@contextmanager
def file_lock(path: str | Path, what: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block; wait while another process holds it.

    ``what`` names the locked work in messages. The lock is ``flock``'s, which the kernel
    releases when its holder dies: a lock file left by a killed process is free again, and
    the next writer takes it over (logging whose it was), resuming from whatever the dead
    one left complete. The file records the holder (host, pid, since); a wait longer than
    ``timeout`` seconds is an XltError that names the holder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        _acquire(handle, path, what, timeout)
        try:
            handle.seek(0)
            previous = handle.read().strip()
            if previous:
                log.info("%s: taking over the lock of %s, which ended without releasing its work", what, previous)
            handle.seek(0)
            handle.truncate()
            handle.write(_holder())
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(handle, path: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = path.read_text().strip() or "another process"
            if time.monotonic() >= deadline:
                raise XltError(
                    f"{what}: waited {timeout:g} s for {holder} to finish it (lock {path}); "
                    "wait longer, or stop that process"
                ) from None
            if not waiting:
                log.info("%s is being computed by %s; waiting for it", what, holder)
                waiting = True
            time.sleep(min(LOCK_POLL, max(deadline - time.monotonic(), 0.0)))


def _holder() -> str:
    return f"{socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}"


def build_once(path: Path, build: Callable[[Path], object], timeout: float = LOCK_TIMEOUT) -> Path:
    """``path`` if it exists, else ``build(path)`` (which must write it via :func:`atomic_directory`).

    The build holds a lock beside ``path``, so when several processes need the same cache
    entry one builds it and the others wait and then use it (never two builds at once).
    """
    if not path.exists():
        with file_lock(path.with_name(f".{path.name}.lock"), f"the build of {path}", timeout):
            if not path.exists():
                build(path)
    return path
