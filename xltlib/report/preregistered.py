"""The pre-registered tests of ``preregistration.md``: hypotheses H1–H5 of the synthetic study, and H6–H7 of its
amendment 1 (the causal arm, registered for the e5 profile), with their verdicts.

The file fixed, before the runs, the outcomes, the smallest effects of interest and the
wording, which :func:`verdict` applies: **gain** or **loss** (for a slope: **positive** or
**negative**) when the Holm-corrected two-sided test rejects zero at α = 0.05; **no effect**
only when a TOST equivalence test (α = 0.05, Holm-corrected within the family: the 90%
interval inside the margin) says the effect is smaller than the smallest effect of
interest; otherwise **inconclusive**. The draw is the unit: each quantity is estimated on
every pre-training draw, then tested over the draws (Student t, draws − 1 df).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.weightstats import DescrStatsW

from xltlib.report import analysis, causal
from xltlib.report.cells import ACCURACY, pretrained_alignment
from xltlib.report.draws import draw_of_model, draw_units, on_every_draw
from xltlib.report.factors import factor_model
from xltlib.report.intervals import holm, mean_ci

PREREGISTRATION = "preregistration.md"
ALPHA = 0.05
PRIMARY_ALIGNMENT = "cosine_gap"
"""Mean-pooled, averaged over the hidden layers 1..L, on the task's parallel sentences."""
ACCURACY_MARGIN = 0.01
"""The smallest effect of interest on accuracy: one point."""
ALIGNMENT_MARGIN_SHARE = 0.05
"""The smallest effect of interest on alignment: this share of the range of the targets' pre-trained alignment."""

HYPOTHESES = {
    "H1": "robust training improves zero-shot accuracy",
    "H2": "robust training improves alignment",
    "H3": "the alignment a method gains predicts the accuracy it gains",
    "H4": "the designed factors drive transfer and alignment",
    "H5": "gains are largest where pre-trained alignment is worst (secondary)",
    "H6": "moving alignment by Procrustes surgery raises accuracy (amendment 1, e5)",
    "H7": "the causal slope of accuracy on the surgery's alignment is positive (amendment 1, e5)",
}
CAUSAL_SLOPE_MARGIN = 0.1
"""H7's smallest effect of interest: one point of accuracy per 0.1 of ``<s>`` cosine gap."""
PREDICTED_FACTOR_SIGNS = {"anchor_share": 1, "shared_function_words": 1, "order[SOV]": -1, "order[VSO]": -1}
"""H4's predictions: more shared words and shared function words raise both outcomes; another order lowers them."""


def language_factors() -> pd.DataFrame:
    """The synthetic target languages' design factors (H4), one row per language code."""
    from xltlib.synthetic.languages import TARGETS

    return pd.DataFrame({recipe.code: recipe.factors() for recipe in TARGETS}).T


def registration(root: str | Path = ".") -> dict[str, str | None]:
    """The pre-registration's commit and date (its first commit) and its latest amendment's, from git.

    Outside a git checkout the commits are None: the book then says it cannot show them.
    """
    root = Path(root)
    log = subprocess.run(
        ["git", "log", "--format=%h %cI", "--", PREREGISTRATION], cwd=root, capture_output=True, text=True
    )
    commits = [line.split() for line in log.stdout.splitlines()] if log.returncode == 0 else []
    first, last = (commits[-1], commits[0]) if commits else ([None, None], [None, None])
    return {"file": PREREGISTRATION, "commit": first[0], "date": first[1], "amended": last[0], "amended_date": last[1]}


def alignment_margin(results: pd.DataFrame) -> pd.Series:
    """Per task: :data:`ALIGNMENT_MARGIN_SHARE` × the range over target languages of the pre-trained alignment,
    each language's averaged over the draws (a quantity no method touches)."""
    pretrained = pretrained_alignment(results, PRIMARY_ALIGNMENT)
    by_language = pretrained.groupby(["task", "language"]).pretrained_alignment.mean()
    spread = by_language.groupby("task").agg(lambda values: values.max() - values.min())
    return ALIGNMENT_MARGIN_SHARE * spread


def over_draws(per_draw: pd.Series, margin: float = np.nan) -> dict:
    """The mean of per-draw estimates with its t interval and p-value, and the TOST p-value against ±``margin``
    (NaN without a margin or below two draws)."""
    values = per_draw.dropna().to_numpy(float)
    equivalence = np.nan
    if len(values) >= 2 and np.isfinite(margin) and values.std() > 0:
        equivalence = float(DescrStatsW(values).ttost_mean(-margin, margin)[0])
    return {**mean_ci(values), "equivalence_p": equivalence, "margin": margin, "n_draws": len(values)}


def method_tests(results: pd.DataFrame, baseline: str = "standard") -> pd.DataFrame:
    """H1 and H2: each method's gain over ``baseline`` (same draw and seed) in primary accuracy (mean over the
    targets) and in primary alignment, per draw, then over draws."""
    units = draw_units(results, PRIMARY_ALIGNMENT, None, baseline)
    units = units[units.language == analysis.ALL_LANGUAGES]
    margins = alignment_margin(results)
    rows = []
    for (task, method, outcome), group in units.groupby(["task", "method", "outcome"], sort=True):
        accuracy = outcome == ACCURACY
        margin = ACCURACY_MARGIN if accuracy else margins.get(task, np.nan)
        rows.append(
            {
                "hypothesis": "H1" if accuracy else "H2",
                "task": task,
                "term": method,
                "outcome": outcome,
                **over_draws(group.groupby("draw").gain.mean(), margin),
                "predicted": 1,
            }
        )
    return pd.DataFrame(rows)


def slope_tests(results: pd.DataFrame, baseline: str = "standard") -> pd.DataFrame:
    """H3: the paired slope (Δaccuracy on Δalignment over method × language cells) on each draw, then over
    draws. No smallest effect was registered for it, so it is never called "no effect"."""
    slopes = analysis.paired_model(on_every_draw(results), PRIMARY_ALIGNMENT, None, baseline)
    return _slopes_over_draws(results, slopes[slopes.term == "alignment"].assign(term="Δalignment"), "H3", 1)


def factor_tests(results: pd.DataFrame, factors: pd.DataFrame, baseline: str = "standard") -> pd.DataFrame:
    """H4: :func:`~xltlib.report.factors.factor_model` (clustered by draw), each term against its predicted sign."""
    fits = factor_model(results, factors, PRIMARY_ALIGNMENT, baseline).dropna(subset=["estimate"])
    return pd.DataFrame(
        {
            "hypothesis": "H4",
            "task": fits.task,
            "term": fits.term,
            "outcome": fits.outcome,
            "estimate": fits.estimate,
            "std_error": fits.std_error,
            "ci_low": fits.ci_low,
            "ci_high": fits.ci_high,
            "p_value": fits.p_value,
            "equivalence_p": np.nan,
            "margin": np.nan,
            "n_draws": fits.n_groups,
            "predicted": fits.term.map(PREDICTED_FACTOR_SIGNS),
        }
    )


def worst_aligned_tests(results: pd.DataFrame, baseline: str = "standard") -> pd.DataFrame:
    """H5: per method, the slope of its per-language accuracy gain on the language's pre-trained alignment
    (:func:`~xltlib.report.analysis.distance_model`) on each draw, then over draws; predicted negative."""
    slopes = analysis.distance_model(on_every_draw(results), PRIMARY_ALIGNMENT, None, baseline)
    return _slopes_over_draws(results, slopes.assign(term=slopes.method), "H5", -1)


def _slopes_over_draws(results: pd.DataFrame, slopes: pd.DataFrame, hypothesis: str, predicted: int) -> pd.DataFrame:
    """One test per (task, term) of per-draw slopes (one fit per encoder): their mean over the draws."""
    slopes = slopes.assign(draw=slopes.model.map(draw_of_model(results)))
    return pd.DataFrame(
        [
            {
                "hypothesis": hypothesis,
                "task": task,
                "term": term,
                "outcome": ACCURACY,
                **over_draws(group.set_index("draw").estimate),
                "predicted": predicted,
            }
            for (task, term), group in slopes.groupby(["task", "term"], sort=True)
        ]
    )


def hypotheses(results: pd.DataFrame, factors: pd.DataFrame | None, baseline: str = "standard") -> pd.DataFrame:
    """Every pre-registered test: one row per (hypothesis, task, term, outcome) with the estimate, its 95%
    interval, the Holm-corrected p-values of the test and of the equivalence test within the hypothesis's
    family, the :func:`verdict` and whether it is the predicted one (``as_predicted``: NaN when inconclusive).
    ``factors``: the target languages' design factors (H4; None: languages without a factorial design)."""
    tests = [
        method_tests(results, baseline),
        slope_tests(results, baseline),
        factor_tests(results, factors, baseline) if factors is not None else pd.DataFrame(),
        worst_aligned_tests(results, baseline),
    ]
    return _with_verdicts(pd.concat([test for test in tests if len(test)], ignore_index=True))


def _with_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Holm within each hypothesis's family, the :func:`verdict` and whether it is the predicted one."""
    if table.empty:
        return table
    table["p_holm"] = table.groupby("hypothesis").p_value.transform(holm)
    table["equivalence_p_holm"] = table.groupby("hypothesis").equivalence_p.transform(holm)
    table["verdict"] = table.apply(verdict, axis=1)
    signs = table.verdict.map({"gain": 1, "positive": 1, "loss": -1, "negative": -1, "no effect": 0})
    table["as_predicted"] = (signs == table.predicted).where(table.verdict != "inconclusive")
    return table


def causal_tests(results: pd.DataFrame) -> pd.DataFrame:
    """H6 and H7 of amendment 1, registered for the e5 profile (the runs of the converted multilingual-e5-small only;
    empty without them): the surgery's accuracy gain and causal slope per unit
    (:func:`xltlib.report.causal.per_unit`, the seed on one encoder), tested over units, Holm within each."""
    from xltlib.profiles.e5 import FOLDER_NAME

    units = causal.per_unit(results[results.model.str.startswith(FOLDER_NAME)])
    rows = [
        {
            "hypothesis": hypothesis,
            "task": task,
            "term": term,
            "outcome": ACCURACY,
            **over_draws(group.set_index("unit")[term], margin),
            "predicted": 1,
        }
        for hypothesis, term, margin in (
            ("H6", "accuracy_gained", ACCURACY_MARGIN),
            ("H7", "causal_slope", CAUSAL_SLOPE_MARGIN),
        )
        for task, group in units.groupby("task", sort=True)
    ]
    return _with_verdicts(pd.DataFrame(rows))


def verdict(row: pd.Series) -> str:
    """The pre-registered word for one test: gain / loss (positive / negative for a slope or a factor), no effect,
    or inconclusive."""
    if row.p_holm < ALPHA:
        words = ("gain", "loss") if row.hypothesis in ("H1", "H2", "H6") else ("positive", "negative")
        return words[0] if row.estimate > 0 else words[1]
    if row.equivalence_p_holm < ALPHA:
        return "no effect"
    return "inconclusive"


def counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per hypothesis: how many tests gave each verdict, and how many went as predicted."""
    tally = table.pivot_table(index="hypothesis", columns="verdict", values="task", aggfunc="count", fill_value=0)
    tally["as predicted"] = table.groupby("hypothesis").as_predicted.apply(lambda values: int(values.eq(True).sum()))
    tally["tests"] = table.groupby("hypothesis").size()
    return tally


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`hypotheses` as the book shows it: accuracy effects in points, alignment and slopes in their units."""
    if table.empty:
        return pd.DataFrame(columns=["hypothesis", "task", "outcome", "term", "estimate [95% CI]", "verdict"])
    in_points = (table.outcome == ACCURACY) & table.hypothesis.isin(["H1", "H4", "H6"])
    scale = np.where(in_points, 100.0, 1.0)
    digits = np.where(in_points, 1, 4)

    def interval(i: int) -> str:
        row = table.iloc[i]
        numbers = [
            f"{value * scale[i]:+.{digits[i]}f}".replace("-", "−") for value in row[["estimate", "ci_low", "ci_high"]]
        ]
        return numbers[0] if pd.isna(row.ci_low) else f"{numbers[0]} [{numbers[1]}, {numbers[2]}]"

    return pd.DataFrame(
        {
            "hypothesis": table.hypothesis,
            "task": table.task,
            "outcome": table.outcome,
            "term": table.term,
            "estimate [95% CI]": [interval(i) for i in range(len(table))],
            "Holm p": table.p_holm.map("{:.2g}".format),
            "margin": [f"±{m * s:.{d}f}" if np.isfinite(m) else "–" for m, s, d in zip(table.margin, scale, digits)],
            "TOST Holm p": table.equivalence_p_holm.map(lambda p: "–" if pd.isna(p) else f"{p:.2g}"),
            "verdict": table.verdict,
            "as predicted": table.as_predicted.map({True: "yes", False: "no"}).fillna("–"),
        }
    ).reset_index(drop=True)


def registered_verdict(table: pd.DataFrame, hypothesis: str, task: str, term: str) -> str | None:
    """``"inconclusive under the pre-registered test (Holm over 8)"``: one test's verdict for the book's prose; None
    if the pre-registered tests did not run it."""
    family = table[table.hypothesis == hypothesis] if len(table) else table
    row = family[(family.task == task) & (family.term == term)] if len(family) else family
    if not len(row):
        return None
    return f"{row.verdict.iloc[0]} under the pre-registered test (Holm over {len(family)})"
