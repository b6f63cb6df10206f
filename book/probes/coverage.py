"""Do the study's 95% intervals cover 95%? Old code (e258801) and new, on studies simulated with the real structure.

    python book/probes/coverage.py                 # 500 simulated studies per scenario, two processes (8 min)
    python book/probes/coverage.py --simulations 100 --out coverage.csv

Each scenario is a :class:`~xltlib.report.simulation.StudyDesign`: run shocks shared by a run's
languages, random method effects per pre-training draw, one set of test items shared by every
run (with method × item effects), a ceiling, and languages whose distance drives both their
alignment and their accuracy. Every simulated study is analysed by the library's own functions
(the new intervals) and by the estimators as they stood at commit e258801 (the old ones,
written out here), and each interval is checked against the simulated truth: the
within-language slope, ``pgd``'s effect on accuracy over ``standard``, and the dose slope.
Prints the coverage table of the methods chapter, with a 95% binomial interval per row.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from multiprocessing import Pool

os.environ.setdefault("OMP_NUM_THREADS", "1")  # two analysis processes on two cores, each single-threaded

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.stats.proportion import proportion_confint

from xltlib.report import analysis, dose, draws
from xltlib.report.cells import cells
from xltlib.report.simulation import StudyDesign, simulate_study

# Magnitudes measured on the shipped stores (level-model residuals, per run and within runs): e5 XNLI's runs
# share a shock of sd 0.016 on top of a cell sd of 0.016 (14 languages, 3 seeds); the ten-draw synthetic study's
# cells have sd 0.010 and its per-draw pgd gains an sd of about 0.02 (method effects that vary by draw).
E5 = StudyDesign(draws=1, seeds=3, languages=14, items=900, run_sd=0.016, draw_method_sd=0.0)
SYNTHETIC = StudyDesign(draws=10, seeds=1, languages=9, items=2000, run_sd=0.01, draw_method_sd=0.015)
SCENARIOS = {
    "one encoder, 3 seeds (as e5 XNLI)": E5,
    "7 languages, run shock 2× the cell noise": replace(E5, languages=7, run_sd=0.03),
    "10 draws, 1 seed (as the synthetic study)": SYNTHETIC,
    "10 draws, test items drawn per draw": replace(SYNTHETIC, items_per_draw=True),
    "10 draws, strong method × item effects": replace(SYNTHETIC, item_method_sd=0.15),
    "… and test items drawn per draw": replace(SYNTHETIC, item_method_sd=0.15, items_per_draw=True),
    "doses 0, 0.3, 1, 3 × 3 seeds": replace(E5, languages=9, doses=(0.3, 1.0, 3.0)),
}


def old_level_slope(results: pd.DataFrame) -> tuple[float, float]:
    """e258801's level model: language and method fixed effects, CR1 clustered by language, t(languages − 1)."""
    grid = cells(results).dropna(subset=["accuracy", "alignment"])
    fit = smf.ols("accuracy ~ alignment + C(method) + C(language)", grid).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(grid.language)[0]}, use_t=True
    )
    return tuple(fit.conf_int().loc["alignment"])


def old_dose_slope(results: pd.DataFrame) -> tuple[float, float]:
    """e258801's dose slope: OLS of each run's mean accuracy over targets on the dose, runs independent."""
    per_run = dose.dose_cells(results).groupby(["dose", "seed", "run_id"]).accuracy.mean().reset_index()
    return tuple(smf.ols("accuracy ~ dose", per_run).fit().conf_int().loc["dose"])


def interval(table: pd.DataFrame) -> tuple[float, float]:
    assert len(table) == 1, table
    return table.ci_low.iloc[0], table.ci_high.iloc[0]


def pgd_effect(effects: pd.DataFrame) -> tuple[float, float]:
    return interval(effects.query("method == 'pgd' and outcome == 'accuracy' and language == 'all targets'"))


def intervals(scenario: str, results: pd.DataFrame) -> list[tuple[str, str, tuple[float, float]]]:
    """(quantity, code, interval) for every interval the scenario checks."""
    design = SCENARIOS[scenario]
    if design.doses:
        slopes = dose.dose_response(results).query("language == 'all targets' and outcome == 'accuracy'")
        return [("dose slope", "old", old_dose_slope(results)), ("dose slope", "new", interval(slopes))]
    if design.draws == 1:
        level = analysis.level_model(results, mixed=False).query("term == 'alignment'")
        return [
            ("within-language slope", "old", old_level_slope(results)),
            ("within-language slope", "new", interval(level)),
            ("method effect (pgd)", "old = new", pgd_effect(analysis.method_effects(results))),
        ]
    effect = ("method effect (pgd)", "old = new", pgd_effect(draws.method_effects_across_draws(results)))
    if design.items_per_draw or design.item_method_sd > SYNTHETIC.item_method_sd:
        return [effect]
    first_draw = results[results.draw == 0]
    return [
        ("within-language slope", "old", old_level_slope(first_draw)),
        ("within-language slope", "new", interval(draws.level_slope_across_draws(results))),
        effect,
    ]


def truth(design: StudyDesign, quantity: str) -> float:
    return {
        "within-language slope": design.slope,
        "method effect (pgd)": design.method_effect("pgd"),
        "dose slope": design.dose_slope,
    }[quantity]


def one_study(job: tuple[str, int]) -> list[dict]:
    scenario, seed = job
    design = SCENARIOS[scenario]
    results = simulate_study(np.random.default_rng([seed, list(SCENARIOS).index(scenario)]), design)
    rows = []
    for quantity, code, (low, high) in intervals(scenario, results):
        value = truth(design, quantity)
        rows.append({"scenario": scenario, "quantity": quantity, "code": code, "covered": low <= value <= high})
    return rows


def coverage_table(simulations: int, processes: int) -> pd.DataFrame:
    jobs = [(scenario, seed) for scenario in SCENARIOS for seed in range(simulations)]
    with Pool(processes) as pool:
        rows = [row for study in pool.imap_unordered(one_study, jobs, chunksize=10) for row in study]
    hits = pd.DataFrame(rows).groupby(["scenario", "quantity", "code"], sort=False).covered.agg(["sum", "count"])
    low, high = proportion_confint(hits["sum"], hits["count"], method="wilson")
    return hits.assign(coverage=hits["sum"] / hits["count"], low=low, high=high).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=500, help="simulated studies per scenario")
    parser.add_argument("--processes", type=int, default=2, help="analysis processes (one per core)")
    parser.add_argument("--out", help="also write the table as CSV here")
    args = parser.parse_args()
    table = coverage_table(args.simulations, args.processes)
    if args.out:
        table.to_csv(args.out, index=False)
    print(f"95% intervals, {args.simulations} simulated studies per scenario (Wilson 95% interval of the coverage)\n")
    print("| scenario | quantity | code | coverage |\n|---|---|---|---|")
    for row in table.itertuples():
        coverage = f"{100 * row.coverage:.1f}% ({100 * row.low:.1f}–{100 * row.high:.1f})"
        print(f"| {row.scenario} | {row.quantity} | {row.code} | {coverage} |")


if __name__ == "__main__":
    main()
