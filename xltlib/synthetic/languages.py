"""Synthetic languages at known distances from one base language (the offline profile).

A small grammar generates *frames* — who does what to whom, with which properties, where,
negated or not — and a *recipe* renders any frame into one language. Because every
language renders the same frames, parallel data is exact by construction, and because a
recipe is a handful of named settings, each language's distance from the base language is
known before any model sees it (K et al., ICLR 2020; Dufter & Schütze, EMNLP 2020).

Two lessons of the feasibility test are built in:

- frames are not uniformly random: verbs prefer subjects and objects of certain noun
  classes and adjectives prefer nouns of certain classes, so monolingual text reveals
  which words play the same role in two languages;
- lexical overlap uses *nested* anchor sets: concepts are ranked once, and a language with
  anchor share p keeps the base-language form of the first p of them, so a language with
  more overlap always contains the anchors of one with less.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from xltlib.errors import XltError, did_you_mean

ORDERS = ("SVO", "SOV", "VSO", "OSV")


KINDS = ("noun", "verb", "adjective", "preposition")


SYNONYM_KINDS = ("noun", "verb", "adjective")


@dataclass(frozen=True)
class LanguageRecipe:
    """How a language renders frames, on documented axes.

    Attributes:
        code: language code used in file names and result rows.
        anchor_share: fraction of content and function concepts whose surface form is the
            base language's (nested across languages; 1.0 for the base language itself).
        order: clause order of subject, verb and object (``SVO``, ``SOV``, ``VSO``, ``OSV``).
        adjective_after: adjectives follow their noun (the base language puts them before).
        postpositions: adpositions follow their noun phrase (the base language uses prepositions).
        own_script: non-anchor words are written in the language's own letters, so they share
            no subword with any other language (a different script, as for Greek or Thai).
    """

    code: str
    anchor_share: float
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
        axis (adjective position, adpositions, script). Weights are a documented choice, used
        only to order languages in the analysis.
        """
        return round(
            (1.0 - self.anchor_share)
            + 0.5 * (self.order != "SVO")
            + 0.25 * (self.adjective_after + self.postpositions + self.own_script),
            4,
        )


BASE = LanguageRecipe("base", anchor_share=1.0)


TARGETS = (
    LanguageRecipe("a80", anchor_share=0.8),
    LanguageRecipe("a50", anchor_share=0.5),
    LanguageRecipe("a20", anchor_share=0.2),
    LanguageRecipe("a0", anchor_share=0.0),
    LanguageRecipe("a20sov", anchor_share=0.2, order="SOV", postpositions=True),
    LanguageRecipe("a0vso", anchor_share=0.0, order="VSO", adjective_after=True),
    LanguageRecipe("a0script", anchor_share=0.0, order="SOV", adjective_after=True, own_script=True),
)
"""The default target languages, from near to far."""


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
    synonym_share: float = 0.3
    synonym_kinds: tuple[str, ...] = ("noun", "adjective")
    seed: int = 0

    def __post_init__(self) -> None:
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
    slots: dict[str, np.ndarray] = field(default_factory=dict)  # slot → cumulative distribution, see _slot_tables
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
    lexicon.slots = _slot_tables(spec, lexicon)
    concepts = lexicon.concepts()
    taken: set[str] = set()
    base_words = _pseudo_words(rng, len(concepts), taken)
    synonyms = _pseudo_words(rng, len(concepts), taken)
    base = {}
    for i, concept in enumerate(concepts):
        has_synonym = concept[0] in spec.synonym_kinds and rng.random() < spec.synonym_share
        base[concept] = (base_words[i], synonyms[i]) if has_synonym else (base_words[i],)
    rank_of = np.argsort(rng.permutation(len(concepts)))  # one ranking for all languages: nested anchors
    for recipe in recipes:
        if recipe.anchor_share == 1.0 and not recipe.own_script:
            lexicon.forms[recipe.code] = dict(base)
            continue
        language_rng = np.random.default_rng([spec.seed, *map(ord, recipe.code)])
        fresh = iter(_pseudo_words(language_rng, len(concepts), taken))
        anchors = round(recipe.anchor_share * len(concepts))
        forms = {}
        for i, concept in enumerate(concepts):
            if rank_of[i] < anchors:
                forms[concept] = base[concept][:1]
            else:
                word = next(fresh)
                forms[concept] = ("".join(_OWN_LETTERS.get(c, c) for c in word) if recipe.own_script else word,)
        lexicon.forms[recipe.code] = forms
    return lexicon


def _slot_tables(spec: GrammarSpec, lexicon: Lexicon) -> dict[str, np.ndarray]:
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
    """One frame drawn from the grammar's slot distributions (:func:`_slot_tables`)."""
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
