"""The synthetic profile's generated data: corpora, task splits, parallel sentences and synonyms.

:class:`DataSpec` fixes everything that is generated; :func:`ensure_data` writes it once
into ``{cache}/synthetic/data-{hash}/`` (the languages themselves are
:mod:`xltlib.synthetic.languages`). Every file draws from its own random stream, so the files
are the same on every machine, and a cache entry found damaged is generated again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from xltlib.data.word_alignment import CONCEPTS_FILE
from xltlib.errors import XltError
from xltlib.files import atomic_directory, atomic_write_text, canonical_sha256
from xltlib.integrity import HIDDEN_SIDECAR, Damage, content_files, ensure_whole, read_sidecar, record_tree, tree_damage
from xltlib.synthetic.examples import EXAMPLE_MAKERS, Example, render_examples
from xltlib.synthetic.grammar import Frame, GrammarSpec, generalized, sample_frame, swapped_roles
from xltlib.synthetic.languages import (
    BASE,
    TARGETS,
    Fact,
    LanguageRecipe,
    Lexicon,
    build_lexicon,
    render,
    render_words,
)

log = logging.getLogger(__name__)

GENERATOR_VERSION = 7
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
        for name in (
            "mono_documents",
            "detection_pairs",
            "train_examples",
            "dev_examples",
            "test_examples",
            "parallel_sentences",
        ):
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


CHANGES = ("subject", "object", "verb", "roles", "adjective", "negation", "generalize")
"""The kinds of one-fact change in a detection pair (see :func:`detection_pairs`)."""


MAX_CHANGES = 3
"""A detection pair's second sentence has 0..MAX_CHANGES changes, equally often."""


def changed_frame(frame: Frame, lexicon: Lexicon, rng: np.random.Generator) -> Frame:
    """``frame`` with one change of meaning, of a kind drawn uniformly from :data:`CHANGES`.

    Another subject, object or verb; subject and object swapped (with their adjectives);
    another adjective on the subject or object (or one added where there was none); the
    negation added or removed; a participant named by its hypernym (which states less, so
    only the hyponym's word is new). A swap of identical participants, or a generalization
    where no participant has a hypernym, changes the subject instead.
    """
    spec = lexicon.spec

    def other(value: int, count: int) -> int:
        return int((value + rng.integers(1, count)) % count)

    change = CHANGES[int(rng.integers(len(CHANGES)))]
    if change == "roles" and frame.subject != frame.object:
        return swapped_roles(frame)
    if change == "adjective":
        role = ("subject", "object")[int(rng.integers(2))]
        current = getattr(frame, f"{role}_adjective")
        adjective = int(rng.integers(spec.adjectives)) if current is None else other(current, spec.adjectives)
        return replace(frame, **{f"{role}_adjective": adjective})
    if change == "negation":
        return replace(frame, negated=not frame.negated)
    if change == "generalize" and (general := generalized(frame, lexicon, rng)) != frame:
        return general
    if change == "verb":
        return replace(frame, verb=other(frame.verb, spec.verbs))
    role = "object" if change == "object" else "subject"  # also a generalization without a hypernym
    return replace(frame, **{role: other(getattr(frame, role), spec.nouns)})


def _new_fact_labels(
    words: list[tuple[str, Fact | None]], other: list[tuple[str, Fact | None]], lexicon: Lexicon
) -> str:
    """Per word: ``1`` if its fact is not stated by ``other``, ``0`` if it is, ``-`` for no fact.

    A participant's hypernym is stated by the participant (*the poodle* states *the dog*), as
    in :func:`xltlib.synthetic.examples.nli_label`.
    """
    stated = {fact for _, fact in other if fact is not None}
    stated |= {
        (role, int(lexicon.hypernym_of[noun]))
        for role, noun in stated
        if role in ("subject", "object") and lexicon.hypernym_of[noun] >= 0
    }
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
    an intermediate task (:class:`xltlib.synthetic.recipe.DetectionSpec`), which, like fine-tuning,
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
        rows.append(
            (
                " ".join(w for w, _ in a),
                " ".join(w for w, _ in b),
                _new_fact_labels(a, b, lexicon),
                _new_fact_labels(b, a, lexicon),
                _fact_kinds(a),
                _fact_kinds(b),
            )
        )
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
    atomic_write_text(path, "".join("\t".join(row) + "\n" for row in rows))


def _write_lines(path: Path, lines: list[str]) -> None:
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def _write_tables(folder: Path, spec: DataSpec, lexicon: Lexicon) -> None:
    """The folder's descriptions: languages, spec, the base language's synonyms, every language's word concepts."""
    languages = {r.code: {**asdict(r), "distance": r.distance()} for r in spec.recipes}
    atomic_write_text(folder / "languages.json", json.dumps(languages, indent=2) + "\n")
    atomic_write_text(folder / "spec.json", json.dumps(asdict(spec), indent=2) + "\n")
    atomic_write_text(folder / "synonyms-base.json", json.dumps(synonym_table(lexicon), indent=1) + "\n")
    for recipe in spec.recipes:
        concepts = json.dumps(lexicon.word_concepts(recipe.code), indent=0, sort_keys=True)
        atomic_write_text(folder / CONCEPTS_FILE.format(lang=recipe.code), concepts + "\n")


def _write_task(folder: Path, spec: DataSpec, lexicon: Lexicon, task: str) -> None:
    """A task's base training split and its dev and test splits in every language."""
    folder.mkdir()
    splits = task_examples(spec, lexicon, task)
    _write_tsv(folder / "train-base.tsv", render_examples(splits["train"], lexicon, BASE, _rng(spec, task, "train")))
    for recipe in spec.recipes:
        dev_synonyms = _rng(spec, task, "dev") if recipe is BASE else None
        _write_tsv(folder / f"dev-{recipe.code}.tsv", render_examples(splits["dev"], lexicon, recipe, dev_synonyms))
        synonyms = _rng(spec, task, "test", recipe.code) if recipe is BASE else None
        _write_tsv(folder / f"test-{recipe.code}.tsv", render_examples(splits["test"], lexicon, recipe, synonyms))


def write_data(spec: DataSpec, out_dir: str | Path, progress: bool = True) -> Path:
    """Generate every file of the profile into ``out_dir`` (written whole or not at all).

    Layout (XTREME-style, so the task loaders read it like real data)::

        languages.json                 recipes and distances of every language
        spec.json                      this DataSpec
        concepts-{lang}.json           every surface form → its concept (word alignments)
        mono-{lang}.tsv                non-parallel pre-training text: two-sentence documents
        detect-base.tsv                base-language pairs with a new/stated label and a kind per word (detection stage)
        parallel-{lang}.txt            line-aligned sentences for alignment (Tatoeba analog)
        synonyms-base.json             the base language's synonyms (for rs_da)
        {task}/train-base.tsv          text_a, text_b, label
        {task}/dev-{lang}.tsv          line-aligned across languages, labeled
        {task}/test-{lang}.tsv         line-aligned across languages, labeled
        .checksums.json                every file's size and sha256 (:data:`xltlib.integrity.HIDDEN_SIDECAR`)
    """
    from tqdm.auto import tqdm

    with atomic_directory(out_dir, "use ensure_data() to reuse it") as tmp:
        lexicon = build_lexicon(spec.grammar, spec.recipes)
        _write_tables(tmp, spec, lexicon)
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
            _write_task(tmp / task, spec, lexicon, task)
        record_tree(tmp, sidecar=HIDDEN_SIDECAR)
    return Path(out_dir)


def ensure_data(
    spec: DataSpec = DataSpec(), cache_dir: str | Path = "cache", progress: bool = True, known: str | None = None
) -> Path:
    """The generated data folder for ``spec`` under ``cache_dir``, generated on first use, and again when damaged;
    one from before files were recorded is kept if it holds the ``known`` data (:func:`data_sha256`)."""
    path = Path(cache_dir).resolve() / "synthetic" / f"data-{spec.config_hash()[:12]}"
    again = "generated again (the generator is unchanged, so the files are the same)"
    check = functools.partial(_entry_damage, known=known)
    return ensure_whole(path, lambda out: write_data(spec, out, progress), "the cache entry", check, again)


def _entry_damage(entry: Path, known: str | None) -> list[Damage]:
    if read_sidecar(entry, sidecar=HIDDEN_SIDECAR) is None and known is not None and data_sha256(entry) == known:
        record_tree(entry, sidecar=HIDDEN_SIDECAR)  # adopted: no mass regeneration of the entries of older versions
        log.info("the cache entry %s holds the data the shipped encoders were built on: recorded", entry)
    return tree_damage(entry, sidecar=HIDDEN_SIDECAR)


def data_sha256(data_dir: str | Path) -> str:
    """sha256 over every file of a generated data folder (relative paths and contents, in path order).

    The shipped encoders record it: their tokenizers and calibration belong to these exact
    files, so generated data that differ (a changed generator) are caught before a run.
    Hidden files (the folder's record, a killed write's temporary) are not data.
    """
    root = Path(data_dir)
    digest = hashlib.sha256()
    for name in content_files(root):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256((root / name).read_bytes()).digest())
    return digest.hexdigest()


def language_distances(data_dir: str | Path) -> dict[str, float]:
    """language code → recipe distance, read from a generated data folder."""
    path = Path(data_dir) / "languages.json"
    if not path.is_file():
        raise XltError(f"{path} not found: {data_dir} is not a generated synthetic data folder (see ensure_data)")
    return {code: recipe["distance"] for code, recipe in json.loads(path.read_text()).items()}
