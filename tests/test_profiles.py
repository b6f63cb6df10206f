"""The synthetic encoder: MLM pre-training is deterministic, cached, loadable like XLM-R; runs use it."""

import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

from xltlib import models
from xltlib.config import SYNTHETIC_FINETUNING
from xltlib.errors import XltError
from xltlib.models import TinyXlmrSpec
from xltlib.pipeline import ensure_run
from xltlib.synthetic import build, detection, generated, languages, pretraining, recipe, run_config, shipped
from xltlib.synthetic.build import pretrain_encoder
from xltlib.synthetic.recipe import DetectionSpec, PretrainSpec
from xltlib.training import StepPlan

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent
TINY = TinyXlmrSpec(vocab_size=1000, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def documents():
    spec = generated.DataSpec(mono_documents=400)
    lexicon = languages.build_lexicon(spec.grammar, spec.recipes)
    return generated.monolingual_corpus(spec, lexicon, languages.BASE) + generated.monolingual_corpus(
        spec, lexicon, languages.TARGETS[3]
    )


def test_pretraining_is_deterministic_learns_and_loads_like_xlmr(documents, tmp_path):
    spec = PretrainSpec(steps=60, batch_size=32, learning_rate=3e-3)
    first = pretrain_encoder(tmp_path / "a", documents, TINY, spec, progress=False)
    second = pretrain_encoder(tmp_path / "b", documents, TINY, spec, progress=False)
    weights = [AutoModelForMaskedLM.from_pretrained(path).state_dict() for path in (first, second)]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    report = json.loads((first / "pretraining.json").read_text())
    losses = report["loss_every_100_steps"]
    assert len(losses) == 1 and report["documents"] == len(documents)
    tokenizer = AutoTokenizer.from_pretrained(first)
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id) == (
        0,
        1,
        2,
        3,
    )
    assert tokenizer.mask_token_id == len(tokenizer) - 1
    words = documents[0][0].split()
    assert len(tokenizer(documents[0][0])["input_ids"]) == len(words) + 2  # whole words are single pieces
    classifier = AutoModelForSequenceClassification.from_pretrained(first, num_labels=3)
    assert classifier.config.model_type == "xlm-roberta"
    other = pretrain_encoder(
        tmp_path / "c", documents, TINY, PretrainSpec(steps=60, batch_size=32, seed=1), progress=False
    )
    assert not torch.equal(
        AutoModelForMaskedLM.from_pretrained(other).state_dict()["roberta.embeddings.word_embeddings.weight"],
        weights[0]["roberta.embeddings.word_embeddings.weight"],
    )


def test_pretraining_lowers_the_mlm_loss(documents, tmp_path):
    path = pretrain_encoder(
        tmp_path / "m", documents, TINY, PretrainSpec(steps=200, batch_size=32, learning_rate=3e-3), progress=False
    )
    first, last = json.loads((path / "pretraining.json").read_text())["loss_every_100_steps"]
    assert last < first - 0.5


def test_bad_pretraining_settings_fail_before_compute():
    with pytest.raises(XltError, match="steps"):
        PretrainSpec(steps=0)
    with pytest.raises(XltError, match="mask_probability"):
        PretrainSpec(mask_probability=1.5)
    with pytest.raises(XltError, match="DetectionSpec.steps"):
        DetectionSpec(steps=-1)
    with pytest.raises(XltError, match="DetectionSpec.held_out"):
        DetectionSpec(held_out=0)
    with pytest.raises(XltError, match="dropout"):
        DetectionSpec(dropout=1.0)
    with pytest.raises(XltError, match="PretrainSpec.dropout"):
        PretrainSpec(dropout=1)
    with pytest.raises(XltError, match="PretrainSpec.bf16 must be True or False"):
        PretrainSpec(bf16="yes")


def _random_xlmr(seed: int) -> models.XLMRobertaForMaskedLM:
    torch.manual_seed(seed)
    config = models.XLMRobertaConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
    )
    return models.XLMRobertaForMaskedLM(config).double().eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_lm_loss_equals_the_full_head_loss_and_gradients(seed):
    model = _random_xlmr(seed)
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, 50, (5, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 7:] = 0
    labels = torch.where(torch.rand(5, 12, generator=generator) < 0.3, input_ids, -100)
    labels[0, 7:] = -100
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    full = model(**batch).loss
    full_grads = torch.autograd.grad(full, list(model.parameters()), allow_unused=True)
    ours = pretraining.masked_lm_loss(model, batch)
    our_grads = torch.autograd.grad(ours, list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(ours, full, rtol=1e-12, atol=1e-12)
    for expected, got in zip(full_grads, our_grads):
        assert (expected is None) == (got is None)
        if expected is not None:
            torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_pretraining_dropout_and_cpu_attention_last_only_for_the_masked_lm_steps(documents, tmp_path):
    seen = []
    original = pretraining.masked_lm_loss

    def spying(model, batch):
        seen.append(
            ({m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}, model.config._attn_implementation)
        )
        return original(model, batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretraining, "masked_lm_loss", spying)
        path = pretrain_encoder(
            tmp_path / "d", documents, TINY, PretrainSpec(steps=3, batch_size=32, dropout=0.0), progress=False
        )
    assert seen == [({0.0}, "eager")] * 3
    config = json.loads((path / "config.json").read_text())
    assert config["hidden_dropout_prob"] == config["attention_probs_dropout_prob"] == 0.1  # fine-tuning keeps XLM-R's


def test_bf16_on_a_cpu_without_it_warns_before_training(monkeypatch, caplog):
    monkeypatch.setattr(pretraining, "cpu_has_native_bf16", lambda: False)
    pretraining.warn_if_bf16_is_emulated(torch.device("cpu"), PretrainSpec(), DetectionSpec(steps=0, bf16=True))
    assert not caplog.records  # neither spec trains in bf16
    pretraining.warn_if_bf16_is_emulated(torch.device("cpu"), PretrainSpec(bf16=True))
    assert "no native bf16" in caplog.text
    caplog.clear()
    monkeypatch.setattr(pretraining, "cpu_has_native_bf16", lambda: True)
    pretraining.warn_if_bf16_is_emulated(torch.device("cpu"), PretrainSpec(bf16=True))
    assert not caplog.records


def test_cpu_bf16_pretraining_is_deterministic_learns_and_saves_float32(documents, tmp_path):
    spec = PretrainSpec(steps=200, batch_size=32, learning_rate=3e-3, dropout=0.0, bf16=True)
    first, second = (pretrain_encoder(tmp_path / name, documents, TINY, spec, progress=False) for name in "ab")
    weights = [AutoModelForMaskedLM.from_pretrained(path).state_dict() for path in (first, second)]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    assert {tensor.dtype for tensor in weights[0].values() if tensor.is_floating_point()} == {torch.float32}
    full_precision = pretrain_encoder(tmp_path / "c", documents, TINY, replace(spec, bf16=False), progress=False)
    assert not torch.equal(
        AutoModelForMaskedLM.from_pretrained(full_precision).state_dict()["lm_head.bias"], weights[0]["lm_head.bias"]
    )
    first_loss, last_loss = json.loads((first / "pretraining.json").read_text())["loss_every_100_steps"]
    assert last_loss < first_loss - 0.5


@pytest.fixture(scope="module")
def detection_pairs():
    spec = generated.DataSpec(detection_pairs=700)
    return generated.detection_pairs(spec, languages.build_lexicon(spec.grammar, spec.recipes))


def test_detection_stage_is_deterministic_learns_and_leaves_an_xlmr(documents, detection_pairs, tmp_path):
    corpus = documents + [pair[:2] for pair in detection_pairs]
    mlm = PretrainSpec(steps=20, batch_size=32, learning_rate=3e-3)
    stage = DetectionSpec(steps=150, batch_size=16, learning_rate=3e-3, held_out=200)
    first, second = (
        pretrain_encoder(
            tmp_path / name, corpus, TINY, mlm, progress=False, detection_pairs=detection_pairs, stages=[stage]
        )
        for name in "ab"
    )
    weights = [AutoModelForMaskedLM.from_pretrained(path).state_dict() for path in (first, second)]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    [report] = json.loads((first / "pretraining.json").read_text())["stages"]
    assert report["spec"] == asdict(stage)
    losses = report["detection_loss_every_100_steps"]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert 0 <= report["detection_held_out_recall"] <= 1 and 0 <= report["detection_held_out_false_positive_rate"] <= 1
    by_kind = report["detection_held_out_recall_by_kind"]
    roles = {"subject", "subject_adjective", "verb", "negated", "object", "object_adjective", "place"}
    assert {"subject", "object", "verb", "negated"} <= set(by_kind) <= roles
    assert all(0 <= recall <= 1 for recall in by_kind.values())
    assert min(by_kind.values()) <= report["detection_held_out_recall"] <= max(by_kind.values())
    without = pretrain_encoder(tmp_path / "c", corpus, TINY, mlm, progress=False)
    assert json.loads((without / "pretraining.json").read_text())["stages"] == []
    assert not torch.equal(
        AutoModelForMaskedLM.from_pretrained(without).state_dict()[
            "roberta.encoder.layer.0.attention.self.query.weight"
        ],
        weights[0]["roberta.encoder.layer.0.attention.self.query.weight"],
    )
    assert AutoModelForSequenceClassification.from_pretrained(first, num_labels=2).config.hidden_dropout_prob == 0.0
    assert AutoModelForSequenceClassification.from_pretrained(without, num_labels=2).config.hidden_dropout_prob == 0.1


def test_pair_labels_name_the_segments_that_say_something_new():
    rows = [
        ("a b", "a b", "0 0", "0 -"),
        ("a b", "a c", "0 1", "0 1"),
        ("a b", "a", "0 1", "0"),
        ("a", "a c", "0", "0 1"),
    ]
    assert detection._pair_labels(rows) == [0, 3, 2, 1]


def test_the_pair_objective_trains_the_encoder_and_reports_its_accuracy(documents, detection_pairs, tmp_path):
    corpus = documents + [pair[:2] for pair in detection_pairs]
    mlm = PretrainSpec(steps=2, batch_size=32)
    reports, weights = [], []
    for name, pair_weight in (("plain", 0.0), ("pair", 0.5), ("again", 0.5)):
        path = pretrain_encoder(
            tmp_path / name,
            corpus,
            TINY,
            mlm,
            progress=False,
            detection_pairs=detection_pairs,
            stages=[DetectionSpec(steps=20, batch_size=16, held_out=200, pair_weight=pair_weight)],
        )
        reports.append(json.loads((path / "pretraining.json").read_text())["stages"][0])
        weights.append(
            AutoModelForMaskedLM.from_pretrained(path).state_dict()[
                "roberta.encoder.layer.0.attention.self.query.weight"
            ]
        )
    assert "detection_held_out_pair_accuracy" not in reports[0]
    assert 0 <= reports[1]["detection_held_out_pair_accuracy"] <= 1 and reports[1] == {
        **reports[2],
        "seconds": reports[1]["seconds"],
    }
    assert not torch.equal(weights[0], weights[1]) and torch.equal(weights[1], weights[2])
    with pytest.raises(XltError, match="DetectionSpec.pair_weight"):
        DetectionSpec(pair_weight=-0.1)


def test_an_unformed_detection_stage_is_reported(documents, detection_pairs, tmp_path, caplog):
    corpus = documents + [pair[:2] for pair in detection_pairs]
    stage = DetectionSpec(steps=2, batch_size=16, held_out=200)
    with caplog.at_level("WARNING", logger="xltlib.models"):
        path = pretrain_encoder(
            tmp_path / "u",
            corpus,
            TINY,
            PretrainSpec(steps=2, batch_size=32),
            progress=False,
            detection_pairs=detection_pairs,
            stages=[stage],
        )
    recall = json.loads((path / "pretraining.json").read_text())["stages"][0]["detection_held_out_recall"]
    assert recall < 0.5 and "did not form" in caplog.text


def test_pairs_without_kinds_report_one_recall(documents, detection_pairs, tmp_path):
    corpus = documents + [pair[:2] for pair in detection_pairs]
    path = pretrain_encoder(
        tmp_path / "k",
        corpus,
        TINY,
        PretrainSpec(steps=2, batch_size=32),
        progress=False,
        detection_pairs=[pair[:4] for pair in detection_pairs],
        stages=[DetectionSpec(steps=20, batch_size=16, held_out=200)],
    )
    [report] = json.loads((path / "pretraining.json").read_text())["stages"]
    assert report["detection_held_out_recall_by_kind"] == {"word": report["detection_held_out_recall"]}


def test_a_kind_of_word_the_stage_missed_is_reported(caplog):
    report = {"detection_held_out_recall": 0.77, "detection_held_out_recall_by_kind": {"subject": 0.96, "verb": 0.0}}
    with caplog.at_level("WARNING", logger="xltlib.models"):
        detection.warn_if_not_formed(report)
    assert "did not form for verb" in caplog.text and "subject" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="xltlib.models"):
        detection.warn_if_not_formed({**report, "detection_held_out_recall_by_kind": {"subject": 0.96, "verb": 0.92}})
    assert not caplog.text


def test_detection_stage_with_too_few_pairs_fails_before_compute(documents, detection_pairs, tmp_path):
    with pytest.raises(XltError, match="more than 900 pairs"):
        pretrain_encoder(
            tmp_path / "x",
            documents,
            TINY,
            PretrainSpec(steps=1),
            progress=False,
            detection_pairs=detection_pairs,
            stages=[DetectionSpec(steps=5, held_out=900)],
        )
    assert not (tmp_path / "x").exists()


def test_stages_run_in_order_after_the_masked_lm_and_a_stage_of_no_steps_is_skipped(
    documents, detection_pairs, tmp_path
):
    corpus = documents + [pair[:2] for pair in detection_pairs]
    mlm = PretrainSpec(steps=2, batch_size=32)
    words = DetectionSpec(steps=10, batch_size=16, held_out=200)
    sentence = DetectionSpec(steps=20, batch_size=16, held_out=200, pair_weight=0.5, seed=1)

    def build(name, stages):
        path = pretrain_encoder(
            tmp_path / name, corpus, TINY, mlm, progress=False, detection_pairs=detection_pairs, stages=stages
        )
        return path, AutoModelForMaskedLM.from_pretrained(path).state_dict()[
            "roberta.encoder.layer.0.attention.self.query.weight"
        ]

    one, one_weights = build("one", [words])
    two, two_weights = build("two", [words, DetectionSpec(steps=0), sentence])
    swapped, swapped_weights = build("swapped", [sentence, words])
    assert not torch.equal(one_weights, two_weights) and not torch.equal(two_weights, swapped_weights)
    reports = json.loads((two / "pretraining.json").read_text())["stages"]
    assert [report["spec"] for report in reports] == [asdict(words), asdict(sentence)]
    assert (
        "detection_held_out_pair_accuracy" not in reports[0]
        and 0 <= reports[1]["detection_held_out_pair_accuracy"] <= 1
    )
    first_only = json.loads((one / "pretraining.json").read_text())["stages"][0]
    assert (
        first_only["detection_held_out_recall"] == reports[0]["detection_held_out_recall"]
    )  # the first stage is the same


def schedule_of(plan: StepPlan):
    """Row indices of each step (one micro-batch per step)."""
    return lambda step: np.concatenate(plan.micro_batches(step))


def test_length_grouped_batches_hold_each_epochs_rows_once_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, size=1000).tolist()
    plain, grouped = (
        schedule_of(StepPlan(1000, 32, 7, steps=100, drop_last=True)),
        schedule_of(StepPlan(1000, 32, 7, steps=100, drop_last=True, lengths=lengths)),
    )
    steps = 1000 // 32
    for schedule in (plain, grouped):
        epoch = np.concatenate([schedule(step) for step in range(steps)])
        assert len(set(epoch.tolist())) == len(epoch) == steps * 32  # full batches, no row twice in an epoch
        assert not np.array_equal(
            epoch, np.concatenate([schedule(step) for step in range(steps, 2 * steps)])
        )  # reshuffled

    def padding(schedule):
        return sum(
            max(lengths[i] for i in schedule(step)) * 32 - sum(lengths[i] for i in schedule(step))
            for step in range(steps)
        )

    assert padding(grouped) < 0.5 * padding(plain)
    again = schedule_of(StepPlan(1000, 32, 7, steps=100, drop_last=True, lengths=lengths))
    assert all(np.array_equal(grouped(step), again(step)) for step in (0, steps + 3))  # fixed by the seed
    with pytest.raises(XltError, match="group_by_length"):
        PretrainSpec(group_by_length="yes")


@pytest.fixture(scope="module")
def quick_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    build.ensure_encoder(recipe.quick_synthetic_profile(), cache, progress=False)
    return cache


def test_encoder_is_cached_by_profile_and_draw(quick_cache):
    profile = recipe.quick_synthetic_profile()
    path = recipe.encoder_path(profile, quick_cache)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert build.ensure_encoder(profile, quick_cache, progress=False) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    longer = replace(profile, pretraining=PretrainSpec(steps=31, batch_size=32))
    assert recipe.encoder_path(longer, quick_cache) != path
    assert recipe.encoder_path(recipe.without_detection_stage(profile), quick_cache) != path
    assert recipe.encoder_path(recipe.with_draw(profile, 1), quick_cache) != path
    assert json.loads((path / "pretraining.json").read_text())["stages"][0]["spec"] == asdict(profile.stages[0])


def _checked_quick_profile(**check):
    quick = recipe.quick_synthetic_profile()
    sentence = DetectionSpec(steps=5, batch_size=16, held_out=50, pair_weight=0.5, seed=1)
    return replace(quick, stages=(*quick.stages, sentence), check=recipe.BuildCheck(**check))


def _weights(path):
    return AutoModelForMaskedLM.from_pretrained(path).state_dict()


def _scripted_check(monkeypatch, scores):
    """Make the build check return ``scores[masked-LM seed]`` (a number for every task, or a dict) and record the seeds
    it saw."""
    checked = []

    def check(encoder, data_dir, check, device="cpu"):
        seed = json.loads((Path(encoder) / "pretraining.json").read_text())["pretraining"]["seed"]
        checked.append(seed)
        score = scores[seed]
        return score if isinstance(score, dict) else {task: score for task in check.tasks}

    monkeypatch.setattr(build, "source_dev_accuracy", check)
    return checked


def test_the_set_ships_the_first_passing_draws_each_as_its_unchecked_build(quick_cache, tmp_path, monkeypatch):
    checked = _scripted_check(monkeypatch, {0: 0.95, 1: 0.5, 2: 0.91, 3: 0.97, 4: 0.99})
    profile = _checked_quick_profile(ship=3, max_draws=6)
    out = build.build_encoder_set(tmp_path / "set", profile, tmp_path / "cache", progress=False)
    assert checked == [0, 1, 2, 3]  # stops at the third passing draw
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["draws"]) == ["0", "2", "3"] and shipped.shipped_draws(out) == [0, 2, 3]
    assert [(a["masked_lm_seed"], a["passed"]) for a in manifest["attempts"]] == [
        (0, True),
        (1, False),
        (2, True),
        (3, True),
    ]
    assert manifest["recipe_hash"] == profile.recipe_hash()
    assert manifest["data_sha256"] == generated.data_sha256(generated.ensure_data(profile.data, quick_cache))
    unchecked = build.ensure_encoder(replace(profile, check=None), tmp_path / "unchecked", draw=2, progress=False)
    shipped_weights, built_weights = _weights(shipped.draw_folder(out, 2)), _weights(unchecked)
    assert all(torch.equal(shipped_weights[name], built_weights[name]) for name in built_weights)
    record = json.loads((shipped.draw_folder(out, 2) / "pretraining.json").read_text())
    assert (
        record["recipe_hash"] == profile.recipe_hash() and record["build_check"]["base_dev_accuracy"]["syn-nli"] == 0.91
    )
    assert {"device_name", "packages", "git_commit", "started"} <= set(record["environment"])
    assert shipped.verified_encoder(3, profile.recipe_hash(), out) == shipped.draw_folder(out, 3)


def test_an_interrupted_build_resumes_at_the_draw_it_was_building(tmp_path, monkeypatch):
    checked = _scripted_check(monkeypatch, {0: 0.95, 1: 0.95})
    profile = _checked_quick_profile(ship=2, max_draws=2)
    built, original = [], build.pretrain_encoder

    def crashing_second_draw(out, corpus, spec, pretraining, *args, **kwargs):
        built.append(pretraining.seed)
        if pretraining.seed == 1 and built.count(1) == 1:
            raise KeyboardInterrupt
        return original(out, corpus, spec, pretraining, *args, **kwargs)

    monkeypatch.setattr(build, "pretrain_encoder", crashing_second_draw)
    with pytest.raises(KeyboardInterrupt):
        build.build_encoder_set(tmp_path / "set", profile, tmp_path / "cache", progress=False)
    assert not (tmp_path / "set").exists()
    build.build_encoder_set(tmp_path / "set", profile, tmp_path / "cache", progress=False)
    assert built == [0, 1, 1] and checked == [0, 1]  # draw 0 was neither rebuilt nor checked again
    assert shipped.shipped_draws(tmp_path / "set") == [0, 1]


def test_a_draw_below_the_floor_on_one_task_fails_even_when_its_mean_clears_it(tmp_path, monkeypatch):
    _scripted_check(monkeypatch, {0: {"syn-nli": 0.85, "syn-paws": 0.97}, 1: {"syn-nli": 0.91, "syn-paws": 0.92}})
    out = build.build_encoder_set(tmp_path / "set", _checked_quick_profile(floor=0.9, ship=1), tmp_path, progress=False)
    attempts = json.loads((out / "manifest.json").read_text())["attempts"]
    assert [(a["lowest"], a["passed"]) for a in attempts] == [(0.85, False), (0.91, True)]


def test_a_build_short_of_passing_draws_ships_what_passed_and_one_without_any_fails(tmp_path, monkeypatch, caplog):
    _scripted_check(monkeypatch, {0: 0.5, 1: 0.95, 2: 0.6})
    with caplog.at_level("WARNING", logger="xltlib.synthetic.build"):
        out = build.build_encoder_set(
            tmp_path / "set", _checked_quick_profile(ship=2, max_draws=3), tmp_path, progress=False
        )
    assert shipped.shipped_draws(out) == [1] and "only 1 of 3 masked-LM seeds passed" in caplog.text
    _scripted_check(monkeypatch, {0: 0.5, 1: 0.6})
    with pytest.raises(XltError, match="no draw of 2 passed the build check"):
        build.build_encoder_set(
            tmp_path / "none", _checked_quick_profile(ship=1, max_draws=2), tmp_path / "c2", progress=False
        )
    assert not (tmp_path / "none").exists()
    with pytest.raises(XltError, match="already exists"):
        build.build_encoder_set(out, _checked_quick_profile(), tmp_path, progress=False)
    with pytest.raises(XltError, match="no build rule"):
        build.build_encoder_set(tmp_path / "x", recipe.quick_synthetic_profile(), tmp_path, progress=False)


def test_bad_build_check_settings_fail_before_compute():
    with pytest.raises(XltError, match="did you mean 'syn-nli'"):
        recipe.BuildCheck(tasks=("syn-nly",))
    with pytest.raises(XltError, match="xnli is not a synthetic task"):
        recipe.BuildCheck(tasks=("xnli",))
    with pytest.raises(XltError, match="BuildCheck.floor"):
        recipe.BuildCheck(floor=1.5)
    with pytest.raises(XltError, match="BuildCheck.ship"):
        recipe.BuildCheck(ship=0)
    with pytest.raises(XltError, match="BuildCheck.max_draws must be >= 3"):
        recipe.BuildCheck(ship=3, max_draws=2)


def test_a_shipped_encoder_below_its_calibrated_source_accuracy_is_flagged(quick_cache, tmp_path):
    from xltlib.report.experiment import source_accuracy_warning

    def results(base_accuracy):
        return pd.DataFrame(
            [
                {"method": method, "seed": seed, "tgt_lang": lang, "metric": "accuracy", "value": value}
                for method, shift in (("standard", 0.0), ("pgd", -0.02))
                for seed in (1, 2, 3)
                for lang, value in (("base", base_accuracy + shift + 0.01 * seed), ("a0", 0.5))
            ]
        )

    default = str(shipped.draw_folder(shipped.SHIPPED_ENCODERS, 0))
    failing = source_accuracy_warning(results(0.68), default, "base")
    assert "0.700" in failing and "`base`" in failing  # the best method's mean: 0.68 + 0.02
    floor = recipe.SOURCE_ACCURACY_FLOOR
    assert source_accuracy_warning(results(floor - 0.015), default, "base") is None  # best mean just above the floor
    assert source_accuracy_warning(results(floor - 0.025), default, "base") is not None  # just below
    quick = str(recipe.encoder_path(recipe.quick_synthetic_profile(), quick_cache))
    assert source_accuracy_warning(results(0.68), quick, "base") is None
    assert source_accuracy_warning(results(0.68), "xlm-roberta-base", "base") is None


def test_bad_run_parameter_fails_before_pretraining(tmp_path):
    with pytest.raises(XltError, match="learning_rate"):
        run_config.synthetic_run_config(
            "syn-nli", tmp_path, recipe.quick_synthetic_profile(), progress=False, learning_rate=-1.0
        )
    assert not list((tmp_path / "synthetic").glob("encoder-*"))
    with pytest.raises(XltError, match="did you mean 'seed'"):
        run_config.synthetic_run_config("syn-nli", tmp_path, progress=False, sed=3)
    with pytest.raises(XltError, match="not a synthetic task"):
        run_config.synthetic_run_config("xnli", tmp_path, progress=False)


def test_own_model_and_data_keep_the_synthetic_fine_tuning_defaults(quick_cache, tmp_path):
    from xltlib.__main__ import _config_from_args, build_parser
    from xltlib.report.experiment import experiment_configs

    profile = recipe.quick_synthetic_profile()
    model, data_dir = (
        str(recipe.encoder_path(profile, quick_cache)),
        str(generated.ensure_data(profile.data, quick_cache)),
    )
    empty_cache = tmp_path / "cache"
    args = build_parser().parse_args(
        ["run", "--task", "syn-nli", "--model", model, "--data-dir", data_dir, "--cache", str(empty_cache)]
    )
    configs = [
        _config_from_args(args),
        experiment_configs("syn-nli", ["standard"], [1], model=model, cache_dir=str(empty_cache), data_dir=data_dir)[0],
    ]
    for config in configs:
        assert (config.model, config.data_dir, config.draw) == (model, data_dir, None)
        assert {key: getattr(config, key) for key in SYNTHETIC_FINETUNING} == SYNTHETIC_FINETUNING
    assert configs[0] == configs[1]
    assert not empty_cache.exists()  # neither data nor encoder was built for a run that brings its own


@pytest.mark.parametrize("task", ["syn-nli", "syn-paws"])
def test_synthetic_run_evaluates_and_aligns_every_language(quick_cache, tmp_path, task):
    config = run_config.synthetic_run_config(task, quick_cache, recipe.quick_synthetic_profile(), progress=False)
    assert (
        config.profile == "synthetic" and config.src_lang == "base" and config.eval_split == "test" and config.draw == 0
    )
    results = ensure_run(config, tmp_path)
    assert (results["draw"] == 0).all()
    languages = set(generated.language_distances(config.data_dir))
    accuracy = results[results["metric"] == "accuracy"]
    mixed = {f"{a}|{b}" for a in languages for b in languages if a != b}  # the generalized setting
    assert set(accuracy["tgt_lang"]) == languages | mixed and accuracy["value"].between(0, 1).all()
    alignment = results[results["metric"] == "retrieval_cosine"]
    assert set(alignment["tgt_lang"]) == languages - {"base"}
    words = results[results["metric"].str.startswith("word_retrieval")].pivot(
        index=["tgt_lang", "layer"], columns="metric", values="value"
    )
    assert set(words.index.get_level_values("tgt_lang")) == languages - {"base"}
    assert (results.loc[results["metric"].str.startswith("word_"), "pooling"] == "word").all()
    assert (words.word_retrieval_strong <= words.word_retrieval).all() and words.word_retrieval.between(0, 1).all()
    pretrained = pd.concat([pd.read_parquet(p) for p in tmp_path.glob(f"{task}-pretrained-*/metrics.parquet")])
    assert set(pretrained["tgt_lang"]) == languages - {"base"}


def test_a_run_names_its_draw_and_the_draw_names_its_encoder(quick_cache, tmp_path):
    quick = recipe.quick_synthetic_profile()
    first = run_config.synthetic_run_config("syn-nli", quick_cache, quick, progress=False)
    second = run_config.synthetic_run_config("syn-nli", quick_cache, quick, progress=False, draw=1)
    assert (first.draw, second.draw) == (0, 1) and first.run_id() != second.run_id()
    assert second.model == str(recipe.encoder_path(recipe.with_draw(quick, 1), quick_cache))
    assert Path(second.model, "model.safetensors").is_file() and first.pretrained().draw == 0
    with pytest.raises(XltError, match="cannot be combined with model"):
        run_config.synthetic_run_config("syn-nli", quick_cache, quick, progress=False, draw=1, model=first.model)
    with pytest.raises(XltError, match="draw must be >= 0"):
        run_config.synthetic_run_config("syn-nli", quick_cache, quick, progress=False, draw=-1)


def test_cli_runs_a_synthetic_task_without_model_or_data(quick_cache, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xltlib",
            "run",
            "--task",
            "syn-paws",
            "--quick",
            "--cache",
            str(quick_cache),
            "--out",
            str(tmp_path),
            "--langs",
            "base,a0svo",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "a0svo" in done.stdout and "base" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "xltlib", "run", "--task", "xnli", "--quick"], capture_output=True, text=True, cwd=REPO
    )
    assert bad.returncode == 2 and "not synthetic" in bad.stderr
