"""Calibration of the synthetic profile: is it a benchmark that can answer the study's question?

    python benchmarks/synthetic_calibration.py                     # default profile, seeds 1-3
    python benchmarks/synthetic_calibration.py --seeds 1,2,3,4,5,6 --fresh-cache
    python benchmarks/synthetic_calibration.py --pretrain-seed 1 --eval-split dev   # another encoder draw

With `standard` fine-tuning over the seeds, per task and language: the recipe distance,
source and zero-shot accuracy (mean ± sd over seeds) on the test files, or the dev files
with ``--eval-split dev``, and alignment of the pre-trained and of the fine-tuned encoder
(cosine gap and cosine retrieval, averaged over the hidden layers 1..L). Then the
acceptance figures of the profile:

- Spearman ρ between recipe distance and pre-trained alignment across target languages;
- best − worst target accuracy, and every target against chance + 10 points;
- the seed budget: the 95% CI half-width of the difference in mean zero-shot accuracy
  (averaged over targets) between two independent sets of n standard runs,
  t(0.975, 2n−2) · s · √(2/n), with s the seed-to-seed sd of that mean;
- wall times: data generation + tokenizer + pre-training (from an empty cache with
  ``--fresh-cache``), and one standard run with evaluation and alignment.

Nothing here chooses a setting: the profile's settings were fixed on base-language dev
data before this report was run (see xltlib.profiles).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from xltlib import profiles, synthetic
from xltlib.calibration import acceptance, calibration_table
from xltlib.runs import ensure_run, load_results


def build(cache: Path, quick: bool, pretrain_seed: int | None = None) -> tuple[profiles.SyntheticProfile, dict[str, float]]:
    """Ensure data and encoder (masked-LM seed ``pretrain_seed`` if given); time the steps that were not cached."""
    profile = profiles.quick_synthetic_profile() if quick else profiles.default_synthetic_profile()
    if pretrain_seed is not None:
        profile = replace(profile, pretraining=replace(profile.pretraining, seed=pretrain_seed))
    timings = {}
    fresh_data = not (cache / "synthetic" / f"data-{profile.data.config_hash()[:12]}").exists()
    started = time.perf_counter()
    synthetic.ensure_data(profile.data, cache)
    if fresh_data:
        timings["data generation s"] = time.perf_counter() - started
    if not profiles.encoder_path(profile, cache).exists():
        started = time.perf_counter()
        profiles.ensure_encoder(profile, cache)
        timings["tokenizer + pre-training s"] = time.perf_counter() - started
    return profile, timings


def run_all(profile, cache: Path, runs: Path, task_names: list[str], seeds: list[int], device: str,
            eval_split: str = "test") -> tuple[set[str], dict[str, float]]:  # fmt: skip
    """Ensure the standard runs (and their shared pre-trained run); return their run ids and the times of fresh ones.

    The runs folder may hold other runs (other seeds, splits or encoders), so the report
    keeps only the rows of these ids.
    """
    run_ids, seconds = set(), {}
    for task in task_names:
        for seed in seeds:
            config = profiles.synthetic_run_config(task, cache, profile, progress=False, seed=seed, eval_split=eval_split)
            started = time.perf_counter()
            fresh = not (runs / config.run_id() / "metrics.parquet").exists()
            ensure_run(config, runs, device)
            if fresh:
                seconds[f"{task} s{seed}"] = time.perf_counter() - started
            run_ids |= {config.run_id(), config.pretrained().run_id()}
    return run_ids, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated fine-tuning seeds (default: 1,2,3)")
    parser.add_argument("--tasks", default="syn-nli,syn-paws")
    parser.add_argument("--cache", default="cache", help="cache folder (ignored with --fresh-cache)")
    parser.add_argument("--fresh-cache", action="store_true", help="time generation and pre-training from scratch")
    parser.add_argument("--runs", default="runs/calibration", help="runs folder (cached runs are reused)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="the tiny profile: checks the script, numbers meaningless")
    parser.add_argument("--pretrain-seed", type=int, help="masked-LM seed of the encoder (default: the profile's, 0); "
                        "another seed builds and caches another encoder")
    parser.add_argument("--eval-split", default="test", choices=("dev", "test"),
                        help="score the dev or the test files (default: test, as the acceptance figures are defined)")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    task_names = args.tasks.split(",")
    cache = Path(tempfile.mkdtemp(prefix="xlt-cache-")) if args.fresh_cache else Path(args.cache)
    runs = Path(args.runs)
    if args.fresh_cache:  # fresh encoder: earlier runs name another model folder and cannot be reused
        runs = Path(tempfile.mkdtemp(prefix="xlt-runs-"))

    profile, timings = build(cache, args.quick, args.pretrain_seed)
    run_ids, run_seconds = run_all(profile, cache, runs, task_names, seeds, args.device, args.eval_split)
    distances = synthetic.language_distances(synthetic.ensure_data(profile.data, cache))
    results = load_results(runs)
    results = results[results["run_id"].isin(run_ids)]
    summaries = {}
    for task in task_names:
        table, summaries[task] = calibration_table(results, task, distances)
        print(f"\n## {task} (standard, seeds {args.seeds}, {args.eval_split} files)\n")
        print(table.to_markdown(floatfmt=".3f"))
    print("\n## acceptance figures\n")
    print(pd.DataFrame(summaries).to_markdown(floatfmt=".3f"))
    verdicts = acceptance(summaries).pivot(index="figure", columns="task", values="met")
    print("\n## acceptance targets met\n")
    print(verdicts.to_markdown())
    print("\n## wall times (this machine)\n")
    times = {**timings, **{f"run {name} s": value for name, value in run_seconds.items()}}
    print(json.dumps({name: round(value, 1) for name, value in times.items()}, indent=1))


if __name__ == "__main__":
    main()
