"""The real profile's data: XCOPA and Tatoeba loaders, label checks, `data verify` and `data fetch`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xltlib.data.label_checks import check_evaluation_split, checked_training_split
from xltlib.data.loading import load_split, pair_frame, read_choices_jsonl
from xltlib.data.parallel import parallel_corpus
from xltlib.data.synonyms import COUNTER_FITTED_URL
from xltlib.data.tasks import TASKS
from xltlib.data.tatoeba import ISO_639_3, tatoeba_pairs
from xltlib.data.verify import ITEMS, detect_layout, verify
from xltlib.errors import XltError

REPO = Path(__file__).resolve().parents[1]
XCOPA, PAWSX = TASKS["xcopa"], TASKS["pawsx"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xltlib", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def test_xcopa_loads_from_the_shared_layout_with_english_copa_as_source(shared_data):
    test = load_split(XCOPA, "zh", "test", shared_data / "xcopa")
    assert len(test) == 500 and list(test.columns) == ["text_a", "question", "choice1", "choice2", "label"]
    assert set(test.question) == {"cause", "effect"} and set(test.label) == {0, 1}
    assert len(load_split(XCOPA, "en", "train", shared_data / "xcopa")) == 400


def test_xcopa_premises_and_choices_are_parallel_with_english_copa(shared_data):
    corpus = parallel_corpus(XCOPA, ("en", "it", "zh"), shared_data / "xcopa")
    assert len(corpus) == 3 * 500  # premises, then each choice
    assert corpus.en[2] == "Termites invaded the house." and corpus.it[2] == "Le termiti invasero la casa."


def test_a_bad_xcopa_line_is_named(tmp_path):
    path = tmp_path / "test-xx.jsonl"
    row = {"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": 1}
    path.write_text(json.dumps(row) + "\n" + json.dumps(row | {"label": 2}) + "\n")
    with pytest.raises(XltError, match=r"test-xx.jsonl line 2: label 2 is not a choice index 0..1"):
        read_choices_jsonl(path, XCOPA)
    path.write_text(json.dumps(row | {"question": "why"}) + "\n")
    with pytest.raises(XltError, match="line 1.*question is 'why'"):
        read_choices_jsonl(path, XCOPA)


def test_placeholder_labels_and_unlabeled_splits_are_refused_for_evaluation(shared_data):
    english_test = load_split(XCOPA, "en", "test", shared_data / "xcopa")  # SuperGLUE hides them: all 0 here
    with pytest.raises(XltError, match="all 500 rows carry label 'choice1'.*placeholder"):
        check_evaluation_split(english_test, XCOPA)
    with pytest.raises(XltError, match="no label column"):
        check_evaluation_split(load_split(PAWSX, "fr", "test", shared_data / "pawsx" / "xtreme"), PAWSX)
    check_evaluation_split(load_split(XCOPA, "en", "dev", shared_data / "xcopa"), XCOPA)


def test_a_partly_labeled_training_split_is_reported_and_trained_on_its_labeled_rows(caplog):
    frame = pair_frame(["a", "b", "c", "d"], ["e", "f", "g", "h"], [0, None, 1, None], "train.tsv")
    with caplog.at_level("WARNING"):
        kept = checked_training_split(frame, PAWSX)
    assert list(kept.text_a) == ["a", "c"] and "2 of 4 rows are unlabeled" in caplog.text
    with pytest.raises(XltError, match="no example of 1"):
        checked_training_split(pair_frame(["a"], ["b"], [0], "train.tsv"), PAWSX)


def test_a_hub_minus_one_in_a_tsv_reads_as_unlabeled(tmp_path):
    (tmp_path / "train-en.tsv").write_text("a\tb\t1\nc\td\t-1\n")
    frame = load_split(PAWSX, "en", "train", tmp_path)
    assert frame.label.isna().tolist() == [False, True]


def test_tatoeba_maps_iso_codes_and_refuses_unaligned_files(shared_data, tmp_path):
    pairs = tatoeba_pairs(shared_data / "tatoeba" / "v1", "zh", limit=50)
    assert list(pairs.columns) == ["en", "zh"] and len(pairs) == 50 and ISO_639_3["sw"] == "swh"
    for name in ("tatoeba.cmn-eng.eng", "tatoeba.cmn-eng.cmn"):
        lines = (shared_data / "tatoeba" / "v1" / name).read_text().splitlines()
        (tmp_path / name).write_text("\n".join(lines[: 10 if name.endswith("cmn") else 11]) + "\n")
    with pytest.raises(XltError, match="tatoeba.cmn-eng.cmn has 10 lines but its English side has 11"):
        tatoeba_pairs(tmp_path, "zh")
    with pytest.raises(XltError, match="tatoeba.deu-eng.eng does not exist.*data fetch tatoeba"):
        tatoeba_pairs(tmp_path, "de")
    with pytest.raises(XltError, match="no test set for 'qu'"):
        tatoeba_pairs(tmp_path, "qu")


def test_verify_passes_on_the_shared_data(shared_data):
    result = cli("data", "verify", "--data-dir", str(shared_data))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all files pass" in result.stdout and "th 250" in result.stdout  # the XCOPA finding is reported


def copy_items(shared_data: Path, tmp_path: Path, *items: str) -> Path:
    for item in items:
        shutil.copytree(shared_data / item, tmp_path / item)
    return tmp_path


def test_verify_names_a_truncated_parallel_file(shared_data, tmp_path):
    root = copy_items(shared_data, tmp_path, "xnli")
    path = root / "xnli" / "xtreme" / "dev-fr.tsv"
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-5]))
    result = cli("data", "verify", "xnli", "--data-dir", str(root))
    assert result.returncode == 1 and "xnli/xtreme/dev-fr.tsv: 2485 rows, expected 2490" in result.stdout
    assert "FAILED" in result.stdout and "Traceback" not in result.stderr


def test_verify_names_an_xcopa_file_with_an_out_of_range_label(shared_data, tmp_path):
    root = copy_items(shared_data, tmp_path, "xcopa")
    path = root / "xcopa" / "xcopa" / "sw" / "test.sw.jsonl"
    rows = path.read_text().splitlines()
    rows[7] = json.dumps(json.loads(rows[7]) | {"label": 3})
    path.write_text("\n".join(rows) + "\n")
    reports, problems = verify(root, ["xcopa"])
    bad = [report for report in reports if not report.ok]
    assert [report.spec.path for report in bad] == ["xcopa/xcopa/sw/test.sw.jsonl"]
    assert "line 8: label 3" in bad[0].problem


def test_verify_finds_files_that_list_different_items(shared_data, tmp_path):
    root = copy_items(shared_data, tmp_path, "xcopa")
    path = root / "xcopa" / "xcopa" / "vi" / "val.vi.jsonl"
    rows = path.read_text().splitlines()
    path.write_text("\n".join(rows[1:] + rows[:1]) + "\n")  # same rows, another order
    _, problems = verify(root, ["xcopa"])
    assert problems == [
        "xcopa val: the files list different item ids (idx), so their lines are not translations of each other"
    ]


def test_fetch_offline_says_what_is_missing_in_one_line_per_file(tmp_path):
    result = cli("data", "fetch", "synonyms", "--data-dir", str(tmp_path / "real"))
    lines = [line for line in result.stdout.splitlines() if line.startswith("missing")]
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stdout + result.stderr
    assert lines[0].startswith(f"missing synonyms/counterfitted_neighbors.json (from {COUNTER_FITTED_URL}): URLError")
    assert "the source could not be reached: rerun `python -m xltlib data fetch synonyms" in lines[0]
    assert "1 file(s) missing" in result.stdout


def test_verify_checks_the_shared_layout_which_has_no_training_sets(shared_data):
    assert detect_layout(shared_data) == "shared"
    reports, problems = verify(shared_data, layout="shared")
    assert all(report.ok for report in reports) and not problems
    paths = {report.spec.path for report in reports}
    assert {"xnli/xtreme/test-de.tsv", "pawsx/xtreme/test-de.tsv", "pawsx/paws-wiki-en/train-source.tsv"} <= paths
    reports, _ = verify(shared_data, ["xnli", "pawsx", "xcopa"], layout="fetched")
    missing = {report.spec.path: report.problem for report in reports if not report.ok}
    assert set(missing) == {"xnli/train-en.tsv", "pawsx/train-en.tsv", "xcopa/siqa/train.jsonl"} | {
        f"pawsx/test-labeled/test-{lang}.tsv" for lang in ("es", "fr", "ja", "ko")
    }
    assert (
        "`python -m xltlib data fetch xcopa` gets it from hub lighteval/siqa (default, train)"
        in missing["xcopa/siqa/train.jsonl"]
    )
    with pytest.raises(XltError, match="unknown data layout 'fetch' \\(did you mean 'fetched'\\?\\)"):
        verify(shared_data, layout="fetch")


def test_the_fetched_layout_is_what_fetch_writes_and_every_file_is_in_a_layout():
    specs = [spec for item in ITEMS for spec in ITEMS[item]()]
    assert all(spec.in_layout("fetched") or spec.in_layout("shared") for spec in specs)
    fetched = {spec.path for spec in specs if spec.in_layout("fetched")}
    assert fetched == {spec.path for spec in specs if spec.source is not None}
    assert {"xnli/train-en.tsv", "pawsx/train-en.tsv", "xcopa/siqa/train.jsonl"} <= fetched
    assert not any("/xtreme/test-" in path or path.endswith("_tst.jsonl") for path in fetched)  # no hub serves them
    rows = {spec.path: spec.rows for spec in specs}
    assert (rows["xnli/train-en.tsv"], rows["pawsx/train-en.tsv"], rows["xcopa/siqa/train.jsonl"]) == (
        392_702,
        49_401,
        33_410,
    )


def test_socialiqa_is_a_first_stage_not_a_study_task(tmp_path):
    from xltlib.config import RunConfig
    from xltlib.run_data import load_run_data

    config = RunConfig(task="siqa", model="xlm-roberta-base", method="pretrained")
    with pytest.raises(XltError, match="task siqa has no parallel sentences.*first_stage_file"):
        load_run_data(config)
