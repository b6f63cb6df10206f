"""Which of the synthetic languages' designed factors move transfer and alignment? A model over draws.

The default target languages cross anchor share, clause order and shared function words
(:func:`xltlib.synthetic.languages.factorial_targets`); :func:`factor_model` fits each
outcome on the factors themselves rather than on one distance number.
"""

from __future__ import annotations

import pandas as pd
import statsmodels.formula.api as smf

from xltlib.report.cells import ACCURACY, GROUP, cells, check_metric, pretrained_alignment
from xltlib.report.fits import coefficient_row, estimates_table
from xltlib.report.intervals import nan_estimate

LANGUAGE_FACTORS = "anchor_share + C(order) + shared_function_words"
"""The synthetic target languages' design factors as a model formula's right-hand side."""


def factor_model(
    results: pd.DataFrame, factors: pd.DataFrame, alignment: str = "cosine_gap", baseline: str = "standard"
) -> pd.DataFrame:
    """Which of the designed language factors move zero-shot accuracy and pre-trained alignment?

    Per task: OLS of each outcome on the target languages' factors (``factors``: one row per
    language code, columns ``anchor_share``, ``order`` and ``shared_function_words``), one
    observation per (encoder, target language): the ``baseline`` runs' accuracy (mean over
    seeds) and the pre-trained encoder's alignment. The encoders are the pre-training draws;
    a draw's languages share its encoder, so intervals are clustered by encoder (Student t
    with encoders − 1 degrees of freedom), and not clustered when there is one encoder.
    """
    check_metric(alignment)
    grid = cells(results, alignment)
    accuracy = grid[grid.method == baseline].groupby([*GROUP, "language"])[ACCURACY].mean().reset_index()
    observed = accuracy.merge(pretrained_alignment(results, alignment), on=[*GROUP, "language"], how="outer")
    columns = factors[["anchor_share", "order", "shared_function_words"]].astype(
        {"anchor_share": float, "shared_function_words": int}
    )
    orders = sorted(set(columns.order), key=lambda order: (order != "SVO", order))  # the base's order is the reference
    columns = columns.assign(order=pd.Categorical(columns.order, categories=orders))
    observed = observed.merge(columns, left_on="language", right_index=True)
    rows = []
    for task, data in observed.groupby("task", sort=True):
        for outcome in (ACCURACY, "pretrained_alignment"):
            chosen = data.dropna(subset=[outcome])
            encoders = chosen.model.astype("category").cat.codes.to_numpy()
            names = {"task": task, "outcome": outcome, "n_obs": len(chosen), "n_groups": int(len(set(encoders)))}
            if len(chosen) <= 5 or chosen[outcome].nunique() == 1:
                rows.append({**names, "term": "anchor_share", **nan_estimate(), "note": "too few observations"})
                continue
            model = smf.ols(f"{outcome} ~ {LANGUAGE_FACTORS}", chosen)
            clustered = names["n_groups"] > 1
            fit = model.fit(cov_type="cluster", cov_kwds={"groups": encoders}, use_t=True) if clustered else model.fit()
            rows += [{**names, **coefficient_row(fit, term)} for term in fit.params.index if term != "Intercept"]
    return estimates_table(rows, ["task", "outcome"], ["n_obs", "n_groups", "note"])
