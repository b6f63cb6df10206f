"""The causal arm on the real encoder: e5's `standard` runs of XNLI and PAWS-X with Procrustes surgery, tested by
amendment 1 of the pre-registration (H6, H7).

    python book/probes/e5_causal.py                          # 6 runs into runs/ (15 min on 2 cores, 2026-12-06)
    python book/probes/e5_causal.py --runs runs --cache cache

The runs are exactly the e5 study's `standard` runs (notebooks/experiments/e5.yaml, same
configurations and run ids), computed by this checkout's code, so `study --profile e5` reuses
them. XCOPA is multiple choice: the surgery does not apply. Prints the causal arm's table (the
synthesis chapter's) and the registered tests, seeds as units.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from xltlib.config.logistics import Logistics
from xltlib.pipeline import ensure_run
from xltlib.report import batch, causal, preregistered
from xltlib.report.experiment import experiment_grid
from xltlib.store import load_results

REPO = Path(__file__).resolve().parents[2]
TASKS = ("xnli", "pawsx")


def standard_configs(runs_dir: str, cache_dir: str) -> list:
    """The e5 study's `standard` runs of the pair tasks, from its experiments file."""
    _, experiments = batch.load_experiments(REPO / "notebooks" / "experiments" / "e5.yaml")
    configs = []
    for experiment in experiments:
        if experiment.parameters["task"] in TASKS:
            parameters = batch.chapter_parameters(experiment, False, runs_dir, cache_dir)
            parameters |= {"methods": ["standard"], "method_params": {}}
            configs += experiment_grid({**batch.with_notebook_defaults(parameters), "cache_dir": cache_dir})
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs", help="the run store (runs already there are reused)")
    parser.add_argument("--cache", default="cache", help="where the converted e5 encoder is")
    args = parser.parse_args()
    torch.set_num_threads(2)
    configs = standard_configs(args.runs, args.cache)
    for config in tqdm(configs, desc="e5 standard runs", unit="run"):
        ensure_run(config, args.runs, Logistics("cpu"), recompute_stale=True)  # runs without the causal arm are stale
    results = load_results(args.runs, [config.run_id() for config in configs])
    pd.set_option("display.width", 160)
    print(causal.readable(causal.causal_effects(results)).to_string(index=False))
    for task in TASKS:
        print("\n" + causal.sentence(causal.causal_effects(results), task, "seeds"))
    print("\nAmendment 1, seeds as units, Holm over the two tasks:")
    print(preregistered.readable(preregistered.causal_tests(results)).to_string(index=False))


if __name__ == "__main__":
    main()
