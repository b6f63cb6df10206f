"""Tokenized sentence pairs and the padded batches the training loop and evaluation use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from transformers import DataCollatorWithPadding

from xltlib.data.synonyms import Substituter, SynonymTable

Batch = dict[str, torch.Tensor]
Features = list[dict[str, Any]]


def tokenize_pairs(tokenizer, frame, max_length: int) -> Features:
    """Tokenize (text_a, text_b[, label]) rows into unpadded features for a padding collator."""
    encoded = tokenizer(list(frame["text_a"]), list(frame["text_b"]), truncation=True, max_length=max_length)
    keys = list(encoded.keys())
    features = [{key: encoded[key][i] for key in keys} for i in range(len(frame))]
    if frame["label"].notna().all():
        for feature, label in zip(features, frame["label"]):
            feature["labels"] = int(label)
    return features


def pad_and_move(collate: DataCollatorWithPadding, features: Sequence[dict], device: torch.device) -> Batch:
    """Pad a list of features to the longest one (dynamic padding) and move it to ``device``."""
    return {key: value.to(device) for key, value in collate(list(features)).items()}


def length_sorted_batches(tokenizer, features: Features, batch_size: int, device: torch.device):
    """Yield ``(rows, padded batch)`` over ``features`` sorted by length, so padding stays small.

    ``rows`` are the input positions of the batch, for putting results back in input order.
    """
    collate = DataCollatorWithPadding(tokenizer)
    order = np.argsort([len(f["input_ids"]) for f in features], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield rows, pad_and_move(collate, [features[i] for i in rows], device)


class TrainingData(Protocol):
    """Where the training loop gets the padded batch of some example rows at some step."""

    def __len__(self) -> int: ...

    def batch(self, rows: np.ndarray, step: int) -> Batch: ...


class TokenizedPairs:
    """The training pairs, tokenized once; a batch is the same whatever the step."""

    def __init__(self, tokenizer, frame, max_length: int, device: torch.device):
        self.features = tokenize_pairs(tokenizer, frame, max_length)
        self.collate, self.device = DataCollatorWithPadding(tokenizer), device

    @classmethod
    def from_features(cls, tokenizer, features: Features, device: torch.device) -> TokenizedPairs:
        """Pairs tokenized elsewhere (e.g. synthetic token ids for a benchmark)."""
        pairs = cls.__new__(cls)
        pairs.features, pairs.collate, pairs.device = features, DataCollatorWithPadding(tokenizer), device
        return pairs

    def __len__(self) -> int:
        return len(self.features)

    def batch(self, rows: np.ndarray, step: int) -> Batch:
        return pad_and_move(self.collate, [self.features[i] for i in rows], self.device)


class SynonymAugmentedPairs:
    """Training pairs whose words are redrawn from their synonyms every time they are batched.

    The draw for a batch depends only on (seed, step, first row), so a resumed run sees
    the same text as an uninterrupted one.
    """

    def __init__(self, tokenizer, frame, max_length: int, device: torch.device, table: SynonymTable, rate: float, seed: int):
        self.tokenizer, self.max_length, self.device = tokenizer, max_length, device
        self.rate, self.seed = rate, seed
        self.size = len(frame)
        self.substituter = Substituter([*frame["text_a"], *frame["text_b"]], table)
        self.labels = frame["label"].to_numpy(dtype=np.int64)
        self.collate = DataCollatorWithPadding(tokenizer)

    def __len__(self) -> int:
        return self.size

    def texts(self, rows: np.ndarray, step: int) -> tuple[list[str], list[str]]:
        """The (text_a, text_b) lists of ``rows`` as drawn at ``step``."""
        rng = np.random.default_rng([self.seed, step, int(rows[0]) if len(rows) else 0])
        drawn = self.substituter.draw(np.concatenate([rows, np.asarray(rows) + self.size]), self.rate, rng)
        return drawn[: len(rows)], drawn[len(rows) :]

    def batch(self, rows: np.ndarray, step: int) -> Batch:
        first, second = self.texts(rows, step)
        encoded = self.tokenizer(first, second, truncation=True, max_length=self.max_length)
        features = [{key: encoded[key][i] for key in encoded} | {"labels": int(self.labels[r])} for i, r in enumerate(rows)]
        return pad_and_move(self.collate, features, self.device)
