"""The quick real profile end to end: the xtreme experiments marked quick, a stand-in model, ../shared/data, the
book."""

import shutil
from pathlib import Path

import nbformat
import pytest

from xltlib.report import batch
from xltlib.report.book import build_book, ensure_mathjax, write_reproducibility
from xltlib.store import load_results

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = ("xnli-huang2021-xlmr-base", "pawsx-huang2021-xlmr-base", "xcopa-xtremer-xlmr-base")


@pytest.mark.slow
def test_quick_xtreme_study_builds_every_task_chapter_and_the_synthesis(shared_data, tmp_path):
    ensure_mathjax(REPO)
    for name in ("notebooks", "book"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("chapters", "_build"))
    shutil.copy(REPO / "_config.yml", tmp_path)
    manifest = batch.run_batch(tmp_path / "notebooks" / "experiments" / "xtreme.yaml", root=tmp_path, quick=True)
    assert {name: entry["status"] for name, entry in manifest.items()} == {
        **dict.fromkeys(CHAPTERS, "ok"),
        "synthesis": "ok",
    }
    for name in (*CHAPTERS, "synthesis"):
        notebook = nbformat.read(tmp_path / batch.CHAPTERS / f"{name}.ipynb", as_version=4)
        outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
        assert not [output for output in outputs if output.output_type == "error"], name
    for name in CHAPTERS:  # each chapter ran under its protocol and measured alignment on Tatoeba beside the task's
        assert manifest[name]["parameters"]["protocol"]
    results = load_results(tmp_path / "runs-quick")
    alignment = results[results.metric == "cosine_gap"]
    corpora = {task: set(rows.corpus) for task, rows in alignment.groupby("task")}
    assert all(found >= {"task", "tatoeba"} for found in corpora.values()) and len(corpora) == 3, corpora
    write_reproducibility(tmp_path, "runs-quick")
    site = build_book(tmp_path)
    for page in [site.parent / "book" / "chapters" / f"{name}.html" for name in (*CHAPTERS, "synthesis")]:
        assert "Traceback" not in page.read_text(encoding="utf-8"), page.name
