"""All the data one run needs, loaded and checked before any model is touched (and before torch is imported)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from xltlib.config import PRETRAINED, RunConfig
from xltlib.data import loading, tasks
from xltlib.data.label_checks import check_evaluation_split, checked_training_split
from xltlib.data.parallel import parallel_corpus
from xltlib.data.tatoeba import ENGLISH, has_tatoeba, tatoeba_pairs
from xltlib.data.word_alignment import parallel_word_alignments
from xltlib.errors import XltError

log = logging.getLogger(__name__)

WordAlignments = dict[str, list[list[tuple[int, int]]]]


@dataclass(frozen=True)
class RunData:
    train: pd.DataFrame | None  # None for a pre-trained (alignment-only) run
    eval_sets: dict[str, pd.DataFrame]
    parallel: pd.DataFrame  # one column of line-aligned sentences per language
    word_alignments: WordAlignments = field(
        default_factory=dict
    )  # target → per parallel row, (src word, tgt word) pairs
    tatoeba: dict[str, pd.DataFrame] = field(default_factory=dict)  # target → its Tatoeba pairs (columns en, target)
    source_dev: pd.DataFrame | None = None  # the source language's dev split, where checkpoints are selected on it
    first_stage: pd.DataFrame | None = None  # SocialIQa items trained on before the task (XTREME-R's XCOPA recipe)


def load_run_data(config: RunConfig) -> RunData:
    """Load and validate all data a run needs, before any model is touched."""
    task = tasks.get_task(config.task)
    parallel = parallel_corpus(
        task, (config.src_lang, *config.tgt_langs), config.data_dir, limit=config.max_align_sentences
    )
    words = word_alignments(config, parallel)
    tatoeba = tatoeba_corpora(config)
    if config.method == PRETRAINED:
        return RunData(None, {}, parallel, words, tatoeba)
    if config.train_file is not None:
        train = loading.load_train_file(task, config.train_file, limit=config.max_train_examples)
    else:
        train = loading.load_split(task, config.src_lang, "train", None, limit=config.max_train_examples)
    train = checked_training_split(train, task)
    eval_sets = {lang: _eval_split(config, task, lang) for lang in config.tgt_langs}
    if config.generalized_examples and config.src_lang not in eval_sets:
        eval_sets |= _source_for_generalized(config, task)
    source_dev = None
    if config.select_checkpoint == "source_dev":
        source_dev = _eval_split(config, task, config.src_lang, "dev")
    return RunData(train, eval_sets, parallel, words, tatoeba, source_dev, first_stage(config))


def first_stage(config: RunConfig) -> pd.DataFrame | None:
    """The first stage's SocialIQa training items (first ``max_train_examples``), checked like any training split."""
    if config.first_stage_file is None:
        return None
    siqa = tasks.get_task("siqa")
    frame = loading.read_split_file(Path(config.first_stage_file), siqa).iloc[: config.max_train_examples]
    return checked_training_split(frame, siqa)


def tatoeba_corpora(config: RunConfig) -> dict[str, pd.DataFrame]:
    """Each target's Tatoeba pairs with English, where ``config.tatoeba_dir`` is set and Tatoeba has the target."""
    if config.tatoeba_dir is None:
        return {}
    if config.src_lang != ENGLISH:
        log.warning("Tatoeba pairs every language with English; source %s: no Tatoeba alignment", config.src_lang)
        return {}
    targets = [lang for lang in config.tgt_langs if lang != ENGLISH]
    missing = [lang for lang in targets if not has_tatoeba(lang)]
    if missing:
        log.info(
            "Tatoeba has no test set for %s: their alignment is measured on the task's sentences only",
            ", ".join(missing),
        )
    return {
        lang: tatoeba_pairs(config.tatoeba_dir, lang, config.max_align_sentences)
        for lang in targets
        if has_tatoeba(lang)
    }


def _eval_split(config: RunConfig, task: tasks.Task, lang: str, split: str | None = None):
    """``lang``'s evaluation split (``config.eval_split`` unless ``split``), checked, then cut to
    ``max_eval_examples``."""
    frame = loading.load_split(task, lang, split or config.eval_split, config.data_dir)
    check_evaluation_split(frame, task)  # on the whole split: a placeholder shows in its label counts
    return frame.iloc[: config.max_eval_examples]


def _source_for_generalized(config: RunConfig, task: tasks.Task) -> dict:
    """The source language's evaluation split for the generalized setting; left out (and said) where it has no labels.

    A missing or malformed file is still an error: only the labels may rule the source out."""
    frame = loading.load_split(task, config.src_lang, config.eval_split, config.data_dir)
    try:
        check_evaluation_split(frame, task)
    except XltError as error:
        log.warning("the generalized setting leaves out the source language %s: %s", config.src_lang, error)
        return {}
    return {config.src_lang: frame.iloc[: config.max_eval_examples]}


def word_alignments(config: RunConfig, parallel: pd.DataFrame) -> WordAlignments:
    """Exact word alignments of the parallel rows, for each target: synthetic tasks only (real data have none)."""
    if config.profile != "synthetic" or tasks.get_task(config.task).parallel_split != tasks.PARALLEL_SENTENCES:
        return {}
    return {
        lang: parallel_word_alignments(
            config.data_dir, config.src_lang, lang, parallel[config.src_lang], parallel[lang]
        )
        for lang in config.tgt_langs
        if lang != config.src_lang
    }
