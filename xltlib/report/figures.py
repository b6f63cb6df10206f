"""The synthesis chapter's figures: each takes a tidy table of the analysis and returns the figure (the notebook
shows it). ``palette`` maps a method to its colour, the same in every figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

PANEL = {"height": 3.8, "aspect": 1.1, "col_wrap": 2}
"""Two panels per row keep a three-task figure at least half its natural size on the book's page."""
FREE_AXES = {"sharex": False, "sharey": False}
POINTS = {"s": 14, "alpha": 0.7}


def book_style() -> None:
    """The chapters' look: seaborn's white grid, and wide tables shown as several that fit the page."""
    from xltlib.report.tables import fit_tables_to_page

    sns.set_theme(style="whitegrid", context="notebook")
    fit_tables_to_page()


def method_palette(methods: Sequence[str]) -> dict[str, tuple]:
    return dict(zip(methods, sns.color_palette("colorblind", len(methods))))


def gain_forest(
    summary: pd.DataFrame,
    settings: Sequence[str],
    treatments: Sequence[str],
    palette: Mapping,
    baseline: str,
    over: str,
    metric: str,
) -> plt.Figure:
    """Each method's gain over ``baseline`` with its interval (``over`` draws or seeds), one panel per (task,
    setting) of :func:`findings.effect_summary`."""
    tasks = sorted(summary.task.unique())
    height = 0.5 + 0.55 * len(treatments) * len(tasks)
    figure, axes = plt.subplots(len(tasks), len(settings), figsize=(4.2 * len(settings), height), squeeze=False)
    for row_axes, task in zip(axes, tasks):
        for axis, setting in zip(row_axes, settings):
            compared = [method for method in treatments if method in set(summary[summary.task == task].method)]
            part = summary[(summary.task == task) & (summary.setting == setting)].set_index("method").reindex(compared)
            scale = 100 if setting.startswith("accuracy") else 1
            y = np.arange(len(compared))
            errors = [(part.estimate - part.ci_low) * scale, (part.ci_high - part.estimate) * scale]
            axis.errorbar(part.estimate * scale, y, fmt="none", ecolor="grey", xerr=errors)
            axis.scatter(part.estimate * scale, y, c=[palette[method] for method in compared], zorder=3)
            axis.axvline(0, color="black", linewidth=0.8)
            axis.set_yticks(y, compared)
            axis.set_title(f"{task}: {setting}", fontsize="small")
            axis.set_xlabel("gain (points)" if scale == 100 else f"gain in {metric}")
    figure.suptitle(f"Gain over {baseline}, mean and 95% CI over {over}", y=1.0)
    figure.tight_layout()
    return figure


def level_scatter(cells: pd.DataFrame, methods: Sequence[str], palette: Mapping, metric: str) -> sns.FacetGrid:
    """Accuracy against alignment, a point per run and target, a fit per method, a panel per task."""
    grid = _method_panels(cells, "alignment", "accuracy", methods, palette, ci=95, scatter_kws=POINTS)
    grid.set_axis_labels(f"{metric} (mean over hidden layers)", "zero-shot accuracy")
    grid.figure.suptitle("Accuracy against alignment, one point per run and target language; a fit per method", y=1.03)
    return grid


def paired_scatter(
    differences: pd.DataFrame, treatments: Sequence[str], palette: Mapping, metric: str, baseline: str
) -> sns.FacetGrid:
    """Δaccuracy against Δalignment from the same-seed baseline, with the pooled fit per task."""
    tasks = sorted(differences.task.unique())
    grid = _method_panels(
        differences, "d_alignment", "d_accuracy", treatments, palette, fit_reg=False, scatter_kws=POINTS
    )
    for axis, task in zip(grid.axes.flat, tasks):
        part = differences[differences.task == task]
        sns.regplot(data=part, x="d_alignment", y="d_accuracy", scatter=False, color="black", ax=axis, ci=95)
        axis.axhline(0, color="grey", linewidth=0.6)
        axis.axvline(0, color="grey", linewidth=0.6)
    grid.set_axis_labels(f"Δ {metric} vs {baseline}", f"Δ accuracy vs {baseline}")
    title = "Paired differences from the same-seed baseline; black: the pooled fit (band: seaborn's iid bootstrap)"
    grid.figure.suptitle(title, y=1.03)
    return grid


def metric_by_layer(scored: pd.DataFrame) -> sns.FacetGrid:
    """The share of accuracy each alignment metric explains, by layer: tasks in rows, the two models in columns; with
    several draws, their mean and seaborn's 95% band over draws."""
    fitted = scored[scored.layer.notna() & scored.score.notna()]
    grid = sns.relplot(
        data=fitted,
        x="layer",
        y="score",
        hue="metric",
        style="metric",
        row="task",
        row_order=sorted(scored.task.unique()),
        col="analysis",
        kind="line",
        marker="o",
        height=2.8,
        aspect=1.5,
        facet_kws={"sharey": False},
    )
    grid.set_titles("{col_name} model, {row_name}")
    grid.set_axis_labels("layer", "share explained")
    title = "Share of accuracy explained by each alignment metric, by layer (level: partial R²; paired: R²)"
    grid.figure.suptitle(title, y=1.03)
    return grid


def gain_against_pretrained(
    gains: pd.DataFrame, treatments: Sequence[str], palette: Mapping, metric: str, baseline: str
) -> sns.FacetGrid:
    """A language's accuracy gain against its pre-trained alignment, a line per method, a panel per task."""
    grid = _method_panels(gains, "pretrained_alignment", "gain", treatments, palette, ci=None)
    for axis in grid.axes.flat:
        axis.axhline(0, color="grey", linewidth=0.6)
    grid.set_axis_labels(f"pre-trained {metric}", f"accuracy gain over {baseline}")
    return grid


def surgery_lines(cells: pd.DataFrame) -> sns.FacetGrid:
    """Accuracy against the alignment Procrustes surgery produces, mean over units, a line per target language."""
    moved = cells.groupby(["task", "language", "dose"])[["alignment", "accuracy"]].mean().reset_index()
    grid = sns.relplot(
        data=moved,
        x="alignment",
        y="accuracy",
        hue="language",
        col="task",
        col_wrap=2,
        kind="line",
        marker="o",
        height=3.4,
        aspect=1.1,
        facet_kws=FREE_AXES,
    )
    grid.set_axis_labels("<s> cosine gap (last layer)", "zero-shot accuracy (held-out half)")
    grid.figure.suptitle("Procrustes surgery at doses 0, 0.5, 1: accuracy against the alignment it produces", y=1.04)
    return grid


def _method_panels(
    data: pd.DataFrame, x: str, y: str, methods: Sequence[str], palette: Mapping, **options
) -> sns.FacetGrid:
    """seaborn's ``lmplot`` of ``y`` against ``x``, a colour per method and a panel per task (two to a row)."""
    tasks = sorted(data.task.unique())
    return sns.lmplot(
        data=data,
        x=x,
        y=y,
        hue="method",
        hue_order=methods,
        palette=palette,
        col="task",
        col_order=tasks,
        facet_kws=FREE_AXES,
        **PANEL,
        **options,
    )
