"""The synthesis' sentences: written from real analysis tables, with the interval and the right word."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xltlib.report import analysis, comparison, findings, prose
from xltlib.report.intervals import describe
from xltlib.report.simulation import simulate, simulate_draws, write_store
from xltlib.report.study import load_study


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


def test_the_comparison_prose_ranks_candidates_only_and_counts_the_holm_family_on_one_draw():
    results = simulate(np.random.default_rng(34), layer_slopes={1: 0.0, 2: 0.8}, noise=0.005)
    results = pd.concat([results, results[results.metric == "cosine_gap"].assign(metric="cka")], ignore_index=True)
    text = prose.best_metric_lines(comparison.scores_by_draw(results))
    assert text.count("`cosine_gap` at layer 2 explains most") == 2 and "left out" not in text
    assert "Holm-corrected over the 4 fits" in text and "the negative control, CKA, at best 98.4%" in text  # 4 layers


def test_the_comparison_prose_checks_the_pick_on_left_out_draws():
    frames = []
    for draw in range(3):
        frame = simulate(np.random.default_rng(60 + draw), layer_slopes={1: 0.0, 2: 0.8}, noise=0.005)
        frames.append(frame.assign(model=f"m{draw}", draw=draw, run_id=f"d{draw}-" + frame.run_id))
    scores = comparison.scores_by_draw(pd.concat(frames, ignore_index=True).astype({"draw": "Int64"}))
    text = prose.best_metric_lines(scores)
    assert "first on 3 of 3 draws" in text and "the folds agree on 3 of 3" in text and "Kendall's W" in text


def test_run_summary_units_and_gaps_say_what_was_read(tmp_path):
    store = simulate_draws(np.random.default_rng(35), {"standard": [0.0] * 3, "pgd": [0.01, 0.02, 0.0]})
    runs = write_store(store, tmp_path / "runs")
    study = load_study(str(runs), None, "", "task", "standard")
    assert study.several_draws == ["sim-nli"] and prose.units(study) == "3 draws × 1 seed"
    assert "Read **6 fine-tuned runs**" in prose.run_summary(study, "runs", "cosine_gap")
    assert prose.gaps_note(0, 0, 6).startswith("Every (method, seed, language) cell")
    assert "**2 cells have no result**" in prose.gaps_note(2, 1, 6) and "**1 of 6 runs" in prose.gaps_note(2, 1, 6)
    registered = {
        "file": "p.md",
        "commit": "abc",
        "date": "2026-12-01 10:00",
        "amended": "def",
        "amended_date": "2026-12-06",
    }
    assert prose.registration_line(registered) == (
        "Registered in `p.md`, commit `abc` (2026-12-01), last amended in `def` (2026-12-06). Each test below, then "
        "the verdicts per hypothesis (*as predicted*: in the registered direction)."
    )
    assert prose.registration_line(None).endswith("so its tests are not run.")
    assert prose.registration_line({**registered, "commit": None}).startswith("Not a git checkout")
