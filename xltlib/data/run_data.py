"""All the data one run needs, loaded and checked before any model is touched (and before torch is imported)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from xltlib.config import PRETRAINED, RunConfig
from xltlib.data import loading, tasks
from xltlib.data.parallel import parallel_corpus
from xltlib.data.word_alignment import parallel_word_alignments

WordAlignments = dict[str, list[list[tuple[int, int]]]]


@dataclass(frozen=True)
class RunData:
    train: pd.DataFrame | None  # None for a pre-trained (alignment-only) run
    eval_sets: dict[str, pd.DataFrame]
    parallel: pd.DataFrame  # one column of line-aligned sentences per language
    word_alignments: WordAlignments = field(default_factory=dict)  # target → per parallel row, (src word, tgt word) pairs


def load_run_data(config: RunConfig) -> RunData:
    """Load and validate all data a run needs, before any model is touched."""
    task = tasks.get_task(config.task)
    parallel = parallel_corpus(
        task, (config.src_lang, *config.tgt_langs), config.data_dir, limit=config.max_align_sentences
    )
    words = word_alignments(config, parallel)
    if config.method == PRETRAINED:
        return RunData(None, {}, parallel, words)
    if config.train_file is not None:
        train = loading.load_train_file(task, config.train_file, limit=config.max_train_examples)
    else:
        train = loading.load_split(task, config.src_lang, "train", None, limit=config.max_train_examples)
    loading.require_labels(train)
    eval_langs = dict.fromkeys((*config.tgt_langs, *((config.src_lang,) if config.generalized_examples else ())))
    eval_sets = {
        lang: loading.load_split(task, lang, config.eval_split, config.data_dir, limit=config.max_eval_examples)
        for lang in eval_langs
    }
    for frame in eval_sets.values():
        loading.require_labels(frame)
    return RunData(train, eval_sets, parallel, words)


def word_alignments(config: RunConfig, parallel: pd.DataFrame) -> WordAlignments:
    """Exact word alignments of the parallel rows, for each target: synthetic tasks only (real data have none)."""
    if config.profile != "synthetic" or tasks.get_task(config.task).parallel_split != tasks.PARALLEL_SENTENCES:
        return {}
    return {lang: parallel_word_alignments(config.data_dir, config.src_lang, lang, parallel[config.src_lang], parallel[lang])
            for lang in config.tgt_langs if lang != config.src_lang}  # fmt: skip
