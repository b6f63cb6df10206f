"""Parallel sentences (for alignment) and mixed-language pairs (the generalized setting)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xltlib.data.loading import choice_columns, describe_source, is_multiple_choice, load_split, pair_frame
from xltlib.data.tasks import PARALLEL_SENTENCES, Task, data_help, local_split_path
from xltlib.errors import XltError


def parallel_corpus(
    task: Task, langs: tuple[str, ...], data_dir: str | Path | None = None, limit: int | None = None
) -> pd.DataFrame:
    """Line-aligned sentences of ``task.parallel_split`` in every language: one column per language.

    The task's ``parallel_columns`` are stacked (all `text_a`, then all `text_b`); ``limit``
    keeps the first N stacked rows. Rows are not deduplicated here, because which rows
    repeat depends on the language pair: see :func:`parallel_rows`.
    """
    if limit is not None and limit < 1:
        raise XltError(f"limit must be a positive number of rows, got {limit}")
    if task.parallel_split != PARALLEL_SENTENCES and not task.parallel_columns:
        raise XltError(
            f"task {task.name} has no parallel sentences to measure alignment on: it is English only "
            "(SocialIQa is XCOPA's first stage, first_stage_file, not a study task)"
        )
    columns = {}
    for lang in dict.fromkeys(langs):
        if task.parallel_split == PARALLEL_SENTENCES:
            columns[lang] = _parallel_sentences(task, lang, data_dir)
            continue
        split = load_split(task, lang, task.parallel_split, data_dir)
        columns[lang] = pd.concat([split[column] for column in task.parallel_columns], ignore_index=True)
    lengths = {lang: len(column) for lang, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise XltError(
            f"{task.name} {task.parallel_split} files are not line-aligned across languages "
            f"(rows: {', '.join(f'{lang} {n}' for lang, n in lengths.items())}); alignment needs parallel files"
        )
    corpus = pd.DataFrame(columns)
    return corpus.iloc[:limit].reset_index(drop=True) if limit is not None else corpus


def _parallel_sentences(task: Task, lang: str, data_dir: str | Path | None) -> pd.Series:
    if data_dir is None:
        raise XltError(f"task {task.name}: parallel sentences are read from local files; {data_help(task)}")
    path = local_split_path(task, data_dir, PARALLEL_SENTENCES, lang, suffix=".txt")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise XltError(f"{path} is not UTF-8 text ({e})") from None
    return pd.Series(lines, dtype="str", name=lang)


def generalized_pairs(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Mixed-language inputs of the generalized setting: the first segment from ``first``, the rest from ``second``.

    Sentence pairs take ``text_a`` of ``first`` and ``text_b`` of ``second``; multiple-choice
    items (XCOPA) take the premise and its question of ``first`` and the choices of ``second``.
    Both frames are the same split of a line-aligned task (XNLI, XCOPA, the synthetic test sets)
    in two languages, so row i has one label in both; any disagreement means the files are
    not parallel and is refused rather than scored.
    """
    if len(first) != len(second) or not first["label"].equals(second["label"]):
        raise XltError(
            f"generalized pairs need line-aligned files with the same labels: {describe_source(first)} "
            f"({len(first)} rows) and {describe_source(second)} ({len(second)} rows) are not"
        )
    if is_multiple_choice(first):
        mixed = first.copy()
        mixed[list(choice_columns(first))] = second[list(choice_columns(first))].to_numpy()
    else:
        mixed = pair_frame(list(first["text_a"]), list(second["text_b"]), list(first["label"]), "mixed")
    mixed.attrs["source"] = f"{first.attrs.get('source')} | {second.attrs.get('source')}"
    return mixed


def parallel_rows(src: pd.Series, tgt: pd.Series) -> pd.Index:
    """Rows of a parallel corpus usable for one language pair: both sides non-empty, and
    neither side repeating an earlier row (a repeated sentence would be two correct answers
    to one retrieval query)."""
    pairs = pd.DataFrame({"src": src.str.strip(), "tgt": tgt.str.strip()})
    pairs = pairs[(pairs["src"] != "") & (pairs["tgt"] != "")]
    keep = ~pairs["src"].duplicated() & ~pairs["tgt"].duplicated()
    return pairs.index[keep.to_numpy()]
