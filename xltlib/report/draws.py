"""Replication across pre-training draws: estimates whose unit is the draw, not the seed.

A synthetic encoder's pre-training draw is a replication unit like the fine-tuning seed: a
method can help on one draw and not on another (MultiBERTs, Sellam et al. 2022). Draws are
told apart by ``model`` (each draw is its own encoder); the configurations of
:func:`~xltlib.report.cells.label_configurations` carry one name on every draw, which pairs
them up. Each quantity is estimated on every draw (over its seeds), then averaged over the
draws with a t interval on D − 1 degrees of freedom. For a balanced design this is the
interval of a mixed model with a random intercept per draw (seeds nested in draws): the
spread between draws, seed noise included, is what it is built from. With three draws the
t quantile is 4.3, so the interval is honest about how few draws there are (a percentile
multi-bootstrap over draws and seeds, as in MultiBERTs, covered a known effect in 22 of 30
simulated studies even with six draws, as it ignores that the draws' spread is estimated).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xltlib.config import PRETRAINED
from xltlib.report import analysis
from xltlib.report.analysis import method_units
from xltlib.report.cells import label_configurations
from xltlib.report.intervals import mean_ci
from xltlib.report.tables import brief


def across_draws(per_draw: pd.Series) -> dict:
    """The mean of the draws' own estimates, with a t interval over draws (D − 1 df): the draw is the unit."""
    return {
        **mean_ci(per_draw.to_numpy(float)),
        "n_draws": len(per_draw),
        "draws_agreeing": int((np.sign(per_draw) == np.sign(per_draw.mean())).sum()),
        "per_draw": ", ".join(f"{draw}: {value:+.4g}" for draw, value in per_draw.items()),
    }


def draw_of_model(results: pd.DataFrame) -> pd.Series:
    """Each model's pre-training draw (the model itself where a row has none: an encoder that is not a draw)."""
    encoders = results.drop_duplicates("model").set_index("model").draw
    return encoders.astype(object).where(encoders.notna(), encoders.index.to_series())


def on_every_draw(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of the configurations run on every pre-training draw of their task (labelled by
    :func:`~xltlib.report.cells.label_configurations`); a configuration of one draw only (a dose)
    has no replication across draws and is left out."""
    results = label_configurations(results)
    draws = results.model.map(draw_of_model(results))
    per_task = draws.groupby(results.task).nunique()
    per_method = draws.groupby([results.task, results.method]).transform("nunique")
    return results[per_method.to_numpy() == results.task.map(per_task).to_numpy()]


def draw_units(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, baseline: str = "standard"
) -> pd.DataFrame:
    """The gains of :func:`~xltlib.report.analysis.method_units` (complete ones only) of the configurations of
    :func:`on_every_draw`, each with its ``draw``: what every estimate over draws averages."""
    units = method_units(on_every_draw(results), alignment, layer, baseline).dropna(subset=["gain"])
    return units.assign(draw=units.model.map(draw_of_model(results)))


def method_effects_across_draws(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, baseline: str = "standard"
) -> pd.DataFrame:
    """Each method's mean gain over ``baseline`` (same draw and seed) across a task's pre-training draws.

    The rows of :func:`~xltlib.report.analysis.method_effects` (outcomes, ``all targets``, per
    language, ``generalized``) for the configurations of :func:`on_every_draw`: each draw's
    mean gain over its seeds, then :func:`across_draws`. ``model`` reads ``draws 0, 2, 3``;
    ``n_obs`` counts the (draw, seed) gains.
    """
    units = draw_units(results, alignment, layer, baseline)
    rows = []
    for (task, method, outcome, language), group in units.groupby(
        ["task", "method", "outcome", "language"], sort=False
    ):
        per_draw = group.groupby("draw").gain.mean()
        rows.append(
            {
                "task": task,
                "model": _draws_label(per_draw.index),
                "method": method,
                "outcome": outcome,
                "language": language,
                "term": method,
                **across_draws(per_draw),
                "n_obs": len(group),
            }
        )
    return pd.DataFrame(rows)


def paired_slope_across_draws(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, baseline: str = "standard"
) -> pd.DataFrame:
    """Per task: the paired model's slope (Δaccuracy on Δalignment against ``baseline``, same draw, seed and
    language; :func:`~xltlib.report.analysis.paired_model`) fitted on each draw, then :func:`across_draws`."""
    slopes = analysis.paired_model(on_every_draw(results), alignment, layer, baseline)
    return _averaged_over_draws(slopes[slopes.term == "alignment"], results)


def level_slope_across_draws(
    results: pd.DataFrame,
    alignment: str = "cosine_gap",
    layer: int | None = None,
    baseline: str = "standard",
    pooling: str = "mean",
) -> pd.DataFrame:
    """Per task: the level model's within-language slope (accuracy on alignment with language and method fixed
    effects; :func:`~xltlib.report.analysis.level_model`) fitted on each draw, then :func:`across_draws`."""
    replicated = on_every_draw(results)
    slopes = analysis.level_model(replicated, alignment, layer, baseline=baseline, mixed=False, pooling=pooling)
    return _averaged_over_draws(slopes[slopes.term == "alignment"], results)


def slopes_across_draws(
    results: pd.DataFrame, alignment: str = "cosine_gap", baseline: str = "standard"
) -> dict[str, pd.DataFrame]:
    """The study's slopes across draws for the tasks run on several, by name: ``within`` (level model, alignment
    mean-pooled over the hidden layers), ``paired``, and ``within_cls`` (level model on the last layer's ``<s>``,
    where the task head reads; empty for runs stored before it was measured)."""
    replicated = results[results.task.isin(tasks_with_several_draws(results))]
    if replicated.empty:
        return dict.fromkeys(("within", "paired", "within_cls"), pd.DataFrame())
    at_cls = replicated.pooling.fillna("").eq("cls")
    slopes = {
        "within": level_slope_across_draws(replicated, alignment, baseline=baseline),
        "paired": paired_slope_across_draws(replicated, alignment, baseline=baseline),
        "within_cls": pd.DataFrame(),
    }
    if at_cls.any():
        last = int(replicated.loc[at_cls, "layer"].max())
        cls = level_slope_across_draws(replicated, alignment, last, baseline, pooling="cls")
        slopes["within_cls"] = cls.assign(layer=last)
    return slopes


def across_draws_tables(summary: pd.DataFrame, across: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The book's two tables across draws: each method's accuracy gain over all targets (from
    :func:`~xltlib.report.findings.effect_summary`) and the slopes of :func:`slopes_across_draws`, each with its
    conclusion (:func:`holds_across_draws`)."""
    several = set(next((table.task for table in across.values() if len(table)), []))
    gains = summary[summary.task.isin(several) & (summary.setting == f"accuracy, {analysis.ALL_LANGUAGES}")]
    gains = gains.assign(gain=gains.apply(brief, axis=1), conclusion=gains.apply(holds_across_draws, axis=1))
    labels = {"within": "within languages", "paired": "paired", "within_cls": "within languages, last layer <s>"}
    slopes = pd.concat([table.assign(slope=labels[name]) for name, table in across.items() if len(table)])
    slopes = slopes.assign(conclusion=slopes.apply(holds_across_draws, axis=1, signs=("positive", "negative")))
    return (
        gains[["task", "method", "gain", "conclusion", "per_draw", "n_draws", "n_obs"]],
        slopes[["task", "slope", "estimate", "ci_low", "ci_high", "p_value", "conclusion", "per_draw", "n_draws"]],
    )


def _averaged_over_draws(slopes: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    slopes = slopes.assign(draw=slopes.model.map(draw_of_model(results)))
    rows = []
    for task, group in slopes.groupby("task", sort=False):
        per_draw = group.set_index("draw").estimate.dropna().sort_index()
        rows.append(
            {
                "task": task,
                "model": _draws_label(per_draw.index),
                "term": "alignment",
                **across_draws(per_draw),
                "n_obs": int(group.n_obs.sum()),
            }
        )
    return pd.DataFrame(rows)


def _draws_label(draws) -> str:
    return "draws " + ", ".join(str(draw) for draw in draws)


def holds_across_draws(row: pd.Series, signs: tuple[str, str] = ("a gain", "a loss")) -> str:
    """What an estimate across draws says and whether every draw agrees, in words for the book
    (``signs``: how to call a positive and a negative estimate)."""
    if pd.isna(row.ci_low):
        return "no interval"
    if row.ci_low > 0 or row.ci_high < 0:
        direction = signs[0] if row.ci_low > 0 else signs[1]
        agreeing = f"{int(row.draws_agreeing)} of {int(row.n_draws)} draws"
        return f"{direction}, in {agreeing}" + ("" if row.draws_agreeing == row.n_draws else " (depends on the draw)")
    return "inconclusive"  # "no effect" needs an equivalence test (xltlib.report.preregistered)


def primary_draw(results: pd.DataFrame) -> pd.DataFrame:
    """Per task, the rows of one pre-training draw: the one with the most runs (where an experiment's doses
    ran), the lowest on a tie; rows of encoders that are not draws are all kept."""
    runs = results.dropna(subset=["draw"]).drop_duplicates("run_id")
    counts = (
        runs.groupby(["task", "draw"])
        .size()
        .reset_index(name="runs")
        .sort_values(["task", "runs", "draw"], ascending=[True, False, True])
    )
    chosen = counts.drop_duplicates("task").set_index("task").draw
    return results[results.draw.isna() | (results.draw == results.task.map(chosen))]


def tasks_with_several_draws(results: pd.DataFrame) -> list[str]:
    """The tasks whose fine-tuned runs used more than one encoder (pre-training draw)."""
    encoders = results[results.method != PRETRAINED].groupby("task", sort=False).model.nunique()
    return encoders[encoders > 1].index.tolist()


def study_method_effects(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, baseline: str = "standard"
) -> pd.DataFrame:
    """The study's method effects: across draws (:func:`method_effects_across_draws`) for a task run on several
    pre-training draws, else :func:`~xltlib.report.analysis.method_effects` (paired t over seeds)."""
    several = tasks_with_several_draws(results)
    frames = []
    for task, rows in results.groupby("task", sort=False):
        if task in several:
            frames.append(method_effects_across_draws(rows, alignment, layer, baseline))
        else:
            frames.append(analysis.method_effects(rows, alignment, layer, baseline))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
