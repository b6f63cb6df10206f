"""The calibration report on the tiny profile: it reports the runs it was asked for, on the split and encoder asked
for."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xltlib.synthetic import calibration

REPO = Path(__file__).resolve().parent.parent


def calibrate(cache: Path, runs: Path, *args: str) -> tuple[str, dict]:
    """The probe's report, and its acceptance figures (task and draw → figure → value) from its --summary file."""
    summary = runs.parent / "summary.json"
    command = ["book/probes/synthetic_calibration.py", "--quick", "--cache", str(cache), "--runs", str(runs)]
    done = subprocess.run(
        [sys.executable, *command, "--summary", str(summary), *args], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, json.loads(summary.read_text())


def test_calibration_reports_only_its_own_runs(tmp_path):
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    _, two_seeds = calibrate(cache, runs, "--seeds", "1,2")
    assert {figures["seeds"] for figures in two_seeds.values()} == {2}
    report, other_draw = calibrate(cache, runs, "--seeds", "1", "--eval-split", "dev", "--draws", "1")
    assert list(other_draw) == ["syn-nli draw 1", "syn-paws draw 1"] and "dev files" in report
    assert {figures["seeds"] for figures in other_draw.values()} == {1}  # the folder's earlier runs are left out
    assert len(list((cache / "synthetic").glob("encoder-*"))) == 2  # another masked-LM seed, another encoder
    assert len(list(runs.glob("syn-nli-standard-*"))) == 3  # that folder held three standard runs


def test_seed_budget_is_computed_over_the_languages_not_the_mixed_pairs():
    rng = np.random.default_rng(0)
    distances = {"base": 0.0, "a80": 0.2, "a0": 1.0, "a0vso": 1.75}
    rows = []
    for seed in (1, 2, 3):
        for lang in distances:
            rows.append(("standard", seed, lang, 0, "accuracy", rng.uniform(0.3, 1.0)))
            rows += [
                (method, seed, lang, 1, metric, rng.uniform())
                for method in ("pretrained", "standard")
                for metric in ("cosine_gap", "retrieval_cosine")
                if lang != "base"
            ]
        rows += [("standard", seed, f"{a}|{b}", 0, "accuracy", 0.325) for a in distances for b in distances if a != b]
    results = pd.DataFrame(rows, columns=["method", "seed", "tgt_lang", "layer", "metric", "value"]).assign(
        task="syn-nli"
    )
    _, summary = calibration.calibration_table(results, "syn-nli", distances)
    accuracy = results[(results.metric == "accuracy") & results.tgt_lang.isin(["a80", "a0", "a0vso"])]
    target_means = accuracy.groupby("seed")["value"].mean().to_numpy(dtype=np.float64)
    sd = target_means.std(ddof=1)
    assert summary["seed_sd"] == pytest.approx(sd, rel=1e-12)
    assert summary["half_width"] == pytest.approx(stats.t.ppf(0.975, 4) * sd * np.sqrt(2 / 3), rel=1e-12)
    retrieval = results[(results.method == "pretrained") & (results.metric == "retrieval_cosine")]
    worst = retrieval[retrieval.tgt_lang != "base"].groupby("tgt_lang")["value"].mean().min()
    expected = worst - calibration.retrieval_chance_bound(500)
    assert summary["retrieval_margin"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("sentences", [100, 500, 1000])
def test_the_retrieval_bound_is_exceeded_by_chance_less_than_once_in_a_hundred(sentences):
    bound = calibration.retrieval_chance_bound(sentences)
    hits = round(bound * sentences)
    chance = stats.binom(sentences, 1 / sentences)
    assert chance.sf(hits - 1) < 0.01 <= chance.sf(hits - 2)  # P(X ≥ hits) < 1% ≤ P(X ≥ hits − 1)


def test_acceptance_compares_each_figure_with_its_target_on_the_right_side():
    passing = {
        "source_accuracy": 0.90,
        "worst_target_margin": 0.0,
        "target_spread": 0.15,
        "rho_distance_cosine_gap": -0.7,
        "rho_distance_retrieval": -0.95,
        "retrieval_margin": 0.001,
    }
    failing = {
        "source_accuracy": 0.899,
        "worst_target_margin": -0.046,
        "target_spread": 0.149,
        "rho_distance_cosine_gap": -0.69,
        "rho_distance_retrieval": float("nan"),
        "retrieval_margin": 0.0,
    }
    verdicts = calibration.acceptance({"pass": passing, "fail": failing})
    assert set(verdicts["figure"]) == set(calibration.ACCEPTANCE) == set(passing)
    assert verdicts[verdicts.task == "pass"]["met"].all() and not verdicts[verdicts.task == "fail"]["met"].any()
    assert set(verdicts["label"]) == {calibration.LABELS[figure] for figure in calibration.ACCEPTANCE}


@pytest.mark.parametrize("lines, limit, expected", [(100, 500, 100), (1000, 500, 500), (80, None, 80)])
def test_retrieval_chance_counts_the_sentences_alignment_was_measured_on(tmp_path, lines, limit, expected):
    (tmp_path / "parallel-base.txt").write_text("".join(f"sentence {i}\n" for i in range(lines)))
    config = SimpleNamespace(data_dir=str(tmp_path), max_align_sentences=limit)
    assert calibration.alignment_sentences(config) == expected
