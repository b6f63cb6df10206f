"""The calibration report on the tiny profile: it reports the runs it was asked for, on the split and encoder asked for."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def calibrate(cache: Path, runs: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "benchmarks/synthetic_calibration.py", "--quick", "--cache", str(cache), "--runs", str(runs), *args],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def table_row(report: str, name: str) -> list[str]:
    row = next(line for line in report.splitlines() if line.startswith(f"| {name} "))
    return [cell.strip() for cell in row.strip("|").split("|")[1:]]


def test_calibration_reports_only_its_own_runs(tmp_path):
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    two_seeds = calibrate(cache, runs, "--seeds", "1,2")
    assert table_row(two_seeds, "seeds") == ["2.000", "2.000"]
    other_draw = calibrate(cache, runs, "--seeds", "1", "--eval-split", "dev", "--pretrain-seed", "1")
    assert "dev files" in other_draw
    assert table_row(other_draw, "seeds") == ["1.000", "1.000"]  # the folder's earlier runs are left out
    assert len(list((cache / "synthetic").glob("encoder-*"))) == 2  # another masked-LM seed, another encoder
    assert len(list(runs.glob("syn-nli-standard-*"))) == 3  # that folder held three standard runs
