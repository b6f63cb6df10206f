"""The training methods' parameters: typed, validated, and importable without torch.

Each method's parameters are a frozen pydantic model with ``extra="forbid"``, so the CLI's
``key=value`` strings and an experiments file's values are coerced and checked by one
mechanism, before any compute. :func:`normalize_params` returns every field with defaults
filled, which makes ``pgd`` and ``pgd eps=<default>`` the same run (same hash). The methods
themselves (:mod:`xltlib.methods`) take these models, and :meth:`MethodParams.check_run` checks
what a method needs of a run (a file, a layer) when the RunConfig is made, still without torch.

**Scale.** ``eps``, ``alpha``, ``sigma`` and ``init_mag`` are relative: in units of the mean
L2 norm of the batch's (non-padding) token states at the perturbed site.
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator, model_validator

from xltlib.data.synonyms import SYNONYMS_HELP, CopiesStyle
from xltlib.errors import XltError, did_you_mean, unknown

if typing.TYPE_CHECKING:
    from xltlib.config.run import RunConfig


def _none_word(value: Any) -> Any:
    """The CLI writes ``perturb_layer=none`` for the input embeddings."""
    return None if isinstance(value, str) and value.lower() == "none" else value


PerturbLayer = Annotated[int | None, BeforeValidator(_none_word)]
Norm = Literal["l2", "linf"]


def check_range(name: str, value: float, low: float = 0.0, high: float | None = None, low_open: bool = True) -> None:
    if not math.isfinite(value) or (value <= low if low_open else value < low) or (high is not None and value > high):
        bounds = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        raise ValueError(f"{name} must be {bounds}, got {value}")


def check_steps(steps: int) -> None:
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


class MethodParams(BaseModel):
    """No parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def check_run(self, config: RunConfig) -> None:
        """Fail before any compute when the method cannot run with ``config`` (a missing file, a missing layer)."""


def check_perturb_layer(layer: int | None, model: str) -> None:
    """Refuse a ``perturb_layer`` that a local model does not have (hub models are checked at their first batch)."""
    config = Path(model) / "config.json"
    if layer is None or not config.is_file():
        return
    layers = json.loads(config.read_text())["num_hidden_layers"]
    if not -layers <= layer < layers:
        raise XltError(f"perturb_layer={layer} but {model} has {layers} layers (0…{layers - 1})")


class PGDParams(MethodParams):
    """
    Attributes:
        steps: ascent steps K.
        eps: radius of each token's ball, relative to the mean token norm at the site.
        alpha: ascent step size per token, relative like ``eps``.
        norm: ``l2`` (each token's δ in an L2 ball) or ``linf`` (every coordinate
            within ``eps/√d``, the same per-coordinate scale).
        adv_weight: λ in ``clean + λ · adversarial``.
        adversarial_only: train on λ · adversarial loss alone (no clean pass).
        perturb_layer: ``None`` for the input embeddings, else the encoder layer whose output is perturbed.
    """

    # Defaults of eps / sigma / rate: by the rule of `xltlib/sweep.py` (`python -m xltlib sweep`), fixed before it ran
    # on the shipped encoders: the strongest rung with it and every weaker rung within 1 point of
    # `standard`'s base-language dev accuracy on both synthetic tasks (seeds 1-2); design notes, table.
    steps: int = 3
    eps: float = 0.02
    alpha: float = 0.01
    norm: Norm = "l2"
    adv_weight: float = 1.0
    adversarial_only: bool = False
    perturb_layer: PerturbLayer = None

    def check_run(self, config: RunConfig) -> None:
        check_perturb_layer(self.perturb_layer, config.model)

    @model_validator(mode="after")
    def _in_range(self) -> PGDParams:
        check_steps(self.steps)
        check_range("eps", self.eps)
        check_range("alpha", self.alpha)
        check_range("adv_weight", self.adv_weight)
        return self


class FreeLBParams(MethodParams):
    """
    Attributes:
        steps: ascent steps K (each costs one standard step).
        eps: per-example bound on δ's root-mean-square token norm (relative); 0: unbounded.
        alpha: ascent step, in the same units.
        init_mag: initial δ drawn uniformly with per-coordinate bound ``init_mag/√d``; 0: start at 0.
    """

    steps: int = 3
    eps: float = 0.01
    alpha: float = 0.005
    init_mag: float = 0.005

    @model_validator(mode="after")
    def _in_range(self) -> FreeLBParams:
        check_steps(self.steps)
        check_range("eps", self.eps, low_open=False)
        check_range("alpha", self.alpha)
        check_range("init_mag", self.init_mag, low_open=False)
        return self


class RandomPerturbationParams(MethodParams):
    """
    Attributes:
        sigma: noise size relative to the mean token norm: a Gaussian with per-coordinate
            sd ``sigma/√d`` (so each token's noise has RMS norm ``sigma``), or uniform in
            each token's L2 ball of radius ``sigma``.
        distribution: ``gaussian`` or ``ball``.
        eval_copies: noisy copies per test input for the smoothed vote; 0: plain prediction.
        perturb_layer: ``None`` for the input embeddings, else the encoder layer whose output is perturbed.
    """

    sigma: float = 0.1
    distribution: Literal["gaussian", "ball"] = "gaussian"
    eval_copies: int = 0
    perturb_layer: PerturbLayer = None

    def check_run(self, config: RunConfig) -> None:
        check_perturb_layer(self.perturb_layer, config.model)

    @model_validator(mode="after")
    def _in_range(self) -> RandomPerturbationParams:
        check_range("sigma", self.sigma)
        if self.eval_copies < 0:
            raise ValueError(f"eval_copies must be >= 0, got {self.eval_copies}")
        return self


class SynonymAugmentationParams(MethodParams):
    """
    Attributes:
        rate: probability that a word with synonyms is replaced (fresh draws, ``copies = 0``).
        synonyms_file: JSON ``word → [synonyms]`` (the counter-fitted neighbours format);
            empty: the profile's own table, ``{data_dir}/synonyms-base.json``.
        copies: 0: words are redrawn every time a batch is drawn (with ``rate``); N > 0:
            Huang et al.'s offline augmentation, N copies drawn once, each word of a copy
            uniform over the word and its synonyms (their scripts: 3 per XNLI pair, 10 per
            PAWS-X pair).
        copies_style: how the offline copies are made (``copies > 0`` only):
            ``robust-xlt``, as their ``perturb.py``: the training set is replaced by its
            N copies; a word is what lies between single spaces, punctuation attached, looked
            up case-sensitively. ``with-originals`` (the default, for the runs stored before
            the choice existed): the training set plus its N copies; a word is a ``\\w+``
            run, looked up lower-cased and replaced in its own case (substitutes more words).
    """

    rate: float = 0.9
    synonyms_file: str = ""
    copies: int = 0
    copies_style: CopiesStyle = "with-originals"

    @field_validator("synonyms_file")
    @classmethod
    def _absolute(cls, path: str) -> str:  # absolute, so the run's hash names one file
        return str(Path(path).resolve()) if path else path

    @model_validator(mode="after")
    def _in_range(self) -> SynonymAugmentationParams:
        check_range("rate", self.rate, high=1.0)
        if self.copies < 0:
            raise ValueError(f"copies must be >= 0, got {self.copies}")
        if self.copies == 0 and self.copies_style != "with-originals":  # a style of no copies would only rename the run
            raise ValueError(f"copies_style={self.copies_style} needs copies > 0 (offline copies)")
        return self

    def synonyms_path(self, config: RunConfig) -> Path:
        """The table a run of ``config`` reads: ``synonyms_file``, or the synthetic profile's own."""
        if self.synonyms_file:
            return Path(self.synonyms_file)
        if config.profile != "synthetic":
            raise XltError(f"rs_da needs synonyms_file=PATH on task {config.task}; {SYNONYMS_HELP}")
        return Path(config.data_dir) / "synonyms-base.json"

    def check_run(self, config: RunConfig) -> None:
        path = self.synonyms_path(config)
        if not path.is_file():
            raise XltError(f"rs_da: synonym table {path} not found; {SYNONYMS_HELP}")


class StepMatchedParams(MethodParams):
    """
    Attributes:
        epochs_factor: ``standard`` trained for this many times the run's epochs, so that it takes as many
            optimizer steps, over the same schedule, as ``rs_da`` over its offline copies (the protocols set it
            from the copies: :func:`xltlib.config.protocols.step_matched_params`). It separates the effect of the
            substitutions from that of training longer.
    """

    epochs_factor: float = 1.0

    @model_validator(mode="after")
    def _in_range(self) -> StepMatchedParams:
        if not self.epochs_factor >= 1:
            raise ValueError(f"epochs_factor must be >= 1, got {self.epochs_factor}")
        return self


METHOD_PARAMS: dict[str, type[MethodParams]] = {
    "standard": MethodParams,
    "standard_matched": StepMatchedParams,
    "pgd": PGDParams,
    "freelb": FreeLBParams,
    "rs_rp": RandomPerturbationParams,
    "rs_da": SynonymAugmentationParams,
}
"""Method name → its parameters; :data:`xltlib.methods.METHODS` has the same names."""


STRENGTHS: dict[str, tuple[str, ...]] = {
    "pgd": ("eps", "alpha"),
    "freelb": ("eps", "alpha", "init_mag"),
    "rs_rp": ("sigma",),
    "rs_da": ("rate",),
}
"""A method's strength: its first parameter, with the others that scale with it (an ascent step
stays a fixed fraction of the radius). A dose of ``m`` multiplies all of them by ``m``."""


def dosed_params(name: str, dose: float, raw: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Method ``name``'s parameters (``raw``, defaults filled) with its strength multiplied by ``dose`` (> 0).

    Dose 1 is the method as configured; dose 0 would be no perturbation at all, which is
    ``standard`` fine-tuning, so a dose–response takes its zero point from ``standard`` runs.
    """
    if name not in STRENGTHS:
        raise unknown("method with a strength", name, STRENGTHS)
    if not (isinstance(dose, int | float) and math.isfinite(dose) and dose > 0):
        raise XltError(f"a dose multiplies {name}'s strength and must be a number > 0 (0 is standard), got {dose!r}")
    params = normalize_params(name, raw or {})
    scaled = {key: params[key] * dose for key in STRENGTHS[name]}
    return normalize_params(name, {**params, **scaled})


def params_class(name: str) -> type[MethodParams]:
    if name not in METHOD_PARAMS:
        raise unknown("method", name, METHOD_PARAMS)
    return METHOD_PARAMS[name]


def validated_params(name: str, raw: Mapping[str, Any]) -> MethodParams:
    """Method ``name``'s parameters from ``raw``, coerced and checked; a one-line XltError otherwise."""
    cls = params_class(name)
    try:
        return cls.model_validate(dict(raw))
    except ValidationError as error:
        raise XltError(_describe(name, cls, error.errors()[0])) from None


def normalize_params(name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every field of method ``name``'s parameters, defaults filled (the form stored in a run's config)."""
    return validated_params(name, raw).model_dump()


def _describe(name: str, cls: type[MethodParams], error: dict[str, Any]) -> str:
    fields = list(cls.model_fields)
    key = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "extra_forbidden":
        takes = f"takes: {', '.join(fields)}" if fields else "takes no parameters"
        return f"method {name!r} has no parameter {key!r}{did_you_mean(key, fields)}; it {takes}"
    if error["type"] == "literal_error":
        choices = typing.get_args(cls.model_fields[key].annotation)
        value = error["input"]
        return f"{name}.{key} must be one of {choices}, got {value!r}{did_you_mean(value, choices)}"
    if error["type"] == "value_error":
        return f"method {name!r}: {error['ctx']['error']}"
    return f"{name}.{key}: {error['msg']} (got {error['input']!r})"
