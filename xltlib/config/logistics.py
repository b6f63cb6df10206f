"""Logistics: how a run is computed (device, checkpoints, evaluation batches), never what it computes."""

from __future__ import annotations

from dataclasses import dataclass

from xltlib.config.checks import check_number


@dataclass(frozen=True)
class Logistics:
    """How a run is computed, never what: none of it is in a run's identity, so changing it renames no run.

    Attributes:
        device: ``cpu``, ``cuda``, ``cuda:1`` or ``None``/``auto`` (a GPU if there is one).
        checkpoint_every: optimizer steps between checkpoints (a resumed run loses at most this many).
        checkpoint_weights_only: leave AdamW's moments out of checkpoints (a third of the bytes; a run resumed
            from one is then not exact, and its log says so).
        eval_batch_size: examples per forward pass in evaluation, checkpoint selection and alignment.
    """

    device: str | None = None
    checkpoint_every: int = 1000
    checkpoint_weights_only: bool = False
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        check_number("checkpoint_every", self.checkpoint_every, int, low=1)
        check_number("eval_batch_size", self.eval_batch_size, int, low=1)
