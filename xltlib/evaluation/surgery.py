"""The causal arm: move alignment on purpose, at the state the classifier reads, and see whether accuracy follows.

Alignment measured after fine-tuning only goes *with* accuracy; a run that learned the task
better in every respect can raise both. Here a fine-tuned model's last-layer ``<s>`` states of
a target language are mapped onto the source's by an orthogonal Procrustes map (with the two
means), fitted on half of the parallel test pairs (their inputs only, never their labels), and
the task head reads the mapped states of the other half. A dose λ interpolates between the
model's own states (λ = 0) and the fully mapped ones (λ = 1). The head, the encoder and the
source are untouched, so what changes with λ is the target's alignment with the source, at
exactly the place the classifier reads it.

Rows: per target and dose, ``surgery_accuracy`` and ``surgery_cosine_gap`` (the target's
mapped states against the source's, :func:`~xltlib.evaluation.kernels.cosine_gap`) on the
held-out half, ``pooling="cls"``, ``layer`` the last layer, and ``corpus="surgery-<λ>"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from xltlib.data.batches import length_sorted_batches, tokenize_pairs
from xltlib.evaluation.kernels import cosine_gap
from xltlib.models import autocast_for

DOSES = (0.0, 0.5, 1.0)
SURGERY_METRICS = ("surgery_accuracy", "surgery_cosine_gap")


def procrustes_map(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The orthogonal ``W`` and the means that best carry ``target`` rows onto their ``source`` rows:
    ``(target − μ_t) W + μ_s``, W minimising the squared distance over orthogonal matrices (Schönemann 1966)."""
    source_mean, target_mean = source.mean(0), target.mean(0)
    left, _, right = torch.linalg.svd((target - target_mean).T @ (source - source_mean), full_matrices=False)
    return left @ right, source_mean, target_mean


def mapped(states: torch.Tensor, fitted: tuple[torch.Tensor, torch.Tensor, torch.Tensor], dose: float) -> torch.Tensor:
    """``states`` moved a fraction ``dose`` of the way to their Procrustes image."""
    rotation, source_mean, target_mean = fitted
    return (1 - dose) * states + dose * ((states - target_mean) @ rotation + source_mean)


def surgery_rows(
    model,
    tokenizer,
    eval_sets: Mapping[str, pd.DataFrame],
    src_lang: str,
    tgt_langs: Sequence[str],
    max_length: int,
    device: torch.device,
    batch_size: int = 64,
) -> list[dict]:
    """The causal arm's rows for each target whose test set is parallel to the source's (same length)."""
    head = classifier_head(model)
    source = eval_sets[src_lang]
    source_states = cls_states(model, tokenizer, source, max_length, device, batch_size)
    fit_rows, held_out = np.arange(0, len(source), 2), np.arange(1, len(source), 2)
    layer = model.config.num_hidden_layers
    rows = []
    for lang in tgt_langs:
        target = eval_sets.get(lang)
        if lang == src_lang or target is None or len(target) != len(source):
            continue
        states = cls_states(model, tokenizer, target, max_length, device, batch_size)
        fitted = procrustes_map(source_states[fit_rows], states[fit_rows])
        labels = torch.as_tensor(target["label"].to_numpy(dtype=np.int64)[held_out])
        for dose in DOSES:
            moved = mapped(states[held_out], fitted, dose)
            with torch.no_grad():
                predicted = head(moved.to(device)).argmax(-1).cpu()
            shared = {"tgt_lang": lang, "layer": layer, "pooling": "cls", "corpus": f"surgery-{dose:g}"}
            rows.append({**shared, "metric": "surgery_accuracy", "value": float((predicted == labels).double().mean())})
            rows.append({**shared, "metric": "surgery_cosine_gap", "value": cosine_gap(source_states[held_out], moved)})
    return rows


def classifier_head(model):
    """The task head as a function of the last-layer ``<s>`` states: XLM-R's head reads position 0 of the
    sequence; BERT's goes through its pooler first."""
    pooler = getattr(model.base_model, "pooler", None)
    if pooler is not None:
        return lambda states: model.classifier(model.dropout(pooler(states[:, None, :])))
    return lambda states: model.classifier(states[:, None, :])


@torch.no_grad()
def cls_states(model, tokenizer, frame: pd.DataFrame, max_length: int, device, batch_size: int) -> torch.Tensor:
    """Last-layer ``<s>`` states of the (text_a, text_b) rows of ``frame``, in row order, float32 on CPU."""
    features = [
        {key: value for key, value in feature.items() if key != "labels"}
        for feature in tokenize_pairs(tokenizer, frame, max_length)
    ]
    was_training = model.training
    model.eval()
    states = torch.empty(len(features), model.config.hidden_size)
    for rows, batch in length_sorted_batches(tokenizer, features, batch_size, device):
        with autocast_for(device):
            states[torch.as_tensor(rows)] = model.base_model(**batch).last_hidden_state[:, 0].float().cpu()
    model.train(was_training)
    return states
