"""Checkpoint selection on the source language's dev split (the published scripts keep the best checkpoint).

At the steps :func:`xltlib.training.selection_steps` names (every ``select_every_steps``
steps, or each epoch's end) the model is scored on the source language's dev split; the best
weights so far are kept in ``best.pt`` beside the run's checkpoint (written atomically and
recorded in the folder's checksums.json, so a resumed run still knows its best), and
:meth:`BestOnSourceDev.restore` checks and loads them when training ends. Only the source
language is looked at: choosing on target-language data would no longer be zero-shot.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch

from xltlib.errors import XltError
from xltlib.evaluation.accuracy import accuracy, predict
from xltlib.integrity import damage, write_recorded

log = logging.getLogger(__name__)


class BestOnSourceDev:
    """Keeps the weights with the best source-dev accuracy among those scored (ties: the earlier step)."""

    def __init__(
        self,
        model,
        tokenizer,
        dev: pd.DataFrame,
        max_length: int,
        device: torch.device,
        path: Path,
        batch_size: int = 64,
    ):
        self.model, self.tokenizer, self.dev = model, tokenizer, dev
        self.max_length, self.device, self.path, self.batch_size = max_length, device, Path(path), batch_size
        # mmap: a resumed run needs the best accuracy so far, not the weights stored beside it
        self.best = (
            torch.load(self.path, mmap=True, weights_only=False)["accuracy"] if self.path.exists() else float("-inf")
        )

    def __call__(self, step: int) -> None:
        score = accuracy(
            predict(self.model, self.tokenizer, self.dev, self.max_length, self.device, self.batch_size), self.dev
        )
        log.info("step %d: source dev accuracy %.4f (best so far %.4f)", step, score, max(score, self.best))
        if score > self.best:
            self.best = score
            state = {
                "step": step,
                "accuracy": score,
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            }
            write_recorded(self.path, lambda handle: torch.save(state, handle))

    def restore(self) -> int:
        """Load the best weights into the model; return the step they were scored at."""
        if damaged := damage(self.path.parent, [self.path.name]):  # checked in full: read once per run
            raise XltError(
                f"{damaged[0]}: the best weights on source dev are lost; run the run again: its training restarts "
                "from scratch (the damaged file is then set aside)"
            )
        state = torch.load(self.path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        log.info("selected the model of step %d (source dev accuracy %.4f)", state["step"], state["accuracy"])
        return state["step"]
