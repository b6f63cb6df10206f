"""``data fetch``: download the real profile's data into a folder in the layout ``data verify`` checks.

What is fetched is declared once, in :data:`xltlib.data.verify.ITEMS`: every file with a
``source`` (a hub dataset's split, or a URL at a full commit hash). Fetching goes file by
file: a file already there is kept, and a file that fails is one line naming it, its
source, the error and what to do, while the other files are still tried; nothing raises a
traceback. Every file written is recorded in ``CHECKSUMS.json`` beside the data, with its
sha256 and where it came from.

Hub revisions are not pinned in the code: this project was written on a machine that could
not reach the hub to look the commits up. The first fetch of a hub dataset records the
commit it resolved in ``CHECKSUMS.json``, and later fetches into that folder ask for that
commit.

A :class:`Mirror` stands in for the hub and GitHub where they cannot be reached (tests, an
air-gapped machine): local Parquet or JSON-lines copies of the hub's splits, local copies of
the URLs' files, read through ``datasets`` as the hub's Parquet files are.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from xltlib.data.loading import from_siqa
from xltlib.data.verify import CHECKSUMS, ITEMS, FileSpec, HubSplit, UrlFile, check_items
from xltlib.errors import XltError
from xltlib.files import atomic_write, atomic_write_bytes, atomic_write_json, file_sha256


@dataclass(frozen=True)
class Mirror:
    """Local copies of the sources: ``(hub id, config, split)`` → a Parquet or JSON-lines file; URL → a file.

    ``cache_dir`` is where ``datasets`` keeps what it prepares from them (default: its own cache).
    """

    splits: Mapping[tuple[str, str | None, str], Path] = field(default_factory=dict)
    files: Mapping[str, Path] = field(default_factory=dict)
    cache_dir: Path | None = None


def fetch(
    root: str | Path,
    items: list[str] | None = None,
    mirror: Mirror | None = None,
    reference: str | Path | None = None,
) -> list[str]:
    """Download every missing file of ``items`` (default: all) into ``root``; return one line per file that failed.

    ``reference`` is another folder in the layout (``../shared/data``) whose files vouch for
    a hub's copy before it is written (see :attr:`HubSplit.same_as`), besides ``root``'s own.
    """
    root, names = Path(root), check_items(items)  # a misspelt item fails before any folder is made
    root.mkdir(parents=True, exist_ok=True)
    fetcher = _Fetcher(root, mirror, [root] + ([Path(reference)] if reference else []))
    failures = []
    for item in names:
        for spec in ITEMS[item]():
            if spec.source is None or (root / spec.path).is_file():
                continue
            try:
                fetcher.checksums[spec.path] = fetcher.download(spec)
                atomic_write_json(root / CHECKSUMS, fetcher.checksums)
            except Exception as error:  # offline, moved, refused, not the same data: a line, not a traceback
                failures.append(failure_line(item, spec, error, root))
    return failures


class _Fetcher:
    """One fetch: the checksums so far, the hub revisions resolved, and the sources found unreachable."""

    def __init__(self, root: Path, mirror: Mirror | None, references: list[Path]):
        path = root / CHECKSUMS
        self.checksums: dict = json.loads(path.read_text()) if path.is_file() else {}
        self.root, self.mirror, self.references = root, mirror, references
        self.revisions: dict[str, str] = {}
        self.unreachable: dict[str, Exception] = {}  # origin → its network error: later files fail fast

    def download(self, spec: FileSpec) -> dict:
        target = self.root / spec.path
        target.parent.mkdir(parents=True, exist_ok=True)
        source = spec.source
        origin = source.hub_id if isinstance(source, HubSplit) else source.url.split("/")[2]
        if origin in self.unreachable:
            raise self.unreachable[origin]
        try:
            record = self._hub_file(source, target) if isinstance(source, HubSplit) else self._url_file(source, target)
        except Exception as error:
            if is_unreachable(error):
                self.unreachable[origin] = error
            raise
        return record | {"sha256": file_sha256(target)}

    def _url_file(self, source: UrlFile, target: Path) -> dict:
        if self.mirror is not None:
            if source.url not in self.mirror.files:
                raise XltError("not in the mirror")
            atomic_write_bytes(target, Path(self.mirror.files[source.url]).read_bytes())
            return {"source": source.url, "mirror": str(self.mirror.files[source.url])}
        with urllib.request.urlopen(source.url, timeout=30) as response:
            body = response.read()
        atomic_write_bytes(target, body)
        return {"source": source.url}

    def _hub_file(self, source: HubSplit, target: Path) -> dict:
        if source.same_as is not None:
            self._check_same_as(source)
        rows, record = self._rows(source)
        write_split(rows, source, target)
        return record

    def _rows(self, source: HubSplit):
        """The split as a ``datasets.Dataset``, and where it came from (for ``CHECKSUMS.json``)."""
        import datasets

        name = f"{source.hub_id}:{source.config}:{source.split}"
        if self.mirror is None:
            revision = self._revision(source.hub_id)
            rows = datasets.load_dataset(source.hub_id, source.config, split=source.split, revision=revision)
            return rows, {"source": name, "revision": revision}
        path = self.mirror.splits.get((source.hub_id, source.config, source.split))
        if path is None:
            raise XltError("not in the mirror")
        kind = "parquet" if Path(path).suffix == ".parquet" else "json"
        rows = datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=self.mirror.cache_dir)
        return rows, {"source": name, "mirror": str(path)}

    def _revision(self, hub_id: str) -> str:
        """The commit recorded by an earlier fetch into this folder, else the hub's current one (then recorded)."""
        if hub_id not in self.revisions:
            recorded = [
                entry["revision"]
                for entry in self.checksums.values()
                if entry.get("source", "").startswith(hub_id + ":") and "revision" in entry
            ]
            if recorded:
                self.revisions[hub_id] = recorded[0]
            else:
                from huggingface_hub import HfApi

                self.revisions[hub_id] = HfApi().dataset_info(hub_id).sha
        return self.revisions[hub_id]

    def _check_same_as(self, source: HubSplit) -> None:
        """Refuse ``source`` unless its ``same_as`` split equals every copy of that file at hand."""
        split, path = source.same_as
        copies = [folder / path for folder in self.references if (folder / path).is_file()]
        if not copies:
            return
        rows, _ = self._rows(replace(source, split=split, same_as=None))
        for copy in copies:
            difference = siqa_difference(table_rows(rows, source.columns), copy)
            if difference:
                raise XltError(
                    f"{source.hub_id} ({split}) is not the SocialIQa of {copy}: {difference}; "
                    f"its {source.split} split is not written (check which copy is right before using either)"
                )


def table_rows(rows, columns: tuple[str, ...]) -> list[dict]:
    """A ``datasets.Dataset``'s ``columns`` (those it has), as one dict per row, read column by column."""
    present = [column for column in columns if column in rows.column_names]
    table = rows.select_columns(present).to_dict()
    return [dict(zip(present, values)) for values in zip(*(table[column] for column in present))]


def write_split(rows, source: HubSplit, target: Path) -> None:
    """JSON lines (the columns by name) or XTREME's TSV (text columns, then the label by its name; the hub's -1,
    "unlabeled", kept as -1)."""
    records = table_rows(rows, source.columns)
    if target.suffix == ".jsonl":
        lines = [json.dumps(record, ensure_ascii=False) for record in records]
    else:
        names = getattr(rows.features.get("label"), "names", None)
        lines = [
            "\t".join(_tsv_cell(record[column], names if column == "label" else None) for column in source.columns)
            for record in records
        ]
    atomic_write(target, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8"))


def _tsv_cell(value, label_names: list[str] | None) -> str:
    if label_names is not None and isinstance(value, int) and value >= 0:
        return label_names[value]
    return str(value).replace("\t", " ").replace("\n", " ")


def siqa_difference(hub_rows: list[dict], copy: Path) -> str | None:
    """The first difference between SocialIQa rows and a file of them, in the fields the loader reads, or ``None``."""
    theirs = [from_siqa(row) for row in hub_rows]
    ours = [from_siqa(json.loads(line)) for line in copy.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(theirs) != len(ours):
        return f"{len(theirs)} rows on the hub, {len(ours)} in the file"
    for number, (hub_row, file_row) in enumerate(zip(theirs, ours), start=1):
        for name, value in hub_row.items():
            if value != file_row[name]:
                return f"row {number} differs in {name}: {value!r} on the hub, {file_row[name]!r} in the file"
    return None


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or one it was raised from) says the source could not be reached at all."""
    while error is not None:
        if isinstance(error, (ConnectionError, TimeoutError, socket.gaierror)) or (
            isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError)
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


def failure_line(item: str, spec: FileSpec, error: Exception, root: Path) -> str:
    """``missing PATH (from SOURCE): Error: its first line — what to do``."""
    first = str(error).splitlines()[0] if str(error).strip() else ""
    reason = first if isinstance(error, XltError) else f"{type(error).__name__}: {first[:200]}".rstrip(": ")
    rerun = f"`python -m xltlib data fetch {item} --data-dir {root}`"
    if is_unreachable(error):
        advice = f"the source could not be reached: rerun {rerun} where it can be"
    elif isinstance(error, urllib.error.HTTPError):
        advice = f"the server refused it (HTTP {error.code}): the address has moved; fix it in xltlib/data/verify.py"
    else:
        advice = f"rerun {rerun} once that is fixed"
    copy = ", or copy the file from a folder laid out like ../shared/data" if spec.shared else ""
    return f"missing {spec.path} (from {spec.source}): {reason} — {advice}{copy}"
