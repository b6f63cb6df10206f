"""``data verify``: check a real-data folder laid out like ``../shared/data`` before any run reads it.

Every file the real profile reads is declared once in :data:`ITEMS` (an item is a task,
Tatoeba or the synonym table): its path, row count, whether every row must be labeled, and
the parallel group whose files must have equal row counts (and, for XCOPA, equal item ids).
Reading goes through the project's own loaders, so a bad label names its file and line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xltlib.data.loading import read_split_file
from xltlib.data.tasks import get_task
from xltlib.data.tatoeba import ISO_639_3, tatoeba_files
from xltlib.errors import XltError, unknown

XNLI_LANGUAGES = get_task("xnli").languages
PAWSX_LANGUAGES = get_task("pawsx").languages
XCOPA_TARGETS = tuple(lang for lang in get_task("xcopa").languages if lang != "en")


@dataclass(frozen=True)
class FileSpec:
    """One file of the layout.

    Attributes:
        path: relative to the data folder.
        rows: its number of data rows (``None``: any number).
        labeled: every row must carry a label.
        group: files of one group are line-parallel: equal row counts (and equal XCOPA ``idx``).
        task: the task whose loader reads it (``None``: plain lines or JSON, read by ``reader``).
    """

    path: str
    rows: int | None
    labeled: bool = False
    group: str | None = None
    task: str | None = None


def _xnli() -> list[FileSpec]:
    specs = []
    for lang in XNLI_LANGUAGES:
        specs += [
            FileSpec(f"xnli/xtreme/dev-{lang}.tsv", 2490, True, "xnli dev", "xnli"),
            FileSpec(f"xnli/xtreme/test-{lang}.tsv", 5010, False, "xnli test", "xnli"),
            FileSpec(f"xnli/test-labeled/test-{lang}.tsv", 5010, True, "xnli test", "xnli"),
        ]
    return specs


def _pawsx() -> list[FileSpec]:
    specs = [FileSpec("pawsx/paws-wiki-en/train-source.tsv", 8000, True, None, "pawsx")]
    for lang in PAWSX_LANGUAGES:
        specs += [
            FileSpec(f"pawsx/xtreme/dev-{lang}.tsv", 2000, True, "pawsx dev", "pawsx"),
            FileSpec(f"pawsx/xtreme/test-{lang}.tsv", 2000, False, "pawsx test", "pawsx"),
        ]
    return specs + [
        FileSpec(f"pawsx/test-labeled/test-{lang}.tsv", 2000, True, "pawsx test", "pawsx")
        for lang in ("de", "en", "zh")
    ]


def _xcopa() -> list[FileSpec]:
    specs = [
        FileSpec("xcopa/copa-en/train-en.jsonl", 400, True, None, "xcopa"),
        FileSpec("xcopa/copa-en/val-en.jsonl", 100, True, "xcopa val", "xcopa"),
        FileSpec("xcopa/copa-en/test-en.jsonl", 500, False, "xcopa test", "xcopa"),  # labels hidden: all 0
        FileSpec("xcopa/siqa/socialIQa_v1.4_dev.jsonl", 1954, True, None, "siqa"),
        FileSpec("xcopa/siqa/socialIQa_v1.4_tst.jsonl", 2224, True, None, "siqa"),
    ]
    for lang in XCOPA_TARGETS:
        specs += [
            FileSpec(f"xcopa/xcopa/{lang}/val.{lang}.jsonl", 100, True, "xcopa val", "xcopa"),
            FileSpec(f"xcopa/xcopa/{lang}/test.{lang}.jsonl", 500, True, "xcopa test", "xcopa"),
        ]
    return specs


def _tatoeba() -> list[FileSpec]:
    specs = []
    for lang in sorted(ISO_639_3):
        english, other = (f"tatoeba/v1/{path.name}" for path in tatoeba_files("", lang))
        specs += [FileSpec(english, None, group=f"tatoeba {lang}"), FileSpec(other, None, group=f"tatoeba {lang}")]
    return specs


ITEMS: dict[str, Callable[[], list[FileSpec]]] = {
    "xnli": _xnli,
    "pawsx": _pawsx,
    "xcopa": _xcopa,
    "tatoeba": _tatoeba,
    "synonyms": lambda: [FileSpec("synonyms/counterfitted_neighbors.json", 49975)],
}
"""What ``data verify`` and ``data fetch`` know: item → its files in the layout."""


@dataclass
class FileReport:
    spec: FileSpec
    rows: int | None = None
    problem: str | None = None
    ids: tuple | None = None  # XCOPA item ids, for the parallel check

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_file(root: Path, spec: FileSpec) -> FileReport:
    """Read one file and compare it with its spec; the problem, if any, in words."""
    path = root / spec.path
    if not path.is_file():
        return FileReport(spec, problem=f"missing ({_how_to_get(spec)})")
    try:
        frame = _read(path, spec)
    except XltError as error:
        return FileReport(spec, problem=str(error).replace(str(path), "").strip(" :") or str(error))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return FileReport(spec, problem=f"unreadable: {error}")
    report = FileReport(spec, rows=len(frame), ids=frame.attrs.get("ids"))
    if spec.rows is not None and len(frame) != spec.rows:
        report.problem = f"{len(frame)} rows, expected {spec.rows}"
    elif spec.labeled and "label" in frame and frame["label"].isna().any():
        report.problem = f"{int(frame['label'].isna().sum())} of {len(frame)} rows have no label"
    return report


def _read(path: Path, spec: FileSpec) -> pd.DataFrame:
    if spec.task is not None:
        return read_split_file(path, get_task(spec.task))
    if path.suffix == ".json":
        return pd.DataFrame({"key": list(json.loads(path.read_text(encoding="utf-8")))})
    if path.suffix == ".jsonl":
        return pd.DataFrame(
            [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        )
    return pd.DataFrame({"line": path.read_text(encoding="utf-8").splitlines()})


def _how_to_get(spec: FileSpec) -> str:
    item = spec.path.split("/", 1)[0]
    return f"`python -m xltlib data fetch {item}`, or copy it from a folder laid out like ../shared/data"


def parallel_problems(reports: list[FileReport]) -> list[str]:
    """Groups whose files differ in row count or XCOPA item ids: one line each, naming the odd files."""
    problems = []
    groups: dict[str, list[FileReport]] = {}
    for report in reports:
        if report.spec.group and report.rows is not None:
            groups.setdefault(report.spec.group, []).append(report)
    for group, members in groups.items():
        counts = pd.Series([m.rows for m in members]).mode()
        usual = int(counts.iloc[0])
        for member in members:
            if member.rows != usual:
                member.problem = (
                    member.problem or f"{member.rows} rows but the other {group} files have {usual}: not parallel"
                )
        ids = {m.ids for m in members if m.ids is not None and m.rows == usual}
        if len(ids) > 1:
            problems.append(
                f"{group}: the files list different item ids (idx), so their lines are not translations of each other"
            )
    return problems


def verify(root: str | Path, items: list[str] | None = None) -> tuple[list[FileReport], list[str]]:
    """Every file of ``items`` (default: all) under ``root``, checked; and the problems of parallel groups."""
    root = Path(root)
    if not root.is_dir():
        raise XltError(f"data folder {root} does not exist; `python -m xltlib data fetch` writes one")
    for item in items or []:
        if item not in ITEMS:
            raise unknown("data item", item, ITEMS)
    reports = [check_file(root, spec) for item in (items or list(ITEMS)) for spec in ITEMS[item]()]
    return reports, parallel_problems(reports)


def xcopa_agreement(root: str | Path, split: str = "test") -> pd.DataFrame:
    """Per XCOPA language, whether its items are English COPA's (same idx, in order), and how many
    differ from the English item in their question or (val only: English test labels are hidden) label."""
    root = Path(root)
    english = "copa-en/val-en.jsonl" if split == "val" else "copa-en/test-en.jsonl"
    base = _read(root / "xcopa" / english, FileSpec(english, None))
    rows = []
    for lang in XCOPA_TARGETS:
        other = _read(root / "xcopa" / "xcopa" / lang / f"{split}.{lang}.jsonl", FileSpec("", None))
        rows.append(
            {
                "language": lang,
                "items": len(other),
                "same_idx": bool((other["idx"] == base["idx"]).all()),
                "question_differs": int((other["question"] != base["question"]).sum()),
                "label_differs": int((other["label"] != base["label"]).sum()) if split == "val" else None,
            }
        )
    return pd.DataFrame(rows)


def print_report(reports: list[FileReport], problems: list[str]) -> bool:
    """Print one line per item and per bad file; return whether everything passed."""
    by_item: dict[str, list[FileReport]] = {}
    for report in reports:
        by_item.setdefault(report.spec.path.split("/", 1)[0], []).append(report)
    for item, members in by_item.items():
        bad = [m for m in members if not m.ok]
        rows = sum(m.rows or 0 for m in members)
        print(
            f"{'ok  ' if not bad else 'FAIL'} {item}: {len(members) - len(bad)} of {len(members)} files pass "
            f"({rows:,} rows read)"
        )
        for member in bad:
            print(f"     {member.spec.path}: {member.problem}")
    for problem in problems:
        print(f"FAIL {problem}")
    return all(report.ok for report in reports) and not problems
