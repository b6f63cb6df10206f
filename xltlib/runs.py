"""Runs: the unit of compute, cached by config hash, written atomically, locked, resumable.

A run directory ``{runs_dir}/{run_id}/`` holds ``config.json``, ``env.json``,
``checkpoint.pt`` while training, ``log.txt`` and, last of all, ``metrics.parquet``.
The metrics file is written only when everything else succeeded, so its presence is
what "complete" means: a complete run is never recomputed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from . import tasks
from .config import PRETRAINED, RunConfig
from .errors import XltError

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "run_id", "profile", "task", "model", "draw", "method", "seed",
    "src_lang", "tgt_lang", "layer", "pooling", "metric", "value",
]  # fmt: skip
METRICS_FILE = "metrics.parquet"
PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "numpy", "pandas", "pyarrow")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary sibling and rename, so readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run directory; a second writer fails at once.

    ``flock`` is released by the kernel when the holder dies, so a killed run never
    leaves a stale lock behind.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise XltError(f"run {run_dir.name} is being written by another process (lock {run_dir / '.lock'})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def git_commit() -> str | None:
    """The commit of the code that produced a run (``+dirty`` when uncommitted changes exist)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def env_info(device) -> dict[str, Any]:
    """Versions, commit and device: what is needed to tell whether two runs are comparable."""
    import torch

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": git_commit(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; ``platform.processor()``, often just the architecture, elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())


def result_rows(config: RunConfig, metrics: list[dict[str, Any]]) -> pd.DataFrame:
    """Tidy rows (DESIGN.md §3) from ``{tgt_lang, metric, value[, layer, pooling]}`` dicts."""
    base = {
        "run_id": config.run_id(),
        "profile": config.profile,
        "task": config.task,
        "model": config.model,
        "draw": config.draw,
        "method": config.method,
        "seed": config.seed,
        "src_lang": config.src_lang,
    }
    frame = pd.DataFrame([{**base, "layer": None, "pooling": None, **row} for row in metrics], columns=RESULT_COLUMNS)
    return frame.astype({"draw": "Int64", "layer": "Int64", "pooling": "string", "seed": "int64", "value": "float64"})


def is_complete(run_dir: Path) -> bool:
    return (run_dir / METRICS_FILE).exists()


@dataclass(frozen=True)
class RunData:
    train: pd.DataFrame | None  # None for a pre-trained (alignment-only) run
    eval_sets: dict[str, pd.DataFrame]
    parallel: pd.DataFrame  # one column of line-aligned sentences per language


def load_run_data(config: RunConfig) -> RunData:
    """Load and validate all data a run needs, before any model is touched."""
    task = tasks.get_task(config.task)
    parallel = tasks.parallel_corpus(
        task, (config.src_lang, *config.tgt_langs), config.data_dir, limit=config.max_align_sentences
    )
    if config.method == PRETRAINED:
        return RunData(None, {}, parallel)
    if config.train_file is not None:
        train = tasks.load_train_file(task, config.train_file, limit=config.max_train_examples)
    else:
        train = tasks.load_split(task, config.src_lang, "train", None, limit=config.max_train_examples)
    tasks.require_labels(train)
    eval_langs = dict.fromkeys((*config.tgt_langs, *((config.src_lang,) if config.generalized_examples else ())))
    eval_sets = {
        lang: tasks.load_split(task, lang, config.eval_split, config.data_dir, limit=config.max_eval_examples)
        for lang in eval_langs
    }
    for frame in eval_sets.values():
        tasks.require_labels(frame)
    return RunData(train, eval_sets, parallel)


def resolve_device(device: str | None = None):
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
    device: str | None = None,
    checkpoint_every: int = 200,
    eval_batch_size: int = 64,
) -> pd.DataFrame:
    """Return the run's tidy metrics, computing (or resuming) the run only if needed.

    A fine-tuning run first makes sure the alignment of its encoder before fine-tuning is
    stored (:meth:`RunConfig.pretrained`, one run shared by every method and seed).
    """
    run_dir = Path(runs_dir) / config.run_id()
    if is_complete(run_dir):
        log.info("run %s is complete: reading cached results", run_dir.name)
        return pd.read_parquet(run_dir / METRICS_FILE)
    data = load_run_data(config)  # bad data fails here, before the pre-trained run computes anything
    if config.method != PRETRAINED:
        ensure_run(config.pretrained(), runs_dir, device, checkpoint_every, eval_batch_size)
    torch_device = resolve_device(device)
    with run_lock(run_dir), _log_to(run_dir / "log.txt"):
        if is_complete(run_dir):  # finished by another process while we waited to start
            return pd.read_parquet(run_dir / METRICS_FILE)
        atomic_write_json(run_dir / "config.json", config.to_dict())
        atomic_write_json(run_dir / "env.json", env_info(torch_device))
        if config.method == PRETRAINED:
            log.info("run %s on %s: alignment of the pre-trained encoder", run_dir.name, torch_device)
            metrics = _pretrained_alignment(config, data, torch_device, eval_batch_size)
        else:
            log.info("run %s on %s: %d training examples", run_dir.name, torch_device, len(data.train))
            metrics = _train_and_evaluate(config, data, run_dir, torch_device, checkpoint_every, eval_batch_size)
        frame = result_rows(config, metrics)
        atomic_write_parquet(run_dir / METRICS_FILE, frame)
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)
        log.info("run %s complete", run_dir.name)
    return frame


def fine_tune(config: RunConfig, data: RunData, checkpoint_path: Path, device, checkpoint_every: int = 200):
    """``config.model`` with a fresh task head, fine-tuned on ``data.train`` (seeded by ``config.seed``); model and tokenizer."""
    from transformers import set_seed

    from .models import load_classifier
    from .train import fit

    set_seed(config.seed)
    model, tokenizer = load_classifier(config.model, num_labels=len(tasks.get_task(config.task).labels), device=device)
    fit(model, tokenizer, data.train, config, checkpoint_path, device, checkpoint_every)
    return model, tokenizer


def _train_and_evaluate(config, data, run_dir, device, checkpoint_every, eval_batch_size) -> list[dict]:
    from .evaluate import generalized_sets, zero_shot_accuracy
    from .robust import make_method

    model, tokenizer = fine_tune(config, data, run_dir / "checkpoint.pt", device, checkpoint_every)
    predictor = make_method(config.method, config.method_params).predictor()
    eval_sets = {lang: data.eval_sets[lang] for lang in config.tgt_langs}
    if config.generalized_examples:
        languages = list(dict.fromkeys((config.src_lang, *config.tgt_langs)))
        eval_sets |= generalized_sets(data.eval_sets, languages, config.generalized_examples)
    accuracies = zero_shot_accuracy(model, tokenizer, eval_sets, config.max_seq_length, device, eval_batch_size, predictor)
    for lang, value in accuracies.items():
        log.info("accuracy %s: %.4f", lang, value)
    accuracy_rows = [{"tgt_lang": lang, "metric": "accuracy", "value": value} for lang, value in accuracies.items()]
    return accuracy_rows + _alignment(config, data, model.base_model, tokenizer, device, eval_batch_size)


def _pretrained_alignment(config, data, device, eval_batch_size) -> list[dict]:
    from .models import load_encoder

    encoder, tokenizer = load_encoder(config.model, device=device)
    return _alignment(config, data, encoder, tokenizer, device, eval_batch_size)


def _alignment(config, data, encoder, tokenizer, device, eval_batch_size) -> list[dict]:
    from .align import measure_alignment

    return measure_alignment(
        encoder, tokenizer, data.parallel, config.src_lang, config.tgt_langs, config.align_pooling,
        config.max_seq_length, eval_batch_size, device,
    )  # fmt: skip


def load_results(runs_dir: str | Path = "runs") -> pd.DataFrame:
    """All complete runs' rows as one tidy table (empty, with the schema, when none)."""
    frames = [pd.read_parquet(path) for path in sorted(Path(runs_dir).glob(f"*/{METRICS_FILE}"))]
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=RESULT_COLUMNS)  # runs older than a column lack it
