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

import hashlib
import json
import string
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .atomic import atomic_directory, build_once
from .errors import XltError, did_you_mean

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
        preference: probability that a slot is filled from its preferred class (otherwise
            from any class); 1/classes would make frames uniformly random.
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
    synonym_share: float = 0.3
    synonym_kinds: tuple[str, ...] = ("noun", "adjective")
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.synonym_kinds, str):
            raise XltError(f"GrammarSpec.synonym_kinds must be a tuple of kinds, got the string {self.synonym_kinds!r}")
        for kind in self.synonym_kinds:
            if kind not in SYNONYM_KINDS:
                raise XltError(f"GrammarSpec.synonym_kinds: {kind!r} is not a kind with synonyms"
                               f"{did_you_mean(kind, SYNONYM_KINDS)}; kinds: {', '.join(SYNONYM_KINDS)}")  # fmt: skip


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
    forms: dict[str, dict[tuple[str, int], tuple[str, ...]]] = field(default_factory=dict)

    def concepts(self) -> list[tuple[str, int]]:
        sizes = {"noun": self.spec.nouns, "verb": self.spec.verbs, "adjective": self.spec.adjectives,
                 "preposition": self.spec.prepositions}  # fmt: skip
        return [(kind, i) for kind in KINDS for i in range(sizes[kind])] + [(word, 0) for word in FUNCTION_WORDS]


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


def _pick(rng: np.random.Generator, classes: np.ndarray, wanted: int, preference: float) -> int:
    """An index whose class is ``wanted`` with probability ``preference`` (else any index)."""
    pool = np.flatnonzero(classes == wanted) if rng.random() < preference else np.arange(len(classes))
    if len(pool) == 0:
        pool = np.arange(len(classes))
    return int(rng.choice(pool))


def sample_frame(lexicon: Lexicon, rng: np.random.Generator, adjective_rate: float = 0.4, place_rate: float = 0.3,
                 negation_rate: float = 0.2) -> Frame:  # fmt: skip
    """One frame drawn with the grammar's preferences."""
    spec = lexicon.spec
    verb = int(rng.integers(spec.verbs))
    subject = _pick(rng, lexicon.noun_class, lexicon.verb_subject_class[verb], spec.preference)
    obj = _pick(rng, lexicon.noun_class, lexicon.verb_object_class[verb], spec.preference)

    def adjective_for(noun: int) -> int | None:
        if rng.random() >= adjective_rate:
            return None
        return _pick(rng, lexicon.adjective_class, lexicon.noun_class[noun], spec.preference)

    place = None
    if rng.random() < place_rate:
        place = (int(rng.integers(spec.prepositions)), int(rng.integers(spec.nouns)))
    return Frame(subject, verb, obj, adjective_for(subject), adjective_for(obj), bool(rng.random() < negation_rate), place)


def render_words(frame: Frame, lexicon: Lexicon, recipe: LanguageRecipe, rng: np.random.Generator | None = None,
                 front_place: bool = False) -> list[tuple[str, Fact | None]]:  # fmt: skip
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
        "V": ([(word("negation", 0), ("negated", True))] if frame.negated else []) + [(word("verb", frame.verb), ("verb", frame.verb))],
        "O": noun_phrase(frame.object, frame.object_adjective, "object"),
    }
    clause = [token for slot in recipe.order for token in slots[slot]]
    if frame.place is not None:
        adposition, noun = frame.place
        phrase = [(form, None if fact is None else ("place", frame.place)) for form, fact in noun_phrase(noun, None, "place")]
        marker = (word("preposition", adposition), ("place", frame.place))
        phrase = phrase + [marker] if recipe.postpositions else [marker, *phrase]
        clause = phrase + clause if front_place else clause + phrase
    return clause


def render(frame: Frame, lexicon: Lexicon, recipe: LanguageRecipe, rng: np.random.Generator | None = None,
           front_place: bool = False) -> str:  # fmt: skip
    """The frame as a sentence of ``recipe``'s language.

    Where a concept has synonyms (the base language), ``rng`` picks one; without ``rng``
    the first form is used, so rendering is deterministic. ``front_place`` moves the place
    phrase before the clause (topicalisation: same meaning, other word order).
    """
    return " ".join(form for form, _ in render_words(frame, lexicon, recipe, rng, front_place))


# ---------------------------------------------------------------------------------------
# Tasks: sentence pairs whose labels follow from the frames, so they are never ambiguous.

NLI_LABELS = ("entailment", "neutral", "contradiction")
PAWS_LABELS = ("0", "1")  # 0 = not a paraphrase, 1 = paraphrase (the PAWS-X convention)


def _modifiers(frame: Frame) -> set[tuple[str, object]]:
    """The optional parts of a frame, as facts: adjective on subject / object, place."""
    facts = {("subject_adjective", frame.subject_adjective), ("object_adjective", frame.object_adjective),
             ("place", frame.place)}  # fmt: skip
    return {fact for fact in facts if fact[1] is not None}


def nli_label(premise: Frame, hypothesis: Frame) -> str:
    """The label of a ``syn-nli`` pair, by frame logic.

    The premise asserts one event (it is never negated). The hypothesis follows from it
    (*entailment*) when it names the same event — same subject, verb and object in the
    same roles — with no modifier the premise lacks; it denies it (*contradiction*) under
    the same conditions but negated; anything else (another participant or verb, swapped
    roles, a modifier the premise does not state) cannot be decided (*neutral*).
    """
    if premise.negated:
        raise XltError("syn-nli premises are assertions: a negated premise has no label by this logic")
    same_event = (premise.subject, premise.verb, premise.object) == (hypothesis.subject, hypothesis.verb, hypothesis.object)
    if not same_event or not _modifiers(hypothesis) <= _modifiers(premise):
        return "neutral"
    return "contradiction" if hypothesis.negated else "entailment"


def paws_label(first: Frame, second: Frame) -> str:
    """The label of a ``syn-paws`` pair: a paraphrase exactly when both render one frame."""
    return "1" if first == second else "0"


def _drop_modifiers(frame: Frame, rng: np.random.Generator, keep: float = 0.5) -> Frame:
    def kept(value):
        return value if value is not None and rng.random() < keep else None

    return replace(frame, subject_adjective=kept(frame.subject_adjective),
                   object_adjective=kept(frame.object_adjective), place=kept(frame.place))  # fmt: skip


def _neutral_hypothesis(premise: Frame, lexicon: Lexicon, rng: np.random.Generator) -> Frame:
    """A hypothesis the premise neither entails nor contradicts (one undecidable change)."""
    spec = lexicon.spec
    hypothesis = _drop_modifiers(premise, rng)
    change = rng.choice(("swap_roles", "other_noun", "other_verb", "add_modifier"))
    if change == "swap_roles" and premise.subject != premise.object:
        hypothesis = replace(hypothesis, subject=premise.object, object=premise.subject,
                             subject_adjective=hypothesis.object_adjective, object_adjective=hypothesis.subject_adjective)  # fmt: skip
    elif change == "other_verb":
        hypothesis = replace(hypothesis, verb=int((premise.verb + rng.integers(1, spec.verbs)) % spec.verbs))
    elif change == "add_modifier":
        slot = rng.choice(("subject_adjective", "object_adjective", "place"))
        if slot == "place":
            value = (int(rng.integers(spec.prepositions)), int(rng.integers(spec.nouns)))
        else:
            value = int(rng.integers(spec.adjectives))
        hypothesis = replace(hypothesis, **{slot: value})
    else:
        role = rng.choice(("subject", "object"))
        hypothesis = replace(hypothesis, **{role: int((getattr(premise, role) + rng.integers(1, spec.nouns)) % spec.nouns)})
    return replace(hypothesis, negated=bool(rng.random() < 0.5))


def _scrambled(frame: Frame, rng: np.random.Generator) -> Frame | None:
    """Another frame with the same bag of concepts (PAWS' word swaps), or None if none exists."""
    options = []
    if (frame.subject, frame.subject_adjective) != (frame.object, frame.object_adjective):
        options.append(replace(frame, subject=frame.object, object=frame.subject,
                               subject_adjective=frame.object_adjective, object_adjective=frame.subject_adjective))  # fmt: skip
    if frame.subject_adjective is not None and frame.object_adjective is not None \
            and frame.subject_adjective != frame.object_adjective:  # fmt: skip
        options.append(replace(frame, subject_adjective=frame.object_adjective, object_adjective=frame.subject_adjective))
    if frame.place is not None:
        preposition, noun = frame.place
        if noun != frame.subject:
            options.append(replace(frame, subject=noun, place=(preposition, frame.subject)))
        if noun != frame.object:
            options.append(replace(frame, object=noun, place=(preposition, frame.object)))
    return options[int(rng.integers(len(options)))] if options else None


@dataclass(frozen=True)
class Example:
    """A language-independent labeled pair: two frames, and whether each fronts its place."""

    first: Frame
    second: Frame
    label: str
    front_first: bool = False
    front_second: bool = False


def nli_example(lexicon: Lexicon, rng: np.random.Generator) -> Example:
    """One ``syn-nli`` example; labels are drawn uniformly."""
    while True:  # redraw when a change happened to be undone (e.g. a role swap of equal nouns)
        label = NLI_LABELS[int(rng.integers(3))]
        premise = sample_frame(lexicon, rng, negation_rate=0.0)
        if label == "neutral":
            hypothesis = _neutral_hypothesis(premise, lexicon, rng)
        else:
            hypothesis = replace(_drop_modifiers(premise, rng), negated=label == "contradiction")
        if nli_label(premise, hypothesis) == label:
            return Example(premise, hypothesis, label)


def paws_example(lexicon: Lexicon, rng: np.random.Generator) -> Example:
    """One ``syn-paws`` example; labels are drawn uniformly, both sides have the same words."""
    second = None
    while second is None:  # redraw when the frame has no same-words variant
        paraphrase = bool(rng.random() < 0.5)
        first = sample_frame(lexicon, rng, adjective_rate=0.5, place_rate=0.5)
        second = first if paraphrase else _scrambled(first, rng)
    fronts = rng.random(2) < 0.5
    return Example(first, second, paws_label(first, second), bool(fronts[0]), bool(fronts[1]))


EXAMPLE_MAKERS = {"syn-nli": nli_example, "syn-paws": paws_example}
"""Synthetic task name → example generator; the names are registered in :mod:`xltlib.tasks`."""


def render_examples(examples: list[Example], lexicon: Lexicon, recipe: LanguageRecipe, rng: np.random.Generator | None = None) -> list[tuple[str, str, str]]:  # fmt: skip
    """``(text_a, text_b, label)`` rows of one language, in the order of ``examples``."""
    return [
        (render(e.first, lexicon, recipe, rng, e.front_first), render(e.second, lexicon, recipe, rng, e.front_second), e.label)
        for e in examples
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------
# Data: every file of the profile, generated once per DataSpec into a hash-named folder.

GENERATOR_VERSION = 5
"""Bump when the same :class:`DataSpec` would generate different files, to retire old caches."""


@dataclass(frozen=True)
class DataSpec:
    """Everything that determines the generated data; its hash names the data folder.

    Attributes:
        grammar: the base grammar (:class:`GrammarSpec`).
        targets: recipes of the target languages (the source is always :data:`BASE`).
        mono_documents: two-sentence documents of non-parallel monolingual text per language
            (the masked-LM corpus; each language draws its own frames).
        detection_pairs: base-language sentence pairs with a label per word, for the
            intermediate change-detection stage (:func:`detection_pairs`).
        train_examples: base-language training pairs per task.
        dev_examples: dev pairs per task, rendered in every language like the test pairs.
            Settings are chosen on the base language's dev pairs only; the others exist so
            that ``--eval-split dev`` covers every language, as XNLI's dev split does.
        test_examples: test pairs per task, rendered in every language (line i is the same
            example everywhere).
        parallel_sentences: sentences rendered in every language for measuring alignment
            (the Tatoeba analog).
        front_place_rate: how often monolingual text fronts a place phrase.
        restate_rate: how often a document's second sentence restates its first.
        seed: seeds the frames of every file (the lexicon has ``grammar.seed``).
    """

    grammar: GrammarSpec = GrammarSpec()
    targets: tuple[LanguageRecipe, ...] = TARGETS
    mono_documents: int = 20_000
    detection_pairs: int = 50_000
    train_examples: int = 10_000
    dev_examples: int = 1_000
    test_examples: int = 1_000
    parallel_sentences: int = 1_000
    front_place_rate: float = 0.25
    restate_rate: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("mono_documents", "detection_pairs", "train_examples", "dev_examples", "test_examples", "parallel_sentences"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise XltError(f"DataSpec.{name} must be a positive int, got {value!r}")
        for name in ("front_place_rate", "restate_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise XltError(f"DataSpec.{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.targets:
            raise XltError("DataSpec.targets needs at least one target language")

    @property
    def recipes(self) -> tuple[LanguageRecipe, ...]:
        return (BASE, *self.targets)

    def config_hash(self) -> str:
        return canonical_sha256({"data": asdict(self), "generator": GENERATOR_VERSION})


def canonical_sha256(value) -> str:
    """sha256 of ``value``'s canonical JSON (sorted keys, no spaces): the same on every machine."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _rng(spec: DataSpec, *purpose: str) -> np.random.Generator:
    """An independent stream per file, so adding one file never changes another."""
    return np.random.default_rng([spec.seed, *(ord(c) for c in "/".join(purpose))])


def next_frame(previous: Frame, lexicon: Lexicon, rng: np.random.Generator, recur: float = 0.6) -> Frame:
    """A frame that continues ``previous``: its participants, verb and place tend to recur.

    Each role of the new frame takes one of the previous participants (with its adjective)
    with probability ``recur``; the verb and the place recur half as often. Coherent text
    repeats what it is about, so a masked word can often be read off the previous sentence;
    pre-training on such pairs teaches the encoder to match words across the two segments of
    a pair, which the pair tasks need (see :func:`monolingual_corpus`).
    """
    frame = sample_frame(lexicon, rng)
    participants = ((previous.subject, previous.subject_adjective), (previous.object, previous.object_adjective))
    for role in ("subject", "object"):
        if rng.random() < recur:
            noun, adjective = participants[int(rng.integers(2))]
            frame = replace(frame, **{role: noun, f"{role}_adjective": adjective})
    if rng.random() < recur / 2:
        frame = replace(frame, verb=previous.verb)
    if previous.place is not None and rng.random() < recur / 2:
        frame = replace(frame, place=previous.place)
    return frame


def monolingual_corpus(spec: DataSpec, lexicon: Lexicon, recipe: LanguageRecipe) -> list[tuple[str, str]]:
    """Non-parallel text of one language: two-sentence documents of its own frames.

    The second sentence restates the first (same frame, rendered anew: other synonyms, place
    fronted or not) with probability ``spec.restate_rate``, and otherwise continues it
    (:func:`next_frame`). No frame is shared with another language.

    Why pairs, and why restatements: the pair tasks hinge on whether a word of one segment
    occurs in the other. An encoder pre-trained on single sentences — or on pairs whose
    second sentence only tends to reuse words — never learned that matching, and neither
    did fine-tuning on 10k pairs: ``syn-nli`` stalled at the 0.67 that the negation word
    alone gives, recognising no neutral pair (a pre-trained encoder and a random one alike).
    Restatements alone did not teach it either; :func:`detection_pairs` does.
    """
    rng = _rng(spec, "mono", recipe.code)

    def sentence(frame: Frame) -> str:
        return render(frame, lexicon, recipe, rng, front_place=bool(rng.random() < spec.front_place_rate))

    documents = []
    for _ in range(spec.mono_documents):
        first = sample_frame(lexicon, rng)
        second = first if rng.random() < spec.restate_rate else next_frame(first, lexicon, rng)
        documents.append((sentence(first), sentence(second)))
    return documents


CHANGES = ("subject", "object", "verb", "roles", "adjective", "negation")
"""The kinds of one-fact change in a detection pair (see :func:`detection_pairs`)."""
MAX_CHANGES = 3
"""A detection pair's second sentence has 0..MAX_CHANGES changes, equally often."""


def changed_frame(frame: Frame, lexicon: Lexicon, rng: np.random.Generator) -> Frame:
    """``frame`` with one change of meaning, of a kind drawn uniformly from :data:`CHANGES`.

    Another subject, object or verb; subject and object swapped (with their adjectives);
    another adjective on the subject or object (or one added where there was none); the
    negation added or removed. A swap of identical participants changes the subject instead.
    """
    spec = lexicon.spec

    def other(value: int, count: int) -> int:
        return int((value + rng.integers(1, count)) % count)

    change = CHANGES[int(rng.integers(len(CHANGES)))]
    if change == "roles" and frame.subject != frame.object:
        return replace(frame, subject=frame.object, object=frame.subject, subject_adjective=frame.object_adjective,
                       object_adjective=frame.subject_adjective)  # fmt: skip
    if change == "adjective":
        role = ("subject", "object")[int(rng.integers(2))]
        current = getattr(frame, f"{role}_adjective")
        adjective = int(rng.integers(spec.adjectives)) if current is None else other(current, spec.adjectives)
        return replace(frame, **{f"{role}_adjective": adjective})
    if change == "negation":
        return replace(frame, negated=not frame.negated)
    if change == "verb":
        return replace(frame, verb=other(frame.verb, spec.verbs))
    role = "object" if change == "object" else "subject"
    return replace(frame, **{role: other(getattr(frame, role), spec.nouns)})


def _new_fact_labels(words: list[tuple[str, Fact | None]], other: list[tuple[str, Fact | None]]) -> str:
    """Per word: ``1`` if its fact is not stated by ``other``, ``0`` if it is, ``-`` for no fact."""
    stated = {fact for _, fact in other if fact is not None}
    return " ".join("-" if fact is None else str(int(fact not in stated)) for _, fact in words)


def _fact_kinds(words: list[tuple[str, Fact | None]]) -> str:
    """Per word: the role of its fact (``subject``, ``verb``, ``negated``, ``place``…), ``-`` for none."""
    return " ".join("-" if fact is None else fact[0] for _, fact in words)


def detection_pairs(spec: DataSpec, lexicon: Lexicon, recipe: LanguageRecipe = BASE) -> list[tuple[str, ...]]:
    """Sentence pairs of one language with a label on every word: does it say something new?

    Rows are ``(first, second, first_labels, second_labels, first_kinds, second_kinds)``; a
    label sequence has one entry per word (``1`` new: its fact is not in the other sentence;
    ``0`` stated in both; ``-`` a determiner), a kind sequence names each word's kind of fact
    (:func:`_fact_kinds`), so the stage can report its recall per kind. The second sentence
    renders the first one's frame after 0, 1, 2 or 3 :func:`changed_frame` changes (equally
    often; other synonyms and place fronted or not either way), so most pairs mix stated and
    new words. The profile writes them for the source language only: they are the data of
    an intermediate task (:class:`xltlib.models.DetectionSpec`), which, like fine-tuning,
    sees the source language alone and reaches the others only through the encoder's
    alignment.

    Why: the pair tasks hinge on whether a word of one segment is stated in the other, and
    one label per pair does not teach that comparison to a small encoder — fine-tuned on
    10k pairs, ``syn-nli`` stalls at the 0.67 that the negation word alone gives. A label on
    every word does (measurements in the book's design notes, "Why the change-detection stage"). Several
    changes per pair make the signal dense, as ELECTRA's 15% replaced tokens do: with one
    change in half of the pairs the comparison formed late or not at all, depending on the
    seed.
    """
    rng = _rng(spec, "detect", recipe.code)

    def words(frame: Frame) -> list[tuple[str, Fact | None]]:
        return render_words(frame, lexicon, recipe, rng, front_place=bool(rng.random() < spec.front_place_rate))

    rows = []
    for _ in range(spec.detection_pairs):
        first = second = sample_frame(lexicon, rng)
        for _ in range(int(rng.integers(MAX_CHANGES + 1))):
            second = changed_frame(second, lexicon, rng)
        a, b = words(first), words(second)
        rows.append((" ".join(w for w, _ in a), " ".join(w for w, _ in b), _new_fact_labels(a, b), _new_fact_labels(b, a),
                     _fact_kinds(a), _fact_kinds(b)))  # fmt: skip
    return rows


def task_examples(spec: DataSpec, lexicon: Lexicon, task: str) -> dict[str, list[Example]]:
    """Train, dev and test examples of a task; no (first, second) frame pair is in two splits."""
    make = EXAMPLE_MAKERS[task]
    rng = _rng(spec, "task", task)
    seen: set[tuple[Frame, Frame]] = set()
    splits = {}
    for split, size in (("train", spec.train_examples), ("dev", spec.dev_examples), ("test", spec.test_examples)):
        examples: list[Example] = []
        while len(examples) < size:
            example = make(lexicon, rng)
            key = (example.first, example.second)
            if key not in seen:
                seen.add(key)
                examples.append(example)
        splits[split] = examples
    return splits


def synonym_table(lexicon: Lexicon, code: str = "base") -> dict[str, list[str]]:
    """word → its synonyms, in the format of ``counterfitted_neighbors.json`` (for ``rs_da``)."""
    table = {}
    for forms in lexicon.forms[code].values():
        for word in forms:
            table[word] = [other for other in forms if other != word]
    return {word: others for word, others in sorted(table.items()) if others}


def _write_tsv(path: Path, rows: list[tuple[str, ...]]) -> None:
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_data(spec: DataSpec, out_dir: str | Path, progress: bool = True) -> Path:
    """Generate every file of the profile into ``out_dir`` (written whole or not at all).

    Layout (XTREME-style, so the task loaders read it like real data)::

        languages.json                 recipes and distances of every language
        spec.json                      this DataSpec
        mono-{lang}.tsv                non-parallel pre-training text: two-sentence documents
        detect-base.tsv                base-language pairs with a new/stated label and a kind per word (detection stage)
        parallel-{lang}.txt            line-aligned sentences for alignment (Tatoeba analog)
        synonyms-base.json             the base language's synonyms (for rs_da)
        {task}/train-base.tsv          text_a, text_b, label
        {task}/dev-{lang}.tsv          line-aligned across languages, labeled
        {task}/test-{lang}.tsv         line-aligned across languages, labeled
    """
    from tqdm.auto import tqdm

    with atomic_directory(out_dir, "use ensure_data() to reuse it") as tmp:
        lexicon = build_lexicon(spec.grammar, spec.recipes)
        languages = {r.code: {**asdict(r), "distance": r.distance()} for r in spec.recipes}
        (tmp / "languages.json").write_text(json.dumps(languages, indent=2) + "\n")
        (tmp / "spec.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
        (tmp / "synonyms-base.json").write_text(json.dumps(synonym_table(lexicon), indent=1) + "\n")
        steps = tqdm(spec.recipes, desc="synthetic data", unit="lang", disable=not progress)
        for recipe in steps:
            _write_tsv(tmp / f"mono-{recipe.code}.tsv", monolingual_corpus(spec, lexicon, recipe))
        _write_tsv(tmp / "detect-base.tsv", detection_pairs(spec, lexicon))
        parallel_rng = _rng(spec, "parallel")
        parallel = [sample_frame(lexicon, parallel_rng) for _ in range(spec.parallel_sentences)]
        for recipe in spec.recipes:
            synonyms = _rng(spec, "parallel", recipe.code) if recipe is BASE else None
            _write_lines(tmp / f"parallel-{recipe.code}.txt", [render(f, lexicon, recipe, synonyms) for f in parallel])
        for task in EXAMPLE_MAKERS:
            (tmp / task).mkdir()
            splits = task_examples(spec, lexicon, task)
            _write_tsv(tmp / task / "train-base.tsv", render_examples(splits["train"], lexicon, BASE, _rng(spec, task, "train")))
            for recipe in spec.recipes:
                dev_synonyms = _rng(spec, task, "dev") if recipe is BASE else None
                _write_tsv(tmp / task / f"dev-{recipe.code}.tsv", render_examples(splits["dev"], lexicon, recipe, dev_synonyms))
                synonyms = _rng(spec, task, "test", recipe.code) if recipe is BASE else None
                _write_tsv(tmp / task / f"test-{recipe.code}.tsv", render_examples(splits["test"], lexicon, recipe, synonyms))
    return Path(out_dir)


def ensure_data(spec: DataSpec = DataSpec(), cache_dir: str | Path = "cache", progress: bool = True) -> Path:
    """The generated data folder for ``spec`` under ``cache_dir``, generated on first use."""
    path = Path(cache_dir).resolve() / "synthetic" / f"data-{spec.config_hash()[:12]}"
    return build_once(path, lambda out: write_data(spec, out, progress))


def data_sha256(data_dir: str | Path) -> str:
    """sha256 over every file of a generated data folder (relative paths and contents, in path order).

    The shipped encoders record it: their tokenizers and calibration belong to these exact
    files, so generated data that differ (a changed generator) are caught before a run.
    """
    root = Path(data_dir)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def language_distances(data_dir: str | Path) -> dict[str, float]:
    """language code → recipe distance, read from a generated data folder."""
    path = Path(data_dir) / "languages.json"
    if not path.is_file():
        raise XltError(f"{path} not found: {data_dir} is not a generated synthetic data folder (see ensure_data)")
    return {code: recipe["distance"] for code, recipe in json.loads(path.read_text()).items()}
