"""Executed chapters checked when read: the batch's manifest, and each chapter against the record written with it.

A chapter is computed (papermill executes it), so a damaged one is set aside (kept, renamed) and
executed again by the next batch, and a damaged manifest is set aside and read as empty (every chapter
it listed is executed again). The chapters' records are the folder's sidecar
(:data:`xltlib.integrity.SIDECAR`); a chapter executed before chapters were recorded is whole if it
reads as a notebook.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from xltlib.files import atomic_write_json
from xltlib.integrity import damage, read_sidecar, record, set_aside

log = logging.getLogger(__name__)


def read_chapter_manifest(path: Path) -> dict[str, Any]:
    """Chapter name → its entry (status, parameters…); empty when there is none yet, or when it is damaged (then
    set aside, with one log line)."""
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # cut short, emptied, undecodable
        cause = f"not JSON: {error}"
    else:
        if not isinstance(manifest, dict) or not all(_is_entry(entry) for entry in manifest.values()):
            cause = "not chapter names with their status and parameters"
        elif path.name in (read_sidecar(path.parent) or {}) and (found := damage(path.parent, [path.name])):
            cause = found[0].cause
        else:
            return manifest
    kept = set_aside(path)
    log.warning(
        "%s is damaged (%s): set aside as %s; the chapters it listed are executed again", path, cause, kept.name
    )
    return {}


def _is_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("status"), str) and "parameters" in entry


def write_chapter_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, manifest)
    record(path.parent, [path.name])


def record_chapter(chapter: Path) -> None:
    """Record a chapter just executed (its size and sha256) in its folder's sidecar."""
    record(chapter.parent, [chapter.name])


def chapter_damage(chapter: Path) -> str | None:
    """Why ``chapter`` is not the notebook that was executed into it, or None when it is."""
    if chapter.name in (read_sidecar(chapter.parent) or {}):
        found = damage(chapter.parent, [chapter.name])
        return found[0].cause if found else None
    import nbformat

    try:
        nbformat.read(chapter, as_version=4)
    except Exception as error:  # nbformat raises JSON, schema and key errors alike: any of them is damage
        return f"not a readable notebook: {type(error).__name__}: {error}"
    return None


def whole_chapter(chapter: Path) -> bool:
    """Whether ``chapter`` exists as it was executed; a damaged one is set aside (kept) with one log line."""
    if not chapter.exists():
        return False
    if (cause := chapter_damage(chapter)) is None:
        return True
    kept = set_aside(chapter)
    log.warning("the chapter %s is damaged (%s): set aside as %s, and executed again", chapter, cause, kept.name)
    return False
