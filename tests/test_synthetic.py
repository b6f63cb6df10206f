"""Synthetic languages: determinism, nested anchors, recipes rendered as documented."""

import csv
import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from xltlib.data import loading, parallel, synthetic_tasks, tasks, word_alignment
from xltlib.errors import XltError
from xltlib.synthetic import examples, generated, grammar, languages
from xltlib.synthetic.grammar import Frame, GrammarSpec, sample_frame
from xltlib.synthetic.languages import BASE, TARGETS, LanguageRecipe, build_lexicon, render

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
    content = [c for c in lexicon.concepts() if c[0] in grammar.CONTENT_KINDS]
    function = [c for c in lexicon.concepts() if c[0] not in grammar.CONTENT_KINDS]

    def anchors(recipe, concepts):
        return {c for c in concepts if lexicon.forms[recipe.code][c][0] == base[c][0]}

    by_share = {}
    for recipe in TARGETS:
        shared = anchors(recipe, content)
        assert len(shared) == round(recipe.anchor_share * len(content)), recipe.code
        by_share.setdefault(recipe.anchor_share, set()).update(shared)
        assert anchors(recipe, function) == (set(function) if recipe.shared_function_words else set()), recipe.code
    assert by_share[0.0] == set() and by_share[0.5] < by_share[1.0]
    assert {frozenset(anchors(r, content)) for r in TARGETS if r.anchor_share == 0.5} == {frozenset(by_share[0.5])}


def test_the_default_targets_cross_anchor_share_order_and_function_words():
    cells = {(r.anchor_share, r.order) for r in TARGETS}
    assert cells == {(share, order) for share in languages.ANCHOR_SHARES for order in languages.FACTORIAL_ORDERS}
    assert len(TARGETS) == len(cells)
    for factor in ("anchor_share", "order"):
        for level in {getattr(r, factor) for r in TARGETS}:  # each level with and without shared function words
            assert {r.shared_function_words for r in TARGETS if getattr(r, factor) == level} == {True, False}
    assert all(r.factors() != BASE.factors() for r in TARGETS)  # no target copies the base language
    assert not any(r.adjective_after or r.postpositions or r.own_script for r in TARGETS)
    assert [r.code for r in (BASE, *TARGETS)] == list(synthetic_tasks.SYNTHETIC_LANGUAGES)


def test_non_anchor_words_never_collide_across_languages():
    script = LanguageRecipe("own", anchor_share=0.0, shared_function_words=False, own_script=True)
    recipes = (*RECIPES, script)
    lexicon = build_lexicon(GrammarSpec(), recipes)
    for i, a in enumerate(recipes):
        for b in recipes[i + 1 :]:
            shared = words_of(lexicon, a.code) & words_of(lexicon, b.code)
            assert shared <= words_of(lexicon, "base"), (a.code, b.code)
    assert not set("".join(words_of(lexicon, "own"))) & set("abcdefghijklmnopqrstuvwxyz")


def test_recipes_render_word_order_adjectives_and_adpositions():
    recipes = (
        LanguageRecipe("svo", anchor_share=0.5),
        LanguageRecipe("sov", anchor_share=0.2, order="SOV", postpositions=True),
        LanguageRecipe("vso", anchor_share=0.0, order="VSO", adjective_after=True),
    )
    lexicon = build_lexicon(GrammarSpec(), (BASE, *recipes))
    frame = Frame(subject=1, verb=2, object=3, subject_adjective=4, negated=True, place=(0, 5))

    def w(code, kind, i):
        return lexicon.forms[code][(kind, i)][0]

    for recipe in recipes:
        code = recipe.code
        det, neg = w(code, "determiner", 0), w(code, "negation", 0)
        subject = (
            [det, w(code, "noun", 1), w(code, "adjective", 4)]
            if recipe.adjective_after
            else [det, w(code, "adjective", 4), w(code, "noun", 1)]
        )
        slots = {"S": subject, "V": [neg, w(code, "verb", 2)], "O": [det, w(code, "noun", 3)]}
        place = [det, w(code, "noun", 5)]
        place = place + [w(code, "preposition", 0)] if recipe.postpositions else [w(code, "preposition", 0), *place]
        expected = [token for slot in recipe.order for token in slots[slot]] + place
        assert render(frame, lexicon, recipe).split() == expected


def test_every_noun_but_a_hypernym_has_one_hypernym(lexicon):
    hypernym_of = lexicon.hypernym_of
    heads = np.flatnonzero(hypernym_of < 0)
    assert len(heads) == lexicon.spec.hypernyms
    assert set(hypernym_of[hypernym_of >= 0]) == set(heads)  # a hypernym is never a kind of another
    sizes = np.bincount(hypernym_of[hypernym_of >= 0])[heads]
    assert sizes.max() - sizes.min() <= 1
    assert (build_lexicon(GrammarSpec(hypernyms=0), RECIPES).hypernym_of == -1).all()
    with pytest.raises(XltError, match="hypernyms"):
        GrammarSpec(hypernyms=96)


def test_base_language_synonyms_vary_only_with_an_rng(lexicon):
    with_synonym = [i for (kind, i), forms in lexicon.forms["base"].items() if kind == "noun" and len(forms) == 2]
    plain_nouns = [i for (kind, i), forms in lexicon.forms["base"].items() if kind == "noun" and len(forms) == 1]
    frame = Frame(subject=with_synonym[0], verb=0, object=plain_nouns[0])
    assert render(frame, lexicon, BASE) == render(frame, lexicon, BASE)
    rng = np.random.default_rng(0)
    assert len({render(frame, lexicon, BASE, rng) for _ in range(30)}) == 2


@pytest.mark.parametrize("kinds", [("noun", "adjective"), ("noun", "verb"), ()])
def test_synonyms_only_for_the_grammars_synonym_kinds(kinds):
    lexicon = build_lexicon(GrammarSpec(synonym_kinds=kinds), RECIPES)
    with_synonyms = {kind for (kind, _), forms in lexicon.forms["base"].items() if len(forms) == 2}
    assert with_synonyms == set(kinds)
    assert all(len(forms) == 1 for recipe in TARGETS for forms in lexicon.forms[recipe.code].values())


def test_default_grammar_has_no_verb_synonyms():
    assert "verb" not in GrammarSpec().synonym_kinds


@pytest.mark.parametrize(
    "kinds, message",
    [(("nouns",), "did you mean 'noun'"), (("preposition",), "kinds: noun"), ("noun", "a tuple of kinds")],
)
def test_bad_synonym_kinds_fail_with_a_clear_error(kinds, message):
    with pytest.raises(XltError, match=message):
        GrammarSpec(synonym_kinds=kinds)


def test_frames_follow_class_preferences(lexicon):
    rng = np.random.default_rng(0)
    frames = [sample_frame(lexicon, rng) for _ in range(3000)]
    hits = np.mean([lexicon.noun_class[f.object] == lexicon.verb_object_class[f.verb] for f in frames])
    chance = 1 / lexicon.spec.classes
    # preferred class with probability 0.9, plus chance hits among the other 0.1
    assert hits == pytest.approx(0.9 + 0.1 * chance, abs=0.03)


def test_distance_adds_the_documented_weights():
    assert BASE.distance() == 0
    assert LanguageRecipe("x", anchor_share=0.5, order="SOV").distance() == 1.0
    assert LanguageRecipe("x", anchor_share=0.0, shared_function_words=False, own_script=True).distance() == 1.5
    assert {r.code: r.distance() for r in TARGETS}["a0vso"] == max(r.distance() for r in TARGETS)


def test_bad_recipes_are_refused():
    with pytest.raises(XltError, match="anchor_share"):
        LanguageRecipe("x", anchor_share=1.5)
    with pytest.raises(XltError, match="order 'SXO'"):
        LanguageRecipe("x", anchor_share=0.5, order="SXO")
    with pytest.raises(XltError, match="unique"):
        build_lexicon(GrammarSpec(), (BASE, BASE))


SMALL = generated.DataSpec(
    mono_documents=300,
    detection_pairs=400,
    train_examples=600,
    dev_examples=200,
    test_examples=200,
    parallel_sentences=150,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return generated.ensure_data(SMALL, tmp_path_factory.mktemp("cache"), progress=False)


def read_pairs(path):
    return pd.read_csv(
        path, sep="\t", header=None, names=["a", "b", "label"], dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE
    )


@pytest.mark.parametrize("task", ["syn-nli", "syn-paws"])
def test_no_pair_has_two_labels_and_labels_follow_frame_logic(data_dir, lexicon, task):
    rows = pd.concat([read_pairs(p) for p in sorted((data_dir / task).glob("*.tsv"))])
    labels_per_pair = rows.groupby(["a", "b"])["label"].nunique()
    assert (labels_per_pair == 1).all(), labels_per_pair[labels_per_pair > 1].head()
    expected = examples.NLI_LABELS if task == "syn-nli" else examples.PAWS_LABELS
    counts = read_pairs(data_dir / task / "train-base.tsv")["label"].value_counts(normalize=True)
    assert set(counts.index) == set(expected) and counts.min() > 0.8 / len(expected)  # roughly balanced
    rng = np.random.default_rng(5)
    for _ in range(300):
        example = examples.EXAMPLE_MAKERS[task](lexicon, rng)
        if task == "syn-nli":
            assert examples.nli_label(example.first, example.second, lexicon) == example.label
        else:
            assert examples.paws_label(example.first, example.second) == example.label


def test_syn_nli_labels_turn_on_hypernyms(lexicon):
    """Entailments name participants by their hypernyms, and neutral pairs name wrong hypernyms, both often."""
    rng = np.random.default_rng(8)
    heads = set(np.flatnonzero(lexicon.hypernym_of < 0))
    counts = Counter()
    for _ in range(3000):
        example = examples.nli_example(lexicon, rng)
        for role in ("subject", "object"):
            named, stated = getattr(example.second, role), getattr(example.first, role)
            if named != stated and named in heads:
                right = named == lexicon.hypernym_of[stated]
                counts[(example.label, right)] += 1
    assert counts[("entailment", True)] > 300 and counts[("contradiction", True)] > 300
    assert counts[("neutral", False)] > 100
    assert counts[("entailment", False)] == counts[("contradiction", False)] == 0


def test_frame_logic_by_hand(lexicon):
    kind = int(np.flatnonzero(lexicon.hypernym_of >= 0)[0])
    hypernym = int(lexicon.hypernym_of[kind])
    other = next(h for h in np.flatnonzero(lexicon.hypernym_of < 0) if h != hypernym)
    premise = Frame(subject=kind, verb=2, object=3, subject_adjective=4, place=(0, 5))

    def label(hypothesis):
        return examples.nli_label(premise, hypothesis, lexicon)

    assert label(Frame(kind, 2, 3)) == "entailment"  # dropping modifiers
    assert label(Frame(kind, 2, 3, negated=True)) == "contradiction"
    assert label(Frame(3, 2, kind)) == "neutral"  # swapped roles
    assert label(Frame(kind, 2, 3, object_adjective=4)) == "neutral"  # unstated modifier
    assert label(Frame(kind, 2, 3, subject_adjective=4, negated=True)) == "contradiction"
    assert label(Frame(hypernym, 2, 3, subject_adjective=4)) == "entailment"  # the poodle ⊨ the dog
    assert label(Frame(hypernym, 2, 3, negated=True)) == "contradiction"
    assert label(Frame(other, 2, 3)) == "neutral"  # a hypernym, but not this noun's
    general = Frame(hypernym, 2, 3)
    assert examples.nli_label(general, Frame(kind, 2, 3), lexicon) == "neutral"  # the dog ⊭ the poodle
    with pytest.raises(XltError, match="negated premise"):
        examples.nli_label(Frame(1, 2, 3, negated=True), Frame(1, 2, 3), lexicon)
    assert examples.paws_label(premise, premise) == "1"
    assert examples.paws_label(premise, Frame(3, 2, 1, object_adjective=4, place=(0, 5))) == "0"


def test_paws_pairs_share_their_bag_of_concepts(lexicon):
    rng = np.random.default_rng(2)
    for _ in range(300):
        example = examples.paws_example(lexicon, rng)
        first, second = (render(f, lexicon, languages.TARGETS[3]) for f in (example.first, example.second))
        assert sorted(first.split()) == sorted(second.split())


@pytest.mark.parametrize("split, size", [("test", SMALL.test_examples), ("dev", SMALL.dev_examples)])
def test_eval_sets_are_line_aligned_in_every_language(data_dir, split, size):
    codes = [recipe.code for recipe in RECIPES]
    for task in ("syn-nli", "syn-paws"):
        frames = {code: read_pairs(data_dir / task / f"{split}-{code}.tsv") for code in codes}
        assert {len(frame) for frame in frames.values()} == {size}
        for code in codes:
            assert (frames[code]["label"] == frames["base"]["label"]).all()
        # a0 shares no word with base; same lines must still be the same examples: equal word counts
        assert (frames["a0svo"]["a"].str.split().str.len() == frames["a50svo-f"]["a"].str.split().str.len()).all()
    assert not list(data_dir.glob("*/train-a*.tsv"))  # training data stays in the source language


def test_dev_and_test_sets_hold_different_examples(data_dir):
    for task in ("syn-nli", "syn-paws"):
        dev, test = (read_pairs(data_dir / task / f"{split}-a0svo.tsv") for split in ("dev", "test"))
        assert not set(zip(dev["a"], dev["b"])) & set(zip(test["a"], test["b"]))


def test_parallel_sentences_are_line_aligned(data_dir, lexicon):
    codes = [recipe.code for recipe in RECIPES]
    parallel = {code: (data_dir / f"parallel-{code}.txt").read_text().splitlines() for code in codes}
    assert {len(lines) for lines in parallel.values()} == {SMALL.parallel_sentences}
    anchors_near = {lexicon.forms["a100svo"][c][0] for c in lexicon.concepts()} & words_of(lexicon, "base")
    shared = [set(a.split()) & set(b.split()) for a, b in zip(parallel["base"], parallel["a100svo"])]
    assert all(words <= anchors_near for words in shared) and np.mean([len(w) for w in shared]) > 2


def test_monolingual_corpora_are_not_parallel(data_dir):
    first = {
        code: [line.split("\t")[0] for line in (data_dir / f"mono-{code}.tsv").read_text().splitlines()]
        for code in ("base", "a100svo")
    }
    assert len(first["base"]) == SMALL.mono_documents
    # a100svo renders every content word like base: a parallel corpus would repeat most sentences verbatim
    assert len(set(first["base"]) & set(first["a100svo"])) < 0.05 * SMALL.mono_documents


def test_synonym_table_covers_base_synonyms_only(data_dir, lexicon):
    table = json.loads((data_dir / "synonyms-base.json").read_text())
    pairs = [forms for forms in lexicon.forms["base"].values() if len(forms) == 2]
    assert len(table) == 2 * len(pairs)
    for a, b in pairs:
        assert table[a] == [b] and table[b] == [a]


def test_data_is_cached_by_spec_and_deterministic(data_dir, tmp_path):
    again = generated.write_data(SMALL, tmp_path / "again", progress=False)
    for path in sorted(data_dir.rglob("*.*")):
        assert (again / path.relative_to(data_dir)).read_bytes() == path.read_bytes(), path.name
    assert generated.ensure_data(SMALL, data_dir.parent.parent, progress=False) == data_dir
    other = generated.DataSpec(**{**SMALL.__dict__, "seed": 1})
    assert other.config_hash() != SMALL.config_hash()
    with pytest.raises(XltError, match="train_examples"):
        generated.DataSpec(train_examples=0)


def test_distances_are_recorded(data_dir):
    distances = generated.language_distances(data_dir)
    assert distances == {recipe.code: recipe.distance() for recipe in RECIPES}


def test_generalized_pairs_mix_languages_line_by_line(data_dir):
    task = tasks.get_task("syn-nli")
    base, a0 = (loading.load_split(task, code, "test", data_dir) for code in ("base", "a0svo"))
    mixed = parallel.generalized_pairs(base, a0)
    assert (mixed["text_a"] == base["text_a"]).all() and (mixed["text_b"] == a0["text_b"]).all()
    assert mixed["label"].equals(base["label"])
    with pytest.raises(XltError, match="line-aligned"):
        parallel.generalized_pairs(base, a0.iloc[::-1].reset_index(drop=True))


def test_render_words_is_render_with_facts(lexicon):
    frames = [sample_frame(lexicon, np.random.default_rng(i)) for i in range(200)]
    for recipe in RECIPES:
        for i, frame in enumerate(frames):
            words = languages.render_words(frame, lexicon, recipe, np.random.default_rng(i), front_place=bool(i % 2))
            assert " ".join(w for w, _ in words) == render(
                frame, lexicon, recipe, np.random.default_rng(i), bool(i % 2)
            )
            assert [w for w, fact in words if fact is None] == [lexicon.forms[recipe.code][("determiner", 0)][0]] * (
                2 + (frame.place is not None)
            )


def facts_of(words):
    return {fact for _, fact in words if fact is not None}


@pytest.mark.parametrize("seed", range(5))
def test_a_changed_frame_differs_in_meaning_and_labels_mark_only_new_facts(lexicon, seed):
    rng = np.random.default_rng(seed)
    for _ in range(100):
        frame = sample_frame(lexicon, rng)
        changed = generated.changed_frame(frame, lexicon, rng)
        a, b = (languages.render_words(f, lexicon, BASE, rng) for f in (frame, changed))
        assert changed != frame and facts_of(a) != facts_of(b)
        for words, other in ((a, b), (b, a)):
            labels = generated._new_fact_labels(words, other, lexicon).split()
            assert len(labels) == len(words)
            for label, (_, fact) in zip(labels, words):
                # a participant's hypernym is stated by the participant
                hypernyms = {(r, lexicon.hypernym_of[n]) for r, n in facts_of(other) if r in ("subject", "object")}
                assert label == ("-" if fact is None else "0" if fact in facts_of(other) | hypernyms else "1")
        same = languages.render_words(frame, lexicon, BASE, rng, front_place=True)  # synonyms and word order may differ
        assert set(generated._new_fact_labels(same, a, lexicon).split()) <= {"0", "-"}


def test_detection_labels_by_hand():
    lexicon = build_lexicon(GrammarSpec(hypernyms=0), RECIPES)
    frame = Frame(subject=1, verb=2, object=3)
    plain = languages.render_words(frame, lexicon, BASE)
    other_subject = languages.render_words(Frame(subject=4, verb=2, object=3), lexicon, BASE)
    negated = languages.render_words(Frame(subject=1, verb=2, object=3, negated=True), lexicon, BASE)
    swapped = languages.render_words(Frame(subject=3, verb=2, object=1), lexicon, BASE)
    assert generated._new_fact_labels(other_subject, plain, lexicon) == "- 1 0 - 0"
    assert generated._new_fact_labels(negated, plain, lexicon) == "- 0 1 0 - 0"
    assert generated._new_fact_labels(plain, negated, lexicon) == "- 0 0 - 0"
    assert generated._new_fact_labels(swapped, plain, lexicon) == "- 1 0 - 1"


def test_detection_labels_state_a_hypernym_not_a_hyponym(lexicon):
    kind = int(np.flatnonzero(lexicon.hypernym_of >= 0)[0])
    specific = languages.render_words(Frame(subject=kind, verb=2, object=3), lexicon, BASE)
    general = languages.render_words(Frame(subject=int(lexicon.hypernym_of[kind]), verb=2, object=3), lexicon, BASE)
    assert generated._new_fact_labels(general, specific, lexicon) == "- 0 0 - 0"  # the poodle states the dog
    assert generated._new_fact_labels(specific, general, lexicon) == "- 1 0 - 0"  # the dog does not state the poodle


def test_detection_kinds_by_hand(lexicon):
    frame = Frame(subject=1, verb=2, object=3, subject_adjective=4, negated=True, place=(0, 5))
    words = languages.render_words(frame, lexicon, BASE)
    assert generated._fact_kinds(words).split() == [
        "-",
        "subject_adjective",
        "subject",
        "negated",
        "verb",
        "-",
        "object",
        "place",
        "-",
        "place",
    ]


def test_detection_pairs_are_a_quarter_unchanged_and_base_only(data_dir):
    rows = [line.split("\t") for line in (data_dir / "detect-base.tsv").read_text().splitlines()]
    assert len(rows) == SMALL.detection_pairs and not list(data_dir.glob("detect-a*.tsv"))
    for a, b, labels_a, labels_b, kinds_a, kinds_b in rows:
        assert len(labels_a.split()) == len(a.split()) and len(labels_b.split()) == len(b.split())
        for labels, kinds in ((labels_a, kinds_a), (labels_b, kinds_b)):
            assert [label == "-" for label in labels.split()] == [kind == "-" for kind in kinds.split()]
    unchanged = np.mean(["1" not in labels_a + labels_b for _, _, labels_a, labels_b, *_ in rows])
    assert 0.2 < unchanged < 0.35  # 0 changes in 1/4 of the pairs, plus changes that undo each other


@pytest.mark.parametrize("target", [recipe.code for recipe in TARGETS])
def test_word_alignments_from_surface_forms_are_the_generators_facts(lexicon, target):
    """Align by the lexicon alone; the truth is render_words' facts: same fact, once in each sentence."""
    rng = np.random.default_rng(111)
    recipe = next(r for r in TARGETS if r.code == target)
    source_concepts, target_concepts = lexicon.word_concepts("base"), lexicon.word_concepts(target)
    aligned = 0
    for _ in range(200):
        frame = sample_frame(lexicon, rng)
        source = languages.render_words(frame, lexicon, BASE, rng)  # base synonyms drawn at random
        translated = languages.render_words(frame, lexicon, recipe)
        found = word_alignment.align_words(
            " ".join(w for w, _ in source), " ".join(w for w, _ in translated), source_concepts, target_concepts
        )
        for i, j in found:
            assert source[i][1] is not None and source[i][1] == translated[j][1]  # the same fact of the frame
        source_meant = [source_concepts[w] for w, _ in source]
        target_meant = [target_concepts[w] for w, _ in translated]
        expected = {
            (i, j)
            for i, (_, fact) in enumerate(source)
            for j, (_, other) in enumerate(translated)
            if fact is not None
            and fact == other
            and source_meant[i] == target_meant[j]
            and source_meant.count(source_meant[i]) == 1
            and target_meant.count(target_meant[j]) == 1
        }
        assert set(found) == expected  # every word whose meaning is unambiguous in both sentences, and no other
        aligned += len(found)
    assert aligned > 600


def test_word_alignments_of_generated_parallel_files(data_dir):
    corpus = parallel.parallel_corpus(tasks.get_task("syn-nli"), ("base", "a0vso"), data_dir)
    lexicon = languages.build_lexicon(SMALL.grammar, SMALL.recipes)
    assert word_alignment.word_concepts(data_dir, "a0vso") == lexicon.word_concepts("a0vso")
    pairs = word_alignment.parallel_word_alignments(data_dir, "base", "a0vso", corpus["base"], corpus["a0vso"])
    assert len(pairs) == len(corpus) and np.mean([len(row) for row in pairs]) >= 3  # subject, verb, object mostly
    with pytest.raises(
        XltError, match=r"concepts-xx.json not found: language 'xx' is not one of the generated .* a0vso"
    ):
        word_alignment.parallel_word_alignments(data_dir, "base", "xx", corpus["base"], corpus["a0vso"])


def test_the_generator_renders_exactly_the_registered_synthetic_languages():
    """The task registry declares the synthetic languages without importing the synthetic world; they must agree."""
    assert tuple(recipe.code for recipe in generated.DataSpec().recipes) == synthetic_tasks.SYNTHETIC_LANGUAGES
    assert examples.NLI_LABELS == tasks.get_task("syn-nli").labels and set(examples.EXAMPLE_MAKERS) == {
        name for name, task in tasks.TASKS.items() if task.profile == "synthetic"
    }
