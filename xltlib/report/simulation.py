"""Simulated results stores in the real schema with known effects: what the analysis is validated against.

:func:`simulate` and :func:`simulate_draws` draw cells with independent noise (the unit tests' worlds);
:func:`simulate_study` has the study's real structure (runs, draws, shared test items, a ceiling), and is what
the coverage table of the design chapter (``book/probes/coverage.py``) measures every interval on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xltlib import integrity
from xltlib.config.methods import dosed_params, normalize_params
from xltlib.files import atomic_write_json
from xltlib.records import METRICS_FILE, RECORDS
from xltlib.store import RESULT_COLUMNS, atomic_write_parquet

SOURCE = "src"
HIDDEN_LAYERS = (1, 2)


def simulate(
    rng: np.random.Generator,
    slope: float = 0.5,
    method_accuracy: dict[str, float] | None = None,
    method_alignment: dict[str, float] | None = None,
    languages: int = 8,
    seeds: int = 3,
    noise: float = 0.01,
    gain_per_pretrained_alignment: float = 0.0,
    layer_slopes: dict[int, float] | None = None,
) -> pd.DataFrame:
    """A results store in the real schema with known effects.

    Per language: a pre-trained alignment and a random intercept. Per run and language:
    alignment = pre-trained + method shift + noise; accuracy = 0.5 + language intercept +
    slope · alignment + method effect + gain_per_pretrained_alignment · pre-trained
    alignment (methods other than standard) + noise. ``layer_slopes`` instead draws each
    hidden layer's alignment independently and lets accuracy depend on those layers only.
    """
    method_accuracy = method_accuracy or {"standard": 0.0, "pgd": 0.0, "rs_rp": 0.0}
    method_alignment = method_alignment or {"standard": 0.0, "pgd": 0.02, "rs_rp": -0.01}
    names = [f"t{i}" for i in range(languages)]
    pretrained = dict(zip(names, rng.uniform(0.1, 0.6, languages)))
    intercept = dict(zip(names, rng.normal(0, 0.05, languages)))
    rows = []
    row = lambda *fields, layer=None: rows.append(_row(*fields, layer))  # noqa: E731
    for lang in names:
        for layer in (0, *HIDDEN_LAYERS):
            row("pre", "pretrained", 0, lang, "cosine_gap", pretrained[lang], layer=layer)
    for method in method_accuracy:
        for seed in range(1, seeds + 1):
            run_id = f"{method}-{seed}"
            row(run_id, method, seed, SOURCE, "accuracy", 0.9)
            for lang in names:
                alignment = pretrained[lang] + method_alignment[method] + rng.normal(0, 0.03)
                by_layer = {layer: alignment for layer in HIDDEN_LAYERS}
                explained = slope * alignment
                if layer_slopes:
                    by_layer = {layer: pretrained[lang] + rng.normal(0, 0.05) for layer in HIDDEN_LAYERS}
                    explained = sum(layer_slopes[layer] * by_layer[layer] for layer in HIDDEN_LAYERS)
                helped = gain_per_pretrained_alignment * pretrained[lang] if method != "standard" else 0.0
                accuracy = 0.5 + intercept[lang] + explained + method_accuracy[method] + helped + rng.normal(0, noise)
                row(run_id, method, seed, lang, "accuracy", accuracy)
                row(run_id, method, seed, f"{SOURCE}|{lang}", "accuracy", accuracy + rng.normal(0, noise))
                row(run_id, method, seed, lang, "cosine_gap", rng.normal(0, 0.1), layer=0)
                for layer, value in by_layer.items():
                    row(run_id, method, seed, lang, "cosine_gap", value, layer=layer)
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return frame.astype({"layer": "Int64", "pooling": "string"})


def _row(run_id: str, method: str, seed: int, tgt: str, metric: str, value: float, layer: int | None) -> dict:
    """One row of :func:`simulate`'s store (one encoder ``m``, a configuration per method)."""
    identity = {"profile": "sim", "task": "sim-nli", "model": "m", "src_lang": SOURCE}
    config = {"config_id": f"c-{method}", "settings": f'{{"method":"{method}"}}'}
    pooling = None if layer is None else "mean"
    return {
        "run_id": run_id,
        **identity,
        **config,
        "method": method,
        "seed": seed,
        "tgt_lang": tgt,
        "layer": layer,
        "pooling": pooling,
        "metric": metric,
        "value": value,
    }


def simulate_draws(
    rng: np.random.Generator,
    accuracy: dict[str, list[float]],
    alignment: dict[str, float] | None = None,
    seeds: int = 1,
    slope: float = 0.5,
    noise: float = 0.01,
) -> pd.DataFrame:
    """One :func:`simulate` store per pre-training draw (its own encoder ``m<d>``), method m's accuracy effect on
    draw d being ``accuracy[m][d]``; ``alignment``: each method's alignment shift (default: none)."""
    alignment = alignment or dict.fromkeys(accuracy, 0.0)
    frames = []
    for draw in range(len(next(iter(accuracy.values())))):
        effects = {method: per_draw[draw] for method, per_draw in accuracy.items()}
        frame = simulate(rng, slope, effects, alignment, seeds=seeds, noise=noise)
        frames.append(frame.assign(model=f"m{draw}", draw=draw, run_id=f"d{draw}-" + frame.run_id))
    return pd.concat(frames, ignore_index=True).astype({"draw": "Int64"})


@dataclass(frozen=True)
class StudyDesign:
    """A simulated study with the real one's dependence structure; effects on the accuracy scale (a fraction).

    A cell's accuracy is the share of its language's ``items`` answered correctly, item i with probability
    ``base(language) + slope · alignment + method effect + run shock + difficulty(i) + method × item(i)``: so runs
    share a shock across their languages, draws their own random method effects, every run the same test items
    (difficulties and method × item effects fixed once per simulated study; ``items_per_draw`` draws them anew
    per draw), and a language near the ceiling has a smaller binomial variance. A language's base accuracy rises
    with its pre-trained alignment (``confounding``): between languages alignment and accuracy share a cause.
    """

    draws: int = 1
    seeds: int = 3
    languages: int = 7
    items: int = 200
    slope: float = 0.5
    method_accuracy: dict[str, float] = field(
        default_factory=lambda: {"standard": 0.0, "pgd": 0.01, "freelb": 0.0, "rs_rp": 0.0, "rs_da": -0.01}
    )
    method_alignment: dict[str, float] = field(
        default_factory=lambda: {"standard": 0.0, "pgd": 0.01, "freelb": 0.0, "rs_rp": -0.01, "rs_da": 0.0}
    )
    doses: tuple[float, ...] = ()
    dose_accuracy: float = 0.01
    dose_alignment: float = 0.01
    run_sd: float = 0.01
    run_alignment_sd: float = 0.01
    cell_alignment_sd: float = 0.02
    draw_method_sd: float = 0.005
    item_sd: float = 0.03
    item_method_sd: float = 0.03
    items_per_draw: bool = False
    confounding: float = 0.4

    def method_effect(self, method: str) -> float:
        """The population effect on accuracy over ``standard`` (over draws and items): direct + via alignment."""
        direct = self.method_accuracy[method] - self.method_accuracy["standard"]
        return direct + self.slope * (self.method_alignment[method] - self.method_alignment["standard"])

    @property
    def dose_slope(self) -> float:
        """The population change in accuracy per unit dose of ``pgd``."""
        return self.dose_accuracy + self.slope * self.dose_alignment


def simulate_study(rng: np.random.Generator, design: StudyDesign) -> pd.DataFrame:
    """A results store drawn from ``design``: one encoder per draw (``m<d>``), one ``pretrained`` run each,
    every method × seed; with ``design.doses``, ``standard`` and ``pgd`` at each dose instead (a dose-response
    study, the dose slope being ``dose_accuracy`` plus the slope times ``dose_alignment``). Alignment is
    ``cosine_gap`` on layer 1."""
    names = [f"t{i}" for i in range(design.languages)]
    pretrained = rng.uniform(0.1, 0.6, design.languages)
    base = 0.35 + design.confounding * pretrained + rng.normal(0, 0.03, design.languages)
    if design.doses:
        arms = [("standard", {}, 0.0), *(("pgd", dosed_params("pgd", dose), dose) for dose in design.doses)]
    else:
        arms = [(method, normalize_params(method, {}), None) for method in design.method_accuracy]
    items = _test_items(rng, design)
    rows = []
    for draw in range(design.draws):
        model = f"m{draw}"
        if design.items_per_draw and draw:
            items = _test_items(rng, design)
        draw_effects = {method: rng.normal(0, design.draw_method_sd) for method in design.method_accuracy}
        draw_effects["standard"] = 0.0  # the baseline's draw-to-draw spread is the encoder's, in ``base``
        identity = {"profile": "sim", "task": "sim-nli", "model": model, "draw": draw, "src_lang": SOURCE}
        pretrained_run = {**identity, "run_id": f"{model}-pre", "method": "pretrained", "seed": 0, "layer": 1}
        rows += [
            {**pretrained_run, "tgt_lang": name, "metric": "cosine_gap", "value": value}
            for name, value in zip(names, pretrained)
        ]
        for method, params, dose in arms:
            config = f"{method}-{dose}" if dose is not None else method
            settings = json.dumps({"method": method, "method_params": params})
            effects = _arm_effects(design, method, dose, draw_effects, items)
            for seed in range(1, design.seeds + 1):
                run = {
                    **identity,
                    "run_id": f"{model}-{config}-s{seed}",
                    "config_id": config,
                    "settings": settings,
                    "method": method,
                    "seed": seed,
                }
                rows += _run_rows(rng, design, run, names, (pretrained, base, items["difficulty"]), effects)
    frame = pd.DataFrame(rows).reindex(columns=RESULT_COLUMNS)
    frame["pooling"] = np.where(frame.layer.notna(), "mean", None)
    return frame.astype({"layer": "Int64", "draw": "Int64", "pooling": "string", "seed": int})


def _arm_effects(design: StudyDesign, method: str, dose: float | None, draw_effects: dict, items: dict) -> tuple:
    """An arm's effect on accuracy, its shift in alignment and its effects on the test items: the method's own (with
    its draw's random part), or a dose's of ``pgd``."""
    if dose is None:
        accuracy = design.method_accuracy[method] + draw_effects[method]
        return accuracy, design.method_alignment[method], items["method"][method]
    return design.dose_accuracy * dose, design.dose_alignment * dose, items["method"]["pgd"] * dose


def _run_rows(rng, design: StudyDesign, run: dict, names: list[str], languages: tuple, effects: tuple) -> list[dict]:
    """One fine-tuned run's rows: source accuracy, and per target its accuracy over the test items and alignment."""
    pretrained, base, difficulty = languages
    accuracy_effect, alignment_shift, method_items = effects
    shock = rng.normal(0, design.run_sd)
    alignment = (
        pretrained
        + alignment_shift
        + rng.normal(0, design.run_alignment_sd)
        + rng.normal(0, design.cell_alignment_sd, design.languages)
    )
    chance = base[:, None] + (design.slope * alignment + accuracy_effect + shock)[:, None]
    chance = np.clip(chance + difficulty + method_items, 0.0, 1.0)
    accuracy = (rng.random(chance.shape) < chance).mean(axis=1)
    rows = [{**run, "tgt_lang": SOURCE, "metric": "accuracy", "value": 0.9 + shock}]
    for index, name in enumerate(names):
        rows.append({**run, "tgt_lang": name, "metric": "accuracy", "value": accuracy[index]})
        rows.append({**run, "tgt_lang": name, "metric": "cosine_gap", "layer": 1, "value": alignment[index]})
    return rows


def _test_items(rng: np.random.Generator, design: StudyDesign) -> dict:
    """Each language's test items: a difficulty per item, and per method an effect per item (mean zero over the
    population of items, not over the sample)."""
    shape = (design.languages, design.items)
    return {
        "difficulty": rng.normal(0, design.item_sd, shape),
        "method": {method: rng.normal(0, design.item_method_sd, shape) for method in design.method_accuracy},
    }


def write_store(results: pd.DataFrame, runs_dir: Path) -> Path:
    """Write simulated ``results`` as a run store the report reads like a real one: per run, its metrics and a
    stand-in config and environment (``{"simulated": true}``), recorded as :func:`xltlib.pipeline.ensure_run` records
    a run's files (:mod:`xltlib.records`), so the store's checks accept them."""
    for run_id, rows in results.groupby("run_id"):
        folder = Path(runs_dir) / str(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "env.json"):
            atomic_write_json(folder / name, {"simulated": True, "run_id": str(run_id)})
        atomic_write_parquet(folder / METRICS_FILE, rows.reset_index(drop=True))
        integrity.record(folder, RECORDS)
    return Path(runs_dir)
