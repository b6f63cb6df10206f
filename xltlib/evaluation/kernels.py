"""Alignment metric kernels: cosine, retrieval (cosine, margin, CSLS) and CKA, exact and tiled.

Kernels take ``torch.Tensor`` or ``numpy`` arrays ``[N, d]`` (row i of ``x`` is the
translation of row i of ``y``), in float32, bfloat16 or float16, on CPU or CUDA. Matrix
products run in the input's dtype; every reduction accumulates in float32 and the final
scalar combinations in float64.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from xltlib.errors import unknown

Array = torch.Tensor | np.ndarray


SCORINGS = ("cosine", "margin", "csls")


TILES = {"cpu": (2048, 16384), "cuda": (4096, 2**18)}
"""(rows, columns) of one tile of the similarity matrix per device type; no N×N matrix is built.

On CPU a 128 MB tile runs the GEMM near its peak rate; on CUDA a 4 GB tile keeps the GPU busy."""


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
    tgt_values: torch.Tensor | None  # [N, k]: each tgt row's k best src similarities (None: not asked)
    tgt_indices: torch.Tensor | None


def _product_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, light_reduction: bool) -> torch.Tensor:
    """``a @ b.T`` written into ``out``'s storage (no fresh allocation, so no page faults per tile).

    On CPU in float32, numpy's OpenBLAS sgemm runs ~8% faster than torch's MKL here, but its
    threads keep spinning after the call and slow torch's column top-k down by more than
    that; so it is used only when the tile's reduction is light (rows only). Measured in
    ``benchmarks/align_kernels.py``.
    """
    if light_reduction and a.device.type == "cpu" and a.dtype == torch.float32:
        np.matmul(a.numpy(), b.numpy().T, out=out.numpy())
    else:
        torch.mm(a, b.T, out=out)
    return out


_cpu_workspaces = threading.local()  # per thread, so concurrent calls never share a buffer


def _workspace(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A tile buffer; on CPU kept between calls, as a fresh 100 MB buffer costs ~50 ms of page faults.

    (CUDA's caching allocator already reuses memory.) Alignment calls the kernels once per
    layer and language with the same N, so the buffer is reused many times per run.
    """
    if device.type != "cpu":
        return torch.empty(numel, dtype=dtype, device=device)
    buffers = _cpu_workspaces.__dict__
    if dtype not in buffers or buffers[dtype].numel() < numel:
        buffers[dtype] = torch.empty(numel, dtype=dtype)
    return buffers[dtype][:numel]


CHUNK = 64
"""Width of the column chunks whose maxima screen a tile's rows (see :func:`_row_topk`)."""


def _row_topk(block: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of every row of a contiguous tile, at little more than one streaming pass.

    Each of a row's k best entries lies in one of the k chunks (runs of :data:`CHUNK` columns)
    with the largest maxima, since a chunk ranked above it holds a larger entry. A vectorised
    max per chunk picks those k chunks and only their k·CHUNK entries (plus a ragged tail) are
    ranked: 2–3× faster than ``torch.topk`` over the whole row, which is what keeps the
    reduction from adding to the GEMM's time. (Along columns, the same trick loses to
    ``torch.topk``: its gather is strided.)
    """
    rows, width = block.shape
    chunks = width // CHUNK
    if chunks <= k:
        return block.topk(min(k, width), dim=1)
    chunk_max = block.as_strided((rows, chunks, CHUNK), (width, CHUNK, 1)).amax(dim=2)
    picked = chunk_max.topk(k, dim=1).indices
    candidates = (picked[:, :, None] * CHUNK + torch.arange(CHUNK, device=block.device)).view(rows, k * CHUNK)
    tail = torch.arange(chunks * CHUNK, width, device=block.device)
    candidates = torch.cat([candidates, tail.expand(rows, -1)], dim=1)
    values, order = block.gather(1, candidates).topk(k, dim=1)
    return values, candidates.gather(1, order)


def _merge_topk(values: torch.Tensor, indices: torch.Tensor, new_values, new_indices, k: int, dim: int):
    if k == 1:
        better = new_values > values
        return torch.where(better, new_values, values), torch.where(better, new_indices, indices)
    merged, order = torch.cat([values, new_values], dim=dim).topk(k, dim=dim)
    return merged, torch.cat([indices, new_indices], dim=dim).gather(dim, order)


def _tile_shape(tile: tuple[int, int] | None, device: torch.device) -> tuple[int, int]:
    return tile or TILES.get(device.type, TILES["cpu"])


def _neighbours(
    src_hat: torch.Tensor, tgt_hat: torch.Tensor, k: int, tile: tuple[int, int] | None, columns: bool
) -> _Neighbours:
    """One tiled pass over src·tgtᵀ (unit rows) keeping the top-k of every row (and, if ``columns``, of every column).

    Tiles are reduced in the matrix product's own dtype (a bf16 product is already rounded to
    bf16, so a float32 copy would add time, not precision); only the k kept values are float32.
    """
    n, device = src_hat.shape[0], src_hat.device
    tile_rows, tile_cols = _tile_shape(tile, device)
    buffer = _workspace(min(tile_rows, n) * min(tile_cols, n), src_hat.dtype, device)
    row_values, row_indices = [], []
    if columns:
        col_values = torch.full((k, n), -torch.inf, device=device)
        col_indices = torch.zeros((k, n), dtype=torch.long, device=device)
    for row in range(0, n, tile_rows):
        rows = src_hat[row : row + tile_rows]
        best = torch.full((rows.shape[0], k), -torch.inf, device=device)
        best_at = torch.zeros((rows.shape[0], k), dtype=torch.long, device=device)
        for col in range(0, n, tile_cols):
            cols = tgt_hat[col : col + tile_cols]
            out = buffer[: rows.shape[0] * cols.shape[0]].view(rows.shape[0], cols.shape[0])
            block = _product_into(rows, cols, out, light_reduction=not columns)
            values, indices = _row_topk(block, k)
            best, best_at = _merge_topk(best, best_at, values.float(), indices + col, k, dim=1)
            if columns:
                values, indices = block.topk(min(k, block.shape[0]), dim=0)
                span = slice(col, col + cols.shape[0])
                col_values[:, span], col_indices[:, span] = _merge_topk(
                    col_values[:, span], col_indices[:, span], values.float(), indices + row, k, dim=0
                )
        row_values.append(best)
        row_indices.append(best_at)
    if not columns:
        return _Neighbours(torch.cat(row_values), torch.cat(row_indices), None, None)
    return _Neighbours(torch.cat(row_values), torch.cat(row_indices), col_values.T, col_indices.T)


def _top1(neighbours: _Neighbours, scoring: str, reverse: bool) -> torch.Tensor:
    """Best candidate per query among its k nearest neighbours, under cosine or margin scoring.

    Margin rescores the k cosine neighbours, as LASER/XTREME do: cos / ((r_q + r_c) / 2),
    r = the mean of the k best cosines.
    """
    values, indices, other = _direction(neighbours, reverse)
    if scoring == "cosine":
        return indices[:, 0]
    r_query = values.mean(dim=1, keepdim=True)
    r_candidate = other.mean(dim=1)[indices]
    scores = values / ((r_query + r_candidate) / 2)
    return indices.gather(1, scores.argmax(dim=1, keepdim=True)).squeeze(1)


def _direction(neighbours: _Neighbours, reverse: bool):
    """(query k-NN values, their indices, the candidates' k-NN values) for src→tgt, or tgt→src."""
    if reverse:
        return neighbours.tgt_values, neighbours.tgt_indices, neighbours.src_values
    return neighbours.src_values, neighbours.src_indices, neighbours.tgt_values


def _csls_top1(
    neighbours: _Neighbours,
    queries: torch.Tensor,
    candidates: torch.Tensor,
    reverse: bool,
    tile: tuple[int, int] | None,
) -> torch.Tensor:
    """Best candidate per query over *all* candidates by CSLS = 2·cos − r_q − r_c (Conneau et al. 2018).

    r_q is the same for every candidate of a query, so the best one maximises 2·cos − r_c.
    The k cosine neighbours give a best-so-far; every other candidate has cos ≤ the k-th
    best cosine and r_c ≥ min r, so it scores at most 2·cos_k − min r. Where the best-so-far
    reaches that bound it is the global answer; the other queries (few on real embeddings,
    more on random data with hubs) are ranked against every candidate in a second tiled pass.
    """
    values, indices, other = _direction(neighbours, reverse)
    r_candidate = other.mean(dim=1)
    scores = 2 * values - r_candidate[indices]
    best_score, best_at = scores.max(dim=1)
    best = indices.gather(1, best_at[:, None]).squeeze(1)
    unsure = (best_score < 2 * values[:, -1] - r_candidate.min()).nonzero().squeeze(1)
    if len(unsure):
        best[unsure] = _full_csls_argmax(queries[unsure], candidates, r_candidate, tile)
    return best


def _full_csls_argmax(
    queries: torch.Tensor, candidates: torch.Tensor, r_candidate: torch.Tensor, tile: tuple[int, int] | None
) -> torch.Tensor:
    """argmax over every candidate of 2·cos − r_c, one tile of the similarity matrix at a time."""
    tile_rows, tile_cols = _tile_shape(tile, queries.device)
    answers = []
    for row in range(0, len(queries), tile_rows):
        rows = queries[row : row + tile_rows]
        best = torch.full((len(rows),), -torch.inf, device=rows.device)
        best_at = torch.zeros(len(rows), dtype=torch.long, device=rows.device)
        for col in range(0, len(candidates), tile_cols):
            scores = 2 * (rows @ candidates[col : col + tile_cols].T).float() - r_candidate[col : col + tile_cols]
            values, at = scores.max(dim=1)
            better = values > best
            best, best_at = torch.where(better, values, best), torch.where(better, at + col, best_at)
        answers.append(best_at)
    return torch.cat(answers)


def _retrieval(src: Array, tgt: Array, scoring: str, k: int, tile: tuple[int, int] | None, both: bool) -> list[float]:
    if scoring not in SCORINGS:
        raise unknown("scoring", scoring, SCORINGS)
    src, tgt = _pair(src, tgt)
    src_hat, tgt_hat = _unit_rows(src), _unit_rows(tgt)
    n = src.shape[0]
    columns = both or scoring != "cosine"  # margin and CSLS need every target's k-NN too
    neighbours = _neighbours(src_hat, tgt_hat, 1 if scoring == "cosine" else min(k, n), tile, columns)
    truth = torch.arange(n, device=src.device)
    accuracies = []
    for reverse in (False, True) if both else (False,):
        if scoring == "csls":
            queries, candidates = (tgt_hat, src_hat) if reverse else (src_hat, tgt_hat)
            found = _csls_top1(neighbours, queries, candidates, reverse, tile)
        else:
            found = _top1(neighbours, scoring, reverse)
        accuracies.append(float((found == truth).double().mean()))
    return accuracies


def retrieval_accuracy(
    src: Array, tgt: Array, scoring: str = "cosine", k: int = 4, tile: tuple[int, int] | None = None
) -> float:
    """Top-1 accuracy of retrieving tgt row i for src row i, under cosine, margin or CSLS scoring.

    The similarity matrix is computed once, in tiles of bounded memory (``tile`` = (rows,
    columns), default from :data:`TILES`); margin and CSLS take the k-NN of both axes from
    the same tiles. Margin ranks a query's k cosine neighbours (LASER); CSLS ranks every
    candidate (MUSE), with a second pass only for the queries whose answer may lie beyond
    the k neighbours.
    """
    return _retrieval(src, tgt, scoring, k, tile, both=False)[0]


def retrieval_accuracy_both(
    src: Array, tgt: Array, scoring: str = "cosine", k: int = 4, tile: tuple[int, int] | None = None
) -> tuple[float, float]:
    """(src→tgt, tgt→src) top-1 accuracies from one pass over the similarity matrix."""
    forward, backward = _retrieval(src, tgt, scoring, k, tile, both=True)
    return forward, backward


def strong_retrieval_accuracy_both(src: Array, tgt: Array, tile: tuple[int, int] | None = None) -> tuple[float, float]:
    """(src→tgt, tgt→src) top-1 cosine retrieval with same-language distractors (Gaschi et al. 2023, "strong").

    A query is answered correctly when its translation is nearer than every other candidate of
    the other language *and* every other row of its own language: the query's own language
    stays confusable, so aligned languages must be interleaved, not merely mapped.
    """
    src, tgt = _pair(src, tgt)
    src_hat, tgt_hat = _unit_rows(src), _unit_rows(tgt)
    cross = _neighbours(src_hat, tgt_hat, 1, tile, columns=True)
    accuracies = []
    for query, values, indices in (
        (src_hat, cross.src_values, cross.src_indices),
        (tgt_hat, cross.tgt_values, cross.tgt_indices),
    ):
        own = _neighbours(query, query, 2, tile, columns=False)  # the nearest own-language row that is not the query
        not_self = torch.where(
            own.src_indices[:, 0] == torch.arange(len(query), device=query.device),
            own.src_values[:, 1],
            own.src_values[:, 0],
        )
        truth = torch.arange(len(query), device=query.device)
        correct = (indices[:, 0] == truth) & (values[:, 0] > not_self)
        accuracies.append(float(correct.double().mean()))
    return accuracies[0], accuracies[1]


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
        xty, xtx, yty = (
            _debiased(xty, rows_x, rows_y, n),
            _debiased(xtx, rows_x, rows_x, n),
            _debiased(yty, rows_y, rows_y, n),
        )
    return float(xty / (xtx.sqrt() * yty.sqrt()))
