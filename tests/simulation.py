"""A simulated results store in the real schema with known effects: shared by the analysis, draws and findings tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xltlib.store import RESULT_COLUMNS

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

    def row(run_id, method, seed, tgt, metric, value, layer=None):
        rows.append(
            {
                "run_id": run_id,
                "config_id": f"c-{method}",
                "settings": f'{{"method":"{method}"}}',
                "profile": "sim",
                "task": "sim-nli",
                "model": "m",
                "method": method,
                "seed": seed,
                "src_lang": SOURCE,
                "tgt_lang": tgt,
                "layer": layer,
                "pooling": None if layer is None else "mean",
                "metric": metric,
                "value": value,
            }
        )

    for lang in names:
        for layer in (0, *HIDDEN_LAYERS):
            row("pre", "pretrained", 0, lang, "cosine_gap", pretrained[lang], layer)
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
                row(run_id, method, seed, lang, "cosine_gap", rng.normal(0, 0.1), 0)
                for layer, value in by_layer.items():
                    row(run_id, method, seed, lang, "cosine_gap", value, layer)
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return frame.astype({"layer": "Int64", "pooling": "string"})


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
