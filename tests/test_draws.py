"""Estimates across pre-training draws recover known effects, hold their level, and widen with the spread between
draws."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xltlib.report import analysis, draws
from xltlib.report.simulation import simulate, simulate_draws


def study(
    rng: np.random.Generator, effects: list[float], seeds: int = 3, slope: float = 0.5, pgd_alignment: float = 0.02
):
    """One simulated store per draw, ``pgd``'s accuracy gain on draw d being ``effects[d]``."""
    accuracy = {"standard": [0.0] * len(effects), "pgd": effects}
    return simulate_draws(rng, accuracy, {"standard": 0.0, "pgd": pgd_alignment}, seeds=seeds, slope=slope)


def pooled(effects: pd.DataFrame, method: str = "pgd", outcome: str = "accuracy") -> pd.Series:
    rows = effects[
        (effects.method == method) & (effects.outcome == outcome) & (effects.language == analysis.ALL_LANGUAGES)
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_the_estimate_is_the_mean_gain_over_every_draw_and_seed_and_each_draw_is_reported():
    results = study(np.random.default_rng(107), [0.01, 0.03, -0.02])
    row = pooled(draws.method_effects_across_draws(results))
    units = analysis.method_units(results)
    units = units[(units.method == "pgd") & (units.outcome == "accuracy") & (units.language == analysis.ALL_LANGUAGES)]
    by_model = units.groupby("model").gain.mean()
    assert row.estimate == pytest.approx(by_model.mean(), abs=1e-12)
    assert row.ci_high - row.estimate == pytest.approx(stats.t.ppf(0.975, 2) * stats.sem(by_model), rel=1e-9)
    assert row.per_draw == ", ".join(f"{d}: {by_model[f'm{d}']:+.4g}" for d in range(3))
    assert row.model == "draws 0, 1, 2" and row.n_draws == 3 and row.n_obs == 9
    assert row.draws_agreeing == int((np.sign(by_model) == np.sign(by_model.mean())).sum())


def test_intervals_cover_the_true_effect_and_widen_with_the_spread_between_draws():
    rng = np.random.default_rng(11)
    covered, widths = 0, {0.0: [], 0.02: []}
    for _ in range(40):
        for spread in widths:
            row = pooled(draws.method_effects_across_draws(study(rng, list(0.01 + spread * rng.standard_normal(3)))))
            widths[spread].append(row.ci_high - row.ci_low)
            covered += spread == 0.02 and row.ci_low <= 0.01 <= row.ci_high
    assert covered >= 34, covered  # 95% of 40 is 38; the t interval over three draws holds its level
    assert np.mean(widths[0.02]) > 1.5 * np.mean(widths[0.0])


def test_the_paired_slope_across_draws_is_the_mean_of_each_draws_slope_and_covers_a_known_slope():
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(20):
        results = study(rng, [0.0, 0.0, 0.0], slope=0.5, pgd_alignment=0.05)
        row = draws.paired_slope_across_draws(results).iloc[0]
        per_draw = analysis.paired_model(results).query("term == 'alignment'").estimate
        assert row.estimate == pytest.approx(per_draw.mean(), rel=1e-12) and row.n_draws == 3
        hits += row.ci_low <= 0.5 <= row.ci_high
    assert hits >= 17, hits


def test_a_configuration_of_one_draw_only_is_left_out_and_changes_nothing():
    rng = np.random.default_rng(3)
    results = study(rng, [0.01, 0.02, 0.0])
    dosed = simulate(rng, 0.5, {"standard": 0.0, "pgd": 0.3}).query("method == 'pgd'")
    dosed = dosed.assign(
        model="m0",
        draw=0,
        run_id="dose-" + dosed.run_id,
        config_id="c-pgd-3x",
        settings=json.dumps({"method": "pgd", "method_params": {"eps": 3}}),
    )
    results = results.assign(settings=json.dumps({"method_params": {}}))
    results.loc[results.method == "pgd", "settings"] = json.dumps({"method": "pgd", "method_params": {"eps": 1}})
    before = draws.method_effects_across_draws(results)
    after = draws.method_effects_across_draws(pd.concat([results, dosed.astype({"draw": "Int64"})]))
    assert set(before.method) == {"pgd"} and set(after.method) == {"pgd(eps=1)"}  # named apart from the dose
    pd.testing.assert_frame_equal(before.drop(columns=["method", "term"]), after.drop(columns=["method", "term"]))


@pytest.mark.parametrize(
    ("low", "high", "agreeing", "expected"),
    [
        (0.01, 0.03, 3, "a gain, in 3 of 3 draws"),
        (0.01, 0.03, 2, "a gain, in 2 of 3 draws (depends on the draw)"),
        (-0.03, -0.01, 3, "a loss, in 3 of 3 draws"),
        (-0.01, 0.03, 3, "inconclusive"),
        (np.nan, np.nan, 1, "no interval"),
    ],
)
def test_holds_across_draws_reads_the_interval_and_the_draws(low, high, agreeing, expected):
    row = pd.Series({"ci_low": low, "ci_high": high, "draws_agreeing": agreeing, "n_draws": 3})
    assert draws.holds_across_draws(row) == expected
    slope = draws.holds_across_draws(row, ("positive", "negative"))
    assert slope == expected.replace("a gain", "positive").replace("a loss", "negative").replace("effect", "sign")


def test_the_study_pools_draws_where_a_task_has_several_and_keeps_one_draw_for_the_models():
    rng = np.random.default_rng(108)
    several = study(rng, [0.01, 0.02, 0.0])
    single = simulate(rng, 0.5, {"standard": 0.0, "pgd": 0.01}).assign(
        task="other", draw=0, run_id=lambda f: "o-" + f.run_id
    )
    results = pd.concat([several, single.astype({"draw": "Int64"})], ignore_index=True)
    effects = draws.study_method_effects(results)
    assert set(effects[effects.task == "sim-nli"].model) == {"draws 0, 1, 2"}
    alone = analysis.method_effects(results[results.task == "other"])
    pd.testing.assert_frame_equal(
        effects[effects.task == "other"].reset_index(drop=True)[alone.columns], alone, check_dtype=False
    )
    extra = several[(several.draw == 1) & (several.method == "pgd")].assign(
        run_id=lambda f: "x-" + f.run_id, seed=lambda f: f.seed + 10
    )
    primary = draws.primary_draw(pd.concat([results, extra], ignore_index=True))  # draw 1 now has the most runs
    assert set(primary[primary.task == "sim-nli"].draw) == {1} and set(primary[primary.task == "other"].draw) == {0}


@pytest.mark.slow
def test_the_synthesis_chapter_states_which_conclusions_hold_across_draws(tmp_path):
    import papermill

    from xltlib.report.batch import KERNEL, SYNTHESIS_NOTEBOOK
    from xltlib.report.simulation import write_store
    from xltlib.store import code_version

    results = study(np.random.default_rng(2), [0.03, 0.04, 0.035]).assign(code_version=code_version())
    write_store(results, tmp_path / "runs")
    out = tmp_path / "synthesis.ipynb"
    papermill.execute_notebook(
        str(SYNTHESIS_NOTEBOOK),
        str(out),
        kernel_name=KERNEL,
        progress_bar=False,
        parameters={"runs_dir": str(tmp_path / "runs"), "profile": ""},
    )
    text = out.read_text()
    assert "pre-training draws 0, 1, 2" in text and "a gain, in 3 of 3 draws" in text
    assert '"output_type": "error"' not in text


def test_the_power_probe_reports_each_sub_grids_widest_interval_and_run_time(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("power_by_grid", "book/probes/power_by_grid.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    results = study(np.random.default_rng(109), [0.01, 0.02, 0.0], seeds=3)
    for run_id in results.run_id.unique():
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "log.txt").write_text("2026-12-03 10:00:00,000 start\n2026-12-03 10:01:00,500 done\n")
    table = probe.sub_grids(results, tmp_path).set_index(["draws", "seeds"])
    assert list(table.index) == [
        (1, 2),
        (1, 3),
        (2, 1),
        (2, 2),
        (2, 3),
        (3, 1),
        (3, 2),
        (3, 3),
    ]  # two draws need one seed
    assert table.loc[(3, 3), "runs"] == 3 + 3 * 2 * 3  # a pre-trained run per draw, two methods × three seeds per draw
    assert table.loc[(3, 3), "run minutes"] == round(21 * 60.5 / 2 / 60, 1)
    effects = draws.study_method_effects(results)
    row = effects[(effects.outcome == "accuracy") & (effects.language == analysis.ALL_LANGUAGES)].iloc[0]
    assert table.loc[(3, 3), "±sim-nli"] == round(100 * (row.ci_high - row.estimate), 2)


def test_the_across_draws_tables_carry_each_gain_and_slope_with_its_conclusion():
    from xltlib.report import findings, tables

    results = study(np.random.default_rng(120), [0.03, 0.04, 0.05, 0.035], seeds=1)
    across = draws.slopes_across_draws(results)
    assert across["within_cls"].empty and set(across["within"].task) == {"sim-nli"}
    summary = findings.effect_summary(draws.study_method_effects(results))
    gains, slopes = draws.across_draws_tables(summary, across)
    assert gains.set_index("method").loc["pgd", "conclusion"] == "a gain, in 4 of 4 draws"
    pgd = summary[(summary.method == "pgd") & (summary.setting == "accuracy, all targets")].iloc[0]
    assert gains.set_index("method").loc["pgd", "gain"] == tables.brief(pgd)
    assert list(slopes.slope) == ["within languages", "paired"] and slopes.n_draws.eq(4).all()
    assert draws.slopes_across_draws(results[results.model == "m0"])["within"].empty  # one draw: nothing across
