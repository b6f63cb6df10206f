"""Folders that appear complete or not at all (generated data, pre-trained encoders)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import XltError


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
