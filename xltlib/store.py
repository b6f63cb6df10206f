"""The run store: run identity, locks, atomic result files and the results table.

A run directory ``{runs_dir}/{run_id}/`` holds ``config.json``, ``env.json``,
``checkpoint.pt`` while training, ``log.txt`` and, last of all, ``metrics.parquet``.
The metrics file is written only when everything else succeeded, so its presence is
what "complete" means: a complete run is never recomputed (:mod:`xltlib.pipeline`).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from xltlib.config import RunConfig
from xltlib.files import LOCK_TIMEOUT, atomic_write, file_lock

RESULT_COLUMNS = [
    "run_id", "profile", "task", "model", "draw", "method", "seed",
    "src_lang", "tgt_lang", "layer", "pooling", "metric", "value",
]  # fmt: skip


METRICS_FILE = "metrics.parquet"


PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "numpy", "pandas", "pyarrow")


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def run_lock(run_dir: Path, timeout: float = LOCK_TIMEOUT):
    """The run directory's lock (:func:`xltlib.files.file_lock`): a second writer waits, then finds the run complete."""
    return file_lock(run_dir / ".lock", f"run {run_dir.name}", timeout)


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
        "host": socket.gethostname(),
        "pid": os.getpid(),
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
        "model": config.model_name,
        "draw": config.draw,
        "method": config.method,
        "seed": config.seed,
        "src_lang": config.src_lang,
    }
    frame = pd.DataFrame([{**base, "layer": None, "pooling": None, **row} for row in metrics], columns=RESULT_COLUMNS)
    return frame.astype({"draw": "Int64", "layer": "Int64", "pooling": "string", "seed": "int64", "value": "float64"})


def is_complete(run_dir: Path) -> bool:
    return (run_dir / METRICS_FILE).exists()


def load_results(runs_dir: str | Path = "runs") -> pd.DataFrame:
    """All complete runs' rows as one tidy table (empty, with the schema, when none)."""
    frames = [pd.read_parquet(path) for path in sorted(Path(runs_dir).glob(f"*/{METRICS_FILE}"))]
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=RESULT_COLUMNS)  # runs older than a column lack it
