"""The synthesis' sentences: written from real analysis tables, with the interval and the right word."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xltlib.report import analysis, findings, prose
from xltlib.report.intervals import describe
from xltlib.report.simulation import simulate


def level_tables(results: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    level = analysis.level_model(results)
    slopes = level[level.term.isin(["alignment", "alignment_between"])]
    return slopes, findings.within_language_sd(analysis.cells(results).dropna(subset=["accuracy", "alignment"]))


def test_level_lines_give_the_within_slope_per_sd_with_its_runs_and_the_confounded_between_slope():
    slopes, within_sd = level_tables(simulate(np.random.default_rng(30), 0.5))
    text = prose.level_lines(slopes, within_sd, ["sim-nli"], "cosine_gap")
    within = slopes[(slopes.fit == "ols") & (slopes.term == "alignment")].iloc[0]
    assert describe(within, 100 * within_sd["sim-nli"], " pts") in text
    assert "CR2 by run over 9 runs" in text and "Mundlak" in text and "not the effect of alignment" in text
    flat = simulate(np.random.default_rng(31)).assign(value=lambda t: t.value.where(t.metric != "accuracy", 0.4))
    slopes, within_sd = level_tables(flat)
    assert prose.level_lines(slopes, within_sd, ["sim-nli"], "cosine_gap").startswith("- **sim-nli**: not estimated (")


def test_the_conclusion_says_inconclusive_when_the_interval_spans_zero_and_goes_with_when_it_does_not():
    for slope, word in ((0.0, "is inconclusive"), (2.0, "goes with")):
        results = simulate(np.random.default_rng(32), slope, noise=0.02 if slope == 0 else 0.002)
        level = analysis.level_model(results)
        within_sd = findings.within_language_sd(analysis.cells(results).dropna(subset=["accuracy", "alignment"]))
        found = prose.Findings(level=level, within_sd=within_sd, metric="cosine_gap", baseline="standard")
        text = prose.conclusion(found, "sim-nli")
        assert word in text and text.startswith("**sim-nli.** Within a language") and text.endswith(".")


def test_best_method_lines_name_the_pick_its_verdict_and_the_paper_only_for_its_task():
    results = simulate(np.random.default_rng(33), method_accuracy={"standard": 0.0, "pgd": 0.05, "rs_rp": 0.0}, seeds=4)
    summary = findings.effect_summary(analysis.method_effects(results))
    text = prose.best_method_lines(summary, ["sim-nli"], "standard", pd.DataFrame(), True, {"xnli": 1.6})
    best = findings.best_method(summary, "sim-nli")
    assert best.method == "pgd" and prose.in_points(best) in text and findings.verdict(best) in text
    assert "picked after the fact" in text and "Huang" not in text
    assert "Huang et al. (2021) report +1.6" in prose.best_method_lines(
        summary.assign(task="xnli"), ["xnli"], "standard", pd.DataFrame(), True, {"xnli": 1.6}
    )
