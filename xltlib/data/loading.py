"""Load a task's split into the common frame: XTREME-layout TSV files, XCOPA JSON lines, or the dataset hub.

A sentence-pair task's frame has ``text_a``, ``text_b`` and an Int64 ``label``; a
multiple-choice task's (XCOPA) has ``text_a`` (the premise), ``question`` (``cause`` or
``effect``), ``choice1``, ``choice2`` and ``label`` (the index of the right choice). Labels
are NA where a file has none. ``datasets`` is imported only when a hub load runs.
"""

from __future__ import annotations

import csv
import json
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
    df = pd.DataFrame(
        {
            "text_a": pd.Series(text_a, dtype="str"),
            "text_b": pd.Series(text_b, dtype="str"),
            "label": pd.array(labels, dtype="Int64"),
        }
    )
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
    if y is None or row[y].strip() == "-1":  # -1: unlabeled (the PAWS-X hub's mark, kept by `data fetch`)
        return row[a], row[b], None
    label_ids = task.label_ids()
    if row[y].strip() not in label_ids:
        raise XltError(
            f"{path} line {line}: unknown {task.name} label {row[y]!r}"
            f"{did_you_mean(row[y], label_ids)}; expected one of: {', '.join(task.labels)}"
        )
    return row[a], row[b], label_ids[row[y].strip()]


CHOICE_FIELDS = ("premise", "question", "choice1", "choice2")


def choice_frame(rows: list[dict], labels: list[int | None], source: str) -> pd.DataFrame:
    """The multiple-choice frame of XCOPA-style rows (``premise``, ``question``, ``choice1``, ``choice2``[,
    ``choice3``…])."""
    choices = sorted((key for key in rows[0] if key.startswith("choice")), key=lambda key: int(key[len("choice") :]))
    df = pd.DataFrame(
        {
            "text_a": pd.Series([row["premise"] for row in rows], dtype="str"),
            **{name: pd.Series([row[name] for row in rows], dtype="str") for name in ("question", *choices)},
            "label": pd.array(labels, dtype="Int64"),
        }
    )
    df.attrs["source"] = source
    return df


def is_multiple_choice(frame: pd.DataFrame) -> bool:
    return "choice1" in frame


def choice_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    """``choice1`` … ``choiceK`` of a multiple-choice frame, in order."""
    return tuple(f"choice{i}" for i in range(1, len(frame.columns) + 1) if f"choice{i}" in frame)


def from_siqa(row: dict) -> dict:
    """A SocialIQa row (``context``, ``question``, ``answerA``…``C``, ``correct`` A–C or the hub's ``label`` "1"–"3")
    in XCOPA's fields, the label a choice index."""
    label = row.get("correct", row.get("label"))
    index = (
        "ABC".find(label) if label in ("A", "B", "C") else int(label) - 1 if str(label) in ("1", "2", "3") else label
    )
    return {
        "premise": row.get("context"),
        "question": row.get("question"),
        "label": index,
        **{f"choice{i + 1}": row.get(f"answer{letter}") for i, letter in enumerate("ABC")},
    }


def read_choices_jsonl(path: str | Path, task: Task) -> pd.DataFrame:
    """Read XCOPA / COPA (or SocialIQa) JSON lines; a missing field, a bad question or an out-of-range label names its
    line."""
    path = Path(path)
    rows, labels = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise XltError(f"{path} does not exist") from None
    except UnicodeDecodeError as e:
        raise XltError(f"{path} is not UTF-8 text ({e})") from None
    fields = ("premise", "question", *(f"choice{i + 1}" for i in range(len(task.labels))))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise XltError(f"{path} line {number}: not JSON ({e.msg})") from None
        row = from_siqa(row) if "context" in row else row
        missing = [name for name in fields if not isinstance(row.get(name), str)]
        if missing or (task.name == "xcopa" and row["question"] not in ("cause", "effect")):
            raise XltError(
                f"{path} line {number}: needs text fields {', '.join(fields)}"
                f"{' with question cause or effect' if task.name == 'xcopa' else ''}; "
                f"{'missing ' + ', '.join(missing) if missing else 'question is ' + repr(row['question'])}"
            )
        labels.append(_choice_label(row.get("label"), task, path, number))
        rows.append(row)
    if not rows:
        raise XltError(f"{path} has no data rows")
    frame = choice_frame(rows, labels, str(path))
    frame.attrs["ids"] = tuple(row.get("idx") for row in rows)  # item ids, for checks that files list the same items
    return frame


def _choice_label(label, task: Task, path: Path, line: int) -> int | None:
    if label is None or label == -1:  # -1: unlabeled on the hub
        return None
    if not isinstance(label, int) or not 0 <= label < len(task.labels):
        raise XltError(f"{path} line {line}: label {label!r} is not a choice index 0..{len(task.labels) - 1}")
    return label


def _load_hub(task: Task, lang: str, split: str) -> pd.DataFrame:
    """Load one split from the dataset hub into the common frame (needs network)."""
    hub_split = HUB_SPLITS[split]
    if task.hub_id is None:
        raise XltError(f"task {task.name} has no copy on the dataset hub; {data_help(task)}")
    hub_id, config = task.source_hub_id if task.source_hub_id and lang == task.source_language else (task.hub_id, lang)
    try:
        import datasets

        ds = datasets.load_dataset(hub_id, config, split=hub_split, revision=task.hub_revision)
    except Exception as e:  # network, auth or cache problems: the user fixes these
        raise XltError(
            f"could not load {hub_id} ({config}, {hub_split}) from the hub: {type(e).__name__}: {e}; {DATA_HELP}"
        ) from e
    names = getattr(ds.features.get("label"), "names", None)
    if names is not None and task.kind == "pairs" and tuple(names) != task.labels:
        raise XltError(f"{hub_id} labels are {names}, but task {task.name} expects {list(task.labels)}")
    if "context" in ds.column_names:  # SocialIQa, labels "1"-"3"
        rows = [from_siqa(row) for row in ds]
        return choice_frame(rows, [row["label"] for row in rows], hub_id)
    labels: list[int | None] = []
    for y in ds["label"]:
        if y is not None and not -1 <= y < len(task.labels):
            raise XltError(f"{hub_id} ({config}, {hub_split}) has label id {y} outside 0..{len(task.labels) - 1}")
        labels.append(None if y is None or y < 0 else int(y))  # -1 = unlabeled on the hub
    if task.kind == "multiple_choice":
        return choice_frame(list(ds.select_columns(list(CHOICE_FIELDS))), labels, hub_id)
    a, b = task.text_columns
    return pair_frame(list(ds[a]), list(ds[b]), labels, hub_id)


def read_split_file(path: Path, task: Task) -> pd.DataFrame:
    """A local split file: JSON lines for a multiple-choice task, TSV otherwise."""
    return read_choices_jsonl(path, task) if path.suffix == ".jsonl" else read_tsv(path, task)


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
        df = read_split_file(local_split_path(task, data_dir, split, lang), task)
    return df.iloc[:limit] if limit is not None else df


def load_train_file(task: Task, path: str | Path, limit: int | None = None) -> pd.DataFrame:
    """A user-given (English) training TSV, which must carry labels."""
    path = Path(path)
    if not path.is_file():
        raise XltError(
            f"training file {path} does not exist; give a TSV of text_a, text_b, label ({'/'.join(task.labels)}) rows"
        )
    if limit is not None and limit < 1:
        raise XltError(f"limit must be a positive number of rows, got {limit}")
    df = read_split_file(path, task)
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
    return f"{path.name} ({path.parent})" if path.suffix in (".tsv", ".jsonl") else source


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
