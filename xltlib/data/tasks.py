"""The task registry: every classification task (sentence pairs or multiple choice), its languages, labels and data.

A task is declared once with :func:`register_task`. Its data is read by
:mod:`xltlib.data.loading` (XTREME-layout TSV files or the dataset hub) and its parallel
sentences by :mod:`xltlib.data.parallel`; every loader returns the same frame (columns
``text_a``, ``text_b`` and an Int64 ``label``, all NA for unlabeled files, with
``attrs["source"]``). Only pandas is imported here, so a config is validated before torch
is paid for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xltlib.errors import XltError, unknown


@dataclass(frozen=True)
class Task:
    """A sentence-pair classification task and where its data lives.

    `labels` fixes the class ids (index = id) and matches the hub's integer labels, so a
    model trained on hub data and evaluated on TSV files (or vice versa) agrees on ids.
    `label_aliases` maps other spellings found in circulating copies to canonical labels.
    `parallel_split` is a split whose files are line-aligned across languages (line i is
    the same example everywhere) and `parallel_columns` the columns (`text_a`, `text_b`)
    whose sentences measure alignment (see :func:`parallel_corpus`); the split
    :data:`PARALLEL_SENTENCES` means `parallel-{lang}.txt` files of one sentence per line.
    `source_language` is the default language of training data; `profile` the study profile
    the task belongs to. A task with no `hub_id` has generated data only (the synthetic profile).
    `kind` is ``pairs`` (sentence-pair classification) or ``multiple_choice`` (XCOPA: the
    labels are the choices). `local_files` maps a split to file-name templates (``{lang}``),
    relative to a task folder laid out like ``../shared/data/<task>``, tried after the XTREME
    names ``{split}-{lang}.tsv``; labeled copies come first. `hub_revision` pins the dataset
    hub's revision (``None``: the default branch, recorded by ``data fetch``), and
    `source_hub_id` is a hub dataset ``(id, config)`` holding the source-language splits
    when `hub_id` has none (English COPA for XCOPA).
    """

    name: str
    languages: tuple[str, ...]
    labels: tuple[str, ...]
    hub_id: str | None
    text_columns: tuple[str, str]
    label_aliases: tuple[tuple[str, str], ...] = ()
    parallel_split: str = "test"
    parallel_columns: tuple[str, ...] = ("text_a",)
    source_language: str = "en"
    profile: str = "xtreme"
    kind: str = "pairs"
    local_files: tuple[tuple[str, tuple[str, ...]], ...] = ()
    hub_revision: str | None = None
    source_hub_id: tuple[str, str] | None = None

    def local_templates(self, split: str) -> tuple[str, ...]:
        """File-name templates of ``split`` in a task folder: XTREME's names first, then the task's own layout."""
        own = dict(self.local_files).get(split, ())
        return (f"{split}-{{lang}}.tsv", f"{split}-{{lang}}.jsonl", *own)

    def label_ids(self) -> dict[str, int]:
        """Every accepted label spelling -> class id."""
        ids = {label: i for i, label in enumerate(self.labels)}
        return ids | {alias: ids[label] for alias, label in self.label_aliases}


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task to the registry; refuses to silently redefine an existing name."""
    if TASKS.get(task.name, task) != task:
        raise ValueError(f"task {task.name!r} is already registered with a different definition")
    TASKS[task.name] = task
    return task


register_task(
    Task(
        name="xnli",
        languages=tuple("ar bg de el en es fr hi ru sw th tr ur vi zh".split()),
        labels=("entailment", "neutral", "contradiction"),
        hub_id="facebook/xnli",
        text_columns=("premise", "hypothesis"),
        label_aliases=(("contradictory", "contradiction"),),
        parallel_columns=("text_a", "text_b"),  # premises repeat once per hypothesis: deduplicated
        local_files=(
            ("dev", ("xtreme/dev-{lang}.tsv",)),
            ("test", ("test-labeled/test-{lang}.tsv", "xtreme/test-{lang}.tsv")),
        ),
    )
)


register_task(
    Task(
        name="pawsx",
        languages=tuple("de en es fr ja ko zh".split()),
        labels=("0", "1"),  # 0 = not a paraphrase, 1 = paraphrase
        hub_id="google-research-datasets/paws-x",
        text_columns=("sentence1", "sentence2"),
        # sentence2 is often sentence1 with words swapped: keeping both would plant near-duplicates
        parallel_columns=("text_a",),
        local_files=(
            ("dev", ("xtreme/dev-{lang}.tsv",)),
            ("test", ("test-labeled/test-{lang}.tsv", "xtreme/test-{lang}.tsv")),
        ),
    )
)


register_task(
    Task(
        name="xcopa",
        languages=tuple("en et ht id it qu sw ta th tr vi zh".split()),
        labels=("choice1", "choice2"),  # the label is the index of the more plausible choice
        hub_id="cambridgeltl/xcopa",
        text_columns=("premise", "question"),
        kind="multiple_choice",
        # premises, then each choice: translated item by item from English COPA (checked by `data verify`)
        parallel_columns=("text_a", "choice1", "choice2"),
        local_files=(
            ("train", ("copa-en/train-{lang}.jsonl",)),
            ("dev", ("xcopa/{lang}/val.{lang}.jsonl", "copa-en/val-{lang}.jsonl")),
            ("test", ("xcopa/{lang}/test.{lang}.jsonl", "copa-en/test-{lang}.jsonl")),
        ),
        source_hub_id=("aps/super_glue", "copa"),
    )
)


register_task(
    Task(
        name="siqa",
        languages=("en",),
        labels=("answerA", "answerB", "answerC"),
        # allenai/social_i_qa is a loading script, which datasets >= 4 refuses; lighteval/siqa is its Parquet mirror
        # (train 33,410, validation 1,954; `data fetch` checks its dev set against ../shared/data's)
        hub_id="lighteval/siqa",
        text_columns=("context", "question"),
        kind="multiple_choice",
        parallel_columns=(),  # English only: XTREME-R's first stage before COPA, never a target
        source_hub_id=("lighteval/siqa", "default"),  # one config, not one per language
        local_files=(
            ("train", ("siqa/train.jsonl",)),
            ("dev", ("siqa/socialIQa_v1.4_dev.jsonl",)),
            ("test", ("siqa/socialIQa_v1.4_tst.jsonl",)),
        ),
    )
)


PARALLEL_SENTENCES = "parallel"
"""Parallel split made of `parallel-{lang}.txt` sentence files (Tatoeba-style), not of task pairs."""


def get_task(name: str) -> Task:
    """The registered task called `name`, or an XltError suggesting the nearest name."""
    if name not in TASKS:
        raise unknown("task", name, TASKS)
    return TASKS[name]


SPLITS = ("train", "dev", "test")


DATA_HELP = (
    "get data from the hub by leaving --data-dir unset (needs network; `datasets` loads "
    "facebook/xnli, google-research-datasets/paws-x and cambridgeltl/xcopa), or run "
    "`python -m xltlib data fetch` (writes data/real/, laid out like ../shared/data), or XTREME's "
    "scripts/download_data.sh ({split}-{lang}.tsv files), "
    "or point --data-dir at a task folder of the project's ../shared/data copy (e.g. ../shared/data/xnli)"
)


def local_split_path(task: Task, data_dir: str | Path, split: str, lang: str, suffix: str | None = None) -> Path:
    """The file of ``split`` in ``lang`` under ``data_dir`` or ``data_dir/{task}``.

    Tried in order: XTREME's ``{split}-{lang}.tsv`` (or ``.jsonl``), then the task's
    :attr:`Task.local_files` (the ``../shared/data`` layout). ``suffix`` names one XTREME
    file kind only (``.txt`` for parallel sentences).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise XltError(f"data folder {data_dir} does not exist; {data_help(task)}")
    templates = (f"{split}-{{lang}}{suffix}",) if suffix else task.local_templates(split)
    folders = (data_dir, data_dir / task.name)
    for folder in folders:
        for template in templates:
            if (folder / template.format(lang=lang)).is_file():
                return folder / template.format(lang=lang)
    others = ", ".join(template.format(lang=lang) for template in templates[1:])
    have = sorted({p.name[len(split) + 1 :].rsplit(".", 1)[0] for d in folders for p in d.glob(f"{split}-*")})
    raise XltError(
        f"{data_dir / templates[0].format(lang=lang)} does not exist (nor, there or under {folders[1]}, "
        f"{others or 'the same name'}); {data_dir} has {split}-* for: {', '.join(have) or 'no language'}; "
        f"{data_help(task)}"
    )


SYNTHETIC_DATA_HELP = (
    "synthetic data is generated, not downloaded: `python -m xltlib run --task {task}` without "
    "--data-dir generates it (or call xltlib.synthetic.generated.ensure_data())"
)


def data_help(task: Task) -> str:
    """How to get the task's data, for error messages."""
    return SYNTHETIC_DATA_HELP.format(task=task.name) if task.hub_id is None else DATA_HELP
