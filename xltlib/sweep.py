"""``python -m xltlib sweep``: the robust methods' strengths, chosen on source-language dev data by a written rule.

For each method it fine-tunes at a ladder of strengths (ε for pgd and freelb, σ for rs_rp, the
substitution rate for rs_da; every strength relative, see :mod:`xltlib.config.methods`) and
scores the source language's dev split beside ``standard``'s. Target-language data is never
read. The rule (:func:`choose_strengths`), written down before the first sweep ran on the
shipped encoders: the chosen strength is the strongest rung such that *it and every weaker
rung* keep the mean dev accuracy over the seeds within ``budget`` points (1) of standard's on
every task. A strength that is too large collapses training to the majority class; requiring
every weaker rung too keeps one noisy rung from passing alone.

Profiles:

- ``synthetic`` (the defaults' source): the shipped encoders on ``syn-nli`` and ``syn-paws``.
- ``e5``: multilingual-e5-small under huang2021-cpu, with its own ladder (a third of, once and
  three times the synthetic defaults, since its strengths were never chosen on it); its rule,
  written before its sweep: one seed (a 2-core CPU's budget), English dev (first 300 items),
  a budget of 2 points (one seed's dev accuracy on 300 items moves by about 3 points).
- ``xtreme``: a hub model (``--model``) under a published protocol (``--protocol``) on the data of
  ``data fetch``; the synthetic profile's ladder and rule. It costs GPU hours: every rung is a
  full fine-tuning run at that protocol's size. ``--quick`` runs the same path on a small random
  XLM-R and ``../shared/data`` (seconds; numbers meaningless).

Runs go through the grid (:mod:`xltlib.grid`) and the run store, so an interrupted sweep
resumes and a rerun costs nothing.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from xltlib.config import RunConfig
from xltlib.config.cli import add_engine_flags, logistics_from
from xltlib.config.logistics import Logistics
from xltlib.errors import XltError, unknown

Ladder = tuple[str, tuple[float, ...], Callable[[float], dict[str, float]]]
"""(the strength's parameter, its rungs from weak to strong, the parameters that scale with it)."""

LADDERS: dict[str, Ladder] = {  # about ×3 a rung, from the old default up
    "rs_rp": ("sigma", (0.1, 0.3, 0.8, 2.0), lambda sigma: {}),  # 0.1 added after 0.3 failed the rule (design notes)
    "rs_da": ("rate", (0.6, 0.9), lambda rate: {}),
    "freelb": ("eps", (0.01, 0.03, 0.1, 0.3), lambda eps: {"alpha": eps / 2, "init_mag": eps / 2}),
    "pgd": ("eps", (0.002, 0.006, 0.02, 0.06, 0.2), lambda eps: {"alpha": eps / 2}),
}
"""The synthetic profile's ladders, also those of a hub model (``--profile xtreme``)."""

E5_LADDERS: dict[str, Ladder] = {  # a third of, once and three times the synthetic profile's defaults
    "rs_rp": ("sigma", (0.033, 0.1, 0.3), lambda sigma: {}),
    "freelb": ("eps", (0.0033, 0.01, 0.03), lambda eps: {"alpha": eps / 2, "init_mag": eps / 2}),
    "pgd": ("eps", (0.0067, 0.02, 0.06), lambda eps: {"alpha": eps / 2}),
}

PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic": {"tasks": ("syn-nli", "syn-paws"), "seeds": (1, 2), "budget": 1.0, "methods": tuple(LADDERS)},
    "e5": {"tasks": ("xnli",), "seeds": (1,), "budget": 2.0, "methods": tuple(E5_LADDERS)},
    "xtreme": {"tasks": ("xnli", "pawsx"), "seeds": (1, 2), "budget": 1.0, "methods": ("pgd", "freelb", "rs_rp")},
}
"""Each profile's sweep as its rule was written: tasks, seeds, budget (points) and methods."""


@dataclass(frozen=True)
class Sweep:
    """One sweep: which runs, and the rule's budget.

    Attributes:
        profile: ``synthetic``, ``e5`` or ``xtreme`` (module docstring).
        tasks, methods, seeds, budget: empty or ``None``: the profile's (:data:`PROFILE_DEFAULTS`).
        model: ``xtreme``: the hub model (or local folder) whose strengths are chosen.
        protocol: ``xtreme``: the recipe its runs follow (default ``huang2021``).
        data_root: ``xtreme``: the folder ``data fetch`` wrote (``{root}/{task}`` is read).
        quick: a small stand-in for the encoder (synthetic: the tiny profile; xtreme: a small random XLM-R).
        cache_dir: generated data and encoders.
    """

    profile: str = "synthetic"
    tasks: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    budget: float | None = None
    model: str | None = None
    protocol: str = "huang2021"
    data_root: str = "data/real"
    quick: bool = False
    cache_dir: str = "cache"
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.profile not in PROFILE_DEFAULTS:
            raise unknown("sweep profile", self.profile, PROFILE_DEFAULTS)
        defaults = PROFILE_DEFAULTS[self.profile]
        for name in ("tasks", "methods", "seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)) or defaults[name])
        object.__setattr__(self, "budget", defaults["budget"] if self.budget is None else self.budget)
        for method in self.methods:
            if method not in self.ladders:
                raise unknown(f"method with a {self.profile} ladder", method, self.ladders)
        if self.profile == "xtreme" and not (self.model or self.quick):
            raise XltError("sweep --profile xtreme needs --model (a hub id or a local folder), or --quick")

    @property
    def ladders(self) -> dict[str, Ladder]:
        return E5_LADDERS if self.profile == "e5" else LADDERS

    def plan(self) -> list[tuple[str, str, float | None, dict[str, float], int]]:
        """``(task, method, strength, parameters, seed)`` of every run: standard, then each rung."""
        plan = [(task, "standard", None, {}, seed) for task in self.tasks for seed in self.seeds]
        for method in self.methods:
            name, rungs, extras = self.ladders[method]
            plan += [
                (task, method, value, {name: value, **extras(value)}, seed)
                for value in rungs
                for task in self.tasks
                for seed in self.seeds
            ]
        return plan

    def config(self, task: str, method: str, params: dict[str, float], seed: int) -> RunConfig:
        """The run of one rung: trained by the profile's recipe, scored on the source language's dev split only."""
        from xltlib.report.experiment import experiment_configs

        params = {**self.method_params.get(method, {}), **params}
        settings: dict[str, Any] = {"method_params": {method: params}, "cache_dir": self.cache_dir, "eval_split": "dev"}
        if self.profile == "synthetic":
            return experiment_configs(task, [method], [seed], quick=self.quick, tgt_langs=("base",), **settings)[0]
        if self.profile == "e5":
            from xltlib.profiles import e5

            settings |= {"model": e5.MODEL_ID, "protocol": "huang2021-cpu", "max_eval_examples": 300}
            return experiment_configs(task, [method], [seed], tgt_langs=("en",), **settings)[0]
        model = self.model or "FacebookAI/xlm-roberta-base"  # --quick: what its small stand-in stands in for
        settings |= {"model": model, "protocol": self.protocol, "quick": self.quick}
        data = {} if self.quick else {"data_dir": f"{self.data_root}/{task}"}
        return experiment_configs(task, [method], [seed], tgt_langs=("en",), **settings, **data)[0]


def choose_strengths(table: pd.DataFrame, budget: float) -> dict[str, float | None]:
    """The rule: per method, the strongest rung such that it and every weaker rung keep the mean source dev accuracy
    within ``budget`` points of ``standard``'s on every task (``None``: not even the weakest rung does).

    ``table``: one row per run with ``task``, ``method``, ``strength``, ``seed``, ``dev_accuracy``.
    """
    drop = accuracy_drops(table)
    chosen = {}
    for method in drop.index.get_level_values("method").unique():
        within = (drop.loc[method] >= -budget).all(axis=1).sort_index().astype(int).cummin().astype(bool)
        chosen[method] = float(within[within].index.max()) if within.any() else None
    return chosen


def accuracy_drops(table: pd.DataFrame) -> pd.DataFrame:
    """Mean dev accuracy minus standard's, in points: rows (method, strength), a column per task."""
    standard = table[table.method == "standard"].groupby("task").dev_accuracy.mean()
    robust = table[table.method != "standard"].groupby(["method", "strength", "task"]).dev_accuracy.mean()
    return (robust.unstack("task") - standard) * 100


def run_sweep(sweep: Sweep, runs_dir: str, grid: Callable[..., list]) -> pd.DataFrame:
    """Compute the sweep's runs with ``grid`` (:func:`xltlib.grid.run_grid`, engine and logistics bound); one row
    per run with its source dev accuracy."""
    from xltlib.store import load_results

    configs = [
        (task, method, value, sweep.config(task, method, params, seed))
        for task, method, value, params, seed in sweep.plan()
    ]

    failed = [outcome for outcome in grid([config for *_, config in configs], runs_dir) if outcome.status != "ok"]
    if failed:
        raise XltError(f"{len(failed)} sweep runs failed, e.g. {failed[0].run_id}: {failed[0].error}")
    rows = []
    for task, method, value, config in configs:
        frame = load_results(runs_dir, [config.run_id()])
        accuracy = frame[(frame.metric == "accuracy") & (frame.tgt_lang == config.src_lang)].value.item()
        rows.append({"task": task, "method": method, "strength": value, "seed": config.seed, "dev_accuracy": accuracy})
    return pd.DataFrame(rows)


def sweep_report(sweep: Sweep, table: pd.DataFrame) -> str:
    """What ``sweep`` prints: standard's dev accuracy, each rung's drop, and the strengths the rule chooses."""
    standard = table[table.method == "standard"].groupby("task").dev_accuracy.mean()
    lines = [
        f"source dev accuracy, standard: {standard.round(4).to_dict()} (seeds {list(sweep.seeds)})",
        "dev accuracy minus standard, points:",
        accuracy_drops(table).round(1).to_string(),
        f"strongest rung with every rung up to it within {sweep.budget:g} points of standard on every task:",
    ]
    for method, value in choose_strengths(table, sweep.budget).items():
        lines.append(f"  {method:<7} {sweep.ladders[method][0]} = {value}")
    return "\n".join(lines)


def sweep_runs(sweep: Sweep, runs_dir: str, engine, logistics: Logistics = Logistics()) -> str:
    """Run the sweep on ``engine`` and return its report (the command's body)."""
    from xltlib.grid import run_grid  # Ray and torch: imported once the sweep's parameters passed their checks

    grid = functools.partial(run_grid, engine=engine, logistics=logistics)
    return sweep_report(sweep, run_sweep(sweep, runs_dir, grid))


def cmd_sweep(args: argparse.Namespace) -> None:
    """``python -m xltlib sweep``: run the sweep the flags describe and print its report."""
    from xltlib.grid import Engine

    rs_da = {"rs_da": {"synonyms_file": args.synonyms}} if args.synonyms else {}
    sweep = Sweep(
        args.profile,
        tuple(args.tasks or ()),
        tuple(args.methods or ()),
        tuple(args.seeds or ()),
        args.budget,
        args.model,
        args.protocol,
        args.data_root,
        args.quick,
        args.cache,
        rs_da,
    )
    print(sweep_runs(sweep, args.out, Engine.from_flags(args), logistics_from(args)))


def add_sweep_command(commands, data_root: Path) -> None:
    """The ``sweep`` subcommand of ``python -m xltlib``."""
    sweep = commands.add_parser(
        "sweep",
        help="choose the robust methods' strengths on source-language dev data, by the rule in xltlib/sweep.py",
    )
    sweep.add_argument("--profile", default="synthetic", choices=list(PROFILE_DEFAULTS), help="default: synthetic")
    sweep.add_argument("--model", help="--profile xtreme: the hub model (or folder) whose strengths are chosen")
    sweep.add_argument("--protocol", default="huang2021", help="--profile xtreme: its recipe (default: huang2021)")
    sweep.add_argument(
        "--data-root", default=str(data_root), help=f"--profile xtreme: data fetch's folder ({data_root})"
    )
    sweep.add_argument("--tasks", nargs="+", help="default: the profile's (xtreme: xnli pawsx)")
    sweep.add_argument("--methods", nargs="+", help="default: the profile's (xtreme: pgd freelb rs_rp)")
    sweep.add_argument("--seeds", nargs="+", type=int, help="default: the profile's (xtreme: 1 2)")
    sweep.add_argument("--budget", type=float, help="largest tolerated dev-accuracy drop in points (default: 1; e5: 2)")
    sweep.add_argument("--synonyms", help="rs_da's synonyms_file, for a real task")
    sweep.add_argument("--out", default="runs-sweep", help="runs directory of the sweep (default: runs-sweep)")
    sweep.add_argument("--cache", default="cache", help="generated data and encoders (default: cache)")
    sweep.add_argument("--quick", action="store_true", help="a small stand-in encoder: the path in seconds, no numbers")
    add_engine_flags(sweep)
    sweep.set_defaults(handler=cmd_sweep)
