"""Exact word alignments of the synthetic parallel sentences, from the lexicon that generated them.

The synthetic world knows every word's meaning: each surface form of a language is one
concept of the lexicon (``("noun", 17)``, ``("negation", 0)``…). Two words of a parallel
pair are aligned when they express the same concept and that concept occurs once in each
sentence. Determiners (one form for every noun phrase) are never aligned, nor is a concept
that occurs twice (a noun that is both subject and place). The alignments are derived here
rather than stored, so the generated data, and the shipped encoders' check of them, are
unchanged.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path

from xltlib.data.generated import DataSpec
from xltlib.data.languages import GrammarSpec, LanguageRecipe, Lexicon, build_lexicon
from xltlib.errors import XltError

UNALIGNED = frozenset({"determiner"})
"""Concept kinds never aligned: a determiner opens every noun phrase, so it names no word."""


def read_spec(data_dir: str | Path) -> DataSpec:
    """The :class:`DataSpec` a generated data folder was written from (its ``spec.json``)."""
    path = Path(data_dir) / "spec.json"
    if not path.is_file():
        raise XltError(f"{path} not found: {data_dir} is not a generated synthetic data folder (see ensure_data)")
    values = json.loads(path.read_text())
    grammar = values.pop("grammar")
    grammar = GrammarSpec(**{**grammar, "synonym_kinds": tuple(grammar["synonym_kinds"])})
    targets = tuple(LanguageRecipe(**recipe) for recipe in values.pop("targets"))
    return DataSpec(grammar=grammar, targets=targets, **values)


@cache
def _lexicon(data_dir: str) -> Lexicon:
    spec = read_spec(data_dir)
    return build_lexicon(spec.grammar, spec.recipes)


def word_concepts(lexicon: Lexicon, code: str) -> dict[str, tuple[str, int]]:
    """Every surface form of language ``code`` → the concept it expresses (forms never collide within a language)."""
    return {form: concept for concept, forms in lexicon.forms[code].items() for form in forms}


def align_words(source: str, target: str, source_concepts: dict, target_concepts: dict) -> list[tuple[int, int]]:
    """(source word index, target word index) of the words expressing one concept, once in each sentence."""

    def positions(sentence: str, concepts: dict) -> dict:
        meant = [concepts.get(word) for word in sentence.split()]
        counts = Counter(meant)
        return {
            concept: i
            for i, concept in enumerate(meant)
            if concept is not None and counts[concept] == 1 and concept[0] not in UNALIGNED
        }

    in_source, in_target = positions(source, source_concepts), positions(target, target_concepts)
    return sorted((i, in_target[concept]) for concept, i in in_source.items() if concept in in_target)


def parallel_word_alignments(
    data_dir: str | Path, src_lang: str, tgt_lang: str, sources, targets
) -> list[list[tuple[int, int]]]:
    """The word alignment of each (source, target) sentence pair of the synthetic languages ``src_lang`` and
    ``tgt_lang``."""
    lexicon = _lexicon(str(Path(data_dir).resolve()))
    for code in (src_lang, tgt_lang):
        if code not in lexicon.forms:
            raise XltError(
                f"language {code!r} is not one of the generated languages in {data_dir}: {', '.join(lexicon.forms)}"
            )
    source_concepts, target_concepts = word_concepts(lexicon, src_lang), word_concepts(lexicon, tgt_lang)
    return [align_words(s, t, source_concepts, target_concepts) for s, t in zip(sources, targets)]
