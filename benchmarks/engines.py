"""Wall time of one chapter's grid under each engine: Ray tasks side by side, or one run at a time.

    python benchmarks/engines.py --engine local --runs /tmp/grid-local
    python benchmarks/engines.py --engine ray --runs /tmp/grid-ray

The grid is the ``syn-paws`` chapter's (5 methods × 3 seeds and the pre-trained run, 16
runs), computed into an empty runs folder (the generated data and shipped encoders come
from ``--cache``). Run the engines one after the other, never together: they share the cores.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from xltlib.config.logistics import Logistics
from xltlib.grid import Engine, run_grid
from xltlib.report.experiment import experiment_configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["local", "ray"], required=True)
    parser.add_argument("--runs", required=True, help="an empty folder for the runs")
    parser.add_argument("--cache", default="cache")
    args = parser.parse_args()
    if Path(args.runs).exists() and any(Path(args.runs).iterdir()):
        parser.error(f"{args.runs} is not empty: its runs would be read, not timed")
    logging.basicConfig(level=logging.WARNING)
    configs = experiment_configs(
        "syn-paws", ["standard", "pgd", "freelb", "rs_rp", "rs_da"], [1, 2, 3], cache_dir=args.cache, device="cpu"
    )
    start = time.perf_counter()
    outcomes = run_grid(configs, args.runs, Engine(args.engine), Logistics("cpu"))
    failed = sum(outcome.status != "ok" for outcome in outcomes)
    print(f"{args.engine}: {len(outcomes)} runs ({failed} failed) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
