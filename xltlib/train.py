"""The fine-tuning loop: AdamW, linear schedule, clipping, accumulation, checkpoint + resume.

The loop is method-agnostic: a :class:`~xltlib.robust.TrainingMethod` computes each
micro-batch's gradients. Data order depends only on (seed, epoch), and the checkpoint
holds the RNG states, so a resumed run reproduces an uninterrupted one exactly on CPU.
"""

from __future__ import annotations

import logging
import math
import os
import random
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .batches import TrainingData
from .config import RunConfig
from .errors import XltError
from .robust import ModelCall, TrainingMethod, make_method

log = logging.getLogger(__name__)


class NonFiniteLossError(XltError):
    """Training produced a NaN or infinite loss."""


def autocast_for(device: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on CUDA; on CPU only with ``cpu_bf16``, full precision otherwise.

    CPU bf16 pays off only where the CPU computes it natively (AVX512-BF16, AMX): there a
    masked-LM step of the synthetic encoder ran 1.5× faster (benchmarks/pretrain_step.py);
    elsewhere it is emulated and slower. So it is opt-in, per recipe, never automatic.
    """
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cpu_bf16 and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


@dataclass(frozen=True)
class StepPlan:
    """Which examples each optimizer step sees: a fresh permutation per epoch, fixed by seed."""

    n_examples: int
    batch_size: int
    grad_accum_steps: int
    epochs: float
    seed: int

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_examples / self.batch_size)

    @property
    def total_steps(self) -> int:
        return max(1, math.ceil(self.epochs * self.steps_per_epoch))

    def micro_batches(self, step: int) -> list[np.ndarray]:
        """Example indices of the micro-batches of optimizer step ``step`` (0-based)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_examples)
        batch = order[position * self.batch_size : (position + 1) * self.batch_size]
        micro_size = self.batch_size // self.grad_accum_steps
        return [batch[i : i + micro_size] for i in range(0, len(batch), micro_size)]


def make_optimizer(model: torch.nn.Module, config: RunConfig) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases and normalisation weights (BERT convention).

    On CUDA the fused kernel updates all parameters in a few launches instead of several per tensor.
    """
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    on_cuda = all(parameter.is_cuda for parameter in decay + no_decay)
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=on_cuda)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, step: int, model, optimizer, scheduler) -> None:
    """Write the full training state atomically: a crash mid-write keeps the previous one."""
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model, optimizer, scheduler, device: torch.device) -> int:
    """Restore the training state from ``path``; return the number of steps already done."""
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return state["step"]


def _train_step(
    method: TrainingMethod,
    call: ModelCall,
    data: TrainingData,
    micro_batches: list[np.ndarray],
    step: int,
    device: torch.device,
) -> torch.Tensor:
    """Accumulate the gradients of one optimizer step; return its mean loss (on the device)."""
    n_batch = sum(len(micro) for micro in micro_batches)
    total = torch.zeros((), device=device)
    for micro in micro_batches:
        weight = len(micro) / n_batch
        total += method.backward(call, data.batch(micro, step), scale=weight).float() * weight
    return total


class LossLog:
    """Step losses kept on the device and read back in groups.

    Reading a loss forces the host to wait for the GPU; doing it once per group rather than
    once per step lets the host queue work ahead. A non-finite loss still names its step,
    and :func:`fit` flushes before every checkpoint, so no checkpoint holds a diverged model.
    """

    def __init__(self, plan: StepPlan, every: int = 16):
        self.plan, self.every = plan, every
        self.pending: list[tuple[int, torch.Tensor]] = []
        self.values: list[float] = []

    def add(self, step: int, loss: torch.Tensor) -> None:
        self.pending.append((step, loss))
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        steps = [step for step, _ in self.pending]
        values = torch.stack([loss for _, loss in self.pending]).tolist()
        self.pending = []
        for step, value in zip(steps, values):
            if not math.isfinite(value):
                examples = np.concatenate(self.plan.micro_batches(step))
                raise NonFiniteLossError(
                    f"loss is {value} at optimizer step {step + 1} (examples {examples[:8].tolist()}"
                    f"{'…' if len(examples) > 8 else ''}): lower the learning rate or check these inputs"
                )
        self.values += values


def fit(
    model,
    tokenizer,
    train: pd.DataFrame | TrainingData,
    config: RunConfig,
    checkpoint_path: Path,
    device: torch.device,
    checkpoint_every: int = 200,
) -> list[float]:
    """Fine-tune ``model`` in place on the ``train`` pairs; resume from ``checkpoint_path`` if present.

    ``train`` is a frame of pairs (the method turns it into batches: tokenized once, or
    rewritten on the fly by ``rs_da``) or ready :class:`~xltlib.batches.TrainingData`.
    Returns the loss of every optimizer step run in this call.
    """
    method = make_method(config.method, config.method_params)
    data = method.training_data(train, tokenizer, config, device) if isinstance(train, pd.DataFrame) else train
    plan = StepPlan(len(data), config.batch_size, config.grad_accum_steps, config.epochs, config.seed)
    optimizer = make_optimizer(model, config)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(config.warmup_ratio * plan.total_steps), plan.total_steps
    )
    start = 0
    if checkpoint_path.exists():
        start = load_checkpoint(checkpoint_path, model, optimizer, scheduler, device)
        log.info("resuming from checkpoint %s at step %d/%d", checkpoint_path, start, plan.total_steps)
    call = ModelCall(model, lambda: autocast_for(device))
    model.train()
    losses = LossLog(plan)
    progress = tqdm(
        range(start, plan.total_steps), initial=start, total=plan.total_steps, desc=f"train {config.method}", mininterval=1.0
    )
    for step in progress:
        loss = _train_step(method, call, data, plan.micro_batches(step), step, device)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.add(step, loss)
        done = step + 1
        if not losses.pending:
            progress.set_postfix(loss=f"{losses.values[-1]:.4f}", refresh=False)
        if done % checkpoint_every == 0 and done < plan.total_steps:
            losses.flush()
            save_checkpoint(checkpoint_path, done, model, optimizer, scheduler)
            log.info("checkpoint at step %d/%d", done, plan.total_steps)
    losses.flush()
    if start < plan.total_steps:  # so a failure in evaluation or alignment never costs the training
        save_checkpoint(checkpoint_path, plan.total_steps, model, optimizer, scheduler)
    return losses.values
