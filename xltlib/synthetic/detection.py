"""The change-detection stage: intermediate training on source-language pairs, on the one training loop.

What it is and why the profile runs it: :class:`xltlib.synthetic.recipe.DetectionSpec`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from xltlib.errors import XltError
from xltlib.models import autocast_for
from xltlib.synthetic.pretraining import eager_attention_on_cpu, every_100, set_dropout, stage_optimizer
from xltlib.synthetic.recipe import DetectionSpec
from xltlib.training import StepPlan, train_loop

log = logging.getLogger(__name__)


DETECTION_FORMED_RECALL = 0.5
"""Held-out recall below which the detection stage is reported as not formed (a warning)."""


def check_enough_pairs(detection_pairs: Sequence, detection: DetectionSpec) -> None:
    if len(detection_pairs) <= detection.held_out:
        raise XltError(
            f"the detection stage needs more than {detection.held_out} pairs (held out), got {len(detection_pairs)}"
        )


def _not_formed(stage: dict) -> dict[str, float]:
    """Recalls below :data:`DETECTION_FORMED_RECALL` in a stage's report: ``{"overall": r}`` or ``{kind: r, ...}``;
    empty when formed."""
    if stage["detection_held_out_recall"] < DETECTION_FORMED_RECALL:
        return {"overall": stage["detection_held_out_recall"]}
    return {
        kind: recall
        for kind, recall in stage["detection_held_out_recall_by_kind"].items()
        if recall < DETECTION_FORMED_RECALL
    }


def warn_if_not_formed(stage: dict) -> None:
    missed = _not_formed(stage)
    if "overall" in missed:
        log.warning(
            "the detection stage did not form: held-out recall of new words %.2f < %.2f; fine-tuning "
            "will hardly compare the two segments (book, design notes: 'Why the change-detection stage')",
            missed["overall"],
            DETECTION_FORMED_RECALL,
        )
    elif missed:
        log.warning(
            "the detection stage did not form for %s (held-out recall %s < %.2f): fine-tuning will hardly "
            "notice a change of these words (book, design notes: 'Why no verb synonyms')",
            ", ".join(missed),
            ", ".join(f"{recall:.2f}" for recall in missed.values()),
            DETECTION_FORMED_RECALL,
        )


def _word_label_ids(
    tokenizer, pairs: list[tuple[str, ...]]
) -> tuple[list[list[int]], list[list[int]], list[list[str | None]]]:
    """Token ids of each pair, a label per token (its word's, -100 where there is none) and a kind per token.

    A row is ``(a, b, labels_a, labels_b[, kinds_a, kinds_b])``; without kinds every
    labeled token's kind is ``"word"``.
    """
    encoded = tokenizer([a for a, *_ in pairs], [b for _, b, *_ in pairs], truncation=True)
    labels, kinds = [], []
    for row, (_, _, labels_a, labels_b, *kinds_ab) in enumerate(pairs):
        words = (labels_a.split(), labels_b.split())
        word_kinds = tuple(column.split() for column in kinds_ab) or (
            ["word"] * len(words[0]),
            ["word"] * len(words[1]),
        )
        tokens = list(zip(encoded.word_ids(row), encoded.sequence_ids(row)))
        labels.append(
            [
                -100 if word is None or words[segment][word] == "-" else int(words[segment][word])
                for word, segment in tokens
            ]
        )
        kinds.append(
            [None if label == -100 else word_kinds[segment][word] for label, (word, segment) in zip(labels[-1], tokens)]
        )
    return encoded["input_ids"], labels, kinds


def _pair_labels(pairs: list[tuple[str, ...]]) -> list[int]:
    """Per pair: which segments hold a new word, as 2·first + second (0 neither, 1 second, 2 first, 3 both)."""
    return [2 * ("1" in labels_a.split()) + ("1" in labels_b.split()) for _, _, labels_a, labels_b, *_ in pairs]


def detection_stage(
    model, tokenizer, pairs: list[tuple[str, ...]], detection: DetectionSpec, device: torch.device, progress: bool
) -> dict:
    """Run the change-detection stage on ``model``'s encoder, on the training loop; return its loss curve and held-out
    scores."""
    ids, labels, kinds = _word_label_ids(tokenizer, pairs)
    pair_labels = _pair_labels(pairs)
    train_rows = len(ids) - detection.held_out

    def batch(rows) -> tuple[dict, torch.Tensor, torch.Tensor]:
        padded = tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt")
        width = padded["input_ids"].shape[1]
        targets = torch.tensor([labels[i] + [-100] * (width - len(labels[i])) for i in rows])
        pair_targets = torch.tensor([pair_labels[i] for i in rows])
        return {key: value.to(device) for key, value in padded.items()}, targets.to(device), pair_targets.to(device)

    plan = StepPlan(train_rows, detection.batch_size, detection.seed, steps=detection.steps, drop_last=True)
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = detection.dropout
    set_dropout(model, detection.dropout)
    with (
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        eager_attention_on_cpu(model, device),
    ):
        torch.manual_seed(detection.seed)
        heads = _DetectionHeads(model, detection.pair_weight).to(device)
        losses = train_loop(
            heads,
            plan,
            stage_optimizer(detection),
            heads.backward_fn(batch, detection),
            device,
            "detection stage",
            progress=progress,
        )
    held_out_kinds = [kind for row in kinds[train_rows:] for kind in row if kind is not None]
    scores = _held_out_scores(model, heads.word, heads.pair, batch, train_rows, len(ids), held_out_kinds)
    return {"detection_loss_every_100_steps": every_100(losses), **scores}


class _DetectionHeads(torch.nn.Module):
    """The encoder with the stage's heads: a word-level head (new word or not) and, with ``pair_weight``, a ``<s>``
    head."""

    def __init__(self, model, pair_weight: float):
        super().__init__()
        self.encoder = model.roberta
        self.word = torch.nn.Linear(model.config.hidden_size, 2)
        self.pair = torch.nn.Linear(model.config.hidden_size, 4) if pair_weight else None

    def backward_fn(self, batch, detection: DetectionSpec):
        def backward(rows: np.ndarray, step: int, weight: float) -> torch.Tensor:
            inputs, targets, pair_targets = batch(rows)
            with autocast_for(self.word.weight.device, cpu_bf16=detection.bf16):
                hidden = self.encoder(**inputs).last_hidden_state
                logits = self.word(hidden)
                pair_logits = self.pair(hidden[:, 0]) if self.pair is not None else None
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)
            if pair_logits is not None:
                loss = loss + detection.pair_weight * torch.nn.functional.cross_entropy(
                    pair_logits.float(), pair_targets
                )
            (loss * weight).backward()
            return loss.detach()

        return backward


def _held_out_scores(model, head, pair_head, batch, start: int, stop: int, kinds: list[str]) -> dict:
    """Recall of new words (overall and per kind) and false-positive rate on stated words, over pairs ``start:stop``.

    ``kinds`` names the kind of every labeled token of those pairs, in order. One overall
    recall can hide a kind of word the stage never learned (changed verbs once had recall
    0.00 inside an overall 0.77), so the recall of each kind is reported too. With a
    ``pair_head``, also the accuracy of its four-way verdict.
    """
    model.eval()
    predicted, truth, pair_hits = [], [], []
    with torch.no_grad():
        for first in range(start, stop, 250):
            inputs, targets, pair_targets = batch(range(first, min(first + 250, stop)))
            hidden = model.roberta(**inputs).last_hidden_state
            keep = targets != -100
            predicted.append(head(hidden).argmax(-1)[keep].cpu())
            truth.append(targets[keep].cpu())
            if pair_head is not None:
                pair_hits.append((pair_head(hidden[:, 0]).argmax(-1) == pair_targets).cpu())
    predicted, truth = torch.cat(predicted).numpy(), torch.cat(truth).numpy()
    kinds = np.array(kinds)
    new = truth == 1
    pair_accuracy = (
        {"detection_held_out_pair_accuracy": round(float(torch.cat(pair_hits).float().mean()), 4)} if pair_hits else {}
    )
    return {
        **pair_accuracy,
        "detection_held_out_recall": round(float(predicted[new].mean()), 4),
        "detection_held_out_false_positive_rate": round(float(predicted[~new].mean()), 4),
        "detection_held_out_recall_by_kind": {
            kind: round(float(predicted[new & (kinds == kind)].mean()), 4) for kind in sorted(set(kinds[new]))
        },
    }
