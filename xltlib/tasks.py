"""Task registry and data loaders for sentence-pair classification (XNLI, PAWS-X).

Every loader returns the same frame — columns `text_a`, `text_b` (str) and `label` (Int64
class id, all NA for unlabeled files) with `attrs["source"]` — so training and evaluation
never care whether data came from a hub or from XTREME-style TSV files.

Only pandas is imported here: the CLI validates configs (task, language, data files)
before paying for torch/transformers, and `datasets` is imported only when a hub load runs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xltlib import synthetic
from xltlib.errors import XltError, did_you_mean, unknown


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

_SYNTHETIC_LANGUAGES = tuple(recipe.code for recipe in (synthetic.BASE, *synthetic.TARGETS))
for _name, _labels in (("syn-nli", synthetic.NLI_LABELS), ("syn-paws", synthetic.PAWS_LABELS)):
    register_task(Task(
        name=_name,
        languages=_SYNTHETIC_LANGUAGES,
        labels=_labels,
        hub_id=None,
        text_columns=("text_a", "text_b"),
        parallel_split=PARALLEL_SENTENCES,
        source_language=synthetic.BASE.code,
        profile="synthetic",
    ))


def get_task(name: str) -> Task:
    """The registered task called `name`, or an XltError suggesting the nearest name."""
    if name not in TASKS:
        raise unknown("task", name, TASKS)
    return TASKS[name]


SPLITS = ("train", "dev", "test")
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}

DATA_HELP = (
    "get data from the hub by leaving --data-dir unset (needs network; `datasets` loads "
    "facebook/xnli and google-research-datasets/paws-x), or run XTREME's "
    "scripts/download_data.sh, which writes {split}-{lang}.tsv files, "
    "or point --data-dir at the project's ../shared/data copy (e.g. ../shared/data/xnli/xtreme)"
)

# Header cells seen in XTREME / PAWS-X / GLUE-style files; a first row made only of these
# is a header, because real sentence pairs never consist solely of such words.
_HEADER_NAMES = frozenset(
    "id idx guid pairid sentence1 sentence2 premise hypothesis text_a text_b label gold_label".split()
)
# Column count -> (text_a, text_b, label) positions; label None = unlabeled XTREME test file.
_LAYOUTS: dict[int, tuple[int, int, int | None]] = {2: (0, 1, None), 3: (0, 1, 2), 4: (1, 2, 3)}


def _frame(text_a: list[str], text_b: list[str], labels: list[int | None], source: str) -> pd.DataFrame:
    df = pd.DataFrame({
        "text_a": pd.Series(text_a, dtype="str"),
        "text_b": pd.Series(text_b, dtype="str"),
        "label": pd.array(labels, dtype="Int64"),
    })
    df.attrs["source"] = source
    return df


def read_tsv(path: str | Path, task: Task) -> pd.DataFrame:
    """Read an XTREME / PAWS-X style TSV file of sentence pairs.

    Layouts are told apart by column count (2: a, b; 3: a, b, label; 4: id, a, b, label)
    after dropping an optional header row. Quoting is off because texts contain bare
    quotes; CRLF and LF line ends both work. Any malformed row is an error, not a skip,
    so a corrupted file cannot quietly change a benchmark's denominator.
    """
    path = Path(path)
    label_ids = task.label_ids()
    text_a: list[str] = []
    text_b: list[str] = []
    labels: list[int | None] = []
    layout: tuple[int, int, int | None] | None = None
    n_cols = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if layout is None:
                    n_cols = len(row)
                    if n_cols not in _LAYOUTS:
                        raise XltError(
                            f"{path} line {line}: {n_cols} tab-separated columns; expected 2 "
                            "(text_a, text_b), 3 (text_a, text_b, label) or 4 (id, text_a, text_b, label)"
                        )
                    layout = _LAYOUTS[n_cols]
                    if all(cell.strip().lower() in _HEADER_NAMES for cell in row):
                        continue
                elif len(row) != n_cols:
                    shown = "\t".join(row)[:100]
                    raise XltError(
                        f"{path} line {line}: {len(row)} tab-separated columns, expected {n_cols} "
                        f"like the first row: {shown!r}"
                    )
                a, b, y = layout
                text_a.append(row[a])
                text_b.append(row[b])
                if y is None:
                    labels.append(None)
                elif row[y].strip() in label_ids:
                    labels.append(label_ids[row[y].strip()])
                else:
                    raise XltError(
                        f"{path} line {line}: unknown {task.name} label {row[y]!r}"
                        f"{did_you_mean(row[y], label_ids)}; expected one of: {', '.join(task.labels)}"
                    )
    except FileNotFoundError:
        raise XltError(f"{path} does not exist") from None
    except UnicodeDecodeError as e:
        raise XltError(f"{path} is not UTF-8 text ({e})") from None
    except OSError as e:
        raise XltError(f"cannot read {path}: {e.strerror or e}") from None
    if not text_a:
        raise XltError(f"{path} has no data rows")
    return _frame(text_a, text_b, labels, str(path))


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
    "--data-dir generates it (or call xltlib.synthetic.ensure_data())"
)


def data_help(task: Task) -> str:
    """How to get the task's data, for error messages."""
    return SYNTHETIC_DATA_HELP.format(task=task.name) if task.hub_id is None else DATA_HELP


def _load_hub(task: Task, lang: str, split: str) -> pd.DataFrame:
    """Load one split from the dataset hub into the common frame (needs network)."""
    hub_split = HUB_SPLITS[split]
    if task.hub_id is None:
        raise XltError(f"task {task.name} has no copy on the dataset hub; {data_help(task)}")
    try:
        import datasets

        ds = datasets.load_dataset(task.hub_id, lang, split=hub_split)
    except Exception as e:  # network, auth or cache problems: the user fixes these
        raise XltError(
            f"could not load {task.hub_id} ({lang}, {hub_split}) from the hub: "
            f"{type(e).__name__}: {e}; {DATA_HELP}"
        ) from e
    names = getattr(ds.features.get("label"), "names", None)
    if names is not None and tuple(names) != task.labels:
        raise XltError(f"{task.hub_id} labels are {names}, but task {task.name} expects {list(task.labels)}")
    labels: list[int | None] = []
    for y in ds["label"]:
        if y is not None and not -1 <= y < len(task.labels):
            raise XltError(f"{task.hub_id} ({lang}, {hub_split}) has label id {y} outside 0..{len(task.labels) - 1}")
        labels.append(None if y is None or y < 0 else int(y))  # -1 = unlabeled on the hub
    a, b = task.text_columns
    return _frame(list(ds[a]), list(ds[b]), labels, task.hub_id)


def load_split(
    task: Task, lang: str, split: str, data_dir: str | Path | None = None, limit: int | None = None
) -> pd.DataFrame:
    """One language's split, from local XTREME TSV files if `data_dir` is given, else the hub.

    Arguments are validated before any file or network access so mistakes fail fast.
    """
    if split not in SPLITS:
        raise unknown("split", split, SPLITS)
    if lang not in task.languages:
        raise unknown(f"{task.name} language", lang, task.languages)
    if limit is not None and limit < 1:
        raise XltError(f"limit must be a positive number of rows, got {limit}")
    if data_dir is None:
        df = _load_hub(task, lang, split)
    else:
        df = read_tsv(local_split_path(task, data_dir, split, lang), task)
    return df.iloc[:limit] if limit is not None else df


def load_train_file(task: Task, path: str | Path, limit: int | None = None) -> pd.DataFrame:
    """A user-given (English) training TSV, which must carry labels."""
    path = Path(path)
    if not path.is_file():
        raise XltError(
            f"training file {path} does not exist; give a TSV of text_a, text_b, label "
            f"({'/'.join(task.labels)}) rows"
        )
    if limit is not None and limit < 1:
        raise XltError(f"limit must be a positive number of rows, got {limit}")
    df = read_tsv(path, task)
    if df["label"].isna().all():
        raise XltError(
            f"training file {path} has no label column; training needs text_a, text_b, label "
            f"({'/'.join(task.labels)}) rows"
        )
    return df.iloc[:limit] if limit is not None else df


def _describe(df: pd.DataFrame) -> str:
    """`test-en.tsv (/data/xnli/xtreme)` for a file source, the hub id otherwise."""
    source = df.attrs.get("source", "this split")
    path = Path(source)
    return f"{path.name} ({path.parent})" if path.suffix == ".tsv" else source


def require_labels(df: pd.DataFrame, what: str | None = None) -> None:
    """Refuse to score an unlabeled (or partly labeled) split instead of reporting garbage.

    `what` names the split in the message; by default it is derived from `df.attrs["source"]`.
    """
    what = what or _describe(df)
    missing = int(df["label"].isna().sum())
    if missing == len(df):
        raise XltError(
            f"{what} has no label column: XTREME strips test labels, so accuracy on it would be "
            "meaningless. Evaluate with --eval-split dev, or point --data-dir at a labeled copy "
            "(e.g. ../shared/data/xnli/test-labeled)."
        )
    if missing:
        raise XltError(
            f"{what} has labels on only {len(df) - missing} of {len(df)} rows; "
            "accuracy over a partly labeled split would be misleading"
        )


def parallel_corpus(
    task: Task, langs: tuple[str, ...], data_dir: str | Path | None = None, limit: int | None = None
) -> pd.DataFrame:
    """Line-aligned sentences of ``task.parallel_split`` in every language: one column per language.

    The task's ``parallel_columns`` are stacked (all `text_a`, then all `text_b`); ``limit``
    keeps the first N stacked rows. Rows are not deduplicated here, because which rows
    repeat depends on the language pair: see :func:`parallel_rows`.
    """
    if limit is not None and limit < 1:
        raise XltError(f"limit must be a positive number of rows, got {limit}")
    columns = {}
    for lang in dict.fromkeys(langs):
        if task.parallel_split == PARALLEL_SENTENCES:
            columns[lang] = _parallel_sentences(task, lang, data_dir)
            continue
        split = load_split(task, lang, task.parallel_split, data_dir)
        columns[lang] = pd.concat([split[column] for column in task.parallel_columns], ignore_index=True)
    lengths = {lang: len(column) for lang, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise XltError(
            f"{task.name} {task.parallel_split} files are not line-aligned across languages "
            f"(rows: {', '.join(f'{lang} {n}' for lang, n in lengths.items())}); alignment needs parallel files"
        )
    corpus = pd.DataFrame(columns)
    return corpus.iloc[:limit].reset_index(drop=True) if limit is not None else corpus


def _parallel_sentences(task: Task, lang: str, data_dir: str | Path | None) -> pd.Series:
    if data_dir is None:
        raise XltError(f"task {task.name}: parallel sentences are read from local files; {data_help(task)}")
    path = local_split_path(task, data_dir, PARALLEL_SENTENCES, lang, suffix=".txt")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise XltError(f"{path} is not UTF-8 text ({e})") from None
    return pd.Series(lines, dtype="str", name=lang)


def generalized_pairs(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Mixed-language pairs of the generalized setting: ``text_a`` of ``first``, ``text_b`` of ``second``.

    Both frames are the same split of a line-aligned task (XNLI, the synthetic test sets)
    in two languages, so row i has one label in both; any disagreement means the files are
    not parallel and is refused rather than scored.
    """
    if len(first) != len(second) or not first["label"].equals(second["label"]):
        raise XltError(
            f"generalized pairs need line-aligned files with the same labels: {_describe(first)} "
            f"({len(first)} rows) and {_describe(second)} ({len(second)} rows) are not"
        )
    mixed = _frame(list(first["text_a"]), list(second["text_b"]), list(first["label"]), "mixed")
    mixed.attrs["source"] = f"{first.attrs.get('source')} | {second.attrs.get('source')}"
    return mixed


def parallel_rows(src: pd.Series, tgt: pd.Series) -> pd.Index:
    """Rows of a parallel corpus usable for one language pair: both sides non-empty, and
    neither side repeating an earlier row (a repeated sentence would be two correct answers
    to one retrieval query)."""
    pairs = pd.DataFrame({"src": src.str.strip(), "tgt": tgt.str.strip()})
    pairs = pairs[(pairs["src"] != "") & (pairs["tgt"] != "")]
    keep = ~pairs["src"].duplicated() & ~pairs["tgt"].duplicated()
    return pairs.index[keep.to_numpy()]
