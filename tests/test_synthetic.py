"""Synthetic languages: determinism, nested anchors, recipes rendered as documented."""

import numpy as np
import pytest

from xltlib import synthetic
from xltlib.errors import XltError
from xltlib.synthetic import BASE, TARGETS, Frame, GrammarSpec, LanguageRecipe, build_lexicon, render, sample_frame

RECIPES = (BASE, *TARGETS)


@pytest.fixture(scope="module")
def lexicon():
    return build_lexicon(GrammarSpec(), RECIPES)


def words_of(lexicon, code):
    return {form for forms in lexicon.forms[code].values() for form in forms}


def test_same_seed_same_lexicon_and_frames():
    first, second = build_lexicon(GrammarSpec(seed=3), RECIPES), build_lexicon(GrammarSpec(seed=3), RECIPES)
    assert first.forms == second.forms
    frames = [sample_frame(first, np.random.default_rng(7)) for _ in range(5)]
    assert frames == [sample_frame(second, np.random.default_rng(7)) for _ in range(5)]
    assert build_lexicon(GrammarSpec(seed=4), RECIPES).forms != first.forms


def test_anchor_sets_are_nested_and_sized_by_the_recipe(lexicon):
    base = lexicon.forms["base"]
    concepts = lexicon.concepts()

    def anchors(code):
        return {c for c in concepts if lexicon.forms[code][c][0] == base[c][0]}

    assert anchors("a0") == set()
    assert anchors("a20") <= anchors("a50") <= anchors("a80")
    assert anchors("a20") == anchors("a20sov")
    for code, share in (("a20", 0.2), ("a50", 0.5), ("a80", 0.8)):
        assert len(anchors(code)) == round(share * len(concepts))


def test_non_anchor_words_never_collide_across_languages(lexicon):
    for i, a in enumerate(RECIPES):
        for b in RECIPES[i + 1 :]:
            shared = words_of(lexicon, a.code) & words_of(lexicon, b.code)
            assert shared <= words_of(lexicon, "base"), (a.code, b.code)
    script = "".join(words_of(lexicon, "a0script"))
    assert not set(script) & set("abcdefghijklmnopqrstuvwxyz")


def test_recipes_render_word_order_adjectives_and_adpositions(lexicon):
    frame = Frame(subject=1, verb=2, object=3, subject_adjective=4, negated=True, place=(0, 5))

    def w(code, kind, i):
        return lexicon.forms[code][(kind, i)][0]

    for code, order, adjective_after, post in (("a50", "SVO", False, False), ("a20sov", "SOV", False, True),
                                               ("a0vso", "VSO", True, False)):  # fmt: skip
        det, neg = w(code, "determiner", 0), w(code, "negation", 0)
        subject = [det, w(code, "noun", 1), w(code, "adjective", 4)] if adjective_after else \
            [det, w(code, "adjective", 4), w(code, "noun", 1)]  # fmt: skip
        slots = {"S": subject, "V": [neg, w(code, "verb", 2)], "O": [det, w(code, "noun", 3)]}
        place = [det, w(code, "noun", 5)]
        place = place + [w(code, "preposition", 0)] if post else [w(code, "preposition", 0), *place]
        expected = [token for slot in order for token in slots[slot]] + place
        assert render(frame, lexicon, synthetic.TARGETS[[t.code for t in TARGETS].index(code)]).split() == expected


def test_base_language_synonyms_vary_only_with_an_rng(lexicon):
    with_synonym = [c for c, forms in lexicon.forms["base"].items() if len(forms) == 2 and c[0] == "verb"]
    assert with_synonym, "the default grammar has verb synonyms"
    plain_nouns = [i for (kind, i), forms in lexicon.forms["base"].items() if kind == "noun" and len(forms) == 1]
    frame = Frame(subject=plain_nouns[0], verb=with_synonym[0][1], object=plain_nouns[1])
    assert render(frame, lexicon, BASE) == render(frame, lexicon, BASE)
    rng = np.random.default_rng(0)
    assert len({render(frame, lexicon, BASE, rng) for _ in range(30)}) == 2


def test_frames_follow_class_preferences(lexicon):
    rng = np.random.default_rng(0)
    frames = [sample_frame(lexicon, rng) for _ in range(3000)]
    hits = np.mean([lexicon.noun_class[f.object] == lexicon.verb_object_class[f.verb] for f in frames])
    chance = 1 / lexicon.spec.classes
    # preferred class with probability 0.9, plus chance hits among the other 0.1
    assert hits == pytest.approx(0.9 + 0.1 * chance, abs=0.03)


def test_distance_orders_the_default_targets():
    distances = [recipe.distance() for recipe in TARGETS]
    assert BASE.distance() == 0
    assert distances == sorted(distances) and len(set(distances)) == len(distances)


def test_bad_recipes_are_refused():
    with pytest.raises(XltError, match="anchor_share"):
        LanguageRecipe("x", anchor_share=1.5)
    with pytest.raises(XltError, match="order 'SXO'"):
        LanguageRecipe("x", anchor_share=0.5, order="SXO")
    with pytest.raises(XltError, match="unique"):
        build_lexicon(GrammarSpec(), (BASE, BASE))
