"""The synthetic grammar: concepts, frames, and how often each frame is said.

A *frame* is one proposition, independent of any language: who does what to whom, with
which properties, where, negated or not. The grammar fixes how frames are distributed:
every concept is used in its own way (Zipfian frequencies, a class preference and a weight
of its own from every head to every dependent, :func:`slot_tables`), so monolingual text
determines each word's translation (the identifiability gate,
``book/probes/identifiability.py``); and which noun is a kind of which (:func:`hypernyms`),
a lexical fact no distribution carries. The languages that render frames are
:mod:`xltlib.synthetic.languages`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from xltlib.errors import XltError, did_you_mean

if TYPE_CHECKING:
    from xltlib.synthetic.languages import Lexicon

KINDS = ("noun", "verb", "adjective", "preposition")


CONTENT_KINDS = ("noun", "verb", "adjective")
"""Kinds whose anchoring :attr:`LanguageRecipe.anchor_share` sets; adpositions, determiner and negation are
function words (:attr:`LanguageRecipe.shared_function_words`)."""


SYNONYM_KINDS = ("noun", "verb", "adjective")


@dataclass(frozen=True)
class GrammarSpec:
    """Size and structure of the base grammar.

    Attributes:
        nouns, verbs, adjectives, prepositions: concepts of each kind.
        classes: semantic noun classes that verbs and adjectives select for.
        preference: weight of a slot's preferred class against all classes (a slot is filled
            from its preferred class about this often); 1/classes would make classes carry nothing.
        zipf: exponent of each kind's concept frequencies (rank ``r`` drawn with weight
            ``r ** -zipf``, ranks shuffled per kind); 0 makes the concepts of a kind equally frequent.
        selectivity: standard deviation of the log-normal weight each head gives each of its
            dependents (a verb to every subject and object noun, a noun to every adjective, an
            adposition to every place noun); 0 leaves only the class preference, under which
            the words of one class are interchangeable and their translations unidentifiable
            (the identifiability gate, ``book/probes/identifiability.py``).
        hypernyms: nouns that name a kind of other nouns (as *animal* does *dog*); each other
            noun is a kind of one of them, drawn at random, so the relation is a lexical fact
            that no word's distribution carries: the ``syn-nli`` labels that hinge on it
            (:func:`xltlib.synthetic.examples.nli_label`) are learned from source labels and reach
            another language only through aligned words. 0 gives no noun a hypernym.
        synonym_share: fraction of base-language concepts of the ``synonym_kinds`` with a
            second surface form (the synonym table of ``rs_da``).
        synonym_kinds: the kinds of concept that may have synonyms (of ``noun``, ``verb``,
            ``adjective``). Not verbs by default: with verb synonyms the synthetic encoder never
            learned to tell a verb's synonym from another verb (the detection stage's recall of
            changed verbs stayed 0.00 after 3,000 steps; 0.92 without them), so a hypothesis
            with another verb was recognised as neutral 2–6% of the time (book, design notes, "Why no
            verb synonyms").
        seed: seeds the lexicon, the class assignment and the anchor ranking.
    """

    nouns: int = 96
    verbs: int = 32
    adjectives: int = 32
    prepositions: int = 6
    classes: int = 4
    preference: float = 0.9
    zipf: float = 0.5
    selectivity: float = 1.5
    hypernyms: int = 16
    synonym_share: float = 0.3
    synonym_kinds: tuple[str, ...] = ("noun", "adjective")
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.hypernyms < self.nouns:
            raise XltError(f"GrammarSpec.hypernyms must be in [0, nouns = {self.nouns}), got {self.hypernyms}")
        if isinstance(self.synonym_kinds, str):
            raise XltError(f"GrammarSpec.synonym_kinds must be a tuple of kinds, got the string {self.synonym_kinds!r}")
        for kind in self.synonym_kinds:
            if kind not in SYNONYM_KINDS:
                raise XltError(
                    f"GrammarSpec.synonym_kinds: {kind!r} is not a kind with synonyms"
                    f"{did_you_mean(kind, SYNONYM_KINDS)}; kinds: {', '.join(SYNONYM_KINDS)}"
                )


@dataclass(frozen=True)
class Frame:
    """One proposition, independent of any language. Nouns etc. are concept indices per kind."""

    subject: int
    verb: int
    object: int
    subject_adjective: int | None = None
    object_adjective: int | None = None
    negated: bool = False
    place: tuple[int, int] | None = None  # (preposition, noun)


# Function words every language has: determiner and negation marker.
FUNCTION_WORDS = ("determiner", "negation")


def hypernyms(spec: GrammarSpec) -> np.ndarray:
    """[nouns]: each noun's hypernym, -1 for the hypernyms themselves; as many kinds under each hypernym, ±1.

    From a stream of its own, so neither the forms nor the slot tables depend on it.
    """
    rng = np.random.default_rng([spec.seed, 2])
    hypernym_of = np.full(spec.nouns, -1)
    if spec.hypernyms:
        order = rng.permutation(spec.nouns)
        heads, kinds = order[: spec.hypernyms], order[spec.hypernyms :]
        hypernym_of[kinds] = rng.permutation(np.resize(heads, len(kinds)))
    return hypernym_of


def swapped_roles(frame: Frame) -> Frame:
    """``frame`` with subject and object exchanged, each keeping its adjective."""
    return replace(
        frame,
        subject=frame.object,
        object=frame.subject,
        subject_adjective=frame.object_adjective,
        object_adjective=frame.subject_adjective,
    )


def entails_noun(lexicon: Lexicon, stated: int, named: int) -> bool:
    """Whether naming noun ``stated`` also states noun ``named``: the same noun, or its hypernym."""
    return named == stated or named == lexicon.hypernym_of[stated]


def generalized(frame: Frame, lexicon: Lexicon, rng: np.random.Generator) -> Frame:
    """``frame`` with one of its participants named by its hypernym, if one has a hypernym."""
    roles = [role for role in ("subject", "object") if lexicon.hypernym_of[getattr(frame, role)] >= 0]
    if not roles:
        return frame
    role = roles[int(rng.integers(len(roles)))]
    return replace(frame, **{role: int(lexicon.hypernym_of[getattr(frame, role)])})


def slot_tables(spec: GrammarSpec, lexicon: Lexicon) -> dict[str, np.ndarray]:
    """Cumulative distributions of every slot of a frame, given its head: each concept's distributional signature.

    ``verb`` [verbs]; ``subject`` and ``object`` [verbs, nouns]; ``adjective`` [nouns,
    adjectives]; ``preposition`` [prepositions]; ``place`` [prepositions, nouns]. A dependent's
    weight is its kind's Zipfian frequency × the class preference × its own log-normal weight
    from the head, so no two concepts of a kind are used alike. Drawn from a stream of their
    own, so the lexicon's forms do not depend on them.
    """
    rng = np.random.default_rng([spec.seed, 1])

    def frequencies(count: int) -> np.ndarray:
        return (1.0 + rng.permutation(count)) ** -spec.zipf

    def preferring(classes: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """[heads, dependents]: the preferred class's share is ``preference``, every class keeps some."""
        match = (classes[None, :] == wanted[:, None]).astype(np.float64)
        return spec.preference * match / np.maximum(match.sum(1, keepdims=True), 1) + (1 - spec.preference) / len(
            classes
        )

    def selective(heads: int, dependents: int) -> np.ndarray:
        return np.exp(spec.selectivity * rng.standard_normal((heads, dependents)))

    noun, adjective = frequencies(spec.nouns), frequencies(spec.adjectives)
    weights = {
        "verb": frequencies(spec.verbs),
        "subject": noun
        * preferring(lexicon.noun_class, lexicon.verb_subject_class)
        * selective(spec.verbs, spec.nouns),
        "object": noun * preferring(lexicon.noun_class, lexicon.verb_object_class) * selective(spec.verbs, spec.nouns),
        "adjective": adjective
        * preferring(lexicon.adjective_class, lexicon.noun_class)
        * selective(spec.nouns, spec.adjectives),
        "preposition": frequencies(spec.prepositions),
        "place": noun * selective(spec.prepositions, spec.nouns),
    }
    return {slot: np.cumsum(w / w.sum(-1, keepdims=True), axis=-1) for slot, w in weights.items()}


def _draw(rng: np.random.Generator, cumulative: np.ndarray) -> int:
    """An index drawn from a cumulative distribution."""
    return min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(cumulative) - 1)


def sample_frame(
    lexicon: Lexicon,
    rng: np.random.Generator,
    adjective_rate: float = 0.4,
    place_rate: float = 0.3,
    negation_rate: float = 0.2,
) -> Frame:
    """One frame drawn from the grammar's slot distributions (:func:`slot_tables`)."""
    slots = lexicon.slots
    verb = _draw(rng, slots["verb"])
    subject, obj = _draw(rng, slots["subject"][verb]), _draw(rng, slots["object"][verb])

    def adjective_for(noun: int) -> int | None:
        return _draw(rng, slots["adjective"][noun]) if rng.random() < adjective_rate else None

    place = None
    if rng.random() < place_rate:
        preposition = _draw(rng, slots["preposition"])
        place = (preposition, _draw(rng, slots["place"][preposition]))
    return Frame(
        subject, verb, obj, adjective_for(subject), adjective_for(obj), bool(rng.random() < negation_rate), place
    )
