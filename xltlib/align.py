"""Cross-lingual alignment: pooled embeddings of every layer, and exact metric kernels.

Kernels take ``torch.Tensor`` or ``numpy`` arrays ``[N, d]`` (row i of ``x`` is the
translation of row i of ``y``), in float32, bfloat16 or float16, on CPU or CUDA. Matrix
products run in the input's dtype; every reduction accumulates in float32 and the final
scalar combinations in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import unknown
from .train import autocast_for, length_sorted_batches

Array = torch.Tensor | np.ndarray
SCORINGS = ("cosine", "margin", "csls")
BLOCK_BYTES = {"cpu": 256 * 2**20, "cuda": 4 * 2**30}
"""Memory one block of the similarity matrix may take; no N×N matrix is ever built."""


def _tensor(x: Array) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if tensor.ndim != 2:
        raise ValueError(f"expected an [N, d] matrix, got shape {tuple(tensor.shape)}")
    return tensor


def _pair(x: Array, y: Array) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _tensor(x), _tensor(y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must be row-aligned [N, d] matrices, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] < 2:
        raise ValueError("alignment needs at least 2 parallel rows")
    return x, y


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (computed in float32), returned in the input dtype."""
    x32 = x.float()
    return (x32 / x32.norm(dim=1, keepdim=True).clamp_min(1e-12)).to(x.dtype)


def parallel_cosine(x: Array, y: Array) -> float:
    """Mean cosine similarity of row-aligned pairs."""
    x, y = _pair(x, y)
    return float((_unit_rows(x).float() * _unit_rows(y).float()).sum(dim=1).double().mean())


def cosine_gap(x: Array, y: Array) -> float:
    """Mean parallel cosine minus the mean cosine of all N·(N−1) non-parallel pairs.

    Σ_{i≠j} cos(x_i, y_j) = (Σ_i x̂_i)·(Σ_j ŷ_j) − Σ_i cos(x_i, y_i): O(N·d), no N×N matrix.
    """
    x, y = _pair(x, y)
    x_hat, y_hat = _unit_rows(x).float(), _unit_rows(y).float()
    n = x.shape[0]
    parallel = (x_hat * y_hat).sum(dim=1).double().sum()
    everything = x_hat.double().sum(dim=0) @ y_hat.double().sum(dim=0)
    return float(parallel / n - (everything - parallel) / (n * (n - 1)))


@dataclass(frozen=True)
class _Neighbours:
    """k nearest neighbours (by cosine) along both axes of the similarity matrix."""

    src_values: torch.Tensor  # [N, k] float32: each src row's k best tgt similarities
    src_indices: torch.Tensor  # [N, k]
    tgt_values: torch.Tensor  # [N, k]: each tgt row's k best src similarities
    tgt_indices: torch.Tensor  # [N, k]


def _neighbours(src: torch.Tensor, tgt: torch.Tensor, k: int, block_rows: int | None, columns: bool = True) -> _Neighbours:
    """One blocked pass over src·tgtᵀ keeping the top-k of every row (and of every column)."""
    src_hat, tgt_hat = _unit_rows(src), _unit_rows(tgt)
    n = src.shape[0]
    if block_rows is None:
        block_rows = max(1, BLOCK_BYTES.get(src.device.type, BLOCK_BYTES["cpu"]) // (4 * n))
    src_values, src_indices = [], []
    col_values = torch.full((k, n), -torch.inf, device=src.device)
    col_indices = torch.zeros((k, n), dtype=torch.long, device=src.device)
    for start in range(0, n, block_rows):
        block = (src_hat[start : start + block_rows] @ tgt_hat.T).float()
        values, indices = block.topk(k, dim=1)
        src_values.append(values)
        src_indices.append(indices)
        if not columns:
            continue
        values, indices = block.topk(min(k, block.shape[0]), dim=0)
        merged_values, order = torch.cat([col_values, values]).topk(k, dim=0)
        col_indices = torch.cat([col_indices, indices + start]).gather(0, order)
        col_values = merged_values
    return _Neighbours(torch.cat(src_values), torch.cat(src_indices), col_values.T, col_indices.T)


def _top1(neighbours: _Neighbours, scoring: str, reverse: bool) -> torch.Tensor:
    """Best candidate per query among its k nearest neighbours, under ``scoring``.

    Margin and CSLS rescore the k cosine neighbours (as LASER/XTREME do):
    margin = cos / ((r_q + r_c) / 2), CSLS = 2·cos − r_q − r_c, r = mean of the k best cosines.
    """
    if reverse:
        values, indices, other = neighbours.tgt_values, neighbours.tgt_indices, neighbours.src_values
    else:
        values, indices, other = neighbours.src_values, neighbours.src_indices, neighbours.tgt_values
    if scoring == "cosine":
        return indices[:, 0]
    r_query = values.mean(dim=1, keepdim=True)
    r_candidate = other.mean(dim=1)[indices]
    if scoring == "margin":
        scores = values / ((r_query + r_candidate) / 2)
    else:
        scores = 2 * values - r_query - r_candidate
    return indices.gather(1, scores.argmax(dim=1, keepdim=True)).squeeze(1)


def _retrieval(src: Array, tgt: Array, scoring: str, k: int, block_rows: int | None, both: bool) -> list[float]:
    if scoring not in SCORINGS:
        raise unknown("scoring", scoring, SCORINGS)
    src, tgt = _pair(src, tgt)
    n = src.shape[0]
    columns = both or scoring != "cosine"  # margin and CSLS need every target's k-NN too
    neighbours = _neighbours(src, tgt, 1 if scoring == "cosine" else min(k, n), block_rows, columns)
    truth = torch.arange(n, device=src.device)
    directions = (False, True) if both else (False,)
    return [float((_top1(neighbours, scoring, reverse) == truth).double().mean()) for reverse in directions]


def retrieval_accuracy(src: Array, tgt: Array, scoring: str = "cosine", k: int = 4, block_rows: int | None = None) -> float:
    """Top-1 accuracy of retrieving tgt row i for src row i, under cosine, margin or CSLS scoring.

    The similarity matrix is computed once, in row blocks of bounded memory (``block_rows``,
    default from :data:`BLOCK_BYTES`); margin and CSLS take their k-NN of both axes from the
    same blocks.
    """
    return _retrieval(src, tgt, scoring, k, block_rows, both=False)[0]


def retrieval_accuracy_both(
    src: Array, tgt: Array, scoring: str = "cosine", k: int = 4, block_rows: int | None = None
) -> tuple[float, float]:
    """(src→tgt, tgt→src) top-1 accuracies from one pass over the similarity matrix."""
    forward, backward = _retrieval(src, tgt, scoring, k, block_rows, both=True)
    return forward, backward


def _debiased(xty: torch.Tensor, rows_x: torch.Tensor, rows_y: torch.Tensor, n: int) -> torch.Tensor:
    """Unbiased HSIC (Song et al. 2012) of centred linear kernels from feature-space sums."""
    return xty - n / (n - 2) * (rows_x @ rows_y) + rows_x.sum() * rows_y.sum() / ((n - 1) * (n - 2))


def linear_cka(x: Array, y: Array, debiased: bool = False) -> float:
    """Linear CKA (Kornblith et al. 2019) in feature space: O(N·d²), no N×N Gram matrix.

    The two sides may differ in width. ``debiased`` uses the unbiased HSIC estimator.
    """
    x, y = _tensor(x), _tensor(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same rows on both sides, got {x.shape[0]} and {y.shape[0]}")
    if debiased and x.shape[0] < 4:
        raise ValueError("debiased CKA needs at least 4 rows")
    x = x - x.float().mean(dim=0, keepdim=True).to(x.dtype)
    y = y - y.float().mean(dim=0, keepdim=True).to(y.dtype)

    def squared_frobenius(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a.T @ b).float().pow(2).sum().double()

    xty, xtx, yty = squared_frobenius(x, y), squared_frobenius(x, x), squared_frobenius(y, y)
    if debiased:
        n = x.shape[0]
        rows_x, rows_y = x.float().pow(2).sum(dim=1).double(), y.float().pow(2).sum(dim=1).double()
        xty, xtx, yty = _debiased(xty, rows_x, rows_y, n), _debiased(xtx, rows_x, rows_x, n), _debiased(yty, rows_y, rows_y, n)
    return float(xty / (xtx.sqrt() * yty.sqrt()))


# Metric registry: result-store name → kernel of (src, tgt). One entry per DESIGN.md §3 name.
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "parallel_cosine": parallel_cosine,
    "cosine_gap": cosine_gap,
    "retrieval_cosine": lambda x, y: retrieval_accuracy(x, y, "cosine"),
    "retrieval_margin": lambda x, y: retrieval_accuracy(x, y, "margin"),
    "retrieval_csls": lambda x, y: retrieval_accuracy(x, y, "csls"),
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


POOLINGS = ("mean", "cls")


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
