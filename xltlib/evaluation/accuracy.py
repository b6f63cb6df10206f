"""Zero-shot evaluation: accuracy of a fine-tuned classifier on each target language, and the generalized setting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from xltlib.data.batches import length_sorted_batches, tokenize_pairs
from xltlib.data.loading import require_labels
from xltlib.data.parallel import generalized_pairs
from xltlib.methods import ModelCall, Predictor
from xltlib.models import autocast_for


@torch.no_grad()
def predict(
    model,
    tokenizer,
    frame: pd.DataFrame,
    max_length: int,
    device: torch.device,
    batch_size: int = 64,
    predictor: Predictor | None = None,
) -> np.ndarray:
    """Predicted class ids for the rows of ``frame``, in row order.

    Rows are batched by length so padding stays small; predictions are put back in order.
    ``predictor`` replaces the argmax of the logits (``rs_rp``'s smoothed vote).
    """
    call = ModelCall(model, lambda: autocast_for(device))
    features = [
        {key: value for key, value in feature.items() if key != "labels"}
        for feature in tokenize_pairs(tokenizer, frame, max_length)
    ]
    was_training = model.training
    model.eval()
    predictions = np.empty(len(features), dtype=np.int64)
    for rows, batch in length_sorted_batches(tokenizer, features, batch_size, device):
        predicted = call(batch).logits.argmax(dim=-1) if predictor is None else predictor(call, batch)
        predictions[rows] = predicted.cpu().numpy()
    model.train(was_training)
    return predictions


def accuracy(predictions: np.ndarray, frame: pd.DataFrame) -> float:
    return float((predictions == frame["label"].to_numpy(dtype=np.int64)).mean())


def zero_shot_accuracy(
    model,
    tokenizer,
    eval_sets: Mapping[str, pd.DataFrame],
    max_length: int,
    device: torch.device,
    batch_size: int = 64,
    predictor: Predictor | None = None,
) -> dict[str, float]:
    """Accuracy per language (or language pair); every set must be labeled (XTREME test files are not)."""
    for frame in eval_sets.values():
        require_labels(frame)
    results = {}
    for lang, frame in tqdm(eval_sets.items(), desc="zero-shot eval", unit="lang"):
        results[lang] = accuracy(predict(model, tokenizer, frame, max_length, device, batch_size, predictor), frame)
    return results


def generalized_sets(
    eval_sets: Mapping[str, pd.DataFrame], languages: Sequence[str], examples: int
) -> dict[str, pd.DataFrame]:
    """``"a|b"`` → the first ``examples`` rows with text_a in language a and text_b in b (a ≠ b)."""
    return {
        f"{a}|{b}": generalized_pairs(eval_sets[a].iloc[:examples], eval_sets[b].iloc[:examples])
        for a in languages
        for b in languages
        if a != b
    }
