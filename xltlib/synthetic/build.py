"""Build the synthetic profile's encoders: one draw into the cache, or the shipped set by its build rule."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from xltlib.config import SYNTHETIC_FINETUNING, RunConfig
from xltlib.errors import XltError
from xltlib.evaluation.accuracy import zero_shot_accuracy
from xltlib.files import atomic_directory, atomic_write_text, build_once
from xltlib.integrity import HIDDEN_SIDECAR, Damage, ensure_whole, record_tree, tree_damage
from xltlib.models import TinyXlmrSpec, init_model, quiet_transformers, resolve_device, train_tokenizer
from xltlib.pipeline import fine_tune, load_run_data
from xltlib.store import env_info
from xltlib.synthetic import shipped
from xltlib.synthetic.detection import check_enough_pairs, detection_stage, warn_if_not_formed
from xltlib.synthetic.generated import data_sha256, ensure_data
from xltlib.synthetic.languages import BASE
from xltlib.synthetic.pretraining import every_100, masked_lm_stage, warn_if_bf16_is_emulated
from xltlib.synthetic.recipe import (
    ENCODER_RECIPE_VERSION,
    BuildCheck,
    DetectionSpec,
    PretrainSpec,
    SyntheticProfile,
    default_draw,
    default_synthetic_profile,
    encoder_path,
    with_draw,
)
from xltlib.training import Checkpointing

log = logging.getLogger(__name__)


def pretrain_encoder(
    out_dir: str | Path,
    corpus: Iterable[str | tuple[str, str]],
    spec: TinyXlmrSpec,
    pretraining: PretrainSpec,
    device: torch.device | str = "cpu",
    progress: bool = True,
    detection_pairs: Sequence[tuple[str, ...]] = (),
    stages: Sequence[DetectionSpec] = (),
    weights: str = "float32",
) -> Path:
    """Train a tokenizer on ``corpus``, pre-train an ``XLMRobertaForMaskedLM`` on it, save both (weights in
    ``weights`` precision, see :attr:`SyntheticProfile.weights`).

    A document of ``corpus`` is one text or a pair of texts, encoded with XLM-R's pair
    template (``<s> a </s></s> b </s>``) like the pairs of the classification tasks. The
    masked-LM pre-training is followed by the intermediate change-detection ``stages``, in
    order, on ``detection_pairs`` (rows ``(a, b, labels_a, labels_b[, kinds_a, kinds_b])``,
    see :class:`DetectionSpec`); their words must be in the tokenizer's corpus.

    The folder loads with ``from_pretrained`` like ``xlm-roberta-base`` (``AutoModel``,
    ``AutoModelForSequenceClassification``) and holds ``pretraining.json`` with the specs, the
    loss curves, each stage's held-out scores and the time taken. Deterministic for the
    inputs on one device type. Written whole or not at all.
    """
    documents = [(document,) if isinstance(document, str) else tuple(document) for document in corpus]
    stages = [stage for stage in stages if stage.steps]
    for stage in stages:
        check_enough_pairs(detection_pairs, stage)
    warn_if_bf16_is_emulated(torch.device(device), pretraining, *stages)
    with atomic_directory(out_dir, "reuse it (xltlib.synthetic.build caches builds)") as tmp:
        started = time.perf_counter()
        tokenizer = train_tokenizer([text for document in documents for text in document], spec)
        model = init_model(spec, len(tokenizer)).to(device)
        losses = masked_lm_stage(model, tokenizer, documents, pretraining, torch.device(device), progress)
        report = {
            "encoder": asdict(spec),
            "pretraining": asdict(pretraining),
            "documents": len(documents),
            "vocab_size": len(tokenizer),
            "parameters": sum(p.numel() for p in model.parameters()),
            "loss_every_100_steps": every_100(losses),
            "masked_lm_seconds": round(time.perf_counter() - started, 1),
        }
        report["stages"] = [_run_stage(model, tokenizer, detection_pairs, stage, device, progress) for stage in stages]
        report["seconds"] = round(time.perf_counter() - started, 1)
        _save(model.to(getattr(torch, weights)), tokenizer, report, tmp)
    return Path(out_dir)


def _run_stage(model, tokenizer, detection_pairs: Sequence, stage: DetectionSpec, device: str, progress: bool) -> dict:
    """One change-detection stage on ``model``; its report (spec, held-out scores, time), with a warning if it did not
    form."""
    started = time.perf_counter()
    scores = detection_stage(model, tokenizer, list(detection_pairs), stage, torch.device(device), progress)
    report = {"spec": asdict(stage), **scores, "seconds": round(time.perf_counter() - started, 1)}
    warn_if_not_formed(report)
    return report


def _save(model, tokenizer, report: dict, folder: Path) -> None:
    """An encoder folder that loads like ``xlm-roberta-base``, with its build report."""
    model.to("cpu")
    with quiet_transformers():
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    atomic_write_text(folder / "pretraining.json", json.dumps(report, indent=2) + "\n")
    record_tree(folder, sidecar=HIDDEN_SIDECAR)  # hidden: runs name the folder by its content


def ensure_encoder(
    profile: SyntheticProfile | None = None,
    cache_dir: str | Path = "cache",
    draw: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """The folder of the profile's encoder, draw ``draw`` (default: :func:`default_draw`); never pre-trains a shipped
    one.

    A checked profile's draws are the shipped ones (:func:`xltlib.synthetic.shipped.verified_encoder`:
    recipe hash and every file's sha256 checked). An unchecked profile's draw is built into
    ``cache_dir`` on first use (data generation, masked-LM pre-training, stages) and reused after.
    """
    profile = profile or default_synthetic_profile()
    draw = default_draw(profile) if draw is None else draw
    if profile.check is not None:
        return shipped.verified_encoder(draw, profile.recipe_hash())
    profile = with_draw(profile, draw)
    path = encoder_path(profile, cache_dir)
    if path.exists() and not _encoder_damage(path):
        return path

    def build(out: Path) -> None:
        corpus, pairs = _pretraining_text(profile, ensure_data(profile.data, cache_dir, progress))
        log.info("pre-training the synthetic encoder on %d documents → %s", len(corpus), out)
        pretrain_encoder(
            out, corpus, profile.encoder, profile.pretraining, device, progress, pairs, profile.stages, profile.weights
        )

    return ensure_whole(path, build, "the cached encoder", _encoder_damage, "pre-trained again")


def _encoder_damage(folder: Path) -> list[Damage]:
    """A built encoder's damage; one built before records (no record file at all) is adopted, recorded now, as it was
    trusted then; an unreadable record is damage."""
    if not (folder / HIDDEN_SIDECAR).exists() and (folder / "config.json").is_file():
        record_tree(folder, sidecar=HIDDEN_SIDECAR)
    return tree_damage(folder, sidecar=HIDDEN_SIDECAR)


def _pretraining_text(profile: SyntheticProfile, data_dir: Path) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The masked-LM corpus (every language's monolingual documents) and the stages' base-language pairs."""
    corpus = [
        tuple(line.split("\t"))
        for recipe in profile.data.recipes
        for line in (data_dir / f"mono-{recipe.code}.tsv").read_text(encoding="utf-8").splitlines()
    ]
    pairs = [
        tuple(line.split("\t")) for line in (data_dir / "detect-base.tsv").read_text(encoding="utf-8").splitlines()
    ]
    return corpus, pairs


def _check_enough(passed: dict[int, Path], attempts: list[dict], check) -> None:
    """Fail when no draw passed the build check; warn when fewer than the set's size did."""
    if not passed:
        raise XltError(
            f"no draw of {check.max_draws} passed the build check (base dev ≥ {check.floor} on every task): "
            f"{json.dumps(attempts)}"
        )
    if len(passed) < check.ship:
        log.warning(
            "only %d of %d masked-LM seeds passed the build check; the set has %d draws, not %d",
            *(len(passed), check.max_draws, len(passed), check.ship),
        )


def build_encoder_set(
    out: str | Path,
    profile: SyntheticProfile | None = None,
    cache_dir: str | Path = "cache",
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Build the profile's draws by its rule (:class:`BuildCheck`) and write the passing ones as a set into ``out``.

    Each draw is built and checked once into ``{cache_dir}/synthetic/draws-{recipe hash}/``,
    so an interrupted build resumes at the draw it was building. ``out`` gets the layout of
    :mod:`xltlib.synthetic.shipped` (the shipped set is such a folder), written whole or not at all.
    """
    profile = profile or default_synthetic_profile()
    check = profile.check
    if check is None:
        raise XltError("this profile has no build rule (check): it builds one draw into the cache; see ensure_encoder")
    if Path(out).exists():
        raise XltError(f"{out} already exists; remove it first (git rm -r, for the shipped set)")
    data_dir = ensure_data(profile.data, cache_dir, progress)
    corpus, pairs = _pretraining_text(profile, data_dir)
    attempts_dir = Path(cache_dir).resolve() / "synthetic" / f"draws-{profile.recipe_hash()[:12]}"
    environment = env_info(resolve_device(device), "synthetic")
    passed, attempts = {}, []
    for draw in range(profile.pretraining.seed, profile.pretraining.seed + check.max_draws):
        folder = shipped.draw_folder(attempts_dir, draw)
        drawn = with_draw(profile, draw)
        build_once(
            folder,
            lambda out: pretrain_encoder(
                out, corpus, drawn.encoder, drawn.pretraining, device, progress, pairs, drawn.stages, drawn.weights
            ),
        )
        attempts.append(_checked(folder, draw, data_dir, check, device))
        if attempts[-1]["passed"]:
            passed[draw] = folder
        if len(passed) == check.ship:
            break
    _check_enough(passed, attempts, check)
    manifest = _set_manifest(profile, data_sha256(data_dir), attempts, environment)
    records = {
        draw: {
            "recipe_hash": profile.recipe_hash(),
            "build_check": next(a for a in attempts if a["masked_lm_seed"] == draw),
            "environment": environment,
        }
        for draw in passed
    }
    return shipped.write_encoder_set(out, passed, manifest, records)


def _set_manifest(profile: SyntheticProfile, data_hash: str, attempts: list[dict], environment: dict) -> dict[str, Any]:
    """The set's ``manifest.json`` (less the files' hashes): recipe, data hash, rule, every draw tried, the machine."""
    recipe = {
        "data": asdict(profile.data),
        "encoder": asdict(profile.encoder),
        "pretraining": asdict(profile.pretraining),
        "stages": [asdict(stage) for stage in profile.stages],
        "check": asdict(profile.check),
        "recipe_version": ENCODER_RECIPE_VERSION,
    }
    return {
        "recipe_hash": profile.recipe_hash(),
        "recipe": recipe,
        "data_sha256": data_hash,
        "rule": BuildCheck.__doc__.split("\n\n")[1].strip(),
        "attempts": attempts,
        "build_seconds": round(sum(a["build_seconds"] + a["check_seconds"] for a in attempts), 1),
        "environment": environment,
    }


def _checked(folder: Path, draw: int, data_dir: Path, check: BuildCheck, device: str) -> dict[str, Any]:
    """The build check's record of the draw in ``folder``; checked once, then read from ``{folder}.check.json``."""
    path = folder.with_name(f"{folder.name}.check.json")
    if path.exists():
        return json.loads(path.read_text())
    started = time.perf_counter()
    accuracy = source_dev_accuracy(folder, data_dir, check, device)
    report = json.loads((folder / "pretraining.json").read_text())
    record = {
        "masked_lm_seed": draw,
        "base_dev_accuracy": accuracy,
        "lowest": min(accuracy.values()),
        "passed": min(accuracy.values()) >= check.floor,
        "build_seconds": report["seconds"],
        "check_seconds": round(time.perf_counter() - started, 1),
        "stage_held_out_recall": [stage["detection_held_out_recall"] for stage in report["stages"]],
    }
    log.info(
        "build check, masked-LM seed %d: base dev %s (lowest %.3f, floor %.2f): %s",
        draw,
        ", ".join(f"{task} {value:.3f}" for task, value in accuracy.items()),
        record["lowest"],
        check.floor,
        "passed" if record["passed"] else "failed",
    )
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record


def source_dev_accuracy(
    encoder: str | Path, data_dir: str | Path, check: BuildCheck, device: str = "cpu"
) -> dict[str, float]:
    """``base`` dev accuracy per task of ``check`` after a standard run's fine-tuning (seed ``check.seed``)."""
    torch_device = resolve_device(device)
    accuracy = {}
    for task in check.tasks:
        config = RunConfig(
            task=task,
            **{
                **SYNTHETIC_FINETUNING,
                "model": str(encoder),
                "data_dir": str(data_dir),
                "tgt_langs": (BASE.code,),
                "eval_split": "dev",
                "generalized_examples": 0,
                "seed": check.seed,
            },
        )
        data = load_run_data(config)
        with tempfile.TemporaryDirectory() as scratch:
            model, tokenizer = fine_tune(config, data, Checkpointing(Path(scratch) / "checkpoint.pt"), torch_device)
        scores = zero_shot_accuracy(model, tokenizer, data.eval_sets, config.max_seq_length, torch_device, 64, None)
        accuracy[task] = round(scores[BASE.code], 4)
    return accuracy
