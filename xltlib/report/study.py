"""The runs a synthesis chapter reads, and the study's shape: tasks, methods, seeds and pre-training draws."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from xltlib.config import PRETRAINED
from xltlib.report.cells import label_configurations, on_corpus
from xltlib.report.draws import primary_draw, tasks_with_several_draws
from xltlib.store import load_results, stale_runs


class StudyRuns(NamedTuple):
    """``stored``: every row (the causal arm's included); ``results``: accuracy and the alignment measured on the
    chosen corpus, one ``method`` per configuration; ``tuned``: its fine-tuned rows; ``one_draw``: per task the
    draw with the most runs, which the single-encoder models fit."""

    stored: pd.DataFrame
    results: pd.DataFrame
    tuned: pd.DataFrame
    tasks: list[str]
    methods: list[str]
    treatments: list[str]
    seeds: list[int]
    draws: list
    several_draws: list[str]
    one_draw: pd.DataFrame

    def stale(self) -> pd.DataFrame:
        """The runs computed by other code than this checkout's (:func:`~xltlib.store.stale_runs`)."""
        return stale_runs(self.results)


def load_study(runs_dir: str, run_ids, profile: str, corpus: str, baseline: str) -> StudyRuns:
    """The runs of ``run_ids`` (None: every complete run) in ``runs_dir``, of ``profile`` ("" for all)."""
    stored = load_results(runs_dir, run_ids)
    stored = stored[stored.profile == profile] if profile else stored
    results = label_configurations(on_corpus(stored, corpus))  # runs that differ in any setting are never pooled
    tuned = results[results.method_name != PRETRAINED]
    methods = [baseline, *sorted(set(tuned.method) - {baseline})]
    return StudyRuns(
        stored=stored,
        results=results,
        tuned=tuned,
        tasks=sorted(tuned.task.unique()),
        methods=methods,
        treatments=methods[1:],
        seeds=sorted(tuned.seed.unique()),
        draws=sorted(tuned.draw.dropna().unique()),
        several_draws=tasks_with_several_draws(results),
        one_draw=primary_draw(results),
    )
