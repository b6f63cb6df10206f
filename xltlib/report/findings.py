"""From the analysis tables to the synthesis chapter's statements: scales, picks and verdicts.

The synthesis notebook calls these and only formats and plots; each function takes a table
of :mod:`xltlib.report.analysis` and returns a number, a row or a phrase, so what the book
concludes is tested here rather than in a notebook.
"""

from __future__ import annotations

import pandas as pd

from xltlib.report.analysis import ALL_LANGUAGES, GENERALIZED
from xltlib.report.cells import ACCURACY


def effect_summary(effects: pd.DataFrame) -> pd.DataFrame:
    """The method effects averaged over targets, with a ``setting`` column: ``accuracy, all targets``,
    ``accuracy, generalized`` or the alignment metric's name (its gain over all targets)."""
    summary = effects[effects.language.isin([ALL_LANGUAGES, GENERALIZED])]
    return summary.assign(
        setting=summary.outcome.where(summary.outcome != ACCURACY, ACCURACY + ", " + summary.language)
    )


def settings(summary: pd.DataFrame, metric: str) -> list[str]:
    """The settings of :func:`effect_summary` present, in the book's order (no generalized rows: not scored)."""
    wanted = [f"{ACCURACY}, {ALL_LANGUAGES}", f"{ACCURACY}, {GENERALIZED}", metric]
    return [setting for setting in wanted if setting in set(summary.setting)]


def per_language(effects: pd.DataFrame) -> pd.DataFrame:
    """The method effects on single target languages (not averaged over targets, not generalized)."""
    return effects[~effects.language.isin([ALL_LANGUAGES, GENERALIZED])]


def within_language_sd(cells: pd.DataFrame) -> pd.Series:
    """Per task: the standard deviation of alignment around its language's mean.

    The level model's slope is learned from exactly this variation (language intercepts
    absorb the rest), so one such sd is the natural unit to state the slope in.
    """
    complete = cells.dropna(subset=[ACCURACY, "alignment"])
    centred = complete.alignment - complete.groupby(["task", "language"]).alignment.transform("mean")
    return centred.groupby(complete.task).std()


def best_method(summary: pd.DataFrame, task: str, language: str = ALL_LANGUAGES) -> pd.Series | None:
    """The method with the largest mean accuracy gain on ``task`` (over ``language``), or None if none was compared.

    Picked after the fact among several: if anything, an optimistic figure.
    """
    rows = summary[(summary.task == task) & (summary.outcome == ACCURACY) & (summary.language == language)]
    rows = rows.dropna(subset=["estimate"])
    return rows.loc[rows.estimate.idxmax()] if len(rows) else None


def verdict(row: pd.Series) -> str:
    """What a 95% interval says about an effect: a gain, a loss, nothing detectable, or no interval."""
    if pd.isna(row.ci_low):
        return "no interval (a single seed)"
    if row.ci_low > 0:
        return "the interval excludes zero: a gain"
    if row.ci_high < 0:
        return "the interval excludes zero: a loss"
    return "the interval includes zero: inconclusive"


def paper_relation(row: pd.Series, paper_points: float) -> str:
    """Whether a published gain (in points) lies ``within`` or ``outside`` the row's interval (a fraction)."""
    if pd.isna(row.ci_low):
        return "not comparable with"
    return "within" if row.ci_low <= paper_points / 100 <= row.ci_high else "outside"


def generalized_larger(summary: pd.DataFrame) -> tuple[int, int]:
    """(pairs whose mean gain is larger in the generalized setting than in plain zero-shot, (task, method) pairs with
    both)."""

    def gains(language: str) -> pd.Series:
        rows = summary[(summary.outcome == ACCURACY) & (summary.language == language)]
        return rows.set_index(["task", "method"]).estimate

    both = pd.concat({"zero_shot": gains(ALL_LANGUAGES), "generalized": gains(GENERALIZED)}, axis=1).dropna()
    return int((both.generalized > both.zero_shot).sum()), len(both)


def distance_counts(distance: pd.DataFrame) -> dict[str, int | str | None]:
    """How many (task, method) slopes of :func:`~xltlib.report.analysis.distance_model` fall, rise or were not fitted.

    ``falling``: interval below zero (larger gains for worse-aligned languages, the paper's
    claim); ``rising``: above zero; ``note``: why the first unfitted one was not fitted.
    """
    fitted = distance.dropna(subset=["estimate"])
    unfitted = distance[distance.estimate.isna()]
    return {
        "fitted": len(fitted),
        "falling": int((fitted.ci_high < 0).sum()),
        "rising": int((fitted.ci_low > 0).sum()),
        "unfitted": len(unfitted),
        "note": unfitted.note.dropna().iloc[0] if unfitted.note.notna().any() else None,
    }
