"""rs_da's offline copies: the ``robust-xlt`` style against Robust-XLT's ``perturb.py`` procedure, and the
``with-originals`` style the runs stored before the choice use."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from xltlib.config import RunConfig
from xltlib.config.methods import SynonymAugmentationParams, validated_params
from xltlib.data.batches import augmented_copies
from xltlib.data.synonyms import SynonymTable
from xltlib.errors import XltError
from xltlib.methods import make_method

NEIGHBOURS = {"Apple": ["Pear", "Plum"], "apple": ["fruit"], "dog": ["hound", "puppy", "cur"], "cat": []}
TEXT_A = "Apple pie , apple. the dog  barked at APPLE and Dog , cat apple"
TEXT_B = "dog. or dog ? Apple"
# What perturb.py can draw for each space-separated token of TEXT_A and TEXT_B: a token with
# trailing punctuation, another case, an empty neighbour list or no entry at all never changes.
OPTIONS_A = {0: {"Apple", "Pear", "Plum"}, 5: {"dog", "hound", "puppy", "cur"}, 14: {"apple", "fruit"}}
OPTIONS_B = {2: {"dog", "hound", "puppy", "cur"}, 4: {"Apple", "Pear", "Plum"}}


def perturb_reference(sentence: str, neighbours: dict[str, list[str]], rng: np.random.Generator) -> str:
    """perturb.py's procedure, written from its description, with a seeded Generator for its global RNG."""
    words = []
    for word in sentence.split(" "):
        options = [word, *neighbours[word]] if neighbours.get(word) else [word]
        words.append(options[rng.integers(len(options))])
    return " ".join(words)


def pairs(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"text_a": [TEXT_A] * rows, "text_b": [TEXT_B] * rows, "label": np.arange(rows) % 3})


def token_counts(texts, position: int) -> pd.Series:
    return pd.Series([text.split(" ")[position] for text in texts]).value_counts()


def test_robust_xlt_copies_change_only_the_tokens_perturb_py_looks_up():
    frame = pairs(500)
    copies = augmented_copies(frame, SynonymTable(NEIGHBOURS), copies=3, seed=7, style="robust-xlt")
    assert len(copies) == 3 * len(frame)  # the copies alone
    assert (copies.label.to_numpy() == np.tile(frame.label, 3)).all()
    for column, text, options in (("text_a", TEXT_A, OPTIONS_A), ("text_b", TEXT_B, OPTIONS_B)):
        words = text.split(" ")
        drawn = [copy.split(" ") for copy in copies[column]]
        assert all(len(copy) == len(words) for copy in drawn)  # single spaces (the double one too) kept
        for position, word in enumerate(words):
            seen = {copy[position] for copy in drawn}
            assert seen == options.get(position, {word}), (column, word)
    unchanged = (copies.text_a == TEXT_A) & (copies.text_b == TEXT_B)
    assert unchanged.mean() == pytest.approx(1 / (3 * 4 * 2 * 4 * 3), abs=0.01)  # an original only when drawn


def test_robust_xlt_draws_are_uniform_and_agree_with_the_reference():
    frame, copies = pairs(3000), 2
    ours = augmented_copies(frame, SynonymTable(NEIGHBOURS), copies, seed=3, style="robust-xlt")
    rng = np.random.default_rng(11)
    theirs = [perturb_reference(TEXT_A, NEIGHBOURS, rng) for _ in range(copies * len(frame))]
    for position, options in OPTIONS_A.items():
        counts = token_counts(ours.text_a, position).reindex(sorted(options), fill_value=0)
        assert stats.chisquare(counts).pvalue > 1e-3, position  # uniform over the word and its neighbours
        reference = token_counts(theirs, position).reindex(sorted(options), fill_value=0)
        assert stats.chi2_contingency([counts, reference]).pvalue > 1e-3, position
    first, second = (ours.text_a[i * len(frame) : (i + 1) * len(frame)].str.split(" ").str[5] for i in range(2))
    assert (first.to_numpy() == second.to_numpy()).mean() == pytest.approx(1 / 4, abs=0.03)  # independent copies


def test_robust_xlt_copies_are_seeded():
    frame, table = pairs(50), SynonymTable(NEIGHBOURS)
    drawn = augmented_copies(frame, table, copies=2, seed=1, style="robust-xlt")
    assert drawn.equals(augmented_copies(frame, table, copies=2, seed=1, style="robust-xlt"))
    assert not drawn.equals(augmented_copies(frame, table, copies=2, seed=2, style="robust-xlt"))


def test_with_originals_keeps_the_training_set_and_looks_words_up_lower_cased():
    frame = pairs(300)
    copies = augmented_copies(frame, SynonymTable(NEIGHBOURS), copies=2, seed=7)
    assert len(copies) == 3 * len(frame) and copies.iloc[: len(frame)].equals(frame)
    words = [text.split(" ") for text in copies.text_a[len(frame) :]]
    # \w+ words, looked up lower-cased ("Apple" and "apple" merge into the last key, "apple": ["fruit"]).
    assert {copy[0] for copy in words} == {"Apple", "Fruit"} and {copy[3] for copy in words} == {"apple.", "fruit."}
    assert {copy[9] for copy in words} == {"APPLE", "FRUIT"}
    assert {copy[11] for copy in words} == {"Dog", "Hound", "Puppy", "Cur"}


def test_copies_style_is_a_later_parameter_whose_default_keeps_run_identities(tmp_path):
    table = tmp_path / "neighbours.json"
    table.write_text(json.dumps(NEIGHBOURS))
    params = {"synonyms_file": str(table), "copies": 3}
    before = RunConfig(task="pawsx", model="xlm-roberta-base", method="rs_da", method_params=params)
    assert before.method_params["copies_style"] == "with-originals"
    assert "copies_style" not in before.identity()["method_params"]
    faithful = RunConfig(**{**before.to_dict(), "method_params": {**params, "copies_style": "robust-xlt"}})
    assert faithful.identity()["method_params"]["copies_style"] == "robust-xlt"
    assert faithful.config_hash() != before.config_hash()
    assert validated_params("rs_da", {"copies": 3, "copies_style": "robust-xlt"}).copies_style == "robust-xlt"
    with pytest.raises(XltError, match="copies_style"):
        validated_params("rs_da", {"copies_style": "robust-xlt"})  # no copies to make
    with pytest.raises(XltError, match="copies_style"):
        validated_params("rs_da", {"copies": 3, "copies_style": "perturb"})
    assert SynonymAugmentationParams().copies_style == "with-originals"


def test_the_counterfitted_table_substitutes_fewer_words_in_robust_xlt_style(shared_data):
    table = SynonymTable.from_json(shared_data / "synonyms" / "counterfitted_neighbors.json")
    frame = pd.DataFrame({"text_a": ["Movies like this movie."] * 200, "text_b": ["I liked it"] * 200, "label": 0})
    faithful = augmented_copies(frame, table, copies=1, seed=0, style="robust-xlt")
    assert set(faithful.text_a.str.split(" ").str[0]) == {"Movies"}  # no capitalised key
    assert set(faithful.text_a.str.split(" ").str[3]) == {"movie."}  # punctuation attached
    assert len(set(faithful.text_b.str.split(" ").str[1])) > 1  # "liked" has neighbours
    with_originals = augmented_copies(frame, table, copies=1, seed=0).text_a[200:]
    assert len(set(with_originals.str.split(" ").str[3])) > 1


def test_rs_da_trains_on_the_copies_of_its_style(tiny_xlmr, tmp_path):
    from transformers import AutoTokenizer

    path, corpus = tiny_xlmr(words=20, lengths=(3, 8), documents=40, vocab_size=80)
    table = tmp_path / "neighbours.json"
    table.write_text('{"tok1": ["tok2"]}')
    frame = pd.DataFrame({"text_a": corpus[:20], "text_b": corpus[20:], "label": [0, 1] * 10})
    for style, rows in (("robust-xlt", 40), ("with-originals", 60)):
        params = {"synonyms_file": str(table), "copies": 2, "copies_style": style}
        config = RunConfig(task="pawsx", model=str(path), method="rs_da", method_params=params)
        data = make_method("rs_da", config.method_params).training_data(
            frame, AutoTokenizer.from_pretrained(path), config, torch.device("cpu")
        )
        assert len(data) == rows, style
