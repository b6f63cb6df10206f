"""One run: load its data, train, evaluate zero-shot, measure alignment, store the tidy rows.

:func:`ensure_run` is the unit of compute: cached by config hash (:mod:`xltlib.store`),
locked, resumable from its checkpoint; :func:`ensure_runs` runs a grid of them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import set_seed

from xltlib.config import PRETRAINED, RunConfig
from xltlib.config.logistics import Logistics
from xltlib.config.run import FIRST_STAGE_FIELDS
from xltlib.data import tasks
from xltlib.data.tatoeba import ENGLISH
from xltlib.evaluation.accuracy import generalized_sets, zero_shot_accuracy
from xltlib.evaluation.alignment import measure_alignment
from xltlib.evaluation.selection import BestOnSourceDev
from xltlib.evaluation.surgery import surgery_rows
from xltlib.files import LOCK_TIMEOUT, atomic_write_json, canonical_sha256
from xltlib.integrity import forget, record, write_recorded
from xltlib.methods import make_method
from xltlib.models import load_classifier, load_encoder, resolve_device
from xltlib.records import (
    BEST_FILE,
    CHECKPOINT_FILE,
    FIRST_STAGES,
    STAGE_FILE,
    check_training_state,
    needs_repair,
    repair_records,
    tidy,
)
from xltlib.run_data import RunData, load_run_data
from xltlib.store import (
    METRICS_FILE,
    atomic_write_parquet,
    env_info,
    is_complete,
    is_stale,
    result_rows,
    run_lock,
    set_aside,
)
from xltlib.training import Checkpointing, fit, rng_state, set_rng_state

log = logging.getLogger(__name__)


@contextmanager
def _log_to(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    package_logger = logging.getLogger("xltlib")
    level = package_logger.level
    if package_logger.getEffectiveLevel() > logging.INFO:  # the run's log keeps INFO even when the console does not
        package_logger.setLevel(logging.INFO)
    package_logger.addHandler(handler)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(level)
        handler.close()


def ensure_run(
    config: RunConfig,
    runs_dir: str | Path = "runs",
    logistics: Logistics = Logistics(),
    lock_timeout: float = LOCK_TIMEOUT,
    data: RunData | None = None,
    recompute_stale: bool = False,
) -> pd.DataFrame:
    """Return the run's tidy metrics, computing (or resuming) the run only if needed.

    A fine-tuning run first makes sure the alignment of its encoder before fine-tuning is
    stored (:meth:`RunConfig.pretrained`, one run shared by every method and seed). A run
    another process is computing is waited for (up to ``lock_timeout`` seconds) and then
    read; one whose process died is taken over and resumes from its checkpoint. ``data``: the run's data, if
    already loaded (:func:`~xltlib.run_data.load_run_data`). ``recompute_stale``: a complete run
    computed by other code (:func:`~xltlib.store.is_stale`) is computed again, its old results kept aside.
    A run whose records are damaged is computed again, its records kept aside (:mod:`xltlib.records`).
    """
    run_dir = Path(runs_dir) / config.run_id()
    recompute = f"recomputing run {run_dir.name}"
    if is_complete(run_dir) and needs_repair(run_dir):  # before any data loads: an adopted run is then read
        with run_lock(run_dir, lock_timeout), _log_to(run_dir / "log.txt"):
            repair_records(run_dir, recompute)
    if _done(run_dir, recompute_stale):
        log.info("run %s is complete: reading cached results", run_dir.name)
        return pd.read_parquet(run_dir / METRICS_FILE)
    data = data or load_run_data(config)  # bad data fails here, before the pre-trained run computes anything
    if config.method != PRETRAINED:
        ensure_run(config.pretrained(), runs_dir, logistics, lock_timeout, recompute_stale=recompute_stale)
    device = resolve_device(logistics.device)
    with run_lock(run_dir, lock_timeout), _log_to(run_dir / "log.txt"):
        repair_records(run_dir, recompute)  # a killed write's leftovers; damage done while we waited
        if _done(run_dir, recompute_stale):  # finished by another process while we waited to start
            return pd.read_parquet(run_dir / METRICS_FILE)
        if is_complete(run_dir):
            log.info(
                "run %s was computed by other code: recomputing (its results kept in %s)",
                run_dir.name,
                set_aside(run_dir).name,
            )
        return _compute_run(config, data, run_dir, device, logistics)


def _compute_run(config: RunConfig, data: RunData, run_dir: Path, device: torch.device, logistics: Logistics):
    """Compute a run under its lock: its records first, ``metrics.parquet`` last (what "complete" means), each
    recorded in ``checksums.json`` once written."""
    atomic_write_json(run_dir / "config.json", config.to_dict())
    atomic_write_json(run_dir / "env.json", env_info(device, config.profile))
    record(run_dir, ["config.json", "env.json"])
    if config.method == PRETRAINED:
        log.info("run %s on %s: alignment of the pre-trained encoder", run_dir.name, device)
        metrics = _pretrained_alignment(config, data, device, logistics.eval_batch_size)
    else:
        log.info("run %s on %s: %d training examples", run_dir.name, device, len(data.train))
        metrics = _train_and_evaluate(config, data, run_dir, device, logistics)
    frame = result_rows(config, metrics)
    atomic_write_parquet(run_dir / METRICS_FILE, frame)
    for leftover in (CHECKPOINT_FILE, BEST_FILE):
        (run_dir / leftover).unlink(missing_ok=True)
    forget(run_dir, [CHECKPOINT_FILE, BEST_FILE])
    record(run_dir, [METRICS_FILE])
    log.info("run %s complete", run_dir.name)
    return frame


def _done(run_dir: Path, recompute_stale: bool) -> bool:
    return is_complete(run_dir) and not (recompute_stale and is_stale(run_dir))


def ensure_runs(configs: Sequence[RunConfig], runs_dir: str = "runs", device: str | None = None) -> pd.DataFrame:
    """Every run's tidy rows (computed only where missing), plus the pre-trained encoder's."""
    frames = []
    logistics = Logistics(device)
    for config in tqdm(configs, desc="runs", unit="run"):
        frames.append(ensure_run(config, runs_dir, logistics))
    pretrained = {config.pretrained().run_id(): config.pretrained() for config in configs}
    frames += [ensure_run(config, runs_dir, logistics) for config in pretrained.values()]
    return pd.concat(frames, ignore_index=True)


def fine_tune(
    config: RunConfig,
    data: RunData,
    checkpoint: Checkpointing,
    device,
    runs_dir: Path | None = None,
    eval_batch_size: int = 64,
):
    """``config.model`` with a fresh task head, fine-tuned on ``data.train`` (seeded by ``config.seed``); model and
    tokenizer.

    With ``select_checkpoint="source_dev"`` the model returned is the one best on the source
    language's dev split among those scored (kept in ``best.pt`` beside the checkpoint). With a
    ``first_stage_file`` the model is first fine-tuned on it (``standard``, the run's settings), once per
    (model, seed, settings) under ``runs_dir`` and shared by every method (:func:`first_stage`).
    """
    set_seed(config.seed)
    # one trajectory: a damaged checkpoint or best.pt sets both aside
    check_training_state(checkpoint.path.parent, (checkpoint.path.name, BEST_FILE), "training restarts from scratch")
    task = tasks.get_task(config.task)
    model, tokenizer = load_classifier(
        config.model, len(task.labels), device, config.model_revision, multiple_choice=task.kind == "multiple_choice"
    )
    if config.freeze_word_embeddings:  # left out of AdamW, which would otherwise update every vocabulary row each step
        model.get_input_embeddings().weight.requires_grad_(False)
    selector = None
    if config.select_checkpoint == "source_dev":
        selector = BestOnSourceDev(
            model,
            tokenizer,
            data.source_dev,
            config.max_seq_length,
            device,
            checkpoint.path.with_name(BEST_FILE),
            eval_batch_size,
        )
    if data.first_stage is not None:
        stages = Path(runs_dir) / FIRST_STAGES if runs_dir is not None else checkpoint.path.parent
        first_stage(model, tokenizer, data.first_stage, config, stages, device, checkpoint)
    fit(model, tokenizer, data.train, config, checkpoint, device, on_select=selector)
    if selector is not None:
        selector.restore()
    return model, tokenizer


def first_stage(model, tokenizer, frame, config: RunConfig, stages: Path, device, checkpoint: Checkpointing) -> None:
    """Fine-tune ``model`` on the first stage (``standard``, its last model), or load the stage another run computed.

    The stage's weights and the random state after it are kept in ``stages/<key>/stage.pt``, so that a run that
    loads them continues exactly as one that computed them. A damaged ``stage.pt`` is set aside and computed again.
    """
    key = {name: value for name, value in config.identity().items() if name in FIRST_STAGE_FIELDS}
    folder = stages / f"{Path(config.model).name}-s{config.seed}-{canonical_sha256(key)[:12]}"
    with run_lock(folder):
        tidy(folder, f"first stage {folder.name}")
        check_training_state(folder, (STAGE_FILE,), "the first stage is computed again")
        if (folder / STAGE_FILE).is_file():
            state = torch.load(folder / STAGE_FILE, map_location=device, weights_only=False)
            model.load_state_dict(state["model"])
            set_rng_state(state["rng"])
            log.info("first stage read from %s", folder)
            return
        atomic_write_json(folder / "stage.json", key)
        record(folder, ["stage.json"])
        stage = dataclasses.replace(
            config, method="standard", method_params={}, select_checkpoint="last", select_every_steps=None
        )
        check_training_state(folder, (CHECKPOINT_FILE,), "the first stage restarts from scratch")
        fit(model, tokenizer, frame, stage, dataclasses.replace(checkpoint, path=folder / CHECKPOINT_FILE), device)
        state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "rng": rng_state()}
        write_recorded(folder / STAGE_FILE, lambda handle: torch.save(state, handle))
        (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
        forget(folder, [CHECKPOINT_FILE])
        log.info("first stage computed into %s", folder)


def _train_and_evaluate(config, data, run_dir: Path, device, logistics: Logistics) -> list[dict]:
    checkpoint = Checkpointing(run_dir / CHECKPOINT_FILE, logistics.checkpoint_every, logistics.checkpoint_weights_only)
    model, tokenizer = fine_tune(config, data, checkpoint, device, run_dir.parent, logistics.eval_batch_size)
    eval_batch_size = logistics.eval_batch_size
    predictor = make_method(config.method, config.method_params).predictor()
    eval_sets = {lang: data.eval_sets[lang] for lang in config.tgt_langs}
    if config.generalized_examples:
        languages = [lang for lang in dict.fromkeys((config.src_lang, *config.tgt_langs)) if lang in data.eval_sets]
        eval_sets |= generalized_sets(data.eval_sets, languages, config.generalized_examples)
    accuracies = zero_shot_accuracy(
        model, tokenizer, eval_sets, config.max_seq_length, device, eval_batch_size, predictor
    )
    for lang, value in accuracies.items():
        log.info("accuracy %s: %.4f", lang, value)
    accuracy_rows = [{"tgt_lang": lang, "metric": "accuracy", "value": value} for lang, value in accuracies.items()]
    alignment_rows = _alignment(config, data, model.base_model, tokenizer, device, eval_batch_size)
    return accuracy_rows + alignment_rows + _causal_arm(config, data, model, tokenizer, device, eval_batch_size)


def _causal_arm(config, data, model, tokenizer, device, eval_batch_size) -> list[dict]:
    """Procrustes surgery (:mod:`xltlib.evaluation.surgery`) on ``standard`` runs of a pair-classification task whose
    source test set is there: alignment moved on purpose at the state the head reads."""
    pairs = tasks.get_task(config.task).kind != "multiple_choice"
    if config.method != "standard" or not pairs or config.src_lang not in data.eval_sets:
        return []
    log.info("causal arm: Procrustes surgery of the last-layer <s> states")
    settings = (config.max_seq_length, device, eval_batch_size)
    return surgery_rows(model, tokenizer, data.eval_sets, config.src_lang, config.tgt_langs, *settings)


def _pretrained_alignment(config, data, device, eval_batch_size) -> list[dict]:
    encoder, tokenizer = load_encoder(config.model, device, config.model_revision)
    return _alignment(config, data, encoder, tokenizer, device, eval_batch_size)


def _alignment(config, data, encoder, tokenizer, device, eval_batch_size) -> list[dict]:
    """Alignment rows on the task's parallel sentences, then on each target's Tatoeba pairs; each row names its
    corpus."""
    settings = (config.align_pooling, config.max_seq_length, eval_batch_size, device)
    rows = measure_alignment(
        encoder,
        tokenizer,
        data.parallel,
        config.src_lang,
        config.tgt_langs,
        *settings,
        word_alignments=data.word_alignments,
    )
    rows = [{**row, "corpus": "task"} for row in rows]
    for lang, pairs in data.tatoeba.items():
        rows += [
            {**row, "corpus": "tatoeba"}
            for row in measure_alignment(encoder, tokenizer, pairs, ENGLISH, [lang], *settings)
        ]
    return rows
