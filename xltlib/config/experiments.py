"""Experiments files (``notebooks/experiments/*.yaml``), validated strictly before anything runs.

One mechanism checks every level: pydantic models with ``extra="forbid"`` for the file, each
experiment and the experiment notebook's parameters, then the registries for what only they
know: the task, the methods and their parameters, and the RunConfig fields an experiment
``overrides``. An unknown key is an error that names the file, where the key is, and the
nearest valid key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from xltlib.config.methods import dosed_params, params_class, validated_params
from xltlib.config.protocols import protocol_settings
from xltlib.config.run import RunConfig
from xltlib.data import tasks
from xltlib.errors import XltError, did_you_mean

RESERVED_NAMES = ("synthesis", "calibration")  # chapters the batch writes itself
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


EVERY_SHIPPED_DRAW = "shipped"
"""``draws: shipped`` in an experiments file: every pre-training draw of the shipped synthetic encoders."""


class ExperimentSpec(BaseModel):
    """One chapter of the book.

    Attributes:
        title: the chapter's heading (default: the experiment's name).
        parameters: values for the experiment notebook's ``parameters`` cell (task, model,
            protocol, methods, seeds, method_params, overrides, …); checked against that cell.
        quick: whether ``--quick`` runs it (a smoke test runs one experiment per task and protocol,
            not every encoder: the quick run puts one small stand-in model in place of all of them).
    """

    model_config = ConfigDict(extra="forbid")
    title: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    quick: bool = True


class ExperimentsFile(BaseModel):
    """An experiments file.

    Attributes:
        profile: the study profile the experiments belong to; ``synthetic`` adds the
            calibration chapter and lets the synthesis filter by pre-training draw.
        experiments: chapter name (lower-case letters, digits, ``-``) → its spec, in book order.
    """

    model_config = ConfigDict(extra="forbid")
    profile: Literal["synthetic", "xtreme", "e5"] | None = None
    experiments: dict[str, ExperimentSpec] = Field(min_length=1)


def _validate(model: type[BaseModel], values: Any, path: Path, where: str, prefix: tuple = ()) -> BaseModel:
    """``model.model_validate(values)``, its first error rewritten for a person."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        location = prefix + tuple(first["loc"])
        if first["type"] == "extra_forbidden":
            key = str(location[-1])
            allowed = _allowed_keys(location[:-1]) or list(model.model_fields)
            raise XltError(
                f"{path}: unknown key {key!r} in {where}{_place(location[:-1])}{did_you_mean(key, allowed)}; "
                f"allowed: {', '.join(allowed)}"
            ) from None
        raise XltError(f"{path}: {where}{_place(location)}: {first['msg']}") from None


def _allowed_keys(location: tuple) -> list[str] | None:
    """The valid keys at ``location`` of the file: top level, or inside one experiment."""
    if not location:
        return list(ExperimentsFile.model_fields)
    if len(location) == 2 and location[0] == "experiments":
        return list(ExperimentSpec.model_fields)
    return None


def _place(location: tuple) -> str:
    return f" at {'.'.join(map(str, location))}" if location else ""


def read_experiments_file(path: Path, notebook_parameters: list[str]) -> ExperimentsFile:
    """Parse and check ``path``; every experiment's parameters against ``notebook_parameters`` and the registries."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise XltError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise XltError(f"{path} must be a mapping with 'experiments:' (name → {{title, parameters}})")
    parsed = _validate(ExperimentsFile, document, path, "the experiments file")
    parameters_model = create_model(
        "ExperimentParameters",
        __config__=ConfigDict(extra="forbid"),
        **{name: (Any, None) for name in notebook_parameters},
    )
    for name, spec in parsed.experiments.items():
        if not _NAME.match(name) or name in RESERVED_NAMES:
            raise XltError(
                f"{path}: experiment name {name!r} must be lower-case letters, digits and '-' "
                f"(not {' or '.join(map(repr, RESERVED_NAMES))})"
            )
        where = f"experiment {name!r}"
        _validate(parameters_model, spec.parameters, path, f"{where} (the notebook's parameters)", ("parameters",))
        check_parameters(spec.parameters, path, where)
    return parsed


def check_parameters(parameters: dict[str, Any], path: Path, where: str) -> None:
    """The registries' part: task, methods, each method's parameters, and the RunConfig fields overridden."""

    try:
        if "task" in parameters:
            tasks.get_task(parameters["task"])
        if parameters.get("protocol") is not None:
            protocol_settings(parameters["protocol"], parameters.get("task", ""), parameters.get("model") or "")
        methods = list(parameters.get("methods") or [])
        for method in methods:
            params_class(method)
        doses = parameters.get("doses") or {}
        for method, params in (parameters.get("method_params") or {}).items():
            if method not in methods and method not in doses:
                raise XltError(
                    f"method_params names {method!r}, which is not in methods{did_you_mean(method, methods)}"
                )
            validated_params(method, params or {})
        for method, multipliers in doses.items():
            if not isinstance(multipliers, list):
                raise XltError(f"doses.{method} must be a list of multipliers of its strength, e.g. [0, 0.3, 1, 3]")
            for dose in multipliers:
                dosed_params(method, dose if dose != 0 else 1.0, (parameters.get("method_params") or {}).get(method))
        draws = parameters.get("draws")
        if draws not in (None, EVERY_SHIPPED_DRAW) and not (
            isinstance(draws, list) and draws and all(isinstance(d, int) and d >= 0 for d in draws)
        ):
            raise XltError(
                f"draws must be {EVERY_SHIPPED_DRAW!r} (every shipped draw) or a list of pre-training draws "
                f"(integers ≥ 0), e.g. [0, 2, 3]; got {draws!r}"
            )
        fields = list(RunConfig.__dataclass_fields__)
        for key in parameters.get("overrides") or {}:
            if key not in fields:
                raise XltError(f"overrides has {key!r}, which is not a RunConfig field{did_you_mean(key, fields)}")
    except XltError as error:
        raise XltError(f"{path}: {where}: {error}") from None
