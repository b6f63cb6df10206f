"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's real-data folder (`$XLT_SHARED_DATA`, else `<repo>/../shared/data`)."""
    path = Path(os.environ.get("XLT_SHARED_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    if not path.is_dir():
        pytest.skip("../shared/data not found: real-data tests need the project's shared data folder")
    return path.resolve()


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory):
    """Build a tiny XLM-R (tokenizer + random weights) on a seeded corpus of random words.

    ``tiny_xlmr(words, lengths, documents, vocab_size, prefix)`` returns ``(path, corpus)``;
    each document is ``rng.integers(*lengths)`` words drawn from ``prefix0 … prefix{words-1}``.
    """
    from xltlib.models import TinyXlmrSpec, build_tiny_xlmr

    def build(words: int, lengths: tuple[int, int], documents: int, vocab_size: int, prefix: str = "tok"):
        rng = np.random.default_rng(0)
        vocabulary = [f"{prefix}{i}" for i in range(words)]
        corpus = [" ".join(rng.choice(vocabulary, size=rng.integers(*lengths))) for _ in range(documents)]
        path = build_tiny_xlmr(tmp_path_factory.mktemp("m") / "tiny", corpus, TinyXlmrSpec(vocab_size=vocab_size))
        return path, corpus

    return build


# Tests never reach a hub: fail fast instead of waiting on network retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
