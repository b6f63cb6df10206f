"""Where one run of the default study spends its time: training, zero-shot evaluation, the generalized pairs,
alignment.

    python benchmarks/run_breakdown.py                      # syn-nli standard, first grid run (about 1-2 min)
    python benchmarks/run_breakdown.py --task syn-paws --method freelb

Computes the run afresh in a temporary runs folder (the study's own runs are left alone),
after its draw's pre-trained-encoder run (computed once per draw in the study, so not
counted), with the pipeline's own functions timed in place: ``fit`` (training, including the
per-epoch source-dev selection), ``zero_shot_accuracy`` split into the target languages'
test sets and the generalized (mixed-language) pairs, and ``measure_alignment``. What is
left (loading data, encoder and tokenizer, writing records) is "other". One run, one
machine: ratios, not a timing to assert.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch

from xltlib import pipeline
from xltlib.report.batch import grid_configs, load_experiments

REPO = Path(__file__).resolve().parent.parent
SECONDS: dict[str, float] = defaultdict(float)


@contextmanager
def timed(part: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        SECONDS[part] += time.perf_counter() - start


def timing(part: str, function):
    def wrapper(*args, **kwargs):
        with timed(part):
            return function(*args, **kwargs)

    return wrapper


def split_accuracy(function):
    """``zero_shot_accuracy`` timed apart for the target languages and the generalized pairs (keys ``a|b``)."""

    def wrapper(model, tokenizer, eval_sets, *args, **kwargs):
        results = {}
        for part, keep in (("zero-shot targets", lambda k: "|" not in k), ("generalized pairs", lambda k: "|" in k)):
            chosen = {key: frame for key, frame in eval_sets.items() if keep(key)}
            if chosen:
                with timed(part):
                    results |= function(model, tokenizer, chosen, *args, **kwargs)
        return results

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="syn-nli")
    parser.add_argument("--method", default="standard")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _, experiments = load_experiments(REPO / "notebooks" / "experiments" / "synthetic.yaml")
    with tempfile.TemporaryDirectory() as runs:
        configs = grid_configs(experiments, False, runs, str(REPO / "cache"))
        config = next(c for c in configs if c.task == args.task and c.method == args.method)
        pipeline.ensure_run(config.pretrained(), runs)  # shared by every run of a draw in the study: not timed
        pipeline.fit = timing("training", pipeline.fit)
        pipeline.zero_shot_accuracy = split_accuracy(pipeline.zero_shot_accuracy)
        pipeline.measure_alignment = timing("alignment", pipeline.measure_alignment)
        with timed("whole run"):
            pipeline.ensure_run(config, runs)
    total = SECONDS.pop("whole run")
    SECONDS["other (data, model loading, records)"] = total - sum(SECONDS.values())
    print(f"{config.run_id()}: {total:.1f} s on {torch.get_num_threads()} threads")
    print(
        f"  {len(config.tgt_langs)} target languages, generalized pairs {config.generalized_examples} per language pair"
    )
    for part, seconds in SECONDS.items():
        print(f"  {part:38s} {seconds:7.1f} s  {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
