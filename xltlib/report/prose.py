"""The synthesis chapter's sentences, written from the analysis' tables at display time.

Each function takes result tables (tidy frames of :mod:`xltlib.report.analysis`,
:mod:`~xltlib.report.draws`, :mod:`~xltlib.report.findings`, :mod:`~xltlib.report.preregistered`) and returns
Markdown. Every claim is an effect with its interval, an equivalence result, or "inconclusive"; the rules that
pick the words live in the functions they call (:func:`~xltlib.report.findings.verdict`,
:func:`~xltlib.report.draws.holds_across_draws`, :func:`~xltlib.report.preregistered.verdict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from xltlib.report import findings
from xltlib.report.draws import holds_across_draws
from xltlib.report.intervals import describe
from xltlib.report.preregistered import registered_verdict

SLOPE_WORDS = ("positive", "negative")


def in_points(row: pd.Series) -> str:
    """An accuracy effect (a fraction) in points with its interval."""
    return describe(row, scale=100, unit=" pts")


def level_lines(slopes: pd.DataFrame, within_sd: Mapping[str, float], tasks: Sequence[str], metric: str) -> str:
    """Per task: the within-language slope (fixed effects, CR2 by run) and the Mundlak between slope, per
    standard deviation of alignment within a language. ``slopes``: the level model's alignment rows."""
    lines = []
    for task in tasks:
        rows = slopes[slopes.task == task]
        within = rows[(rows.fit == "ols") & (rows.term == "alignment")].iloc[0]
        between = rows[rows.term == "alignment_between"]
        if pd.isna(within.estimate) or between.empty or pd.isna(between.estimate.iloc[0]):
            lines.append(
                f"- **{task}**: not estimated ({within.note if pd.isna(within.estimate) else rows.note.iloc[-1]})."
            )
            continue
        sd = within_sd[task]
        explained = (
            f"alignment adds {100 * within.r2_partial:.1f}% to the variance the language and method effects leave "
            "unexplained. "
            if pd.notna(within.r2_partial)
            else "the language and method effects leave no variance for alignment to explain. "
        )
        lines.append(
            f"- **{task}**: runs of one language differ in `{metric}` by {sd:.4f} (standard deviation). One such "
            f"standard deviation more goes with {describe(within, 100 * sd, ' pts')} of accuracy (fixed effects, CR2 "
            f"by run over {within.n_clusters:.0f} runs, p = {within.p_value:.2g}); {explained}Between languages, the "
            f"same difference goes with {describe(between.iloc[0], 100 * sd, ' pts')} (Mundlak model, p = "
            f"{between.p_value.iloc[0]:.2g}): a language's distance moves both, so this slope is not the effect of "
            "alignment."
        )
    return "\n".join(lines)


def paired_lines(paired: pd.DataFrame, differences: pd.DataFrame, tasks: Sequence[str]) -> str:
    """Per task: the paired slope per standard deviation of the alignment gains."""
    lines = []
    for task in tasks:
        row = paired[(paired.task == task) & (paired.term == "alignment")]
        if row.empty:
            continue
        row = row.iloc[0]
        if pd.isna(row.estimate):
            lines.append(f"- **{task}**: not estimated ({row.note}).")
            continue
        sd = differences[differences.task == task].d_alignment.std()
        lines.append(
            f"- **{task}**: the alignment gains vary with a standard deviation of {sd:.4f}; one standard deviation "
            f"more goes with {describe(row, 100 * sd, ' pts')} of accuracy gained (p = {row.p_value:.2g}, "
            f"R² = {row.r2:.2f}, {row.n_obs} pairs)."
        )
    return "\n".join(lines)


def best_method_lines(
    summary: pd.DataFrame,
    tasks: Sequence[str],
    baseline: str,
    tests: pd.DataFrame,
    several_seeds: bool,
    paper_gains: Mapping[str, float],
) -> str:
    """Per task: the largest accuracy gain over ``baseline``, its verdicts, and (real tasks) Huang et al.'s gain."""
    lines = []
    for task in tasks:
        best = findings.best_method(summary, task)
        if best is None:
            lines.append(f"- **{task}**: only `{baseline}` was run.")
            continue
        compared = summary[(summary.task == task) & (summary.outcome == "accuracy")]
        methods = compared.method.nunique()
        line = (
            f"- **{task}**: the largest mean accuracy gain over `{baseline}` is `{best.method}`'s, {in_points(best)} — "
            f"{findings.verdict(best)} (the best of {methods} picked after the fact, so if anything an optimistic "
            "figure). "
        )
        registered = registered_verdict(tests, "H1", task, best.method)
        line += f"It is **{registered}**. " if registered else ""
        if several_seeds:
            above = compared[compared.ci_low > 0].method.nunique()
            line += f"{above} of {methods} methods have an interval above zero in either setting. "
        if task in paper_gains:
            line += (
                f"Huang et al. (2021) report +{paper_gains[task]} points for this task; that value is "
                f"{findings.paper_relation(best, paper_gains[task])} this interval."
            )
        lines.append(line)
    return "\n".join(lines)


@dataclass(frozen=True)
class Findings:
    """What the conclusions read: the synthesis' tables, and the study's shape."""

    level: pd.DataFrame
    within_sd: Mapping[str, float]
    metric: str
    baseline: str
    primary_draws: Mapping[str, object] = field(default_factory=dict)
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)
    differences: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    across_level: pd.DataFrame = field(default_factory=pd.DataFrame)
    across_paired: pd.DataFrame = field(default_factory=pd.DataFrame)


def conclusion(found: Findings, task: str) -> str:
    """The task's paragraph of the synthesis' conclusions."""
    level = found.level[(found.level.task == task) & (found.level.fit == "ols") & (found.level.term == "alignment")]
    within = level.iloc[0]
    if pd.isna(within.estimate):
        return f"**{task}.** The models could not be estimated: {within.note}."
    where = f"On pre-training draw {found.primary_draws[task]}, w" if task in found.primary_draws else "W"
    per_sd = describe(within, 100 * found.within_sd[task], " pts")
    if within.ci_low > 0 or within.ci_high < 0:
        link = f"a run's alignment goes {'with' if within.ci_low > 0 else 'against'} its zero-shot accuracy"
    else:
        link = "the link between a run's alignment and its zero-shot accuracy is inconclusive"
    text = f"**{task}.** {where}ithin a language, {link} ({per_sd} per standard deviation of `{found.metric}`)"
    paired = found.paired[(found.paired.task == task) & (found.paired.term == "alignment")] if len(found.paired) else []
    if len(paired):
        sd = found.differences[found.differences.task == task].d_alignment.std()
        gained = describe(paired.iloc[0], 100 * sd, " pts")
        text += f"; the alignment a method gains over `{found.baseline}` predicts {gained} of accuracy per standard "
        text += "deviation of the gain"
    best = findings.best_method(found.summary, task) if len(found.summary) else None
    if best is not None:
        across = f"; across draws: {holds_across_draws(best)}" if task in found.primary_draws else ""
        text += (
            f". The best robust method, `{best.method}`, changes mean zero-shot accuracy by {in_points(best)} "
            f"({findings.verdict(best)}{across})"
        )
        registered = registered_verdict(found.tests, "H1", task, best.method)
        text += f"; **{registered}**" if registered else ""
    return text + _across_draws(found, task) + "."


def _across_draws(found: Findings, task: str) -> str:
    if not len(found.across_paired) or task not in set(found.across_paired.task):
        return ""
    level = found.across_level[found.across_level.task == task].iloc[0]
    paired = found.across_paired[found.across_paired.task == task].iloc[0]
    text = (
        f". Over the {level.n_draws} draws, the within-language slope is {describe(level, digits=3)} accuracy per unit "
        f"of `{found.metric}` ({holds_across_draws(level, SLOPE_WORDS)}), and the paired slope "
        f"{describe(paired, digits=3)} per unit of `{found.metric}` gained ({holds_across_draws(paired, SLOPE_WORDS)})"
    )
    registered = registered_verdict(found.tests, "H3", task, "Δalignment")
    return text + (f"; **{registered}**" if registered else "")
