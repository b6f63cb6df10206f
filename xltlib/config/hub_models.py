"""The hub encoders the real profile names, each by its namespaced id at a pinned commit.

A run that names one of these models without ``model_revision`` gets the commit below, so
two GPU users a year apart fine-tune the same weights (the hub's default branch can move).
The legacy bare ids (``xlm-roberta-base``) still resolve on the hub by redirect; here they
are rewritten to the namespaced id before anything else, so a run has one name.

The commits are the snapshot folders of these repositories as Hugging Face's cache names
them, seen in public code that loads them (the hub itself could not be reached when they
were written down, 2026-12-06); the hub refuses a revision that does not exist, so a wrong
one fails on first download rather than loading other weights.
"""

from __future__ import annotations

PINNED_REVISIONS: dict[str, str] = {
    "FacebookAI/xlm-roberta-base": "e73636d4f797dec63c3081bb6ed5c7b0bb3f2089",
    "FacebookAI/xlm-roberta-large": "c23d21b0620b635a76227c604d44e43a9f0ee389",
    "google-bert/bert-base-multilingual-cased": "3f076fdb1ab68d5b2880cb87a0886f315b8146f8",
}
"""Namespaced hub id → the commit every run of it loads unless ``model_revision`` says otherwise."""

LEGACY_IDS: dict[str, str] = {model.split("/", 1)[1]: model for model in PINNED_REVISIONS}
"""Bare id (``xlm-roberta-base``) → its namespaced id."""


def namespaced(model: str) -> str:
    """``model`` with a legacy bare id replaced by its namespaced one; anything else unchanged."""
    return LEGACY_IDS.get(model, model)


def pinned_revision(model: str, revision: str | None) -> str | None:
    """``revision`` if given, else the pinned commit of a known hub model (``None`` for others)."""
    return revision if revision is not None else PINNED_REVISIONS.get(model)
