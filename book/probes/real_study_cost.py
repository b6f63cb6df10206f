"""What the real study costs on one GPU: training tokens of every run of xtreme.yaml ÷ the measured tokens/s.

    python book/probes/real_study_cost.py
    python book/probes/real_study_cost.py --base-tokens-per-s 108000 --large-tokens-per-s 77000

Tokens/s are those ``benchmarks/train_step.py`` measured for a standard step at 32×128 on one
H200 (book, speed chapter); mBERT is counted at XLM-R base's rate. A robust method costs its
pass-count ratio (``benchmarks/robust_step.py``), rs_da's offline copies multiply its data,
and every example counts 128 tokens (dynamic padding makes real batches shorter, so this is an
upper bound on tokens, and the host-bound step of the benchmark a lower bound on speed).
Evaluation and alignment are left out: a forward pass over test sets a fraction of one
epoch's size. Nothing is run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from robust_step import predicted_ratio  # noqa: E402

from xltlib.config.methods import normalize_params  # noqa: E402
from xltlib.config.protocols import is_large, protocol_settings  # noqa: E402
from xltlib.report.batch import load_experiments, with_notebook_defaults  # noqa: E402

TRAINING_EXAMPLES = {"xnli": 392_702, "pawsx": 49_401, "xcopa": 400}
"""English training sets: MultiNLI, PAWS-X's English train, COPA train (SIQA's two-stage recipe not counted)."""
TOKENS_PER_EXAMPLE = 128


def experiment_cost(parameters: dict, base_rate: float, large_rate: float) -> list[dict]:
    """GPU-hours of every method of one experiment, all its seeds."""
    fields, protocol_params = protocol_settings(parameters["protocol"], parameters["task"], parameters["model"])
    epochs = {**fields, **parameters.get("overrides", {})}["epochs"]
    rate = large_rate if is_large(parameters["model"]) else base_rate
    rows = []
    for method in parameters["methods"]:
        params = normalize_params(
            method, {**protocol_params.get(method, {}), **parameters.get("method_params", {}).get(method, {})}
        )
        data = TRAINING_EXAMPLES[parameters["task"]] * (1 + params.get("copies", 0))
        tokens = data * epochs * TOKENS_PER_EXAMPLE * predicted_ratio(method, params)
        rows.append({"method": method, "gpu_hours": len(parameters["seeds"]) * tokens / rate / 3600})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-tokens-per-s", type=float, default=108_000)
    parser.add_argument("--large-tokens-per-s", type=float, default=77_000)
    args = parser.parse_args()
    _, experiments = load_experiments(REPO / "notebooks" / "experiments" / "xtreme.yaml")
    rows = []
    for experiment in experiments:
        for row in experiment_cost(
            with_notebook_defaults(experiment.parameters), args.base_tokens_per_s, args.large_tokens_per_s
        ):
            rows.append({"experiment": experiment.name, **row})
    table = pd.DataFrame(rows).pivot_table(index="experiment", columns="method", values="gpu_hours", sort=False)
    table["all"] = table.sum(axis=1)
    print(table.round(1).to_string())
    print(f"\nthe whole study: {table['all'].sum():,.0f} GPU-hours on one H200 at the measured rates")


if __name__ == "__main__":
    main()
