"""Exact word alignments of the synthetic parallel sentences, from the concept of every word.

The synthetic world knows every word's meaning: its generator writes, per language, the
concept each surface form expresses (``concepts-{lang}.json``: ``"teka": ["noun", 17]``).
Two words of a parallel pair are aligned when they express the same concept and that
concept occurs once in each sentence. Determiners (one form for every noun phrase) are
never aligned, nor is a concept that occurs twice (a noun that is both subject and place).
Reading the table rather than the grammar keeps this module below the synthetic world.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path

from xltlib.errors import XltError

CONCEPTS_FILE = "concepts-{lang}.json"
"""Surface form → concept, per language, in a generated synthetic data folder."""

UNALIGNED = frozenset({"determiner"})
"""Concept kinds never aligned: a determiner opens every noun phrase, so it names no word."""


@cache
def word_concepts(data_dir: str | Path, lang: str) -> dict[str, tuple[str, int]]:
    """Every surface form of ``lang`` → the concept it expresses, as the generator of ``data_dir`` wrote it."""
    path = Path(data_dir) / CONCEPTS_FILE.format(lang=lang)
    if not path.is_file():
        have = sorted(p.stem.removeprefix("concepts-") for p in Path(data_dir).glob(CONCEPTS_FILE.format(lang="*")))
        raise XltError(
            f"{path} not found: language {lang!r} is not one of the generated languages in {data_dir} "
            f"({', '.join(have) or 'none: not a generated synthetic data folder'}); the synthetic data are generated "
            "by `python -m xltlib run --task syn-nli` (or xltlib.synthetic.generated.ensure_data())"
        )
    return {form: (kind, index) for form, (kind, index) in json.loads(path.read_text()).items()}


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
    folder = Path(data_dir).resolve()
    source_concepts, target_concepts = word_concepts(folder, src_lang), word_concepts(folder, tgt_lang)
    return [align_words(s, t, source_concepts, target_concepts) for s, t in zip(sources, targets)]
