"""Does alignment explain zero-shot accuracy? The study's statistics, over the results store.

Every function takes the store's tidy table (DESIGN.md §3: one row per run, language, layer and metric) and returns a
tidy frame, one row per estimated quantity, with at least ``term``, ``estimate``, ``ci_low``, ``ci_high`` and
``p_value`` (95% intervals). Each (task, model) pair is analysed on its own: languages and accuracy scales differ
between tasks. The unit of observation is a *cell*, one fine-tuned run's zero-shot accuracy on one target language
beside that run's alignment of the language with the source.

Missing cells are never dropped silently. The grid of a (task, model) is every observed method × seed × target
language; a cell without accuracy or alignment (a failed or unfinished run) is left out of the fits, counted in the
``n_missing`` column and reported by a :class:`MissingCellsWarning`; :func:`missing_cells` lists them.

A run's cells are not independent (its languages share its initialisation and data order): regressions cluster
by run with the CR2 small-sample correction (:mod:`xltlib.report.cluster`), and method effects are paired t over
seeds (honest, and wide, when seeds are few). These intervals condition on the test items (the same in every run);
the language factors' model is in :mod:`xltlib.report.factors`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

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
from xltlib.report.fits import coefficient_row, estimates_table, mundlak_rows, ols_rows
from xltlib.report.intervals import describe, holm, mean_ci, nan_estimate

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
NEGATIVE_CONTROLS = ("cka",)
"""Compared, never ranked: linear CKA is invariant to a rotation of either side, so it cannot tell whether a
sentence's translation lands near it, the alignment in question. If it predicts accuracy as well as the
candidates do, the comparison is measuring something other than alignment (e.g. how well either space is trained)."""
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
    pooling: str = "mean",
) -> pd.DataFrame:
    """Accuracy ~ alignment + C(language) (+ C(method)), two ways, per (task, model).

    - ``fit == "ols"``: language fixed effects, so the slope is *within* languages; CR2
      standard errors clustered by run (:mod:`xltlib.report.cluster`: a run's languages share
      its initialisation and data order), t with Bell–McCaffrey degrees of freedom. ``r2`` is
      the model's R²; ``r2_partial`` the share of the residual variance of the model without
      alignment that alignment explains.
    - ``fit == "mundlak"``: a random intercept per language (statsmodels ``MixedLM``, REML)
      with alignment split into its language mean (``alignment_between``) and the deviation
      from it (``alignment``, the within slope): distance drives both a language's alignment
      and its accuracy, so only the within slope compares like with like, and the gap between
      the two measures that confounding. ``r2_marginal`` / ``r2_conditional`` after Nakagawa &
      Schielzeth (2013).

    Method rows (``method[pgd]``…) are differences from ``baseline`` at equal alignment.
    ``mixed=False`` skips the mixed model; ``pooling="cls"`` with the last ``layer`` reads the ``<s>`` state the
    task head reads.
    """
    grid = cells(results, alignment, layer, pooling)
    rows = []
    for key, data, n_missing in complete_groups(grid, [ACCURACY, "alignment"], "level model"):
        data = _baseline_first(data, baseline)
        method = " + C(method)" if method_terms and data.method.nunique() > 1 else ""
        fixed = ols_rows(data, f"accuracy ~ alignment{method} + C(language)", f"accuracy ~ 1{method} + C(language)")
        models = [("ols", fixed)]
        if mixed:
            models.append(("mundlak", mundlak_rows(data, method)))
        for fit, fit_rows in models:
            rows += [{**dict(zip(GROUP, key)), "fit": fit, **row, "n_missing": n_missing} for row in fit_rows]
    return estimates_table(rows, [*GROUP, "fit"], [*FIT_STATISTICS, "n_clusters", "r2_marginal", "r2_conditional"])


def paired_model(
    results: pd.DataFrame,
    alignment: str = "cosine_gap",
    layer: int | None = None,
    baseline: str = "standard",
    method_terms: bool = False,
    source_accuracy: bool = False,
) -> pd.DataFrame:
    """Δaccuracy ~ Δalignment against ``baseline`` on the same seed, language, task and model.

    Does the alignment a method gains predict the accuracy it gains? OLS with CR2 standard
    errors clustered by the treated run (t with Bell–McCaffrey degrees of freedom);
    ``term == "alignment"`` is the slope, ``"intercept"`` the accuracy gained at no alignment
    gain. ``method_terms`` adds one intercept per method, so the slope comes from seed-to-seed
    and language-to-language variation within a method only. ``source_accuracy`` adds the
    run's Δ source-language accuracy (term ``source_accuracy``): a method that damages the
    source can lower target accuracy and alignment at once, a common cause the slope should
    not be credited with.
    """
    paired = deltas(results, alignment, layer, baseline)
    rows = []
    for key, data, n_missing in complete_groups(paired, ["d_accuracy", "d_alignment"], "paired model"):
        data = data.rename(columns={"d_accuracy": "gain", "d_alignment": "alignment"})
        terms = " + source_accuracy" if source_accuracy else ""
        if source_accuracy:
            data = data.rename(columns={"d_source_accuracy": "source_accuracy"}).dropna(subset=["source_accuracy"])
        intercepts = " + C(method) - 1" if method_terms and data.method.nunique() > 1 else ""
        fit_rows = ols_rows(
            data, f"gain ~ alignment{terms}{intercepts}", f"gain ~ 1{terms}{intercepts}", intercept=True
        )
        rows += [{**dict(zip(GROUP, key)), "fit": "ols", **row, "n_missing": n_missing} for row in fit_rows]
    return estimates_table(rows, [*GROUP, "fit"], [*FIT_STATISTICS, "n_clusters"])


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
    the language and method effects) or ``r2`` (paired), or by ``aic`` within a model. ``role`` is
    ``"negative control"`` for :data:`NEGATIVE_CONTROLS`, else ``"candidate"``; ``p_holm``: a candidate slope's
    p-value, Holm-corrected over every candidate metric and layer fitted for the same (task, model, analysis).
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
    table["role"] = np.where(table.metric.isin(NEGATIVE_CONTROLS), "negative control", "candidate")
    candidates = table.p_value.where(table.role == "candidate")
    table["p_holm"] = candidates.groupby([table[key] for key in [*GROUP, "analysis"]]).transform(holm)
    mixed_only = {"fit", "r2_marginal", "r2_conditional"}
    return table[front + [c for c in table.columns if c not in front and c not in mixed_only]].reset_index(drop=True)


def scored_comparison(comparison: pd.DataFrame) -> pd.DataFrame:
    """:func:`compare_alignment` with ``score`` (the level model's partial R², the paired model's R²; NaN where the
    fit failed, its ``note`` says why) and ``where`` (the layer, or ``mean`` for the hidden layers' mean)."""
    return comparison.assign(
        score=comparison.r2_partial.where(comparison.analysis == "level", comparison.r2),
        where=comparison.layer.astype("string").fillna("mean"),
    )


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
    """Spearman ρ between alignment and accuracy over a run's target languages, averaged over runs.

    Per (task, model) and method, and over all methods (``method == "all"``): each run's ρ across
    its languages (do the languages it aligns better transfer better?), then the mean over runs
    with a t interval on runs − 1 degrees of freedom, since runs, not cells, vary independently.
    ``n_obs`` counts runs; a run with fewer than three languages, or a flat outcome, has no ρ.
    """
    grid = cells(results, alignment, layer)
    rows = []
    for key, data, n_missing in complete_groups(grid, [ACCURACY, "alignment"], "rank correlations"):
        per_run = data.groupby(["method", "run_id"]).apply(_spearman, include_groups=False).dropna().reset_index()
        per_run.columns = ["method", "run_id", "rho"]
        for method, part in [("all", per_run), *per_run.groupby("method")]:
            rows.append(
                {
                    **dict(zip(GROUP, key)),
                    "method": method,
                    "term": "spearman_rho",
                    **mean_ci(part.rho.to_numpy()),
                    "n_obs": len(part),
                    "n_missing": n_missing,
                }
            )
    return estimates_table(rows, [*GROUP, "method"], ["n_obs", "n_missing"])


def _spearman(run: pd.DataFrame) -> float:
    """One run's ρ over its languages; NaN below three languages or where either side never varies."""
    if len(run) < 3 or np.ptp(run.alignment) == 0 or np.ptp(run[ACCURACY]) == 0:
        return np.nan
    return float(stats.spearmanr(run.alignment, run[ACCURACY])[0])


def _baseline_first(data: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Methods as a categorical whose first level, the reference of ``C(method)``, is ``baseline``."""
    methods = sorted(set(data.method), key=lambda method: (method != baseline, method))
    return data.assign(method=pd.Categorical(data.method, categories=methods))


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
