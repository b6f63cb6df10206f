"""A synthetic task's RunConfig: the profile's fine-tuning defaults, its generated data, one of its encoders."""

from __future__ import annotations

import functools
from dataclasses import fields
from pathlib import Path
from typing import Any

from xltlib.config import SYNTHETIC_FINETUNING, RunConfig
from xltlib.config.checks import check_number
from xltlib.data import tasks
from xltlib.errors import XltError, did_you_mean
from xltlib.synthetic import shipped
from xltlib.synthetic.build import ensure_encoder
from xltlib.synthetic.examples import EXAMPLE_MAKERS
from xltlib.synthetic.generated import ensure_data
from xltlib.synthetic.recipe import SyntheticProfile, default_draw, default_synthetic_profile, encoder_path, with_draw


def synthetic_run_config(
    task: str,
    cache_dir: str | Path = "cache",
    profile: SyntheticProfile | None = None,
    device: str = "cpu",
    progress: bool = True,
    **overrides: Any,
) -> RunConfig:
    """A RunConfig of a synthetic task: the profile's fine-tuning defaults, generated data, one of its encoders.

    ``overrides`` are RunConfig fields. ``draw`` picks the profile's encoder (its masked-LM
    seed; default :func:`default_draw`): a shipped one for the default profile, checked by
    sha256 and never pre-trained. A ``model`` replaces the profile's encoders (``draw`` is
    then None) and a ``data_dir`` its data; the fine-tuning defaults of
    :data:`SYNTHETIC_FINETUNING` still apply. With a ``model`` no encoder is built; with both,
    nothing is generated. The config is validated (cheaply, on the data) before an unchecked
    profile's encoder is pre-trained, so a bad parameter never waits for pre-training.
    """
    known = [f.name for f in fields(RunConfig)]
    for key in overrides:
        if key not in known:
            raise XltError(f"RunConfig has no field {key!r}{did_you_mean(key, known)}")
    if tasks.get_task(task).profile != "synthetic":
        raise XltError(f"task {task} is not a synthetic task; synthetic tasks: {', '.join(EXAMPLE_MAKERS)}")
    profile = profile or default_synthetic_profile()
    own_model, own_data = overrides.get("model"), overrides.pop("data_dir", None)
    if own_model is not None and overrides.get("draw") is not None:
        raise XltError("draw picks one of the profile's own encoders; it cannot be combined with model")
    data_dir = own_data or str(ensure_data(profile.data, cache_dir, progress, shipped_data(profile)))
    if own_model is None:
        draw = default_draw(profile) if overrides.get("draw") is None else overrides["draw"]
        check_number("draw", draw, int, low=0)
        if profile.check is not None:  # shipped: checked now, before the config
            overrides["model"] = str(ensure_encoder(profile, cache_dir, draw))
            if own_data is None:
                check_generated_data(data_dir)
        else:
            overrides["model"] = str(encoder_path(with_draw(profile, draw), cache_dir))
        overrides["draw"] = draw
    config = RunConfig(task=task, **({**SYNTHETIC_FINETUNING, "data_dir": data_dir} | overrides))
    if own_model is None and profile.check is None:
        ensure_encoder(profile, cache_dir, config.draw, device, progress)
    return config


def shipped_data(profile: SyntheticProfile) -> str | None:
    """The sha256 of the data a checked profile's shipped encoders were built on (None for an unchecked profile): a
    cache entry generated before the project recorded its files is kept when it holds these."""
    return shipped.read_manifest()["data_sha256"] if profile.check is not None else None


@functools.lru_cache(maxsize=4)  # hashing the data takes a fraction of a second; a grid asks once per run
def check_generated_data(data_dir: str) -> None:
    """Fail unless ``data_dir`` holds the generated data the shipped encoders were built on (once per process)."""
    shipped.check_data(data_dir)
