"""The regressions recover known effects from simulated results stores, and report gaps."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xltlib.errors import XltError
from xltlib.report import analysis, fits
from xltlib.report.factors import factor_model
from xltlib.report.simulation import HIDDEN_LAYERS, SOURCE, StudyDesign, simulate, simulate_study
from xltlib.store import RESULT_COLUMNS


def slope_row(table: pd.DataFrame, fit: str = "ols") -> pd.Series:
    rows = table[(table.term == "alignment") & (table.fit == fit)]
    assert len(rows) == 1
    return rows.iloc[0]


def covers(row: pd.Series, value: float) -> bool:
    return row.ci_low <= value <= row.ci_high


@pytest.mark.parametrize("true_slope", [0.5, 0.0])
def test_level_model_intervals_cover_the_true_slope(true_slope):
    rng = np.random.default_rng(7)
    method_accuracy = {"standard": 0.0, "pgd": 0.02, "rs_rp": -0.01}
    hits = {"ols": 0, "mundlak": 0}
    for _ in range(50):
        table = analysis.level_model(simulate(rng, true_slope, method_accuracy))
        for fit in hits:
            hits[fit] += covers(slope_row(table, fit), true_slope)
    assert hits["ols"] >= 45 and hits["mundlak"] >= 45, hits


def test_level_model_estimates_method_effects_at_equal_alignment():
    table = analysis.level_model(simulate(np.random.default_rng(1), 0.5, {"standard": 0.0, "pgd": 0.05, "rs_rp": 0.0}))
    ols = table[table.fit == "ols"].set_index("term")
    assert covers(ols.loc["method[pgd]"], 0.05) and ols.loc["method[pgd]"].ci_low > 0
    assert covers(ols.loc["method[rs_rp]"], 0.0)
    assert {"r2", "r2_partial", "aic"} <= set(ols.columns) and 0 < ols.loc["alignment"].r2_partial < 1
    mundlak = slope_row(table, "mundlak")
    assert 0 <= mundlak.r2_marginal <= mundlak.r2_conditional <= 1


@pytest.mark.parametrize("true_slope", [0.5, 0.0])
def test_paired_model_intervals_cover_the_true_slope(true_slope):
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(50):
        hits += covers(slope_row(analysis.paired_model(simulate(rng, true_slope))), true_slope)
    assert hits >= 45, hits


def test_paired_model_is_a_regression_of_differences_against_the_same_seed_and_language():
    results = simulate(np.random.default_rng(3), 0.4)
    grid = analysis.cells(results).set_index(["method", "seed", "language"])
    paired = analysis.deltas(results).set_index(["method", "seed", "language"])
    cell = ("pgd", 2, "t3")
    base = ("standard", 2, "t3")
    assert paired.loc[cell, "d_accuracy"] == pytest.approx(grid.loc[cell, "accuracy"] - grid.loc[base, "accuracy"])
    assert paired.loc[cell, "d_alignment"] == pytest.approx(grid.loc[cell, "alignment"] - grid.loc[base, "alignment"])
    slope = slope_row(analysis.paired_model(results))
    reference = np.polyfit(paired.d_alignment, paired.d_accuracy, 1)[0]
    assert slope.estimate == pytest.approx(reference, rel=1e-9)


def test_layer_mean_averages_the_hidden_layers_only():
    results = simulate(np.random.default_rng(4))
    hidden = analysis.cells(results, layer=None).alignment
    per_layer = [analysis.cells(results, layer=layer).alignment for layer in HIDDEN_LAYERS]
    np.testing.assert_allclose(hidden, sum(per_layer) / len(per_layer))
    with pytest.raises(XltError, match="did you mean"):
        analysis.cells(results, "cosine_gapp")
    with pytest.raises(XltError, match="layer"):
        analysis.cells(results, layer=7)


def test_a_failed_run_is_reported_and_left_out_not_silently_dropped():
    results = simulate(np.random.default_rng(5))
    complete = analysis.level_model(results)
    failed = results[results.run_id != "pgd-2"]
    with pytest.warns(analysis.MissingCellsWarning, match="8 cell"):
        table = analysis.level_model(failed)
    assert (table.n_missing == 8).all() and (table.n_obs == complete.n_obs.iloc[0] - 8).all()
    missing = analysis.missing_cells(failed)
    assert len(missing) == 8 and set(missing.method) == {"pgd"} and set(missing.seed) == {2}
    assert set(missing.missing) == {"run"}
    with pytest.warns(analysis.MissingCellsWarning):
        paired = analysis.paired_model(failed)
    assert (paired.n_missing == 8).all()
    with pytest.warns(analysis.MissingCellsWarning):
        effects = analysis.method_effects(failed)
    pgd = effects[(effects.method == "pgd") & (effects.outcome == "accuracy") & (effects.language == "t0")].iloc[0]
    assert pgd.n_obs == 2 and pgd.n_missing == 1


def test_missing_alignment_alone_is_named():
    results = simulate(np.random.default_rng(6))
    lost = (results.run_id == "rs_rp-1") & (results.tgt_lang == "t4") & (results.metric == "cosine_gap")
    with pytest.warns(analysis.MissingCellsWarning, match="1 cell"):
        missing = analysis.missing_cells(results[~lost])
        analysis.level_model(results[~lost])
    assert missing[["method", "seed", "language", "missing"]].values.tolist() == [["rs_rp", 1, "t4", "alignment"]]


def test_missing_baseline_names_the_methods_present():
    results = simulate(np.random.default_rng(6))
    with pytest.raises(XltError, match="did you mean 'standard'"):
        analysis.paired_model(results, baseline="standrd")


def test_method_effects_are_paired_t_over_seeds():
    results = simulate(np.random.default_rng(8), method_accuracy={"standard": 0.0, "pgd": 0.03, "rs_rp": 0.0}, seeds=5)
    effects = analysis.method_effects(results)
    paired = analysis.deltas(results)
    pgd = paired[paired.method == "pgd"]
    per_seed = pgd.groupby("seed").d_accuracy.mean().to_numpy()
    pgd_accuracy = effects[(effects.method == "pgd") & (effects.outcome == "accuracy")]
    overall = pgd_accuracy[pgd_accuracy.language == analysis.ALL_LANGUAGES].iloc[0]
    low, high = stats.t.interval(0.95, len(per_seed) - 1, loc=per_seed.mean(), scale=stats.sem(per_seed))
    assert (overall.estimate, overall.ci_low, overall.ci_high) == pytest.approx((per_seed.mean(), low, high))
    assert overall.p_value == pytest.approx(stats.ttest_1samp(per_seed, 0).pvalue)
    language = effects[(effects.method == "pgd") & (effects.outcome == "cosine_gap") & (effects.language == "t2")].iloc[
        0
    ]
    assert language.estimate == pytest.approx(pgd[pgd.language == "t2"].d_alignment.mean())
    generalized = effects[(effects.language == analysis.GENERALIZED) & (effects.method == "pgd")]
    assert len(generalized) == 1 and covers(generalized.iloc[0], 0.03 + 0.5 * 0.02)


@pytest.mark.parametrize("true_effect", [0.02, 0.0])
def test_method_effect_intervals_cover_the_truth(true_effect):
    rng = np.random.default_rng(9)
    hits = 0
    for _ in range(50):
        effects = analysis.method_effects(simulate(rng, 0.0, {"standard": 0.0, "pgd": true_effect, "rs_rp": 0.0}))
        pgd = effects[(effects.method == "pgd") & (effects.outcome == "accuracy")]
        hits += covers(pgd[pgd.language == analysis.ALL_LANGUAGES].iloc[0], true_effect)
    assert hits >= 45, hits


def test_one_seed_gives_estimates_without_intervals():
    effects = analysis.method_effects(simulate(np.random.default_rng(2), seeds=1))
    assert effects.estimate.notna().all() and effects.ci_low.isna().all()
    assert slope_row(analysis.level_model(simulate(np.random.default_rng(2), seeds=1))).ci_low < 0.5


def test_compare_alignment_ranks_the_layer_that_drives_accuracy_first():
    results = simulate(np.random.default_rng(10), layer_slopes={1: 0.0, 2: 0.8}, noise=0.005)
    table = analysis.compare_alignment(results, metrics=["cosine_gap"])
    assert set(table.analysis) == {"level", "paired"} and table.layer.isna().sum() == 2
    for analysis_kind, score in (("level", "r2_partial"), ("paired", "r2")):
        ranked = table[table.analysis == analysis_kind].sort_values(score, ascending=False)
        assert ranked.layer.iloc[0] == 2, ranked[["layer", score]]
        fitted = ranked.dropna(subset=["p_value"])
        ordered = fitted.sort_values("p_value")
        steps = [min(1.0, (len(fitted) - i) * p) for i, p in enumerate(ordered.p_value)]  # Holm, by hand
        assert ordered.p_holm.tolist() == pytest.approx(np.maximum.accumulate(steps).tolist())


def test_cka_is_compared_as_a_negative_control_outside_the_holm_family():
    results = simulate(np.random.default_rng(10), layer_slopes={1: 0.0, 2: 0.8}, noise=0.005)
    results = pd.concat([results, results[results.metric == "cosine_gap"].assign(metric="cka")], ignore_index=True)
    table = analysis.compare_alignment(results, metrics=["cosine_gap", "cka"])
    control, candidate = table[table.metric == "cka"], table[table.metric == "cosine_gap"]
    assert (control.role == "negative control").all() and control.p_holm.isna().all()
    alone = analysis.compare_alignment(results, metrics=["cosine_gap"])
    np.testing.assert_allclose(candidate.p_holm.to_numpy(float), alone.p_holm.to_numpy(float))


def test_distance_model_recovers_larger_gains_for_worse_aligned_languages():
    results = simulate(np.random.default_rng(12), 0.0, gain_per_pretrained_alignment=-0.2, noise=0.002, languages=10)
    table = analysis.distance_model(results).set_index("method")
    assert covers(table.loc["pgd"], -0.2) and table.loc["pgd"].ci_high < 0
    points = analysis.gain_by_language(results)
    assert points.pretrained_alignment.notna().all() and (points.seeds == 3).all()


def test_rank_correlations_average_each_runs_rho_over_its_languages_with_runs_as_the_unit():
    results = simulate(np.random.default_rng(13))
    table = analysis.rank_correlations(results).set_index("method")
    grid = analysis.cells(results)
    per_run = grid.groupby(["method", "run_id"]).apply(lambda run: stats.spearmanr(run.alignment, run.accuracy)[0])
    assert table.loc["all"].estimate == pytest.approx(per_run.mean())
    assert table.loc["pgd"].estimate == pytest.approx(per_run["pgd"].mean())
    half = stats.t.ppf(0.975, len(per_run) - 1) * stats.sem(per_run)
    assert table.loc["all"].ci_high - table.loc["all"].estimate == pytest.approx(half)
    assert table.loc["all"].n_obs == grid.run_id.nunique() == 9


def test_describe_formats_an_estimate_with_its_interval():
    row = pd.Series({"estimate": 0.021, "ci_low": -0.004, "ci_high": 0.046})
    assert analysis.describe(row, scale=100, unit=" pts") == "+2.1 pts (95% CI −0.4 to +4.6)"
    assert analysis.describe(pd.Series({"estimate": 0.5, "ci_low": np.nan, "ci_high": np.nan})) == "+0.5"
    tiny_negative = pd.Series({"estimate": -0.0004, "ci_low": -0.06, "ci_high": 0.07})
    assert analysis.describe(tiny_negative) == "+0.0 (95% CI −0.1 to +0.1)"


def test_analyses_of_the_store_schema_run_without_warnings():
    results = simulate(np.random.default_rng(14))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for table in (
            analysis.level_model(results),
            analysis.paired_model(results),
            analysis.method_effects(results),
            analysis.distance_model(results),
            analysis.rank_correlations(results),
        ):
            assert {"term", "estimate", "ci_low", "ci_high", "p_value"} <= set(table.columns)


def test_an_outcome_that_never_varies_is_named_not_fitted():
    results = simulate(np.random.default_rng(15))
    results.loc[results.metric == "accuracy", "value"] = 0.37  # a classifier stuck on the majority class
    for table in (analysis.level_model(results), analysis.paired_model(results)):
        slope = table[table.term == "alignment"]
        assert slope.estimate.isna().all() and slope.note.str.contains("same in every cell").all()
    assert analysis.distance_model(results).note.str.contains("same for every language").all()
    assert analysis.rank_correlations(results).estimate.isna().all()
    comparison = analysis.compare_alignment(results, metrics=["cosine_gap"])
    assert comparison.estimate.isna().all() and {"r2", "r2_partial", "aic"} <= set(comparison.columns)


def test_the_level_model_reports_slope_and_methods_and_the_paired_model_its_intercept():
    results = simulate(np.random.default_rng(16))
    level = analysis.level_model(results)
    assert level[level.fit == "ols"].term.tolist() == ["alignment", "method[pgd]", "method[rs_rp]"]
    assert level[level.fit == "mundlak"].term.tolist() == [
        "alignment",
        "alignment_between",
        "method[pgd]",
        "method[rs_rp]",
    ]
    assert analysis.paired_model(results).term.tolist() == ["alignment", "intercept"]


def with_settings(results: pd.DataFrame, method: str, params: dict, config_id: str, suffix: str = "") -> pd.DataFrame:
    """The rows of ``method`` as another configuration: its parameters in ``settings``, its own runs."""
    import json

    rows = results[results.method == method]
    settings = json.dumps({"method": method, "method_params": params, "learning_rate": 5e-4})
    return rows.assign(config_id=config_id, settings=settings, run_id=rows.run_id + suffix)


def test_runs_that_differ_in_one_parameter_are_never_pooled():
    study = simulate(np.random.default_rng(5))
    study = pd.concat([study[study.method != "pgd"], with_settings(study, "pgd", {"eps": 0.002, "steps": 3}, "c-pgd")])
    stronger = with_settings(study, "pgd", {"eps": 0.2, "steps": 3}, "c-pgd-strong", "-strong")
    stronger = stronger.assign(value=stronger.value.where(stronger.metric != "accuracy", 0.0))  # a collapsed run
    mixed = pd.concat([study, stronger], ignore_index=True)

    labelled = analysis.label_configurations(mixed)
    assert set(labelled.method) == {"pretrained", "standard", "rs_rp", "pgd(eps=0.002)", "pgd(eps=0.2)"}
    effects = analysis.method_effects(mixed)
    alone = analysis.method_effects(study)
    pgd = effects[effects.method == "pgd(eps=0.002)"].drop(columns=["method", "term"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        pgd, alone[alone.method == "pgd"].drop(columns=["method", "term"]).reset_index(drop=True)
    )
    assert (effects[(effects.method == "pgd(eps=0.2)") & (effects.outcome == "accuracy")].estimate < -0.3).all()
    grid = analysis.cells(mixed)
    assert grid.groupby(["method", "seed", "language"]).size().max() == 1  # one run per cell, never an average


def test_configurations_differing_outside_method_parameters_are_labelled_by_that_field():
    study = simulate(np.random.default_rng(6))
    base = with_settings(study, "standard", {}, "c-std")
    other = base.assign(
        config_id="c-std-lr",
        run_id=base.run_id + "-lr",
        settings=base.settings.str.replace('"learning_rate": 0.0005', '"learning_rate": 0.001'),
    )
    labelled = analysis.label_configurations(pd.concat([base, other]))
    assert set(labelled.method) == {"standard(learning_rate=0.0005)", "standard(learning_rate=0.001)"}
    legacy = pd.concat([base, other]).assign(settings=None)  # stored before settings were: told apart by id
    assert set(analysis.label_configurations(legacy).method) == {"standard#c-std", "standard#c-std-"}


def test_a_dose_is_named_by_its_strength_unless_that_leaves_two_configurations_one_name():
    study = simulate(np.random.default_rng(8))
    pgd = [
        with_settings(study, "pgd", {"eps": eps, "alpha": alpha}, f"c-{eps}-{alpha}", f"-{eps}-{alpha}")
        for eps, alpha in ((0.02, 0.01), (0.06, 0.03))
    ]
    assert set(analysis.label_configurations(pd.concat(pgd)).method) == {"pgd(eps=0.02)", "pgd(eps=0.06)"}
    same_eps = with_settings(study, "pgd", {"eps": 0.02, "alpha": 0.005}, "c-half", "-half")
    names = set(analysis.label_configurations(pd.concat([*pgd, same_eps])).method)
    assert names == {"pgd(alpha=0.01, eps=0.02)", "pgd(alpha=0.03, eps=0.06)", "pgd(alpha=0.005, eps=0.02)"}
    on_two_encoders = pd.concat([*pgd, pgd[0].assign(model="m2", config_id="c-m2", run_id=pgd[0].run_id + "-m2")])
    assert set(analysis.label_configurations(on_two_encoders).method) == {"pgd(eps=0.02)", "pgd(eps=0.06)"}


def test_one_configuration_on_several_encoders_keeps_one_name():
    study = simulate(np.random.default_rng(9))
    first = with_settings(study, "pgd", {"eps": 0.02}, "c-a")
    second = first.assign(
        model="m2",
        config_id="c-b",
        run_id=first.run_id + "-m2",
        settings=first.settings.str.replace("{", '{"draw": 2, ', n=1),
    )  # another encoder, same settings
    dose = with_settings(study, "pgd", {"eps": 0.06}, "c-dose", "-dose")
    assert set(analysis.label_configurations(pd.concat([first, second])).method) == {"pgd"}
    labelled = analysis.label_configurations(pd.concat([first, second, dose]))
    assert set(labelled[labelled.model == "m2"].method) == {"pgd(eps=0.02)"}  # the same name as on the first encoder
    assert set(labelled[labelled.model == "m"].method) == {"pgd(eps=0.02)", "pgd(eps=0.06)"}


def test_partial_r2_is_undefined_where_the_model_without_alignment_leaves_nothing_to_explain():
    rng = np.random.default_rng(3)
    languages = np.repeat(["a", "b", "c"], 6)
    data = pd.DataFrame({"language": languages, "alignment": rng.normal(size=18), "run_id": np.tile(range(6), 3)})
    data["accuracy"] = pd.Series(languages).map({"a": 0.5, "b": 0.6, "c": 0.7}).to_numpy()  # the language explains all
    data.loc[0, "accuracy"] += 1e-12  # rounding-sized residual: the ratio would be noise over noise
    rows = fits.ols_rows(data, "accuracy ~ alignment + C(language)", "accuracy ~ C(language)")
    assert np.isnan(rows[0]["r2_partial"])
    data["accuracy"] += 0.05 * data["alignment"] + rng.normal(scale=0.01, size=18)
    rows = fits.ols_rows(data, "accuracy ~ alignment + C(language)", "accuracy ~ C(language)")
    assert 0.5 < rows[0]["r2_partial"] <= 1


def factorial_store(rng: np.random.Generator, encoders: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Standard runs and pre-trained alignment of a 3 × 3 factorial of languages on several encoders, with known
    factor effects and a shock per encoder."""
    factors = pd.DataFrame(
        [
            {"language": f"l{i}{j}", "anchor_share": share, "order": order, "shared_function_words": (i + j) % 2 == 1}
            for i, share in enumerate((1.0, 0.5, 0.0))
            for j, order in enumerate(("SVO", "SOV", "VSO"))
        ]
    ).set_index("language")
    effect = {"SVO": 0.0, "SOV": -0.10, "VSO": -0.20}
    rows = []
    for encoder in range(encoders):
        shock = rng.normal(0, 0.03)
        for method, seed in (("pretrained", 0), ("standard", 1)):
            base = {"run_id": f"{method}-{encoder}", "config_id": f"c-{method}", "settings": "{}", "profile": "sim"}
            base |= {"task": "sim-nli", "model": f"m{encoder}", "method": method, "seed": seed, "src_lang": SOURCE}
            for language, f in factors.iterrows():
                level = 0.4 + 0.3 * f.anchor_share + effect[f.order] + 0.05 * f.shared_function_words + shock
                if method == "standard":
                    value = level + rng.normal(0, 0.01)
                    rows.append(base | {"tgt_lang": language, "metric": "accuracy", "value": value})
                for layer in HIDDEN_LAYERS:
                    value = level / 2 + rng.normal(0, 0.01)
                    rows.append(
                        base
                        | {
                            "tgt_lang": language,
                            "metric": "cosine_gap",
                            "layer": layer,
                            "pooling": "mean",
                            "value": value,
                        }
                    )
    return pd.DataFrame(rows).reindex(columns=RESULT_COLUMNS), factors


def test_factor_model_matches_least_squares_and_clusters_by_encoder():
    rng = np.random.default_rng(11)
    store, factors = factorial_store(rng)
    table = factor_model(store, factors)
    accuracy = table[table.outcome == "accuracy"].set_index("term")
    assert list(accuracy.index) == ["order[SOV]", "order[VSO]", "anchor_share", "shared_function_words"]
    assert set(accuracy.n_groups) == {6} and set(accuracy.n_obs) == {54}
    cells = store[(store.metric == "accuracy")].merge(factors, left_on="tgt_lang", right_index=True)
    design = np.column_stack(
        [
            np.ones(len(cells)),
            cells.order == "SOV",
            cells.order == "VSO",
            cells.anchor_share,
            cells.shared_function_words,
        ]
    ).astype(np.float64)
    reference = np.linalg.lstsq(design, cells.value.to_numpy(np.float64), rcond=None)[0]
    np.testing.assert_allclose(accuracy.estimate.to_numpy(), reference[1:], rtol=1e-9)
    assert np.allclose(reference[1:], [-0.10, -0.20, 0.3, 0.05], atol=0.02)  # the simulated effects
    # clustered by encoder with t(5): the interval is the estimate ± t(5) · std_error
    half = stats.t.ppf(0.975, 5) * accuracy.std_error
    np.testing.assert_allclose(accuracy.ci_high - accuracy.estimate, half, rtol=1e-9)
    alignment = table[table.outcome == "pretrained_alignment"].set_index("term")
    assert alignment.loc["anchor_share", "estimate"] == pytest.approx(0.15, abs=0.02)


def test_run_clustered_intervals_cover_the_within_language_slope_when_runs_share_a_shock():
    rng = np.random.default_rng(21)
    design = StudyDesign(seeds=3, run_sd=0.02, draw_method_sd=0.0, item_method_sd=0.0)
    hits = sum(
        covers(slope_row(analysis.level_model(simulate_study(rng, design), mixed=False)), 0.5) for _ in range(60)
    )
    assert hits >= 53, hits


def test_the_mundlak_model_separates_the_confounded_between_slope_from_the_within_slope():
    """Distance raises a language's base accuracy with its alignment: the between slope is 0.5 + 0.4, not 0.5."""
    design = StudyDesign(seeds=3, languages=12, item_method_sd=0.0)
    level = analysis.level_model(simulate_study(np.random.default_rng(23), design))
    mundlak = level[level.fit == "mundlak"].set_index("term")
    assert covers(mundlak.loc["alignment"], 0.5) and covers(mundlak.loc["alignment_between"], 0.9)
    assert mundlak.loc["alignment_between"].ci_low > 0.5


def test_source_accuracy_as_a_covariate_removes_a_common_cause_of_both_gains():
    """Runs that damage the source lose target accuracy and alignment together; alignment itself does nothing."""
    design = StudyDesign(seeds=3, slope=0.0, run_sd=0.03, run_alignment_sd=0.0, item_method_sd=0.0)
    results = simulate_study(np.random.default_rng(23), design)
    source = results[(results.metric == "accuracy") & (results.tgt_lang == SOURCE)].set_index("run_id").value
    aligned = results.metric == "cosine_gap"
    damage = results.loc[aligned, "run_id"].map(source - 0.9).fillna(0.0)
    results.loc[aligned, "value"] += 2 * damage
    naive, adjusted = analysis.paired_model(results), analysis.paired_model(results, source_accuracy=True)
    assert slope_row(naive).ci_low > 0
    assert covers(slope_row(adjusted), 0.0) and "source_accuracy" in set(adjusted.term)
