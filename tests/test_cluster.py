"""CR2 cluster-robust errors against a float64 reference, and their known special cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import linalg

from xltlib.report.cluster import cr2_covariance, cr2_ols


def random_design(rng: np.random.Generator, clusters: int, size: int) -> pd.DataFrame:
    groups = np.repeat(np.arange(clusters), size)
    shock = rng.normal(0, 1, clusters)[groups]
    x = rng.normal(0, 1, len(groups)) + 0.5 * shock
    category = rng.integers(0, 3, len(groups))
    y = 1 + 0.5 * x + 0.2 * category + shock + rng.normal(0, 1, len(groups))
    return pd.DataFrame({"y": y, "x": x, "category": category, "group": groups})


def reference_cr2(design: np.ndarray, residuals: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Bell & McCaffrey's CR2 written out with scipy's matrix square root (every I − H_gg invertible here)."""
    bread = linalg.inv(design.T @ design)
    hat = design @ bread @ design.T
    meat = np.zeros((design.shape[1], design.shape[1]))
    for group in np.unique(groups):
        rows = groups == group
        adjust = linalg.inv(linalg.sqrtm(np.eye(rows.sum()) - hat[np.ix_(rows, rows)]).real)
        score = design[rows].T @ adjust @ residuals[rows]
        meat += np.outer(score, score)
    return bread @ meat @ bread


def test_cr2_matches_a_float64_reference_on_fresh_data():
    rng = np.random.default_rng()
    data = random_design(rng, clusters=int(rng.integers(6, 12)), size=int(rng.integers(3, 8)))
    fit = smf.ols("y ~ x + C(category)", data).fit()
    design, residuals = np.asarray(fit.model.exog), np.asarray(fit.resid)
    covariance, df = cr2_covariance(design, residuals, data.group.to_numpy())
    np.testing.assert_allclose(covariance, reference_cr2(design, residuals, data.group.to_numpy()), rtol=1e-8)
    assert np.all((df > 0) & (df <= data.group.nunique()))


def test_cr2_with_one_observation_per_cluster_is_hc2():
    data = random_design(np.random.default_rng(), clusters=40, size=1)
    clustered = cr2_ols("y ~ x + C(category)", data, data.index.to_numpy())
    hc2 = smf.ols("y ~ x + C(category)", data).fit(cov_type="HC2")
    np.testing.assert_allclose(clustered.bse, hc2.bse, rtol=1e-8)


def test_the_mean_of_independent_values_gets_the_t_interval():
    """Intercept only, one value per cluster: CR2 is s²/n and Bell-McCaffrey's df is n − 1, the one-sample t."""
    values = np.random.default_rng().normal(3, 2, 12)
    fit = cr2_ols("y ~ 1", pd.DataFrame({"y": values}), np.arange(12))
    assert fit.bse["Intercept"] == pytest.approx(values.std(ddof=1) / np.sqrt(12))
    assert fit.df["Intercept"] == pytest.approx(11)
    t_test = smf.ols("y ~ 1", pd.DataFrame({"y": values})).fit()
    np.testing.assert_allclose(fit.conf_int().loc["Intercept"], t_test.conf_int().loc["Intercept"])


def test_a_dummy_constant_within_its_cluster_does_not_break_the_correction():
    """A method run once is a fixed effect constant within its run: I − H_gg is singular there."""
    rng = np.random.default_rng()
    runs = np.repeat(np.arange(5), 8)
    data = pd.DataFrame({"run": runs, "language": np.tile(np.arange(8), 5), "x": rng.normal(0, 1, 40)})
    data["y"] = 0.5 * data.x + rng.normal(0, 1, 5)[runs] + rng.normal(0, 0.1, 40)
    fit = cr2_ols("y ~ x + C(run) + C(language)", data, data.run)
    assert np.isfinite(fit.bse["x"]) and fit.bse["x"] > 0
    assert 1 <= fit.df["x"] <= 5
    low, high = fit.conf_int().loc["x"]
    assert low < fit.params["x"] < high
