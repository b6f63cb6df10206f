"""Does alignment explain zero-shot accuracy? The study's statistics, over the results store.

Every function takes the store's tidy table (DESIGN.md §3: one row per run, language, layer and metric) and returns a
tidy frame, one row per estimated quantity, with at least ``term``, ``estimate``, ``ci_low``, ``ci_high`` and
``p_value`` (95% intervals). Each (task, model) pair is analysed on its own: languages and accuracy scales differ
between tasks. The unit of observation is a *cell*, one fine-tuned run's zero-shot accuracy on one target language
beside that run's alignment of the language with the source.

Missing cells are never dropped silently. The grid of a (task, model) is every observed method × seed × target
language; a cell without accuracy or alignment (a failed or unfinished run) is left out of the fits, counted in the
``n_missing`` column and reported by a :class:`MissingCellsWarning`; :func:`missing_cells` lists them.

Few languages make few clusters: cluster-robust intervals use Student t with (languages − 1) degrees of freedom, and
method effects paired t over seeds (honest, and wide, when seeds are few); the language factors' model is in
:mod:`xltlib.report.factors`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from xltlib.config import PRETRAINED
from xltlib.report.cells import (
    ACCURACY,
    ALIGNMENT_METRICS,
    CELL,
    GROUP,
    MissingCellsWarning,
    cells,
    check_metric,
    complete_grid,
    complete_groups,
    deltas,
    label_configurations,
    missing_cells,
    pretrained_alignment,
    warn_missing,
)
from xltlib.report.intervals import CONFIDENCE, describe, holm, mean_ci, nan_estimate, spearman_ci

__all__ = [
    "ACCURACY",
    "ALIGNMENT_METRICS",
    "MissingCellsWarning",
    "cells",
    "compare_alignment",
    "deltas",
    "describe",
    "distance_model",
    "gain_by_language",
    "label_configurations",
    "level_model",
    "method_effects",
    "method_units",
    "missing_cells",
    "paired_model",
    "pretrained_alignment",
    "rank_correlations",
]


COMPARED_METRICS = (
    "parallel_cosine",
    "cosine_gap",
    "retrieval_cosine",
    "cka",
    "word_retrieval",
    "word_retrieval_strong",
)
ALL_LANGUAGES = "all targets"
GENERALIZED = "generalized"
FIT_STATISTICS = ["r2", "r2_partial", "aic", "n_obs", "n_groups", "n_missing", "note"]


def level_model(
    results: pd.DataFrame,
    alignment: str = "cosine_gap",
    layer: int | None = None,
    method_terms: bool = True,
    baseline: str = "standard",
    mixed: bool = True,
    return_fits: bool = False,
):
    """Accuracy ~ alignment + C(language) (+ C(method)), two ways, per (task, model).

    - ``fit == "ols"``: language fixed effects, standard errors clustered by language
      (t with languages − 1 df). ``r2`` is the model's R²; ``r2_partial`` the share of the
      residual variance of the model without alignment that alignment explains.
    - ``fit == "mixed"``: a random intercept per language (statsmodels ``MixedLM``, REML);
      ``r2_marginal`` / ``r2_conditional`` after Nakagawa & Schielzeth (2013).

    The slope is the row with ``term == "alignment"``: accuracy (as a fraction) per unit
    of the alignment metric. Method rows (``method[pgd]``…) are differences from
    ``baseline`` at equal alignment. ``mixed=False`` skips the mixed model. With
    ``return_fits`` the statsmodels results come too, keyed by (task, model, fit).
    """
    grid = cells(results, alignment, layer)
    rows, fits = [], {}
    for key, data, n_missing in complete_groups(grid, [ACCURACY, "alignment"], "level model"):
        data = _baseline_first(data, baseline)
        method = " + C(method)" if method_terms and data.method.nunique() > 1 else ""
        ols, ols_rows = _ols(data, f"accuracy ~ alignment{method} + C(language)", f"accuracy ~ 1{method} + C(language)")
        fits[(*key, "ols")] = ols
        models = [("ols", ols_rows)]
        if mixed:
            fits[(*key, "mixed")], mixed_rows = _mixed(data, f"accuracy ~ alignment{method}")
            models.append(("mixed", mixed_rows))
        for fit, fit_rows in models:
            rows += [{**dict(zip(GROUP, key)), "fit": fit, **row, "n_missing": n_missing} for row in fit_rows]
    table = estimates_table(rows, [*GROUP, "fit"], [*FIT_STATISTICS, "r2_marginal", "r2_conditional"])
    return (table, fits) if return_fits else table


def paired_model(
    results: pd.DataFrame,
    alignment: str = "cosine_gap",
    layer: int | None = None,
    baseline: str = "standard",
    method_terms: bool = False,
    return_fits: bool = False,
):
    """Δaccuracy ~ Δalignment against ``baseline`` on the same seed, language, task and model.

    Does the alignment a method gains predict the accuracy it gains? OLS with standard
    errors clustered by language (t with languages − 1 df); ``term == "alignment"`` is the
    slope, ``"intercept"`` the accuracy gained at no alignment gain. ``method_terms`` adds
    one intercept per method, so the slope comes from seed-to-seed and language-to-language
    variation within a method only.
    """
    paired = deltas(results, alignment, layer, baseline)
    rows, fits = [], {}
    for key, data, n_missing in complete_groups(paired, ["d_accuracy", "d_alignment"], "paired model"):
        data = data.rename(columns={"d_accuracy": "gain", "d_alignment": "alignment"})
        intercepts = " + C(method) - 1" if method_terms and data.method.nunique() > 1 else ""
        fit, fit_rows = _ols(data, f"gain ~ alignment{intercepts}", f"gain ~ 1{intercepts}", intercept=True)
        fits[(*key, "ols")] = fit
        rows += [{**dict(zip(GROUP, key)), "fit": "ols", **row, "n_missing": n_missing} for row in fit_rows]
    table = estimates_table(rows, [*GROUP, "fit"], FIT_STATISTICS)
    return (table, fits) if return_fits else table


def method_effects(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, baseline: str = "standard"
) -> pd.DataFrame:
    """Each method's mean gain over ``baseline`` in accuracy and in alignment, with paired-t CIs.

    One row per (task, model, method, outcome, language): ``outcome`` is ``accuracy`` or
    the alignment metric; ``language`` is a target language, ``"all targets"`` (the mean
    over target languages, per seed) or, for accuracy, ``"generalized"`` (the mean over
    the mixed-language pairs a|b with a ≠ b, per seed). The paired t-test is over seeds,
    so one seed gives an estimate without an interval.
    """
    units = method_units(results, alignment, layer, baseline)
    rows = []
    for key, group in units.groupby([*GROUP, "method", "outcome", "language"], sort=False):
        complete = group.gain.dropna()
        rows.append(
            {
                **dict(zip([*GROUP, "method", "outcome", "language"], key)),
                "term": key[2],
                **mean_ci(complete.to_numpy()),
                "n_obs": len(complete),
                "n_missing": len(group) - len(complete),
            }
        )
    warn_missing(sum(row["n_missing"] for row in rows if row["language"] != ALL_LANGUAGES), "method effects")
    return estimates_table(rows, [*GROUP, "method", "outcome", "language"], ["n_obs", "n_missing"])


def method_units(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, baseline: str = "standard"
) -> pd.DataFrame:
    """The replicates of :func:`method_effects`: one ``gain`` per (task, model, method, seed, outcome, language)
    over the same-seed ``baseline`` (NaN where a cell is missing), ``all targets`` and ``generalized`` included."""
    paired = deltas(results, alignment, layer, baseline)
    gains = paired.rename(columns={"d_accuracy": ACCURACY, "d_alignment": alignment}).melt(
        id_vars=CELL, value_vars=[ACCURACY, alignment], var_name="outcome", value_name="gain"
    )
    by_run = gains.groupby(["task", "model", "method", "seed", "outcome"])
    overall = by_run.gain.agg(lambda g: g.mean(skipna=False)).reset_index()
    units = [gains, overall.assign(language=ALL_LANGUAGES), _generalized_gains(results, baseline)]
    return pd.concat(units, ignore_index=True)


def compare_alignment(
    results: pd.DataFrame,
    metrics: Sequence[str] = COMPARED_METRICS,
    layers: Iterable[int | None] | None = None,
    baseline: str = "standard",
) -> pd.DataFrame:
    """Which alignment metric, at which layer, predicts accuracy best?

    The level model (OLS with language fixed effects) and the paired model, refitted for
    every metric and layer (``layers=None``: each stored layer and the hidden-layer mean,
    ``layer`` NA in the table). Rank them by ``r2_partial`` (level: what alignment adds to
    the language and method effects) or ``r2`` (paired), or by ``aic`` within a model. ``p_holm``: the
    slope's p-value, Holm-corrected over every metric and layer fitted for the same (task, model, analysis).
    """
    present = [metric for metric in metrics if (results.metric == metric).any()]
    for metric in metrics:
        check_metric(metric)
    if layers is None:
        stored = results.loc[results.metric.isin(present), "layer"].dropna().unique()
        layers = [None, *sorted(int(layer) for layer in stored)]
    frames = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingCellsWarning)  # reported once below, not per refit
        for metric in present:
            for layer in layers:
                level = level_model(results, metric, layer, baseline=baseline, mixed=False)
                paired = paired_model(results, metric, layer, baseline)
                for analysis, table in (("level", level), ("paired", paired)):
                    slope = table[table.term == "alignment"]
                    frames.append(slope.assign(analysis=analysis, metric=metric, layer=layer))
    warn_missing(int(missing_cells(results, present[0]).shape[0]) if present else 0, "alignment comparison")
    front = [*GROUP, "analysis", "metric", "layer"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*front, "term"])
    table["layer"] = table["layer"].astype("Int64")
    table["p_holm"] = table.groupby([*GROUP, "analysis"]).p_value.transform(holm) if len(table) else np.nan
    mixed_only = {"fit", "r2_marginal", "r2_conditional"}
    return table[front + [c for c in table.columns if c not in front and c not in mixed_only]].reset_index(drop=True)


def gain_by_language(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, baseline: str = "standard"
) -> pd.DataFrame:
    """Per (task, model, method, language): mean accuracy gain over ``baseline`` (and its sd
    over seeds) beside the language's alignment in the *pre-trained* encoder."""
    paired = deltas(results, alignment, layer, baseline).dropna(subset=["d_accuracy"])
    gains = paired.groupby([*GROUP, "method", "language"]).d_accuracy.agg(gain="mean", gain_sd="std", seeds="count")
    pretrained = pretrained_alignment(results, alignment, layer)
    return gains.reset_index().merge(pretrained, on=[*GROUP, "language"], how="left")


def distance_model(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, baseline: str = "standard"
) -> pd.DataFrame:
    """Does a method help most where pre-trained alignment is worst?

    Per (task, model, method): OLS of the language's mean accuracy gain on its pre-trained
    alignment, one point per target language. A negative ``pretrained_alignment`` slope
    means larger gains for worse-aligned (more distant) languages, as the paper claims.
    """
    points = gain_by_language(results, alignment, layer, baseline).dropna(subset=["gain", "pretrained_alignment"])
    rows = []
    for key, data in points.groupby([*GROUP, "method"], sort=False):
        names = dict(zip([*GROUP, "method"], key))
        if len(data) < 3 or np.ptp(data.gain) == 0:
            reason = "fewer than 3 languages" if len(data) < 3 else "the gain is the same for every language"
            rows.append({**names, "term": "pretrained_alignment", **nan_estimate(), "n_obs": len(data), "note": reason})
            continue
        fit = smf.ols("gain ~ pretrained_alignment", data).fit()
        rows.append(
            {**names, **coefficient_row(fit, "pretrained_alignment"), "r2": fit.rsquared, "n_obs": int(fit.nobs)}
        )
    return estimates_table(rows, [*GROUP, "method"], ["r2", "n_obs", "note"])


def rank_correlations(results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None) -> pd.DataFrame:
    """Spearman ρ between alignment and accuracy over cells, per method and over all methods.

    The interval is Fisher's z with the Fieller, Hartley & Pearson (1957) variance
    1.06 / (n − 3); the p-value is scipy's. ``method == "all"`` pools every method's cells.
    """
    grid = cells(results, alignment, layer)
    rows = []
    for key, data, n_missing in complete_groups(grid, [ACCURACY, "alignment"], "rank correlations"):
        for method, part in [("all", data), *data.groupby("method")]:
            rows.append(
                {
                    **dict(zip(GROUP, key)),
                    "method": method,
                    "term": "spearman_rho",
                    **spearman_ci(part.alignment.to_numpy(), part[ACCURACY].to_numpy()),
                    "n_obs": len(part),
                    "n_missing": n_missing,
                }
            )
    return estimates_table(rows, [*GROUP, "method"], ["n_obs", "n_missing"])


def _baseline_first(data: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Methods as a categorical whose first level, the reference of ``C(method)``, is ``baseline``."""
    methods = sorted(set(data.method), key=lambda method: (method != baseline, method))
    return data.assign(method=pd.Categorical(data.method, categories=methods))


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
        (name for name in fit.params.index if name == "alignment" or name.startswith("C(method)")),
        key=lambda name: name != "alignment",
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


def _ols(data: pd.DataFrame, formula: str, without_alignment: str, intercept: bool = False):
    """OLS with language-clustered SEs; rows for the reported terms, fit statistics on each."""
    if reason := _degenerate(data, formula):
        return None, _unfitted(data, reason)
    languages = pd.factorize(data.language)[0]
    if len(set(languages)) > 1:
        fit = smf.ols(formula, data).fit(cov_type="cluster", cov_kwds={"groups": languages}, use_t=True)
    else:
        fit = smf.ols(formula, data).fit(use_t=True)
    reduced = smf.ols(without_alignment, data).fit()
    # nested least squares stay in [0, 1] but for rounding; a reduced model leaving ~nothing leaves only rounding
    partial = float(np.clip(1 - fit.ssr / reduced.ssr, 0, 1)) if reduced.ssr > 1e-9 * reduced.centered_tss else np.nan
    shared = {
        "r2": fit.rsquared,
        "r2_partial": partial,
        "aic": fit.aic,
        "n_obs": int(fit.nobs),
        "n_groups": len(set(languages)),
    }
    return fit, [{**coefficient_row(fit, name), **shared} for name in _reported_terms(fit, intercept)]


def _mixed(data: pd.DataFrame, formula: str):
    """Random intercept per language (REML); convergence problems go in ``note``, not stderr."""
    if reason := _degenerate(data, formula) or ("fewer than 3 languages" if data.language.nunique() < 3 else None):
        return None, _unfitted(data, reason)
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
    return fit, [{**coefficient_row(fit, name), **shared} for name in _reported_terms(fit, intercept=False)]


def _generalized_gains(results: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per (task, model, method, seed): mean accuracy gain over the mixed pairs a|b, a ≠ b."""
    tuned = label_configurations(results[(results.method != PRETRAINED) & (results.metric == ACCURACY)])
    mixed = tuned[tuned.tgt_lang.str.contains("|", regex=False)]
    mixed = mixed[mixed.tgt_lang.str.split("|").str[0] != mixed.tgt_lang.str.split("|").str[1]]
    if mixed.empty:
        return pd.DataFrame(columns=[*CELL, "outcome", "gain"])
    per_run = mixed.groupby([*GROUP, "method", "seed"]).value.mean().rename("accuracy").reset_index()
    per_run = complete_grid(per_run, ["method", "seed"])
    base = per_run[per_run.method == baseline].drop(columns="method")
    treated = per_run[per_run.method != baseline].merge(base, on=[*GROUP, "seed"], suffixes=("", "_base"))
    gain = treated[ACCURACY] - treated[f"{ACCURACY}_base"]
    return treated[[*GROUP, "method", "seed"]].assign(language=GENERALIZED, outcome=ACCURACY, gain=gain)


def estimates_table(rows: list[dict], front: list[str], statistics: list[str]) -> pd.DataFrame:
    """Rows in a fixed column order; a statistic no row has (every fit failed) is NaN."""
    columns = [*front, "term", "estimate", "std_error", "ci_low", "ci_high", "p_value", *statistics]
    return pd.DataFrame(rows).reindex(columns=columns)
