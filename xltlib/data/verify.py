"""``data verify``: check a real-data folder before any run reads it; the one declaration of what ``data fetch`` writes.

Every file of the real profile is declared once in :data:`ITEMS` (an item is a task,
Tatoeba or the synonym table): its path, row count, whether every row must be labeled, the
parallel group whose files must have equal row counts (and, for XCOPA, equal item ids), and
where it comes from. Two layouts hold these files: the one ``data fetch`` writes (every file
with a ``source``; the training sets included) and the project's ``../shared/data`` (every
file marked ``shared``: it adds XTREME's unlabeled test files and SocialIQa's test set, which
no hub serves, and has no full training set). Fetch and verify read the same specs, so they
cannot drift apart. Reading goes through the project's own loaders, so a bad label names its
file and line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xltlib.data.loading import read_split_file
from xltlib.data.synonyms import COUNTER_FITTED_URL
from xltlib.data.tasks import get_task
from xltlib.data.tatoeba import ISO_639_3, tatoeba_files
from xltlib.errors import XltError, unknown

XNLI_LANGUAGES = get_task("xnli").languages
PAWSX_LANGUAGES = get_task("pawsx").languages
XCOPA_TARGETS = tuple(lang for lang in get_task("xcopa").languages if lang != "en")

CHECKSUMS = "CHECKSUMS.json"
"""Written by ``data fetch`` beside the data: a folder that has it is in the fetched layout."""

LAYOUTS = {
    "fetched": "CHECKSUMS.json is here: the files `data fetch` writes, training sets included",
    "shared": "no CHECKSUMS.json: the files of ../shared/data, XTREME's unlabeled test sets included",
}
"""The two layouts of a real-data folder, and how :func:`detect_layout` tells them apart."""

LASER_TATOEBA = (
    "https://raw.githubusercontent.com/facebookresearch/LASER/fec5c7d63daa2bea9d127e8252b10e87278586c0/data/tatoeba/v1"
)
"""LASER's Tatoeba test sets. ``../shared/data`` names LASER@74bc6ae7; this full commit holds the same files: its
tatoeba.deu-eng.deu and tatoeba.cmn-eng.eng were compared with the shared copies (same length in characters, same
first, middle and last lines); the other files were not compared."""

SIQA_DEV = "xcopa/siqa/socialIQa_v1.4_dev.jsonl"


@dataclass(frozen=True)
class HubSplit:
    """One split of a hub dataset, and the columns written from it, in order.

    A JSON-lines file keeps the column names; a TSV file has the text columns, then the label
    by its name (XTREME's layout). ``same_as`` is ``(another split, its file in the layout)``:
    that split must equal the file, where a copy of it is at hand, before this one is written
    (the hub's SocialIQa is a mirror of AllenAI's: its dev set vouches for its training set).
    """

    hub_id: str
    config: str | None
    split: str
    columns: tuple[str, ...]
    same_as: tuple[str, str] | None = None

    def __str__(self) -> str:
        return f"hub {self.hub_id} ({self.config}, {self.split})"


@dataclass(frozen=True)
class UrlFile:
    """A file at a URL pinned to a commit."""

    url: str

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class FileSpec:
    """One file of the layouts.

    Attributes:
        path: relative to the data folder.
        rows: its number of data rows (``None``: any number).
        labeled: every row must carry a label.
        group: files of one group are line-parallel: equal row counts (and equal XCOPA ``idx``).
        task: the task whose loader reads it (``None``: plain lines or JSON).
        source: where ``data fetch`` gets it (``None``: no hub serves it; only ``../shared/data`` has it).
        shared: ``../shared/data`` has it.
    """

    path: str
    rows: int | None
    labeled: bool = False
    group: str | None = None
    task: str | None = None
    source: HubSplit | UrlFile | None = None
    shared: bool = True

    def in_layout(self, layout: str) -> bool:
        return self.source is not None if layout == "fetched" else self.shared


def _xnli() -> list[FileSpec]:
    hub, pair = get_task("xnli").hub_id, ("premise", "hypothesis", "label")
    # MultiNLI's training set (XNLI's English train); then each language's dev and test sets
    specs = [FileSpec("xnli/train-en.tsv", 392_702, True, None, "xnli", HubSplit(hub, "en", "train", pair), False)]
    for lang in XNLI_LANGUAGES:
        dev, test = HubSplit(hub, lang, "validation", pair), HubSplit(hub, lang, "test", pair)
        specs += [
            FileSpec(f"xnli/xtreme/dev-{lang}.tsv", 2490, True, "xnli dev", "xnli", dev),
            FileSpec(f"xnli/xtreme/test-{lang}.tsv", 5010, False, "xnli test", "xnli"),  # XTREME's, labels stripped
            FileSpec(f"xnli/test-labeled/test-{lang}.tsv", 5010, True, "xnli test", "xnli", test),
        ]
    return specs


def _pawsx() -> list[FileSpec]:
    hub, pair = get_task("pawsx").hub_id, ("sentence1", "sentence2", "label")
    wiki = HubSplit("google-research-datasets/paws", "labeled_final", "test", ("id", *pair))  # English PAWS-Wiki test
    specs = [
        FileSpec("pawsx/train-en.tsv", 49_401, True, None, "pawsx", HubSplit(hub, "en", "train", pair), False),
        FileSpec("pawsx/paws-wiki-en/train-source.tsv", 8000, True, None, "pawsx", wiki),
    ]
    for lang in PAWSX_LANGUAGES:
        dev, test = HubSplit(hub, lang, "validation", pair), HubSplit(hub, lang, "test", pair)
        in_shared = lang in ("de", "en", "zh")
        specs += [
            FileSpec(f"pawsx/xtreme/dev-{lang}.tsv", 2000, True, "pawsx dev", "pawsx", dev),
            FileSpec(f"pawsx/xtreme/test-{lang}.tsv", 2000, False, "pawsx test", "pawsx"),  # XTREME's, labels stripped
            # the hub labels every language's test set; ../shared/data has labels for three
            FileSpec(f"pawsx/test-labeled/test-{lang}.tsv", 2000, True, "pawsx test", "pawsx", test, in_shared),
        ]
    return specs


def _xcopa() -> list[FileSpec]:
    (copa, copa_config), (siqa, siqa_config) = get_task("xcopa").source_hub_id, get_task("siqa").source_hub_id
    fields = ("premise", "choice1", "choice2", "question", "label", "idx")
    specs = []
    for split, name, rows in (("train", "train", 400), ("validation", "val", 100), ("test", "test", 500)):
        source = HubSplit(copa, copa_config, split, fields)  # SuperGLUE hides test labels: -1 here, all 0 when shared
        group = f"xcopa {name}" if name != "train" else None
        specs.append(FileSpec(f"xcopa/copa-en/{name}-en.jsonl", rows, name != "test", group, "xcopa", source))
    siqa_fields = ("context", "question", "answerA", "answerB", "answerC", "label")
    # the hub's dev set must equal a copy at hand of AllenAI's before either split is written; the training set
    # comes first, so that a dev set fetched now is not the copy it is checked against
    train, dev = (
        HubSplit(siqa, siqa_config, split, siqa_fields, ("validation", SIQA_DEV)) for split in ("train", "validation")
    )
    specs += [
        FileSpec("xcopa/siqa/train.jsonl", 33_410, True, None, "siqa", train, False),
        FileSpec(SIQA_DEV, 1954, True, None, "siqa", dev),
        FileSpec("xcopa/siqa/socialIQa_v1.4_tst.jsonl", 2224, True, None, "siqa"),  # no hub has the test labels
    ]
    for lang in XCOPA_TARGETS:
        for split, name, rows in (("validation", "val", 100), ("test", "test", 500)):
            source = HubSplit(get_task("xcopa").hub_id, lang, split, fields)
            specs.append(
                FileSpec(f"xcopa/xcopa/{lang}/{name}.{lang}.jsonl", rows, True, f"xcopa {name}", "xcopa", source)
            )
    return specs


def _tatoeba() -> list[FileSpec]:
    return [
        FileSpec(
            f"tatoeba/v1/{path.name}", None, group=f"tatoeba {lang}", source=UrlFile(f"{LASER_TATOEBA}/{path.name}")
        )
        for lang in sorted(ISO_639_3)
        for path in tatoeba_files("", lang)
    ]


ITEMS: dict[str, Callable[[], list[FileSpec]]] = {
    "xnli": _xnli,
    "pawsx": _pawsx,
    "xcopa": _xcopa,
    "tatoeba": _tatoeba,
    "synonyms": lambda: [FileSpec("synonyms/counterfitted_neighbors.json", 49975, source=UrlFile(COUNTER_FITTED_URL))],
}
"""What ``data verify`` and ``data fetch`` know: item → its files in the layouts."""


def check_items(items: list[str] | None) -> list[str]:
    """``items``, or every item; an unknown name is an error suggesting the nearest."""
    for item in items or []:
        if item not in ITEMS:
            raise unknown("data item", item, ITEMS)
    return list(items or ITEMS)


def detect_layout(root: str | Path) -> str:
    """``fetched`` where ``data fetch`` left its checksums, else ``shared`` (a copy of ``../shared/data``)."""
    return "fetched" if (Path(root) / CHECKSUMS).is_file() else "shared"


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
    if spec.source is None:
        return "no hub serves it: copy it from a folder laid out like ../shared/data"
    copy = ", or copy it from ../shared/data" if spec.shared else ""
    return f"`python -m xltlib data fetch {item}` gets it from {spec.source}{copy}"


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


def verify(
    root: str | Path, items: list[str] | None = None, layout: str | None = None
) -> tuple[list[FileReport], list[str]]:
    """Every file of ``items`` (default: all) of ``layout`` under ``root``, checked; the problems of parallel groups.

    ``layout`` is ``fetched`` (what ``data fetch`` writes) or ``shared`` (``../shared/data``);
    by default the folder's own, told by :func:`detect_layout`.
    """
    root = Path(root)
    if not root.is_dir():
        raise XltError(f"data folder {root} does not exist; `python -m xltlib data fetch` writes one")
    if layout is not None and layout not in LAYOUTS:
        raise unknown("data layout", layout, LAYOUTS)
    layout = layout or detect_layout(root)
    reports = [
        check_file(root, spec) for item in check_items(items) for spec in ITEMS[item]() if spec.in_layout(layout)
    ]
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
