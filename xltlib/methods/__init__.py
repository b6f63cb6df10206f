"""The training methods, one module each, behind one registry (:data:`METHODS`).

A method is a :class:`~xltlib.methods.base.TrainingMethod`: it computes one batch's loss
and gradients (:mod:`xltlib.methods.base` says how the loop calls it). Its parameters are
a torch-free pydantic model in :mod:`xltlib.config.methods`. To add a method: write its
module here, its parameters there, and register both names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xltlib.config.methods import params_class, validated_params
from xltlib.methods.base import Batch, ModelCall, Predictor, Standard, StepMatchedStandard, TrainingMethod
from xltlib.methods.freelb import FreeLB
from xltlib.methods.pgd import PGD
from xltlib.methods.rs_da import SynonymAugmentation
from xltlib.methods.rs_rp import RandomPerturbation

__all__ = ["METHODS", "Batch", "ModelCall", "Predictor", "TrainingMethod", "make_method", "method_class"]

METHODS: dict[str, type[TrainingMethod]] = {
    cls.name: cls for cls in (Standard, StepMatchedStandard, PGD, FreeLB, RandomPerturbation, SynonymAugmentation)
}


def method_class(name: str) -> type[TrainingMethod]:
    """The registered class of method ``name``; unknown names get a "did you mean"."""
    params_class(name)  # the parameters' registry has the same names and says "did you mean"
    return METHODS[name]


def make_method(name: str, params: Mapping[str, Any]) -> TrainingMethod:
    """Instantiate method ``name`` with validated parameters."""
    return method_class(name)(validated_params(name, params))
