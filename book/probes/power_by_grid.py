"""Power against time: the method-effect intervals and the run time of smaller grids, from one finished study.

    python book/probes/power_by_grid.py                       # the default study's runs (book/chapters/runs.json)
    python book/probes/power_by_grid.py --runs runs --study book/chapters/runs.json

For every sub-grid of the study's methods grid (its first k pre-training draws × first m
seeds, the doses left out) prints the widest 95% half-width, in points, of a method's
accuracy gain over ``standard`` averaged over the targets (the synthesis chapter's
estimate: a t interval over draws, or over seeds with one draw), per task, and the time
its runs took: the sum of each run's own wall time (from its log) over the two workers
of the default engine. Nothing is run; a sub-grid's intervals are those its runs would have
given, read from the same runs.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import pandas as pd

from xltlib.report import draws
from xltlib.store import load_results

WORKERS = 2  # the default engine's concurrent runs on a 2-core machine


def run_seconds(run_dir: Path) -> float:
    """A run's wall time: from the first to the last line of its log."""
    lines = [line for line in (run_dir / "log.txt").read_text().splitlines() if line[:4].isdigit()]
    stamp = lambda line: datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")  # noqa: E731
    return (stamp(lines[-1]) - stamp(lines[0])).total_seconds()


def sub_grids(results: pd.DataFrame, runs: Path) -> pd.DataFrame:
    replicated = draws.on_every_draw(results)
    tuned = replicated[replicated.method_name != "pretrained"]
    all_draws, all_seeds = sorted(tuned.draw.dropna().unique()), sorted(tuned.seed.unique())
    rows = []
    for k in range(1, len(all_draws) + 1):
        for m in range(1 if k > 1 else 2, len(all_seeds) + 1):  # an interval needs two draws, or two seeds
            chosen = replicated[
                replicated.draw.isin(all_draws[:k])
                & ((replicated.method_name == "pretrained") | replicated.seed.isin(all_seeds[:m]))
            ]
            effects = draws.study_method_effects(chosen)
            gains = effects[(effects.outcome == "accuracy") & (effects.language == "all targets")]
            widest = (100 * (gains.ci_high - gains.estimate)).groupby(gains.task).max()
            seconds = sum(run_seconds(runs / run_id) for run_id in chosen.run_id.unique())
            rows.append(
                {
                    "draws": k,
                    "seeds": m,
                    **{f"±{task}": round(value, 2) for task, value in widest.items()},
                    "runs": chosen.run_id.nunique(),
                    "run minutes": round(seconds / WORKERS / 60, 1),
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="runs", type=Path)
    parser.add_argument(
        "--study", default="book/chapters/runs.json", type=Path, help="the batch's record of the study's runs"
    )
    args = parser.parse_args()
    study = json.loads(args.study.read_text())["study"]
    results = load_results(args.runs, study)
    print(sub_grids(results, args.runs).to_string(index=False))


if __name__ == "__main__":
    main()
