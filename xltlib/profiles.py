"""The synthetic profile's defaults in one place, and the cached encoder built from them.

``default_synthetic_profile()`` fixes the generated data, the encoder's shape and its pre-training;
``SYNTHETIC_FINETUNING`` the fine-tuning settings of a run. Settings are chosen on the base
language's dev data only; ``benchmarks/synthetic_calibration.py`` reports, it never chooses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from . import synthetic, tasks
from .atomic import atomic_directory, build_once
from .config import RunConfig, _check_number
from .errors import XltError, did_you_mean

log = logging.getLogger(__name__)

ENCODER_RECIPE_VERSION = 4
"""Bump when the pre-training code would build a different encoder from the same profile."""

SOURCE_ACCURACY_FLOOR = 0.90
"""Source-language accuracy the default encoder fine-tunes to when its pre-training succeeded.

The issue's calibration target; the shipped build reaches 0.988 / 0.995 (test). Pre-training
fails for some draws, and which ones depends even on float rounding; failed draws fine-tune
to 0.64–0.79 on ``base`` dev with standard fine-tuning (README, "How robust the profile
is"). The build repairs or replaces such a draw (:class:`BuildCheck`), and the experiment
chapters warn when no method reaches this floor all the same.
"""


@dataclass(frozen=True)
class BuildCheck:
    """How a build of the encoder checks that fine-tuning can use it, and what it does when it cannot.

    Pre-training plus the detection stage fails for some draws, and which draws depends even
    on float rounding (README, "How robust the profile is"), so a build on another machine
    can land on one. The build therefore fine-tunes the new encoder as a run would and scores
    it on ``base`` **dev** (never on a target language or a test file). A failed draw whose
    word-level stage formed is repaired by a further stage that trains ``<s>`` to gather the
    words' verdicts; a draw whose stage did not form is replaced by the next masked-LM seed.

    Attributes:
        repair: the further stage (a ``models.DetectionSpec`` with ``pair_weight`` > 0).
        tasks: synthetic tasks fine-tuned for the check (standard, :data:`SYNTHETIC_FINETUNING`).
        seed: the check's fine-tuning seed.
        floor: ``base`` dev accuracy that every task of ``tasks`` must reach, or the draw
            failed; by default the study's :data:`SOURCE_ACCURACY_FLOOR`. It was 0.80 on the mean
            of the two tasks while good draws scored ~0.82–0.95 with the check's seed (1,700-step
            recipe); with today's recipe a draw passed that at 0.851 / 0.949 (mean 0.90) and
            fine-tuned to 0.766 / 0.889 over seeds 1–3 — after the repair stage, 0.974 / 0.993
            (README, "The build check's floor").
        draws: masked-LM seeds tried at most (``PretrainSpec.seed``, then the next ones); when
            none passes, the build keeps the best and warns.
    """

    repair: Any  # models.DetectionSpec (models imports torch; this module stays light)
    tasks: tuple[str, ...] = ("syn-nli", "syn-paws")
    seed: int = 0
    floor: float = SOURCE_ACCURACY_FLOOR
    draws: int = 3

    def __post_init__(self) -> None:
        if not self.tasks:
            raise XltError("BuildCheck.tasks needs at least one synthetic task")
        for task in self.tasks:
            if tasks.get_task(task).profile != "synthetic":
                raise XltError(f"BuildCheck.tasks: {task} is not a synthetic task; synthetic tasks: "
                               f"{', '.join(synthetic.EXAMPLE_MAKERS)}")  # fmt: skip
        _check_number("BuildCheck.seed", self.seed, int, low=0)
        _check_number("BuildCheck.floor", self.floor, float, low=0, high=1)
        _check_number("BuildCheck.draws", self.draws, int, low=1)
        if not self.repair.pair_weight:
            raise XltError("BuildCheck.repair must train the <s> head (pair_weight > 0)")


@dataclass(frozen=True)
class SyntheticProfile:
    """Generated data + encoder shape + pre-training + detection stage + build check: what the cached encoder depends on."""

    data: synthetic.DataSpec
    encoder: Any  # models.TinyXlmrSpec (models imports torch; this module stays light)
    pretraining: Any  # models.PretrainSpec
    detection: Any  # models.DetectionSpec
    check: BuildCheck | None = None
    """None builds one draw, unchecked (the quick profile, whose numbers mean nothing)."""

    def encoder_hash(self) -> str:
        key = {"data": self.data.config_hash(), "encoder": asdict(self.encoder), "pretraining": asdict(self.pretraining),
               "detection": asdict(self.detection), "recipe": ENCODER_RECIPE_VERSION}  # fmt: skip
        if self.check is not None:
            key["check"] = asdict(self.check)
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def default_synthetic_profile() -> SyntheticProfile:
    from .models import DetectionSpec, PretrainSpec, TinyXlmrSpec

    return SyntheticProfile(
        data=synthetic.DataSpec(),
        encoder=TinyXlmrSpec(vocab_size=4000, hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512,
                             max_positions=130),  # fmt: skip
        pretraining=PretrainSpec(steps=4000, bf16=True),
        detection=DetectionSpec(steps=1500, batch_size=32, learning_rate=1e-3, bf16=True),
        check=BuildCheck(repair=DetectionSpec(steps=1500, batch_size=32, learning_rate=1e-3, pair_weight=0.5, bf16=True,
                                              seed=1)),  # fmt: skip
    )


def without_detection_stage(profile: SyntheticProfile) -> SyntheticProfile:
    """``profile`` with masked-LM pre-training only (diagnostics; its encoder is cached apart)."""
    from .models import DetectionSpec

    return replace(profile, detection=DetectionSpec(), check=None)


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
a standard run, evaluation and alignment included, takes 11–19 s). The learning rate was
chosen on base dev, seeds 1–3, mean ``syn-nli`` / ``syn-paws``, of the previous (1,700-step)
encoder: 3e-4 0.873 / 0.961, 5e-4 0.939 / 0.955, 8e-4 0.939 / 0.920; on today's 4,000-step
encoder it ties with its neighbours (0.986 / 0.997, 0.986 / 0.995, 0.983 / 0.991). Dropout
comes from the encoder's config: 0 after the detection stage.
The generalized setting is scored on 200 rows per ordered language pair (56 pairs, ~3 s).
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
    profile's change-detection stage on the base-language pairs (``profile.detection``),
    then checks the build on ``base`` dev and repairs or redraws it (``profile.check``).
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
    if profile.check is None:
        return build_once(path, lambda out: pretrain_encoder(out, corpus, profile.encoder, profile.pretraining, device,
                                                             progress, pairs, profile.detection))  # fmt: skip
    return build_once(path, lambda out: _build_checked(out, profile, corpus, pairs, data_dir, device, progress))


def _build_checked(out: Path, profile: SyntheticProfile, corpus: list, pairs: list, data_dir: Path, device: str,
                   progress: bool) -> Path:  # fmt: skip
    """Build draws until one passes ``profile.check`` (repairing a draw whose stage formed); keep the passing or best one.

    Every attempt is recorded under ``build_check`` in the kept encoder's ``pretraining.json``.
    """
    from .models import extend_detection_stage, pretrain_encoder, stage_not_formed

    check = profile.check
    attempts: list[tuple[Path, dict]] = []
    started = time.perf_counter()

    def checked(folder: Path, stage: dict, seed: int, repaired: bool) -> bool:
        """Check ``folder`` and record the attempt; ``stage`` holds the scores of its (last) detection stage."""
        check_started = time.perf_counter()
        accuracy = source_dev_accuracy(folder, data_dir, check, device)
        lowest = min(accuracy.values())
        record = {"masked_lm_seed": seed, "repaired": repaired, "base_dev_accuracy": accuracy, "lowest": lowest,
                  "passed": lowest >= check.floor, "check_seconds": round(time.perf_counter() - check_started, 1)}  # fmt: skip
        record |= {key: stage[key] for key in ("detection_held_out_recall", "detection_held_out_pair_accuracy") if key in stage}
        attempts.append((folder, record))
        log.info("build check, masked-LM seed %d%s: base dev %s (lowest %.3f, floor %.2f)", seed, " repaired" if repaired else "",
                 ", ".join(f"{task} {value:.3f}" for task, value in accuracy.items()), lowest, check.floor)  # fmt: skip
        return record["passed"]

    with atomic_directory(out, "reuse it (ensure_encoder caches builds)") as tmp:
        for draw in range(check.draws):
            pretraining = replace(profile.pretraining, seed=profile.pretraining.seed + draw)
            folder = pretrain_encoder(tmp / "draws" / f"seed-{pretraining.seed}", corpus, profile.encoder, pretraining, device,
                                      progress, pairs, profile.detection)  # fmt: skip
            report = json.loads((folder / "pretraining.json").read_text())
            if checked(folder, report, pretraining.seed, repaired=False):
                break
            if profile.detection.steps == 0 or stage_not_formed(report):
                continue  # no word-level verdicts for <s> to gather: only another draw can help
            repaired = extend_detection_stage(folder, folder.with_name(f"{folder.name}-repaired"), pairs, check.repair, device, progress)
            if checked(repaired, json.loads((repaired / "pretraining.json").read_text())["repair"], pretraining.seed, repaired=True):
                break
        kept_index = max(range(len(attempts)), key=lambda i: (attempts[i][1]["passed"], attempts[i][1]["lowest"]))
        kept, record = attempts[kept_index]
        if not record["passed"]:
            log.warning("no build of the synthetic encoder passed the check (%d masked-LM seeds): base dev accuracy %.3f on "
                        "its worst task < %.2f; keeping the best; fine-tuning will stay below the source accuracy the profile "
                        "was calibrated to",
                        check.draws, record["lowest"], check.floor)  # fmt: skip
        report = json.loads((kept / "pretraining.json").read_text())
        report["build_check"] = {"check": asdict(check), "attempts": [record for _, record in attempts],
                                 "kept": kept_index,
                                 "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
        for file in kept.iterdir():
            os.replace(file, tmp / file.name)
        shutil.rmtree(tmp / "draws")
        (tmp / "pretraining.json").write_text(json.dumps(report, indent=2) + "\n")
    return out


def source_dev_accuracy(encoder: str | Path, data_dir: str | Path, check: BuildCheck, device: str = "cpu") -> dict[str, float]:
    """``base`` dev accuracy per task of ``check`` after a standard run's fine-tuning (seed ``check.seed``)."""
    from .evaluate import zero_shot_accuracy
    from .runs import fine_tune, load_run_data, resolve_device

    torch_device = resolve_device(device)
    accuracy = {}
    for task in check.tasks:
        config = RunConfig(task=task, **{**SYNTHETIC_FINETUNING, "model": str(encoder), "data_dir": str(data_dir),
                                         "tgt_langs": (synthetic.BASE.code,), "eval_split": "dev",
                                         "generalized_examples": 0, "seed": check.seed})  # fmt: skip
        data = load_run_data(config)
        with tempfile.TemporaryDirectory() as scratch:
            model, tokenizer = fine_tune(config, data, Path(scratch) / "checkpoint.pt", torch_device)
        scores = zero_shot_accuracy(model, tokenizer, data.eval_sets, config.max_seq_length, torch_device, 64, None)
        accuracy[task] = round(scores[synthetic.BASE.code], 4)
    return accuracy


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
