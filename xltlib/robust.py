"""Training methods: each computes one batch's loss and its gradients, behind one registry.

The training loop never branches on the method. It hands a method a ``forward`` callable
(the model under the right autocast) and a batch; the method runs as many forward and
backward passes as it needs and leaves the parameter gradients in ``.grad``. This is what
lets FreeLB accumulate gradients over its ascent steps and PGD take gradients with respect
to the perturbation only, without the loop knowing.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from .errors import XltError, did_you_mean, unknown

Batch = dict[str, torch.Tensor]
Forward = Callable[..., Any]
"""``forward(batch, **overrides)`` runs the model (under autocast) and returns its output."""


class TrainingMethod:
    """Base class: a named method with a validated ``Params`` dataclass."""

    name: ClassVar[str]

    @dataclasses.dataclass(frozen=True)
    class Params:
        """No parameters."""

    def __init__(self, params: Params):
        self.params = params

    def backward(self, forward: Forward, batch: Batch, scale: float) -> torch.Tensor:
        """Accumulate ``scale`` × d(loss)/d(weights) into ``.grad``; return the detached loss."""
        raise NotImplementedError


class Standard(TrainingMethod):
    """Plain cross-entropy fine-tuning: one forward, one backward."""

    name = "standard"

    def backward(self, forward: Forward, batch: Batch, scale: float) -> torch.Tensor:
        loss = forward(batch).loss
        (loss * scale).backward()
        return loss.detach()


METHODS: dict[str, type[TrainingMethod]] = {cls.name: cls for cls in (Standard,)}


def method_class(name: str) -> type[TrainingMethod]:
    """The registered class of method ``name``; unknown names get a "did you mean"."""
    if name not in METHODS:
        raise unknown("method", name, METHODS)
    return METHODS[name]


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Turn a CLI string (``eps=0.1``) into the field's declared type."""
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise XltError(f"{where} must be one of {choices}, got {value!r}{did_you_mean(value, choices)}")
        return value
    if annotation is bool:
        if isinstance(value, str):
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise XltError(f"{where} must be true or false, got {value!r}")
            return lowered in ("true", "1", "yes")
        return bool(value)
    if annotation in (int, float):
        try:
            number = annotation(value)
        except (TypeError, ValueError):
            raise XltError(f"{where} must be {annotation.__name__}, got {value!r}") from None
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise XltError(f"{where} must be int, got {value!r}")
        return number
    return value


def normalize_params(name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``raw`` against method ``name``'s Params; return every field, defaults filled.

    Filling defaults makes ``pgd`` and ``pgd eps=<default>`` the same run (same hash).
    """
    params_cls = method_class(name).Params
    hints = typing.get_type_hints(params_cls)
    fields = {f.name for f in dataclasses.fields(params_cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            choices = sorted(fields)
            takes = f"takes: {', '.join(choices)}" if choices else "takes no parameters"
            raise XltError(f"method {name!r} has no parameter {key!r}{did_you_mean(key, choices)}; it {takes}")
        kwargs[key] = _coerce(value, hints[key], f"{name}.{key}")
    try:
        return dataclasses.asdict(params_cls(**kwargs))
    except (TypeError, ValueError) as error:
        raise XltError(f"method {name!r}: {error}") from None


def make_method(name: str, params: Mapping[str, Any]) -> TrainingMethod:
    """Instantiate method ``name`` with validated parameters."""
    cls = method_class(name)
    return cls(cls.Params(**normalize_params(name, params)))
