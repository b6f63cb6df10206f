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

from xltlib.report import comparison, findings
from xltlib.report.draws import holds_across_draws
from xltlib.report.intervals import describe
from xltlib.report.preregistered import registered_verdict

SLOPE_WORDS = ("positive", "negative")
SPLIT = ["task", "analysis"]
NOTES = {
    "gains": "Mean gain [95% CI] over {units}: accuracy in points, `{metric}` in its units. Per-language gains are in "
    "the collapsed table below.",
    "per_language": "Gain over `{baseline}` per target language, mean [95% CI] over {units}: accuracy in points, "
    "`{metric}` in its units.",
    "no_methods": "No method besides `{baseline}` was run: there is nothing to compare.",
    "no_paired": "The paired model needs a method besides `{baseline}`.",
    "no_distance": "No pre-trained alignment or no method besides the baseline: nothing to plot.",
    "across": "Accuracy gains in points [95% CI over draws]; `per_draw`: each draw's own mean gain (accuracy, a "
    "fraction) or slope (accuracy per unit of `{metric}`).",
    "one_draw": "Every task ran on one pre-training draw: nothing here can say whether its conclusions replicate on "
    "another pre-trained encoder.",
    "factors": "Accuracy as a fraction; alignment in `{metric}` units. `order[SOV]` is the difference from SVO; "
    "`shared_function_words` from languages with their own.",
    "no_factors": "Not fitted: these runs are not on the synthetic profile's factorial languages.",
}
"""The chapter's fixed sentences, by name; ``{baseline}``, ``{metric}`` and ``{units}`` are filled in (:func:`note`)."""


def note(name: str, **fields: str) -> str:
    """One of :data:`NOTES`, its fields filled in."""
    return NOTES[name].format(**fields)


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


def conclusions(found: Findings, study) -> str:
    """The synthesis' closing paragraphs: one per task (:func:`conclusion`), then the seeds and draws."""
    if found.level.empty:
        return "No fine-tuned runs were found: there is nothing to conclude."
    draws = f"; pre-training draws: {', '.join(map(str, study.draws))}" if study.draws else ""
    closing = (
        f"Seeds: {', '.join(map(str, study.seeds))}{draws}. Every interval above is 95%. A single seed gives "
        "estimates without intervals."
    )
    return "\n\n".join([*(conclusion(found, task) for task in study.tasks), closing])


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


def run_summary(study, runs_dir: str, metric: str) -> str:
    """What the chapter read (a :class:`~xltlib.report.study.StudyRuns`)."""
    draws = f"; pre-training draws {', '.join(map(str, study.draws))}" if study.draws else ""
    return (
        f"Read **{study.tuned.run_id.nunique()} fine-tuned runs** from `{runs_dir}`: tasks "
        f"{', '.join(study.tasks) or 'none'}; methods {', '.join(study.methods)}; seeds "
        f"{', '.join(map(str, study.seeds))}{draws}. Alignment metric: `{metric}`."
    )


def units(study) -> str:
    """What a method effect's interval is over: ``10 draws × 1 seed`` or ``3 seeds``."""
    seeds = f"{len(study.seeds)} seed{'s' if len(study.seeds) != 1 else ''}"
    return f"{len(study.draws)} draws × {seeds}" if study.several_draws else seeds


def fit_notes(slopes: pd.DataFrame) -> str:
    """The level model's fitting notes (a boundary fit, a model not estimated), one line per (task, fit)."""
    noted = slopes[slopes.note.fillna("") != ""].drop_duplicates(["task", "fit"])
    names = {"mundlak": "Mundlak model", "ols": "Fixed effects"}
    return "\n\n".join(f"*{names[row.fit]}, {row.task}: {row.note.rstrip('.')}.*" for row in noted.itertuples())


def gaps_note(missing: int, stale: int, runs: int) -> str:
    """Cells without a result (or that every cell has one), and runs computed by other code."""
    notes = [
        f"**{missing} cells have no result** (failed or unfinished runs); they are left out of every model below."
        if missing
        else "Every (method, seed, language) cell has both accuracy and alignment."
    ]
    if stale:
        notes.append(
            f"**{stale} of {runs} runs were computed by other code** than this checkout's (their `code_version` "
            "differs: training, method, data or metric code changed since). Their numbers may not be what this code "
            "computes; recompute them with `python -m xltlib study --recompute-stale`."
        )
    return "\n\n".join(notes)


def registration_line(registered: Mapping | None) -> str:
    """Where and when the pre-registration was committed, and its latest amendment (None: its tests did not run)."""
    if registered is None:
        return (
            "The pre-registration covers the synthetic study over several pre-training draws; these runs are not it, "
            "so its tests are not run."
        )
    if not registered["commit"]:
        return "Not a git checkout: the registration's commit cannot be shown."
    amended = (
        ""
        if registered["amended"] == registered["commit"]
        else f", last amended in `{registered['amended']}` ({str(registered['amended_date'])[:10]})"
    )
    return (
        f"Registered in `{registered['file']}`, commit `{registered['commit']}` ({str(registered['date'])[:10]})"
        f"{amended}. Each test below, then the verdicts per hypothesis (*as predicted*: in the registered direction)."
    )


def best_metric_lines(scores: pd.DataFrame) -> str:
    """Per (task, analysis): the candidate metric and layer that explain most on average over the draws, how often
    it ranks first, the negative control's share, and (three draws or more) how the pick fares on a draw left out.
    ``scores``: :func:`~xltlib.report.comparison.scores_by_draw`."""
    ranked = comparison.ranking(scores)
    checked = comparison.stability(scores).set_index(SPLIT) if scores.draw.nunique() >= 3 else pd.DataFrame()
    lines = []
    for (task, kind), group in ranked.groupby(SPLIT, sort=True):
        candidates, control = group[group.role == "candidate"], group[group.role == "negative control"]
        if candidates.empty:
            continue
        top = candidates.iloc[0]
        line = f"- **{task}**, {kind} model: `{top.metric}` at layer {top['where']} explains most"
        if top.n_draws > 1:
            line += f" ({100 * top.mean_score:.1f}% on average; first on {top.wins} of {top.n_draws} draws)"
        else:
            row = scores[(scores.task == task) & (scores.analysis == kind) & (scores.metric == top.metric)]
            row = row[row["where"] == top["where"]].iloc[0]
            fits = int(scores[(scores.task == task) & (scores.analysis == kind)].p_holm.notna().sum())
            line += (
                f" ({100 * top.mean_score:.1f}%; slope p = {row.p_value:.2g}, Holm-corrected over the {fits} fits: "
                f"{row.p_holm:.2g})"
            )
        line += f"; the negative control, CKA, at best {100 * control.mean_score.max():.1f}%" if len(control) else ""
        if (task, kind) in checked.index:
            fold = checked.loc[(task, kind)]
            line += (
                f". Picked on the other draws, the choice explains {100 * fold.held_out_score:.1f}% of the draw left "
                f"out (each draw's own best: {100 * fold.oracle_score:.1f}%); the folds agree on "
                f"{fold.same_pick} of {fold.n_draws}; Kendall's W over the draws' rankings {fold.kendall_w:.2f}"
            )
        lines.append(line + ".")
    return "\n".join(lines) + (
        "\n\nExploratory (not pre-registered). CKA is a negative control, never ranked: it is invariant to rotations "
        "of either space, so it cannot see whether a translation lands near its source; when it explains as much as "
        "the candidates, the comparison measures something other than alignment."
    )


def distance_lines(counts: Mapping, generalized: tuple[int, int]) -> str:
    """The distance model's tally (:func:`~xltlib.report.findings.distance_counts`) and the generalized setting's
    (:func:`~xltlib.report.findings.generalized_larger`)."""
    unfitted = f"; {counts['unfitted']} could not be fitted ({counts['note']})." if counts["unfitted"] else "."
    text = (
        f"Of {counts['fitted']} fitted (task, method) pairs, {counts['falling']} have a slope below zero with an "
        f"interval excluding zero (larger gains for worse-aligned languages) and {counts['rising']} a slope above "
        f"zero{unfitted}"
    )
    larger, compared = generalized
    if compared:
        text += (
            "\n\nThe paper also finds larger gains in the generalized setting. Here the mean gain is larger in the "
            f"generalized setting for {larger} of {compared} (task, method) pairs."
        )
    return text
