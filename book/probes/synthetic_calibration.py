"""Calibration of the synthetic profile: is it a benchmark that can answer the study's question?

    python book/probes/synthetic_calibration.py                        # every shipped draw, seed 1, test files
    python book/probes/synthetic_calibration.py --seeds 23             # a fine-tuning seed never used before
    python book/probes/synthetic_calibration.py --draws 0 --seeds 1,2,3,4,5,6 --eval-split dev

With `standard` fine-tuning over the seeds, per pre-training draw of the encoder (the
shipped ones by default), task and language: the recipe distance, source and zero-shot
accuracy (mean ± sd over seeds) on the test files, or the dev files with
``--eval-split dev``, and alignment of the pre-trained and of the fine-tuned encoder
(cosine gap and cosine retrieval, averaged over the hidden layers 1..L). Then, per draw,
the acceptance figures of :data:`xltlib.synthetic.calibration.ACCEPTANCE` (the calibration
chapter's): source accuracy, every target against chance + 10 points, best − worst
target, Spearman ρ between recipe distance and pre-trained alignment, and the worst
target's retrieval against the binomial 1% chance bound; and the wall time of each
standard run computed here (evaluation and alignment included).

Nothing here chooses a setting: the profile's settings and its shipped draws were fixed on
base-language dev data before this report was run (see xltlib.synthetic.recipe).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from xltlib.config.logistics import Logistics
from xltlib.pipeline import ensure_run
from xltlib.store import load_results
from xltlib.synthetic import generated, recipe, run_config, shipped
from xltlib.synthetic.calibration import LABELS, acceptance, calibration_table


def run_all(
    profile,
    cache: Path,
    runs: Path,
    task_names: list[str],
    seeds: list[int],
    draws: list[int],
    device: str,
    eval_split: str,
) -> tuple[set[str], dict[str, float]]:
    """Ensure the standard runs (and their shared pre-trained runs); return their run ids and the times of fresh ones.

    The runs folder may hold other runs (other seeds, splits or draws), so the report keeps
    only the rows of these ids.
    """
    run_ids, seconds = set(), {}
    for draw in draws:
        for task in task_names:
            for seed in seeds:
                config = run_config.synthetic_run_config(
                    task, cache, profile, progress=False, seed=seed, eval_split=eval_split, draw=draw
                )
                started = time.perf_counter()
                fresh = not (runs / config.run_id() / "metrics.parquet").exists()
                ensure_run(config, runs, Logistics(device))
                if fresh:
                    seconds[f"draw {draw} {task} s{seed}"] = time.perf_counter() - started
                run_ids |= {config.run_id(), config.pretrained().run_id()}
    return run_ids, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1", help="comma-separated fine-tuning seeds (default: 1, the study's)")
    parser.add_argument(
        "--draws",
        help="comma-separated pre-training draws (masked-LM seeds; default: every shipped "
        "draw, or the quick profile's one)",
    )
    parser.add_argument("--tasks", default="syn-nli,syn-paws")
    parser.add_argument("--cache", default="cache", help="cache folder of the generated data")
    parser.add_argument("--runs", default="runs/calibration", help="runs folder (cached runs are reused)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="the tiny profile: checks the script, numbers meaningless")
    parser.add_argument(
        "--eval-split",
        default="test",
        choices=("dev", "test"),
        help="score the dev or the test files (default: test, as the acceptance figures are defined)",
    )
    parser.add_argument("--summary", help="also write the acceptance figures as JSON (task and draw → figure → value)")
    args = parser.parse_args()
    profile = recipe.quick_synthetic_profile() if args.quick else recipe.default_synthetic_profile()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if args.draws:
        draws = [int(draw) for draw in args.draws.split(",")]
    else:
        draws = shipped.shipped_draws() if profile.check else [recipe.default_draw(profile)]
    task_names = args.tasks.split(",")
    cache, runs = Path(args.cache), Path(args.runs)

    run_ids, run_seconds = run_all(profile, cache, runs, task_names, seeds, draws, args.device, args.eval_split)
    distances = generated.language_distances(generated.ensure_data(profile.data, cache))
    results = load_results(runs)
    results = results[results["run_id"].isin(run_ids)]
    summaries = {}
    for draw in draws:
        for task in task_names:
            table, summaries[f"{task} draw {draw}"] = calibration_table(
                results[results["draw"] == draw], task, distances
            )
            print(f"\n## {task}, draw {draw} (standard, seeds {args.seeds}, {args.eval_split} files)\n")
            print(table.to_markdown(floatfmt=".3f"))
    print("\n## acceptance figures\n")
    print(pd.DataFrame(summaries).rename(index=LABELS).to_markdown(floatfmt=".3f"))
    if args.summary:
        Path(args.summary).write_text(pd.DataFrame(summaries).to_json(indent=1))
    verdicts = acceptance(summaries).pivot(index="label", columns="task", values="met")
    print("\n## acceptance targets met\n")
    print(verdicts.to_markdown())
    print("\n## wall times of the runs computed now (this machine)\n")
    print(json.dumps({name: round(value, 1) for name, value in run_seconds.items()}, indent=1))


if __name__ == "__main__":
    main()
