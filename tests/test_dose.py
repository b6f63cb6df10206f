"""Dose–response: doses in configs, doses read back from the store, slopes that recover known effects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xltlib.config.methods import dosed_params, normalize_params
from xltlib.errors import XltError
from xltlib.report import dose
from xltlib.report.analysis import ALL_LANGUAGES
from xltlib.report.experiment import experiment_configs
from xltlib.store import RESULT_COLUMNS

LANGUAGES = ("near", "mid", "far")


def test_a_dose_multiplies_the_strength_and_what_scales_with_it():
    default = normalize_params("pgd", {})
    tripled = dosed_params("pgd", 3)
    assert tripled["eps"] == pytest.approx(3 * default["eps"]) and tripled["alpha"] == pytest.approx(
        3 * default["alpha"]
    )
    assert tripled["steps"] == default["steps"]
    assert dosed_params("freelb", 0.5, {"eps": 0.2})["eps"] == pytest.approx(0.1)
    with pytest.raises(XltError, match="did you mean 'rs_rp'"):
        dosed_params("rs_pr", 2)
    with pytest.raises(XltError, match="0 is standard"):
        dosed_params("pgd", 0)
    with pytest.raises(XltError, match="rate must be > 0 and <= 1"):
        dosed_params("rs_da", 3)  # a probability cannot triple past 1


def test_experiment_configs_add_one_configuration_per_dose_with_standard_as_zero():
    configs = experiment_configs(
        "xnli", ["standard", "pgd"], [1, 2], model="xlm-roberta-base", doses={"pgd": [0, 0.5, 1, 3]}
    )
    arms = {(c.method, c.method_params.get("eps")) for c in configs}
    default = normalize_params("pgd", {})["eps"]
    assert arms == {("standard", None), ("pgd", default), ("pgd", 0.5 * default), ("pgd", 3 * default)}
    assert len(configs) == 8 and len({c.run_id() for c in configs}) == 8  # dose 0 and dose 1 are not run twice


def simulate(
    rng: np.random.Generator, slopes: dict[str, float], seeds: int = 4, doses=(1 / 3, 1.0, 3.0)
) -> pd.DataFrame:
    """A store with standard runs and pgd runs at ``doses``: accuracy = 0.7 + slopes["accuracy"]·dose − 0.02·distance
    + noise; alignment = 0.3 + slopes["alignment"]·dose + noise, on three target languages."""
    default = normalize_params("pgd", {})
    rows = []
    arms = [("standard", {}, 0.0)] + [("pgd", dosed_params("pgd", d), d) for d in doses]
    for method, params, strength in arms:
        settings = json.dumps({"method": method, "method_params": params})
        config_id = f"c-{method}-{strength}"
        for seed in range(1, seeds + 1):
            run_id = f"{config_id}-s{seed}"
            for distance, lang in enumerate(LANGUAGES):
                base = {
                    "run_id": run_id,
                    "config_id": config_id,
                    "settings": settings,
                    "profile": "sim",
                    "task": "t",
                    "model": "m",
                    "method": method,
                    "seed": seed,
                    "src_lang": "src",
                    "tgt_lang": lang,
                }
                accuracy = 0.7 + slopes["accuracy"] * strength - 0.02 * distance + rng.normal(0, 0.01)
                rows.append({**base, "metric": "accuracy", "value": accuracy})
                for layer in (1, 2):
                    alignment = 0.3 + slopes["alignment"] * strength + rng.normal(0, 0.01)
                    rows.append({**base, "metric": "cosine_gap", "value": alignment, "layer": layer, "pooling": "mean"})
    assert default["eps"] > 0
    return pd.DataFrame(rows, columns=RESULT_COLUMNS).astype({"layer": "Int64", "pooling": "string"})


def test_run_doses_read_the_strength_back_as_a_multiple_of_the_default():
    results = simulate(np.random.default_rng(1), {"accuracy": 0.0, "alignment": 0.0})
    doses = dose.run_doses(results).groupby("run_id").dose.first()
    assert doses["c-standard-0.0-s1"] == 0 and doses["c-pgd-3.0-s2"] == pytest.approx(3.0)
    assert sorted(doses.round(6).unique()) == pytest.approx([0, 1 / 3, 1, 3])


@pytest.mark.parametrize("slopes", [{"accuracy": -0.02, "alignment": 0.01}, {"accuracy": 0.0, "alignment": 0.0}])
def test_dose_response_slopes_cover_the_true_slopes(slopes):
    hits, trials = {outcome: 0 for outcome in dose.OUTCOMES}, 40
    rng = np.random.default_rng(2)
    for _ in range(trials):
        table = dose.dose_response(simulate(rng, slopes), distances=dict(zip(LANGUAGES, (0.1, 0.5, 0.9))))
        overall = table[(table.language == ALL_LANGUAGES)].set_index("outcome")
        for outcome in dose.OUTCOMES:
            row = overall.loc[outcome]
            hits[outcome] += row.ci_low <= slopes[outcome] <= row.ci_high
    assert all(count >= 0.85 * trials for count in hits.values()), hits
    assert set(table.distance.dropna()) == {0.1, 0.5, 0.9} and (table.n_doses == 4).all()


def test_dose_contrasts_pair_each_dose_with_standard_on_its_seed_and_correct_over_doses():
    results = simulate(np.random.default_rng(4), {"accuracy": -0.02, "alignment": 0.01})
    contrasts = dose.dose_contrasts(results).query("outcome == 'accuracy'").set_index("dose")
    assert list(contrasts.index) == pytest.approx([1 / 3, 1, 3]) and (contrasts.seeds == 4).all()
    per_run = dose.dose_cells(results).groupby(["dose", "seed"]).accuracy.mean()
    assert contrasts.loc[3].estimate == pytest.approx((per_run[3] - per_run[0]).mean())
    assert contrasts.loc[3].ci_high < 0 and contrasts.loc[3].ci_low <= -0.06 <= contrasts.loc[3].ci_high
    assert (contrasts.p_holm >= contrasts.p_value).all() and contrasts.p_holm.min() == pytest.approx(
        3 * contrasts.p_value.min()
    )


def test_dose_means_give_one_row_per_dose_and_outcome_with_seed_intervals():
    means = dose.dose_means(simulate(np.random.default_rng(3), {"accuracy": -0.02, "alignment": 0.01}))
    accuracy = means[means.outcome == "accuracy"].set_index("dose")
    assert list(accuracy.index) == pytest.approx([0, 1 / 3, 1, 3]) and (accuracy.seeds == 4).all()
    assert accuracy.estimate.iloc[-1] < accuracy.estimate.iloc[0] and (accuracy.ci_low < accuracy.estimate).all()


def test_every_method_runs_on_every_draw_and_the_doses_on_the_first_only(tmp_path):
    configs = experiment_configs(
        "syn-nli", ["standard", "pgd"], [1, 2], cache_dir=str(tmp_path), draws=[2, 0], doses={"pgd": [0, 3]}
    )
    plain = {
        (c.draw, c.method, c.seed)
        for c in configs
        if c.method_params.get("eps", 0) != 3 * normalize_params("pgd", {})["eps"]
    }
    assert plain == {(d, m, s) for d in (2, 0) for m in ("standard", "pgd") for s in (1, 2)}
    assert {c.draw for c in configs if c not in [*configs[:8]]} == {2} and len(configs) == 10
    assert len({c.model for c in configs}) == 2
    with pytest.raises(XltError, match="draws picks the synthetic profile's own encoders"):
        experiment_configs("syn-nli", ["standard"], [1], cache_dir=str(tmp_path), draws=[0], draw=2)
    with pytest.raises(XltError, match="draws picks"):
        experiment_configs("xnli", ["standard"], [1], model="xlm-roberta-base", draws=[0])
