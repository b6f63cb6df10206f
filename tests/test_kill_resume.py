"""A run killed with SIGKILL mid-training resumes from its checkpoint in a new process."""

import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from xltlib.data.loading import load_train_file
from xltlib.data.tasks import TASKS
from xltlib.models import TinyXlmrSpec, build_tiny_xlmr


@pytest.mark.slow
def test_sigkilled_run_resumes_and_finishes(shared_data, tmp_path):
    pawsx = shared_data / "pawsx"
    train_file = pawsx / "paws-wiki-en" / "train-source.tsv"
    train = load_train_file(TASKS["pawsx"], train_file, limit=2000)
    model = build_tiny_xlmr(tmp_path / "model", list(train["text_a"]), TinyXlmrSpec(vocab_size=1000))
    command = [
        sys.executable,
        "-m",
        "xltlib",
        "run",
        "--task",
        "pawsx",
        "--model",
        str(model),
        "--data-dir",
        str(pawsx / "xtreme"),
        "--train-file",
        str(train_file),
        "--lr",
        "1e-3",
        "--epochs",
        "6",
        "--batch-size",
        "16",
        "--max-train-examples",
        "2000",
        "--max-eval-examples",
        "50",
        "--checkpoint-every",
        "20",
        "--out",
        str(tmp_path / "runs"),
        "--device",
        "cpu",
        "--max-align-sentences",
        "50",
    ]
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    for line in first.stderr:
        if "checkpoint at step 40/" in line:
            break
        assert time.monotonic() < deadline, "no checkpoint written in time"
    first.send_signal(signal.SIGKILL)
    first.wait()
    (run_dir,) = (tmp_path / "runs").glob("pawsx-standard-*")
    (pretrained_dir,) = (tmp_path / "runs").glob("pawsx-pretrained-*")
    assert (pretrained_dir / "metrics.parquet").exists()  # measured before training started
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "metrics.parquet").exists()

    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "resuming from checkpoint" in second.stderr
    results = pd.read_parquet(run_dir / "metrics.parquet")
    assert sorted(results.loc[results["metric"] == "accuracy", "tgt_lang"]) == sorted(TASKS["pawsx"].languages)
    assert not (run_dir / "checkpoint.pt").exists()
