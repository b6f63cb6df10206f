"""The synthesis chapter's statements: scales, picks and verdicts, on tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xltlib.report import analysis, findings
from xltlib.report.simulation import simulate


def effect_row(
    task="t",
    method="pgd",
    outcome="accuracy",
    language=analysis.ALL_LANGUAGES,
    estimate=0.0,
    ci_low=np.nan,
    ci_high=np.nan,
) -> dict:
    return {
        "task": task,
        "model": "m",
        "method": method,
        "outcome": outcome,
        "language": language,
        "estimate": estimate,
        "ci_low": ci_low,
        "ci_high": ci_high,
    }


def test_within_language_sd_matches_a_loop_over_languages():
    rng = np.random.default_rng(110)
    cells = pd.DataFrame(
        {
            "task": rng.choice(["a", "b"], 200),
            "language": rng.choice(["x", "y", "z"], 200),
            "alignment": rng.normal(size=200),
            "accuracy": rng.normal(size=200),
        }
    )
    cells.loc[cells.index[:5], "accuracy"] = np.nan  # incomplete cells do not count
    sd = findings.within_language_sd(cells)
    for task in ("a", "b"):
        part = cells[(cells.task == task) & cells.accuracy.notna()]
        centred = [
            value - part[part.language == lang].alignment.mean() for lang, value in zip(part.language, part.alignment)
        ]
        assert sd[task] == pytest.approx(np.std(centred, ddof=1), rel=1e-12)


def test_best_method_is_the_largest_accuracy_gain_of_the_task_and_setting():
    summary = pd.DataFrame(
        [
            effect_row(method="pgd", estimate=0.01),
            effect_row(method="freelb", estimate=0.03),
            effect_row(method="rs_rp", estimate=0.09, outcome="cosine_gap"),  # alignment: not a candidate
            effect_row(method="rs_da", estimate=0.20, language=analysis.GENERALIZED),  # another setting
            effect_row(task="other", method="rs_rp", estimate=0.50),
        ]
    )
    assert findings.best_method(summary, "t").method == "freelb"
    assert findings.best_method(summary, "t", analysis.GENERALIZED).method == "rs_da"
    assert findings.best_method(summary, "absent") is None


@pytest.mark.parametrize(
    "low, high, expected",
    [
        (0.01, 0.03, "a gain"),
        (-0.03, -0.01, "a loss"),
        (-0.01, 0.02, "inconclusive"),
        (np.nan, np.nan, "single seed"),
    ],
)
def test_verdict_reads_the_interval(low, high, expected):
    assert expected in findings.verdict(pd.Series(effect_row(estimate=0.0, ci_low=low, ci_high=high)))


def test_paper_relation_compares_points_with_a_fraction_interval():
    row = pd.Series(effect_row(estimate=0.01, ci_low=0.0, ci_high=0.02))
    assert findings.paper_relation(row, 1.6) == "within"
    assert findings.paper_relation(row, 2.1) == "outside"
    assert findings.paper_relation(pd.Series(effect_row()), 1.6) == "not comparable with"


def test_generalized_larger_counts_pairs_with_both_settings():
    summary = pd.DataFrame(
        [
            effect_row(method="pgd", estimate=0.01),
            effect_row(method="pgd", estimate=0.02, language=analysis.GENERALIZED),
            effect_row(method="freelb", estimate=0.03),
            effect_row(method="freelb", estimate=0.00, language=analysis.GENERALIZED),
            effect_row(method="rs_rp", estimate=0.05),  # no generalized gain: not compared
        ]
    )
    assert findings.generalized_larger(summary) == (1, 2)


def test_distance_counts_split_falling_rising_and_unfitted_slopes():
    distance = pd.DataFrame(
        [
            {"estimate": -1.0, "ci_low": -2.0, "ci_high": -0.5, "note": None},
            {"estimate": 1.0, "ci_low": 0.5, "ci_high": 2.0, "note": None},
            {"estimate": 0.1, "ci_low": -1.0, "ci_high": 1.0, "note": None},
            {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "note": "fewer than 3 languages"},
        ]
    )
    assert findings.distance_counts(distance) == {
        "fitted": 3,
        "falling": 1,
        "rising": 1,
        "unfitted": 1,
        "note": "fewer than 3 languages",
    }


def test_a_simulated_gain_is_found_and_called_a_gain():
    results = simulate(np.random.default_rng(3), method_accuracy={"standard": 0.0, "pgd": 0.05, "rs_rp": 0.0}, seeds=5)
    summary = findings.effect_summary(analysis.method_effects(results))
    assert set(summary.setting) == {"accuracy, all targets", "accuracy, generalized", "cosine_gap"}
    best = findings.best_method(summary, "sim-nli")
    assert best.method == "pgd" and findings.verdict(best) == "the interval excludes zero: a gain"


def test_gain_grids_show_accuracy_in_points_and_settings_keep_the_books_order():
    from xltlib.report import tables

    rows = [
        effect_row(estimate=0.021, ci_low=-0.004, ci_high=0.046),
        effect_row(outcome="cosine_gap", estimate=0.0123, ci_low=0.01, ci_high=0.0146),
        effect_row(language="a0", estimate=0.01, ci_low=0.0, ci_high=0.02),
    ]
    effects = pd.DataFrame(rows).assign(p_value=0.04)
    summary = findings.effect_summary(effects)
    assert findings.settings(summary, "cosine_gap") == ["accuracy, all targets", "cosine_gap"]
    grid = tables.gains(summary, ["task", "method"], "setting", with_p=True)
    assert grid.loc[("t", "pgd"), "accuracy, all targets"] == "+2.1 [−0.4, +4.6], p = 0.04"
    assert grid.loc[("t", "pgd"), "cosine_gap"] == "+0.0123 [+0.0100, +0.0146], p = 0.04"
    assert list(findings.per_language(effects).language) == ["a0"]
    assert tables.tidy(pd.DataFrame({"a": ["x"], "b": [np.nan]})).loc["x", "b"] == "–"
