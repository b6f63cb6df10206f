"""``data fetch`` against a local mirror of its sources, built from ../shared/data: file by file, checked, verified."""

from __future__ import annotations

import json
import re
import urllib.error
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from xltlib.data.fetch import Mirror, failure_line, fetch, is_unreachable
from xltlib.data.loading import load_split, read_tsv
from xltlib.data.tasks import TASKS, get_task
from xltlib.data.verify import CHECKSUMS, ITEMS, SIQA_DEV, XCOPA_TARGETS, HubSplit, UrlFile, detect_layout, verify
from xltlib.errors import XltError

SIQA = get_task("siqa").source_hub_id[0]


def parquet(frame: pd.DataFrame, path: Path, labels: tuple[str, ...] | None = None) -> Path:
    """``frame`` as a hub Parquet file; ``labels``: its label column is a ClassLabel of these names, as on the hub."""
    table = datasets.Dataset.from_pandas(frame, preserve_index=False)
    if labels is not None:
        table = table.cast_column("label", datasets.ClassLabel(names=list(labels)))
    table.to_parquet(str(path))
    return path


def pairs(path: Path, task: str, columns: tuple[str, str], rows: int | None = None) -> pd.DataFrame:
    """A shared TSV file as the hub's columns (label ids), cycled to ``rows`` rows."""
    frame = read_tsv(path, get_task(task))
    frame = frame.iloc[np.arange(rows or len(frame)) % len(frame)]
    return pd.DataFrame({columns[0]: frame.text_a, columns[1]: frame.text_b, "label": frame.label.astype(int)})


def siqa_frame(dev: Path, rows: int | None = None) -> pd.DataFrame:
    """A SocialIQa dev file (``correct`` A–C) in lighteval/siqa's columns (``label`` "1"–"3"), cycled to ``rows``."""
    records = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines()]
    frame = pd.DataFrame(records)
    frame["label"] = frame.pop("correct").map({"A": "1", "B": "2", "C": "3"})
    return frame.iloc[np.arange(rows or len(frame)) % len(frame)].reset_index(drop=True)


def hub_splits(shared: Path, out: Path) -> dict:
    """Every hub split ``data fetch`` asks for, as a Parquet or JSON-lines file made of the shared data."""
    splits = {}
    for task, columns, train_rows, train in (
        ("xnli", ("premise", "hypothesis"), 392_702, "xnli/test-labeled/test-en.tsv"),
        ("pawsx", ("sentence1", "sentence2"), 49_401, "pawsx/paws-wiki-en/train-source.tsv"),
    ):
        hub, labels = get_task(task).hub_id, get_task(task).labels
        splits[hub, "en", "train"] = parquet(
            pairs(shared / train, task, columns, train_rows), out / f"{task}.parquet", labels
        )
        for lang in get_task(task).languages:
            dev = pairs(shared / task / "xtreme" / f"dev-{lang}.tsv", task, columns)
            labeled = shared / task / "test-labeled" / f"test-{lang}.tsv"  # PAWS-X: three languages; dev stands in
            test = pairs(labeled, task, columns) if labeled.is_file() else dev
            splits[hub, lang, "validation"] = parquet(dev, out / f"{task}-{lang}-dev.parquet", labels)
            splits[hub, lang, "test"] = parquet(test, out / f"{task}-{lang}-test.parquet", labels)
    wiki = pairs(shared / "pawsx/paws-wiki-en/train-source.tsv", "pawsx", ("sentence1", "sentence2"))
    wiki.insert(0, "id", range(1, len(wiki) + 1))
    splits["google-research-datasets/paws", "labeled_final", "test"] = parquet(wiki, out / "paws.parquet", ("0", "1"))
    copa, config = get_task("xcopa").source_hub_id
    for split, name in (("train", "train"), ("validation", "val"), ("test", "test")):
        splits[copa, config, split] = shared / "xcopa" / "copa-en" / f"{name}-en.jsonl"  # JSON lines, read as such
    for lang in XCOPA_TARGETS:
        for split, name in (("validation", "val"), ("test", "test")):
            splits[get_task("xcopa").hub_id, lang, split] = shared / "xcopa" / "xcopa" / lang / f"{name}.{lang}.jsonl"
    dev = shared / SIQA_DEV
    splits[SIQA, "default", "validation"] = parquet(siqa_frame(dev), out / "siqa-dev.parquet")
    splits[SIQA, "default", "train"] = parquet(siqa_frame(dev, 33_410), out / "siqa-train.parquet")
    return splits


@pytest.fixture(scope="module")
def mirror(shared_data, tmp_path_factory) -> Mirror:
    """Every source of ``data fetch``, offline: the hub's splits made of the shared data (training sets cycled to their
    real sizes), and the URLs' files from the shared copies."""
    out = tmp_path_factory.mktemp("mirror")
    files = {
        spec.source.url: shared_data / spec.path
        for item in ITEMS
        for spec in ITEMS[item]()
        if isinstance(spec.source, UrlFile)
    }
    return Mirror(hub_splits(shared_data, out), files, cache_dir=out / "cache")


def fetched_paths() -> set[str]:
    return {spec.path for item in ITEMS for spec in ITEMS[item]() if spec.source is not None}


def test_fetch_from_a_mirror_writes_every_file_and_verify_passes_on_them(mirror, tmp_path):
    root = tmp_path / "real"
    assert fetch(root, mirror=mirror) == []
    written = {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()} - {CHECKSUMS}
    assert written == fetched_paths()
    assert {"xnli/train-en.tsv", "pawsx/train-en.tsv", "xcopa/siqa/train.jsonl"} <= written
    checksums = json.loads((root / CHECKSUMS).read_text())
    assert set(checksums) == written and checksums["xcopa/siqa/train.jsonl"]["source"] == f"{SIQA}:default:train"
    assert detect_layout(root) == "fetched"
    reports, problems = verify(root)
    assert [(r.spec.path, r.problem) for r in reports if not r.ok] == [] and problems == []
    assert {r.spec.path: r.rows for r in reports}["xnli/train-en.tsv"] == 392_702
    stamp = (root / "xnli/train-en.tsv").stat().st_mtime_ns
    assert fetch(root, mirror=mirror) == [] and (root / "xnli/train-en.tsv").stat().st_mtime_ns == stamp  # kept


def test_hub_labels_are_written_by_name_and_read_back_as_the_same_examples(mirror, shared_data, tmp_path):
    assert fetch(tmp_path, ["xnli"], mirror=mirror) == []
    fetched = read_tsv(tmp_path / "xnli/xtreme/dev-sw.tsv", TASKS["xnli"])
    shared = read_tsv(shared_data / "xnli/xtreme/dev-sw.tsv", TASKS["xnli"])
    first = (tmp_path / "xnli/xtreme/dev-sw.tsv").read_text(encoding="utf-8").split("\n")[0]
    assert first.rsplit("\t", 1)[1] in TASKS["xnli"].labels  # by name, as XTREME writes them
    for column in ("text_a", "text_b", "label"):
        assert fetched[column].tolist() == shared[column].tolist()


def test_a_socialiqa_parquet_file_loads_through_fetch_and_the_loader(tmp_path):
    rows = pd.DataFrame(
        {
            "context": ["Kai paid.", "Lee ran.", "Ash sang."],
            "question": ["Why?", "How would Lee feel?", "What next?"],
            "answerA": ["a1", "b1", "c1"],
            "answerB": ["a2", "b2", "c2"],
            "answerC": ["a3", "b3", "c3"],
            "label": ["1", "3", "2"],
        }
    )
    path = tmp_path / "siqa.parquet"
    rows.to_parquet(path)
    mirror = Mirror({(SIQA, "default", "train"): path, (SIQA, "default", "validation"): path}, cache_dir=tmp_path / "c")
    failures = fetch(tmp_path / "real", ["xcopa"], mirror=mirror)
    train = load_split(TASKS["siqa"], "en", "train", tmp_path / "real" / "xcopa")
    assert list(train.text_a) == ["Kai paid.", "Lee ran.", "Ash sang."] and list(train.label) == [0, 2, 1]
    assert list(train.choice3) == ["a3", "b3", "c3"] and list(train.question)[1] == "How would Lee feel?"
    dev = load_split(TASKS["siqa"], "en", "dev", tmp_path / "real" / "xcopa")
    assert list(dev.label) == [0, 2, 1]
    # every other xcopa file was tried, and each failed on its own line, naming it and its source
    others = [spec for spec in ITEMS["xcopa"]() if spec.source is not None and spec.source.hub_id != SIQA]
    assert len(failures) == len(others) == 25
    for spec, line in zip(others, failures):
        assert line.startswith(f"missing {spec.path} (from {spec.source}): not in the mirror — rerun")
        assert "reached" not in line and "network" not in line


def test_a_socialiqa_unlike_the_reference_dev_set_is_refused_and_its_training_set_not_written(shared_data, tmp_path):
    hub_dev = siqa_frame(shared_data / SIQA_DEV)
    hub_dev.loc[4, "question"] = "What will Sydney want to do next, probably?"
    splits = {(SIQA, "default", "validation"): parquet(hub_dev, tmp_path / "dev.parquet")}
    splits[SIQA, "default", "train"] = parquet(hub_dev, tmp_path / "train.parquet")
    failures = fetch(tmp_path / "real", ["xcopa"], Mirror(splits, cache_dir=tmp_path / "c"), reference=shared_data)
    siqa = [line for line in failures if "siqa" in line.split(" (from")[0]]
    assert len(siqa) == 2 and siqa[0].startswith("missing xcopa/siqa/train.jsonl (from hub lighteval/siqa")
    assert f"is not the SocialIQa of {shared_data / SIQA_DEV}: row 5 differs in question" in siqa[0]
    assert "'What will Sydney want to do next, probably?' on the hub" in siqa[0]
    assert not (tmp_path / "real" / "xcopa/siqa/train.jsonl").exists()
    assert not (tmp_path / "real" / SIQA_DEV).exists()


def test_each_failed_file_is_one_line_and_the_others_are_still_written(mirror, tmp_path):
    missing_split = ("cambridgeltl/xcopa", "qu", "test")
    missing_url = next(url for url in mirror.files if url.endswith("tatoeba.swh-eng.swh"))
    broken = Mirror(
        {key: path for key, path in mirror.splits.items() if key != missing_split},
        {url: path if url != missing_url else Path("/no/such/file") for url, path in mirror.files.items()},
        mirror.cache_dir,
    )
    failures = fetch(tmp_path, ["xcopa", "tatoeba"], mirror=broken)
    assert len(failures) == 2
    assert failures[0].startswith("missing xcopa/xcopa/qu/test.qu.jsonl (from hub cambridgeltl/xcopa (qu, test)): ")
    assert failures[1].startswith(f"missing tatoeba/v1/tatoeba.swh-eng.swh (from {missing_url}): FileNotFoundError: ")
    assert "rerun `python -m xltlib data fetch tatoeba" in failures[1] and "reached" not in failures[1]
    reports, problems = verify(tmp_path, ["xcopa", "tatoeba"])
    bad = {report.spec.path: report.problem for report in reports if not report.ok}
    assert set(bad) == {"xcopa/xcopa/qu/test.qu.jsonl", "tatoeba/v1/tatoeba.swh-eng.swh"}
    assert (
        "`python -m xltlib data fetch xcopa` gets it from hub cambridgeltl/xcopa (qu, test)"
        in bad["xcopa/xcopa/qu/test.qu.jsonl"]
    )


def test_an_unreachable_hub_fails_each_file_on_its_own_line_without_retrying_each(tmp_path):
    """Tests run with HF_HUB_OFFLINE=1 (conftest): the hub cannot be reached, and each dataset is asked once."""
    failures = fetch(tmp_path, ["pawsx"])
    specs = [spec for spec in ITEMS["pawsx"]() if spec.source is not None]
    assert [line.split(" (from")[0] for line in failures] == [f"missing {spec.path}" for spec in specs]
    assert all("the source could not be reached: rerun `python -m xltlib data fetch pawsx" in line for line in failures)


def test_errors_that_are_not_the_network_are_not_blamed_on_it(tmp_path):
    spec = next(spec for spec in ITEMS["synonyms"]())
    gone = urllib.error.HTTPError(spec.source.url, 404, "Not Found", None, None)
    line = failure_line("synonyms", spec, gone, tmp_path)
    assert "HTTPError: HTTP Error 404: Not Found — the server refused it (HTTP 404): the address has moved" in line
    assert not is_unreachable(gone) and "reached" not in line
    script = RuntimeError("Dataset scripts are no longer supported, but found social_i_qa.py")
    assert not is_unreachable(script) and "RuntimeError: Dataset scripts are no longer supported" in failure_line(
        "xcopa", spec, script, tmp_path
    )
    assert is_unreachable(urllib.error.URLError(OSError("Name or service not known"))) is True


def test_every_url_names_a_full_commit():
    urls = [spec.source.url for item in ITEMS for spec in ITEMS[item]() if isinstance(spec.source, UrlFile)]
    assert urls and all(re.search(r"/[0-9a-f]{40}/", url) for url in urls)
    assert all(isinstance(spec.source, (HubSplit, UrlFile, type(None))) for item in ITEMS for spec in ITEMS[item]())


def test_a_misspelt_item_fails_before_any_folder_is_made(tmp_path):
    with pytest.raises(XltError, match="unknown data item 'xnl' \\(did you mean 'xnli'\\?\\)"):
        fetch(tmp_path / "real", ["xnl"])
    assert not (tmp_path / "real").exists()
