"""The unit of every analysis: a cell, one fine-tuned run's zero-shot accuracy on one target language beside its
alignment.

Every function takes the store's tidy table (one row per run, language, layer and metric).
Cells are keyed by the run's full configuration except its seed (:func:`label_configurations`):
in every table here ``method`` names a configuration, the method's name alone when a
(task, model) has one configuration of it, else the name and what sets it apart
(``pgd(eps=0.2)``), so runs that differ in any setting are never averaged together.
The grid of a (task, model) is every observed method × seed × target language; a cell
without accuracy or alignment (a failed or unfinished run) is kept with NaN, never dropped
silently: :func:`missing_cells` lists them and the fits of :mod:`xltlib.report.analysis`
count them.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from xltlib.config import PRETRAINED
from xltlib.config.methods import STRENGTHS
from xltlib.errors import unknown
from xltlib.evaluation.alignment import METRICS, WORD_METRICS

ACCURACY = "accuracy"


ALIGNMENT_METRICS = (*METRICS, *WORD_METRICS)


GROUP = ["task", "model"]


CELL = ["task", "model", "method", "seed", "language"]


def label_configurations(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with ``method`` naming each run's configuration and the method itself in ``method_name``.

    Where every (task, model) has one configuration of a method, it keeps the method's name;
    otherwise the task's configurations of that method get the settings in which they differ,
    ``pgd(eps=0.1)`` and ``pgd(eps=0.2)`` (method parameters by their own name, other fields by
    theirs; the encoder is left out, :data:`ENCODER_SETTINGS`, and so are the parameters that
    scale with a strength when the strength tells the configurations apart), or the
    configuration's id where the settings were not stored. So one configuration has one name on
    every pre-training draw. Rows without a ``config_id`` (tables not read from a store) count as
    one configuration per method. Applying it twice changes nothing.
    """
    if "method_name" in results or results.empty:
        return results
    if "config_id" not in results:
        return results.assign(method_name=results.method)
    results = results.assign(config_id=results.config_id.fillna("method:" + results.method))
    configs = results.drop_duplicates("config_id")[["task", "model", "method", "config_id", "settings"]]
    labels = {}
    for (_, method), group in configs.groupby(["task", "method"], sort=False):
        labels |= (
            _labels(method, group)
            if group.groupby("model").size().max() > 1
            else dict.fromkeys(group.config_id, method)
        )
    return results.assign(method_name=results.method, method=results.config_id.map(labels))


ENCODER_SETTINGS = ("model", "model_revision", "draw")
"""Settings that name the encoder: the (task, model) group keeps encoders apart already, so a
configuration's label leaves them out and one method's configuration on several pre-training
draws has one name (what the analysis across draws pairs up)."""


def _labels(method: str, group: pd.DataFrame) -> dict[str, str]:
    """Names for the configurations of one (task, method), several on some model: by the settings that differ."""
    if group.settings.isna().any():
        return {config_id: f"{method}#{config_id[:6]}" for config_id in group.config_id}
    settings = {config_id: _flat(json.loads(text)) for config_id, text in zip(group.config_id, group.settings)}
    keys = sorted({key for flat in settings.values() for key in flat} - set(ENCODER_SETTINGS))
    differing = [
        key for key in keys if len({json.dumps(flat.get(key), sort_keys=True) for flat in settings.values()}) > 1
    ]

    def named(keys: list[str]) -> dict[str, str]:
        return {
            config_id: f"{method}({', '.join(f'{key}={_shown(flat.get(key))}' for key in keys)})"
            for config_id, flat in settings.items()
        }

    scaled = STRENGTHS.get(method, ())[
        1:
    ]  # what scales with the strength: pgd(eps=0.02), not pgd(alpha=0.01, eps=0.02)
    short = named([key for key in differing if key not in scaled])
    models = dict(zip(group.config_id, group.model))
    distinct = len({(models[config_id], name) for config_id, name in short.items()}) == len(short)  # per encoder
    return short if distinct else named(differing)


def _flat(settings: dict) -> dict:
    """Method parameters beside the other fields, each under its own name."""
    return {**{k: v for k, v in settings.items() if k != "method_params"}, **settings.get("method_params", {})}


def _shown(value) -> str:
    if isinstance(value, dict) and "sha256" in value:
        return value["sha256"][:8]  # a local file or folder, by content
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


class MissingCellsWarning(UserWarning):
    """Some (method, seed, language) cells of an analysis grid have no result."""


def cells(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, pooling: str = "mean"
) -> pd.DataFrame:
    """The full grid of fine-tuned cells with ``accuracy`` and ``alignment`` (NaN where missing).

    ``layer=None`` averages the alignment over the hidden layers 1..L (layer 0, the word
    embeddings, is left out: fine-tuning barely moves it). The source language is not a
    target and is left out; so are the generalized (mixed-language) accuracies.
    """
    check_metric(alignment)
    tuned = label_configurations(results[results.method != PRETRAINED])
    accuracy = _zero_shot(tuned)[["run_id", *CELL, "value"]].rename(columns={"value": ACCURACY})
    aligned = _alignment_rows(tuned, alignment, layer, pooling)
    aligned = aligned.groupby(["run_id", "language"]).value.mean().rename("alignment").reset_index()
    runs = tuned.drop_duplicates("run_id").set_index("run_id")[["task", "model", "method", "seed"]]
    aligned = aligned.join(runs, on="run_id")
    observed = accuracy.merge(aligned, on=["run_id", *CELL], how="outer")
    return complete_grid(observed, ["method", "seed", "language"])


def missing_cells(results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None) -> pd.DataFrame:
    """The grid's cells without accuracy or alignment, and which of the two is missing."""
    grid = cells(results, alignment, layer)
    missing = grid[grid[[ACCURACY, "alignment"]].isna().any(axis=1)]
    no_accuracy, no_alignment = missing[ACCURACY].isna(), missing.alignment.isna()
    lacks = np.where(no_accuracy & no_alignment, "run", np.where(no_accuracy, ACCURACY, "alignment"))
    return missing[CELL].assign(missing=lacks).reset_index(drop=True)


def pretrained_alignment(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, pooling: str = "mean"
) -> pd.DataFrame:
    """The pre-trained encoder's alignment per (task, model, language)."""
    check_metric(alignment)
    rows = _alignment_rows(results[results.method == PRETRAINED], alignment, layer, pooling)
    return rows.groupby([*GROUP, "language"]).value.mean().rename("pretrained_alignment").reset_index()


def deltas(
    results: pd.DataFrame, alignment: str = "cosine_gap", layer: int | None = None, baseline: str = "standard"
) -> pd.DataFrame:
    """Each method's cell minus the ``baseline`` cell of the same seed, language, task and model.

    Columns ``d_accuracy``, ``d_alignment`` and ``d_source_accuracy`` (the same difference in source-language
    accuracy, one per run), and ``run_id`` (the treated run); NaN where either side is missing.
    """
    grid = cells(results, alignment, layer).merge(source_accuracy(results), on="run_id", how="left")
    _check_baseline(grid, baseline)
    base = grid[grid.method == baseline].drop(columns=["method", "run_id"])
    treated = grid[grid.method != baseline].merge(
        base, on=["task", "model", "seed", "language"], suffixes=("", "_base")
    )
    return treated.assign(
        d_accuracy=treated[ACCURACY] - treated[f"{ACCURACY}_base"],
        d_alignment=treated.alignment - treated.alignment_base,
        d_source_accuracy=treated.source_accuracy - treated.source_accuracy_base,
    )[["run_id", *CELL, "d_accuracy", "d_alignment", "d_source_accuracy"]]


def source_accuracy(results: pd.DataFrame) -> pd.DataFrame:
    """Each fine-tuned run's accuracy on its source language: ``run_id``, ``source_accuracy``."""
    source = results[(results.metric == ACCURACY) & (results.tgt_lang == results.src_lang)]
    return source.groupby("run_id", as_index=False).value.mean().rename(columns={"value": "source_accuracy"})


def check_metric(metric: str) -> None:
    if metric not in ALIGNMENT_METRICS:
        raise unknown("alignment metric", metric, ALIGNMENT_METRICS)


def _check_baseline(grid: pd.DataFrame, baseline: str) -> None:
    if len(grid) and baseline not in set(grid.method):
        raise unknown("baseline method (no runs of it)", baseline, set(grid.method))


def _zero_shot(tuned: pd.DataFrame) -> pd.DataFrame:
    accuracy = tuned[(tuned.metric == ACCURACY) & ~tuned.tgt_lang.str.contains("|", regex=False)]
    accuracy = accuracy[accuracy.tgt_lang != accuracy.src_lang]
    return accuracy.rename(columns={"tgt_lang": "language"})


def _alignment_rows(rows: pd.DataFrame, metric: str, layer: int | None, pooling: str) -> pd.DataFrame:
    pooling = "word" if metric in WORD_METRICS else pooling  # word metrics embed words, not pooled sentences
    rows = rows[(rows.metric == metric) & (rows.pooling == pooling)]
    if layer is None:
        rows = rows[rows.layer >= 1]
    else:
        if len(rows) and layer not in set(rows.layer.dropna()):
            raise unknown(f"layer of {metric}", str(layer), [str(v) for v in sorted(set(rows.layer.dropna()))])
        rows = rows[rows.layer == layer]
    return rows.rename(columns={"tgt_lang": "language"})


def complete_grid(observed: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Every combination of ``axes`` seen within a (task, model), observed values or NaN."""
    frames = []
    for key, group in observed.groupby(GROUP, sort=False):
        index = pd.MultiIndex.from_product([sorted(group[axis].dropna().unique()) for axis in axes], names=axes)
        full = index.to_frame(index=False).assign(**dict(zip(GROUP, key)))
        frames.append(full.merge(group, on=[*GROUP, *axes], how="left"))
    if not frames:
        return observed.iloc[:0]
    return pd.concat(frames, ignore_index=True)[observed.columns.tolist()]


def complete_groups(frame: pd.DataFrame, needed: list[str], what: str):
    """(key, complete rows, number of incomplete cells) per (task, model); warns once."""
    total_missing = 0
    for key, group in frame.groupby(GROUP, sort=False):
        complete = group.dropna(subset=needed)
        total_missing += len(group) - len(complete)
        if len(complete):
            yield key, complete, len(group) - len(complete)
    warn_missing(total_missing, what)


def warn_missing(count: int, what: str) -> None:
    if count:
        warnings.warn(
            f"{count} cell(s) have no result (failed or unfinished runs) and are left out of the {what}; "
            "xltlib.report.analysis.missing_cells lists them",
            MissingCellsWarning,
            stacklevel=3,
        )


CORPORA = ("task", "tatoeba")
"""What alignment is measured on: the task's own parallel sentences, or Tatoeba (real profile, English source)."""


def on_corpus(results: pd.DataFrame, corpus: str = "task") -> pd.DataFrame:
    """Accuracy rows, and the alignment rows measured on ``corpus`` (rows stored before the column existed: ``task``).

    Every analysis runs on one corpus at a time, so a language's alignment is never an average
    over Tatoeba and the task's sentences.
    """
    if corpus not in CORPORA:
        raise unknown("alignment corpus", corpus, CORPORA)
    stored = (
        results["corpus"].astype("string")
        if "corpus" in results
        else pd.Series(pd.NA, index=results.index, dtype="string")
    )
    keep = (results["metric"] == ACCURACY) | (stored.fillna("task") == corpus)
    return results[keep.to_numpy()]


def alignment_by_corpus(results: pd.DataFrame, metric: str = "cosine_gap") -> pd.DataFrame:
    """Mean alignment over hidden layers and seeds, per method, target and corpus, for languages measured on both
    corpora."""
    check_metric(metric)
    rows = results[(results["metric"] == metric) & (results["layer"] > 0)]
    rows = rows.assign(corpus=rows["corpus"].astype("string").fillna("task"))
    table = rows.groupby(["method", "tgt_lang", "corpus"], observed=True)["value"].mean().unstack("corpus")
    return table.dropna().reset_index() if set(CORPORA) <= set(table.columns) else table.iloc[0:0].reset_index()
