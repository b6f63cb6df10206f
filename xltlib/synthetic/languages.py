"""Synthetic languages at known distances from one base language (the offline profile).

The grammar (:mod:`xltlib.synthetic.grammar`) generates *frames* — who does what to whom,
with which properties, where, negated or not — and a *recipe* renders any frame into one
language. Because every
language renders the same frames, parallel data is exact by construction, and because a
recipe is a handful of named settings, each language's distance from the base language is
known before any model sees it (K et al., ICLR 2020; Dufter & Schütze, EMNLP 2020).

Lexical overlap uses *nested* anchor sets: content concepts are ranked once, and a language
with anchor share p keeps the base-language form of the first p of them, so a language with
more overlap always contains the anchors of one with less.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from xltlib.errors import XltError
from xltlib.synthetic.grammar import (
    CONTENT_KINDS,
    FUNCTION_WORDS,
    KINDS,
    Frame,
    GrammarSpec,
    hypernyms,
    slot_tables,
)

ORDERS = ("SVO", "SOV", "VSO", "OSV")


@dataclass(frozen=True)
class LanguageRecipe:
    """How a language renders frames, on documented axes.

    Attributes:
        code: language code used in file names and result rows.
        anchor_share: fraction of content concepts (nouns, verbs, adjectives) whose surface
            form is the base language's (nested across languages; 1.0 for the base language itself).
        shared_function_words: the function words (determiner, negation, adpositions) are the
            base language's; an explicit factor, apart from ``anchor_share`` (negation alone
            decides a third of the ``syn-nli`` labels).
        order: clause order of subject, verb and object (``SVO``, ``SOV``, ``VSO``, ``OSV``).
        adjective_after: adjectives follow their noun (the base language puts them before).
        postpositions: adpositions follow their noun phrase (the base language uses prepositions).
        own_script: non-anchor words are written in the language's own letters, so they share
            no subword with any other language (a different script, as for Greek or Thai).
    """

    code: str
    anchor_share: float
    shared_function_words: bool = True
    order: str = "SVO"
    adjective_after: bool = False
    postpositions: bool = False
    own_script: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.anchor_share <= 1.0:
            raise XltError(f"language {self.code}: anchor_share must be in [0, 1], got {self.anchor_share}")
        if self.order not in ORDERS:
            raise XltError(f"language {self.code}: order {self.order!r} is not one of {', '.join(ORDERS)}")

    def distance(self) -> float:
        """Scalar distance from the base language, fixed by the recipe before any training.

        (1 − anchor share) + 0.5 if the clause order differs + 0.25 per other differing
        axis (own function words, adjective position, adpositions, script). Weights are a
        documented choice, used only to order languages; the analysis also uses the factors
        themselves (:func:`factors`).
        """
        return round(
            (1.0 - self.anchor_share)
            + 0.5 * (self.order != "SVO")
            + 0.25 * ((not self.shared_function_words) + self.adjective_after + self.postpositions + self.own_script),
            4,
        )

    def factors(self) -> dict[str, object]:
        """The recipe's design factors, as the analysis reads them."""
        return {
            "anchor_share": self.anchor_share,
            "order": self.order,
            "shared_function_words": self.shared_function_words,
        }


BASE = LanguageRecipe("base", anchor_share=1.0)


ANCHOR_SHARES = (1.0, 0.5, 0.0)


FACTORIAL_ORDERS = ("SVO", "SOV", "VSO")


def factorial_code(anchor_share: float, order: str, shared_function_words: bool) -> str:
    """``a50sov-f``: anchor share in percent, clause order, ``-f`` when the function words are the base's."""
    return f"a{round(anchor_share * 100)}{order.lower()}" + ("-f" if shared_function_words else "")


def factorial_targets() -> tuple[LanguageRecipe, ...]:
    """Anchor share {1, 0.5, 0} × clause order {SVO, SOV, VSO}, with shared function words in alternate cells.

    Function-word sharing alternates over the 3 × 3 grid (shared where the two factor
    levels' indices sum to an odd number): every anchor share and every order has languages
    with and without it, so its effect is estimable beside the other two, and no cell copies
    the base language (anchor 1 with SVO keeps its own function words). Only the clause
    order changes word order; adjective position, adpositions and script stay the base's.
    """
    return tuple(
        LanguageRecipe(
            factorial_code(share, order, (i + j) % 2 == 1),
            anchor_share=share,
            shared_function_words=(i + j) % 2 == 1,
            order=order,
        )
        for i, share in enumerate(ANCHOR_SHARES)
        for j, order in enumerate(FACTORIAL_ORDERS)
    )


TARGETS = factorial_targets()
"""The default target languages (:func:`factorial_targets`), from the most to the least shared words."""


Fact = tuple[str, object]
"""What a word says about its frame: ``(role, value)``, see :func:`render_words`."""


@dataclass
class Lexicon:
    """Concepts with classes and preferences, and every language's surface forms."""

    spec: GrammarSpec
    noun_class: np.ndarray  # [nouns] class of each noun
    verb_subject_class: np.ndarray  # [verbs] preferred subject class
    verb_object_class: np.ndarray  # [verbs] preferred object class
    adjective_class: np.ndarray  # [adjectives] preferred noun class
    hypernym_of: np.ndarray = field(default_factory=lambda: np.empty(0, int))  # [nouns] hypernym noun, -1 for none
    slots: dict[str, np.ndarray] = field(default_factory=dict)  # slot → cumulative distribution (slot_tables)
    forms: dict[str, dict[tuple[str, int], tuple[str, ...]]] = field(default_factory=dict)

    def concepts(self) -> list[tuple[str, int]]:
        sizes = {
            "noun": self.spec.nouns,
            "verb": self.spec.verbs,
            "adjective": self.spec.adjectives,
            "preposition": self.spec.prepositions,
        }
        return [(kind, i) for kind in KINDS for i in range(sizes[kind])] + [(word, 0) for word in FUNCTION_WORDS]

    def word_concepts(self, code: str) -> dict[str, tuple[str, int]]:
        """Every surface form of language ``code`` → the concept it expresses (forms never collide within a
        language)."""
        return {form: concept for concept, forms in self.forms[code].items() for form in forms}


_CONSONANTS = "ptkbdgmnslrvz"


_VOWELS = "aeiou"


_OWN_LETTERS = {c: chr(0x430 + i) for i, c in enumerate(string.ascii_lowercase)}  # Cyrillic а…


def _pseudo_words(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    """``count`` new pronounceable words (2–3 CV syllables) not in ``taken`` (which is updated)."""
    words = []
    while len(words) < count:
        syllables = rng.integers(2, 4)
        word = "".join(rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS)) for _ in range(syllables))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def build_lexicon(spec: GrammarSpec, recipes: tuple[LanguageRecipe, ...]) -> Lexicon:
    """The base lexicon and every recipe's forms; deterministic for ``spec.seed``.

    Surface strings of different languages never collide except through anchors, so any
    shared word is shared on purpose.
    """
    codes = [recipe.code for recipe in recipes]
    if len(set(codes)) != len(codes):
        raise XltError(f"language codes must be unique, got {codes}")
    rng = np.random.default_rng(spec.seed)
    lexicon = Lexicon(
        spec,
        noun_class=rng.integers(spec.classes, size=spec.nouns),
        verb_subject_class=rng.integers(spec.classes, size=spec.verbs),
        verb_object_class=rng.integers(spec.classes, size=spec.verbs),
        adjective_class=rng.integers(spec.classes, size=spec.adjectives),
    )
    lexicon.slots = slot_tables(spec, lexicon)
    lexicon.hypernym_of = hypernyms(spec)
    concepts = lexicon.concepts()
    taken: set[str] = set()
    base_words = _pseudo_words(rng, len(concepts), taken)
    synonyms = _pseudo_words(rng, len(concepts), taken)
    base = {}
    for i, concept in enumerate(concepts):
        has_synonym = concept[0] in spec.synonym_kinds and rng.random() < spec.synonym_share
        base[concept] = (base_words[i], synonyms[i]) if has_synonym else (base_words[i],)
    content = [i for i, concept in enumerate(concepts) if concept[0] in CONTENT_KINDS]
    rank_of = dict(zip(content, np.argsort(rng.permutation(len(content)))))  # one ranking: nested anchors
    for recipe in recipes:
        if recipe == BASE:  # only the base language has synonyms
            lexicon.forms[recipe.code] = dict(base)
            continue
        language_rng = np.random.default_rng([spec.seed, *map(ord, recipe.code)])
        fresh = iter(_pseudo_words(language_rng, len(concepts), taken))
        anchors = round(recipe.anchor_share * len(content))
        forms = {}
        for i, concept in enumerate(concepts):
            shared = rank_of[i] < anchors if i in rank_of else recipe.shared_function_words
            if shared:
                forms[concept] = base[concept][:1]
            else:
                word = next(fresh)
                forms[concept] = ("".join(_OWN_LETTERS.get(c, c) for c in word) if recipe.own_script else word,)
        lexicon.forms[recipe.code] = forms
    return lexicon


def render_words(
    frame: Frame,
    lexicon: Lexicon,
    recipe: LanguageRecipe,
    rng: np.random.Generator | None = None,
    front_place: bool = False,
) -> list[tuple[str, Fact | None]]:
    """The words of :func:`render`, each with the fact of the frame it expresses.

    A fact is ``(role, value)``: ``("subject", noun)``, ``("subject_adjective", adjective)``,
    ``("verb", verb)``, ``("negated", True)``, ``("object", noun)``, ``("object_adjective",
    adjective)`` or ``("place", (adposition, noun))`` for both words of the place phrase.
    The determiner expresses none (``None``). Synonyms express the same fact, so two
    renderings say the same thing exactly when they hold the same facts.
    """
    forms = lexicon.forms[recipe.code]

    def word(kind: str, index: int) -> str:
        options = forms[(kind, index)]
        return options[int(rng.integers(len(options)))] if rng is not None and len(options) > 1 else options[0]

    def noun_phrase(noun: int, adjective: int | None, role: str) -> list[tuple[str, Fact | None]]:
        parts = [(word("noun", noun), (role, noun))]
        if adjective is not None:
            described = (word("adjective", adjective), (f"{role}_adjective", adjective))
            parts = parts + [described] if recipe.adjective_after else [described, *parts]
        return [(word("determiner", 0), None), *parts]

    slots = {
        "S": noun_phrase(frame.subject, frame.subject_adjective, "subject"),
        "V": ([(word("negation", 0), ("negated", True))] if frame.negated else [])
        + [(word("verb", frame.verb), ("verb", frame.verb))],
        "O": noun_phrase(frame.object, frame.object_adjective, "object"),
    }
    clause = [token for slot in recipe.order for token in slots[slot]]
    if frame.place is not None:
        adposition, noun = frame.place
        phrase = [
            (form, None if fact is None else ("place", frame.place)) for form, fact in noun_phrase(noun, None, "place")
        ]
        marker = (word("preposition", adposition), ("place", frame.place))
        phrase = phrase + [marker] if recipe.postpositions else [marker, *phrase]
        clause = phrase + clause if front_place else clause + phrase
    return clause


def render(
    frame: Frame,
    lexicon: Lexicon,
    recipe: LanguageRecipe,
    rng: np.random.Generator | None = None,
    front_place: bool = False,
) -> str:
    """The frame as a sentence of ``recipe``'s language.

    Where a concept has synonyms (the base language), ``rng`` picks one; without ``rng``
    the first form is used, so rendering is deterministic. ``front_place`` moves the place
    phrase before the clause (topicalisation: same meaning, other word order).
    """
    return " ".join(form for form, _ in render_words(frame, lexicon, recipe, rng, front_place))
