"""Which alignment metric, at which layer, predicts accuracy best, and would the pick survive another draw?

:func:`~xltlib.report.analysis.compare_alignment` scores every metric and layer on one encoder
(the level model's partial R², the paired model's R²). Picking the top one of ~36 on the same
data is optimistic, so here each pre-training draw is scored on its own and the pick is checked
the way a prediction is: leave one draw out, choose the metric and layer with the best mean
score on the others, and read its score on the draw left out (``held_out_score``, beside that
draw's own best, ``oracle_score``). ``kendall_w`` (Kendall's coefficient of concordance, 0 to
1) says how much the draws agree on the whole ranking. CKA, a negative control
(:data:`~xltlib.report.analysis.NEGATIVE_CONTROLS`), is scored but never picked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from xltlib.report import analysis
from xltlib.report.draws import draw_of_model, on_every_draw

CHOICE = ["metric", "where"]
SPLIT = ["task", "analysis"]


def scores_by_draw(results: pd.DataFrame, baseline: str = "standard") -> pd.DataFrame:
    """:func:`~xltlib.report.analysis.scored_comparison` fitted on each pre-training draw, with its ``draw``."""
    scored = analysis.scored_comparison(analysis.compare_alignment(on_every_draw(results), baseline=baseline))
    return scored.assign(draw=scored.model.map(draw_of_model(results)))


def ranking(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (task, analysis, metric, layer): the mean score over draws, its sd, the draws scored and how many of them
    it ranks first among the candidates on (``wins``)."""
    fitted = scores.dropna(subset=["score"])
    candidates = fitted[fitted.role == "candidate"]
    firsts = candidates.loc[candidates.groupby([*SPLIT, "draw"]).score.idxmax()]
    wins = firsts.groupby([*SPLIT, *CHOICE]).size().rename("wins")
    table = fitted.groupby([*SPLIT, *CHOICE, "role"]).score.agg(mean_score="mean", sd_score="std", n_draws="count")
    table = table.reset_index().merge(wins.reset_index(), on=[*SPLIT, *CHOICE], how="left").fillna({"wins": 0})
    return table.astype({"wins": int}).sort_values([*SPLIT, "mean_score"], ascending=[True, True, False])


def stability(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (task, analysis): the leave-one-draw-out pick's score on the draw left out (mean over folds) beside each
    draw's own best, how often the folds pick the same metric and layer, and Kendall's W over the draws' rankings."""
    candidates = scores[scores.role == "candidate"].dropna(subset=["score"])
    rows = []
    for (task, kind), group in candidates.groupby(SPLIT, sort=True):
        grid = group.pivot_table(index=CHOICE, columns="draw", values="score").dropna()
        if grid.shape[1] < 3:
            continue
        picks, held_out = [], []
        for draw in grid.columns:
            choice = grid.drop(columns=draw).mean(axis=1).idxmax()
            picks.append(choice)
            held_out.append(grid.loc[choice, draw])
        overall = grid.mean(axis=1).idxmax()
        rows.append(
            {
                "task": task,
                "analysis": kind,
                "pick": f"{overall[0]} at layer {overall[1]}",
                "held_out_score": float(np.mean(held_out)),
                "oracle_score": float(grid.max(axis=0).mean()),
                "same_pick": sum(pick == overall for pick in picks),
                "n_draws": grid.shape[1],
                "kendall_w": kendall_w(grid.to_numpy()),
            }
        )
    return pd.DataFrame(rows)


def kendall_w(scores: np.ndarray) -> float:
    """Kendall's W of ``scores`` (items × raters; here metric-layers × draws), ties averaged, no tie correction."""
    items, raters = scores.shape
    ranks = np.column_stack([stats.rankdata(scores[:, rater]) for rater in range(raters)])
    spread = ((ranks.sum(axis=1) - raters * (items + 1) / 2) ** 2).sum()
    return float(12 * spread / (raters**2 * (items**3 - items)))
