"""The synthetic tasks' pairs: how a pair of frames is made and labelled (NLI, paraphrase).

A label follows from the two frames alone (:func:`nli_label`, :func:`paws_label`), so it
is the same in every language the pair is rendered into (:mod:`xltlib.synthetic.languages`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from xltlib.data.tasks import get_task
from xltlib.errors import XltError
from xltlib.synthetic.grammar import Frame, entails_noun, generalized, sample_frame, swapped_roles
from xltlib.synthetic.languages import LanguageRecipe, Lexicon, render

NLI_LABELS = get_task("syn-nli").labels


PAWS_LABELS = get_task("syn-paws").labels


def _modifiers(frame: Frame) -> set[tuple[str, object]]:
    """The optional parts of a frame, as facts: adjective on subject / object, place."""
    facts = {
        ("subject_adjective", frame.subject_adjective),
        ("object_adjective", frame.object_adjective),
        ("place", frame.place),
    }
    return {fact for fact in facts if fact[1] is not None}


def nli_label(premise: Frame, hypothesis: Frame, lexicon: Lexicon) -> str:
    """The label of a ``syn-nli`` pair, by frame logic.

    The premise asserts one event (it is never negated). The hypothesis follows from it
    (*entailment*) when it names the same event — the same verb, and in each role the
    premise's noun or its hypernym (*the poodle barks* ⊨ *the dog barks*,
    :func:`xltlib.synthetic.grammar.entails_noun`) — with no modifier the premise lacks; it
    denies it (*contradiction*) under the same conditions but negated; anything else
    (another participant or verb, a hyponym or a wrong hypernym, swapped roles, a modifier
    the premise does not state) cannot be decided (*neutral*). The hypernyms are lexical
    facts: only source labels teach them, and only aligned words carry them to another language.
    """
    if premise.negated:
        raise XltError("syn-nli premises are assertions: a negated premise has no label by this logic")
    same_event = (
        premise.verb == hypothesis.verb
        and entails_noun(lexicon, premise.subject, hypothesis.subject)
        and entails_noun(lexicon, premise.object, hypothesis.object)
    )
    if not same_event or not _modifiers(hypothesis) <= _modifiers(premise):
        return "neutral"
    return "contradiction" if hypothesis.negated else "entailment"


def paws_label(first: Frame, second: Frame) -> str:
    """The label of a ``syn-paws`` pair: a paraphrase exactly when both render one frame."""
    return "1" if first == second else "0"


def _drop_modifiers(frame: Frame, rng: np.random.Generator, keep: float = 0.5) -> Frame:
    def kept(value):
        return value if value is not None and rng.random() < keep else None

    return replace(
        frame,
        subject_adjective=kept(frame.subject_adjective),
        object_adjective=kept(frame.object_adjective),
        place=kept(frame.place),
    )


def _neutral_hypothesis(premise: Frame, lexicon: Lexicon, rng: np.random.Generator) -> Frame:
    """A hypothesis the premise neither entails nor contradicts (one undecidable change)."""
    spec = lexicon.spec
    hypothesis = _drop_modifiers(premise, rng)
    change = rng.choice(("swap_roles", "other_noun", "other_verb", "add_modifier", "other_hypernym"))
    if change == "swap_roles" and premise.subject != premise.object:
        hypothesis = swapped_roles(hypothesis)  # its participants are still the premise's
    elif change == "other_verb":
        hypothesis = replace(hypothesis, verb=int((premise.verb + rng.integers(1, spec.verbs)) % spec.verbs))
    elif change == "add_modifier":
        slot = rng.choice(("subject_adjective", "object_adjective", "place"))
        if slot == "place":
            value = (int(rng.integers(spec.prepositions)), int(rng.integers(spec.nouns)))
        else:
            value = int(rng.integers(spec.adjectives))
        hypothesis = replace(hypothesis, **{slot: value})
    elif change == "other_hypernym" and spec.hypernyms:
        # a hypernym, but not the participant's: the relation has to be known, not guessed from the word
        role = rng.choice(("subject", "object"))
        hypernyms = np.flatnonzero(lexicon.hypernym_of < 0)
        hypothesis = replace(hypothesis, **{role: int(hypernyms[rng.integers(len(hypernyms))])})
    else:
        role = rng.choice(("subject", "object"))
        hypothesis = replace(
            hypothesis, **{role: int((getattr(premise, role) + rng.integers(1, spec.nouns)) % spec.nouns)}
        )
    return replace(hypothesis, negated=bool(rng.random() < 0.5))


def _scrambled(frame: Frame, rng: np.random.Generator) -> Frame | None:
    """Another frame with the same bag of concepts (PAWS' word swaps), or None if none exists."""
    options = []
    if (frame.subject, frame.subject_adjective) != (frame.object, frame.object_adjective):
        options.append(swapped_roles(frame))
    if (
        frame.subject_adjective is not None
        and frame.object_adjective is not None
        and frame.subject_adjective != frame.object_adjective
    ):
        options.append(
            replace(frame, subject_adjective=frame.object_adjective, object_adjective=frame.subject_adjective)
        )
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


def nli_example(lexicon: Lexicon, rng: np.random.Generator, generalize_rate: float = 0.5) -> Example:
    """One ``syn-nli`` example; labels are drawn uniformly.

    An entailed or contradicted hypothesis names a participant by its hypernym with
    probability ``generalize_rate``; neutral ones include wrong hypernyms as often as any
    other change, so the label turns on which noun is a kind of which.
    """
    while True:  # redraw when a change happened to be undone (e.g. a role swap of equal nouns)
        label = NLI_LABELS[int(rng.integers(3))]
        premise = sample_frame(lexicon, rng, negation_rate=0.0)
        if label == "neutral":
            hypothesis = _neutral_hypothesis(premise, lexicon, rng)
        else:
            hypothesis = replace(_drop_modifiers(premise, rng), negated=label == "contradiction")
            if rng.random() < generalize_rate:
                hypothesis = generalized(hypothesis, lexicon, rng)
        if nli_label(premise, hypothesis, lexicon) == label:
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
"""Synthetic task name → example generator; the names are registered in :mod:`xltlib.data.tasks`."""


def render_examples(
    examples: list[Example], lexicon: Lexicon, recipe: LanguageRecipe, rng: np.random.Generator | None = None
) -> list[tuple[str, str, str]]:
    """``(text_a, text_b, label)`` rows of one language, in the order of ``examples``."""
    return [
        (
            render(e.first, lexicon, recipe, rng, e.front_first),
            render(e.second, lexicon, recipe, rng, e.front_second),
            e.label,
        )
        for e in examples
    ]
