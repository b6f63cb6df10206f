"""Timing helpers shared by the benchmark scripts (run them as `python benchmarks/NAME.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def wall_times(fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1) -> list[float]:
    """Wall times of ``repeats`` calls after ``warmup`` calls, each waiting for the device."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def best_time(fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1) -> float:
    """Best wall time of ``repeats`` calls after ``warmup`` calls (best-of filters noise)."""
    return min(wall_times(fn, device, repeats, warmup))


def paired_best_times(
    first: Callable[[], object], second: Callable[[], object], device: torch.device, repeats: int = 5
) -> tuple[float, float]:
    """Best wall times of two functions timed in alternation, so both see the same machine load."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((first, times[0]), (second, times[1])):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            bucket.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def matmul_rate(device: torch.device, dtype: torch.dtype | None = None) -> float:
    """Measured dense matmul FLOP/s on this device (bf16 on CUDA, fp32 on CPU by default), best BLAS available."""
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    n = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    seconds = best_time(lambda: a @ b, device, repeats=5, warmup=2)
    if device.type == "cpu" and dtype == torch.float32:  # the floor is the faster of torch's and numpy's BLAS
        a_np, b_np = a.numpy(), b.numpy()
        seconds = min(seconds, best_time(lambda: a_np @ b_np, device, repeats=5, warmup=2))
    return 2 * n**3 / seconds
