"""Alignment kernels against slow float64 references, plus invariants, plus encode()."""

import numpy as np
import pandas as pd
import pytest
import torch

from xltlib.config import POOLINGS
from xltlib.data.parallel import parallel_rows
from xltlib.evaluation import alignment, kernels
from xltlib.models import load_encoder

# ---- float64 references: the textbook formulas with full N×N matrices ----


def ref_cosine_matrix(x, y):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return x @ y.T


def ref_cosine_gap(x, y):
    sim = ref_cosine_matrix(x, y)
    off = ~np.eye(len(x), dtype=bool)
    return np.diag(sim).mean() - sim[off].mean()


def ref_retrieval(x, y, scoring, k=4):
    """Margin as LASER/XTREME: cosine k-NN candidates, rescored. CSLS as MUSE: every candidate ranked."""
    sim = ref_cosine_matrix(x, y)
    r_src = np.sort(sim, axis=1)[:, -k:].mean(axis=1)
    r_tgt = np.sort(sim, axis=0)[-k:, :].mean(axis=0)
    hits = 0
    for i in range(len(x)):
        if scoring == "cosine":
            best = np.argmax(sim[i])
        else:
            candidates = np.argsort(-sim[i])[:k] if scoring == "margin" else np.arange(len(y))
            if scoring == "margin":
                scores = [sim[i, j] / ((r_src[i] + r_tgt[j]) / 2) for j in candidates]
            else:
                scores = [2 * sim[i, j] - r_src[i] - r_tgt[j] for j in candidates]
            best = candidates[int(np.argmax(scores))]
        hits += best == i
    return hits / len(x)


def ref_center_gram(gram, unbiased):
    """Kornblith et al. (2019) reference code, float64."""
    gram = gram.copy()
    n = gram.shape[0]
    if unbiased:
        np.fill_diagonal(gram, 0)
        means = gram.sum(0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0)
    else:
        means = gram.mean(0)
        means -= means.mean() / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def ref_cka(x, y, debiased):
    gx, gy = ref_center_gram(x @ x.T, debiased), ref_center_gram(y @ y.T, debiased)
    return gx.ravel() @ gy.ravel() / (np.linalg.norm(gx) * np.linalg.norm(gy))


@pytest.fixture
def pair():
    """Fresh random pairs each time: y is x plus noise strong enough to make retrieval imperfect."""
    rng = np.random.default_rng(101)
    x = rng.standard_normal((300, 48)) + 0.5
    y = x + 1.3 * rng.standard_normal((300, 48))
    return x, y


def f32(a):
    return a.astype(np.float32)


def test_parallel_cosine_and_gap_match_reference(pair):
    x, y = pair
    sim = ref_cosine_matrix(x, y)
    assert kernels.parallel_cosine(f32(x), f32(y)) == pytest.approx(np.diag(sim).mean(), rel=1e-5, abs=1e-6)
    assert kernels.cosine_gap(f32(x), f32(y)) == pytest.approx(ref_cosine_gap(x, y), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("scoring", kernels.SCORINGS)
@pytest.mark.parametrize("tile", [None, (7, 11), (300, 3)])
def test_retrieval_matches_reference_in_both_directions(pair, scoring, tile):
    x, y = pair
    forward, backward = kernels.retrieval_accuracy_both(torch.tensor(f32(x)), torch.tensor(f32(y)), scoring, tile=tile)
    assert forward == pytest.approx(ref_retrieval(x, y, scoring))
    assert backward == pytest.approx(ref_retrieval(y, x, scoring))
    assert kernels.retrieval_accuracy(f32(x), f32(y), scoring, tile=tile) == forward
    assert 0.05 < forward < 1  # the inputs make a non-trivial test


def ref_csls_among_neighbours(x, y, k=4):
    """The k-candidate CSLS this project used before (and LASER's margin still uses): not MUSE's CSLS."""
    sim = ref_cosine_matrix(x, y)
    r_src, r_tgt = np.sort(sim, axis=1)[:, -k:].mean(axis=1), np.sort(sim, axis=0)[-k:, :].mean(axis=0)
    candidates = np.argsort(-sim, axis=1)[:, :k]
    scores = 2 * np.take_along_axis(sim, candidates, 1) - r_src[:, None] - r_tgt[candidates]
    return float((candidates[np.arange(len(x)), scores.argmax(axis=1)] == np.arange(len(x))).mean())


@pytest.mark.parametrize("tile", [None, (7, 11), (64, 5)])
def test_csls_ranks_every_candidate_on_data_with_hubs(tile):
    """Hubs (targets at the direction every sentence shares) fill many queries' k cosine neighbours;
    CSLS's penalty r_c sends those queries to a candidate beyond the k, often the translation."""
    rng = np.random.default_rng(102)
    shared = rng.standard_normal(32)
    shared *= np.sqrt(32) / np.linalg.norm(shared)
    x = shared + rng.standard_normal((400, 32))
    y = x + rng.standard_normal((400, 32))
    y[:10] = shared + 0.3 * rng.standard_normal((10, 32))  # 10 hubs
    forward, backward = kernels.retrieval_accuracy_both(f32(x), f32(y), "csls", tile=tile)
    assert forward == pytest.approx(ref_retrieval(x, y, "csls"), abs=1 / 400)
    assert backward == pytest.approx(ref_retrieval(y, x, "csls"), abs=1 / 400)
    assert abs(ref_retrieval(x, y, "csls") - ref_csls_among_neighbours(x, y)) >= 4 / 400  # the data tells them apart


def ref_strong_retrieval(x, y):
    """Float64: the translation must beat every other row of both languages (Gaschi et al. 2023)."""
    cross, own = ref_cosine_matrix(x, y), ref_cosine_matrix(x, x)
    np.fill_diagonal(own, -np.inf)
    best_cross = cross.argmax(axis=1)
    return float(((best_cross == np.arange(len(x))) & (np.diag(cross) > own.max(axis=1))).mean())


@pytest.mark.parametrize("tile", [None, (7, 11)])
def test_strong_retrieval_matches_reference_and_is_at_most_plain_retrieval(tile):
    rng = np.random.default_rng(103)
    x = rng.standard_normal((300, 24)) + 0.5
    y = x + 0.9 * rng.standard_normal((300, 24))
    x[150:] = x[:150] + 0.3 * rng.standard_normal((150, 24))  # near-duplicate rows: same-language distractors
    forward, backward = kernels.strong_retrieval_accuracy_both(f32(x), f32(y), tile=tile)
    assert forward == pytest.approx(ref_strong_retrieval(x, y), abs=1 / 300)
    assert backward == pytest.approx(ref_strong_retrieval(y, x), abs=1 / 300)
    plain = kernels.retrieval_accuracy_both(f32(x), f32(y), "cosine")
    assert forward <= plain[0] and backward <= plain[1] and forward < plain[0]  # the distractors cost something
    assert kernels.strong_retrieval_accuracy_both(f32(x), f32(x)) == (1.0, 1.0)  # identical: always the translation


def test_encode_words_is_the_mean_of_each_words_subword_states(encoder):
    model, tokenizer, corpus = encoder
    sentences = [s for s in corpus if len(s.split()) >= 6][:3]
    chosen = [[0, 3], [1, 4, 5], []]
    words = alignment.encode_words(model, tokenizer, sentences, chosen, batch_size=2)  # padded batches
    assert words.shape == (model.config.num_hidden_layers + 1, 5, model.config.hidden_size)
    column = 0
    for sentence, indices in zip(sentences, chosen):
        batch = tokenizer([sentence.split()], is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            hidden = torch.stack(model(**batch, output_hidden_states=True).hidden_states)[:, 0]
        word_ids = batch.word_ids(0)
        for index in indices:
            tokens = [t for t, w in enumerate(word_ids) if w == index]
            assert torch.allclose(words[:, column], hidden[:, tokens].mean(dim=1), atol=1e-5)
            column += 1
    with pytest.raises(ValueError, match="word 5 was truncated away"):  # its translation would have no partner
        alignment.encode_words(model, tokenizer, sentences[1:2], [[0, 5]], max_length=4)


def test_word_metrics_encode_the_source_once_and_match_a_pass_per_target(encoder):
    """The source words are encoded once for every target; each target's word metrics are those of its own pass."""
    model, tokenizer, corpus = encoder
    rng = np.random.default_rng(148)
    sentences = [s for s in corpus if len(s.split()) >= 4][:12]
    frame = pd.DataFrame({"src": sentences, "near": sentences[::-1], "far": sentences[1:] + sentences[:1]})
    frame.loc[2, "far"] = ""  # not a usable row for "far": its rows differ from "near"'s
    alignments = {
        lang: [list(zip(rng.permutation(4)[:3].tolist(), rng.permutation(4)[:3].tolist())) for _ in sentences]
        for lang in ("near", "far")
    }
    measured = pd.DataFrame(
        alignment.measure_alignment(
            model, tokenizer, frame, "src", ["near", "far"], batch_size=5, word_alignments=alignments
        )
    )
    for lang in ("near", "far"):
        rows = parallel_rows(frame["src"], frame[lang])[: alignment.WORD_SENTENCES]
        pairs = [alignments[lang][row] for row in rows]
        sides = [
            alignment.encode_words(
                model, tokenizer, frame[column].iloc[rows].tolist(), [[p[side] for p in row] for row in pairs], 5
            )
            for side, column in ((0, "src"), (1, lang))
        ]
        expected = pd.DataFrame(alignment.alignment_metrics(*sides, tuple(alignment.WORD_METRICS), pooling="word"))
        got = measured[(measured.tgt_lang == lang) & (measured.pooling == "word")]
        np.testing.assert_allclose(got["value"].to_numpy(), expected["value"].to_numpy(), atol=1e-6)
        assert len(got) == len(expected) > 0


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matches_gram_matrix_reference(pair, debiased):
    x, y = pair
    assert kernels.linear_cka(f32(x), f32(y), debiased) == pytest.approx(ref_cka(x, y, debiased), rel=1e-5)


def test_cka_handles_different_widths():
    rng = np.random.default_rng(104)
    x, y = rng.standard_normal((100, 16)), rng.standard_normal((100, 40))
    assert kernels.linear_cka(f32(x), f32(y)) == pytest.approx(ref_cka(x, y, False), rel=1e-5)


def test_identical_inputs_retrieve_everything_and_have_cka_one(pair):
    x = f32(pair[0])
    for scoring in kernels.SCORINGS:
        assert kernels.retrieval_accuracy_both(x, x, scoring) == (1.0, 1.0)
    assert kernels.linear_cka(x, x) == pytest.approx(1.0, rel=1e-5)
    assert kernels.linear_cka(x, x, debiased=True) == pytest.approx(1.0, rel=1e-5)


def test_cosine_gap_of_identical_inputs_is_one_minus_mean_off_diagonal(pair):
    x = pair[0]
    sim = ref_cosine_matrix(x, x)
    expected = 1 - sim[~np.eye(len(x), dtype=bool)].mean()
    assert kernels.cosine_gap(f32(x), f32(x)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_invariant_to_rotation_and_isotropic_scaling(pair, debiased):
    x, y = pair
    q, _ = np.linalg.qr(np.random.default_rng(105).standard_normal((48, 48)))
    base = kernels.linear_cka(f32(x), f32(y), debiased)
    assert kernels.linear_cka(f32(x @ q * 7.5), f32(y), debiased) == pytest.approx(base, rel=1e-4)


def test_permuted_targets_drop_retrieval_to_chance():
    rng = np.random.default_rng(106)
    x = rng.standard_normal((2000, 32)).astype(np.float32)
    y = x + 0.1 * rng.standard_normal(x.shape).astype(np.float32)
    assert kernels.retrieval_accuracy(x, y) > 0.99
    shuffled = y[rng.permutation(len(y))]
    for scoring in kernels.SCORINGS:
        assert kernels.retrieval_accuracy(x, shuffled, scoring) < 0.01  # chance is 1/2000


def test_low_precision_inputs_accumulate_in_float32(pair):
    x, y = (torch.tensor(f32(a)).to(torch.bfloat16) for a in pair)
    assert kernels.linear_cka(x, y) == pytest.approx(ref_cka(*pair, False), rel=2e-2)
    assert kernels.parallel_cosine(x, y) == pytest.approx(np.diag(ref_cosine_matrix(*pair)).mean(), rel=2e-2)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="row-aligned"):
        kernels.cosine_gap(np.ones((3, 4)), np.ones((4, 4)))
    with pytest.raises(Exception, match="did you mean 'margin'"):
        kernels.retrieval_accuracy(np.eye(3), np.eye(3), scoring="margn")


def test_metric_rows_are_flat_and_named():
    rng = np.random.default_rng(0)
    src = torch.tensor(rng.standard_normal((3, 50, 8)), dtype=torch.float32)
    rows = alignment.alignment_metrics(src, src, layers=[0, 6, 12], pooling="cls")
    assert {row["metric"] for row in rows} == set(alignment.METRICS)
    assert {row["layer"] for row in rows} == {0, 6, 12} and {row["pooling"] for row in rows} == {"cls"}
    assert all(row["value"] == pytest.approx(1.0, rel=1e-5) for row in rows if row["metric"] != "cosine_gap")


@pytest.fixture(scope="module")
def encoder(tiny_xlmr):
    path, corpus = tiny_xlmr(words=50, lengths=(2, 20), documents=200, vocab_size=100, prefix="w")
    model, tokenizer = load_encoder(path)
    return model, tokenizer, corpus


@pytest.mark.parametrize("pooling", POOLINGS)
def test_encode_excludes_padding_and_keeps_input_order(encoder, pooling):
    model, tokenizer, corpus = encoder
    sentence = corpus[3]
    alone = alignment.encode(model, tokenizer, [sentence], pooling=pooling)
    long_neighbours = [s for s in corpus if len(s) > 3 * len(sentence)][:5]
    batched = alignment.encode(model, tokenizer, long_neighbours + [sentence], pooling=pooling, batch_size=8)
    assert alone.shape == (model.config.num_hidden_layers + 1, 1, model.config.hidden_size)
    torch.testing.assert_close(batched[:, -1], alone[:, 0], rtol=1e-5, atol=1e-5)
    many = alignment.encode(model, tokenizer, corpus[:40], layers=[0, 2], pooling=pooling, batch_size=4)
    one_by_one = torch.cat(
        [alignment.encode(model, tokenizer, [s], layers=[0, 2], pooling=pooling) for s in corpus[:40]], 1
    )
    torch.testing.assert_close(many, one_by_one, rtol=1e-5, atol=1e-5)
