"""Masked-LM pre-training of a tiny XLM-R from scratch, on the one training loop (:mod:`xltlib.training`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedModel, XLMRobertaForMaskedLM

from xltlib.models import autocast_for, cpu_has_native_bf16
from xltlib.synthetic.recipe import DetectionSpec, PretrainSpec
from xltlib.training import OptimizerSettings, StepPlan, train_loop

log = logging.getLogger(__name__)


def warn_if_bf16_is_emulated(device: torch.device, *specs: PretrainSpec | DetectionSpec) -> None:
    """Warn when a spec asks for bf16 on a CPU that lacks native bf16: it still trains alike, only slower."""
    wanted = device.type == "cpu" and any(spec.bf16 and spec.steps for spec in specs)
    if wanted and not cpu_has_native_bf16():
        log.warning(
            "this CPU has no native bf16 (AVX512-BF16 or AMX), so the build's bf16 autocast is emulated: "
            "expect it to take several times longer than the book's speed chapter"
        )


def every_100(losses: list[float]) -> list[float]:
    return [round(float(np.mean(losses[i : i + 100])), 4) for i in range(0, len(losses), 100)]


def masked_lm_stage(
    model, tokenizer, documents: list[tuple[str, ...]], pretraining: PretrainSpec, device: torch.device, progress: bool
) -> list[float]:
    """Run the masked-LM optimizer steps on the training loop; return every step's loss."""
    ids = _token_ids(tokenizer, documents)
    collate = DataCollatorForLanguageModeling(
        tokenizer, mlm_probability=pretraining.mask_probability, seed=pretraining.seed
    )
    plan = StepPlan(
        len(ids),
        pretraining.batch_size,
        pretraining.seed,
        steps=pretraining.steps,
        drop_last=True,
        lengths=[len(row) for row in ids] if pretraining.group_by_length else None,
    )

    def backward(rows: np.ndarray, step: int, weight: float) -> torch.Tensor:
        batch = {key: value.to(device) for key, value in collate([{"input_ids": ids[i]} for i in rows]).items()}
        with autocast_for(device, cpu_bf16=pretraining.bf16):
            loss = masked_lm_loss(model, batch)
        (loss * weight).backward()
        return loss.detach()

    model.train()
    with (
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        _dropout(model, pretraining.dropout),
        eager_attention_on_cpu(model, device),
    ):
        torch.manual_seed(pretraining.seed)
        return train_loop(
            model, plan, stage_optimizer(pretraining), backward, device, "pre-train MLM", progress=progress
        )


def stage_optimizer(spec: PretrainSpec | DetectionSpec) -> OptimizerSettings:
    """A pre-training stage's optimizer, as the shipped encoders were built: every weight decayed, the fused kernel,
    clipping at 1."""
    return OptimizerSettings(
        spec.learning_rate, spec.weight_decay, spec.warmup_ratio, max_grad_norm=1.0, decay_everything=True, fused=True
    )


def _token_ids(tokenizer, documents: list[tuple[str, ...]]) -> list[list[int]]:
    """Token ids of every document: one text, or a pair in XLM-R's pair template (batched: they tokenize separately)."""
    ids: list[list[int]] = [[] for _ in documents]
    for segments in (1, 2):
        rows = [i for i, document in enumerate(documents) if len(document) == segments]
        if rows:
            columns = [list(column) for column in zip(*(documents[i] for i in rows))]
            for i, row_ids in zip(rows, tokenizer(*columns, truncation=True)["input_ids"]):
                ids[i] = row_ids
    return ids


def masked_lm_loss(model: XLMRobertaForMaskedLM, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``model(**batch).loss``, with the LM head applied to the masked tokens only.

    The head works token by token, so the loss is the same; it just skips projecting onto the
    vocabulary the 85% of tokens that have nothing to predict (the sparse prediction of
    "Cramming"), which saves a fifth of a synthetic-encoder step (benchmarks/pretrain_step.py).
    """
    hidden = model.roberta(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    predicted = batch["labels"] != -100
    logits = model.lm_head(hidden[predicted])
    full_precision = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 logits up, float64 kept
    return torch.nn.functional.cross_entropy(full_precision, batch["labels"][predicted])


def set_dropout(model: torch.nn.Module, probability: float) -> list[tuple[torch.nn.Dropout, float]]:
    """Set every dropout layer of ``model`` to ``probability``; return each layer with its previous value."""
    layers = [(module, module.p) for module in model.modules() if isinstance(module, torch.nn.Dropout)]
    for layer, _ in layers:
        layer.p = probability
    return layers


@contextmanager
def _dropout(model: torch.nn.Module, probability: float) -> Iterator[None]:
    """Every dropout layer of ``model`` at ``probability`` inside the block; the config and the layers' own values are
    kept."""
    kept = set_dropout(model, probability)
    try:
        yield
    finally:
        for layer, p in kept:
            layer.p = p


@contextmanager
def eager_attention_on_cpu(model: PreTrainedModel, device: torch.device) -> Iterator[None]:
    """Eager attention inside the block when training on CPU; the model's own choice is restored after.

    The same attention, computed differently: on this project's CPU, a bf16 masked-LM step of
    the synthetic encoder took 8% longer with SDPA than with eager attention, and 2.3× as long
    without dropout (one probe, 2026-11-26); in full precision the two are on par.
    """
    if device.type != "cpu":
        yield
        return
    kept = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(kept)
