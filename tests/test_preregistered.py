"""The pre-registered tests: TOST and Holm as registered, the registered wording, and verdicts on planted effects."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xltlib.report import preregistered
from xltlib.report.intervals import holm
from xltlib.report.simulation import simulate_draws


def test_the_equivalence_p_value_is_the_larger_of_two_one_sided_t_tests():
    rng = np.random.default_rng(401)
    for _ in range(5):
        values = pd.Series(rng.normal(rng.uniform(-0.01, 0.01), 0.01, size=10))
        margin = 0.01
        mean, se, df = values.mean(), stats.sem(values), len(values) - 1
        above_lower = stats.t.sf((mean + margin) / se, df)  # H0: effect <= -margin
        below_upper = stats.t.cdf((mean - margin) / se, df)  # H0: effect >= +margin
        row = preregistered.over_draws(values, margin)
        assert row["equivalence_p"] == pytest.approx(max(above_lower, below_upper), rel=1e-9)
        assert row["estimate"] == pytest.approx(mean) and row["n_draws"] == 10
    assert np.isnan(preregistered.over_draws(values)["equivalence_p"])  # no margin: no equivalence test


@pytest.mark.parametrize(
    ("hypothesis", "estimate", "p_holm", "equivalence_p_holm", "expected"),
    [
        ("H1", 0.02, 0.001, 0.9, "gain"),
        ("H2", -0.02, 0.001, 0.9, "loss"),
        ("H3", 0.5, 0.01, np.nan, "positive"),
        ("H4", -0.1, 0.01, np.nan, "negative"),
        ("H1", 0.001, 0.6, 0.01, "no effect"),
        ("H1", 0.001, 0.6, 0.2, "inconclusive"),
        ("H3", 0.1, 0.3, np.nan, "inconclusive"),  # no margin registered: never "no effect"
        ("H1", 0.02, 0.07, 0.9, "inconclusive"),  # an unadjusted p below 0.05 is not enough
    ],
)
def test_verdicts_use_the_registered_words(hypothesis, estimate, p_holm, equivalence_p_holm, expected):
    row = pd.Series(
        {"hypothesis": hypothesis, "estimate": estimate, "p_holm": p_holm, "equivalence_p_holm": equivalence_p_holm}
    )
    assert preregistered.verdict(row) == expected


def test_holm_adjusts_within_the_tests_that_exist():
    adjusted = holm(pd.Series([0.01, np.nan, 0.04, 0.03]))
    assert np.isnan(adjusted[1])
    assert adjusted[[0, 2, 3]].tolist() == pytest.approx([0.03, 0.06, 0.06])  # 3·0.01, max(2·0.03, 3·0.01), 1·0.04


def test_planted_effects_get_their_verdicts_across_draws():
    rng = np.random.default_rng(402)
    draws = 10
    accuracy = {
        "standard": [0.0] * draws,
        "pgd": list(0.03 + 0.002 * rng.standard_normal(draws)),  # a clear gain on every draw
        "rs_rp": list(0.002 * rng.standard_normal(draws)),  # nothing, measured tightly: inside ±1 point
        "rs_da": [0.03, -0.03] * (draws // 2),  # nothing on average, measured loosely: inconclusive
    }
    results = simulate_draws(rng, accuracy, slope=0.0, noise=0.001)  # accuracy free of the alignment noise
    table = preregistered.hypotheses(results, None)
    h1 = table[table.hypothesis == "H1"].set_index("term")
    assert h1.loc["pgd", "verdict"] == "gain" and h1.loc["pgd", "as_predicted"]
    assert h1.loc["rs_rp", "verdict"] == "no effect" and not h1.loc["rs_rp", "as_predicted"]
    assert h1.loc["rs_da", "verdict"] == "inconclusive" and pd.isna(h1.loc["rs_da", "as_predicted"])
    assert (h1.n_draws == draws).all() and (h1.margin == preregistered.ACCURACY_MARGIN).all()
    assert (h1.p_holm >= h1.p_value).all()
    assert set(table.hypothesis) == {"H1", "H2", "H3", "H5"}  # no factorial languages here: no H4
    assert (
        preregistered.registered_verdict(table, "H1", "sim-nli", "pgd")
        == "gain under the pre-registered test (Holm over 3)"
    )
    assert preregistered.registered_verdict(table, "H1", "sim-nli", "freelb") is None  # not run
    assert preregistered.registered_verdict(pd.DataFrame(), "H1", "sim-nli", "pgd") is None
    h2 = table[table.hypothesis == "H2"]
    assert h2.margin.iloc[0] == pytest.approx(preregistered.alignment_margin(results).iloc[0])


def test_registration_is_the_files_first_commit_and_its_last_amendment(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "a@b.c")
    git("config", "user.name", "a")
    (tmp_path / preregistered.PREREGISTRATION).write_text("H1\n")
    git("add", ".")
    git("commit", "-qm", "registered")
    (tmp_path / preregistered.PREREGISTRATION).write_text("H1\namendment\n")
    git("commit", "-qam", "amended")
    log = subprocess.run(["git", "log", "--format=%h"], cwd=tmp_path, capture_output=True, text=True).stdout.split()
    found = preregistered.registration(tmp_path)
    assert (found["commit"], found["amended"]) == (log[1], log[0])
    elsewhere = tmp_path.parent / f"{tmp_path.name}-not-a-checkout"
    elsewhere.mkdir()
    assert preregistered.registration(elsewhere)["commit"] is None  # not a checkout: nothing to show
