"""Training's speed paths (length-grouped batches, SDPA attention, non-blocking copies), exercised on the CPU."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from xltlib.config import RunConfig
from xltlib.config.run import LATER_FIELDS
from xltlib.data.batches import SynonymAugmentedPairs, TokenizedPairs
from xltlib.data.synonyms import SynonymTable
from xltlib.models import load_classifier, load_encoder
from xltlib.training import Checkpointing, StepPlan, fit

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(tiny_xlmr):
    return tiny_xlmr(words=30, lengths=(2, 40), documents=400, vocab_size=80)


@pytest.fixture(scope="module")
def pairs(tiny):
    _, corpus = tiny
    return pd.DataFrame({"text_a": corpus[:200], "text_b": corpus[200:400], "label": [i % 2 for i in range(200)]})


def padded_tokens(data, plan: StepPlan) -> tuple[int, int]:
    """(padding tokens, real tokens) over one epoch of ``plan``'s batches."""
    lengths = np.asarray(data.lengths())
    padding = real = 0
    for step in range(plan.steps_per_epoch):
        rows = np.concatenate(plan.micro_batches(step))
        padding += int((lengths[rows].max() - lengths[rows]).sum())
        real += int(lengths[rows].sum())
    return padding, real


def test_length_grouped_batches_pad_far_less_and_still_see_every_row_once(tiny, pairs):
    _, tokenizer = load_classifier(tiny[0], 2)
    data = TokenizedPairs(tokenizer, pairs, 128, CPU)
    grouped = StepPlan(len(data), 8, seed=1, epochs=1.0, lengths=data.lengths())
    shuffled = StepPlan(len(data), 8, seed=1, epochs=1.0)
    assert sorted(
        np.concatenate([np.concatenate(grouped.micro_batches(s)) for s in range(grouped.steps_per_epoch)])
    ) == list(range(200))
    assert padded_tokens(data, grouped)[0] < 0.5 * padded_tokens(data, shuffled)[0]
    batch = data.batch(np.concatenate(grouped.micro_batches(0)), 0)
    assert batch["input_ids"].shape[1] == max(data.lengths()[i] for i in grouped.micro_batches(0)[0])  # dynamic padding


def test_synonym_augmented_rows_report_their_lengths(tiny, pairs):
    _, tokenizer = load_classifier(tiny[0], 2)
    data = SynonymAugmentedPairs(tokenizer, pairs, 128, CPU, SynonymTable({"tok1": ["tok2"]}), rate=0.5, seed=1)
    assert data.lengths() == TokenizedPairs(tokenizer, pairs, 128, CPU).lengths()


def test_fine_tuning_with_grouped_batches_learns_and_is_its_own_configuration(tiny, pairs, tmp_path):
    model, tokenizer = load_classifier(tiny[0], 2)
    config = RunConfig(
        task="pawsx", model=str(tiny[0]), group_by_length=True, batch_size=16, epochs=1.0, learning_rate=1e-3
    )
    losses = fit(model, tokenizer, pairs, config, Checkpointing(tmp_path / "checkpoint.pt"), CPU)
    assert len(losses) == 13 and all(np.isfinite(losses))
    plain = RunConfig(task="pawsx", model=str(tiny[0]), batch_size=16, epochs=1.0, learning_rate=1e-3)
    assert config.run_id() != plain.run_id()


def test_fields_added_later_leave_a_run_identity_unchanged_at_their_defaults():
    config = RunConfig(
        task="pawsx", model="xlm-roberta-base", method="rs_da", method_params={"synonyms_file": "README.md"}
    )
    identity = config.identity()
    assert not set(LATER_FIELDS) & set(identity) and "copies" not in identity["method_params"]
    for changed in (
        {"group_by_length": True},
        {"select_checkpoint": "source_dev"},
        {"method_params": {"synonyms_file": "README.md", "copies": 2}},
    ):
        other = RunConfig(**{**config.to_dict(), "tgt_langs": config.tgt_langs, **changed})
        assert other.config_hash() != config.config_hash(), changed


def test_models_load_with_sdpa_attention(tiny):
    assert load_classifier(tiny[0], 2)[0].config._attn_implementation == "sdpa"
    assert load_encoder(tiny[0])[0].config._attn_implementation == "sdpa"
