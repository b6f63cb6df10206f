"""The quick real profile: the xtreme experiments on CPU, with stand-ins for what needs a hub or a GPU.

``study --profile xtreme --quick`` runs every xtreme experiment marked for the quick run
through the same code as the real study, but with a small, randomly initialised XLM-R
(:func:`stand_in_model`, its tokenizer trained on the real text) in place of the hub's
encoders, the real text of a folder laid out like ``../shared/data`` in place of the hub's
datasets, and tiny sizes. Its numbers are meaningless; what it shows is that the path from
data to book is complete.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from xltlib.errors import XltError

REPO = Path(__file__).resolve().parents[2]

DATA_FOLDERS = {"xnli": "xnli", "pawsx": "pawsx", "xcopa": "xcopa"}
"""Task → its folder in the ``../shared/data`` layout."""

TRAIN_FILES = {"xnli": "xnli/xtreme/dev-en.tsv", "pawsx": "pawsx/paws-wiki-en/train-source.tsv"}
"""English training files the layout has (XNLI has none: its English dev set stands in; XCOPA's COPA train is found by
itself)."""

FIRST_STAGE_FILE = "xcopa/siqa/socialIQa_v1.4_dev.jsonl"
"""SocialIQa's training split is not in the layout: its dev split stands in for XCOPA's first stage."""

QUICK_SIZES: dict[str, Any] = {
    "max_train_examples": 64,
    "max_eval_examples": 48,
    "max_align_sentences": 48,
    "generalized_examples": 8,
    "eval_split": "dev",  # labeled in every language of the layout (PAWS-X's labeled test has three)
}
"""RunConfig fields of the quick run, over the protocol's and the experiment's."""


def real_data_folder() -> Path:
    """``$XLT_SHARED_DATA``, else ``../shared/data`` beside the repository, else ``data/real`` (``data fetch``)."""
    candidates = [os.environ.get("XLT_SHARED_DATA"), REPO.parent / "shared" / "data", REPO / "data" / "real"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    raise XltError(
        "the quick xtreme profile reads real text from a folder laid out like ../shared/data: "
        "set XLT_SHARED_DATA, or run `python -m xltlib data fetch` (writes data/real)"
    )


def stand_in_texts(root: Path, per_file: int = 300) -> list[str]:
    """A sample of the real text of every task and Tatoeba: what the stand-in's tokenizer is trained on."""
    files = sorted(
        [
            *root.glob("xnli/xtreme/dev-*.tsv"),
            *root.glob("pawsx/xtreme/dev-*.tsv"),
            *root.glob("xcopa/xcopa/*/val.*.jsonl"),
            *root.glob("xcopa/copa-en/*.jsonl"),
            *root.glob("tatoeba/v1/tatoeba.*-eng.*"),
        ]
    )
    if not files:
        raise XltError(
            f"{root} holds none of the task files the stand-in's tokenizer is trained on; "
            "`python -m xltlib data verify --data-dir` says what is missing"
        )
    return [line for path in files for line in path.read_text(encoding="utf-8").splitlines()[:per_file]]


@functools.cache  # every experiment's configs ask; the text is read once
def stand_in_model(cache_dir: str | Path) -> Path:
    """A small XLM-R (random weights, tokenizer trained on the real text), built once under ``cache_dir``."""
    from xltlib.models import TinyXlmrSpec, tiny_xlmr

    spec = TinyXlmrSpec(vocab_size=8000, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)
    return tiny_xlmr(Path(cache_dir) / "xtreme-quick", stand_in_texts(real_data_folder()), spec)


def quick_settings(task: str, cache_dir: str, overrides: dict[str, Any], method_params: dict[str, dict]) -> tuple:
    """``(model, overrides, method_params)`` of a quick run of ``task``: stand-ins for the model and the data."""
    if task not in DATA_FOLDERS:
        raise XltError(f"the quick xtreme profile covers {', '.join(DATA_FOLDERS)}; not {task}")
    root = real_data_folder()
    local = {"data_dir": str(root / DATA_FOLDERS[task]), "tatoeba_dir": str(root / "tatoeba" / "v1"), **QUICK_SIZES}
    if task in TRAIN_FILES:
        local["train_file"] = str(root / TRAIN_FILES[task])
    if overrides.get("first_stage_file"):
        local["first_stage_file"] = str(root / FIRST_STAGE_FILE)
    params = dict(method_params)
    if "rs_da" in params:
        params["rs_da"] = {**params["rs_da"], "synonyms_file": str(root / "synonyms" / "counterfitted_neighbors.json")}
    return str(stand_in_model(cache_dir)), {**overrides, **local}, params
