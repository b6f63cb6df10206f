"""The causal arm in the store: accuracy against the alignment that Procrustes surgery produces.

Each ``standard`` run of a pair task stores, per target and dose λ (0, 0.5, 1), the task head's
accuracy and the ``<s>`` cosine gap on the held-out half of the test pairs after the target's
last-layer states were moved a fraction λ onto the source's (:mod:`xltlib.evaluation.surgery`).
Alignment is then the treatment, set on purpose, and nothing else about the run changes.

The unit is the pre-training draw where a task ran on several, else the run (seed): each unit's
estimate, then a t interval over units. The *causal slope* is fitted within each run and
language (accuracy on alignment across the doses, a fixed effect per run and language); the
*observational slope* beside it uses the same measure at λ = 0 across units within languages
(a fixed effect per language, CR2 clustered by unit): how accuracy goes with alignment when
alignment is left as fine-tuning made it.
"""

from __future__ import annotations

import pandas as pd
import statsmodels.formula.api as smf

from xltlib.evaluation.surgery import SURGERY_METRICS
from xltlib.report.cluster import cr2_ols
from xltlib.report.draws import tasks_with_several_draws
from xltlib.report.fits import coefficient_row
from xltlib.report.intervals import describe, mean_ci, nan_estimate

TERMS = ("alignment_gained", "accuracy_gained", "causal_slope", "observational_slope")


def surgery_cells(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, unit, run, language, dose): ``accuracy`` and ``alignment`` after surgery at ``dose``;
    ``unit`` is the run's model (a pre-training draw) where its task ran on several, else the run."""
    rows = results[results.metric.isin(SURGERY_METRICS)]
    if rows.empty:
        return pd.DataFrame(columns=["task", "unit", "run_id", "language", "dose", "accuracy", "alignment"])
    several = set(tasks_with_several_draws(results))
    table = rows.pivot_table(index=["task", "model", "run_id", "tgt_lang", "corpus"], columns="metric", values="value")
    table = table.reset_index().rename(
        columns={"tgt_lang": "language", "surgery_accuracy": "accuracy", "surgery_cosine_gap": "alignment"}
    )
    table["dose"] = table.corpus.str.removeprefix("surgery-").astype(float)
    table["unit"] = table.model.where(table.task.isin(several), table.run_id)
    return table[["task", "unit", "run_id", "language", "dose", "accuracy", "alignment"]]


def per_unit(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, unit): ``alignment_gained`` and ``accuracy_gained`` (λ = 1 against 0, mean over its
    runs' targets) and ``causal_slope`` (accuracy on alignment across the doses, within run and language)."""
    cells = surgery_cells(results)
    frames = []
    for task, data in cells.groupby("task", sort=False):
        extremes = data[data.dose.isin([0.0, 1.0])].pivot_table(
            index=["unit", "run_id", "language"], columns="dose", values=["accuracy", "alignment"]
        )
        gained = {
            f"{outcome}_gained": (extremes[(outcome, 1.0)] - extremes[(outcome, 0.0)]).groupby(level="unit").mean()
            for outcome in ("alignment", "accuracy")
        }
        slopes = data.groupby("unit").apply(_within_slope, include_groups=False).rename("causal_slope")
        frames.append(pd.DataFrame(gained).join(slopes).reset_index().assign(task=task))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["task", "unit", *TERMS[:3]])


def causal_effects(results: pd.DataFrame) -> pd.DataFrame:
    """Per task: what full surgery (λ = 1 against 0) adds to alignment and accuracy, the causal slope and the
    observational slope beside it; one row per ``term`` of :data:`TERMS`, with a t interval over units."""
    units = per_unit(results)
    cells = surgery_cells(results)
    rows = []
    for task, data in units.groupby("task", sort=False):
        for term in TERMS[:3]:
            values = data[term].dropna().to_numpy()
            rows.append({"task": task, "term": term, **mean_ci(values), "n_units": len(values)})
        untouched = cells[(cells.task == task) & (cells.dose == 0.0)]
        rows.append({"task": task, "term": "observational_slope", **_observational(untouched)})
    return pd.DataFrame(rows)


def _within_slope(unit: pd.DataFrame) -> float:
    """Accuracy on alignment across the doses, within each run and language (the surgery's own variation)."""
    if unit.dose.nunique() < 2:
        return float("nan")
    return float(smf.ols("accuracy ~ alignment + C(run_id):C(language)", unit).fit().params["alignment"])


def _observational(untouched: pd.DataFrame) -> dict:
    """Accuracy on alignment at λ = 0 across units, within languages, CR2 clustered by unit."""
    units = untouched.unit.nunique()
    if units < 3 or untouched.groupby("language").unit.nunique().max() < 2:
        return {**nan_estimate(), "n_units": units}
    fit = cr2_ols("accuracy ~ alignment + C(language)", untouched, untouched.unit)
    row = coefficient_row(fit, "alignment")
    return {key: row[key] for key in ("estimate", "std_error", "ci_low", "ci_high", "p_value")} | {"n_units": units}


LABELS = {
    "alignment_gained": "<s> cosine gap gained (λ = 1 vs 0)",
    "accuracy_gained": "accuracy gained, points (λ = 1 vs 0)",
    "causal_slope": "causal slope: accuracy per unit of gap moved",
    "observational_slope": "observational slope at λ = 0, within languages",
}


def readable(effects: pd.DataFrame) -> pd.DataFrame:
    """:func:`causal_effects` as the book shows it: accuracy gains in points, the rest in their units."""
    scale = effects.term.eq("accuracy_gained").map({True: 100.0, False: 1.0})
    numbers = effects[["estimate", "ci_low", "ci_high"]].mul(scale, axis=0).round(3)
    return pd.DataFrame(
        {
            "task": effects.task,
            "quantity": effects.term.map(LABELS),
            **numbers,
            "p_value": effects.p_value.round(4),
            "units": effects.n_units,
        }
    )


def sentence(effects: pd.DataFrame, task: str, unit: str) -> str:
    """What the causal arm found on ``task``, for the book's prose (``unit``: "draws" or "seeds")."""
    rows = effects[effects.task == task].set_index("term")
    if pd.isna(rows.loc["causal_slope"].estimate):
        return f"**{task}.** The surgery could not be analysed (fewer than two doses or units)."

    def told(term: str, scale: float = 1.0, unit_text: str = "") -> str:
        return describe(rows.loc[term], scale=scale, unit=unit_text, digits=1 if scale > 1 else 3)

    observed = rows.loc["observational_slope"]
    count = int(rows.loc["accuracy_gained"].n_units)
    units = f"{count} {unit if count > 1 else unit.removesuffix('s')}"
    across = f"with {told('observational_slope')}" if pd.notna(observed.estimate) else "unmeasured (too few units)"
    return (
        f"**{task}.** Moving each target's last-layer `<s>` states fully onto the source's changes their cosine "
        f"gap with the source by {told('alignment_gained')} and zero-shot accuracy by "
        f"{told('accuracy_gained', 100, ' pts')} ({units}). Per unit of gap moved, accuracy changes by "
        f"{told('causal_slope')} (causal: within run and language); left as fine-tuning made it, the same gap goes "
        f"{across} across {unit} (observational)."
    )


def report_text(effects: pd.DataFrame, unit: str, registered: int) -> str:
    """The causal arm's paragraphs (:func:`sentence` per task), and the announcement of ``registered`` tests; or
    why there is nothing to report."""
    if effects.empty:
        return (
            "No run here carries the causal arm: only `standard` runs of pair tasks (not XCOPA), computed by code "
            "that has it, do."
        )
    text = "\n\n".join(sentence(effects, task, unit) for task in effects.task.unique())
    if registered:
        text += "\n\nThe registered tests of amendment 1 (seeds as units, Holm over the tasks):"
    return text
