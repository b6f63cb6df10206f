"""Load a task's split into the common frame: XTREME-layout TSV files, or the dataset hub.

``datasets`` is imported only when a hub load runs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from xltlib.data.tasks import DATA_HELP, SPLITS, Task, data_help, local_split_path
from xltlib.errors import XltError, did_you_mean, unknown

HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


# Header cells seen in XTREME / PAWS-X / GLUE-style files; a first row made only of these
# is a header, because real sentence pairs never consist solely of such words.
_HEADER_NAMES = frozenset(
    "id idx guid pairid sentence1 sentence2 premise hypothesis text_a text_b label gold_label".split()
)


# Column count -> (text_a, text_b, label) positions; label None = unlabeled XTREME test file.
_LAYOUTS: dict[int, tuple[int, int, int | None]] = {2: (0, 1, None), 3: (0, 1, 2), 4: (1, 2, 3)}


def pair_frame(text_a: list[str], text_b: list[str], labels: list[int | None], source: str) -> pd.DataFrame:
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
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = _pair_rows(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), path)
            columns = [_pair_row(row, line, layout, task, path) for row, line, layout in rows]
    except FileNotFoundError:
        raise XltError(f"{path} does not exist") from None
    except UnicodeDecodeError as e:
        raise XltError(f"{path} is not UTF-8 text ({e})") from None
    except OSError as e:
        raise XltError(f"cannot read {path}: {e.strerror or e}") from None
    if not columns:
        raise XltError(f"{path} has no data rows")
    text_a, text_b, labels = (list(column) for column in zip(*columns))
    return pair_frame(text_a, text_b, labels, str(path))


def _pair_rows(reader, path: Path) -> Iterator[tuple[list[str], int, tuple[int, int, int | None]]]:
    """Each data row with its line number and the file's layout (fixed by the first row; a header row is skipped)."""
    layout, n_cols = None, 0
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
                f"{path} line {line}: {len(row)} tab-separated columns, expected {n_cols} like the first row: {shown!r}"
            )
        yield row, line, layout


def _pair_row(row: list[str], line: int, layout: tuple[int, int, int | None], task: Task, path: Path) -> tuple:
    """``(text_a, text_b, label id or None)`` of one row; an unknown label is an error naming the line."""
    a, b, y = layout
    if y is None:
        return row[a], row[b], None
    label_ids = task.label_ids()
    if row[y].strip() not in label_ids:
        raise XltError(
            f"{path} line {line}: unknown {task.name} label {row[y]!r}"
            f"{did_you_mean(row[y], label_ids)}; expected one of: {', '.join(task.labels)}"
        )
    return row[a], row[b], label_ids[row[y].strip()]


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
    return pair_frame(list(ds[a]), list(ds[b]), labels, task.hub_id)


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


def describe_source(df: pd.DataFrame) -> str:
    """`test-en.tsv (/data/xnli/xtreme)` for a file source, the hub id otherwise."""
    source = df.attrs.get("source", "this split")
    path = Path(source)
    return f"{path.name} ({path.parent})" if path.suffix == ".tsv" else source


def require_labels(df: pd.DataFrame, what: str | None = None) -> None:
    """Refuse to score an unlabeled (or partly labeled) split instead of reporting garbage.

    `what` names the split in the message; by default it is derived from `df.attrs["source"]`.
    """
    what = what or describe_source(df)
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
