"""Does monolingual text determine each word's translation? The identifiability gate of the synthetic grammar.

An encoder can align two languages' words only if each word's use sets it apart from the
other words of its kind: if permuting two nouns leaves the corpus distribution unchanged,
no model can tell which target noun translates which base noun. Two measurements, on
generated text only (no encoder is trained):

- **oracle**: for every concept, its context profile (the concepts before and after it in
  a sentence, PPMI-weighted) in two independent base-language corpora; precision@1 of finding a
  concept's own profile of the second corpus among all concepts of its kind. This is the
  ceiling any learner reaches from word co-occurrence: a concept that does not retrieve
  itself within one language cannot be found across two.
- **procrustes**: each language's word vectors from its own monolingual corpus (PPMI-SVD
  of sentence co-occurrence), mapped onto the base language's by orthogonal Procrustes,
  seeded with the anchors (shared surface forms) and refined by mutual nearest neighbours;
  precision@1 of the base form's nearest target word on the concepts that are *not*
  anchors (Artetxe et al., ACL 2018; Conneau et al., ICLR 2018).

The rule (issue 40), fixed before any new grammar was built: every word kind ≥ 0.9 on the
oracle test, and ≥ 0.5 on the non-anchor concepts of the 20%-anchor languages under both
word orders. Runs in about a minute:

    python book/probes/identifiability.py                           # the default grammar
    python book/probes/identifiability.py --zipf 0 --selectivity 0  # the grammar before issue 40 (v1)
    python book/probes/identifiability.py --targets                 # and the default target languages
    python book/probes/identifiability.py --summary out.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from xltlib.data.word_alignment import UNALIGNED
from xltlib.synthetic.generated import DataSpec, monolingual_corpus
from xltlib.synthetic.grammar import KINDS, GrammarSpec
from xltlib.synthetic.languages import BASE, TARGETS, LanguageRecipe, Lexicon, build_lexicon

ORACLE_GATE, PROCRUSTES_GATE = 0.9, 0.5
GATED_LANGUAGES = (
    LanguageRecipe("a20", anchor_share=0.2, shared_function_words=False),
    LanguageRecipe("a20sov", anchor_share=0.2, shared_function_words=False, order="SOV", postpositions=True),
)
"""The rule's languages: 20% of content words shared, under both word orders (SVO and SOV), and no
function word shared, so the seed dictionary holds content words only."""


def sentences(spec: DataSpec, lexicon: Lexicon, recipe: LanguageRecipe) -> list[list[str]]:
    """Every sentence of ``recipe``'s monolingual corpus under ``spec``, as words (determiners left out)."""
    determiners = set(lexicon.forms[recipe.code][("determiner", 0)])
    documents = monolingual_corpus(spec, lexicon, recipe)
    return [[word for word in text.split() if word not in determiners] for document in documents for text in document]


def ppmi(counts: np.ndarray) -> np.ndarray:
    """Positive pointwise mutual information of a co-occurrence count matrix (float64)."""
    counts = counts.astype(np.float64)
    total = counts.sum()
    expected = np.outer(counts.sum(1), counts.sum(0)) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(counts / expected)
    return np.nan_to_num(np.maximum(pmi, 0.0), neginf=0.0, posinf=0.0)


def cooccurrence(corpus: list[list], vocabulary: dict, directional: bool) -> np.ndarray:
    """How often each vocabulary item shares a sentence with each other one.

    ``directional``: columns are the context items before the row's item, then those after it, so a verb's
    subjects and objects differ in an SVO language (the oracle, within one language); otherwise one block,
    independent of word order (Procrustes, across word orders). An item is never its own context: a noun that is
    subject and object would otherwise mark its own profile, and the oracle would retrieve that mark rather than
    the noun's use."""
    size = len(vocabulary)
    counts = np.zeros((size, size * (1 + directional)))
    for sentence in corpus:
        ids = [vocabulary[word] for word in sentence if word in vocabulary]
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                if a != b:
                    counts[a, b + size * (directional and j > i)] += 1
    return counts


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def oracle_retrieval(first: list[list[tuple]], second: list[list[tuple]]) -> dict[str, float]:
    """Per word kind: precision@1 of a concept's profile in ``first`` retrieving its own in ``second``.

    The corpora are sentences of concepts; profiles are PPMI rows over the concepts before and after, compared by
    cosine among the concepts of one kind that occur in both corpora.
    """
    concepts = sorted({c for corpus in (first, second) for s in corpus for c in s})
    index = {concept: i for i, concept in enumerate(concepts)}
    profiles = [_unit_rows(ppmi(cooccurrence(corpus, index, directional=True))) for corpus in (first, second)]
    scores = {}
    for kind in KINDS:
        rows = [index[c] for c in concepts if c[0] == kind]
        if len(rows) < 2:
            continue
        similarity = profiles[0][rows] @ profiles[1][rows].T
        scores[kind] = float(np.mean(similarity.argmax(1) == np.arange(len(rows))))
    return scores


def word_vectors(corpus: list[list[str]], dimensions: int) -> tuple[list[str], np.ndarray]:
    """Vocabulary and unit-length, centred PPMI-SVD vectors of a monolingual corpus."""
    counts = Counter(word for sentence in corpus for word in sentence)
    vocabulary = sorted(counts)
    index = {word: i for i, word in enumerate(vocabulary)}
    left, values, _ = np.linalg.svd(ppmi(cooccurrence(corpus, index, directional=False)))
    vectors = _unit_rows(left[:, :dimensions] * np.sqrt(values[:dimensions]))
    return vocabulary, _unit_rows(vectors - vectors.mean(0))


def procrustes_translations(
    source: tuple[list[str], np.ndarray], target: tuple[list[str], np.ndarray], iterations: int = 10
) -> dict[str, str]:
    """Each source word's nearest target word after anchor-seeded, self-learning orthogonal Procrustes.

    The seed dictionary is the words spelt alike in both languages; each iteration fits the rotation to the current
    dictionary and replaces it by the anchors plus the mutual nearest neighbours (Artetxe et al., 2018).
    """
    (source_words, x), (target_words, z) = source, target
    target_index = {word: j for j, word in enumerate(target_words)}
    anchors = [(i, target_index[word]) for i, word in enumerate(source_words) if word in target_index]
    pairs = anchors
    for _ in range(iterations):
        rows, columns = map(list, zip(*pairs))
        u, _, vt = np.linalg.svd(x[rows].T @ z[columns])
        similarity = (x @ u @ vt) @ z.T
        forward, backward = similarity.argmax(1), similarity.argmax(0)
        mutual = [(i, int(j)) for i, j in enumerate(forward) if backward[j] == i]
        pairs = sorted(set(anchors) | set(mutual))
    return {word: target_words[j] for word, j in zip(source_words, forward)}


def non_anchor_precision(lexicon: Lexicon, code: str, translations: dict[str, str]) -> float:
    """Precision@1 over the aligned concepts whose form in ``code`` is not the base language's."""
    base, target = lexicon.forms[BASE.code], lexicon.forms[code]
    concepts = [c for c in base if c[0] not in UNALIGNED and target[c][0] != base[c][0]]
    return float(np.mean([translations.get(base[c][0]) == target[c][0] for c in concepts]))


def measure(spec: DataSpec, dimensions: int = 40) -> dict[str, dict[str, float]]:
    """The gate's figures for the grammar of ``spec``: oracle precision per kind, Procrustes precision per target
    language that shares any word with the base language (a seed dictionary needs one)."""
    lexicon = build_lexicon(spec.grammar, spec.recipes)
    base_concepts = lexicon.word_concepts(BASE.code)

    def as_concepts(corpus):
        return [[base_concepts[word] for word in sentence] for sentence in corpus]

    first, second = (as_concepts(sentences(replace(spec, seed=seed), lexicon, BASE)) for seed in (101, 102))
    base_vectors = word_vectors(sentences(spec, lexicon, BASE), dimensions)
    procrustes = {}
    for recipe in spec.targets:
        if recipe.anchor_share in (0, 1) and not (recipe.anchor_share == 0 and recipe.shared_function_words):
            continue  # no seed dictionary, or no word to translate
        target_vectors = word_vectors(sentences(spec, lexicon, recipe), dimensions)
        translations = procrustes_translations(base_vectors, target_vectors)
        procrustes[recipe.code] = non_anchor_precision(lexicon, recipe.code, translations)
    return {"oracle": oracle_retrieval(first, second), "procrustes": procrustes}


def passes(figures: dict[str, dict[str, float]]) -> bool:
    """The rule fixed before building a new grammar (see the module docstring)."""
    gated = [figures["procrustes"][recipe.code] for recipe in GATED_LANGUAGES]
    return min(figures["oracle"].values()) >= ORACLE_GATE and min(gated) >= PROCRUSTES_GATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=DataSpec.mono_documents, help="documents per corpus")
    parser.add_argument("--zipf", type=float, default=GrammarSpec.zipf, help="GrammarSpec.zipf (0: v1's frequencies)")
    parser.add_argument(
        "--selectivity", type=float, default=GrammarSpec.selectivity, help="GrammarSpec.selectivity (0: v1's classes)"
    )
    parser.add_argument(
        "--targets", action="store_true", help="also report the default target languages (those sharing any word)"
    )
    parser.add_argument("--summary", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    spec = DataSpec(
        grammar=GrammarSpec(zipf=args.zipf, selectivity=args.selectivity),
        targets=GATED_LANGUAGES + (TARGETS if args.targets else ()),
        mono_documents=args.documents,
    )
    figures = measure(spec)
    sizes = Counter(kind for kind, _ in build_lexicon(spec.grammar, spec.recipes).concepts())
    print(f"oracle: a concept's context profile retrieves itself in a second corpus ({args.documents} documents each)")
    for kind, value in figures["oracle"].items():
        print(f"  {kind:12s} {value:.3f}   (chance {1 / sizes[kind]:.3f})")
    print("procrustes: precision@1 on non-anchor concepts, anchor-seeded self-learning")
    for code, value in figures["procrustes"].items():
        print(f"  {code:12s} {value:.3f}")
    verdict = "pass" if passes(figures) else "FAIL"
    gated = ", ".join(recipe.code for recipe in GATED_LANGUAGES)
    print(f"gate (oracle ≥ {ORACLE_GATE} for every kind, procrustes ≥ {PROCRUSTES_GATE} on {gated}): {verdict}")
    if args.summary:
        args.summary.write_text(json.dumps(figures | {"passes": passes(figures)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
