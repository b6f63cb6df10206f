"""Tokenized examples (sentence pairs or multiple-choice items) and the padded batches the training loop and evaluation
use.

A multiple-choice item (XCOPA) becomes one (first segment, choice) pair per choice, as
XTREME-R's ``run_xcopa.py`` builds them: the first segment is
:data:`CHOICE_QUESTION` of the premise, the second the choice. Its features hold one list per
choice, which :class:`~transformers.DataCollatorForMultipleChoice` pads to ``[batch, choices, tokens]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from transformers import DataCollatorForMultipleChoice, DataCollatorWithPadding

from xltlib.data.loading import choice_columns, is_multiple_choice
from xltlib.data.synonyms import CopiesStyle, Substituter, SynonymTable

Batch = dict[str, torch.Tensor]
Features = list[dict[str, Any]]


CHOICE_QUESTION = "{premise} What was the {question}?"
"""The first segment of a COPA item (XTREME-R's XCOPA input), ``question`` being ``cause`` or ``effect``;
a SocialIQa item's is its context and its question."""


def text_columns(frame) -> tuple[str, ...]:
    """The columns holding text a model reads (and synonym augmentation may rewrite)."""
    return ("text_a", *choice_columns(frame)) if is_multiple_choice(frame) else ("text_a", "text_b")


def first_segment(premise: str, question: str) -> str:
    return (
        CHOICE_QUESTION.format(premise=premise, question=question)
        if question in ("cause", "effect")
        else f"{premise} {question}"
    )


def tokenize_pairs(tokenizer, frame, max_length: int) -> Features:
    """Tokenize (text_a, text_b[, label]) rows, or multiple-choice items, into unpadded features for
    :func:`collator`."""
    if is_multiple_choice(frame):
        features = _tokenize_choices(tokenizer, frame, max_length)
    else:
        encoded = tokenizer(list(frame["text_a"]), list(frame["text_b"]), truncation=True, max_length=max_length)
        features = [{key: encoded[key][i] for key in encoded.keys()} for i in range(len(frame))]
    if frame["label"].notna().all():
        for feature, label in zip(features, frame["label"]):
            feature["labels"] = int(label)
    return features


def _tokenize_choices(tokenizer, frame, max_length: int) -> Features:
    firsts = [first_segment(p, q) for p, q in zip(frame["text_a"], frame["question"])]
    columns = choice_columns(frame)
    n, choices = len(frame), len(columns)
    seconds = [text for column in columns for text in frame[column]]
    encoded = tokenizer(firsts * choices, seconds, truncation=True, max_length=max_length)
    return [{key: [encoded[key][c * n + i] for c in range(choices)] for key in encoded.keys()} for i in range(n)]


def collator(tokenizer, features: Features):
    """The padding collator for ``features``: per choice for multiple-choice items, per pair otherwise."""
    nested = bool(features) and isinstance(features[0]["input_ids"][0], list)
    return ChoiceCollator(tokenizer) if nested else DataCollatorWithPadding(tokenizer)


class ChoiceCollator(DataCollatorForMultipleChoice):
    """Transformers' multiple-choice collator, which also pads features without labels (evaluation)."""

    def torch_call(self, examples: Features) -> Batch:
        if examples and "labels" in examples[0]:
            return super().torch_call(examples)
        choices = len(examples[0]["input_ids"])
        flat = [{key: value[c] for key, value in example.items()} for example in examples for c in range(choices)]
        padded = self.tokenizer.pad(flat, padding=True, return_tensors="pt")
        return {key: value.view(len(examples), choices, -1) for key, value in padded.items()}


def feature_length(feature: dict) -> int:
    """Tokens of a feature (its longest choice for a multiple-choice item)."""
    ids = feature["input_ids"]
    return max(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids)


def pad_and_move(collate, features: Sequence[dict], device: torch.device) -> Batch:
    """Pad a list of features to the longest one (dynamic padding) and move it to ``device``.

    On CUDA the batch goes through pinned memory without blocking, so the host can prepare
    the next batch while the GPU still computes (no host–device sync per step).
    """
    batch = collate(list(features))
    if device.type == "cuda":
        return {key: value.pin_memory().to(device, non_blocking=True) for key, value in batch.items()}
    return {key: value.to(device) for key, value in batch.items()}


def length_sorted_batches(tokenizer, features: Features, batch_size: int, device: torch.device):
    """Yield ``(rows, padded batch)`` over ``features`` sorted by length, so padding stays small.

    ``rows`` are the input positions of the batch, for putting results back in input order.
    """
    collate = collator(tokenizer, features)
    order = np.argsort([feature_length(f) for f in features], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield rows, pad_and_move(collate, [features[i] for i in rows], device)


class TrainingData(Protocol):
    """Where the training loop gets the padded batch of some example rows at some step."""

    def __len__(self) -> int: ...

    def batch(self, rows: np.ndarray, step: int) -> Batch: ...

    def lengths(self) -> list[int]:
        """Tokens of each row (its longest choice for a multiple-choice item), for length-grouped batches."""
        ...


class TokenizedPairs:
    """The training pairs, tokenized once; a batch is the same whatever the step."""

    def __init__(self, tokenizer, frame, max_length: int, device: torch.device):
        self.features = tokenize_pairs(tokenizer, frame, max_length)
        self.collate, self.device = collator(tokenizer, self.features), device

    @classmethod
    def from_features(cls, tokenizer, features: Features, device: torch.device) -> TokenizedPairs:
        """Pairs tokenized elsewhere (e.g. synthetic token ids for a benchmark)."""
        pairs = cls.__new__(cls)
        pairs.features, pairs.collate, pairs.device = features, collator(tokenizer, features), device
        return pairs

    def __len__(self) -> int:
        return len(self.features)

    def batch(self, rows: np.ndarray, step: int) -> Batch:
        return pad_and_move(self.collate, [self.features[i] for i in rows], self.device)

    def lengths(self) -> list[int]:
        return [feature_length(feature) for feature in self.features]


class SynonymAugmentedPairs:
    """Training examples whose words are redrawn from their synonyms every time they are batched.

    Every text column (:func:`text_columns`) is rewritten; a multiple-choice item keeps its
    question. The draw for a batch depends only on (seed, step, first row), so a resumed run
    sees the same text as an uninterrupted one.
    """

    def __init__(
        self, tokenizer, frame, max_length: int, device: torch.device, table: SynonymTable, rate: float, seed: int
    ):
        self.tokenizer, self.max_length, self.device = tokenizer, max_length, device
        self.rate, self.seed = rate, seed
        self.frame, self.columns = frame.reset_index(drop=True), text_columns(frame)
        self.substituter = Substituter([text for column in self.columns for text in frame[column]], table)

    def __len__(self) -> int:
        return len(self.frame)

    def texts(self, rows: np.ndarray, step: int) -> tuple[list[str], ...]:
        """Each text column's texts of ``rows`` as drawn at ``step``."""
        rng = np.random.default_rng([self.seed, step, int(rows[0]) if len(rows) else 0])
        size, rows = len(self.frame), np.asarray(rows, dtype=np.int64)
        drawn = self.substituter.draw(
            np.concatenate([rows + i * size for i in range(len(self.columns))]), self.rate, rng
        )
        return tuple(drawn[i * len(rows) : (i + 1) * len(rows)] for i in range(len(self.columns)))

    def lengths(self) -> list[int]:
        """The unrewritten rows' lengths: a synonym changes a row's length by a few tokens at most."""
        return [feature_length(feature) for feature in tokenize_pairs(self.tokenizer, self.frame, self.max_length)]

    def batch(self, rows: np.ndarray, step: int) -> Batch:
        part = self.frame.iloc[rows].copy()
        part[list(self.columns)] = np.array(self.texts(rows, step), dtype=object).T
        features = tokenize_pairs(self.tokenizer, part, self.max_length)
        return pad_and_move(collator(self.tokenizer, features), features, self.device)


def augmented_copies(frame, table: SynonymTable, copies: int, seed: int, style: CopiesStyle = "with-originals"):
    """``copies`` rewritten copies of ``frame``, drawn once (Huang et al.'s offline RS-DA).

    In a copy each word with counter-fitted neighbours is drawn uniformly from the word and
    its neighbours, as the released Robust-XLT augmentation (``perturb.py``) does; every text
    column (:func:`text_columns`) is rewritten. The ``style``:

    - ``robust-xlt``: as ``perturb.py`` does, only the copies (``copies`` × the rows), words
      split on single spaces and looked up case-sensitively (:class:`Substituter`'s ``exact``).
    - ``with-originals``: ``frame`` followed by its copies, words looked up lower-cased.

    The procedure is theirs, the draws are ours: ``perturb.py`` draws from numpy's unseeded
    global generator, a copy here from one seeded by (``seed``, copy number).
    """
    import pandas as pd

    columns, faithful = text_columns(frame), style == "robust-xlt"
    substituter = Substituter([text for column in columns for text in frame[column]], table, exact=faithful)
    size, parts = len(frame), [] if faithful else [frame]
    for copy in range(1, copies + 1):
        drawn = substituter.draw(
            np.arange(size * len(columns)), 1.0, np.random.default_rng([seed, copy]), keep_word=True
        )
        rewritten = frame.copy()
        for i, column in enumerate(columns):
            rewritten[column] = drawn[i * size : (i + 1) * size]
        parts.append(rewritten)
    result = pd.concat(parts, ignore_index=True)
    result.attrs = dict(frame.attrs)
    return result
