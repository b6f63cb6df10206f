"""What a training method is: one batch's loss and gradients, computed however the method likes.

The training loop never branches on the method. It hands a method a :class:`ModelCall`
(the model under the right autocast) and a batch; the method runs as many forward and
backward passes as it needs and leaves the parameter gradients in ``.grad``. This is what
lets FreeLB accumulate gradients over its ascent steps and PGD take gradients with respect
to the perturbation only, without the loop knowing. A method may also supply its own
training batches (``rs_da`` rewrites the text) and its own test-time prediction
(``rs_rp``'s smoothed vote).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from xltlib.config.methods import MethodParams, StepMatchedParams
from xltlib.data.batches import TokenizedPairs, TrainingData

if TYPE_CHECKING:
    from xltlib.config import RunConfig


Batch = dict[str, torch.Tensor]


Predictor = Callable[["ModelCall", Batch], torch.Tensor]
"""``predict(call, batch)`` → predicted class ids ``[batch]``."""


class ModelCall:
    """The model under the right autocast: ``call(batch, **overrides)`` returns its output."""

    def __init__(self, model: torch.nn.Module, autocast: Callable[[], Any] = nullcontext):
        self.model, self.autocast = model, autocast

    def __call__(self, batch: Batch, **overrides) -> Any:
        with self.autocast():
            return self.model(**batch, **overrides)


class TrainingMethod:
    """Base class: a named method and its parameters' model (:mod:`xltlib.config.methods`)."""

    name: ClassVar[str]

    Params = MethodParams

    def __init__(self, params: MethodParams):
        self.params = params

    def backward(self, call: ModelCall, batch: Batch, scale: float) -> torch.Tensor:
        """Accumulate ``scale`` × d(loss)/d(weights) into ``.grad``; return the detached loss."""
        raise NotImplementedError

    @property
    def epochs_factor(self) -> float:
        """The run's epochs are multiplied by this (1 but for the step-matched ``standard`` arm)."""
        return 1.0

    def training_data(self, frame, tokenizer, config: RunConfig, device: torch.device) -> TrainingData:
        """Where the loop's batches come from: the training pairs, tokenized once."""
        return TokenizedPairs(tokenizer, frame, config.max_seq_length, device)

    def predictor(self) -> Predictor | None:
        """Test-time prediction other than the argmax of the logits (``None``: the argmax)."""
        return None


class Standard(TrainingMethod):
    """Plain cross-entropy fine-tuning: one forward, one backward."""

    name = "standard"

    def backward(self, call: ModelCall, batch: Batch, scale: float) -> torch.Tensor:
        loss = call(batch).loss
        (loss * scale).backward()
        return loss.detach()


class StepMatchedStandard(Standard):
    """``standard`` for as many optimizer steps as ``rs_da`` takes over its offline copies (``epochs_factor``).

    RS-DA's copies multiply the training set, hence its steps; this arm trains as long on the
    original pairs, so that a gain of ``rs_da`` over it is the substitutions', not the extra steps'.
    """

    name = "standard_matched"

    Params = StepMatchedParams

    @property
    def epochs_factor(self) -> float:
        return self.params.epochs_factor
