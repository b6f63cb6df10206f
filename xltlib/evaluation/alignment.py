"""Cross-lingual alignment of an encoder: pooled embeddings of every layer, scored by the metric registry.

:data:`METRICS` names each metric the results store holds and its kernel
(:mod:`xltlib.evaluation.kernels`); a metric is a function of two ``[N, d]`` embedding
matrices (row i of one is the translation of row i of the other) returning a float. To add
one: write its kernel and register it here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from xltlib.config import POOLINGS
from xltlib.data.batches import length_sorted_batches
from xltlib.data.parallel import parallel_rows
from xltlib.errors import unknown
from xltlib.evaluation.kernels import cosine_gap, linear_cka, parallel_cosine, retrieval_accuracy_both
from xltlib.models import autocast_for


def _retrieval_both_ways(scoring: str) -> Callable[[torch.Tensor, torch.Tensor], float]:
    def metric(x: torch.Tensor, y: torch.Tensor) -> float:
        return sum(retrieval_accuracy_both(x, y, scoring)) / 2

    return metric


# Metric registry: result-store name → kernel of (src, tgt). One entry per DESIGN.md §3 name.
# Retrieval is the mean of the src→tgt and tgt→src accuracies (DESIGN.md: both directions).
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "parallel_cosine": parallel_cosine,
    "cosine_gap": cosine_gap,
    "retrieval_cosine": _retrieval_both_ways("cosine"),
    "retrieval_margin": _retrieval_both_ways("margin"),
    "retrieval_csls": _retrieval_both_ways("csls"),
    "cka": linear_cka,
    "cka_debiased": lambda x, y: linear_cka(x, y, debiased=True),
}


def alignment_metrics(
    src: torch.Tensor, tgt: torch.Tensor, metrics: Sequence[str] = tuple(METRICS), layers: Sequence[int] | None = None,
    pooling: str = "mean",
) -> list[dict]:  # fmt: skip
    """Flat ``{layer, pooling, metric, value}`` rows for ``[layers, N, d]`` embeddings of both sides."""
    for name in metrics:
        if name not in METRICS:
            raise unknown("alignment metric", name, METRICS)
    layers = range(src.shape[0]) if layers is None else layers
    return [
        {"layer": layer, "pooling": pooling, "metric": name, "value": METRICS[name](src[i], tgt[i])}
        for i, layer in enumerate(layers)
        for name in metrics
    ]


def measure_alignment(
    encoder, tokenizer, corpus: pd.DataFrame, src_lang: str, tgt_langs: Sequence[str], pooling: str = "mean",
    max_length: int = 128, batch_size: int = 64, device: torch.device | None = None,
    metrics: Sequence[str] = tuple(METRICS),
) -> list[dict]:  # fmt: skip
    """``{tgt_lang, layer, pooling, metric, value}`` rows: every layer, source vs each target language.

    ``corpus`` has one column of line-aligned sentences per language
    (:func:`xltlib.data.parallel.parallel_corpus`). The source is encoded once; each target only on
    the rows usable for its pair (:func:`xltlib.data.parallel.parallel_rows`), one language at a
    time so memory holds two languages' embeddings, not all of them.
    """
    source = encode(encoder, tokenizer, corpus[src_lang].tolist(), "all", pooling, batch_size, max_length, device)
    rows = []
    targets = [lang for lang in tgt_langs if lang != src_lang]
    for lang in tqdm(targets, desc="alignment", unit="language", disable=len(targets) < 2):
        keep = parallel_rows(corpus[src_lang], corpus[lang])
        target = encode(encoder, tokenizer, corpus[lang].iloc[keep].tolist(), "all", pooling, batch_size, max_length, device)
        measured = alignment_metrics(source[:, torch.as_tensor(keep)], target, metrics, pooling=pooling)
        rows += [{"tgt_lang": lang, **row} for row in measured]
    return rows


@torch.no_grad()
def encode(
    model, tokenizer, sentences: Sequence[str], layers: str | Sequence[int] = "all", pooling: str = "mean",
    batch_size: int = 64, max_length: int = 128, device: torch.device | None = None,
) -> torch.Tensor:  # fmt: skip
    """Pooled sentence embeddings of the requested hidden layers (0 = embeddings … L), ``[layers, N, d]``.

    One forward pass per batch gives every layer. Sentences are sorted by length so padding
    stays small and put back in input order; mean pooling ignores padding. Returned as
    float32 on CPU.
    """
    if pooling not in POOLINGS:
        raise unknown("pooling", pooling, POOLINGS)
    device = device or next(model.parameters()).device
    encoded = tokenizer(list(sentences), truncation=True, max_length=max_length)
    features = [{key: encoded[key][i] for key in encoded.keys()} for i in range(len(sentences))]
    was_training = model.training
    model.eval()
    chosen = None
    out = None
    batches = length_sorted_batches(tokenizer, features, batch_size, device)
    total = -(-len(features) // batch_size)
    for rows, batch in tqdm(batches, total=total, desc="encode", unit="batch", disable=total < 10, mininterval=1.0):
        with autocast_for(device):
            hidden = model(**batch, output_hidden_states=True).hidden_states
        if chosen is None:
            chosen = list(range(len(hidden))) if layers == "all" else list(layers)
            out = torch.empty(len(chosen), len(sentences), hidden[0].shape[-1])
        stacked = torch.stack([hidden[i] for i in chosen]).float()  # [layers, B, T, d]
        if pooling == "cls":
            pooled = stacked[:, :, 0]
        else:
            mask = batch["attention_mask"].to(stacked.dtype)[None, :, :, None]
            pooled = (stacked * mask).sum(dim=2) / mask.sum(dim=2)
        out[:, torch.as_tensor(rows)] = pooled.cpu()
    model.train(was_training)
    return out
