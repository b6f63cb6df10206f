"""End-to-end runs on real data with a tiny local XLM-R: train, evaluate, cache, resume."""

import dataclasses
import logging
import shutil
import threading
import time

import pandas as pd
import pytest
import torch

import xltlib.training
from xltlib import pipeline, store
from xltlib.config import RunConfig
from xltlib.config.logistics import Logistics
from xltlib.data import loading
from xltlib.data.loading import load_train_file
from xltlib.data.tasks import TASKS
from xltlib.errors import XltError
from xltlib.evaluation import alignment
from xltlib.evaluation.surgery import DOSES, SURGERY_METRICS
from xltlib.methods.base import Standard
from xltlib.models import TinyXlmrSpec, build_tiny_xlmr
from xltlib.report import experiment


@pytest.fixture(scope="module")
def pawsx(shared_data):
    root = shared_data / "pawsx"
    return root / "xtreme", root / "paws-wiki-en" / "train-source.tsv"


@pytest.fixture(scope="module")
def tiny_model(pawsx, tmp_path_factory):
    train = load_train_file(TASKS["pawsx"], pawsx[1], limit=2000)
    corpus = list(train["text_a"]) + list(train["text_b"])
    return build_tiny_xlmr(tmp_path_factory.mktemp("model") / "tiny", corpus, TinyXlmrSpec(vocab_size=1000))


@pytest.fixture
def config(pawsx, tiny_model):
    return RunConfig(
        task="pawsx",
        model=str(tiny_model),
        learning_rate=1e-3,
        epochs=1.0,
        batch_size=16,
        max_seq_length=64,
        data_dir=str(pawsx[0]),
        train_file=str(pawsx[1]),
        max_train_examples=192,
        max_eval_examples=40,
        max_align_sentences=48,
    )


def test_run_trains_evaluates_every_language_and_writes_tidy_results(config, tmp_path):
    results = pipeline.ensure_run(config, tmp_path, Logistics("cpu", checkpoint_every=4))
    run_dir = tmp_path / config.run_id()
    assert list(results.columns) == store.RESULT_COLUMNS
    accuracy = results[results["metric"] == "accuracy"]
    assert sorted(accuracy["tgt_lang"]) == sorted(TASKS["pawsx"].languages)
    assert accuracy["layer"].isna().all() and accuracy["pooling"].isna().all()
    assert results["value"].between(-1, 1).all() and accuracy["value"].between(0, 1).all()
    assert (results["run_id"] == config.run_id()).all()
    assert {"config.json", "env.json", "log.txt", "metrics.parquet"} <= {p.name for p in run_dir.iterdir()}
    assert not (run_dir / "checkpoint.pt").exists()
    assert RunConfig.from_dict(pd.read_json(run_dir / "config.json", typ="series").to_dict()) == config
    stored = store.load_results(tmp_path)
    pd.testing.assert_frame_equal(stored[stored["run_id"] == config.run_id()].reset_index(drop=True), results)


def assert_alignment_rows(rows, config, layers):
    """Every metric at every layer (0 = embeddings … L) for every target except the source, and at the last layer's
    ``<s>`` (``pooling="cls"``); the causal arm's rows are checked by tests/test_surgery.py."""
    rows = rows[~rows["metric"].isin(SURGERY_METRICS)]
    targets = sorted(set(config.tgt_langs) - {config.src_lang})
    pooled, cls = rows[rows["pooling"] == config.align_pooling], rows[rows["pooling"] == "cls"]
    assert len(pooled) == len(targets) * layers * len(alignment.METRICS) and len(pooled) + len(cls) == len(rows)
    assert len(cls) == len(targets) * len(alignment.METRICS) and set(cls["layer"]) == {layers - 1}
    assert sorted(rows["tgt_lang"].unique()) == targets
    assert set(pooled["layer"]) == set(range(layers))
    assert set(rows["metric"]) == set(alignment.METRICS)
    assert rows["value"].notna().all()


def test_run_measures_alignment_after_fine_tuning_and_before_once(config, tmp_path, monkeypatch):
    results = pipeline.ensure_run(config, tmp_path, Logistics("cpu"))
    layers = TinyXlmrSpec().num_layers + 1
    assert_alignment_rows(results[results["metric"] != "accuracy"], config, layers)
    surgery = results[results["metric"].isin(SURGERY_METRICS)]  # a standard run on parallel test sets: the causal arm
    assert len(surgery) == len(set(config.tgt_langs) - {config.src_lang}) * len(DOSES) * len(SURGERY_METRICS)

    pretrained = pd.read_parquet(tmp_path / config.pretrained().run_id() / store.METRICS_FILE)
    assert (pretrained["method"] == "pretrained").all() and (pretrained["seed"] == 0).all()
    assert_alignment_rows(pretrained, config, layers)
    # Fine-tuning moved the encoder: some alignment number differs from the starting point.
    merged = results.merge(pretrained, on=["tgt_lang", "layer", "pooling", "metric"], suffixes=("", "_before"))
    assert (merged["value"] != merged["value_before"]).any()

    def refuse(*args, **kwargs):
        raise AssertionError("the pre-trained encoder's alignment was measured twice")

    monkeypatch.setattr(pipeline, "_pretrained_alignment", refuse)
    pipeline.ensure_run(dataclasses.replace(config, seed=2), tmp_path, Logistics("cpu"))
    assert set(store.load_results(tmp_path)["method"]) == {"standard", "pretrained"}


def test_complete_run_is_never_recomputed(config, tmp_path, monkeypatch):
    first = pipeline.ensure_run(config, tmp_path, Logistics("cpu"))

    def refuse(*args, **kwargs):
        raise AssertionError("a complete run was recomputed")

    monkeypatch.setattr(pipeline, "_train_and_evaluate", refuse)
    pd.testing.assert_frame_equal(pipeline.ensure_run(config, tmp_path, Logistics("cpu")), first)


def test_same_seed_same_numbers(config, tmp_path):
    first = pipeline.ensure_run(config, tmp_path / "a", Logistics("cpu"))
    second = pipeline.ensure_run(config, tmp_path / "b", Logistics("cpu"))
    pd.testing.assert_frame_equal(first, second)


def test_interrupted_run_resumes_to_the_same_metrics(config, tmp_path, monkeypatch, caplog):
    uninterrupted = pipeline.ensure_run(config, tmp_path / "whole", Logistics("cpu", checkpoint_every=4))

    real_step = xltlib.training.accumulate_gradients

    calls = {"n": 0}

    def crash_at_step_7(*args):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt("simulated kill")
        return real_step(*args)

    monkeypatch.setattr(xltlib.training, "accumulate_gradients", crash_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        pipeline.ensure_run(config, tmp_path / "split", Logistics("cpu", checkpoint_every=4))
    run_dir = tmp_path / "split" / config.run_id()
    assert (run_dir / "checkpoint.pt").exists() and not store.is_complete(run_dir)

    monkeypatch.setattr(xltlib.training, "accumulate_gradients", real_step)
    with caplog.at_level(logging.INFO, logger="xltlib"):
        resumed = pipeline.ensure_run(config, tmp_path / "split", Logistics("cpu", checkpoint_every=4))
    assert "resuming from checkpoint" in caplog.text and "at step 4/" in caplog.text
    pd.testing.assert_frame_equal(resumed, uninterrupted)


def test_run_failing_after_training_resumes_without_retraining(config, tmp_path, monkeypatch):
    uninterrupted = pipeline.ensure_run(config, tmp_path / "whole", Logistics("cpu"))
    real_alignment = pipeline._alignment

    def crash_after_training(run_config, *args):
        if run_config.method == "pretrained":
            return real_alignment(run_config, *args)
        raise RuntimeError("alignment crashed")

    monkeypatch.setattr(pipeline, "_alignment", crash_after_training)
    with pytest.raises(RuntimeError, match="alignment crashed"):
        pipeline.ensure_run(config, tmp_path / "crashed", Logistics("cpu"))
    assert (tmp_path / "crashed" / config.run_id() / "checkpoint.pt").exists()

    def refuse(*args, **kwargs):
        raise AssertionError("training ran again")

    monkeypatch.setattr(pipeline, "_alignment", real_alignment)
    monkeypatch.setattr(xltlib.training, "accumulate_gradients", refuse)
    resumed = pipeline.ensure_run(config, tmp_path / "crashed", Logistics("cpu"))
    pd.testing.assert_frame_equal(resumed, uninterrupted)


def test_a_second_writer_waits_for_the_first_and_reads_its_run(config, tmp_path, monkeypatch, caplog):
    whole = pipeline.ensure_run(config, tmp_path / "whole", Logistics("cpu"))
    shutil.copytree(tmp_path / "whole", tmp_path / "shared")
    run_dir = tmp_path / "shared" / config.run_id()
    (run_dir / store.METRICS_FILE).rename(tmp_path / "finished.parquet")
    holding = threading.Event()

    def first_writer():  # holds the run while "computing" it, then finishes it
        with store.run_lock(run_dir):
            holding.set()
            time.sleep(1.5)
            (tmp_path / "finished.parquet").rename(run_dir / store.METRICS_FILE)

    writer = threading.Thread(target=first_writer)
    writer.start()
    holding.wait()
    monkeypatch.setattr(pipeline, "_train_and_evaluate", lambda *a: pytest.fail("the second writer computed the run"))
    with caplog.at_level(logging.INFO, logger="xltlib"):
        second = pipeline.ensure_run(config, tmp_path / "shared", Logistics("cpu"))
    writer.join()
    assert "waiting for it" in caplog.text
    pd.testing.assert_frame_equal(second, whole)


def test_a_lock_wait_has_a_timeout_that_names_the_holder(config, tmp_path):
    pretrained = config.pretrained()
    with store.run_lock(tmp_path / pretrained.run_id()):
        started = time.monotonic()
        with pytest.raises(XltError, match=r"waited 0.5 s for .* pid \d+"):
            pipeline.ensure_run(pretrained, tmp_path, Logistics("cpu"), lock_timeout=0.5)
    assert time.monotonic() - started < 5


def test_nan_loss_stops_with_the_step_named(config, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_backward = Standard.backward

    def nan_on_third_batch(self, forward, batch, scale):
        calls["n"] += 1
        loss = real_backward(self, forward, batch, scale)
        return torch.tensor(float("nan")) if calls["n"] == 3 else loss

    monkeypatch.setattr(Standard, "backward", nan_on_third_batch)
    with pytest.raises(xltlib.training.NonFiniteLossError, match="at optimizer step 3"):
        pipeline.ensure_run(config, tmp_path, Logistics("cpu"))
    assert not store.is_complete(tmp_path / config.run_id())


def test_unlabeled_test_split_is_refused_before_training(config, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "_train_and_evaluate", lambda *a: pytest.fail("trained on an unlabeled split"))
    unlabeled = RunConfig.from_dict({**config.to_dict(), "eval_split": "test"})
    with pytest.raises(XltError, match="no label"):
        pipeline.ensure_run(unlabeled, tmp_path, Logistics("cpu"))


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


@pytest.mark.parametrize("device", DEVICES)
def test_training_learns_a_learnable_task(tmp_path, device):
    """The loop really optimizes (in bf16 autocast on CUDA): a keyword rule is learned far above chance."""
    rng = torch.Generator().manual_seed(0)
    words = [f"w{i}" for i in range(40)]

    def rows(n):
        out = []
        for _ in range(n):
            a = [words[i] for i in torch.randint(len(words), (6,), generator=rng)]
            b = [words[i] for i in torch.randint(len(words), (6,), generator=rng)]
            label = int(torch.randint(2, (1,), generator=rng))
            a[int(torch.randint(6, (1,), generator=rng))] = "yes" if label else "no"
            out.append(f"{' '.join(a)}\t{' '.join(b)}\t{label}")
        return "\n".join(out) + "\n"

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text(rows(800))
    for lang in ("en", "de"):
        (data / f"dev-{lang}.tsv").write_text(rows(200))
        (data / f"test-{lang}.tsv").write_text(rows(50))
    model = build_tiny_xlmr(tmp_path / "model", words + ["yes", "no"] * 20, TinyXlmrSpec(vocab_size=200))
    config = RunConfig(
        task="pawsx",
        model=str(model),
        learning_rate=2e-3,
        epochs=3.0,
        batch_size=16,
        warmup_ratio=0.0,
        data_dir=str(data),
        train_file=str(data / "train.tsv"),
        tgt_langs=("en", "de"),
    )
    results = pipeline.ensure_run(config, tmp_path / "runs", Logistics(device))
    accuracy = results[results["metric"] == "accuracy"]
    assert (accuracy["value"] > 0.9).all(), accuracy


def test_xnli_trains_on_english_dev_and_evaluates_labeled_test(shared_data, tiny_model, tmp_path):
    xnli = shared_data / "xnli"
    config = RunConfig(
        task="xnli",
        model=str(tiny_model),
        learning_rate=1e-3,
        epochs=1.0,
        batch_size=16,
        max_seq_length=64,
        data_dir=str(xnli / "test-labeled"),
        train_file=str(xnli / "xtreme" / "dev-en.tsv"),
        eval_split="test",
        max_train_examples=96,
        max_eval_examples=30,
        max_align_sentences=40,
    )
    results = pipeline.ensure_run(config, tmp_path, Logistics("cpu"))
    accuracy = results[results["metric"] == "accuracy"]
    assert sorted(accuracy["tgt_lang"]) == sorted(TASKS["xnli"].languages)
    assert accuracy["value"].between(0, 1).all()
    assert_alignment_rows(results[results["metric"] != "accuracy"], config, TinyXlmrSpec().num_layers + 1)


def test_generalized_setting_scores_every_ordered_language_pair(config, tmp_path, monkeypatch):
    """Mixed pairs are built from the line-aligned eval files: text_a in a, text_b in b."""
    import xltlib.evaluation.accuracy

    scored = {}
    real = xltlib.evaluation.accuracy.accuracy

    def spy(predictions, frame):
        scored[frame.attrs["source"]] = frame
        return real(predictions, frame)

    monkeypatch.setattr(xltlib.evaluation.accuracy, "accuracy", spy)
    mixed = dataclasses.replace(config, tgt_langs=("de", "fr"), generalized_examples=10)
    results = pipeline.ensure_run(mixed, tmp_path, Logistics("cpu"))
    accuracy = results[results.metric == "accuracy"].set_index("tgt_lang").value
    assert sorted(accuracy.index) == ["de", "de|en", "de|fr", "en|de", "en|fr", "fr", "fr|de", "fr|en"]
    mixed_sources = [source.split(" | ") for source in scored if " | " in source]
    assert len(mixed_sources) == 6
    de_fr = next(scored[" | ".join(pair)] for pair in mixed_sources if "dev-de" in pair[0] and "dev-fr" in pair[1])
    de, fr = (loading.load_split(TASKS["pawsx"], lang, "dev", config.data_dir, limit=10) for lang in ("de", "fr"))
    assert len(de_fr) == 10 and list(de_fr.text_a) == list(de.text_a) and list(de_fr.text_b) == list(fr.text_b)
    assert dataclasses.replace(config, generalized_examples=10).run_id() != config.run_id()


def test_a_run_computed_by_other_code_is_flagged_and_recomputed_on_request(config, tmp_path, monkeypatch):
    """Edit one line of a copy of the training code: the cached run is stale. Report code is not compute code, and a
    comment or docstring in compute code changes nothing it computes."""
    first = pipeline.ensure_run(config, tmp_path, Logistics("cpu"))
    assert store.stale_runs(first).empty
    package = tmp_path / "xltlib"
    shutil.copytree(store.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(store, "PACKAGE", package)
    (package / "report" / "cells.py").write_text((package / "report" / "cells.py").read_text() + "\n# a report edit\n")
    store._code_version.cache_clear()
    assert store.stale_runs(first).empty
    training = package / "training.py"
    training.write_text(training.read_text().replace("def train_loop(", "# a comment\ndef train_loop(  # and one\n", 1))
    store._code_version.cache_clear()
    assert store.stale_runs(first).empty
    training.write_text(training.read_text().replace('"""', '"""A docstring edit. ', 1))
    store._code_version.cache_clear()
    assert store.stale_runs(first).empty
    training.write_text(training.read_text() + "\nSTEP_SCALE = 1  # one line of code\n")
    store._code_version.cache_clear()  # hashed once per process: code does not change under a running study
    stale = store.stale_runs(store.load_results(tmp_path))
    assert set(stale.run_id) == {config.run_id(), config.pretrained().run_id()}
    assert config.run_id() in experiment.stale_warning(first)

    again = pipeline.ensure_run(config, tmp_path, Logistics("cpu"))  # without asking: read, not recomputed
    pd.testing.assert_frame_equal(again, first)
    recomputed = pipeline.ensure_run(config, tmp_path, Logistics("cpu"), recompute_stale=True)
    assert store.stale_runs(store.load_results(tmp_path)).empty
    kept = tmp_path / config.run_id() / f"metrics.{first.code_version.iloc[0]}.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(kept), first)  # the old numbers are kept aside
    columns = ["tgt_lang", "layer", "metric", "value"]  # same seed, same machine: the same numbers
    pd.testing.assert_frame_equal(recomputed[columns], first[columns])


def test_load_results_reads_exactly_the_runs_asked_for(config, tmp_path):
    pipeline.ensure_run(config, tmp_path, Logistics("cpu"))
    other = dataclasses.replace(config, seed=2)
    pipeline.ensure_run(other, tmp_path, Logistics("cpu"))
    asked = store.load_results(tmp_path, [config.run_id(), config.pretrained().run_id(), "never-computed"])
    assert set(asked.run_id) == {config.run_id(), config.pretrained().run_id()}
    assert set(store.load_results(tmp_path).run_id) == {config.run_id(), other.run_id(), config.pretrained().run_id()}
    assert store.load_results(tmp_path, []).empty


def test_the_synthetic_grammar_counts_in_the_code_version_of_synthetic_runs_only(tmp_path, monkeypatch):
    package = tmp_path / "xltlib"
    shutil.copytree(store.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(store, "PACKAGE", package)
    store._code_version.cache_clear()
    before = {profile: store.code_version(profile) for profile in ("synthetic", "xtreme", None)}
    assert before["synthetic"] != before["xtreme"] == before[None]
    grammar = package / "synthetic" / "grammar.py"
    grammar.write_text(grammar.read_text() + "\nEXTRA_NOUNS = 1\n")
    store._code_version.cache_clear()
    after = {profile: store.code_version(profile) for profile in ("synthetic", "xtreme", None)}
    assert after["synthetic"] != before["synthetic"] and after["xtreme"] == before["xtreme"]
    store._code_version.cache_clear()


@pytest.mark.parametrize("methods, rows", [(["standard", "pgd"], "language"), (list("abcdefg"), "method")])
def test_the_accuracy_table_grows_down_not_past_the_page(methods, rows):
    """More configurations than languages (a dose grid): methods become the rows, and the table needs no sideways
    scroll."""
    languages = ["base", "a80", "a0"]
    table = pd.DataFrame(
        [{"language": lang, "method": m, "mean": 0.5, "sd": 0.01} for lang in languages for m in methods]
    )
    grid = experiment.mean_sd_table(table, languages, methods)
    assert grid.index.name == rows and grid.shape == (max(3, len(methods)), min(3, len(methods)))
    assert (grid == "0.500 ± 0.010").all().all() and list(grid.index) == (languages if rows == "language" else methods)


def test_a_table_wider_than_the_page_is_split_into_tables_that_fit():
    from xltlib.report.tables import PAGE_WIDTH_PX, column_groups, page_width_html

    languages = pd.Index([f"a{i}" for i in range(8)], name="language")
    wide = pd.DataFrame({f"pgd(eps={i / 100})": ["0.982 ± 0.004"] * 8 for i in range(12)}, index=languages)
    groups = column_groups(wide)
    assert [position for group in groups for position in group] == list(range(12)) and len(groups) > 1
    assert column_groups(wide.iloc[:, :2]) == [[0, 1]]  # a narrow table stays one
    assert column_groups(wide, page_width=10 * PAGE_WIDTH_PX) == [list(range(12))]
    assert page_width_html(wide).count("<table") == len(groups)
