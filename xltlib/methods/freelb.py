"""``freelb``: FreeLB adversarial training (Zhu et al., ICLR 2020)."""

from __future__ import annotations

import torch

from xltlib.config.methods import FreeLBParams
from xltlib.methods.base import Batch, ModelCall, TrainingMethod
from xltlib.methods.perturbation import PerturbationSite


class FreeLB(TrainingMethod):
    """FreeLB (Zhu et al. 2020): K ascent steps whose weight gradients are all kept.

    Each step is a full forward/backward of loss / K at the current δ; δ then moves by
    ``alpha`` along its gradient normalised per example (Frobenius norm over the example's
    tokens) and, if ``eps > 0``, is projected back per example. One optimizer step
    follows. Per-example norms are divided by √(tokens) so that ``eps`` and ``alpha`` are
    per-token sizes, comparable with ``pgd``'s.
    """

    name = "freelb"

    Params = FreeLBParams

    @staticmethod
    def _example_norms(delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-example RMS token norm ``‖δ‖_F / √tokens``, shaped ``[batch, 1, …]`` like ``delta``.

        A multiple-choice example's tokens are those of all its choices.
        """
        tokens = mask.flatten(1).sum(dim=1).clamp_min(1)
        norms = delta.flatten(1).norm(dim=1) / tokens.sqrt()
        return norms.view(-1, *([1] * (delta.ndim - 1)))

    def initial_delta(self, site: PerturbationSite) -> torch.Tensor:
        return site.uniform_in_ball(self.params.init_mag, "linf")

    def ascend(self, delta: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One FreeLB update of δ: normalised per-example gradient step, then per-example projection."""
        p = self.params
        delta = delta + p.alpha * grad / self._example_norms(grad, mask).clamp_min(1e-12)
        if p.eps > 0:
            delta = delta * (p.eps / self._example_norms(delta, mask).clamp_min(1e-12)).clamp(max=1.0)
        return delta * mask

    def backward(self, call: ModelCall, batch: Batch, scale: float) -> torch.Tensor:
        steps = self.params.steps
        site = PerturbationSite(call, batch, None)
        delta = self.initial_delta(site)
        losses = []
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = site.loss(delta)
            (loss * (scale / steps)).backward()
            losses.append(loss.detach())
            delta = self.ascend(delta.detach(), delta.grad, site.mask)
        return torch.stack(losses).mean()
