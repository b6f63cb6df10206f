"""The causal arm's report: surgery rows read back, and a causal slope that a confounder does not move."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xltlib.evaluation.surgery import DOSES
from xltlib.profiles.e5 import FOLDER_NAME
from xltlib.report import preregistered
from xltlib.report.causal import LABELS, causal_effects, readable, report_text, sentence, surgery_cells
from xltlib.store import RESULT_COLUMNS


def surgery_store(rng: np.random.Generator, slope: float, confounding: float, draws: int = 8) -> pd.DataFrame:
    """Standard runs on ``draws`` encoders: a draw's hidden quality raises both its alignment and (by
    ``confounding``) its accuracy; surgery adds alignment, which moves accuracy by ``slope`` only."""
    rows = []
    languages = {f"l{i}": (0.5 + 0.1 * i, 0.1 + 0.05 * i) for i in range(5)}
    for draw in range(draws):
        quality = rng.normal(0, 0.05)
        for language, (base, moved) in languages.items():
            before, reach = 0.3 + quality + rng.normal(0, 0.01), moved * rng.uniform(0.9, 1.1)
            for dose in DOSES:
                alignment = before + dose * reach
                accuracy = base + slope * alignment + confounding * quality + rng.normal(0, 0.002)
                shared = {"run_id": f"d{draw}-standard", "task": "sim-nli", "model": f"m{draw}", "draw": draw,
                          "method": "standard", "seed": 1, "tgt_lang": language, "corpus": f"surgery-{dose:g}",
                          "layer": 2, "pooling": "cls"}  # fmt: skip
                rows.append({**shared, "metric": "surgery_accuracy", "value": accuracy})
                rows.append({**shared, "metric": "surgery_cosine_gap", "value": alignment})
    return pd.DataFrame(rows).reindex(columns=RESULT_COLUMNS)


def test_surgery_cells_read_the_dose_back_and_take_the_draw_as_the_unit():
    cells = surgery_cells(surgery_store(np.random.default_rng(1), 0.5, 0.0))
    assert sorted(cells.dose.unique()) == list(DOSES) and cells.unit.nunique() == 8
    assert len(cells) == 8 * 5 * len(DOSES) and cells[["accuracy", "alignment"]].notna().all().all()


def test_the_causal_slope_ignores_a_confounder_that_the_observational_slope_picks_up():
    effects = causal_effects(surgery_store(np.random.default_rng(2), 0.5, 3.0)).set_index("term")
    causal, observational = effects.loc["causal_slope"], effects.loc["observational_slope"]
    assert causal.ci_low <= 0.5 <= causal.ci_high and causal.ci_high - causal.ci_low < 0.1
    assert observational.ci_low > 1.0  # 0.5 + the confounder's 3 per unit of quality-driven alignment
    assert effects.loc["alignment_gained"].estimate == pytest.approx(0.2, abs=0.01)  # mean of 0.1 … 0.3
    assert effects.loc["accuracy_gained"].estimate == pytest.approx(
        0.5 * effects.loc["alignment_gained"].estimate, abs=2e-3
    )
    assert (effects.n_units == 8).all()


def test_the_registered_causal_tests_take_the_seed_as_the_unit_on_one_encoder():
    store = surgery_store(np.random.default_rng(4), 0.5, 0.0, draws=4)
    e5 = f"{FOLDER_NAME}@0123456789ab"  # the converted encoder, as a run names it
    seeds = store.assign(model=e5, draw=pd.NA, seed=store.draw + 1, profile="xtreme")  # four seeds of one encoder
    tests = preregistered.causal_tests(seeds).set_index("hypothesis")
    assert surgery_cells(seeds).unit.nunique() == 4 and (tests.n_draws == 4).all()
    assert tests.loc["H6"].verdict == "gain" and tests.loc["H7"].verdict == "positive"
    assert tests.loc["H7"].ci_low <= 0.5 <= tests.loc["H7"].ci_high and tests.loc["H6"].margin == 0.01
    assert preregistered.causal_tests(seeds.assign(model="other")).empty  # registered for e5 only
    assert preregistered.readable(preregistered.causal_tests(seeds.assign(model="other"))).empty


def test_a_store_without_surgery_has_no_causal_rows():
    store = surgery_store(np.random.default_rng(3), 0.5, 0.0).assign(metric="accuracy", corpus=None)
    assert surgery_cells(store).empty and causal_effects(store).empty


def test_the_book_shows_points_for_accuracy_and_says_causal_beside_observational():
    effects = causal_effects(surgery_store(np.random.default_rng(5), 0.5, 0.0))
    shown = readable(effects).set_index("quantity")
    gained = effects.set_index("term").loc["accuracy_gained"].estimate
    assert shown.loc[LABELS["accuracy_gained"]].estimate == pytest.approx(100 * gained, abs=1e-3)
    text = sentence(effects, "sim-nli", "draws")
    assert "causal" in text and "observational" in text and "(8 draws)" in text and " pts" in text


def test_the_report_text_announces_registered_tests_or_says_why_there_is_nothing():
    effects = causal_effects(surgery_store(np.random.default_rng(6), 0.5, 0.0))
    assert report_text(effects, "draws", 2).endswith("(seeds as units, Holm over the tasks):")
    assert "registered" not in report_text(effects, "draws", 0)
    assert report_text(effects.iloc[:0], "draws", 0).startswith("No run here carries the causal arm")
