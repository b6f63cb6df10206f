"""The one training loop, and fine-tuning on top of it.

Fine-tuning (:func:`fit`), masked-LM pre-training and the detection stage
(:mod:`xltlib.synthetic.pretraining`, :mod:`xltlib.synthetic.detection`) all run
:func:`train_loop`: AdamW with a linear warm-up and decay, gradient clipping, gradient
accumulation over micro-batches, a progress bar, and optional checkpoint and resume. A
stage supplies only a :class:`StepPlan` (which rows each step sees), its
:class:`OptimizerSettings` and a ``backward(rows, step, weight)`` function that leaves
``weight`` × the gradient of its micro-batch's loss in ``.grad`` and returns the loss.
Fine-tuning's ``backward`` is the training method's (:mod:`xltlib.methods`), so the loop
never branches on the method.

Data order depends only on (seed, epoch), and the checkpoint holds the RNG states, so a
resumed run reproduces an uninterrupted one exactly on CPU.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from xltlib.config import RunConfig
from xltlib.data.batches import TrainingData
from xltlib.errors import XltError
from xltlib.integrity import write_recorded
from xltlib.methods import ModelCall, make_method
from xltlib.models import autocast_for

log = logging.getLogger(__name__)

Backward = Callable[[np.ndarray, int, float], torch.Tensor]
"""``backward(rows, step, weight)``: accumulate ``weight`` × d(loss)/d(parameters); return the detached loss."""


class NonFiniteLossError(XltError):
    """Training produced a NaN or infinite loss."""


class StepPlan:
    """Which rows each optimizer step sees: a fresh order per epoch, fixed by ``seed``.

    Args:
        n_examples: rows to draw from.
        batch_size: rows per optimizer step, split into ``grad_accum_steps`` micro-batches.
        seed: fixes every epoch's order (with the epoch number).
        epochs: how long to train, in passes (fractions round up to whole steps); or
        steps: how long to train, in optimizer steps.
        grad_accum_steps: micro-batches per step; must divide ``batch_size``.
        drop_last: full batches only (an epoch's ragged last batch is left out).
        lengths: one length per row: each epoch's order is then Hugging Face's
            ``group_by_length`` order (shuffled, then sorted by length within mega-batches
            of 50 batches), so a batch pads less.
    """

    def __init__(
        self,
        n_examples: int,
        batch_size: int,
        seed: int,
        epochs: float | None = None,
        steps: int | None = None,
        grad_accum_steps: int = 1,
        drop_last: bool = False,
        lengths: Sequence[int] | None = None,
    ):
        if (epochs is None) == (steps is None):
            raise ValueError("give StepPlan either epochs or steps")
        if n_examples < batch_size if drop_last else n_examples < 1:
            raise XltError(f"{n_examples} rows are fewer than one batch of {batch_size}")
        self.n_examples, self.batch_size, self.seed = n_examples, batch_size, seed
        self.epochs, self.steps, self.grad_accum_steps = epochs, steps, grad_accum_steps
        self.drop_last, self.lengths = drop_last, lengths
        self._order: tuple[int, np.ndarray] | None = None

    @property
    def steps_per_epoch(self) -> int:
        return self.n_examples // self.batch_size if self.drop_last else math.ceil(self.n_examples / self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.steps if self.steps is not None else max(1, math.ceil(self.epochs * self.steps_per_epoch))

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The rows of ``epoch`` in the order they are drawn (cached: steps ask for one epoch at a time)."""
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, self._draw_order(epoch))
        return self._order[1]

    def _draw_order(self, epoch: int) -> np.ndarray:
        if self.lengths is None:
            return np.random.default_rng([self.seed, epoch]).permutation(self.n_examples)
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        return np.asarray(get_length_grouped_indices(list(self.lengths), self.batch_size, generator=generator))

    def micro_batches(self, step: int) -> list[np.ndarray]:
        """Row indices of the micro-batches of optimizer step ``step`` (0-based)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        batch = self.epoch_order(epoch)[position * self.batch_size : (position + 1) * self.batch_size]
        micro_size = self.batch_size // self.grad_accum_steps
        return [batch[i : i + micro_size] for i in range(0, len(batch), micro_size)]


@dataclass(frozen=True)
class OptimizerSettings:
    """AdamW and its schedule, as one stage trains.

    Attributes:
        learning_rate: peak learning rate (linear warm-up, then linear decay to 0).
        weight_decay: AdamW weight decay.
        warmup_ratio: fraction of the steps spent warming up.
        max_grad_norm: gradient clipping threshold (L2 norm over all parameters).
        decay_everything: also decay biases and normalisation weights. Fine-tuning follows
            BERT and does not; the shipped encoders' pre-training stages did (their recipe,
            ``ENCODER_RECIPE_VERSION`` 5, is kept so that the shipped draws stay rebuildable).
        fused: AdamW's fused kernel; ``None``: on CUDA only. The pre-training stages use it
            on CPU too, as the shipped encoders were built.
    """

    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    max_grad_norm: float = 1.0
    decay_everything: bool = False
    fused: bool | None = None

    @classmethod
    def of_run(cls, config: RunConfig) -> OptimizerSettings:
        """Fine-tuning's settings: the run's, with BERT's convention of no decay on biases and normalisation weights."""
        return cls(config.learning_rate, config.weight_decay, config.warmup_ratio, config.max_grad_norm)


def make_optimizer(module: torch.nn.Module, settings: OptimizerSettings) -> torch.optim.AdamW:
    """AdamW over ``module``'s trainable parameters, by :attr:`OptimizerSettings.decay_everything`."""
    parameters = [parameter for parameter in module.parameters() if parameter.requires_grad]
    if settings.decay_everything:
        groups = [{"params": parameters, "weight_decay": settings.weight_decay}]
    else:
        groups = [
            {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": settings.weight_decay},
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
        ]
    fused = all(parameter.is_cuda for parameter in parameters) if settings.fused is None else settings.fused
    return torch.optim.AdamW(groups, lr=settings.learning_rate, fused=fused)


def accumulate_gradients(
    backward: Backward, micro_batches: list[np.ndarray], step: int, device: torch.device
) -> torch.Tensor:
    """Run one optimizer step's micro-batches, each weighted by its share of rows; return the mean loss (on the
    device)."""
    rows = sum(len(micro) for micro in micro_batches)
    total = torch.zeros((), device=device)
    for micro in micro_batches:
        weight = len(micro) / rows
        total += backward(micro, step, weight).float() * weight
    return total


class LossLog:
    """Step losses kept on the device and read back in groups.

    Reading a loss forces the host to wait for the GPU; doing it once per group rather than
    once per step lets the host queue work ahead. A non-finite loss still names its step,
    and the loop flushes before every checkpoint, so no checkpoint holds a diverged model.
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
                rows = np.concatenate(self.plan.micro_batches(step))
                raise NonFiniteLossError(
                    f"loss is {value} at optimizer step {step + 1} (rows {rows[:8].tolist()}"
                    f"{'…' if len(rows) > 8 else ''}): lower the learning rate or check these inputs"
                )
        self.values += values


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, step: int, module, optimizer, scheduler, weights_only: bool = False) -> None:
    """Write the training state atomically (a crash mid-write keeps the previous one), recorded in its folder's
    checksums.json as it is written; ``weights_only`` leaves out AdamW's moments, two thirds of the bytes."""
    state = {
        "step": step,
        "model": module.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
    }
    if not weights_only:
        state["optimizer"] = optimizer.state_dict()
    write_recorded(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path, module, optimizer, scheduler, device: torch.device) -> int:
    """Restore the training state from ``path``; return the number of steps already done.

    A weights-only checkpoint restarts AdamW's moments at zero: the resumed run then differs
    from an uninterrupted one, which the log says.
    """
    state = torch.load(path, map_location=device, weights_only=False)
    module.load_state_dict(state["model"])
    if "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    else:
        log.warning("%s holds weights only: AdamW's moments restart at zero (not an exact resume)", path)
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state["step"]


@dataclass(frozen=True)
class Checkpointing:
    """Where a stage's training state is saved, how often (optimizer steps), and whether without AdamW's moments.

    Logistics, not part of a run's identity: a resumed run is exact only from full checkpoints.
    """

    path: Path
    every: int = 200
    weights_only: bool = False


def train_loop(
    module: torch.nn.Module,
    plan: StepPlan,
    settings: OptimizerSettings,
    backward: Backward,
    device: torch.device,
    desc: str,
    checkpoint: Checkpointing | None = None,
    progress: bool = True,
    after_step: Callable[[int], None] | None = None,
) -> list[float]:
    """Train ``module``'s parameters for ``plan.total_steps`` steps; return the loss of every step run in this call.

    With ``checkpoint``, an existing checkpoint is resumed, one is written every
    ``checkpoint.every`` steps, and a last one when training ends (so a failure after
    training never costs the training). ``after_step(steps done)`` runs after every optimizer step.
    """
    optimizer = make_optimizer(module, settings)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(settings.warmup_ratio * plan.total_steps), plan.total_steps
    )
    start = 0
    if checkpoint is not None and checkpoint.path.exists():
        start = load_checkpoint(checkpoint.path, module, optimizer, scheduler, device)
        log.info("resuming from checkpoint %s at step %d/%d", checkpoint.path, start, plan.total_steps)
    module.train()
    losses = LossLog(plan)
    bar = tqdm(
        range(start, plan.total_steps), desc, plan.total_steps, initial=start, disable=not progress, mininterval=1
    )
    for step in bar:
        losses.add(step, _step_gradients(module, plan, backward, step, device))
        _optimizer_step(module, optimizer, scheduler, settings.max_grad_norm)
        if not losses.pending:
            bar.set_postfix(loss=f"{losses.values[-1]:.4f}", refresh=False)
        done = step + 1
        if after_step is not None:
            after_step(done)
        if checkpoint is not None and done % checkpoint.every == 0 and done < plan.total_steps:
            losses.flush()
            save_checkpoint(checkpoint.path, done, module, optimizer, scheduler, checkpoint.weights_only)
            log.info("checkpoint at step %d/%d", done, plan.total_steps)
    losses.flush()
    if checkpoint is not None and start < plan.total_steps:
        save_checkpoint(checkpoint.path, plan.total_steps, module, optimizer, scheduler, checkpoint.weights_only)
    return losses.values


def _step_gradients(module: torch.nn.Module, plan: StepPlan, backward: Backward, step: int, device) -> torch.Tensor:
    """One step's gradients. Out of GPU memory, the step is split into more micro-batches and run again; the
    split is kept for the steps after (the gradient is the same: micro-batches are weighted by their rows)."""
    while True:
        try:
            return accumulate_gradients(backward, plan.micro_batches(step), step, device)
        except torch.OutOfMemoryError:
            finer = [n for n in range(2 * plan.grad_accum_steps, plan.batch_size + 1) if plan.batch_size % n == 0]
            if not finer:
                raise
            module.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning(
                "out of GPU memory at step %d with micro-batches of %d: splitting each step into %d",
                step + 1,
                plan.batch_size // plan.grad_accum_steps,
                finer[0],
            )
            plan.grad_accum_steps = finer[0]


def _optimizer_step(module: torch.nn.Module, optimizer, scheduler, max_grad_norm: float) -> None:
    torch.nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def selection_steps(plan: StepPlan, every: int | None) -> set[int]:
    """The optimizer steps (counted from 1) after which the model is scored on source dev.

    Every ``every`` steps, as the published scripts score each checkpoint they save; ``None``: each epoch's last
    step (and the last step of a fractional last epoch). A run too short to reach ``every`` scores its last model,
    so that there is always one to keep.
    """
    if every is not None:
        return set(range(every, plan.total_steps + 1, every)) or {plan.total_steps}
    ends = set(range(plan.steps_per_epoch, plan.total_steps + 1, plan.steps_per_epoch))
    return ends | {plan.total_steps}


def fit(
    model,
    tokenizer,
    train: pd.DataFrame | TrainingData,
    config: RunConfig,
    checkpoint: Checkpointing,
    device: torch.device,
    on_select: Callable[[int], None] | None = None,
) -> list[float]:
    """Fine-tune ``model`` in place on the ``train`` pairs by ``config.method``; resume from ``checkpoint`` if present.

    ``train`` is a frame of pairs (the method turns it into batches: tokenized once, or
    rewritten on the fly by ``rs_da``) or ready :class:`~xltlib.data.batches.TrainingData`.
    ``on_select(step)`` runs after each step of :func:`selection_steps` (``config.select_every_steps``), steps
    counted from 1. Returns the loss of every optimizer step run in this call.
    """
    method = make_method(config.method, config.method_params)
    data = method.training_data(train, tokenizer, config, device) if isinstance(train, pd.DataFrame) else train
    plan = StepPlan(
        len(data),
        config.batch_size,
        config.seed,
        epochs=config.epochs * method.epochs_factor,
        grad_accum_steps=config.grad_accum_steps,
        lengths=data.lengths() if config.group_by_length else None,
    )
    call = ModelCall(model, lambda: autocast_for(device))
    chosen = selection_steps(plan, config.select_every_steps) if on_select is not None else set()

    def backward(rows: np.ndarray, step: int, weight: float) -> torch.Tensor:
        return method.backward(call, data.batch(rows, step), scale=weight)

    def after_step(done: int) -> None:
        if done in chosen:
            on_select(done)

    return train_loop(
        model,
        plan,
        OptimizerSettings.of_run(config),
        backward,
        device,
        f"train {config.method}",
        checkpoint,
        after_step=after_step,
    )
