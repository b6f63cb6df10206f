"""Which metric predicts best, checked across draws: the leave-one-draw-out pick and the draws' agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xltlib.report import comparison
from xltlib.report.simulation import simulate


def layered_draws(rng: np.random.Generator, draws: int = 4) -> pd.DataFrame:
    """Stores of several draws in which accuracy follows layer 2's alignment only."""
    frames = []
    for draw in range(draws):
        frame = simulate(rng, layer_slopes={1: 0.0, 2: 0.8}, noise=0.005)
        frames.append(frame.assign(model=f"m{draw}", draw=draw, run_id=f"d{draw}-" + frame.run_id))
    return pd.concat(frames, ignore_index=True).astype({"draw": "Int64"})


def test_kendall_w_is_one_for_agreeing_raters_and_zero_for_opposed_ones():
    scores = np.random.default_rng().normal(size=(6, 1))
    assert comparison.kendall_w(np.hstack([scores, 2 * scores, scores + 1])) == pytest.approx(1.0)
    assert comparison.kendall_w(np.hstack([scores, -scores])) == pytest.approx(0.0)


def test_the_pick_that_drives_accuracy_survives_every_left_out_draw():
    scores = comparison.scores_by_draw(layered_draws(np.random.default_rng(50)))
    assert scores.draw.nunique() == 4 and set(scores.role) == {"candidate"}
    table = comparison.stability(scores).set_index("analysis")
    assert list(table.pick) == ["cosine_gap at layer 2"] * 2 and (table.same_pick == 4).all()
    assert (table.held_out_score <= table.oracle_score + 1e-12).all() and (table.held_out_score > 0.9).all()
    ranked = comparison.ranking(scores)
    top = ranked.groupby("analysis").head(1)
    assert list(top["where"]) == ["2", "2"] and (top.wins == 4).all() and (top.n_draws == 4).all()
