"""A grid of runs on an engine: one after another in this process, or spread over a Ray cluster.

``local`` runs one run at a time here, with every core. ``ray`` makes each run a Ray task
with declared resources (``gpus_per_run`` GPUs on GPU machines, fractions allowed;
``threads_per_run`` CPU threads, which the task also sets as torch's thread count, so that
workers never oversubscribe cores), starting Ray locally or joining a cluster by
``address``. Either way the runs land in the store (:mod:`xltlib.store`), which the
notebooks then read: a run is computed once, whoever asks (locks make a second asker wait).

Pre-trained alignment runs are dispatched first, because every fine-tuned run of their
encoder needs one; the fine-tuned runs of one that failed are reported as failed, naming it,
without being started (each would only recompute it, to fail again).

A run fails in one of two ways, and only one is retried. An exception its code raises
(:class:`~xltlib.errors.XltError` for bad data or a NaN loss, or any other: a bug in a
method, a CUDA error, an unhandled out-of-memory) is deterministic: the same config on the
same data raises it again, so :func:`compute` turns it into a failed :class:`Outcome`
(``"RuntimeError: <first line> (traceback in <run>/log.txt)"``), under either engine, and the
other runs go on. A worker that dies (killed, out of host memory, a lost node) says nothing
about the run: Ray retries it ``retries`` times (``retry_exceptions`` stays off, as raised
exceptions are Outcomes anyway) and it resumes from its checkpoint. ``KeyboardInterrupt`` and
``SystemExit`` are not run failures: they stop the grid. Under ``local``, a CUDA error that
leaves the device unusable fails this process's later runs too, each one recorded (Ray starts
a fresh worker for each GPU task).

A run whose stored files were damaged is set aside and recomputed (:mod:`xltlib.records`); its
:class:`Outcome` lists those repairs, for the batch's summary.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from xltlib.config import PRETRAINED, RunConfig
from xltlib.config.logistics import Logistics
from xltlib.errors import XltError, unknown
from xltlib.records import collecting_repairs

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Engine:
    """Where and how a grid's runs are computed.

    Attributes:
        kind: ``local`` (one run at a time in this process) or ``ray``.
        address: a Ray cluster to join (``ray://host:10001`` or ``host:6379``); ``None``
            starts Ray on this machine. Ray only.
        gpus_per_run: GPUs each run reserves where there are GPUs (fractions let small
            models share one). Ray only.
        threads_per_run: CPU threads each run reserves and uses; ``None``: one per core
            without GPUs, else the cores shared among the runs the GPUs hold at once
            (:func:`default_threads`). Ray only.
        retries: times Ray reruns a run whose worker died (it resumes from its checkpoint).
    """

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    gpus_per_run: float = 1.0
    threads_per_run: int | None = None
    retries: int = 2

    @classmethod
    def from_flags(cls, args) -> Engine:
        """The engine of the command-line flags (:func:`xltlib.config.cli.add_engine_flags`)."""
        return cls(args.engine, args.address, args.gpus_per_run, args.threads_per_run)

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise unknown("engine", self.kind, ENGINES)
        if self.kind == "local" and self.address:
            raise XltError("--address joins a Ray cluster; it needs --engine ray")
        if not 0 < self.gpus_per_run <= 8 or (self.threads_per_run is not None and self.threads_per_run < 1):
            raise XltError(
                f"gpus_per_run must be in (0, 8] and threads_per_run >= 1, got {self.gpus_per_run}, "
                f"{self.threads_per_run}"
            )


@dataclass(frozen=True)
class Outcome:
    """One run's fate: ``ok`` or ``failed`` (with the error, one line), and the repairs of its damaged files (one
    line each)."""

    run_id: str
    status: str
    error: str | None = None
    repaired: tuple[str, ...] = ()


def run_grid(
    configs: Sequence[RunConfig],
    runs_dir: str,
    engine: Engine = Engine(),
    logistics: Logistics = Logistics(),
    recompute_stale: bool = False,
) -> list[Outcome]:
    """Compute every run of ``configs`` not yet in ``runs_dir`` (and their pre-trained runs); report each run's outcome.

    ``recompute_stale`` also recomputes complete runs computed by other code (:func:`xltlib.store.is_stale`).
    """
    unique = {config.run_id(): config for config in configs}
    pretrained = {c.pretrained().run_id(): c.pretrained() for c in unique.values() if c.method != PRETRAINED}
    pretrained |= {run_id: c for run_id, c in unique.items() if c.method == PRETRAINED}
    fine_tuned = [c for c in unique.values() if c.method != PRETRAINED]
    progress = GridProgress(len(pretrained) + len(fine_tuned))
    run = (
        _ray_runner(engine, runs_dir, logistics, recompute_stale)
        if engine.kind == "ray"
        else _local_runner(runs_dir, logistics, recompute_stale)
    )
    outcomes = run(list(pretrained.values()), progress)
    failed = {outcome.run_id: outcome.error for outcome in outcomes if outcome.status != "ok"}
    for config in fine_tuned:
        if config.pretrained().run_id() in failed:
            outcomes.append(_skipped(config, failed))
            progress.done(outcomes[-1])
    outcomes += run([c for c in fine_tuned if c.pretrained().run_id() not in failed], progress)
    progress.close()
    return outcomes


def _skipped(config: RunConfig, failed: dict[str, str | None]) -> Outcome:
    """A fine-tuned run not started: its encoder's pre-trained run failed, and computing it would only retry that."""
    pretrained = config.pretrained().run_id()
    return Outcome(config.run_id(), "failed", f"skipped: its pre-trained run {pretrained} failed: {failed[pretrained]}")


def _local_runner(runs_dir: str, logistics: Logistics, recompute_stale: bool):
    def run(configs: list[RunConfig], progress: GridProgress) -> list[Outcome]:
        outcomes = []
        for config in configs:
            outcomes.append(compute(config.to_dict(), runs_dir, logistics, recompute_stale=recompute_stale))
            progress.done(outcomes[-1])
        return outcomes

    return run


def compute(
    config: dict[str, Any],
    runs_dir: str,
    logistics: Logistics,
    threads: int | None = None,
    recompute_stale: bool = False,
) -> Outcome:
    """One run, from its config's dict (what a Ray task receives); a failure is an Outcome, not an exception."""
    from xltlib.pipeline import ensure_run  # torch: here, so that a bad experiments file fails before it loads

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    run_config = RunConfig.from_dict(config)
    repairs: list[str] = []
    try:
        with collecting_repairs(repairs):
            ensure_run(run_config, runs_dir, logistics, recompute_stale=recompute_stale)
    except XltError as error:  # bad data, a NaN loss: the message says it all
        return Outcome(run_config.run_id(), "failed", f"{type(error).__name__}: {error}", tuple(repairs))
    except Exception as error:  # a bug, a CUDA error: deterministic too, so a failed run, not a retry (module doc)
        where = _log_traceback(Path(runs_dir) / run_config.run_id())
        first_line = next(iter(str(error).splitlines()), "")
        error_line = f"{type(error).__name__}: {first_line} (traceback in {where})"
        return Outcome(run_config.run_id(), "failed", error_line, tuple(repairs))
    return Outcome(run_config.run_id(), "ok", repaired=tuple(repairs))


def _log_traceback(run_dir: Path) -> Path:
    """Log the exception being handled, traceback included, to the console and to the run's own ``log.txt``, after
    the run's lines (a Ray worker's console reaches no one); return that file."""
    from xltlib.pipeline import _log_to  # the run's log, in the format ensure_run writes it

    run_dir.mkdir(parents=True, exist_ok=True)  # the run may have failed before its folder was made
    with _log_to(run_dir / "log.txt"):
        log.exception("run %s failed", run_dir.name)
    return run_dir / "log.txt"


def _ray_runner(engine: Engine, runs_dir: str, logistics: Logistics, recompute_stale: bool):
    ray = _connect(engine)
    resources = _resources(ray, engine)
    # max_retries: a dead worker's run is retried; retry_exceptions off: an exception is deterministic (module doc)
    remote = ray.remote(**resources, max_retries=engine.retries, retry_exceptions=False)(compute)
    threads = int(resources["num_cpus"])
    log.info("Ray: %s; each run takes %s", ray.cluster_resources(), resources)

    def run(configs: list[RunConfig], progress: GridProgress) -> list[Outcome]:
        pending = {
            remote.remote(config.to_dict(), os.path.abspath(runs_dir), logistics, threads, recompute_stale): config
            for config in configs
        }
        outcomes = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            config = pending.pop(ready[0])
            try:
                outcomes.append(ray.get(ready[0]))
            except Exception as error:  # the worker died more often than it is retried, or Ray failed
                outcomes.append(
                    Outcome(config.run_id(), "failed", f"{type(error).__name__}: {str(error).splitlines()[0]}")
                )
            progress.done(outcomes[-1])
        return outcomes

    return run


def connect(engine: Engine) -> None:
    """Start or join Ray now (``ray`` engine), so that a bad address fails before any run is prepared."""
    if engine.kind == "ray":
        _connect(engine)


def _connect(engine: Engine):
    try:
        import ray
    except ImportError:
        raise XltError("--engine ray needs Ray: pip install -r requirements.txt (it pins ray)") from None
    if not ray.is_initialized():
        if engine.address and engine.address != "auto":
            _check_reachable(engine.address)
        try:
            ray.init(
                address=engine.address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
            )
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise XltError(f"cannot join the Ray cluster at {engine.address!r}: {str(error).splitlines()[0]}") from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on an address nothing listens at (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise XltError(f"--address {address!r} must look like host:port (ray://host:port for Ray Client)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise XltError(
            f"cannot reach the Ray cluster at {address} ({error.strerror or error}); start one with "
            "`ray start --head` there, or check the address"
        ) from None


def _resources(ray, engine: Engine) -> dict[str, float]:
    """What one run reserves: GPUs where the cluster has them, and CPU threads."""
    cluster = ray.cluster_resources()
    gpus = engine.gpus_per_run if cluster.get("GPU", 0) else 0
    threads = engine.threads_per_run or default_threads(int(cluster.get("CPU", 1)), int(cluster.get("GPU", 0)), gpus)
    return {"num_cpus": threads, "num_gpus": gpus}


def default_threads(cpus: int, gpus: int, gpus_per_run: float) -> int:
    """CPU threads per run: the cores shared among the runs the GPUs hold at once; one per core without GPUs."""
    if not gpus:
        return 1
    return max(1, int(cpus // max(1, int(gpus / gpus_per_run))))


class GridProgress:
    """One bar for the grid: runs done of total, failures, time left; a log line per run when stderr is not a
    terminal."""

    def __init__(self, total: int):
        self.total, self.finished, self.failed, self.started = total, 0, 0, time.monotonic()
        self.bar = tqdm(total=total, desc="runs", unit="run", disable=not sys.stderr.isatty())

    def done(self, outcome: Outcome) -> None:
        self.finished += 1
        self.failed += outcome.status != "ok"
        self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update()
        if self.bar.disable:
            elapsed = time.monotonic() - self.started
            left = elapsed / self.finished * (self.total - self.finished)
            log.info(
                "runs: %d of %d done, %d failed, ~%.0f min left (%s %s)",
                self.finished,
                self.total,
                self.failed,
                left / 60,
                outcome.run_id,
                outcome.status,
            )
        if outcome.error:
            log.warning("run %s failed: %s", outcome.run_id, outcome.error)

    def close(self) -> None:
        self.bar.close()
        if self.failed:  # the one line to read at the end of a long log
            log.warning("%d of %d runs failed; each one's error is logged above", self.failed, self.finished)
