"""Tiny XLM-R builds offline and loads exactly the way `xlm-roberta-base` does."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    XLMRobertaForSequenceClassification,
    XLMRobertaModel,
    XLMRobertaTokenizer,
)

from xltlib import models
from xltlib.errors import XltError
from xltlib.models import TinyXlmrSpec, build_tiny_xlmr, load_classifier, load_encoder, tiny_xlmr

# Optional real text, same location rule as conftest's `shared_data` (but never skips).
SHARED_DATA = Path(os.environ.get("XLT_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
PAWSX_DEV_EN = SHARED_DATA / "pawsx" / "xtreme" / "dev-en.tsv"


def make_corpus(n: int = 200, seed: int = 0) -> list[str]:
    """Sentences in two made-up languages plus English (and a few PAWS-X lines when present)."""
    rng = random.Random(seed)
    syllables = {"lang_a": ["ka", "lo", "mi", "tu", "zé", "ra"], "lang_b": ["pön", "vel", "ish", "ûr"]}
    english = "the quick brown fox jumps over a lazy dog while it rains in the city".split()
    texts = []
    for i in range(n):
        sylls = syllables["lang_a" if i % 2 else "lang_b"]
        words = ["".join(rng.choices(sylls, k=rng.randint(1, 3))) for _ in range(rng.randint(3, 10))]
        texts.append(" ".join(words) + ".")
        texts.append(" ".join(rng.choices(english, k=rng.randint(4, 12))).capitalize() + ".")
    if PAWSX_DEV_EN.exists():
        with PAWSX_DEV_EN.open(encoding="utf-8") as lines:
            texts += [line.split("\t")[0] for _, line in zip(range(50), lines)]
    return texts


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return make_corpus()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, corpus: list[str]) -> Path:
    return build_tiny_xlmr(tmp_path_factory.mktemp("models") / "tiny", corpus)


def saved_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def test_reloads_through_auto_classes(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=3)
    assert isinstance(tokenizer, XLMRobertaTokenizer)
    assert isinstance(model, XLMRobertaForSequenceClassification)
    assert model.config.num_labels == 3
    assert model.config.vocab_size == len(tokenizer)


def test_special_token_ids_match_xlmr(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    ids = tokenizer.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"])
    assert ids == [0, 1, 2, 3]
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.unk_token_id == 3
    assert tokenizer.mask_token_id == len(tokenizer) - 1


def test_pair_template_and_padding(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    ids = tokenizer("the fox jumps", "kalo mi tu.")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    first_eos = ids.index(2)
    assert ids[first_eos + 1] == 2 and 2 not in ids[1:first_eos] and 2 not in ids[first_eos + 2 : -1]

    batch = tokenizer(["the fox", "a lazy dog jumps over the city"], padding=True, return_tensors="pt")
    short_len = int(batch["attention_mask"][0].sum())
    assert (batch["input_ids"][0, short_len:] == 1).all()
    assert (batch["attention_mask"][0, short_len:] == 0).all()
    assert batch["input_ids"].shape[1] > short_len


def test_classifier_forward_on_padded_batch(tiny_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        model, tokenizer = load_classifier(str(tiny_dir), num_labels=3, device="cpu")
    assert not caplog.records  # the expected "newly initialized head" report is silenced
    assert isinstance(model, XLMRobertaForSequenceClassification)
    assert model.dtype == torch.float32
    batch = tokenizer(
        ["the fox", "pönvel ish ûr", "kalo"], ["a dog", "rains", "zé ra"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (3, 3)
    assert torch.isfinite(logits).all()


def test_max_length_fills_position_embeddings(tiny_dir: Path) -> None:
    """128 tokens + XLM-R's pad offset must fit the 130 position embeddings."""
    model, tokenizer = load_encoder(tiny_dir)
    assert isinstance(model, XLMRobertaModel)
    batch = tokenizer(["the fox " * 300], truncation=True, return_tensors="pt")
    assert batch["input_ids"].shape == (1, TinyXlmrSpec().max_length) == (1, 128)
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape == (1, 128, TinyXlmrSpec().hidden_size)


def test_vocab_size_caps_tokenizer_and_mask_stays_last(tmp_path: Path, corpus: list[str]) -> None:
    capped = build_tiny_xlmr(tmp_path / "capped", corpus, TinyXlmrSpec(vocab_size=120))
    tokenizer = AutoTokenizer.from_pretrained(capped)
    assert len(tokenizer) == 120 and tokenizer.mask_token_id == 119

    small = build_tiny_xlmr(tmp_path / "small", ["ka lo", "mi tu"])  # far fewer pieces than 2000
    model, tokenizer = load_classifier(small, num_labels=2)
    assert len(tokenizer) < TinyXlmrSpec().vocab_size
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.mask_token_id == len(tokenizer) - 1


def test_same_inputs_give_identical_builds(tmp_path: Path, corpus: list[str], tiny_dir: Path) -> None:
    again = build_tiny_xlmr(tmp_path / "again", corpus)
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_dir / name).read_bytes(), name
    first, second = saved_weights(tiny_dir), saved_weights(again)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_different_seed_gives_different_weights(tmp_path: Path, corpus: list[str], tiny_dir: Path) -> None:
    other = build_tiny_xlmr(tmp_path / "seed1", corpus, TinyXlmrSpec(seed=1))
    assert (other / "tokenizer.json").read_bytes() == (tiny_dir / "tokenizer.json").read_bytes()
    first, second = saved_weights(tiny_dir), saved_weights(other)
    key = "roberta.embeddings.word_embeddings.weight"
    assert first[key].shape == second[key].shape and not torch.equal(first[key], second[key])


def test_cache_builds_once(tmp_path: Path, corpus: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = TinyXlmrSpec(vocab_size=200)
    path = tiny_xlmr(tmp_path, iter(corpus), spec)  # any iterable; it is read twice internally
    assert (path / "model.safetensors").is_file()

    def no_rebuild(*_: object) -> Path:
        raise AssertionError("cached model was rebuilt")

    monkeypatch.setattr(models, "build_tiny_xlmr", no_rebuild)
    assert tiny_xlmr(tmp_path, corpus, spec) == path
    with pytest.raises(AssertionError):
        tiny_xlmr(tmp_path, corpus[:-1], spec)  # another corpus is another model
    with pytest.raises(AssertionError):
        tiny_xlmr(tmp_path, corpus, TinyXlmrSpec(vocab_size=200, seed=3))


def test_build_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_: object) -> None:
        raise RuntimeError("simulated crash while building")

    monkeypatch.setattr(models, "init_model", crash)
    with pytest.raises(RuntimeError):
        build_tiny_xlmr(tmp_path / "tiny", ["ka lo mi"])
    assert list(tmp_path.iterdir()) == []  # neither the model folder nor a temporary one


def test_build_refuses_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "tiny").mkdir()
    with pytest.raises(XltError, match="already exists"):
        build_tiny_xlmr(tmp_path / "tiny", ["ka lo mi"])


def test_missing_model_raises_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(XltError) as info:
        load_classifier(str(missing), num_labels=3)
    message = str(info.value)
    assert str(missing) in message and "build_tiny_xlmr" in message and "\n" not in message
    with pytest.raises(XltError, match="no-such-model"):
        load_encoder(missing)
