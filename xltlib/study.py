"""The main job. For now: one fine-tuning run of a small local XLM-R on the local PAWS-X data.

It exercises the whole real-data path (tokenizer + model saved and reloaded like
``xlm-roberta-base``, English training, zero-shot accuracy in every language, the tidy
results store) on CPU with no network. The model is randomly initialised, so accuracies
sit near chance: this checks the plumbing, not the science.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import tasks
from .config import RunConfig
from .errors import XltError
from .models import TinyXlmrSpec, tiny_xlmr
from .runs import atomic_write_parquet, ensure_run, load_results

log = logging.getLogger(__name__)


def _local_pawsx(data_root: Path) -> tuple[Path, Path]:
    eval_dir = data_root / "pawsx" / "xtreme"
    train_file = data_root / "pawsx" / "paws-wiki-en" / "train-source.tsv"
    for path in (eval_dir, train_file):
        if not path.exists():
            raise XltError(f"{path} not found: the local study reads the project's shared data folder; {tasks.DATA_HELP}")
    return eval_dir, train_file


def run_local_study(data_root: Path, runs_dir: Path, quick: bool = False, device: str | None = None) -> Path:
    """Build (or reuse) the tiny encoder, ensure the run, and write the combined results table."""
    eval_dir, train_file = _local_pawsx(data_root)
    task = tasks.get_task("pawsx")
    train = tasks.load_train_file(task, train_file)
    corpus = list(train["text_a"]) + list(train["text_b"])
    for lang in task.languages:
        dev = tasks.load_split(task, lang, "dev", eval_dir)
        corpus += list(dev["text_a"])
    model_dir = tiny_xlmr(runs_dir.parent / "cache" / "models", corpus, TinyXlmrSpec(vocab_size=4000))
    config = RunConfig(
        task="pawsx",
        model=str(model_dir),
        learning_rate=5e-4,
        epochs=1.0 if quick else 3.0,
        batch_size=32,
        data_dir=str(eval_dir),
        train_file=str(train_file),
        max_train_examples=500 if quick else None,
        max_eval_examples=200 if quick else None,
        max_align_sentences=200 if quick else None,
    )
    ensure_run(config, runs_dir, device)
    results_path = runs_dir / "results.parquet"
    atomic_write_parquet(results_path, load_results(runs_dir))
    return results_path
