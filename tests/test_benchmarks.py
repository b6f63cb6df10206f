"""The GPU benchmark's CPU smoke run: every section prints, on the same functions the GPU run times."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_throughput_runs_every_section_on_the_cpu():
    done = subprocess.run(
        [sys.executable, "train_throughput.py", "--small", "--device", "cpu"],
        cwd=REPO / "benchmarks",
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:4] for line in done.stdout.splitlines() if line.strip()}
    for method in ("standard", "pgd", "freelb", "rs_rp", "rs_da", "reference"):
        step_ms, tokens_per_s, mfu = rows[method]
        assert float(step_ms) > 0 and float(tokens_per_s.replace(",", "")) > 0 and 0 < float(mfu) < 1, method
    assert "2,000" in done.stdout and "8,000" in done.stdout and "margin ÷ cosine" in done.stdout
    assert "sentences/s" in done.stdout


@pytest.mark.slow
def test_run_breakdown_times_every_part_of_a_run():
    """Each part the benchmark wraps is a function the pipeline calls: a renamed one would read 0 s."""
    done = subprocess.run(
        [sys.executable, "benchmarks/run_breakdown.py", "--task", "syn-paws"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    whole = float(lines[0].split(": ")[1].split()[0])
    parts = {line[:40].strip(): float(line[40:].split()[0]) for line in lines[2:]}
    assert set(parts) == {
        "training",
        "zero-shot targets",
        "generalized pairs",
        "alignment",
        "other (data, model loading, records)",
    }
    assert all(seconds > 0 for seconds in parts.values()), parts
    assert sum(parts.values()) == pytest.approx(whole, abs=0.5)
