"""Where a perturbation enters the model, and its geometry (balls, projections, ascent steps, noise).

**Scale.** Perturbation sizes (``eps``, ``alpha``, ``sigma``) are relative: a perturbation
of a token's state is measured in units of the mean L2 norm of the batch's (non-padding)
token states at the perturbed site — the input embeddings by default. So ``eps=0.1`` means
the same for a 128-wide synthetic encoder and for XLM-R large.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from xltlib.config.methods import Norm
from xltlib.errors import XltError
from xltlib.methods.base import Batch, ModelCall


def token_mask(batch: Batch) -> torch.Tensor:
    """``[batch, tokens, 1]`` float mask: 1 on real tokens, 0 on padding."""
    return batch["attention_mask"].unsqueeze(-1).float()


def mean_token_norm(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean L2 norm of the non-padding token vectors (detached): the unit of perturbations."""
    norms = states.detach().float().norm(dim=-1, keepdim=True)
    return (norms * mask).sum() / mask.sum().clamp_min(1)


class PerturbationSite:
    """Runs the model with a perturbation ``delta`` (relative units) added at one place.

    ``layer=None``: the word embeddings (``model.get_input_embeddings()`` output, passed as
    ``inputs_embeds``). A multiple-choice batch (``[batch, choices, tokens]``) is perturbed per
    choice, like any other. ``layer=k``: the output of encoder layer ``k``, via a forward hook.
    Either way the absolute perturbation is ``delta`` × the mean token norm at the site,
    and padding positions are never perturbed.
    """

    def __init__(self, call: ModelCall, batch: Batch, layer: int | None):
        self.call, self.batch, self.layer = call, batch, layer
        embeddings = call.model.get_input_embeddings()
        self.dtype = embeddings.weight.dtype  # float32 under bf16 autocast too: δ stays precise
        self.mask = token_mask(batch).to(self.dtype)
        self.shape = (*batch["input_ids"].shape, embeddings.embedding_dim)
        if layer is not None:
            layers = encoder_layers(call.model)
            if not -len(layers) <= layer < len(layers):
                raise XltError(f"perturb_layer={layer} but the model has {len(layers)} layers (0…{len(layers) - 1})")
            self.module = layers[layer]

    def zeros(self) -> torch.Tensor:
        return torch.zeros(self.shape, device=self.mask.device, dtype=self.dtype)

    def uniform_in_ball(self, radius: float, norm: Norm) -> torch.Tensor:
        return uniform_in_ball(self.shape, radius, norm, self.mask.device, self.dtype) * self.mask

    def noise(self, sigma: float, distribution: str) -> torch.Tensor:
        return sample_noise(self.shape, sigma, distribution, self.mask.device, self.dtype) * self.mask

    def output(self, delta: torch.Tensor) -> Any:
        """The model's output with ``delta`` added at the site (gradients flow to both)."""
        delta = delta * self.mask
        if self.layer is None:
            embeds = self.call.model.get_input_embeddings()(self.batch["input_ids"])
            inputs = {key: value for key, value in self.batch.items() if key != "input_ids"}
            return self.call(inputs, inputs_embeds=embeds + delta * mean_token_norm(embeds, self.mask))

        def add_delta(module, args, output):
            states = output[0] if isinstance(output, tuple) else output
            # a multiple-choice model runs its choices as rows of one batch: [batch × choices, tokens, d]
            mask = self.mask.reshape(*states.shape[:-1], 1)
            states = states + (delta.reshape(states.shape) * mean_token_norm(states, mask)).to(states.dtype)
            return (states, *output[1:]) if isinstance(output, tuple) else states

        handle = self.module.register_forward_hook(add_delta)
        try:
            return self.call(self.batch)
        finally:
            handle.remove()

    def loss(self, delta: torch.Tensor) -> torch.Tensor:
        return self.output(delta).loss


def encoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The transformer blocks of a Hugging Face encoder (``base_model.encoder.layer``)."""
    try:
        return model.base_model.encoder.layer
    except AttributeError:
        raise XltError(
            f"perturb_layer needs a BERT-style encoder (base_model.encoder.layer); {type(model).__name__} has none"
        ) from None


def _token_norms(delta: torch.Tensor) -> torch.Tensor:
    return delta.norm(dim=-1, keepdim=True)


def uniform_in_ball(
    shape: tuple[int, ...], radius: float, norm: Norm, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Per-token uniform samples from the ``norm`` ball of ``radius`` (L∞: ``radius/√d`` per coordinate)."""
    dim = shape[-1]
    if norm == "linf":
        return (torch.rand(shape, device=device, dtype=dtype) * 2 - 1) * (radius / math.sqrt(dim))
    direction = torch.randn(shape, device=device, dtype=dtype)
    direction = direction / _token_norms(direction).clamp_min(1e-12)
    return direction * radius * torch.rand((*shape[:-1], 1), device=device, dtype=dtype) ** (1 / dim)


def project(delta: torch.Tensor, radius: float, norm: Norm) -> torch.Tensor:
    """Each token's δ back into its ball: L2 norm ≤ radius, or every coordinate ≤ radius/√d."""
    if norm == "linf":
        bound = radius / math.sqrt(delta.shape[-1])
        return delta.clamp(-bound, bound)
    return delta * (radius / _token_norms(delta).clamp_min(1e-12)).clamp(max=1.0)


def ascent_step(delta: torch.Tensor, grad: torch.Tensor, step: float, norm: Norm) -> torch.Tensor:
    """One steepest-ascent step of size ``step`` per token (normalised gradient, or its sign for L∞)."""
    if norm == "linf":
        return delta + (step / math.sqrt(delta.shape[-1])) * grad.sign()
    return delta + step * grad / _token_norms(grad).clamp_min(1e-12)


def sample_noise(
    shape: tuple[int, ...], sigma: float, distribution: str, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Noise in relative units: Gaussian with per-token RMS norm ``sigma``, or uniform in the L2 ball."""
    if distribution == "ball":
        return uniform_in_ball(shape, sigma, "l2", device, dtype)
    return torch.randn(shape, device=device, dtype=dtype) * (sigma / math.sqrt(shape[-1]))
