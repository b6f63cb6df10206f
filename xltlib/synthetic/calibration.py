"""Calibration of the synthetic benchmark: can it answer the study's question?

From ``standard`` runs over several seeds (and the pre-trained encoder's alignment run):
per task and language, the recipe distance, source and zero-shot accuracy and alignment
before and after fine-tuning (:func:`calibration_table`); then the figures the synthetic
profile was accepted on, each against its target (:func:`acceptance`). Used by
``book/probes/synthetic_calibration.py`` and by the book's calibration chapter. Nothing here
chooses a setting.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from xltlib.config import SYNTHETIC_FINETUNING
from xltlib.data import tasks
from xltlib.pipeline import ensure_runs
from xltlib.synthetic.generated import language_distances
from xltlib.synthetic.languages import BASE
from xltlib.synthetic.recipe import SOURCE_ACCURACY_FLOOR
from xltlib.synthetic.run_config import synthetic_run_config

ACCEPTANCE: dict[str, tuple[str, float]] = {
    "source_accuracy": (">=", SOURCE_ACCURACY_FLOOR),
    "worst_target_margin": (">=", 0.0),
    "target_spread": (">=", 0.15),
    "rho_distance_cosine_gap": ("<=", -0.7),
    "rho_distance_retrieval": ("<=", -0.7),
    "retrieval_margin": (">", 0.0),
}
"""The benchmark's targets per pre-training draw, fixed before the build (issue 40): figure of
:func:`calibration_table`'s summary → (comparison, bound). The retrieval bound is the precision@1
that chance exceeds with probability < 1% (:func:`retrieval_chance_bound`)."""
LABELS = {
    "seeds": "seeds",
    "source_accuracy": "source accuracy",
    "worst_target_margin": "worst target − (chance + 0.10)",
    "target_spread": "best − worst target",
    "rho_distance_cosine_gap": "ρ(distance, pre-trained cosine gap)",
    "rho_distance_retrieval": "ρ(distance, pre-trained retrieval)",
    "retrieval_margin": "worst target retrieval − chance bound",
    "seed_sd": "sd over seeds of mean target accuracy",
    "half_width": "95% CI half-width, two sets of n runs",
}
"""How the book names each summary figure."""


def retrieval_chance_bound(sentences: int, level: float = 0.01) -> float:
    """The sentence-retrieval precision@1 that chance (1 / ``sentences`` a query) exceeds with probability < ``level``.

    Binomial: ``sentences`` queries, each right by chance with probability 1 / ``sentences``;
    the bound is the smallest share k / n with P(X ≥ k) < ``level``.
    """
    hits = stats.binom.isf(level, sentences, 1 / sentences)  # P(X > hits) ≤ level
    return float((hits + 1) / sentences)


_COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt}


def layer_mean(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Alignment per (method, seed, tgt_lang), averaged over hidden layers 1..L."""
    chosen = rows[(rows["metric"] == metric) & (rows["layer"] >= 1)]
    return chosen.groupby(["method", "seed", "tgt_lang"])["value"].mean()


def alignment_sentences(config) -> int:
    """How many parallel sentences a synthetic run's alignment is measured on: its data's, up to
    ``max_align_sentences``."""
    available = (Path(config.data_dir) / f"parallel-{BASE.code}.txt").read_text(encoding="utf-8").count("\n")
    return min(available, config.max_align_sentences or available)


def calibration_table(
    results: pd.DataFrame, task: str, distances: Mapping[str, float], sentences: int | None = None
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per language of ``distances``: distance, accuracy mean and sd over seeds, alignment; and the summary figures.

    ``results`` are tidy run rows (:func:`xltlib.store.load_results`) of ``standard`` runs and
    their pre-trained run. The seed budget is the 95% CI half-width of the difference in
    mean target accuracy between two independent sets of n runs, t(0.975, 2n−2) · s · √(2/n),
    with s the seed-to-seed sd of the mean over target languages (NaN with one seed). ``sentences``: parallel
    sentences alignment was measured on (default: the synthetic runs' ``max_align_sentences``).
    """
    sentences = sentences or SYNTHETIC_FINETUNING["max_align_sentences"]
    rows = results[results["task"] == task]
    accuracy = rows[(rows["metric"] == "accuracy") & (rows["method"] == "standard")]
    # Only the languages themselves: the generalized setting's mixed pairs ("a0svo|a50sov") share the metric.
    per_seed = accuracy.pivot_table(index="seed", columns="tgt_lang", values="value")[list(distances)]
    table = pd.DataFrame({"distance": pd.Series(distances)})
    table["accuracy mean"] = per_seed.mean()
    table["accuracy sd"] = per_seed.std(ddof=1)
    for metric in ("cosine_gap", "retrieval_cosine"):
        values = layer_mean(rows, metric)
        for method, label in (("pretrained", "pre-trained"), ("standard", "fine-tuned")):
            if method in values.index.get_level_values("method"):
                table[f"{metric} {label}"] = values.loc[method].groupby("tgt_lang").mean()
    table = table.sort_values("distance")
    targets = table.drop(index=BASE.code)
    chance = 1 / len(tasks.get_task(task).labels)
    target_mean = per_seed.drop(columns=BASE.code).mean(axis=1)  # one number per seed
    n = len(target_mean)
    sd = target_mean.std(ddof=1) if n > 1 else float("nan")
    half_width = stats.t.ppf(0.975, 2 * n - 2) * sd * np.sqrt(2 / n) if n > 1 else float("nan")
    summary = {
        "seeds": n,
        "source_accuracy": table.loc[BASE.code, "accuracy mean"],
        "worst_target_margin": targets["accuracy mean"].min() - (chance + 0.10),
        "worst_target": targets["accuracy mean"].idxmin(),
        "target_spread": targets["accuracy mean"].max() - targets["accuracy mean"].min(),
        "rho_distance_cosine_gap": stats.spearmanr(targets["distance"], targets["cosine_gap pre-trained"])[0],
        "rho_distance_retrieval": stats.spearmanr(targets["distance"], targets["retrieval_cosine pre-trained"])[0],
        "retrieval_margin": targets["retrieval_cosine pre-trained"].min() - retrieval_chance_bound(sentences),
        "seed_sd": sd,
        "half_width": half_width,
    }
    return table, summary


def acceptance(summaries: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Tidy rows (task, figure, label, value, target, met) for every figure of :data:`ACCEPTANCE`; NaN is never
    met."""
    rows = []
    for task, summary in summaries.items():
        for figure, (comparison, bound) in ACCEPTANCE.items():
            value = summary[figure]
            met = bool(not np.isnan(value) and _COMPARE[comparison](value, bound))
            target = f"{comparison} {bound:g}"
            rows.append(
                {"task": task, "figure": figure, "label": LABELS[figure], "value": value, "target": target, "met": met}
            )
    return pd.DataFrame(rows)


def encoder_acceptance(
    encoders: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    runs_dir: str | Path,
    cache_dir: str | Path = "cache",
    device: str | None = None,
    task_names: Sequence[str] = ("syn-nli", "syn-paws"),
) -> pd.DataFrame:
    """The acceptance figures of several synthetic encoders: tidy rows (encoder, task, figure, value, target, met).

    ``encoders`` maps a label to the RunConfig fields that pick the encoder (``{"draw": 1}``
    for a shipped draw, ``{"model": folder}`` for another). Each gets ``standard`` runs on
    the test files with ``seeds`` (computed where missing in ``runs_dir``).
    """
    frames = []
    for label, choice in encoders.items():
        configs = [
            synthetic_run_config(task, cache_dir, device=device or "cpu", progress=False, seed=seed, **choice)
            for task in task_names
            for seed in seeds
        ]
        results = ensure_runs(configs, str(runs_dir), device)
        distances = language_distances(configs[0].data_dir)
        sentences = alignment_sentences(configs[0])
        summaries = {task: calibration_table(results, task, distances, sentences)[1] for task in task_names}
        frames.append(acceptance(summaries).assign(encoder=label))
    return pd.concat(frames, ignore_index=True)


def side_by_side(verdicts: pd.DataFrame) -> pd.DataFrame:
    """(task, figure) × encoder table of ``value`` strings, each marked when its target is missed."""
    cells = verdicts.assign(cell=verdicts["value"].map("{:.3f}".format) + np.where(verdicts["met"], "", " (NOT MET)"))
    table = cells.pivot(index=["task", "label"], columns="encoder", values="cell")
    return table.reindex(columns=list(dict.fromkeys(verdicts["encoder"])))
