"""Files that appear whole or not at all, and content hashes that are the same on every machine.

Every write of the project goes through :func:`atomic_write` (a file) or
:func:`atomic_directory` (a folder): readers never see a partial one, and a crash keeps
the previous version. Every identity (a run's id, a recipe's hash) is a
:func:`canonical_sha256`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xltlib.errors import XltError


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
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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


def build_once(path: Path, build: Callable[[Path], object]) -> Path:
    """``path`` if it exists, else ``build(path)`` (which must write it via :func:`atomic_directory`).

    When two processes build the same cache entry, the loser's rename fails; the winner's
    complete folder is then used instead of raising.
    """
    if not path.exists():
        try:
            build(path)
        except (XltError, OSError):
            if not path.exists():
                raise
    return path
