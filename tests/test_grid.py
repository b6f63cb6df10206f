"""The grid on its engines: Ray computes the same runs as one process does, survives a killed worker, fails fast on a
bad address; a run that raises is one failed run, under either engine."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from xltlib import pipeline
from xltlib.config.logistics import Logistics
from xltlib.errors import XltError
from xltlib.grid import Engine, Outcome, run_grid
from xltlib.report import batch
from xltlib.report.experiment import experiment_configs
from xltlib.store import load_results

REPO = Path(__file__).resolve().parent.parent


def test_engine_settings_are_checked_before_anything_runs():
    with pytest.raises(XltError, match="did you mean 'ray'"):
        Engine("rey")
    with pytest.raises(XltError, match="needs --engine ray"):
        Engine("local", address="10.0.0.1:6379")
    with pytest.raises(XltError, match="gpus_per_run"):
        Engine("ray", gpus_per_run=0)


def test_a_bad_address_fails_in_one_line_within_10_s(tmp_path):
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "xltlib", "study", "--quick", "--engine", "ray", "--address", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 2 and time.monotonic() - start < 10
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot reach the Ray cluster at 127.0.0.1:1")


@pytest.fixture(scope="module")
def quick_grid(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return experiment_configs("syn-paws", ["standard", "pgd"], [1], cache_dir=str(cache), quick=True, device="cpu")


@pytest.fixture(scope="module")
def local_metrics(quick_grid, tmp_path_factory):
    """The grid computed in this process, with one thread as each Ray worker has, so the numbers can be equal."""
    runs = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert all(
            outcome.status == "ok" for outcome in run_grid(quick_grid, str(runs), Engine("local"), Logistics("cpu"))
        )
    finally:
        torch.set_num_threads(threads)
    return metrics(runs)


def metrics(runs: Path) -> pd.Series:
    table = load_results(runs)
    return table.set_index(["run_id", "tgt_lang", "layer", "pooling", "corpus", "metric"])["value"].sort_index()


@pytest.fixture
def two_node_cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_a_simulated_two_node_cluster_computes_the_same_runs_in_several_workers(
    quick_grid, local_metrics, two_node_cluster, tmp_path
):
    outcomes = run_grid(quick_grid, str(tmp_path), Engine("ray", address=two_node_cluster.address), Logistics("cpu"))
    assert [outcome.status for outcome in outcomes] == ["ok"] * 3  # the pre-trained run, then standard and pgd
    pd.testing.assert_series_equal(metrics(tmp_path), local_metrics)
    pids = {json.loads(path.read_text())["pid"] for path in tmp_path.glob("*/env.json")}
    assert len(pids) > 1 and os.getpid() not in pids


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_to_the_same_metrics(quick_grid, local_metrics, two_node_cluster, tmp_path):
    killed = []

    def kill_the_first_worker_that_holds_a_run():
        while not killed:
            for lock in tmp_path.glob("*/.lock"):
                holder = lock.read_text().split()
                if "pid" in holder:
                    os.kill(int(holder[holder.index("pid") + 1]), signal.SIGKILL)
                    killed.append(lock.parent.name)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_first_worker_that_holds_a_run, daemon=True)
    killer.start()
    outcomes = run_grid(quick_grid, str(tmp_path), Engine("ray", address=two_node_cluster.address), Logistics("cpu"))
    assert killed and all(outcome.status == "ok" for outcome in outcomes)
    pd.testing.assert_series_equal(metrics(tmp_path), local_metrics)


@pytest.mark.slow
def test_two_processes_sharing_a_pretrained_run_and_an_encoder_build_both_complete(tmp_path):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "xltlib",
        "run",
        "--task",
        "syn-paws",
        "--quick",
        "--out",
        str(tmp_path / "runs"),
        "--cache",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
    ]
    processes = [
        subprocess.Popen([*command, "--seed", seed], env=environment, cwd=REPO, stderr=subprocess.PIPE, text=True)
        for seed in ("1", "2")
    ]
    errors = [process.communicate()[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    assert len(list((tmp_path / "runs").glob("syn-paws-pretrained-*"))) == 1
    assert len(list((tmp_path / "cache" / "synthetic").glob("encoder-*/config.json"))) == 1


CUDA_ERROR = "CUDA error: an illegal memory access was encountered"


def failing_for_pgd(real_fit):
    """``fit`` that raises a RuntimeError on ``pgd`` runs (a bug in a method, a CUDA error), once the run has logged
    its first lines."""

    def fit(model, tokenizer, train, config, *args, **kwargs):
        if config.method == "pgd":
            raise RuntimeError(f"{CUDA_ERROR}\nCUDA kernel errors might be asynchronously reported")
        return real_fit(model, tokenizer, train, config, *args, **kwargs)

    return fit


def assert_only_pgd_failed(outcomes: list[Outcome], grid, runs: Path) -> None:
    pgd = next(config.run_id() for config in grid if config.method == "pgd")
    by_run = {outcome.run_id: outcome for outcome in outcomes}
    failed = by_run.pop(pgd)
    assert failed == Outcome(pgd, "failed", f"RuntimeError: {CUDA_ERROR} (traceback in {runs / pgd / 'log.txt'})")
    log_text = (runs / pgd / "log.txt").read_text()
    assert f"run {pgd} failed\nTraceback" in log_text and "in fit" in log_text  # after the run's own lines
    assert log_text.count("Traceback") == 1  # raised once: not retried
    assert [outcome.status for outcome in by_run.values()] == ["ok", "ok"]  # the pre-trained run and standard
    assert set(load_results(runs).run_id) == set(by_run)


def test_a_run_that_raises_is_one_failed_run_and_the_others_are_stored(quick_grid, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "fit", failing_for_pgd(pipeline.fit))
    outcomes = run_grid(quick_grid, str(tmp_path), Engine("local"), Logistics("cpu"))
    assert_only_pgd_failed(outcomes, quick_grid, tmp_path)


def test_a_failed_pretrained_run_fails_its_fine_tuned_runs_once(quick_grid, tmp_path, monkeypatch):
    calls = []

    def broken(*args):
        calls.append(args)
        raise ValueError("the encoder's weights are NaN")

    monkeypatch.setattr(pipeline, "_pretrained_alignment", broken)
    outcomes = run_grid(quick_grid, str(tmp_path), Engine("local"), Logistics("cpu"))
    pretrained = quick_grid[0].pretrained().run_id()
    error = f"ValueError: the encoder's weights are NaN (traceback in {tmp_path / pretrained / 'log.txt'})"
    assert outcomes == [Outcome(pretrained, "failed", error)] + [
        Outcome(config.run_id(), "failed", f"skipped: its pre-trained run {pretrained} failed: {error}")
        for config in quick_grid
    ]
    assert len(calls) == 1  # not recomputed by each fine-tuned run


def test_an_interrupt_stops_the_grid(quick_grid, tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_pretrained_alignment", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_grid(quick_grid, str(tmp_path), Engine("local"), Logistics("cpu"))


def test_the_batch_records_the_runs_that_failed(tmp_path, monkeypatch):
    outcomes = [Outcome("a", "ok"), Outcome("b", "failed", "RuntimeError: boom (traceback in runs/b/log.txt)")]
    paws = batch.Experiment("paws", "PAWS", {"task": "syn-paws", "methods": ["standard"], "seeds": [1]})

    def grid(configs, runs_dir):  # the grid's outcomes, without computing
        return outcomes

    batch._compute_runs(tmp_path, [paws], [paws], None, True, "runs", str(tmp_path / "cache"), grid)
    recorded = json.loads((tmp_path / batch.STUDY_RUNS).read_text())
    assert recorded["failed"] == {"b": "RuntimeError: boom (traceback in runs/b/log.txt)"}


def test_a_run_that_raises_in_a_ray_worker_is_one_failed_run_not_retried(quick_grid, tmp_path):
    ray = pytest.importorskip("ray")

    def in_each_worker():
        import xltlib.pipeline

        xltlib.pipeline.fit = failing_for_pgd(xltlib.pipeline.fit)

    this_module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(this_module)  # the workers cannot import this test module
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"worker_process_setup_hook": in_each_worker})
    try:
        outcomes = run_grid(quick_grid, str(tmp_path), Engine("ray"), Logistics("cpu"))
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(this_module)
    assert_only_pgd_failed(outcomes, quick_grid, tmp_path)
