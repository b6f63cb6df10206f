"""The causal arm's Procrustes surgery: the map against a float64 reference, and the head it feeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import linalg
from scipy.stats import ortho_group

from xltlib.evaluation.accuracy import predict
from xltlib.evaluation.surgery import DOSES, cls_states, mapped, procrustes_map, surgery_rows
from xltlib.models import load_classifier


def test_procrustes_matches_scipy_in_float64_and_recovers_a_planted_rotation():
    rng = np.random.default_rng()
    source = rng.normal(size=(200, 16))
    rotation = ortho_group.rvs(16, random_state=rng)
    target = (source - source.mean(0)) @ rotation.T + 3.0 + rng.normal(scale=1e-3, size=source.shape)
    fitted = procrustes_map(torch.as_tensor(source), torch.as_tensor(target))
    reference, _ = linalg.orthogonal_procrustes(target - target.mean(0), source - source.mean(0))
    np.testing.assert_allclose(fitted[0].numpy(), reference, atol=1e-10)
    np.testing.assert_allclose(fitted[0].numpy(), rotation, atol=1e-3)
    np.testing.assert_allclose(fitted[0].T @ fitted[0], np.eye(16), atol=1e-10)
    np.testing.assert_allclose(mapped(torch.as_tensor(target), fitted, 1.0).numpy(), source, atol=1e-2)
    assert torch.equal(mapped(torch.as_tensor(target), fitted, 0.0), torch.as_tensor(target))


@pytest.fixture(scope="module")
def classifier(tiny_xlmr):
    path, corpus = tiny_xlmr(40, (3, 8), 300, 120)
    model, tokenizer = load_classifier(path, 3, "cpu")
    return model, tokenizer, corpus


def frame(sentences, labels) -> pd.DataFrame:
    return pd.DataFrame({"text_a": sentences[0::2], "text_b": sentences[1::2], "label": labels})


def test_the_head_on_unmoved_states_is_the_model_and_a_copy_of_the_source_stays_put(classifier):
    model, tokenizer, corpus = classifier
    torch.manual_seed(0)
    labels = np.random.default_rng(0).integers(0, 3, 60)
    source, shuffled = frame(corpus[:120], labels), frame(corpus[120:240], labels)
    sets = {"src": source, "copy": source.copy(), "other": shuffled, "short": source.iloc[:10]}
    rows = pd.DataFrame(
        surgery_rows(model, tokenizer, sets, "src", ["copy", "other", "short"], 32, torch.device("cpu"))
    )
    assert set(rows.tgt_lang) == {"copy", "other"}  # a test set that is not parallel to the source is skipped
    assert (
        set(rows.corpus) == {f"surgery-{dose:g}" for dose in DOSES}
        and (rows.layer == model.config.num_hidden_layers).all()
    )
    held_out = shuffled.iloc[1::2]
    own = (predict(model, tokenizer, held_out, 32, torch.device("cpu")) == held_out.label.to_numpy()).mean()
    unmoved = rows.query("tgt_lang == 'other' and corpus == 'surgery-0' and metric == 'surgery_accuracy'").value
    assert unmoved.iloc[0] == pytest.approx(own)
    copy = rows[(rows.tgt_lang == "copy") & (rows.metric == "surgery_accuracy")].value
    assert copy.nunique() == 1  # the map of a language onto itself is the identity
    gaps = rows[(rows.tgt_lang == "other") & (rows.metric == "surgery_cosine_gap")].set_index("corpus").value
    assert gaps["surgery-1"] > gaps["surgery-0"]
    states = cls_states(model, tokenizer, source, 32, torch.device("cpu"), 7)
    assert states.shape == (60, model.config.hidden_size) and torch.isfinite(states).all()
