"""The synthesis' figures draw what they are given: a panel per task (and setting), a mark per method."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from xltlib.report import analysis, figures, findings  # noqa: E402
from xltlib.report.simulation import simulate  # noqa: E402

METHODS = ["standard", "pgd", "rs_rp"]


@pytest.fixture(scope="module")
def results():
    return simulate(np.random.default_rng(40), method_accuracy={"standard": 0.0, "pgd": 0.03, "rs_rp": 0.0})


def test_the_forest_has_a_panel_per_setting_and_a_point_per_method_with_its_interval(results):
    summary = findings.effect_summary(analysis.method_effects(results))
    palette = figures.method_palette(METHODS)
    settings = ["accuracy, all targets", "cosine_gap"]
    figure = figures.gain_forest(summary, settings, METHODS[1:], palette, "standard", "seeds", "cosine_gap")
    assert figure._suptitle.get_text() == "Gain over standard, mean and 95% CI over seeds"
    assert len(figure.axes) == 2 and [label.get_text() for label in figure.axes[0].get_yticklabels()] == METHODS[1:]
    pgd = summary[(summary.method == "pgd") & (summary.setting == "accuracy, all targets")].iloc[0]
    points = figure.axes[0].collections[-1].get_offsets()
    assert points[0][0] == pytest.approx(100 * pgd.estimate)
    plt.close("all")


def test_the_scatter_figures_have_a_panel_per_task(results):
    cells = analysis.cells(results).dropna(subset=["accuracy", "alignment"])
    differences = analysis.deltas(results).dropna(subset=["d_accuracy", "d_alignment"])
    palette = figures.method_palette(METHODS)
    grids = [
        figures.level_scatter(cells, METHODS, palette, "cosine_gap"),
        figures.paired_scatter(differences, METHODS[1:], palette, "cosine_gap", "standard"),
        figures.gain_against_pretrained(analysis.gain_by_language(results), METHODS[1:], palette, "cosine_gap", "std"),
    ]
    assert [len(grid.axes.flat) for grid in grids] == [1, 1, 1]
    assert len(grids[0].axes.flat[0].collections) >= len(METHODS)  # a point cloud per method
    plt.close("all")
