"""Named protocols of the real profile, and checkpoint selection on the source language's dev split."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from xltlib.config import RunConfig
from xltlib.config.hub_models import PINNED_REVISIONS
from xltlib.config.protocols import PROTOCOLS, protocol_markdown, protocol_settings, protocol_table
from xltlib.errors import XltError
from xltlib.evaluation import selection
from xltlib.evaluation.selection import BestOnSourceDev
from xltlib.models import load_classifier
from xltlib.report.experiment import experiment_configs, protocol_description
from xltlib.training import Checkpointing, StepPlan, fit, selection_steps


def test_huang2021_follows_the_released_scripts():
    fields, params = protocol_settings("huang2021", "xnli", "FacebookAI/xlm-roberta-base")
    assert (fields["epochs"], fields["batch_size"], fields["grad_accum_steps"]) == (1.0, 32, 1)
    assert (fields["learning_rate"], fields["max_seq_length"]) == (2e-5, 128)
    assert (fields["select_checkpoint"], fields["select_every_steps"]) == ("source_dev", 1000)
    assert params["rs_da"]["copies"] == 3 and params["rs_da"]["copies_style"] == "robust-xlt"
    assert params["standard_matched"] == {"epochs_factor": 3.0}  # as many steps as rs_da's 3 copies take
    fields, params = protocol_settings("huang2021", "pawsx", "FacebookAI/xlm-roberta-large")
    assert (fields["epochs"], fields["learning_rate"], fields["select_every_steps"]) == (3.0, 2e-5, 500)
    assert (params["rs_da"]["copies"], params["standard_matched"]["epochs_factor"]) == (10, 10.0)


def test_xtreme_r_pins_its_scripts_learning_rates_and_selection_intervals():
    fields, params = protocol_settings("xtreme-r", "xcopa", "FacebookAI/xlm-roberta-large")
    assert (fields["epochs"], fields["learning_rate"], fields["select_checkpoint"], params) == (5.0, 3e-5, "last", {})
    assert (
        protocol_settings("xtreme-r", "xcopa", "google-bert/bert-base-multilingual-cased")[0]["learning_rate"] == 2e-5
    )
    large = protocol_settings("xtreme-r", "xnli", "FacebookAI/xlm-roberta-large")[0]
    assert (large["learning_rate"], large["select_every_steps"]) == (3e-5, 100)
    pawsx = protocol_settings("xtreme-r", "pawsx", "FacebookAI/xlm-roberta-large")[0]
    assert (pawsx["learning_rate"], pawsx["select_every_steps"]) == (2e-5, 200)
    assert all(
        "@" in source and len(source.split("@")[1].split()[0]) == 40
        for source in PROTOCOLS["xtreme-r"].sources.values()
    )


def test_the_protocol_table_marks_each_setting_published_or_ours():
    table = protocol_table("huang2021")
    assert set(table.task) == {"xnli", "pawsx"}
    by_setting = table[table.task == "xnli"].set_index("setting").source
    assert by_setting["epochs"].startswith("published: uclanlp/Robust-XLT@0bb3c34ff1575be3ac07a8ead707d32ce30e57ff")
    assert by_setting["batch"].startswith("ours:") and by_setting["strengths"].startswith("ours:")
    assert by_setting["standard_matched"].startswith("ours:")


def test_known_hub_models_are_namespaced_and_pinned():
    config = RunConfig(task="xnli", model="xlm-roberta-base")
    assert config.model == "FacebookAI/xlm-roberta-base"
    assert config.model_revision == PINNED_REVISIONS["FacebookAI/xlm-roberta-base"]
    assert len(config.model_revision) == 40
    assert RunConfig(task="xnli", model="xlm-roberta-base", model_revision="main").model_revision == "main"
    assert RunConfig(task="xnli", model="someone/else").model_revision is None


def test_a_protocol_without_the_task_or_a_misspelt_one_fails_before_compute():
    with pytest.raises(XltError, match="huang2021 has no recipe for xcopa"):
        protocol_settings("huang2021", "xcopa", "xlm-roberta-base")
    with pytest.raises(XltError, match="did you mean 'xtreme-r'"):
        experiment_configs("xnli", ["standard"], [1], model="xlm-roberta-base", protocol="xtreme_r")
    with pytest.raises(XltError, match="protocols are recipes of the real profile"):
        experiment_configs("syn-nli", ["standard"], [1], protocol="huang2021")


def test_the_experiment_overrides_win_over_the_protocol_and_the_chapter_names_it():
    configs = experiment_configs(
        "pawsx",
        ["standard", "rs_da"],
        [1],
        model="xlm-roberta-base",
        protocol="huang2021",
        method_params={"rs_da": {"synonyms_file": "README.md"}},
        epochs=2.0,
    )
    assert configs[0].epochs == 2.0 and configs[0].select_checkpoint == "source_dev"
    assert configs[1].method_params["copies"] == 10
    text = protocol_description("huang2021", configs)
    assert "protocol **huang2021**" in text and "best on source dev" in text and "rs_da 10 offline copies" in text


@pytest.fixture(scope="module")
def tiny(tiny_xlmr):
    return tiny_xlmr(words=30, lengths=(3, 8), documents=200, vocab_size=80)


def test_the_best_source_dev_epoch_is_the_model_returned(tiny, tmp_path, monkeypatch):
    path, corpus = tiny
    pairs = pd.DataFrame({"text_a": corpus[:64], "text_b": corpus[64:128], "label": [i % 2 for i in range(64)]})
    model, tokenizer = load_classifier(path, 2)
    config = RunConfig(task="pawsx", model=str(path), epochs=3.0, batch_size=16, learning_rate=1e-3)
    scored, best = _select_with_scores(model, tokenizer, pairs, config, [0.5, 0.7, 0.6], tmp_path, monkeypatch)
    assert sorted(scored) == [4, 8, 12] and best.restore() == 8  # 4 steps an epoch: each epoch's end
    for name, value in model.state_dict().items():
        assert torch.equal(value, scored[8][name]), name
    assert not all(torch.equal(scored[8][k], scored[12][k]) for k in scored[8])  # training went on after it
    resumed = BestOnSourceDev(model, tokenizer, pairs, 32, torch.device("cpu"), tmp_path / "best.pt")
    assert resumed.best == pytest.approx(0.7)  # a resumed run remembers its best


def test_selection_every_n_steps_keeps_the_best_of_those_scored(tiny, tmp_path, monkeypatch):
    path, corpus = tiny
    pairs = pd.DataFrame({"text_a": corpus[:64], "text_b": corpus[64:128], "label": [i % 2 for i in range(64)]})
    model, tokenizer = load_classifier(path, 2)
    config = RunConfig(
        task="pawsx",
        model=str(path),
        epochs=2.0,
        batch_size=16,
        learning_rate=1e-3,
        select_checkpoint="source_dev",
        select_every_steps=3,
    )
    scored, best = _select_with_scores(model, tokenizer, pairs, config, [0.6, 0.8], tmp_path, monkeypatch)
    assert sorted(scored) == [3, 6] and best.restore() == 6  # every 3 of the 8 steps, not at epoch ends
    for name, value in model.state_dict().items():
        assert torch.equal(value, scored[6][name]), name


def test_selection_steps_follow_the_interval_and_always_include_one_model():
    plan = StepPlan(100, 10, seed=1, epochs=2.5)  # 10 steps an epoch, 25 in all
    assert selection_steps(plan, None) == {10, 20, 25}
    assert selection_steps(plan, 7) == {7, 14, 21}  # the published scripts score only multiples of N
    assert selection_steps(plan, 1000) == {25}  # shorter than N: its last model


def test_select_every_steps_needs_source_dev_selection():
    with pytest.raises(XltError, match="select_every_steps .* needs select_checkpoint"):
        RunConfig(task="pawsx", model="x", select_every_steps=100)


def _select_with_scores(model, tokenizer, pairs, config, scores, tmp_path, monkeypatch):
    """Fine-tune with the dev scores given in turn; the weights at every scored step, and the selector."""
    scores, snapshots = iter(scores), {}
    monkeypatch.setattr(selection, "accuracy", lambda predictions, frame: next(scores))
    selector = BestOnSourceDev(model, tokenizer, pairs, 32, torch.device("cpu"), tmp_path / "best.pt")

    def snapshot_then_select(step: int) -> None:
        snapshots[step] = {k: v.clone() for k, v in model.state_dict().items()}
        selector(step)

    fit(
        model,
        tokenizer,
        pairs,
        config,
        Checkpointing(tmp_path / "checkpoint.pt"),
        torch.device("cpu"),
        on_select=snapshot_then_select,
    )
    return snapshots, selector


def test_the_books_protocol_tables_are_the_codes():
    page = (Path(__file__).resolve().parents[1] / "book" / "real-profile.md").read_text(encoding="utf-8")
    for name in ("huang2021", "xtreme-r"):
        assert protocol_markdown(name) in page, f"book/real-profile.md: rerun protocol_markdown({name!r})"


def test_the_protocol_sentence_reads_records_stored_before_the_newer_fields():
    stored = dict(task="xnli", epochs=1.0, learning_rate=1e-4, batch_size=16, grad_accum_steps=2, max_seq_length=128)
    old = SimpleNamespace(**stored, select_checkpoint="source_dev", first_stage_file=None, method="rs_da")
    old.method_params = {"copies": 1}  # no copies_style: stored before it existed
    text = protocol_description("huang2021-cpu", [old])
    assert "scored at epoch ends" in text and "rs_da 1 offline copies (with-originals)" in text
