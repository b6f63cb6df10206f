"""The task registry: every sentence-pair classification task, its languages, labels and data.

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

from xltlib.data import examples, languages
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


register_task(Task(
    name="xnli",
    languages=tuple("ar bg de el en es fr hi ru sw th tr ur vi zh".split()),
    labels=("entailment", "neutral", "contradiction"),
    hub_id="facebook/xnli",
    text_columns=("premise", "hypothesis"),
    label_aliases=(("contradictory", "contradiction"),),
    parallel_columns=("text_a", "text_b"),  # premises repeat once per hypothesis: deduplicated
))


register_task(Task(
    name="pawsx",
    languages=tuple("de en es fr ja ko zh".split()),
    labels=("0", "1"),  # 0 = not a paraphrase, 1 = paraphrase
    hub_id="google-research-datasets/paws-x",
    text_columns=("sentence1", "sentence2"),
    # sentence2 is often sentence1 with words swapped: keeping both would plant near-duplicates
    parallel_columns=("text_a",),
))


PARALLEL_SENTENCES = "parallel"
"""Parallel split made of `parallel-{lang}.txt` sentence files (Tatoeba-style), not of task pairs."""


_SYNTHETIC_LANGUAGES = tuple(recipe.code for recipe in (languages.BASE, *languages.TARGETS))
for _name, _labels in (("syn-nli", examples.NLI_LABELS), ("syn-paws", examples.PAWS_LABELS)):
    register_task(Task(
        name=_name,
        languages=_SYNTHETIC_LANGUAGES,
        labels=_labels,
        hub_id=None,
        text_columns=("text_a", "text_b"),
        parallel_split=PARALLEL_SENTENCES,
        source_language=languages.BASE.code,
        profile="synthetic",
    ))


def get_task(name: str) -> Task:
    """The registered task called `name`, or an XltError suggesting the nearest name."""
    if name not in TASKS:
        raise unknown("task", name, TASKS)
    return TASKS[name]


SPLITS = ("train", "dev", "test")


DATA_HELP = (
    "get data from the hub by leaving --data-dir unset (needs network; `datasets` loads "
    "facebook/xnli and google-research-datasets/paws-x), or run XTREME's "
    "scripts/download_data.sh, which writes {split}-{lang}.tsv files, "
    "or point --data-dir at the project's ../shared/data copy (e.g. ../shared/data/xnli/xtreme)"
)


def local_split_path(task: Task, data_dir: str | Path, split: str, lang: str, suffix: str = ".tsv") -> Path:
    """The XTREME-layout file `{data_dir}/{split}-{lang}.tsv`, or under `{data_dir}/{task}/`."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise XltError(f"data folder {data_dir} does not exist; {data_help(task)}")
    name = f"{split}-{lang}{suffix}"
    folders = (data_dir, data_dir / task.name)
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    have = sorted({p.name[len(split) + 1 : -len(suffix)] for d in folders for p in d.glob(f"{split}-*{suffix}")})
    raise XltError(
        f"{data_dir / name} does not exist (nor {folders[1] / name}); {data_dir} has {split}-*{suffix} "
        f"for: {', '.join(have) or 'no language'}; {data_help(task)}"
    )


SYNTHETIC_DATA_HELP = (
    "synthetic data is generated, not downloaded: `python -m xltlib run --task {task}` without "
    "--data-dir generates it (or call xltlib.data.generated.ensure_data())"
)


def data_help(task: Task) -> str:
    """How to get the task's data, for error messages."""
    return SYNTHETIC_DATA_HELP.format(task=task.name) if task.hub_id is None else DATA_HELP
