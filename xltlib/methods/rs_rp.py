"""``rs_rp``: randomized smoothing by random perturbation of the input embeddings (Huang et al. 2021)."""

from __future__ import annotations

import torch

from xltlib.config.methods import RandomPerturbationParams
from xltlib.methods.base import Batch, ModelCall, Predictor, TrainingMethod
from xltlib.methods.perturbation import PerturbationSite


class RandomPerturbation(TrainingMethod):
    """Randomized smoothing by random perturbation: noise on the input embeddings in training.

    At test time, with ``eval_copies > 0``, the prediction is the majority vote of the
    model over that many noisy copies of each input (:func:`predict_smoothed`).
    """

    name = "rs_rp"

    Params = RandomPerturbationParams

    def backward(self, call: ModelCall, batch: Batch, scale: float) -> torch.Tensor:
        p = self.params
        site = PerturbationSite(call, batch, p.perturb_layer)
        loss = site.loss(site.noise(p.sigma, p.distribution))
        (loss * scale).backward()
        return loss.detach()

    def predictor(self) -> Predictor | None:
        p = self.params
        if p.eval_copies == 0:
            return None
        return lambda call, batch: predict_smoothed(
            call, batch, p.eval_copies, p.sigma, p.distribution, p.perturb_layer
        )


@torch.no_grad()
def predict_smoothed(
    call: ModelCall, batch: Batch, copies: int, sigma: float, distribution: str = "gaussian", layer: int | None = None
) -> torch.Tensor:
    """Majority vote of the classifier over ``copies`` noisy versions of each input.

    Ties go to the class with the larger summed probability. Returns class ids ``[batch]``.
    """
    site = PerturbationSite(call, batch, layer)
    votes, probabilities = None, None
    for _ in range(copies):
        logits = site.output(site.noise(sigma, distribution)).logits.float()
        one_hot = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
        votes = one_hot if votes is None else votes + one_hot
        probabilities = logits.softmax(-1) if probabilities is None else probabilities + logits.softmax(-1)
    return (votes + probabilities / (copies + 1)).argmax(-1)
