"""Cross-lingual alignment of an encoder: pooled embeddings of every layer, scored by the metric registry.

:data:`METRICS` names each sentence-level metric the results store holds and its kernel
(:mod:`xltlib.evaluation.kernels`); a metric is a function of two ``[N, d]`` embedding
matrices (row i of one is the translation of row i of the other) returning a float. To add
one: write its kernel and register it here. :data:`WORD_METRICS` are the same kind of
function applied to contextual *word* embeddings of aligned words (Gaschi et al. 2023), where
the data know each word's translation (the synthetic languages).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from xltlib.config import POOLINGS
from xltlib.data.batches import length_sorted_batches
from xltlib.data.parallel import parallel_rows
from xltlib.errors import unknown
from xltlib.evaluation.kernels import (
    cosine_gap,
    linear_cka,
    parallel_cosine,
    retrieval_accuracy_both,
    strong_retrieval_accuracy_both,
)
from xltlib.models import autocast_for


def _retrieval_both_ways(scoring: str) -> Callable[[torch.Tensor, torch.Tensor], float]:
    def metric(x: torch.Tensor, y: torch.Tensor) -> float:
        return sum(retrieval_accuracy_both(x, y, scoring)) / 2

    return metric


# Metric registry: result-store name → kernel of (src, tgt). One entry per DESIGN.md §3 name.
# Retrieval is the mean of the src→tgt and tgt→src accuracies (DESIGN.md: both directions).
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "parallel_cosine": parallel_cosine,
    "cosine_gap": cosine_gap,
    "retrieval_cosine": _retrieval_both_ways("cosine"),
    "retrieval_margin": _retrieval_both_ways("margin"),
    "retrieval_csls": _retrieval_both_ways("csls"),
    "cka": linear_cka,
    "cka_debiased": lambda x, y: linear_cka(x, y, debiased=True),
}


WORD_METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "word_retrieval": _retrieval_both_ways("cosine"),
    "word_retrieval_strong": lambda x, y: sum(strong_retrieval_accuracy_both(x, y)) / 2,
}
"""Contextual word retrieval, plain and "strong" (with same-language distractors): each aligned
source word in its sentence retrieves its translation among every aligned target word."""

WORD_SENTENCES = 250
"""Word metrics use the first this-many usable parallel rows (~2,400 aligned words on the synthetic
languages). Word retrieval is quadratic in words: on all 1,000 rows (~10,000 words) it took
two thirds of a run's alignment time, for a metric whose ranking of runs is what matters."""


def alignment_metrics(
    src: torch.Tensor,
    tgt: torch.Tensor,
    metrics: Sequence[str] = tuple(METRICS),
    layers: Sequence[int] | None = None,
    pooling: str = "mean",
) -> list[dict]:
    """Flat ``{layer, pooling, metric, value}`` rows for ``[layers, N, d]`` embeddings of both sides."""
    registry = METRICS | WORD_METRICS
    for name in metrics:
        if name not in registry:
            raise unknown("alignment metric", name, registry)
    layers = range(src.shape[0]) if layers is None else layers
    return [
        {"layer": layer, "pooling": pooling, "metric": name, "value": registry[name](src[i], tgt[i])}
        for i, layer in enumerate(layers)
        for name in metrics
    ]


def measure_alignment(
    encoder,
    tokenizer,
    corpus: pd.DataFrame,
    src_lang: str,
    tgt_langs: Sequence[str],
    pooling: str = "mean",
    max_length: int = 128,
    batch_size: int = 64,
    device: torch.device | None = None,
    metrics: Sequence[str] = tuple(METRICS),
    word_alignments: dict[str, list[list[tuple[int, int]]]] | None = None,
) -> list[dict]:
    """``{tgt_lang, layer, pooling, metric, value}`` rows: every layer, source vs each target language, and the
    last layer's ``<s>`` state (``pooling="cls"``: what the task head reads) beside ``pooling``.

    ``corpus`` has one column of line-aligned sentences per language
    (:func:`xltlib.data.parallel.parallel_corpus`). The source is encoded once; each target only on
    the rows usable for its pair (:func:`xltlib.data.parallel.parallel_rows`), one language at a
    time so memory holds two languages' embeddings, not all of them. ``word_alignments``
    (target → each row's (source word, target word) pairs) adds :data:`WORD_METRICS` rows for those targets,
    measured on the first :data:`WORD_SENTENCES` usable rows.
    """
    settings = (batch_size, max_length, device)
    on_device = {"last_cls": True, "keep_on_device": True}  # the kernels run where the embeddings are: the GPU
    source, source_cls = encode(encoder, tokenizer, corpus[src_lang].tolist(), "all", pooling, *settings, **on_device)
    last = source.shape[0] - 1
    rows = []
    targets = [lang for lang in tgt_langs if lang != src_lang]
    words = _WordMetrics(encoder, tokenizer, corpus, src_lang, word_alignments or {}, batch_size, max_length, device)
    for lang in tqdm(targets, desc="alignment", unit="language", disable=len(targets) < 2):
        keep = parallel_rows(corpus[src_lang], corpus[lang])
        sentences = corpus[lang].iloc[keep].tolist()
        target, target_cls = encode(encoder, tokenizer, sentences, "all", pooling, *settings, **on_device)
        kept = torch.as_tensor(keep, device=source.device)
        measured = alignment_metrics(source[:, kept], target, metrics, pooling=pooling)
        if pooling != "cls":  # and the last layer's <s>, the state the task head reads
            pair = source_cls[None, kept], target_cls[None]
            measured += alignment_metrics(*pair, metrics, layers=[last], pooling="cls")
        if word_alignments and lang in word_alignments:
            measured += words.measure(lang, keep[:WORD_SENTENCES])
        rows += [{"tgt_lang": lang, **row} for row in measured]
    return rows


class _WordMetrics:
    """:data:`WORD_METRICS` of each target, with the source side encoded once per set of rows, not once per target.

    For each row it encodes every source word any target aligns (one pass over the rows, in
    :func:`encode_words`' batches), then picks each target's words from them. A word's vector
    depends only on its sentence's batch, so the picked vectors are the ones a per-target pass
    would give, at a ninth of the source's encoding time on the synthetic profile's nine targets.
    """

    def __init__(self, encoder, tokenizer, corpus, src_lang, word_alignments, batch_size, max_length, device):
        self.encode = lambda lang, rows, words: encode_words(
            encoder, tokenizer, corpus[lang].iloc[rows].tolist(), words, batch_size, max_length, device
        )
        self.src_lang, self.alignments = src_lang, word_alignments
        self.source: dict[tuple[int, ...], tuple[torch.Tensor, list[dict[int, int]]]] = {}

    def measure(self, lang: str, rows: pd.Index) -> list[dict]:
        """The word metrics' rows of target ``lang`` on the corpus rows ``rows``."""
        pairs = [self.alignments[lang][row] for row in rows]
        target = self.encode(lang, rows, [[tgt for _, tgt in row] for row in pairs])
        return alignment_metrics(self._source(rows, pairs), target, tuple(WORD_METRICS), pooling="word")

    def _source(self, rows: pd.Index, pairs: Sequence[Sequence[tuple[int, int]]]) -> torch.Tensor:
        """``[layers, Σ len(pairs[i]), d]``: the source word of every (source, target) pair of every row, in order."""
        key = tuple(rows)
        if key not in self.source:
            every = self.alignments.values()
            words = [sorted({src for alignment in every for src, _ in alignment[row]}) for row in rows]
            slots, total = [], 0
            for row_words in words:
                slots.append({word: total + i for i, word in enumerate(row_words)})
                total += len(row_words)
            self.source[key] = (self.encode(self.src_lang, rows, words), slots)
        vectors, slots = self.source[key]
        return vectors[:, [slots[i][src] for i, row in enumerate(pairs) for src, _ in row]]


@torch.no_grad()
def encode_words(
    model,
    tokenizer,
    sentences: Sequence[str],
    words: Sequence[Sequence[int]],
    batch_size: int = 64,
    max_length: int = 128,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Contextual embeddings of chosen words, every hidden layer: ``[layers, Σ len(words[i]), d]``, float32 on CPU.

    Sentence i is split on whitespace and encoded whole; ``words[i]`` lists the indices of its
    words to return, in order. A word's vector is the mean of its subword tokens' states; a
    word cut off by ``max_length`` is an error (its translation would have no partner).
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, len(sentences), batch_size):
        split = [sentence.split() for sentence in sentences[start : start + batch_size]]
        batch = tokenizer(
            split, is_split_into_words=True, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        with autocast_for(device):
            hidden = model(**{k: v.to(device) for k, v in batch.items()}, output_hidden_states=True).hidden_states
        stacked = torch.stack(hidden).float().cpu()  # [layers, B, T, d]
        chunks.append(
            _word_vectors(
                stacked, [batch.word_ids(row) for row in range(len(split))], words[start : start + batch_size]
            )
        )
    model.train(was_training)
    return torch.cat(chunks, dim=1)


def _word_vectors(
    states: torch.Tensor, word_ids: Sequence[list[int | None]], chosen: Sequence[Sequence[int]]
) -> torch.Tensor:
    """``[layers, Σ len(chosen[i]), d]``: each chosen word's mean subword state, for a ``[layers, B, T, d]`` batch.

    One scatter-add over the batch's tokens, not a loop over words: each token of a chosen
    word adds its state to that word's output slot.
    """
    layers, rows, length, width = states.shape
    slot = torch.full((rows, length), -1, dtype=torch.long)  # output slot of each token (-1: not a chosen word)
    total = 0
    for row, (ids, picked) in enumerate(zip(word_ids, chosen)):
        where = {word: total + i for i, word in enumerate(picked)}
        slot[row, : len(ids)] = torch.tensor([where.get(word, -1) for word in ids])  # special tokens' None: -1
        total += len(picked)
    slot = slot.flatten()
    used = slot >= 0
    counts = torch.bincount(slot[used], minlength=total)
    if total and int(counts.min()) == 0:
        raise ValueError(
            f"word {_missing_word(counts, chosen)} was truncated away (max_length too small for its sentence)"
        )
    sums = states.new_zeros(layers, total, width).index_add_(
        1, slot[used], states.reshape(layers, rows * length, width)[:, used]
    )
    return sums / counts[None, :, None].to(sums.dtype)


def _missing_word(counts: torch.Tensor, chosen: Sequence[Sequence[int]]) -> int:
    flat = [word for picked in chosen for word in picked]
    return flat[int((counts == 0).nonzero()[0])]


@torch.no_grad()
def encode(
    model,
    tokenizer,
    sentences: Sequence[str],
    layers: str | Sequence[int] = "all",
    pooling: str = "mean",
    batch_size: int = 64,
    max_length: int = 128,
    device: torch.device | None = None,
    last_cls: bool = False,
    keep_on_device: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Pooled sentence embeddings of the requested hidden layers (0 = embeddings … L), ``[layers, N, d]``;
    with ``last_cls`` also the last layer's ``<s>`` states, ``[N, d]`` (from the same forward passes).

    One forward pass per batch gives every layer. Sentences are sorted by length so padding
    stays small and put back in input order; mean pooling ignores padding. Returned as
    float32 on CPU, or with ``keep_on_device`` on the model's device (where the alignment kernels then run).
    """
    if pooling not in POOLINGS:
        raise unknown("pooling", pooling, POOLINGS)
    device = device or next(model.parameters()).device
    encoded = tokenizer(list(sentences), truncation=True, max_length=max_length)
    features = [{key: encoded[key][i] for key in encoded.keys()} for i in range(len(sentences))]
    was_training = model.training
    model.eval()
    chosen = None
    out = cls_out = None
    batches = length_sorted_batches(tokenizer, features, batch_size, device)
    total = -(-len(features) // batch_size)
    for rows, batch in tqdm(batches, total=total, desc="encode", unit="batch", disable=total < 10, mininterval=1.0):
        with autocast_for(device):
            hidden = model(**batch, output_hidden_states=True).hidden_states
        if chosen is None:
            chosen = list(range(len(hidden))) if layers == "all" else list(layers)
            home = hidden[0].device if keep_on_device else torch.device("cpu")
            out = torch.empty(len(chosen), len(sentences), hidden[0].shape[-1], device=home)
            cls_out = torch.empty(len(sentences), hidden[0].shape[-1], device=home)
        index = torch.as_tensor(rows, device=home)
        cls_out[index] = hidden[-1][:, 0].float().to(home)
        stacked = torch.stack([hidden[i] for i in chosen]).float()  # [layers, B, T, d]
        if pooling == "cls":
            pooled = stacked[:, :, 0]
        else:
            mask = batch["attention_mask"].to(stacked.dtype)[None, :, :, None]
            pooled = (stacked * mask).sum(dim=2) / mask.sum(dim=2)
        out[:, index] = pooled.to(home)
    model.train(was_training)
    return (out, cls_out) if last_cls else out
