"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's real-data folder (`$XLT_SHARED_DATA`, else `<repo>/../shared/data`)."""
    path = Path(os.environ.get("XLT_SHARED_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    if not path.is_dir():
        pytest.skip("../shared/data not found: real-data tests need the project's shared data folder")
    return path.resolve()

# Tests never reach a hub: fail fast instead of waiting on network retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
