"""The papermill batch and the book, on the quick synthetic profile in a scratch copy of the repo."""

import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from xltlib.config import RunConfig
from xltlib.errors import XltError
from xltlib.report import batch
from xltlib.report.book import build_book, ensure_mathjax, write_reproducibility
from xltlib.report.experiment import experiment_configs
from xltlib.synthetic.shipped import shipped_draws

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = {
    "profile": "synthetic",
    "experiments": {
        "nli": {
            "title": "Quick NLI",
            "parameters": {
                "task": "syn-nli",
                "methods": ["standard", "rs_rp"],
                "seeds": [1],
                "doses": {"rs_rp": [0, 0.5, 1]},
            },
        },
        "broken": {
            "title": "Broken on purpose",
            # a value only RunConfig checks: the file is valid, the chapter's notebook fails
            "parameters": {"task": "syn-nli", "methods": ["pgd"], "overrides": {"batch_size": 0}},
        },
        "paws": {"title": "Quick PAWS", "parameters": {"task": "syn-paws", "methods": ["standard"], "seeds": [1]}},
    },
}


def scratch_repo(root: Path) -> Path:
    """The files a batch and a book build read, copied so the real book/ is never touched."""
    for name in ("notebooks", "book"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("chapters", "_build"))
    shutil.copy(REPO / "_config.yml", root)
    (root / "experiments.yaml").write_text(yaml.safe_dump(EXPERIMENTS, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One quick batch (one experiment fails on purpose), then the book: shared by the slow tests."""
    ensure_mathjax(REPO)  # copied with book/
    root = scratch_repo(tmp_path_factory.mktemp("repo"))
    manifest = batch.run_batch(root / "experiments.yaml", root=root, quick=True)
    write_reproducibility(root, "runs-quick")
    return root, manifest, build_book(root)


def saved_parameters(root: Path, name: str) -> dict:
    return json.loads((root / batch.MANIFEST).read_text())[name]["parameters"]


def test_calibration_reads_the_standard_runs_every_synthetic_task_has():
    def experiment(task, methods, seeds):
        return batch.Experiment(task, task, {"task": task, "methods": methods, "seeds": seeds})

    study = [
        experiment("syn-nli", ["standard", "pgd"], [1, 2, 3]),
        experiment("syn-paws", ["standard"], [2, 3, 4]),
        experiment("syn-nli", ["rs_rp"], [5]),
    ]
    assert batch.calibration_parameters(study, quick=False) == {
        "tasks": ["syn-nli", "syn-paws"],
        "seeds": [2, 3],
        "quick": False,
    }
    assert batch.calibration_parameters(study, quick=True) is None  # the quick runs (first seeds 1 and 2) share none
    assert batch.calibration_parameters([experiment("syn-nli", ["pgd"], [1])], quick=False) is None
    assert batch.calibration_parameters([experiment("xnli", ["standard"], [1])], quick=False) is None


def test_run_ids_are_each_run_then_their_encoders_pretrained_runs_once():
    configs = [
        RunConfig(task="xnli", model="xlm-roberta-base", method=method, seed=seed)
        for method in ("standard", "pgd")
        for seed in (1, 2)
    ]
    ids = batch.run_ids(configs)
    assert ids == [config.run_id() for config in configs] + [configs[0].pretrained().run_id()]


def outputs(notebook_path: Path):
    notebook = nbformat.read(notebook_path, as_version=4)
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


@pytest.mark.slow
def test_quick_batch_executes_chapters_and_reports_the_failure(built):
    root, manifest, index = built
    assert {name: entry["status"] for name, entry in manifest.items()} == {
        "nli": "ok",
        "broken": "failed",
        "paws": "ok",
        "calibration": "ok",
        "synthesis": "ok",
    }
    assert "batch_size must be >= 1" in manifest["broken"]["error"]
    for name, figures in (("nli", 5), ("paws", 3), ("calibration", 1), ("synthesis", 4)):
        chapter = outputs(root / batch.CHAPTERS / f"{name}.ipynb")
        assert not [o for o in chapter if o.output_type == "error"], name
        assert sum("image/png" in o.get("data", {}) for o in chapter) >= figures, name
    assert saved_parameters(root, "calibration") == {
        "tasks": ["syn-nli", "syn-paws"],
        "seeds": [1],
        "quick": True,
        "runs_dir": "runs-quick",
        "cache_dir": "cache",
    }
    study = json.loads((root / batch.STUDY_RUNS).read_text())
    analysed = saved_parameters(root, "synthesis")["run_ids"]
    assert set(analysed) <= set(study["study"])  # the study: the experiments' runs and the calibration's
    assert {run_id.split("-")[2] for run_id in analysed} == {"standard", "rs_rp", "pretrained"}  # those of nli and paws
    computed = {path.parent.name for path in (root / "runs-quick").glob("*/metrics.parquet")}
    assert set(analysed) <= computed
    assert computed == set(study["study"])  # the chapters read the batch's runs and computed none of their own
    page = (root / "book" / "reproducibility.md").read_text()
    assert "runs of the study" in page and all(f"`{run_id}`" in page for run_id in study["study"])
    findings = outputs(root / batch.CHAPTERS / "synthesis.ipynb")[-1]["data"]["text/markdown"]
    assert "**syn-nli.**" in findings and "**syn-paws.**" in findings and "Seeds: 1" in findings
    broken = nbformat.read(root / batch.CHAPTERS / "broken.ipynb", as_version=4)
    assert broken.cells[0].source == "# Broken on purpose" and "failed" in broken.cells[1].source
    saved = json.loads((root / batch.MANIFEST).read_text())
    assert saved["nli"]["parameters"]["seeds"] == [1] and saved["nli"]["seconds"] > 0
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [entry["file"] for entry in toc["chapters"]]
    assert files == [
        "book/methods",
        "book/chapters/calibration",
        "book/chapters/nli",
        "book/chapters/broken",
        "book/chapters/paws",
        "book/chapters/synthesis",
        "book/design",
        "book/real-profile",
        "book/speed",
        "book/usage",
        "book/reproducibility",
        "book/design-notes",
    ]
    assert index.exists() and (root / "_build/html/book/chapters/broken.html").exists()


@pytest.mark.slow
def test_rerun_skips_finished_chapters_and_resumes_a_killed_one(built, caplog):
    root, manifest, _ = built
    saved = json.loads((root / batch.MANIFEST).read_text())
    saved["paws"]["status"] = "running"  # what a batch killed during this chapter leaves
    batch._write_manifest(root, saved)  # recorded, as the batch writes it
    before = {name: (root / batch.CHAPTERS / f"{name}.ipynb").stat().st_mtime for name in ("nli", "paws")}
    with caplog.at_level("INFO", logger="xltlib"):
        again = batch.run_batch(root / "experiments.yaml", root=root, quick=True, only=["nli", "paws"])
    assert "nli: finished earlier with the same parameters; skipped" in caplog.text
    assert (root / batch.CHAPTERS / "nli.ipynb").stat().st_mtime == before["nli"]
    assert (root / batch.CHAPTERS / "paws.ipynb").stat().st_mtime > before["paws"]
    assert again["paws"]["status"] == "ok"


def open_page(driver, page: Path, ready_script: str, timeout: float = 30):
    """Navigate to ``page``; poll ``ready_script`` (returns ``[ready, detail]``) until ready; return the detail.

    Polled rather than read once: a single read right after get() found no figures in one CI run
    and in two of about a dozen local runs, though the same page, reopened, had them all.
    """
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.as_uri())
    state = {}

    def ready(driver):
        state["url"], state["detail"] = driver.current_url, None
        if state["url"] != page.as_uri() or driver.execute_script("return document.readyState") != "complete":
            return False
        done, state["detail"] = driver.execute_script(ready_script)
        return done

    try:
        WebDriverWait(driver, timeout).until(ready)
    except TimeoutException:
        pytest.fail(f"{page.name} not ready after {timeout} s: at {state['url']}, {state['detail']}")
    return state["detail"]


@pytest.mark.slow
def test_book_opens_in_a_headless_browser_with_math_and_figures(built, tmp_path):
    """Chromium renders a chapter: every figure is a loaded image, math is typeset, no traceback."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    root, _, _ = built
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2400"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        open_page(
            driver,
            root / "_build/html/book/chapters/nli.html",
            (
                "const sizes = Array.from(document.querySelectorAll('.cell_output img')).map(i => [i.complete, "
                "i.naturalWidth]);"
                "return [sizes.length >= 3 && sizes.every(([done, width]) => done && width > 0), sizes];"
            ),
        )
        assert "Traceback" not in driver.find_element("tag name", "body").text
        images, tables = driver.execute_script(
            "const out = e => e.closest('.cell_output');"
            "return [Array.from(document.querySelectorAll('.cell_output img')).map(i => "
            "[i.getBoundingClientRect().width, i.naturalWidth]), "
            "Array.from(document.querySelectorAll('.cell_output table')).map(t => "
            "[t.scrollWidth, out(t).clientWidth])];"
        )
        assert all(shown >= 0.5 * natural for shown, natural in images), images  # no figure shrunk to a thumbnail
        assert tables and all(width <= room + 1 for width, room in tables), tables  # no table scrolls sideways
        driver.save_screenshot(str(tmp_path / "chapter.png"))
        assert (tmp_path / "chapter.png").stat().st_size > 10_000
        open_page(
            driver,
            root / "_build/html/book/methods.html",
            "return [typeof MathJax !== 'undefined' && MathJax.startup !== undefined, null];",
        )
        typeset = driver.execute_script(
            "return new Promise(done => MathJax.startup.promise.then(() => "
            "done(document.querySelectorAll('mjx-container').length)));"
        )
        assert typeset >= 5
    finally:
        driver.quit()


def test_experiment_files_are_validated_before_anything_runs(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"experiments": {"x": {"parameters": {"task": "syn-nli", "seed": [1]}}}}))
    with pytest.raises(XltError, match="did you mean 'seeds'"):
        batch.load_experiments(path)
    path.write_text(yaml.safe_dump({"experiments": {"Bad Name": {}}}))
    with pytest.raises(XltError, match="lower-case letters"):
        batch.load_experiments(path)
    with pytest.raises(XltError, match="not found; the project's are notebooks/experiments/"):
        batch.load_experiments(tmp_path / "missing.yaml")
    with pytest.raises(XltError, match="no experiment 'nil'.*did you mean 'nli'"):
        (tmp_path / "ok.yaml").write_text(yaml.safe_dump(EXPERIMENTS))
        batch.run_batch(tmp_path / "ok.yaml", root=tmp_path, only=["nil"])


@pytest.mark.parametrize("name", ["synthetic", "xtreme"])
def test_the_project_experiment_files_load(name):
    profile, experiments = batch.load_experiments(REPO / "notebooks" / "experiments" / f"{name}.yaml")
    assert profile == name and experiments
    for experiment in experiments:
        parameters = experiment.parameters
        five = {"standard", "pgd", "freelb", "rs_rp", "rs_da"}
        arms = five | ({"standard_matched"} if parameters.get("protocol") == "huang2021" else set())
        assert set(parameters["methods"]) == arms  # huang2021's rs_da copies come with a step-matched standard arm
        draws = parameters.get("draws") or [None]
        replicates = len(parameters["seeds"]) * len(shipped_draws() if draws == "shipped" else draws)
        assert replicates >= 3  # every method effect has an interval over runs


def test_a_missing_kernel_fails_before_execution(tmp_path):
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(EXPERIMENTS))
    with pytest.raises(XltError, match="kernel 'no-such-kernel' is not installed"):
        batch.run_batch(tmp_path / "ok.yaml", root=tmp_path, kernel="no-such-kernel")
    assert not (tmp_path / batch.MANIFEST).exists()


def test_cli_lists_the_book_commands():
    done = subprocess.run(
        [".venv/bin/python" if (REPO / ".venv").exists() else "python", "-m", "xltlib", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert all(command in done.stdout for command in ("batch", "book", "study"))


@pytest.mark.parametrize(
    "document, message",
    [
        (
            {"profil": "synthetic", "experiments": {"x": {}}},
            "unknown key 'profil' in the experiments file.*did you mean 'profile'",
        ),
        (
            {"experiments": {"x": {"parameter": {"task": "syn-nli"}}}},
            "unknown key 'parameter' in .* at experiments.x.*did you mean 'parameters'",
        ),
        (
            {"experiments": {"x": {"parameters": {"task": "syn-nli", "overrides": {"learning_rat": 1e-3}}}}},
            "experiment 'x': overrides has 'learning_rat'.*did you mean 'learning_rate'",
        ),
        (
            {
                "experiments": {
                    "x": {
                        "parameters": {"task": "syn-nli", "methods": ["pgd"], "method_params": {"pgd": {"epss": 0.1}}}
                    }
                }
            },
            "experiment 'x': method 'pgd' has no parameter 'epss'.*did you mean 'eps'",
        ),
        (
            {
                "experiments": {
                    "x": {"parameters": {"task": "syn-nli", "methods": ["pgd"], "method_params": {"pdg": {}}}}
                }
            },
            "method_params names 'pdg'.*did you mean 'pgd'",
        ),
        ({"experiments": {"x": {"parameters": {"task": "syn-nil"}}}}, "unknown task 'syn-nil'.*did you mean 'syn-nli'"),
        ({"profile": "real", "experiments": {"x": {}}}, "profile: Input should be 'synthetic', 'xtreme' or 'e5'"),
        (
            {
                "experiments": {
                    "x": {"parameters": {"task": "syn-nli", "methods": ["pgd"], "method_params": {"pgd": {"eps": -1}}}}
                }
            },
            "experiment 'x': method 'pgd': eps must be > 0",
        ),
    ],
)
def test_a_misspelt_key_at_any_level_names_itself_before_any_run(tmp_path, monkeypatch, document, message):
    def no_execution(*args, **kwargs):
        raise AssertionError("a notebook was executed before the experiments file was checked")

    monkeypatch.setattr(batch, "execute", no_execution)
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(XltError, match=message) as raised:
        batch.run_batch(path, root=tmp_path)
    assert str(path) in str(raised.value)


@pytest.mark.slow
def test_the_shipped_e5_results_become_chapters_without_computing_a_run(tmp_path):
    root = scratch_repo(tmp_path)
    shutil.copytree(REPO / "data" / "e5-results", root / "data" / "e5-results")
    manifest: dict = {}
    chapters = batch.shipped_chapters(root, manifest, "e5", kernel=batch.KERNEL)
    assert [name for name, _ in chapters] == ["e5-xnli", "e5-pawsx", "e5-xcopa", "e5-synthesis"]
    for name, _ in chapters:
        assert manifest[name]["status"] == "ok", manifest[name]["error"]
        notebook = nbformat.read(root / batch.CHAPTERS / f"{name}.ipynb", as_version=4)
        outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
        assert not [o for o in outputs if o.output_type == "error" or "Traceback" in str(o.get("text", ""))], name
    assert not (root / "runs").exists() and not (root / "cache").exists()  # read, never computed
    toc = yaml.safe_load(batch.write_toc(root, [], manifest, parts={"e5": chapters}).read_text())
    files = [chapter["file"] for chapter in toc["chapters"]]
    assert files.index("book/e5-profile") + 1 == files.index("book/chapters/e5-xnli")


@pytest.mark.parametrize("draws, accepted", [("shipped", True), ([0, 2], True), ("all", False), ([], False)])
def test_draws_are_the_shipped_ones_or_a_list(tmp_path, draws, accepted):
    path = tmp_path / "e.yaml"
    parameters = {"task": "syn-nli", "methods": ["standard"], "seeds": [1], "draws": draws}
    path.write_text(yaml.safe_dump({"profile": "synthetic", "experiments": {"x": {"parameters": parameters}}}))
    if accepted:
        assert batch.load_experiments(path)[1][0].parameters["draws"] == draws
    else:
        with pytest.raises(XltError, match="draws must be 'shipped'"):
            batch.load_experiments(path)


def test_shipped_draws_resolve_to_every_shipped_draw():
    configs = experiment_configs("syn-nli", ["standard"], [1], draws="shipped")
    assert sorted(config.draw for config in configs) == shipped_draws()
    with pytest.raises(XltError, match="only for a synthetic task, without a model"):
        experiment_configs("syn-nli", ["standard"], [1], model="elsewhere", draws="shipped")
