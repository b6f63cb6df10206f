"""The quick real profile end to end: the xtreme experiments marked quick, a stand-in model, ../shared/data, the
book."""

import shutil
from pathlib import Path

import nbformat
import pytest

from xltlib.report import batch
from xltlib.report.book import build_book, ensure_mathjax, write_reproducibility

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
        text = "\n".join(output.get("data", {}).get("text/markdown", "") for output in outputs)
        if name != "synthesis":
            assert "protocol **" in text and "Spearman ρ between them" in text, (
                name
            )  # protocol named; Tatoeba beside the task's
    write_reproducibility(tmp_path, "runs-quick")
    site = build_book(tmp_path)
    for page in [site.parent / "book" / "chapters" / f"{name}.html" for name in (*CHAPTERS, "synthesis")]:
        assert "Traceback" not in page.read_text(encoding="utf-8"), page.name
