"""Issue 43, the run store: every stored file of a run is checked when read; a damaged one is set aside (kept), named
in one log line and computed again, never a traceback, and no other result is touched.

One tiny run of each kind is computed per module (a complete run, the same run interrupted mid-training, a first
stage) and copied per test, so the whole fault matrix costs a few seconds of training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

import xltlib.training
from xltlib import integrity, pipeline, runs, store
from xltlib.__main__ import main
from xltlib.config import RunConfig
from xltlib.config.cli import FLAG_ALIASES
from xltlib.config.logistics import Logistics
from xltlib.data.loading import load_train_file
from xltlib.data.tasks import TASKS
from xltlib.grid import run_grid
from xltlib.models import TinyXlmrSpec, build_tiny_xlmr
from xltlib.report import batch

LOGISTICS = Logistics("cpu", checkpoint_every=2)
FAULTS = ("truncated", "empty", "flipped", "missing", "leftover")
RECORDS = ("metrics.parquet", "config.json", "env.json")
ARTIFACTS = (*RECORDS, "checksums.json", "checkpoint.pt", "best.pt", "stage.pt")


@pytest.fixture(scope="module")
def settings(shared_data, tmp_path_factory) -> dict:
    """A pawsx run of 6 steps that keeps its best model on source dev (so it writes best.pt) on a tiny XLM-R."""
    pawsx = shared_data / "pawsx"
    train_file = pawsx / "paws-wiki-en" / "train-source.tsv"
    train = load_train_file(TASKS["pawsx"], train_file, limit=400)
    folder = tmp_path_factory.mktemp("model") / "tiny"
    model = build_tiny_xlmr(folder, list(train.text_a) + list(train.text_b), TinyXlmrSpec(vocab_size=300))
    return dict(
        task="pawsx",
        model=str(model),
        data_dir=str(pawsx / "xtreme"),
        train_file=str(train_file),
        tgt_langs=("de",),
        learning_rate=1e-3,
        epochs=2.0,
        batch_size=16,
        max_seq_length=32,
        max_train_examples=48,
        max_eval_examples=16,
        max_align_sentences=16,
        select_checkpoint="source_dev",
        select_every_steps=2,
    )


@pytest.fixture(scope="module")
def complete(settings, tmp_path_factory):
    """A runs folder holding the run, complete, and its pre-trained run; the run's metrics."""
    runs_dir = tmp_path_factory.mktemp("complete") / "runs"
    return runs_dir, pipeline.ensure_run(RunConfig(**settings), runs_dir, LOGISTICS)


@pytest.fixture(scope="module")
def interrupted(settings, complete, tmp_path_factory):
    """The same runs folder with the run killed at its 5th step: checkpoint.pt (step 4) and best.pt are there."""
    runs_dir = tmp_path_factory.mktemp("interrupted") / "runs"
    shutil.copytree(complete[0], runs_dir)
    shutil.rmtree(runs_dir / RunConfig(**settings).run_id())
    real_step, calls = xltlib.training.accumulate_gradients, []

    def killed_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")
        return real_step(*args)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(xltlib.training, "accumulate_gradients", killed_at_step_5)
        pipeline.ensure_run(RunConfig(**settings), runs_dir, LOGISTICS)
    return runs_dir


@pytest.fixture(scope="module")
def staged(settings, shared_data, tmp_path_factory):
    """An XCOPA run with a SocialIQa first stage: a runs folder holding the stage and the pre-trained run, not the
    run; the run's config and metrics."""
    xcopa = shared_data / "xcopa"
    stage = str(xcopa / "siqa" / "socialIQa_v1.4_dev.jsonl")
    config = RunConfig(
        **{**settings, "task": "xcopa", "data_dir": str(xcopa), "train_file": None, "tgt_langs": ("zh",)},
        first_stage_file=stage,
    )
    runs_dir = tmp_path_factory.mktemp("staged") / "runs"
    metrics = pipeline.ensure_run(config, runs_dir, LOGISTICS)
    shutil.rmtree(runs_dir / config.run_id())
    return runs_dir, config, metrics


def inject(path: Path, fault: str) -> bytes | None:
    """Damage ``path`` by ``fault``; the bytes it then holds (None: gone, or left whole beside a leftover)."""
    data = path.read_bytes()
    damaged = {
        "truncated": data[: min(300, len(data) // 2)],
        "empty": b"",
        "flipped": data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1 :],
    }.get(fault)
    if fault == "missing":
        path.unlink()
    elif fault == "leftover":  # atomic_write's temporary name, as a killed write leaves it
        leftover(path).write_bytes(data[: len(data) // 3])
    else:
        path.write_bytes(damaged)
    return damaged


def leftover(path: Path) -> Path:
    return path.with_name(f".{path.stem}.4242.tmp{path.suffix}")


def snapshot(folder: Path, *leave_out: Path) -> dict[str, str]:
    """Every file's sha256 under ``folder`` except under ``leave_out``: what must not change."""
    files = [p for p in folder.rglob("*") if p.is_file() and not set(leave_out) & set(p.parents)]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def expected(artifact: str, fault: str) -> str:
    if fault == "leftover":
        return "kept"  # the temporary file is deleted; the run is read, or resumes
    return "adopted" if artifact == "checksums.json" else "recomputed"


def the_store(artifact, settings, complete, interrupted, staged, tmp_path):
    """A copy of the runs folder the artifact lives in; the run to read, the artifact's path and the good metrics."""
    runs_dir = tmp_path / "runs"
    if artifact == "stage.pt":
        shutil.copytree(staged[0], runs_dir)
        (stage,) = (runs_dir / pipeline.FIRST_STAGES).iterdir()
        return runs_dir, staged[1], stage / artifact, staged[2]
    config = RunConfig(**settings)
    shutil.copytree(interrupted if artifact in ("checkpoint.pt", "best.pt") else complete[0], runs_dir)
    return runs_dir, config, runs_dir / config.run_id() / artifact, complete[1]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_a_damaged_file_is_set_aside_named_once_and_recomputed(
    artifact, fault, settings, complete, interrupted, staged, tmp_path, caplog
):
    runs_dir, config, target, good = the_store(artifact, settings, complete, interrupted, staged, tmp_path)
    others = snapshot(runs_dir, target.parent, runs_dir / config.run_id())
    damaged = inject(target, fault)
    with caplog.at_level(logging.INFO, logger="xltlib"):
        result = pipeline.ensure_run(config, runs_dir, LOGISTICS)  # no exception: never a traceback
    pd.testing.assert_frame_equal(result, good)  # same seed, same machine: the same numbers
    named = str(leftover(target) if fault == "leftover" else target)
    lines = [record.getMessage() for record in caplog.records if named in record.getMessage()]
    computed = f"run {config.run_id()} complete" in caplog.text
    outcome = expected(artifact, fault)
    if outcome == "adopted" and fault == "missing":  # nothing to name but the sidecar's absence
        lines = [line for line in caplog.messages if "adopted" in line and store.METRICS_FILE in line]
    assert len(lines) == 1, caplog.messages
    assert computed == (outcome == "recomputed" or artifact in ("checkpoint.pt", "best.pt", "stage.pt")), outcome
    resumed = "resuming from checkpoint" in caplog.text
    assert resumed == (outcome == "kept" and artifact in ("checkpoint.pt", "best.pt"))
    if outcome == "kept":
        assert not leftover(target).exists() and "deleted" in lines[0]
    elif outcome == "recomputed" and artifact != "stage.pt":
        assert "recomputing run" in lines[0] or "training restarts from scratch" in lines[0]
    if artifact == "stage.pt":
        assert ("first stage computed into" in caplog.text) == (outcome == "recomputed")
    kept = [path.read_bytes() for path in target.parent.glob(f"{target.name}.damaged-*")]
    assert kept == ([damaged] if damaged is not None else []), "the damaged file is kept, renamed, beside it"
    assert snapshot(runs_dir, target.parent, runs_dir / config.run_id()) == others, "another run's files changed"
    assert not [f for f in runs.verify(runs_dir, full=True) if f.kind in runs.PROBLEMS + ("leftover",)]


def test_a_legacy_run_without_checksums_is_adopted_not_recomputed(settings, complete, tmp_path, monkeypatch, caplog):
    runs_dir = tmp_path / "runs"
    shutil.copytree(complete[0], runs_dir)
    for sidecar in runs_dir.glob(f"*/{integrity.SIDECAR}"):
        sidecar.unlink()
    for compute in ("_train_and_evaluate", "_pretrained_alignment"):
        monkeypatch.setattr(pipeline, compute, lambda *a: pytest.fail("a sound legacy run was recomputed"))
    config = RunConfig(**settings)
    with caplog.at_level(logging.INFO, logger="xltlib"):
        pd.testing.assert_frame_equal(pipeline.ensure_run(config, runs_dir, LOGISTICS), complete[1])
        pipeline.ensure_run(config.pretrained(), runs_dir, LOGISTICS)
    assert caplog.text.count("adopted") == 2
    assert all(integrity.read_sidecar(folder) for folder in runs_dir.iterdir())


def test_a_legacy_run_whose_metrics_do_not_read_is_damage(settings, complete, tmp_path, caplog):
    runs_dir = tmp_path / "runs"
    shutil.copytree(complete[0], runs_dir)
    run_dir = runs_dir / RunConfig(**settings).run_id()
    (run_dir / integrity.SIDECAR).unlink()
    inject(run_dir / store.METRICS_FILE, "truncated")
    with caplog.at_level(logging.INFO, logger="xltlib"):
        pd.testing.assert_frame_equal(pipeline.ensure_run(RunConfig(**settings), runs_dir, LOGISTICS), complete[1])
    assert "metrics.parquet: unreadable (Could not open Parquet" in caplog.text and "no checksum" in caplog.text


def test_load_results_skips_a_damaged_record_with_a_warning(settings, complete, tmp_path, caplog):
    runs_dir = tmp_path / "runs"
    shutil.copytree(complete[0], runs_dir)
    config = RunConfig(**settings)
    inject(runs_dir / config.run_id() / store.METRICS_FILE, "flipped")
    with caplog.at_level(logging.WARNING, logger="xltlib"):
        results = store.load_results(runs_dir)
    assert set(results.run_id) == {config.pretrained().run_id()}
    assert f"{config.run_id()}/metrics.parquet: changed since it was written" in caplog.text


def test_a_damaged_run_in_a_batch_is_recomputed_and_the_summary_says_so(settings, complete, tmp_path, capsys):
    root, config = tmp_path, RunConfig(**settings)
    shutil.copytree(complete[0], root / "runs")
    inject(root / "runs" / config.run_id() / store.METRICS_FILE, "truncated")

    def grid(configs, runs_dir):
        return run_grid([config], runs_dir, logistics=LOGISTICS)

    batch._compute_runs(root, [], [], None, True, "runs", "cache", grid)
    repaired = json.loads((root / batch.STUDY_RUNS).read_text())["repaired"]
    assert (
        list(repaired) == [config.run_id()] and "metrics.parquet: cut short: 300 of the" in repaired[config.run_id()][0]
    )
    chapter_reads = store.load_results(root / "runs", [config.run_id()])  # what the chapter then reads
    pd.testing.assert_frame_equal(chapter_reads, complete[1])
    runs.print_repairs(root / batch.STUDY_RUNS)
    assert f"repaired {config.run_id()}: " in capsys.readouterr().out


def test_runs_verify_names_a_truncated_and_a_stale_record_and_repair_sets_them_aside(
    settings, complete, tmp_path, capsys
):
    runs_dir, config = tmp_path / "runs", RunConfig(**settings)
    shutil.copytree(complete[0], runs_dir)
    inject(runs_dir / config.run_id() / store.METRICS_FILE, "truncated")
    pretrained = runs_dir / config.pretrained().run_id()  # computed by other code: stale, though sound
    stale = pd.read_parquet(pretrained / store.METRICS_FILE).assign(code_version="0123456789ab")
    store.atomic_write_parquet(pretrained / store.METRICS_FILE, stale)
    integrity.record(pretrained, [store.METRICS_FILE])

    assert main(["runs", "verify", str(runs_dir)]) == 1
    out = capsys.readouterr().out
    assert f"damaged   {runs_dir / config.run_id() / store.METRICS_FILE}: cut short: 300 of the" in out
    assert f"stale     {pretrained}: computed by other code than this checkout's (code version 0123456789ab)" in out
    assert "1 damaged, 1 stale" in out and "--repair" in out

    assert main(["runs", "verify", str(runs_dir), "--repair"]) == 0
    assert (pretrained / "metrics.0123456789ab.parquet").exists()
    assert len(list((runs_dir / config.run_id()).glob("metrics.parquet.damaged-*"))) == 1
    assert main(["runs", "verify", str(runs_dir)]) == 0
    pd.testing.assert_frame_equal(pipeline.ensure_run(config, runs_dir, LOGISTICS), complete[1])  # recomputed
    assert store.is_complete(pretrained) and not store.is_stale(pretrained)


def test_the_issue_s_first_row_end_to_end_through_the_run_command(settings, complete, tmp_path, capsys, caplog):
    """A finished run's metrics.parquet cut to 300 bytes, then `python -m xltlib run` for that run: the damage named,
    the file set aside, the run recomputed (was: "reading cached results", then a pyarrow traceback)."""
    runs_dir, config = tmp_path / "runs", RunConfig(**settings)
    shutil.copytree(complete[0], runs_dir)
    metrics = runs_dir / config.run_id() / store.METRICS_FILE
    metrics.write_bytes(metrics.read_bytes()[:300])
    flags = [
        item
        for field, value in settings.items()
        for item in (
            FLAG_ALIASES.get(field, "--" + field.replace("_", "-")),
            ",".join(value) if field == "tgt_langs" else str(value),
        )
    ]
    argv = ["run", *flags, "--out", str(runs_dir), "--device", "cpu", "--checkpoint-every", "2"]
    with caplog.at_level(logging.INFO, logger="xltlib"):
        assert main(argv) == 0
    assert f"run {config.run_id()} is complete: reading cached results" not in caplog.text
    (line,) = [message for message in caplog.messages if str(metrics) in message]
    assert "cut short: 300 of the" in line and "set aside as" in line and f"recomputing run {config.run_id()}" in line
    captured = capsys.readouterr()
    assert f"run {config.run_id()} → {runs_dir / config.run_id()}" in captured.out and "Traceback" not in captured.err
    pd.testing.assert_frame_equal(pd.read_parquet(metrics), complete[1])
    (kept,) = metrics.parent.glob("metrics.parquet.damaged-*")
    assert kept.stat().st_size == 300
