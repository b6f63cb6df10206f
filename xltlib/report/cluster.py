"""Least squares with cluster-robust intervals that stay honest with few clusters.

The study's cells are not independent: the target languages of one fine-tuned run share that
run's initialisation and data order, so a run's cells move together. The standard errors here
treat the *run* (or another given unit) as the independent unit, with the CR2 small-sample
correction of Bell & McCaffrey (2002) and Satterthwaite degrees of freedom per coefficient
(Imbens & Kolesár 2016), the pair recommended when clusters are few (Pustejovsky & Tipton
2018). CR1 with t(G − 1), statsmodels' cluster option, covers well below 95% with 5–15
clusters; the coverage table of the design chapter (``book/probes/coverage.py``) measures both.

Fixed effects that are constant within a cluster (a method's dummy when the method ran once)
make ``I − H_gg`` singular; its inverse square root is then the Moore–Penrose one, as in
Pustejovsky & Tipton's ``clubSandwich``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

_RANK_TOLERANCE = 1e-10


@dataclass(frozen=True)
class ClusteredFit:
    """An OLS fit (``ols``: statsmodels' results, for R², SSR, AIC) with CR2 standard errors and
    Bell–McCaffrey degrees of freedom per coefficient, named like statsmodels' results."""

    ols: object
    params: pd.Series
    bse: pd.Series
    df: pd.Series
    n_clusters: int

    @property
    def tvalues(self) -> pd.Series:
        return self.params / self.bse

    @property
    def pvalues(self) -> pd.Series:
        return pd.Series(2 * stats.t.sf(np.abs(self.tvalues), self.df), index=self.params.index)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        half = stats.t.ppf(1 - alpha / 2, self.df) * self.bse
        return pd.DataFrame({0: self.params - half, 1: self.params + half})


def cr2_ols(formula: str, data: pd.DataFrame, clusters: pd.Series | np.ndarray) -> ClusteredFit:
    """OLS of ``formula`` on ``data`` with CR2 standard errors clustered by ``clusters`` (one label per row)."""
    ols = smf.ols(formula, data).fit()
    design = np.asarray(ols.model.exog, dtype=np.float64)
    residuals = np.asarray(ols.resid, dtype=np.float64)
    variance, df = cr2_covariance(design, residuals, pd.factorize(np.asarray(clusters))[0])
    names = ols.params.index
    return ClusteredFit(
        ols=ols,
        params=ols.params,
        bse=pd.Series(np.sqrt(np.diag(variance)), index=names),
        df=pd.Series(df, index=names),
        n_clusters=len(set(pd.factorize(np.asarray(clusters))[0])),
    )


def cr2_covariance(design: np.ndarray, residuals: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CR2 covariance of OLS coefficients and each coefficient's Bell–McCaffrey degrees of freedom.

    ``design``: n × k; ``residuals``: the n OLS residuals; ``groups``: integer cluster per row.
    The degrees of freedom are Satterthwaite's for the coefficient's CR2 variance under
    independent, equal-variance errors: (Σλ)² / Σλ² over the eigenvalues λ of G Gᵀ, where row g
    of G is the cluster's weight vector times (I − H).
    """
    bread = np.linalg.pinv(design.T @ design)
    annihilator = np.eye(len(design)) - design @ bread @ design.T  # I − H
    members = [np.flatnonzero(groups == group) for group in np.unique(groups)]
    # per cluster: (X'X)⁻¹ X_gᵀ A_g, the map from the cluster's residuals to its share of the estimate
    weights = [bread @ design[rows].T @ _inverse_sqrt(annihilator[np.ix_(rows, rows)]) for rows in members]
    scores = np.stack([weight @ residuals[rows] for weight, rows in zip(weights, members)])  # G × k
    covariance = scores.T @ scores
    df = np.empty(design.shape[1])
    for coefficient in range(design.shape[1]):
        spread = np.stack([weight[coefficient] @ annihilator[rows] for weight, rows in zip(weights, members)])
        eigenvalues = np.linalg.eigvalsh(spread @ spread.T)
        df[coefficient] = eigenvalues.sum() ** 2 / (eigenvalues**2).sum() if eigenvalues.sum() > 0 else np.nan
    return covariance, df


def _inverse_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric (Moore–Penrose) inverse square root of a positive semi-definite matrix."""
    values, vectors = np.linalg.eigh(matrix)
    kept = values > _RANK_TOLERANCE * max(values.max(), 1.0)
    inverse_roots = np.where(kept, 1 / np.sqrt(np.where(kept, values, 1.0)), 0.0)
    return (vectors * inverse_roots) @ vectors.T
