"""``pgd``: projected-gradient adversarial training on the input embeddings (Madry et al. 2018)."""

from __future__ import annotations

import torch

from xltlib.config.methods import PGDParams
from xltlib.methods.base import Batch, ModelCall, TrainingMethod
from xltlib.methods.perturbation import PerturbationSite, ascent_step, project


class PGD(TrainingMethod):
    """Adversarial training (Madry et al. 2018) on the input embeddings.

    K projected ascent steps on δ from a random start in the ball, each taking the gradient
    with respect to δ only (no weight gradients), then one training pass on the
    adversarial example, plus the clean loss unless ``adversarial_only``.
    """

    name = "pgd"

    Params = PGDParams

    def adversarial_delta(self, site: PerturbationSite) -> torch.Tensor:
        """δ after K projected ascent steps; padding stays 0 and δ stays in its ball."""
        p = self.params
        delta = site.uniform_in_ball(p.eps, p.norm)
        for _ in range(p.steps):
            delta.requires_grad_(True)
            (grad,) = torch.autograd.grad(site.loss(delta), delta)
            delta = project(ascent_step(delta.detach(), grad, p.alpha, p.norm), p.eps, p.norm) * site.mask
        return delta

    def backward(self, call: ModelCall, batch: Batch, scale: float) -> torch.Tensor:
        p = self.params
        site = PerturbationSite(call, batch, p.perturb_layer)
        delta = self.adversarial_delta(site)
        adversarial = site.loss(delta)
        (adversarial * (p.adv_weight * scale)).backward()
        total = p.adv_weight * adversarial.detach()
        if not p.adversarial_only:
            clean = call(batch).loss
            (clean * scale).backward()
            total = total + clean.detach()
        return total
