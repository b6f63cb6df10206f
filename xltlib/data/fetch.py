"""``data fetch``: download the real profile's data into a folder laid out like ``../shared/data``.

Each source is declared once in :data:`SOURCES`: a dataset-hub id (with its revision) or a
URL at a pinned commit, and the files of the layout it writes. Every file written is
recorded, with its sha256 and the revision it came from, in ``CHECKSUMS.json`` beside the
data; a hub dataset whose revision is not pinned here is pinned there, at the commit the
first fetch resolved, and later fetches ask for that commit. Offline, each missing item
is one line saying what it is and how to get it; nothing raises a traceback.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xltlib.data.tatoeba import ISO_639_3
from xltlib.data.verify import PAWSX_LANGUAGES, XCOPA_TARGETS, XNLI_LANGUAGES
from xltlib.errors import unknown
from xltlib.files import atomic_write, atomic_write_json, file_sha256

CHECKSUMS = "CHECKSUMS.json"

LASER = "https://raw.githubusercontent.com/facebookresearch/LASER/74bc6ae7/data/tatoeba/v1"
ROBUST_XLT = "https://raw.githubusercontent.com/uclanlp/Robust-XLT/175cddb/counterfitted_neighbors.json"


@dataclass(frozen=True)
class HubSplit:
    """One split of a hub dataset, written to ``path`` (TSV of text columns + label, or JSON lines)."""

    hub_id: str
    config: str | None
    split: str
    path: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class UrlFile:
    url: str
    path: str


def _xnli() -> list:
    files = [HubSplit("facebook/xnli", "en", "train", "xnli/train-en.tsv", ("premise", "hypothesis", "label"))]
    for lang in XNLI_LANGUAGES:
        files += [
            HubSplit(
                "facebook/xnli", lang, "validation", f"xnli/xtreme/dev-{lang}.tsv", ("premise", "hypothesis", "label")
            ),
            HubSplit(
                "facebook/xnli", lang, "test", f"xnli/test-labeled/test-{lang}.tsv", ("premise", "hypothesis", "label")
            ),
        ]
    return files


def _pawsx() -> list:
    columns = ("sentence1", "sentence2", "label")
    files = [HubSplit("google-research-datasets/paws-x", "en", "train", "pawsx/train-en.tsv", columns)]
    for lang in PAWSX_LANGUAGES:
        files += [
            HubSplit("google-research-datasets/paws-x", lang, "validation", f"pawsx/xtreme/dev-{lang}.tsv", columns),
            HubSplit("google-research-datasets/paws-x", lang, "test", f"pawsx/test-labeled/test-{lang}.tsv", columns),
        ]
    return files


def _xcopa() -> list:
    columns = ("premise", "choice1", "choice2", "question", "label", "idx")
    files = [
        HubSplit("aps/super_glue", "copa", split, f"xcopa/copa-en/{name}-en.jsonl", columns)
        for split, name in (("train", "train"), ("validation", "val"), ("test", "test"))  # test: hidden labels
    ]
    files.append(
        HubSplit(
            "allenai/social_i_qa",
            None,
            "train",
            "xcopa/siqa/train.jsonl",
            ("context", "question", "answerA", "answerB", "answerC", "label"),
        )
    )
    for lang in XCOPA_TARGETS:
        files += [
            HubSplit("cambridgeltl/xcopa", lang, split, f"xcopa/xcopa/{lang}/{name}.{lang}.jsonl", columns)
            for split, name in (("validation", "val"), ("test", "test"))
        ]
    return files


def _tatoeba() -> list:
    files = []
    for code in sorted(ISO_639_3.values()):
        files += [
            UrlFile(f"{LASER}/tatoeba.{code}-eng.{side}", f"tatoeba/v1/tatoeba.{code}-eng.{side}")
            for side in (code, "eng")
        ]
    return files


SOURCES: dict[str, Callable[[], list]] = {
    "xnli": _xnli,
    "pawsx": _pawsx,
    "xcopa": _xcopa,
    "tatoeba": _tatoeba,
    "synonyms": lambda: [UrlFile(ROBUST_XLT, "synonyms/counterfitted_neighbors.json")],
}
"""Item → what it downloads. The items are :data:`xltlib.data.verify.ITEMS`'."""

HUB_REVISIONS: dict[str, str | None] = {
    "facebook/xnli": None,
    "google-research-datasets/paws-x": None,
    "cambridgeltl/xcopa": None,
    "aps/super_glue": None,
    "allenai/social_i_qa": None,
}
"""Hub revisions to ask for; ``None``: the commit recorded in ``CHECKSUMS.json`` by the first fetch
(this machine could not reach the hub to look the commits up when the project was written)."""


def fetch(root: str | Path, items: list[str] | None = None) -> list[str]:
    """Download every missing file of ``items`` (default: all) into ``root``; return one line per item that failed."""
    root = Path(root)
    for item in items or []:
        if item not in SOURCES:
            raise unknown("data item", item, SOURCES)
    root.mkdir(parents=True, exist_ok=True)
    checksums = _read_checksums(root)
    failures = []
    for item in items or list(SOURCES):
        missing = [source for source in SOURCES[item]() if not (root / source.path).is_file()]
        try:
            for source in missing:
                checksums[source.path] = _download(source, root, checksums)
                atomic_write_json(root / CHECKSUMS, checksums)
        except Exception as error:  # offline, moved, refused: the user gets a line, not a traceback
            failures.append(_failure_line(item, missing, error, root))
    return failures


def _read_checksums(root: Path) -> dict:
    path = root / CHECKSUMS
    return json.loads(path.read_text()) if path.is_file() else {}


def _download(source, root: Path, checksums: dict) -> dict:
    target = root / source.path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, UrlFile):
        with urllib.request.urlopen(source.url, timeout=30) as response:
            body = response.read()
        atomic_write(target, lambda tmp: Path(tmp).write_bytes(body))
        return {"source": source.url, "sha256": file_sha256(target)}
    revision = HUB_REVISIONS.get(source.hub_id) or _recorded_revision(checksums, source.hub_id)
    revision = revision or _resolve_revision(source.hub_id)
    _write_hub_split(source, revision, target)
    return {
        "source": f"{source.hub_id}:{source.config}:{source.split}",
        "revision": revision,
        "sha256": file_sha256(target),
    }


def _recorded_revision(checksums: dict, hub_id: str) -> str | None:
    return next(
        (entry["revision"] for entry in checksums.values() if entry.get("source", "").startswith(hub_id + ":")), None
    )


def _resolve_revision(hub_id: str) -> str:
    from huggingface_hub import HfApi

    return HfApi().dataset_info(hub_id).sha


def _write_hub_split(source: HubSplit, revision: str, target: Path) -> None:
    import datasets

    rows = datasets.load_dataset(source.hub_id, source.config, split=source.split, revision=revision)
    if target.suffix == ".jsonl":
        lines = [
            json.dumps({column: row[column] for column in source.columns if column in row}, ensure_ascii=False)
            for row in rows
        ]
    else:  # XTREME's TSV: text columns, then the label by name (-1, the hub's "unlabeled", kept as -1)
        names = getattr(rows.features.get("label"), "names", None)
        lines = [
            "\t".join(_tsv_cell(row[column], names if column == "label" else None) for column in source.columns)
            for row in rows
        ]
    atomic_write(target, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8"))


def _tsv_cell(value, label_names: list[str] | None) -> str:
    if label_names is not None and isinstance(value, int) and value >= 0:
        return label_names[value]
    return str(value).replace("\t", " ").replace("\n", " ")


def _failure_line(item: str, missing: list, error: Exception, root: Path) -> str:
    where = sorted(
        {source.hub_id if isinstance(source, HubSplit) else source.url.rsplit("/", 1)[0] for source in missing}
    )
    reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
    return (
        f"missing {item} ({len(missing)} files, from {', '.join(where)}): {type(error).__name__}: {reason}; "
        f"rerun `python -m xltlib data fetch {item}` with network, or copy a folder laid out like "
        f"../shared/data to {root}"
    )
