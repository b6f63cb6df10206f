"""Training methods: each computes one batch's loss and its gradients, behind one registry.

The training loop never branches on the method. It hands a method a :class:`ModelCall`
(the model under the right autocast) and a batch; the method runs as many forward and
backward passes as it needs and leaves the parameter gradients in ``.grad``. This is what
lets FreeLB accumulate gradients over its ascent steps and PGD take gradients with respect
to the perturbation only, without the loop knowing. A method may also supply its own
training batches (``rs_da`` rewrites the text) and its own test-time prediction
(``rs_rp``'s smoothed vote).

**Scale.** Perturbation sizes (``eps``, ``alpha``, ``sigma``) are relative: a perturbation
of a token's state is measured in units of the mean L2 norm of the batch's (non-padding)
token states at the perturbed site — the input embeddings by default. So ``eps=0.1`` means
the same for a 128-wide synthetic encoder and for XLM-R large.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .batches import SynonymAugmentedPairs, TokenizedPairs, TrainingData
from .errors import XltError
from .method_params import (
    FreeLBParams,
    MethodParams,
    Norm,
    PGDParams,
    RandomPerturbationParams,
    SynonymAugmentationParams,
    params_class,
    validated_params,
)
from .synonyms import SYNONYMS_HELP, SynonymTable

if TYPE_CHECKING:
    from .config import RunConfig


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
    """Base class: a named method and its parameters' model (:mod:`xltlib.method_params`)."""

    name: ClassVar[str]

    Params = MethodParams

    def __init__(self, params: MethodParams):
        self.params = params

    def backward(self, call: ModelCall, batch: Batch, scale: float) -> torch.Tensor:
        """Accumulate ``scale`` × d(loss)/d(weights) into ``.grad``; return the detached loss."""
        raise NotImplementedError

    def training_data(self, frame, tokenizer, config: RunConfig, device: torch.device) -> TrainingData:
        """Where the loop's batches come from: the training pairs, tokenized once."""
        return TokenizedPairs(tokenizer, frame, config.max_seq_length, device)

    def check(self, config: RunConfig) -> None:
        """Fail before any compute when the method cannot run (e.g. a missing file)."""

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


# ---------------------------------------------------------------------------------------
# Where a perturbation enters the model, and its geometry.


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
    ``inputs_embeds``). ``layer=k``: the output of encoder layer ``k``, via a forward hook.
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
            states = states + (delta * mean_token_norm(states, self.mask)).to(states.dtype)
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
        raise XltError(f"perturb_layer needs a BERT-style encoder (base_model.encoder.layer); {type(model).__name__} has none") from None  # fmt: skip


def _token_norms(delta: torch.Tensor) -> torch.Tensor:
    return delta.norm(dim=-1, keepdim=True)


def uniform_in_ball(shape: tuple[int, ...], radius: float, norm: Norm, device=None, dtype=torch.float32) -> torch.Tensor:
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


def check_perturb_layer(layer: int | None, model: str) -> None:
    """Refuse a ``perturb_layer`` the (local) model does not have, before any compute."""
    if layer is None or not (Path(model) / "config.json").is_file():
        return  # hub models are checked when the first batch runs
    from transformers import AutoConfig

    layers = AutoConfig.from_pretrained(model).num_hidden_layers
    if not -layers <= layer < layers:
        raise XltError(f"perturb_layer={layer} but {model} has {layers} layers (0…{layers - 1})")


# ---------------------------------------------------------------------------------------
# The methods.


class PGD(TrainingMethod):
    """Adversarial training (Madry et al. 2018) on the input embeddings.

    K projected ascent steps on δ from a random start in the ball, each taking the gradient
    with respect to δ only (no weight gradients), then one training pass on the
    adversarial example, plus the clean loss unless ``adversarial_only``.
    """

    name = "pgd"

    Params = PGDParams

    def check(self, config: RunConfig) -> None:
        check_perturb_layer(self.params.perturb_layer, config.model)

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
        """Per-example RMS token norm ``‖δ‖_F / √tokens``, shaped ``[batch, 1, 1]``."""
        tokens = mask.sum(dim=(1, 2), keepdim=True).clamp_min(1)
        return delta.flatten(1).norm(dim=1).view(-1, 1, 1) / tokens.sqrt()

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


class RandomPerturbation(TrainingMethod):
    """Randomized smoothing by random perturbation: noise on the input embeddings in training.

    At test time, with ``eval_copies > 0``, the prediction is the majority vote of the
    model over that many noisy copies of each input (:func:`predict_smoothed`).
    """

    name = "rs_rp"

    Params = RandomPerturbationParams

    def check(self, config: RunConfig) -> None:
        check_perturb_layer(self.params.perturb_layer, config.model)

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
        return lambda call, batch: predict_smoothed(call, batch, p.eval_copies, p.sigma, p.distribution, p.perturb_layer)


def sample_noise(shape: tuple[int, ...], sigma: float, distribution: str, device=None, dtype=torch.float32) -> torch.Tensor:
    """Noise in relative units: Gaussian with per-token RMS norm ``sigma``, or uniform in the L2 ball."""
    if distribution == "ball":
        return uniform_in_ball(shape, sigma, "l2", device, dtype)
    return torch.randn(shape, device=device, dtype=dtype) * (sigma / math.sqrt(shape[-1]))


@torch.no_grad()
def predict_smoothed(call: ModelCall, batch: Batch, copies: int, sigma: float, distribution: str = "gaussian",
                     layer: int | None = None) -> torch.Tensor:  # fmt: skip
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


class SynonymAugmentation(Standard):
    """Randomized smoothing by data augmentation: synonyms substituted in the training text.

    Each word of the source-language pair that has synonyms is replaced, with probability
    ``rate``, by one of them chosen uniformly; fresh choices every time an example is
    drawn (seeded by run seed and step, so a resumed run draws the same).
    """

    name = "rs_da"

    Params = SynonymAugmentationParams

    def synonyms_path(self, config: RunConfig) -> Path:
        if self.params.synonyms_file:
            return Path(self.params.synonyms_file)
        if config.profile != "synthetic":
            raise XltError(f"rs_da needs synonyms_file=PATH on task {config.task}; {SYNONYMS_HELP}")
        return Path(config.data_dir) / "synonyms-base.json"

    def check(self, config: RunConfig) -> None:
        path = self.synonyms_path(config)
        if not path.is_file():
            raise XltError(f"rs_da: synonym table {path} not found; {SYNONYMS_HELP}")

    def training_data(self, frame, tokenizer, config: RunConfig, device: torch.device) -> TrainingData:
        table = SynonymTable.from_json(self.synonyms_path(config))
        return SynonymAugmentedPairs(tokenizer, frame, config.max_seq_length, device, table, self.params.rate, config.seed)


METHODS: dict[str, type[TrainingMethod]] = {
    cls.name: cls for cls in (Standard, PGD, FreeLB, RandomPerturbation, SynonymAugmentation)
}


def method_class(name: str) -> type[TrainingMethod]:
    """The registered class of method ``name``; unknown names get a "did you mean"."""
    params_class(name)  # the parameters' registry has the same names and says "did you mean"
    return METHODS[name]


def make_method(name: str, params: Mapping[str, Any]) -> TrainingMethod:
    """Instantiate method ``name`` with validated parameters."""
    cls = method_class(name)
    return cls(validated_params(name, params))
