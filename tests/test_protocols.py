"""Named protocols of the real profile, and checkpoint selection on the source language's dev split."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from xltlib.config import RunConfig
from xltlib.config.protocols import protocol_settings
from xltlib.errors import XltError
from xltlib.evaluation import selection
from xltlib.evaluation.selection import BestOnSourceDev
from xltlib.models import load_classifier
from xltlib.report.experiment import experiment_configs, protocol_description
from xltlib.training import fit


def test_huang2021_follows_the_released_scripts():
    fields, params = protocol_settings("huang2021", "xnli", "xlm-roberta-base")
    assert (fields["epochs"], fields["batch_size"], fields["grad_accum_steps"]) == (1.0, 32, 4)
    assert (fields["learning_rate"], fields["max_seq_length"], fields["select_checkpoint"]) == (2e-5, 128, "source_dev")
    assert params == {"rs_da": {"copies": 3}}
    fields, params = protocol_settings("huang2021", "pawsx", "xlm-roberta-large")
    assert (fields["epochs"], fields["grad_accum_steps"], params["rs_da"]["copies"]) == (3.0, 16, 10)


def test_xtreme_r_trains_five_epochs_and_large_models_faster_on_xcopa():
    fields, params = protocol_settings("xtreme-r", "xcopa", "xlm-roberta-large")
    assert (fields["epochs"], fields["learning_rate"], fields["select_checkpoint"], params) == (5.0, 3e-5, "last", {})
    assert protocol_settings("xtreme-r", "xcopa", "bert-base-multilingual-cased")[0]["learning_rate"] == 2e-5


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
    scores, snapshots = iter([0.5, 0.7, 0.6]), {}
    monkeypatch.setattr(selection, "accuracy", lambda predictions, frame: next(scores))
    selector = BestOnSourceDev(model, tokenizer, pairs, 32, torch.device("cpu"), tmp_path / "best.pt")

    def snapshot_then_select(epoch: int) -> None:
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        selector(epoch)

    fit(
        model,
        tokenizer,
        pairs,
        config,
        tmp_path / "checkpoint.pt",
        torch.device("cpu"),
        on_epoch_end=snapshot_then_select,
    )
    assert sorted(snapshots) == [1, 2, 3] and selector.restore() == 2
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[2][name]), name
    assert not all(torch.equal(snapshots[2][k], snapshots[3][k]) for k in snapshots[2])  # training went on after it
    resumed = BestOnSourceDev(model, tokenizer, pairs, 32, torch.device("cpu"), tmp_path / "best.pt")
    assert resumed.best == pytest.approx(0.7)  # a resumed run remembers its best epoch
