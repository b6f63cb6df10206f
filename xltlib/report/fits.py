"""The rows of a fitted regression, as the analysis reports them: OLS with CR2 standard errors clustered by run,
the Mundlak model, and the estimates table every analysis returns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from xltlib.report.cluster import cr2_ols
from xltlib.report.intervals import CONFIDENCE, nan_estimate

SLOPES = ("alignment", "alignment_between", "source_accuracy")  # the reported terms besides methods


def _term_name(name: str) -> str:
    """``C(method)[T.pgd]`` → ``method[pgd]``; ``Intercept`` → ``intercept``."""
    if name == "Intercept":
        return "intercept"
    if name.startswith("C("):
        variable, level = name[2:].split(")", 1)
        return f"{variable}[{level.strip('[]').removeprefix('T.')}]"
    return name


def coefficient_row(fit, name: str) -> dict:
    low, high = fit.conf_int(alpha=1 - CONFIDENCE).loc[name]
    return {
        "term": _term_name(name),
        "estimate": fit.params[name],
        "std_error": fit.bse[name],
        "ci_low": low,
        "ci_high": high,
        "p_value": fit.pvalues[name],
    }


def _reported_terms(fit, intercept: bool) -> list[str]:
    """The slope, the method terms and (where it means something) the intercept; not languages."""
    keep = sorted(
        (name for name in fit.params.index if name in SLOPES or name.startswith("C(method)")),
        key=lambda name: (name not in SLOPES, SLOPES.index(name) if name in SLOPES else 0),
    )
    return keep + ["Intercept"] if intercept and "Intercept" in fit.params.index else keep


def _degenerate(data: pd.DataFrame, formula: str) -> str | None:
    """Why a model cannot be fitted (an outcome or alignment that never varies), else None."""
    outcome = formula.split("~")[0].strip()
    for column, what in ((outcome, "the outcome"), ("alignment", "alignment")):
        if column in data and np.ptp(data[column].to_numpy(dtype=float)) == 0:
            return f"{what} ({column}) is the same in every cell: nothing to fit"
    return None


def _unfitted(data: pd.DataFrame, reason: str) -> list[dict]:
    counts = {"n_obs": len(data), "n_groups": data.language.nunique()}
    return [{"term": "alignment", **nan_estimate(), **counts, "note": reason}]


def ols_rows(data: pd.DataFrame, formula: str, without_alignment: str, intercept: bool = False) -> list[dict]:
    """OLS with CR2 standard errors clustered by run; rows for the reported terms, fit statistics on each."""
    if reason := _degenerate(data, formula):
        return _unfitted(data, reason)
    runs = data.run_id.nunique()
    fit = cr2_ols(formula, data, data.run_id) if runs > 1 else smf.ols(formula, data).fit(use_t=True)
    ols = fit.ols if runs > 1 else fit
    reduced = smf.ols(without_alignment, data).fit()
    # nested least squares stay in [0, 1] but for rounding; a reduced model leaving ~nothing leaves only rounding
    partial = float(np.clip(1 - ols.ssr / reduced.ssr, 0, 1)) if reduced.ssr > 1e-9 * reduced.centered_tss else np.nan
    shared = {
        "r2": ols.rsquared,
        "r2_partial": partial,
        "aic": ols.aic,
        "n_obs": int(ols.nobs),
        "n_groups": data.language.nunique(),
        "n_clusters": runs,
        "note": "" if runs > 1 else "one run: the interval treats its cells as independent",
    }
    return [{**coefficient_row(fit, name), **shared} for name in _reported_terms(ols, intercept)]


def mundlak_rows(data: pd.DataFrame, method: str) -> list[dict]:
    """Random intercept per language (REML) with alignment's within and between parts; convergence problems go
    in ``note``, not stderr."""
    formula = f"accuracy ~ alignment + alignment_between{method}"
    language_mean = data.groupby("language", observed=True).alignment.transform("mean")
    data = data.assign(alignment=data.alignment - language_mean, alignment_between=language_mean)
    if reason := _degenerate(data, formula) or ("fewer than 3 languages" if data.language.nunique() < 3 else None):
        return _unfitted(data, reason)
    shared = {"n_obs": len(data), "n_groups": data.language.nunique()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = smf.mixedlm(formula, data, groups=data.language).fit(reml=True)
    notes = sorted({str(w.message).split("\n")[0] for w in caught})
    if not fit.converged:
        notes.insert(0, "did not converge")
    fixed = np.asarray(fit.model.exog) @ np.asarray(fit.fe_params)
    var_fixed, var_language, var_residual = float(np.var(fixed)), float(fit.cov_re.iloc[0, 0]), float(fit.scale)
    total = var_fixed + var_language + var_residual
    shared |= {
        "r2_marginal": var_fixed / total,
        "r2_conditional": (var_fixed + var_language) / total,
        "note": "; ".join(notes),
    }
    return [{**coefficient_row(fit, name), **shared} for name in _reported_terms(fit, intercept=False)]


def estimates_table(rows: list[dict], front: list[str], statistics: list[str]) -> pd.DataFrame:
    """Rows in a fixed column order; a statistic no row has (every fit failed) is NaN."""
    columns = [*front, "term", "estimate", "std_error", "ci_low", "ci_high", "p_value", *statistics]
    return pd.DataFrame(rows).reindex(columns=columns)
