"""Alignment kernels: ours vs faiss / numpy / the Gram-matrix CKA, and vs the FLOP floor.

    python benchmarks/align_kernels.py                       # CPU: N = 1k, 10k, 30k, d = 768
    python benchmarks/align_kernels.py --device cuda --dtype bfloat16 --sizes 100000,1000000 --no-reference

Every ratio is measured in one run on the same inputs (ours and the reference timed in
alternation, best of 5; our kernels alone best of 3):
- retrieval, cosine: ours (one blocked pass) ÷ faiss ``IndexFlatIP`` exact k-NN search
  (k=1, as the XTREME/LASER scripts do) and ÷ numpy (full N×N matrix, argmax);
- retrieval, margin (k=4): ours (one pass, k-NN of both axes) ÷ faiss (two k=4 searches,
  x→y and y→x, then LASER's candidate rescoring), and ours margin ÷ ours cosine;
- CKA: ours (feature space, 6·N·d² FLOPs) ÷ the Gram-matrix form (N×N Gram matrices);
- time ÷ floor, floor = FLOPs ÷ the matmul rate measured here (2·N²·d for retrieval).
faiss is a benchmark-only dependency: ``pip install -r benchmarks/requirements.txt``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import best_time, matmul_rate, paired_best_times

from xltlib.evaluation import kernels


def faiss_knn(x: np.ndarray, y: np.ndarray, k: int):
    import faiss

    index = faiss.IndexFlatIP(y.shape[1])
    index.add(y)
    return index.search(x, k)


def faiss_cosine(x: np.ndarray, y: np.ndarray) -> float:
    _, indices = faiss_knn(x, y, 1)
    return float((indices[:, 0] == np.arange(len(x))).mean())


def faiss_margin(x: np.ndarray, y: np.ndarray, k: int = 4) -> float:
    """LASER's margin mining: k-NN both ways, rescore x's k candidates by ratio margin."""
    x2y_sim, x2y_ind = faiss_knn(x, y, k)
    y2x_sim, _ = faiss_knn(y, x, k)
    r_x, r_y = x2y_sim.mean(axis=1), y2x_sim.mean(axis=1)
    scores = x2y_sim / ((r_x[:, None] + r_y[x2y_ind]) / 2)
    best = x2y_ind[np.arange(len(x)), scores.argmax(axis=1)]
    return float((best == np.arange(len(x))).mean())


def numpy_cosine(x: np.ndarray, y: np.ndarray) -> float:
    return float(((x @ y.T).argmax(axis=1) == np.arange(len(x))).mean())


def gram_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al.'s Gram-matrix form: centre N×N Gram matrices, then HSIC."""
    n = x.shape[0]
    h = torch.eye(n, device=x.device, dtype=x.dtype) - 1.0 / n
    kx, ky = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return float((kx * ky).sum() / (kx.norm() * ky.norm()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,30000")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--no-reference", action="store_true", help="skip faiss / numpy / Gram-matrix references")
    parser.add_argument("--gram-max", type=int, default=10000, help="largest N for the Gram-matrix CKA")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    rate = matmul_rate(device, dtype)
    print(
        f"device={device} dtype={args.dtype} d={args.dim} threads={torch.get_num_threads()} "
        f"matmul rate={rate / 1e12:.3f} TFLOP/s"
    )
    header = "N | kernel | ours s | reference | ref s | ours÷ref | ours÷floor | accuracy/value"
    print(header + "\n" + "-" * len(header))
    rng = np.random.default_rng(0)
    for n in (int(size) for size in args.sizes.split(",")):
        x32 = rng.standard_normal((n, args.dim), dtype=np.float32)
        y32 = x32 + 1.5 * rng.standard_normal((n, args.dim), dtype=np.float32)
        x, y = (torch.from_numpy(a).to(device=device, dtype=dtype) for a in (x32, y32))
        x_hat, y_hat = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (x32, y32))
        retrieval_floor = 2 * n * n * args.dim / rate

        def row(kernel, ours_fn, ref_name=None, ref_fn=None, floor=None):
            if ref_fn is not None and not args.no_reference:
                ours_t, ref_t = paired_best_times(ours_fn, ref_fn, device)
            else:
                ours_t, ref_t = best_time(ours_fn, device), None
            value = ours_fn()
            cells = [
                f"{n:,}",
                kernel,
                f"{ours_t:.3f}",
                ref_name if ref_t else "-",
                f"{ref_t:.3f}" if ref_t else "-",
                f"{ours_t / ref_t:.2f}" if ref_t else "-",
                f"{ours_t / floor:.2f}" if floor else "-",
                f"{value:.4f}",
            ]
            print(" | ".join(cells))
            return ours_t

        cosine_t = row(
            "retrieval cosine",
            lambda: kernels.retrieval_accuracy(x, y, "cosine"),
            "faiss IndexFlatIP k=1",
            lambda: faiss_cosine(x_hat, y_hat),
            retrieval_floor,
        )
        if n <= 30000 and not args.no_reference:
            row(
                "retrieval cosine",
                lambda: kernels.retrieval_accuracy(x, y, "cosine"),
                "numpy full matrix",
                lambda: numpy_cosine(x_hat, y_hat),
                retrieval_floor,
            )
        margin_t = row(
            "retrieval margin",
            lambda: kernels.retrieval_accuracy(x, y, "margin"),
            "faiss 2×k=4 + rescoring",
            lambda: faiss_margin(x_hat, y_hat),
            retrieval_floor,
        )
        print(f"{n:,} | margin ÷ cosine (ours) = {margin_t / cosine_t:.2f}")
        gram = (lambda: gram_cka(x.float(), y.float())) if n <= args.gram_max else None
        row("linear CKA", lambda: kernels.linear_cka(x, y), "Gram-matrix CKA", gram, 6 * n * args.dim**2 / rate)
        row("debiased CKA", lambda: kernels.linear_cka(x, y, debiased=True), floor=6 * n * args.dim**2 / rate)
        row("cosine gap", lambda: kernels.cosine_gap(x, y))


if __name__ == "__main__":
    main()
