"""Task registry and loaders, against the real XNLI / PAWS-X files and small temp files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from xltlib.data.loading import load_split, load_train_file, read_tsv, require_labels
from xltlib.data.parallel import parallel_corpus, parallel_rows
from xltlib.data.tasks import TASKS, Task, get_task, local_split_path, register_task
from xltlib.errors import XltError

XNLI, PAWSX = TASKS["xnli"], TASKS["pawsx"]


def assert_clean_frame(df: pd.DataFrame, rows: int) -> None:
    assert list(df.columns) == ["text_a", "text_b", "label"]
    assert len(df) == rows
    assert str(df["label"].dtype) == "Int64"
    for col in ("text_a", "text_b"):
        assert df[col].map(lambda s: isinstance(s, str) and s != "" and "\r" not in s).all()


# --- registry -------------------------------------------------------------------------


def test_registry_pins_hub_ids_and_label_order():
    assert XNLI.labels == ("entailment", "neutral", "contradiction")
    assert XNLI.hub_id == "facebook/xnli" and len(XNLI.languages) == 15
    assert PAWSX.labels == ("0", "1") and PAWSX.hub_id == "google-research-datasets/paws-x"
    assert XNLI.label_ids()["contradictory"] == 2


def test_unknown_task_and_language_suggest_near_miss():
    with pytest.raises(XltError, match=r"unknown task 'xnl' \(did you mean 'xnli'\?\)"):
        get_task("xnl")
    with pytest.raises(XltError, match=r"language 'enn' \(did you mean 'en'\?\)"):
        load_split(XNLI, "enn", "dev", data_dir="/nonexistent")
    with pytest.raises(XltError, match=r"split 'deev' \(did you mean 'dev'\?\)"):
        load_split(XNLI, "en", "deev", data_dir="/nonexistent")


def test_register_task_adds_and_refuses_redefinition(monkeypatch):
    monkeypatch.setattr("xltlib.data.tasks.TASKS", dict(TASKS))
    syn = Task("toy-nli", ("en", "xx"), XNLI.labels, "", ("premise", "hypothesis"))
    register_task(syn)
    assert get_task("toy-nli") is syn
    register_task(syn)  # same definition again is fine
    with pytest.raises(ValueError, match="already registered"):
        register_task(Task("toy-nli", ("en",), XNLI.labels, "", ("premise", "hypothesis")))


def test_import_stays_light():
    code = "import sys, xltlib.data.tasks; print(sorted({'torch', 'transformers', 'datasets'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "[]"


# --- real files -----------------------------------------------------------------------


def test_xnli_dev_all_languages_balanced_and_parallel(shared_data):
    folder = shared_data / "xnli" / "xtreme"
    en = load_split(XNLI, "en", "dev", data_dir=folder)
    new_premise = en["text_a"] != en["text_a"].shift()
    for lang in XNLI.languages:
        df = load_split(XNLI, lang, "dev", data_dir=folder)
        assert_clean_frame(df, 2490)
        assert df["label"].value_counts().to_dict() == {0: 830, 1: 830, 2: 830}
        assert df.attrs["source"] == str(folder / f"dev-{lang}.tsv")
        # 15-way parallel: same label and same premise grouping on every line
        assert (df["label"] == en["label"]).all()
        assert (new_premise == (df["text_a"] != df["text_a"].shift())).all()
    assert en["text_a"][0] == "And he said, Mama, I'm home."
    assert en["label"][0] == XNLI.labels.index("neutral")


def test_xnli_xtreme_test_is_unlabeled_and_refused(shared_data):
    folder = shared_data / "xnli" / "xtreme"
    for lang in XNLI.languages:
        df = load_split(XNLI, lang, "test", data_dir=folder)
        assert_clean_frame(df, 5010)
        assert df["label"].isna().all()
    with pytest.raises(XltError, match=r"test-zh.tsv \(.*xnli/xtreme\) has no label") as err:
        require_labels(df)
    assert "--eval-split dev" in str(err.value)
    with pytest.raises(XltError, match="my split has no label"):
        require_labels(df, "my split")


def test_xnli_labeled_test_loads(shared_data):
    folder = shared_data / "xnli" / "test-labeled"
    unlabeled = load_split(XNLI, "en", "test", data_dir=shared_data / "xnli" / "xtreme")
    for lang in ("en", "de", "sw"):
        df = load_split(XNLI, lang, "test", data_dir=folder)
        assert_clean_frame(df, 5010)
        require_labels(df)
        assert df["label"].value_counts().to_dict() == {0: 1670, 1: 1670, 2: 1670}
    en = load_split(XNLI, "en", "test", data_dir=folder)
    assert (en[["text_a", "text_b"]] == unlabeled[["text_a", "text_b"]]).all().all()


def test_pawsx_files(shared_data):
    folder = shared_data / "pawsx"
    for lang in PAWSX.languages:
        dev = load_split(PAWSX, lang, "dev", data_dir=folder / "xtreme")
        assert_clean_frame(dev, 2000)
        assert set(dev["label"]) == {0, 1}
        test = load_split(PAWSX, lang, "test", data_dir=folder / "xtreme")
        assert_clean_frame(test, 2000)
        assert test["label"].isna().all()
    # header row + id column: the id must not leak into text_a, the header not into the rows
    de = load_split(PAWSX, "de", "test", data_dir=folder / "test-labeled")
    assert_clean_frame(de, 2000)
    assert set(de["label"]) == {0, 1}
    assert not de["text_a"].str.fullmatch(r"\d+|sentence1").any()
    assert de["text_a"][0].startswith("Die Ausnahme war")
    assert (de["text_a"] == load_split(PAWSX, "de", "test", data_dir=folder / "xtreme")["text_a"]).all()
    # quotes are plain characters (QUOTE_NONE): a field starting with '"' keeps it
    assert de["text_a"].str.startswith('"').any()
    en = load_split(PAWSX, "en", "test", data_dir=folder / "test-labeled", limit=10)
    assert_clean_frame(en, 10)
    require_labels(en)


def test_train_source_four_columns_no_header(shared_data):
    df = load_train_file(PAWSX, shared_data / "pawsx" / "paws-wiki-en" / "train-source.tsv")
    assert_clean_frame(df, 8000)
    require_labels(df)
    assert df["label"].value_counts().to_dict() == {0: 4464, 1: 3536}
    assert df["text_a"][0].startswith("This was a series of nested angular standards")
    assert not df["text_a"].str.fullmatch(r"\d+").any()


def test_local_split_path_layouts(shared_data, tmp_path):
    assert local_split_path(XNLI, shared_data / "xnli" / "xtreme", "dev", "fr").name == "dev-fr.tsv"
    (tmp_path / "xnli").mkdir()
    nested = tmp_path / "xnli" / "dev-en.tsv"
    nested.write_text("a\tb\tneutral\n")
    assert local_split_path(XNLI, tmp_path, "dev", "en") == nested


def test_missing_file_names_path_and_available_languages(shared_data):
    folder = shared_data / "pawsx" / "test-labeled"
    with pytest.raises(XltError) as err:
        load_split(PAWSX, "fr", "test", data_dir=folder)
    msg = str(err.value)
    assert str(folder / "test-fr.tsv") in msg
    assert "for: de, en, zh" in msg
    assert "download_data.sh" in msg


def test_missing_folder(tmp_path):
    with pytest.raises(XltError, match=r"data folder .*nowhere does not exist; .*facebook/xnli"):
        load_split(XNLI, "en", "dev", data_dir=tmp_path / "nowhere")


# --- read_tsv edge cases on temp files ------------------------------------------------


def test_bad_label_names_file_line_and_suggestion(tmp_path):
    f = tmp_path / "dev-en.tsv"
    f.write_text("a\tb\tentailment\nc\td\tcontradictory\ne\tf\tneutrall\n")
    with pytest.raises(
        XltError, match=r"dev-en.tsv line 3: unknown xnli label 'neutrall' \(did you mean 'neutral'\?\)"
    ):
        read_tsv(f, XNLI)
    f.write_text("a\tb\tentailment\nc\td\tcontradictory\n")
    assert list(read_tsv(f, XNLI)["label"]) == [0, 2]


def test_wrong_column_count_names_line(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_text("a\tb\t1\r\nc\td\r\n")
    with pytest.raises(XltError, match=r"x.tsv line 2: 2 tab-separated columns, expected 3"):
        read_tsv(f, PAWSX)
    f.write_text("only one column\n")
    with pytest.raises(XltError, match=r"x.tsv line 1: 1 tab-separated columns"):
        read_tsv(f, PAWSX)


def test_empty_header_only_and_missing_files(tmp_path):
    f = tmp_path / "empty.tsv"
    f.write_text("")
    with pytest.raises(XltError, match="empty.tsv has no data rows"):
        read_tsv(f, PAWSX)
    f.write_text("sentence1\tsentence2\tlabel\n")
    with pytest.raises(XltError, match="has no data rows"):
        read_tsv(f, PAWSX)
    with pytest.raises(XltError, match="training file .*gone.tsv does not exist"):
        load_train_file(PAWSX, tmp_path / "gone.tsv")


def test_train_file_requires_labels(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text('premise\thypothesis\n"quoted\tplain\n')
    with pytest.raises(XltError, match="train.tsv has no label column"):
        load_train_file(XNLI, f)
    f.write_text('premise\thypothesis\tlabel\n"quoted\tplain\tneutral\n')
    df = load_train_file(XNLI, f)
    assert df["text_a"][0] == '"quoted' and df["label"][0] == 1


def test_require_labels_refuses_partial_labels():
    df = pd.DataFrame({"text_a": ["a", "b"], "text_b": ["c", "d"], "label": pd.array([1, None], dtype="Int64")})
    with pytest.raises(XltError, match="labels on only 1 of 2 rows"):
        require_labels(df, "mixed")


# --- hub path -------------------------------------------------------------------------


def test_hub_load_maps_columns_and_split(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(path, name, split, revision=None):
        calls.append((path, name, split))
        features = datasets.Features(
            {
                "premise": datasets.Value("string"),
                "hypothesis": datasets.Value("string"),
                "label": datasets.ClassLabel(names=list(XNLI.labels)),
            }
        )
        return datasets.Dataset.from_dict(
            {"premise": ["p0", "p1", "p2"], "hypothesis": ["h0", "h1", "h2"], "label": [2, 0, 1]}, features=features
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    df = load_split(XNLI, "de", "dev", limit=2)
    assert calls == [("facebook/xnli", "de", "validation")]
    assert df.to_dict("list") == {"text_a": ["p0", "p1"], "text_b": ["h0", "h1"], "label": [2, 0]}
    assert str(df["label"].dtype) == "Int64" and df.attrs["source"] == "facebook/xnli"


def test_hub_unlabeled_and_errors(monkeypatch):
    datasets = pytest.importorskip("datasets")
    data = {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [-1, -1]}
    monkeypatch.setattr(
        datasets, "load_dataset", lambda path, name, split, revision=None: datasets.Dataset.from_dict(data)
    )
    df = load_split(PAWSX, "ja", "test")
    assert df["label"].isna().all()
    with pytest.raises(XltError, match="google-research-datasets/paws-x has no label"):
        require_labels(df)
    data["label"] = [0, 5]
    with pytest.raises(XltError, match="label id 5 outside 0..1"):
        load_split(PAWSX, "ja", "train")

    def offline(path, name, split, revision=None):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(XltError, match=r"could not load facebook/xnli \(en, train\).*no network.*--data-dir"):
        load_split(XNLI, "en", "train")


# --- parallel sentences for alignment -----------------------------------------------


def test_xnli_parallel_corpus_stacks_premises_and_hypotheses_line_aligned(shared_data):
    folder = shared_data / "xnli" / "xtreme"
    corpus = parallel_corpus(XNLI, ("en", "de", "zh"), folder)
    assert list(corpus.columns) == ["en", "de", "zh"] and len(corpus) == 2 * 5010
    test_de = load_split(XNLI, "de", "test", folder)
    assert corpus["de"].iloc[7] == test_de["text_a"].iloc[7]
    assert corpus["de"].iloc[5010 + 7] == test_de["text_b"].iloc[7]
    assert parallel_corpus(XNLI, ("en", "de"), folder, limit=100).equals(corpus[["en", "de"]].iloc[:100])
    # XNLI premises repeat once per hypothesis: each pair keeps a sentence once.
    rows = parallel_rows(corpus["en"], corpus["de"])
    assert corpus["en"].iloc[rows].is_unique and corpus["de"].iloc[rows].is_unique
    assert 5010 < len(rows) < 2 * 5010


def test_pawsx_parallel_corpus_uses_first_sentences_only(shared_data):
    corpus = parallel_corpus(PAWSX, ("en", "ja"), shared_data / "pawsx" / "xtreme")
    assert len(corpus) == 2000
    assert corpus["ja"].equals(load_split(PAWSX, "ja", "test", shared_data / "pawsx" / "xtreme")["text_a"])


def test_parallel_rows_drop_empty_and_repeated_sentences():
    src = pd.Series(["a", "b", "a", "", "c", "d"])
    tgt = pd.Series(["x", "y", "x", "z", " ", "y"])
    assert list(parallel_rows(src, tgt)) == [0, 1]


def test_misaligned_parallel_files_are_refused(tmp_path):
    (tmp_path / "test-en.tsv").write_text("a\tb\nc\td\n")
    (tmp_path / "test-de.tsv").write_text("a\tb\n")
    with pytest.raises(XltError, match="not line-aligned.*en 2, de 1"):
        parallel_corpus(PAWSX, ("en", "de"), tmp_path)
