"""Dose–response: what a robust method's strength does to alignment and to zero-shot accuracy.

An experiment with ``doses`` runs a method at several multiples of its strength
(:func:`xltlib.config.methods.dosed_params`: ε and α for ``pgd``, σ for ``rs_rp``…), with
``standard`` fine-tuning as dose 0. Every function takes the store's tidy table and returns a
tidy frame; the dose of a run is read from its stored settings, as a multiple of the method's
default strength, so it means the same in every store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from xltlib.config.methods import STRENGTHS, params_class
from xltlib.report.analysis import ALL_LANGUAGES
from xltlib.report.cells import ACCURACY, GROUP, cells
from xltlib.report.intervals import CONFIDENCE, holm, mean_ci, nan_estimate

OUTCOMES = (ACCURACY, "alignment")


def run_doses(results: pd.DataFrame) -> pd.DataFrame:
    """One row per fine-tuned run of a method with a strength, or of ``standard``: ``run_id``,
    ``dosed`` (the method) and ``dose`` (its strength ÷ the default; 0 for ``standard``, listed
    once per dosed method of its (task, model))."""
    runs = results.drop_duplicates("run_id").dropna(subset=["settings"])
    rows = []
    for run in runs.itertuples():
        settings = json.loads(run.settings)
        method = settings["method"]
        if method in STRENGTHS:
            strength = STRENGTHS[method][0]
            default = params_class(method)().model_dump()[strength]
            rows.append(
                {
                    "run_id": run.run_id,
                    "task": run.task,
                    "model": run.model,
                    "dosed": method,
                    "dose": settings["method_params"][strength] / default,
                }
            )
    dosed = pd.DataFrame(rows, columns=["run_id", "task", "model", "dosed", "dose"])
    if dosed.empty:
        return dosed
    methods = dosed[[*GROUP, "dosed"]].drop_duplicates()
    standard = runs[runs.method == "standard"][["run_id", *GROUP]].merge(methods, on=GROUP).assign(dose=0.0)
    return pd.concat([dosed, standard[dosed.columns]], ignore_index=True)


def dose_cells(results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None) -> pd.DataFrame:
    """The analysis cells (one run and target language) of dosed runs, with ``dosed`` and ``dose``."""
    doses = run_doses(results)
    grid = cells(results, alignment, layer).dropna(subset=["run_id"])
    return grid.merge(doses.drop(columns=GROUP), on="run_id")


def dose_response(
    results: pd.DataFrame,
    alignment: str = "cosine_gap",
    layer: int | None = None,
    distances: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The slope of each outcome on the dose, per (task, model, dosed method, outcome, language).

    ``outcome`` is ``accuracy`` or ``alignment`` (the metric at ``layer``, or averaged over
    the hidden layers); ``language`` a target or ``"all targets"`` (each run's mean over
    targets). OLS of the outcome on the dose over every run (seeds and doses), with a fixed
    effect per seed when several seeds ran (the runs of one seed share its data order and
    initialisation at every dose), and a t interval: change per one default strength. It is a
    straight line through unevenly spaced doses (0, 0.3, 1, 3 puts most of the leverage on the
    largest), so :func:`dose_contrasts` gives each dose against dose 0 as well. ``distances``
    adds each language's distance.
    """
    table = dose_cells(results, alignment, layer)
    per_run = table.groupby([*GROUP, "dosed", "dose", "seed", "run_id"])[list(OUTCOMES)].mean().reset_index()
    units = pd.concat([table, per_run.assign(language=ALL_LANGUAGES)], ignore_index=True)
    rows = []
    for key, group in units.groupby([*GROUP, "dosed", "language"], sort=False):
        for outcome in OUTCOMES:
            rows.append(
                {
                    **dict(zip([*GROUP, "dosed", "language"], key)),
                    "outcome": outcome,
                    **_slope(group.dropna(subset=[outcome]), outcome),
                }
            )
    frame = pd.DataFrame(rows)
    if distances is not None and len(frame):
        frame["distance"] = frame.language.map(distances)
    return frame


def dose_means(results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None) -> pd.DataFrame:
    """Mean outcome per (task, model, dosed method, dose) over targets, with a t interval over seeds."""
    table = dose_cells(results, alignment, layer)
    per_run = table.groupby([*GROUP, "dosed", "dose", "seed"])[list(OUTCOMES)].mean().reset_index()
    rows = []
    for key, group in per_run.groupby([*GROUP, "dosed", "dose"], sort=True):
        for outcome in OUTCOMES:
            values = group[outcome].dropna().to_numpy()
            estimate = mean_ci(values)
            rows.append(
                {
                    **dict(zip([*GROUP, "dosed", "dose"], key)),
                    "outcome": outcome,
                    "estimate": estimate["estimate"],
                    "ci_low": estimate["ci_low"],
                    "ci_high": estimate["ci_high"],
                    "seeds": len(values),
                }
            )
    return pd.DataFrame(rows)


def dose_contrasts(results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None) -> pd.DataFrame:
    """Each dose against dose 0 (``standard``) of the same seed, over targets, per (task, model, dosed method,
    dose, outcome): the mean difference with a paired t interval over seeds, and ``p_holm``, its p-value
    Holm-corrected over the doses of the same (task, model, dosed method, outcome)."""
    table = dose_cells(results, alignment, layer)
    per_run = table.groupby([*GROUP, "dosed", "dose", "seed"])[list(OUTCOMES)].mean().reset_index()
    rows = []
    for key, group in per_run.groupby([*GROUP, "dosed"], sort=False):
        baseline = group[group.dose == 0].set_index("seed")
        for dose, treated in group[group.dose > 0].groupby("dose"):
            treated = treated.set_index("seed")
            for outcome in OUTCOMES:
                difference = (treated[outcome] - baseline[outcome]).dropna()
                rows.append(
                    {
                        **dict(zip([*GROUP, "dosed"], key)),
                        "dose": dose,
                        "outcome": outcome,
                        **mean_ci(difference.to_numpy()),
                        "seeds": len(difference),
                    }
                )
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["p_holm"] = frame.groupby([*GROUP, "dosed", "outcome"]).p_value.transform(holm)
    return frame


def _slope(data: pd.DataFrame, outcome: str) -> dict:
    counts = {"n_obs": len(data), "n_doses": data.dose.nunique()}
    if data.dose.nunique() < 2 or len(data) < 3 or np.ptp(data[outcome].to_numpy(dtype=float)) == 0:
        return {**nan_estimate(), **counts}
    seeds = " + C(seed)" if data.seed.nunique() > 1 and len(data) > data.seed.nunique() + 1 else ""
    fit = smf.ols(f"{outcome} ~ dose{seeds}", data).fit()
    low, high = fit.conf_int(alpha=1 - CONFIDENCE).loc["dose"]
    return {
        "estimate": fit.params["dose"],
        "std_error": fit.bse["dose"],
        "ci_low": low,
        "ci_high": high,
        "p_value": fit.pvalues["dose"],
        **counts,
    }
