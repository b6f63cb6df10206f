"""The synthetic profile's defaults in one place, and the cached encoder built from them.

``default_synthetic_profile()`` fixes the generated data, the encoder's shape and its pre-training;
``SYNTHETIC_FINETUNING`` the fine-tuning settings of a run. Settings are chosen on the base
language's dev data only; ``benchmarks/synthetic_calibration.py`` reports, it never chooses.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from . import synthetic, tasks
from .atomic import build_once
from .config import RunConfig
from .errors import XltError, did_you_mean

log = logging.getLogger(__name__)

ENCODER_RECIPE_VERSION = 2
"""Bump when the pre-training code would build a different encoder from the same profile."""


@dataclass(frozen=True)
class SyntheticProfile:
    """Generated data + encoder shape + pre-training + detection stage: what the cached encoder depends on."""

    data: synthetic.DataSpec
    encoder: Any  # models.TinyXlmrSpec (models imports torch; this module stays light)
    pretraining: Any  # models.PretrainSpec
    detection: Any  # models.DetectionSpec

    def encoder_hash(self) -> str:
        key = {"data": self.data.config_hash(), "encoder": asdict(self.encoder), "pretraining": asdict(self.pretraining),
               "detection": asdict(self.detection), "recipe": ENCODER_RECIPE_VERSION}  # fmt: skip
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def default_synthetic_profile() -> SyntheticProfile:
    from .models import DetectionSpec, PretrainSpec, TinyXlmrSpec

    return SyntheticProfile(
        data=synthetic.DataSpec(),
        encoder=TinyXlmrSpec(vocab_size=4000, hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512,
                             max_positions=130),  # fmt: skip
        pretraining=PretrainSpec(steps=1700),
        detection=DetectionSpec(steps=1500, batch_size=32, learning_rate=1e-3),
    )


def without_detection_stage(profile: SyntheticProfile) -> SyntheticProfile:
    """``profile`` with masked-LM pre-training only (diagnostics; its encoder is cached apart)."""
    from .models import DetectionSpec

    return replace(profile, detection=DetectionSpec())


def quick_synthetic_profile() -> SyntheticProfile:
    """Tiny sizes for smoke tests and ``--quick``: the whole path in seconds, numbers meaningless."""
    from .models import DetectionSpec, PretrainSpec, TinyXlmrSpec

    return SyntheticProfile(
        data=synthetic.DataSpec(mono_documents=500, detection_pairs=300, train_examples=300, dev_examples=100,
                                test_examples=100, parallel_sentences=100),  # fmt: skip
        encoder=TinyXlmrSpec(vocab_size=1000, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
        pretraining=PretrainSpec(steps=30, batch_size=32),
        detection=DetectionSpec(steps=10, batch_size=16, held_out=50),
    )


SYNTHETIC_FINETUNING: dict[str, Any] = {
    "learning_rate": 5e-4,
    "epochs": 1.0,
    "batch_size": 32,
    "max_train_examples": 4000,
    "max_seq_length": 64,
    "eval_split": "test",
    "generalized_examples": 200,
}
"""RunConfig fields of a synthetic run that differ from RunConfig's (XLM-R) defaults.

Sized by compute: the default study (5 methods × 3 seeds × 2 tasks, pgd costing 4 standard
steps) must fit 20 minutes on a 2-core CPU, so a run sees 4,000 examples once (125 steps;
a standard run, evaluation and alignment included, takes 13–19 s). The learning rate was
chosen on base dev of the shipped (masked-LM seed 0) encoder, seeds 1–3, mean ``syn-nli`` /
``syn-paws``: 3e-4 0.873 / 0.961, 5e-4 0.939 / 0.955, 8e-4 0.939 / 0.920. It fits that
encoder: pre-trained with seed 1 or 2, the same recipe reaches 0.663 / 0.703 or 0.699 / 0.655
(README, "How robust the profile is"). Dropout comes from the encoder's config: 0 after the detection stage.
The generalized setting is scored on 200 rows per ordered language pair (56 pairs, ~3 s).
"""


SOURCE_ACCURACY_FLOOR = 0.90
"""Source-language accuracy the default encoder fine-tunes to when its pre-training succeeded.

The issue's calibration target; the shipped build reaches 0.939 / 0.951 (test). Pre-training
fails for some draws, and which ones depends even on float rounding, so a build on another
machine can land on a failing draw; the failing draws measured so far fine-tune to 0.64–0.72
on ``base`` dev with standard fine-tuning (README, "How robust the profile is"). The
experiment chapters warn when no method reaches it.
"""


def encoder_path(profile: SyntheticProfile, cache_dir: str | Path = "cache") -> Path:
    return Path(cache_dir).resolve() / "synthetic" / f"encoder-{profile.encoder_hash()[:12]}"


def is_default_encoder(model: str) -> bool:
    """Whether ``model`` is a build of the default profile's encoder (in any cache folder)."""
    return Path(model).name == encoder_path(default_synthetic_profile()).name


def ensure_encoder(
    profile: SyntheticProfile | None = None, cache_dir: str | Path = "cache", device: str = "cpu", progress: bool = True
) -> Path:
    """The pre-trained synthetic encoder under ``cache_dir``: built on first use, reused after.

    Generates the data first if needed; pre-trains by masked-LM on the monolingual corpora
    of all languages (non-parallel: every language has its own sentences), then runs the
    profile's change-detection stage on the base-language pairs (``profile.detection``).
    """
    from .models import pretrain_encoder

    profile = profile or default_synthetic_profile()
    path = encoder_path(profile, cache_dir)
    if path.exists():
        return path
    data_dir = synthetic.ensure_data(profile.data, cache_dir, progress)
    corpus = [
        tuple(line.split("\t"))
        for recipe in profile.data.recipes
        for line in (data_dir / f"mono-{recipe.code}.tsv").read_text(encoding="utf-8").splitlines()
    ]
    pairs = [tuple(line.split("\t")) for line in (data_dir / "detect-base.tsv").read_text(encoding="utf-8").splitlines()]
    log.info("pre-training the synthetic encoder on %d documents → %s", len(corpus), path)
    return build_once(path, lambda out: pretrain_encoder(out, corpus, profile.encoder, profile.pretraining, device, progress,
                                                         pairs, profile.detection))  # fmt: skip


def synthetic_run_config(
    task: str, cache_dir: str | Path = "cache", profile: SyntheticProfile | None = None, device: str = "cpu",
    progress: bool = True, **overrides: Any,
) -> RunConfig:  # fmt: skip
    """A RunConfig of a synthetic task: the profile's fine-tuning defaults, generated data, pre-trained encoder.

    ``overrides`` are RunConfig fields; a ``model`` or ``data_dir`` among them replaces the
    profile's encoder or data, and the fine-tuning defaults of :data:`SYNTHETIC_FINETUNING`
    still apply. With a ``model`` the profile's encoder is not built; with both, nothing is
    generated. The config is validated (cheaply, on the data) before the encoder is
    pre-trained, so a bad parameter never waits for pre-training.
    """
    known = [f.name for f in fields(RunConfig)]
    for key in overrides:
        if key not in known:
            raise XltError(f"RunConfig has no field {key!r}{did_you_mean(key, known)}")
    if tasks.get_task(task).profile != "synthetic":
        raise XltError(f"task {task} is not a synthetic task; synthetic tasks: {', '.join(synthetic.EXAMPLE_MAKERS)}")
    profile = profile or default_synthetic_profile()
    data_dir = overrides.pop("data_dir", None) or str(synthetic.ensure_data(profile.data, cache_dir, progress))
    encoder = str(encoder_path(profile, cache_dir))
    config = RunConfig(task=task, **({**SYNTHETIC_FINETUNING, "model": encoder, "data_dir": data_dir} | overrides))
    if config.model == encoder:
        ensure_encoder(profile, cache_dir, device, progress)
    return config
