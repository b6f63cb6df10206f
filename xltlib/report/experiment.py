"""One experiment = one (profile, task, model) × a grid of methods and seeds.

What the experiment notebook calls: build the grid's RunConfigs (validated before any
compute), make sure every run exists (the run cache makes a re-executed notebook free),
and turn the tidy results into the tables its figures show.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from xltlib.config import PRETRAINED, RunConfig
from xltlib.config.experiments import EVERY_SHIPPED_DRAW
from xltlib.config.methods import dosed_params
from xltlib.config.protocols import PROTOCOLS, protocol_settings
from xltlib.data import tasks
from xltlib.errors import XltError, unknown
from xltlib.methods import method_class
from xltlib.models import resolve_device
from xltlib.profiles import e5
from xltlib.profiles.quick_xtreme import quick_settings
from xltlib.report.cells import label_configurations
from xltlib.report.shipped import stored_runs
from xltlib.store import load_results, stale_runs
from xltlib.synthetic.generated import language_distances
from xltlib.synthetic.recipe import (
    SOURCE_ACCURACY_FLOOR,
    default_draw,
    default_synthetic_profile,
    is_shipped_encoder,
    quick_synthetic_profile,
)
from xltlib.synthetic.run_config import synthetic_run_config
from xltlib.synthetic.shipped import shipped_draws

log = logging.getLogger(__name__)


def experiment_configs(
    task: str,
    methods: Sequence[str],
    seeds: Sequence[int],
    model: str | None = None,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    cache_dir: str = "cache",
    quick: bool = False,
    device: str | None = None,
    doses: Mapping[str, Sequence[float]] | None = None,
    draws: Sequence[int] | str | None = None,
    protocol: str | None = None,
    **overrides: Any,
) -> list[RunConfig]:
    """The grid's configs, (methods × draws + doses) × seeds, all validated before any run starts.

    A real task takes its ``protocol``'s settings under ``overrides`` (:func:`_real_settings`). A synthetic task gets
    :data:`xltlib.config.SYNTHETIC_FINETUNING`, whatever its model; ``model=None`` on it means the profile's encoder;
    ``quick``, the tiny synthetic profile. ``method_params`` maps a method to its parameters; ``doses`` maps a method
    to multipliers of its strength (:func:`~xltlib.config.methods.dosed_params`; 0 is ``standard``), each one more
    configuration; ``draws`` are the synthetic encoder's pre-training draws to run every method on (None: the default
    draw or ``overrides["draw"]``; ``"shipped"``: every shipped one); doses run on the first draw only (they ask what
    strength does, the draws whether a method's effect replicates); ``overrides``: RunConfig fields of every run.
    """
    method_params = dict(method_params or {})
    _check_methods(methods, seeds, method_params, doses or {})
    synthetic_task = tasks.get_task(task).profile == "synthetic"
    if not synthetic_task:
        model, overrides, method_params = _real_settings(
            task, model, protocol, quick, cache_dir, overrides, method_params
        )
    elif protocol is not None:
        raise XltError(f"protocols are recipes of the real profile; task {task} takes the synthetic profile's settings")
    draws = _resolved_draws(draws, synthetic_task and model is None and "draw" not in overrides)

    def config(method: str, params: Mapping[str, Any], seed: int, draw: int | None = None) -> RunConfig:
        fields = {"method": method, "method_params": dict(params), "seed": seed, **overrides}
        fields |= {"draw": draw} if draw is not None else {}
        if synthetic_task:
            profile = quick_synthetic_profile() if quick else default_synthetic_profile()
            chosen = {"model": model} if model is not None else {}
            return synthetic_run_config(task, cache_dir, profile, str(resolve_device(device)), **chosen, **fields)
        return RunConfig(task=task, model=model, **fields)

    arms = [(method, method_params.get(method, {})) for method in methods]
    on_draws = list(draws) if draws is not None else [None]
    configs = [config(method, params, seed, draw) for draw in on_draws for method, params in arms for seed in seeds]
    dosed = _dosed_arms(doses or {}, method_params)
    configs += [config(method, params, seed, on_draws[0]) for method, params in dosed for seed in seeds]
    return list({c.run_id(): c for c in configs}.values())  # a dose of 1 is the method's own configuration


GRID_PARAMETERS = (
    "task",
    "methods",
    "seeds",
    "model",
    "method_params",
    "cache_dir",
    "quick",
    "device",
    "doses",
    "draws",
    "protocol",
)
"""The experiment notebook's parameters that choose its runs (``overrides`` adds RunConfig fields)."""


def experiment_grid(parameters: Mapping[str, Any]) -> list[RunConfig]:
    """The runs of an experiment chapter executed with ``parameters`` (the notebook's, complete): the one grid
    builder that the batch, which computes the runs first, and the chapter, which reads them, both call."""
    chosen = {name: parameters[name] for name in GRID_PARAMETERS}
    return experiment_configs(**chosen, **parameters["overrides"])


def stored_experiment(runs_dir: str, task: str) -> tuple[list, pd.DataFrame]:
    """The stored configurations and results of ``task``'s runs in a shipped results folder
    (:mod:`xltlib.report.shipped`)."""
    configs, run_ids = stored_runs(Path(runs_dir), task)
    return configs, load_results(runs_dir, run_ids)


def _real_settings(
    task: str,
    model: str | None,
    protocol: str | None,
    quick: bool,
    cache_dir: str,
    overrides: dict[str, Any],
    method_params: dict[str, Any],
) -> tuple:
    """``(model, overrides, method_params)`` of a real task: the protocol's settings (:mod:`xltlib.config.protocols`)
    under the experiment's, then, with ``quick``, a small local model and the real text of ``../shared/data``
    in place of the hub (:mod:`xltlib.profiles.quick_xtreme`)."""
    if model is None:
        raise XltError(f"task {task} needs a model (a hub id such as xlm-roberta-base, or a local folder)")
    if protocol is not None:
        fields, params = protocol_settings(protocol, task, model)
        overrides = {**fields, **overrides}
        method_params = {
            name: {**params.get(name, {}), **method_params.get(name, {})} for name in {*params, *method_params}
        }
    if model == e5.MODEL_ID:
        return e5.profile_settings(task, cache_dir, overrides, method_params)
    if quick:
        return quick_settings(task, cache_dir, overrides, method_params)
    return model, overrides, method_params


def _check_methods(methods: Sequence[str], seeds: Sequence[int], method_params: Mapping, doses: Mapping) -> None:
    if not methods or not seeds:
        raise XltError("an experiment needs at least one method and one seed")
    for name in method_params:
        if name not in methods and name not in doses:
            raise unknown("method in method_params (not in methods)", name, methods)
    for name in methods:
        method_class(name)


def _resolved_draws(draws: Sequence[int] | str | None, own_encoders: bool) -> Sequence[int] | None:
    """``draws`` checked, with ``"shipped"`` as the shipped draws."""
    if draws is None:
        return None
    if not own_encoders:
        raise XltError(
            "draws picks the synthetic profile's own encoders: only for a synthetic task, without a model "
            "or an overrides draw"
        )
    if not draws:
        raise XltError("draws, when given, needs at least one draw")
    return shipped_draws() if draws == EVERY_SHIPPED_DRAW else draws


def _dosed_arms(doses: Mapping[str, Sequence[float]], method_params: Mapping[str, Mapping[str, Any]]) -> list[tuple]:
    arms = []
    for method, multipliers in doses.items():
        for dose in multipliers:
            arms.append(
                ("standard", {}) if dose == 0 else (method, dosed_params(method, dose, method_params.get(method)))
            )
    return arms


def calibration_configs(
    tasks: Sequence[str],
    seeds: Sequence[int],
    draws: Sequence[int] | None,
    quick: bool = False,
    cache_dir: str = "cache",
    device: str | None = None,
) -> dict[tuple[str, int], list[RunConfig]]:
    """The calibration chapter's grid: ``standard`` runs per (task, pre-training draw); ``draws=None``: every shipped
    one."""
    profile = quick_synthetic_profile() if quick else default_synthetic_profile()
    draws = list(draws) if draws is not None else (shipped_draws() if profile.check else [default_draw(profile)])
    return {
        (task, draw): experiment_configs(
            task, ["standard"], seeds, cache_dir=cache_dir, quick=quick, device=device, draw=draw
        )
        for draw in draws
        for task in tasks
    }


def accuracy_by_language(results: pd.DataFrame) -> pd.DataFrame:
    """Zero-shot accuracy per (method, language): mean, sd and number of seeds (tidy); one method per configuration."""
    results = label_configurations(results)
    accuracy = results[(results.metric == "accuracy") & ~results.tgt_lang.str.contains("|", regex=False)]
    table = accuracy.groupby(["method", "tgt_lang"]).value.agg(mean="mean", sd="std", seeds="count").reset_index()
    return table.rename(columns={"tgt_lang": "language"})


def source_accuracy_warning(results: pd.DataFrame, model: str, src_lang: str) -> str | None:
    """A Markdown warning when a shipped synthetic encoder fine-tunes below the source accuracy it was shipped for.

    Every shipped draw fine-tuned to :data:`xltlib.synthetic.recipe.SOURCE_ACCURACY_FLOOR` on the
    source language's dev set when it was built; every method's mean accuracy on
    ``src_lang`` below it means this chapter's fine-tuning went otherwise here, and its
    numbers are not comparable with the published ones. Other encoders have no calibrated
    level and get no warning.
    """
    if not is_shipped_encoder(model):
        return None
    accuracy = accuracy_by_language(results)
    best = accuracy.loc[accuracy.language == src_lang, "mean"].max()
    if not best < SOURCE_ACCURACY_FLOOR:
        return None
    return (
        f"**Warning: the best method reaches only {best:.3f} on the source language `{src_lang}`**, below the "
        f"{SOURCE_ACCURACY_FLOOR:.2f} that every shipped draw of the synthetic encoder reached when it was built "
        "(`data/synthetic-encoders/manifest.json`, `attempts`). The weights are the shipped ones (their sha256 was "
        "checked), so fine-tuning itself went otherwise on this machine or with these settings: read this chapter's "
        "numbers as those of another benchmark, and compare the calibration chapter with the published one."
    )


def configuration_order(results: pd.DataFrame, methods: Sequence[str]) -> list[str]:
    """The fine-tuned configurations' names (:func:`label_configurations`), in the order of ``methods``,
    then any other method's; several configurations of one method in name order (``pgd(eps=0.002)`` …)."""
    labelled = label_configurations(results)
    names = labelled.loc[labelled.method_name != PRETRAINED, ["method_name", "method"]].drop_duplicates()
    rank = {method: i for i, method in enumerate(methods)}
    ordered = sorted(
        names.itertuples(), key=lambda row: (rank.get(row.method_name, len(rank)), row.method_name, row.method)
    )
    return [row.method for row in ordered]


def stale_warning(results: pd.DataFrame) -> str | None:
    """A Markdown warning naming the runs computed by other code than this checkout's
    (:func:`xltlib.store.stale_runs`)."""
    stale = stale_runs(results)
    if stale.empty:
        return None
    names = ", ".join(f"`{run_id}`" for run_id in stale.run_id)
    return (
        f"**Warning: {len(stale)} of {results.run_id.nunique()} runs were computed by other code** than this "
        f"checkout's: training, method, data or metric code has changed since ({names}). Their numbers may not be "
        "what this code computes; recompute them with `python -m xltlib study --recompute-stale` (or `batch ... "
        "--recompute-stale`)."
    )


def mean_sd_table(table: pd.DataFrame, languages: Sequence[str], methods: Sequence[str]) -> pd.DataFrame:
    """Language × method grid of ``mean ± sd`` strings, rows and columns in the given order; method × language when
    there are more methods than languages, so that the table grows down, not past the page's width."""
    cells = table.assign(cell=table["mean"].map("{:.3f}".format) + " ± " + table["sd"].fillna(0).map("{:.3f}".format))
    grid = cells.pivot(index="language", columns="method", values="cell")
    grid = grid.reindex(
        index=[lang for lang in languages if lang in grid.index], columns=[m for m in methods if m in grid.columns]
    )
    return grid.T if grid.shape[1] > grid.shape[0] else grid


def generalized_matrix(results: pd.DataFrame, method: str, languages: Sequence[str]) -> pd.DataFrame:
    """Mean accuracy with text_a in the row language and text_b in the column language.

    Off-diagonal cells come from the mixed pairs (``tgt_lang = "a|b"``), the diagonal from
    the ordinary zero-shot rows. ``method`` names a configuration (:func:`label_configurations`).
    """
    results = label_configurations(results)
    accuracy = results[(results.metric == "accuracy") & (results.method == method)]
    means = accuracy.groupby("tgt_lang").value.mean()
    matrix = pd.DataFrame(
        index=pd.Index(languages, name="text_a"), columns=pd.Index(languages, name="text_b"), dtype=float
    )
    for a in languages:
        for b in languages:
            matrix.loc[a, b] = means.get(a if a == b else f"{a}|{b}", float("nan"))
    return matrix


def alignment_by_layer(results: pd.DataFrame, metric: str = "cosine_gap") -> pd.DataFrame:
    """Alignment ``metric`` per (method, language, layer), mean and sd over seeds (tidy); one method per
    configuration. The last layer's ``<s>`` rows (``pooling="cls"``) are left out: one pooling per curve."""
    results = label_configurations(results)
    rows = results[(results.metric == metric) & (results.pooling.fillna("") != "cls")]
    if rows.empty:
        raise unknown("alignment metric", metric, sorted(set(results.metric) - {"accuracy"}))
    table = rows.groupby(["method", "tgt_lang", "layer"]).value.agg(mean="mean", sd="std").reset_index()
    return table.rename(columns={"tgt_lang": "language"})


def target_distances(config: RunConfig) -> dict[str, float] | None:
    """Each language's distance from the source in the synthetic recipe; None for real tasks (no such number)."""
    return language_distances(config.data_dir) if config.profile == "synthetic" else None


def language_order(config: RunConfig) -> list[str]:
    """The source language first, then targets: by recipe distance (synthetic) or task order."""
    languages = list(dict.fromkeys((config.src_lang, *config.tgt_langs)))
    if config.profile == "synthetic":
        distance = language_distances(config.data_dir)
        return sorted(languages, key=lambda lang: (lang != config.src_lang, distance.get(lang, 0.0)))
    return languages


def encoder_description(configs: Sequence[RunConfig]) -> str:
    """The experiment's encoder(s) in words: one folder and its draw, or the pre-training draws run."""
    draws = sorted({c.draw for c in configs if c.draw is not None})
    name = configs[0].model.split("/")[-1]
    if len(draws) > 1:
        return f"the encoders of pre-training draws {', '.join(map(str, draws))} (`{name}`, …)"
    return f"encoder `{name}`" + (f" (pre-training draw {draws[0]})" if draws else "")


def protocol_description(protocol: str, configs: Sequence[RunConfig]) -> str:
    """One sentence naming the chapter's protocol, its source and the settings its runs used."""
    config = configs[0]
    source = PROTOCOLS[protocol].sources.get(config.task, PROTOCOLS[protocol].source)
    checkpoint = "last"
    if config.select_checkpoint == "source_dev":
        every_steps = getattr(config, "select_every_steps", None)  # records stored before the field have none
        every = f"every {every_steps} steps" if every_steps else "at epoch ends"
        checkpoint = f"best on source dev, scored {every}"
    rs_da = next((c.method_params for c in configs if c.method == "rs_da"), {})
    style = rs_da.get("copies_style", "with-originals")  # the default, left out of records stored before it
    copies = f", rs_da {rs_da['copies']} offline copies ({style})" if rs_da.get("copies") else ""
    matched = next((c.method_params["epochs_factor"] for c in configs if c.method == "standard_matched"), None)
    return (
        f"protocol **{protocol}** ({source}): {config.epochs:g} epochs, lr {config.learning_rate:g}, batch "
        f"{config.batch_size} in {config.grad_accum_steps} micro-batch(es), max length {config.max_seq_length}, "
        f"checkpoint {checkpoint}"
        + copies
        + (f"; `standard_matched` trains {matched:g}× as long, as many steps as rs_da" if matched else "")
        + (", after a first stage on SocialIQa" if config.first_stage_file else "")
        + "."
    )
