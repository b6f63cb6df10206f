"""XCOPA as a multiple-choice task: its inputs, head, robust methods, generalized setting and alignment corpus."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from xltlib.config.logistics import Logistics
from xltlib.data.batches import CHOICE_QUESTION, SynonymAugmentedPairs, TokenizedPairs, augmented_copies, tokenize_pairs
from xltlib.data.loading import choice_frame
from xltlib.data.parallel import generalized_pairs
from xltlib.data.synonyms import SynonymTable
from xltlib.evaluation.accuracy import predict
from xltlib.methods import make_method
from xltlib.methods.base import ModelCall
from xltlib.methods.freelb import FreeLB
from xltlib.methods.perturbation import PerturbationSite
from xltlib.models import load_classifier
from xltlib.training import Checkpointing

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(tiny_xlmr):
    return tiny_xlmr(words=40, lengths=(3, 12), documents=400, vocab_size=100)


@pytest.fixture(scope="module")
def items(tiny):
    """Items whose right choice is the one containing tok1 (learnable), both choices of random length."""
    _, corpus = tiny
    rng = np.random.default_rng(1)
    rows, labels = [], []
    for i in range(120):
        right, wrong = f"tok1 {corpus[i]}", corpus[200 + i].replace("tok1", "tok2")
        label = int(rng.integers(2))
        choices = (right, wrong) if label == 0 else (wrong, right)
        rows.append(
            {
                "premise": corpus[300 + i % 100],
                "question": "cause" if i % 2 else "effect",
                "choice1": choices[0],
                "choice2": choices[1],
            }
        )
        labels.append(label)
    return choice_frame(rows, labels, "test items")


def test_each_choice_is_paired_with_the_premise_and_its_question(tiny, items):
    _, tokenizer = load_classifier(tiny[0], 2, multiple_choice=True)
    feature = tokenize_pairs(tokenizer, items.iloc[:1], 64)[0]
    first = CHOICE_QUESTION.format(premise=items.text_a[0], question=items.question[0])
    for c, column in enumerate(("choice1", "choice2")):
        assert feature["input_ids"][c] == tokenizer(first, items[column][0])["input_ids"]
    assert feature["labels"] == items.label[0]


def mc_batch(path, items, rows=range(8)):
    model, tokenizer = load_classifier(path, 2, multiple_choice=True)
    batch = TokenizedPairs(tokenizer, items.iloc[list(rows)], 64, CPU).batch(np.arange(len(rows)), 0)
    assert batch["input_ids"].shape[:2] == (len(rows), 2) and (batch["attention_mask"] == 0).any()
    return model.eval(), tokenizer, batch


@pytest.mark.parametrize("layer", [None, 1])
def test_pgd_on_choices_stays_in_its_ball_and_off_padding(tiny, items, layer):
    model, _, batch = mc_batch(tiny[0], items)
    site = PerturbationSite(ModelCall(model), batch, layer)
    delta = make_method("pgd", {"steps": 3, "eps": 0.2, "alpha": 0.15, "perturb_layer": layer}).adversarial_delta(site)
    padding = batch["attention_mask"] == 0
    assert delta.shape == (*batch["input_ids"].shape, model.config.hidden_size)
    assert delta[padding].abs().max() == 0 and delta.norm(dim=-1).max() <= 0.2 * (1 + 1e-5)
    assert site.loss(delta) > site.loss(site.zeros())  # an ascent, per choice


def test_a_zero_perturbation_of_choices_is_the_plain_model(tiny, items):
    model, _, batch = mc_batch(tiny[0], items)
    for layer in (None, 0):
        site = PerturbationSite(ModelCall(model), batch, layer)
        torch.testing.assert_close(site.output(site.zeros()).logits, model(**batch).logits)


def test_freelb_bounds_each_item_over_all_its_choices():
    mask = torch.ones(3, 2, 5, 1)
    mask[0, 1, 2:] = 0
    delta = make_method("freelb", {"eps": 0.2}).ascend(
        torch.zeros(3, 2, 5, 4), torch.randn(3, 2, 5, 4, generator=torch.Generator().manual_seed(7)) * 50, mask
    )
    rms = delta.flatten(1).norm(dim=1) / mask.flatten(1).sum(1).sqrt()
    assert torch.all(rms <= 0.2 + 1e-6) and delta[0, 1, 2:].abs().max() == 0
    assert FreeLB._example_norms(delta, mask).shape == (3, 1, 1, 1)


@pytest.mark.parametrize("name", ["standard", "pgd", "freelb", "rs_rp"])
def test_each_method_learns_the_choice_task(tiny, items, name, tmp_path):
    from xltlib.config import RunConfig
    from xltlib.training import Checkpointing, fit

    model, tokenizer = load_classifier(tiny[0], 2, multiple_choice=True)
    config = RunConfig(task="xcopa", model=str(tiny[0]), method=name, learning_rate=3e-3, epochs=4.0, batch_size=16)
    before = (predict(model, tokenizer, items, 64, CPU) == items.label.to_numpy()).mean()
    losses = fit(model, tokenizer, items, config, Checkpointing(tmp_path / "ckpt.pt"), CPU)
    after = (predict(model, tokenizer, items, 64, CPU) == items.label.to_numpy()).mean()
    assert all(math.isfinite(loss) for loss in losses)
    assert after >= 0.8 and after > before


def test_synonym_augmentation_rewrites_premises_and_choices_but_not_the_question(tiny, items):
    _, tokenizer = load_classifier(tiny[0], 2, multiple_choice=True)
    table = SynonymTable({"tok1": ["tok3"], "tok5": ["tok6"]})
    data = SynonymAugmentedPairs(tokenizer, items, 64, CPU, table, rate=1.0, seed=1)
    premises, first, second = data.texts(np.arange(10), 0)
    assert all("tok1 " not in f"{text} " for text in first + second)  # every tok1 replaced at rate 1
    assert data.batch(np.arange(4), 0)["input_ids"].shape[:2] == (4, 2)
    copies = augmented_copies(items, table, copies=2, seed=1)
    assert len(copies) == 3 * len(items) and (copies.question.to_numpy() == np.tile(items.question, 3)).all()
    assert copies.iloc[: len(items)].equals(items)  # the originals come first, untouched


def test_offline_copies_keep_a_word_with_probability_one_over_options_plus_one():
    frame = pd.DataFrame({"text_a": ["alpha"] * 4000, "text_b": ["x"] * 4000, "label": [0] * 4000})
    copy = augmented_copies(frame, SynonymTable({"alpha": ["beta", "gamma"]}), copies=1, seed=0).text_a[4000:]
    shares = copy.value_counts(normalize=True)
    assert set(shares.index) == {"alpha", "beta", "gamma"}
    assert all(abs(share - 1 / 3) < 0.03 for share in shares)


def test_generalized_items_take_premise_and_question_from_a_and_choices_from_b(items):
    other = items.copy()
    other[["text_a", "choice1", "choice2"]] = other[["text_a", "choice1", "choice2"]].map(lambda s: "b " + s)
    mixed = generalized_pairs(items, other)
    assert (mixed.text_a == items.text_a).all() and (mixed.question == items.question).all()
    assert (mixed.choice1 == other.choice1).all() and (mixed.label == items.label).all()


def test_an_xcopa_run_stores_accuracy_and_alignment_on_both_corpora(tiny, shared_data, tmp_path):
    from xltlib.config import RunConfig
    from xltlib.pipeline import ensure_run

    config = RunConfig(
        task="xcopa",
        model=str(tiny[0]),
        data_dir=str(shared_data / "xcopa"),
        tgt_langs=("ht", "zh"),
        tatoeba_dir=str(shared_data / "tatoeba" / "v1"),
        max_train_examples=16,
        max_eval_examples=16,
        batch_size=8,
        eval_split="test",
        generalized_examples=4,
        max_align_sentences=30,
    )
    assert config.train_file.endswith("copa-en/train-en.jsonl")
    results = ensure_run(config, tmp_path / "runs", Logistics("cpu"))
    accuracy = results[results.metric == "accuracy"]
    assert set(accuracy.tgt_lang) == {"ht", "zh", "ht|zh", "zh|ht"}  # English test labels are hidden: left out
    assert accuracy.corpus.isna().all()
    alignment = results[results.metric == "cosine_gap"]
    assert set(zip(alignment.corpus, alignment.tgt_lang)) == {("task", "ht"), ("task", "zh"), ("tatoeba", "zh")}


def test_socialiqa_items_have_three_choices_and_letter_or_digit_labels(shared_data):
    from xltlib.data.loading import from_siqa, load_split
    from xltlib.data.tasks import get_task

    dev = load_split(get_task("siqa"), "en", "dev", shared_data / "xcopa")
    assert len(dev) == 1954 and [c for c in dev.columns if c.startswith("choice")] == ["choice1", "choice2", "choice3"]
    assert set(dev.label) == {0, 1, 2}
    hub_row = {"context": "c", "question": "q?", "answerA": "a", "answerB": "b", "answerC": "x", "label": "3"}
    assert from_siqa(hub_row)["label"] == 2 and from_siqa({**hub_row, "correct": "A"})["label"] == 0


def tiny_xcopa(tiny, shared_data) -> dict:
    """RunConfig fields of a tiny XCOPA run on the shared data (seconds)."""
    return dict(
        task="xcopa",
        model=str(tiny[0]),
        data_dir=str(shared_data / "xcopa"),
        tgt_langs=("zh",),
        max_train_examples=16,
        max_eval_examples=8,
        batch_size=8,
        max_align_sentences=8,
    )


def test_a_first_stage_on_socialiqa_changes_the_model_the_task_stage_starts_from(tiny, shared_data, tmp_path):
    from xltlib.config import RunConfig
    from xltlib.pipeline import FIRST_STAGES, fine_tune
    from xltlib.run_data import load_run_data

    siqa = shared_data / "xcopa" / "siqa" / "socialIQa_v1.4_dev.jsonl"
    settings = tiny_xcopa(tiny, shared_data)
    with pytest.raises(Exception, match="first_stage_file is a SocialIQa stage before a multiple-choice task"):
        RunConfig(**{**settings, "task": "pawsx", "data_dir": None, "tgt_langs": ()}, first_stage_file=str(siqa))
    weights = []
    for first_stage in (None, str(siqa)):
        config = RunConfig(**settings, first_stage_file=first_stage)
        data = load_run_data(config)
        assert (data.first_stage is None) == (first_stage is None)
        run_dir = tmp_path / "runs" / f"{first_stage is None}"
        run_dir.mkdir(parents=True)
        model, _ = fine_tune(config, data, Checkpointing(run_dir / "checkpoint.pt"), CPU, tmp_path / "runs")
        weights.append(model.classifier.weight.detach().clone())
    assert not torch.equal(*weights)
    assert len(list((tmp_path / "runs" / FIRST_STAGES).glob("*/stage.pt"))) == 1


def test_the_first_stage_is_computed_once_per_model_and_seed_and_shared_exactly(tiny, shared_data, tmp_path):
    """Every method of one (model, seed) starts its task stage from one SocialIQa stage, and a run that reads the
    stage ends with the same weights as one that computed it."""
    from xltlib import pipeline
    from xltlib.config import RunConfig
    from xltlib.run_data import load_run_data

    siqa = shared_data / "xcopa" / "siqa" / "socialIQa_v1.4_dev.jsonl"
    config = RunConfig(**tiny_xcopa(tiny, shared_data), first_stage_file=str(siqa))
    data = load_run_data(config)
    stages_fitted = []
    real_fit = pipeline.fit

    def counting_fit(model, tokenizer, train, run_config, *args, **kwargs):
        stages_fitted.append(run_config.method if train is data.first_stage else None)
        return real_fit(model, tokenizer, train, run_config, *args, **kwargs)

    finished = {}
    for runs, method in (("fresh", "standard"), ("shared", "rs_rp"), ("shared", "standard")):
        run_config = dataclasses.replace(config, method=method)
        checkpoint = Checkpointing(tmp_path / runs / method / "checkpoint.pt")
        checkpoint.path.parent.mkdir(parents=True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pipeline, "fit", counting_fit)
            model, _ = pipeline.fine_tune(run_config, data, checkpoint, CPU, tmp_path / runs)
        finished[runs, method] = {k: v.clone() for k, v in model.state_dict().items()}
    assert stages_fitted.count("standard") == 2  # once per runs folder; the second method of "shared" read it
    for name, value in finished["fresh", "standard"].items():
        assert torch.equal(value, finished["shared", "standard"][name]), name
