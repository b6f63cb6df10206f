"""The papermill batch: every experiment of an experiments file becomes one executed chapter.

``run_batch`` executes ``notebooks/experiment.ipynb`` once per experiment into
``book/chapters/<name>.ipynb`` (explicit kernel), then, for the synthetic profile,
``notebooks/calibration.ipynb`` (the benchmark's calibration, from the experiments' standard
runs), then ``notebooks/synthesis.ipynb``, and writes ``_toc.yml``. Each execution is
recorded in ``book/chapters/manifest.json`` (status, duration, parameters, error), and the
study's run ids in ``book/chapters/runs.json``: the synthesis analyses exactly the experiments'
runs and the reproducibility page lists the study's, whatever else the runs folder holds. A run
that failed does not stop the others: ``runs.json`` lists it under ``failed`` with its error (a
chapter that reads it fails in turn, saying why). A failing notebook does not stop the others:
its chapter opens with the failure. A finished experiment
with the same parameters is skipped unless ``force``; one left ``running`` by a killed batch
is executed again (its runs resume from the run cache, so finished runs cost nothing).
"""

from __future__ import annotations

import ast
import functools
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xltlib.config.experiments import RESERVED_NAMES, read_experiments_file
from xltlib.config.logistics import Logistics
from xltlib.errors import XltError, did_you_mean
from xltlib.files import atomic_write, atomic_write_json, atomic_write_text
from xltlib.grid import Engine, connect, run_grid
from xltlib.report.chapters import read_chapter_manifest, record_chapter, whole_chapter, write_chapter_manifest

log = logging.getLogger(__name__)

KERNEL = "xlt-robust-study"
REPO = Path(__file__).resolve().parents[2]
EXPERIMENT_NOTEBOOK = Path("notebooks/experiment.ipynb")
SYNTHESIS_NOTEBOOK = Path("notebooks/synthesis.ipynb")
CALIBRATION_NOTEBOOK = Path("notebooks/calibration.ipynb")
CHAPTERS = Path("book/chapters")
MANIFEST = CHAPTERS / "manifest.json"
STUDY_RUNS = CHAPTERS / "runs.json"
SYNTHESIS, CALIBRATION = RESERVED_NAMES
CALIBRATION_TITLE = "The synthetic benchmark: calibration"
FRONT_PAGES = ("book/intro", "book/methods")
BACK_PAGES = (
    "book/design",
    "book/real-profile",
    "book/speed",
    "book/usage",
    "book/reproducibility",
    "book/design-notes",
)


@dataclass(frozen=True)
class Experiment:
    """One chapter: a name (its file), a title, and the notebook's parameters."""

    name: str
    title: str
    parameters: dict[str, Any] = field(default_factory=dict)
    quick: bool = True  # run by --quick


def load_experiments(path: str | Path) -> tuple[str, list[Experiment]]:
    """The profile and experiments of an experiments file, every key checked before anything runs."""
    path = Path(path)
    if not path.is_file():
        known = sorted(p.name for p in (REPO / "notebooks" / "experiments").glob("*.yaml"))
        raise XltError(
            f"experiments file {path} not found; the project's are notebooks/experiments/{{{','.join(known)}}}"
        )
    parsed = read_experiments_file(path, list(notebook_parameters(REPO / EXPERIMENT_NOTEBOOK)))
    experiments = [
        Experiment(name, spec.title or name, dict(spec.parameters), spec.quick)
        for name, spec in parsed.experiments.items()
    ]
    return parsed.profile or "", experiments


@functools.cache  # read once per notebook: every experiment asks
def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The notebook's ``parameters``-tagged cell: each name and its default value (the one place that states it)."""
    import papermill

    return {name: ast.literal_eval(spec["default"]) for name, spec in papermill.inspect_notebook(str(notebook)).items()}


def with_notebook_defaults(parameters: dict[str, Any]) -> dict[str, Any]:
    """An experiment's parameters completed with the experiment notebook's defaults."""
    return {**notebook_parameters(REPO / EXPERIMENT_NOTEBOOK), **parameters}


def require_kernel(name: str) -> None:
    """Fail before any execution when the Jupyter kernel the chapters run on is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise XltError(
            f"Jupyter kernel {name!r} is not installed; `make setup` installs it "
            f"(or: python -m ipykernel install --sys-prefix --name {name})"
        ) from None


def read_manifest(root: Path) -> dict[str, Any]:
    return read_chapter_manifest(root / MANIFEST)


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    write_chapter_manifest(root / MANIFEST, manifest)


def _finish_chapter(output: Path, name: str, title: str, entry: dict[str, Any]) -> None:
    """Open the executed notebook with its title and, if it failed, a statement of the failure."""
    import nbformat

    notebook = nbformat.read(output, as_version=4)
    cells = [nbformat.v4.new_markdown_cell(f"# {title}")]
    if entry["status"] != "ok":
        cells.append(
            nbformat.v4.new_markdown_cell(
                f"```{{error}}\nThis experiment **failed** after {entry['seconds']:.0f} s: `{entry['error']}`.\n"
                "The cells below show how far it got; the other chapters are unaffected. "
                f"Rerun it with `python -m xltlib batch <experiments file> --only {name} --force`.\n```"
            )
        )
    notebook.cells = cells + notebook.cells
    nbformat.write(notebook, output)


def execute(
    notebook: Path, name: str, title: str, parameters: dict[str, Any], root: Path, kernel: str
) -> dict[str, Any]:
    """Execute ``notebook`` into ``book/chapters/<name>.ipynb``; return its manifest entry.

    The chapter is written whole or not at all, and a failed execution still writes one:
    it opens with the failure.
    """
    output = root / CHAPTERS / f"{name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {"status": "ok", "parameters": parameters, "error": None, "notebook": str(notebook)}

    def write(partial: Path) -> None:
        start = time.monotonic()
        entry.update(_execute_into(root / notebook, partial, parameters, kernel, root))
        entry["seconds"] = round(time.monotonic() - start, 1)
        _finish_chapter(partial, name, title, entry)

    atomic_write(output, write)
    record_chapter(output)
    return entry


def _execute_into(notebook: Path, partial: Path, parameters: dict[str, Any], kernel: str, root: Path) -> dict[str, Any]:
    """Run papermill into ``partial``; the manifest fields of a failure (an empty notebook if none was written)."""
    import nbformat
    import papermill

    try:
        papermill.execute_notebook(
            str(notebook),
            str(partial),
            parameters=parameters,
            kernel_name=kernel,
            cwd=str(root),
            progress_bar=sys.stderr.isatty(),
            report_mode=False,  # cell progress for a person, not for logs
        )
    except papermill.PapermillExecutionError as error:
        return {"status": "failed", "error": f"{error.ename}: {error.evalue}".strip()}
    except Exception as error:  # kernel died, notebook missing...: still a recorded, visible failure
        if not partial.exists():
            nbformat.write(nbformat.v4.new_notebook(), partial)
        return {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    return {}


def run_batch(
    experiments_file: str | Path,
    root: str | Path = REPO,
    force: bool = False,
    quick: bool = False,
    only: list[str] | None = None,
    kernel: str = KERNEL,
    runs_dir: str | None = None,
    cache_dir: str = "cache",
    engine: Engine = Engine(),
    recompute_stale: bool = False,
    with_shipped: tuple[str, ...] = (),
    logistics: Logistics = Logistics(),
) -> dict[str, Any]:
    """Compute every run the chapters need on ``engine``, then execute the experiments (and the synthesis) into
    chapters, which read those runs; write ``_toc.yml``; return the manifest. ``recompute_stale``: recompute
    the runs computed by other code (:func:`xltlib.store.is_stale`) too. ``with_shipped``: profiles whose
    shipped results (:mod:`xltlib.report.shipped`) become chapters too, after this batch's, computing nothing.
    ``logistics``: how the runs are computed (checkpoints, evaluation batches, device)."""
    root = Path(root).resolve()
    profile, experiments = load_experiments(experiments_file)
    experiments = [experiment for experiment in experiments if experiment.quick or not quick]  # --quick: those marked
    require_kernel(kernel)
    connect(engine)
    _check_only(only, [e.name for e in experiments], experiments_file)
    runs_dir = runs_dir or ("runs-quick" if quick else "runs")
    chosen = [e for e in experiments if not only or e.name in only]
    calibration = calibration_parameters(experiments, quick) if profile == "synthetic" else None
    grid = functools.partial(run_grid, engine=engine, logistics=logistics, recompute_stale=recompute_stale)
    analysed = _compute_runs(root, chosen, experiments, calibration, quick, runs_dir, cache_dir, grid)
    manifest = read_manifest(root)
    chapter = functools.partial(_run_one, root, manifest, kernel=kernel)
    for experiment in chosen:
        parameters = chapter_parameters(experiment, quick, runs_dir, cache_dir)
        chapter(experiment.name, experiment.title, EXPERIMENT_NOTEBOOK, parameters, force)
    if calibration is not None:  # always executed, like the synthesis: it reads runs the experiments made
        parameters = {**calibration, "runs_dir": runs_dir, "cache_dir": cache_dir}
        chapter(CALIBRATION, CALIBRATION_TITLE, CALIBRATION_NOTEBOOK, parameters, True)
    synthesis = {"runs_dir": runs_dir, "profile": "", "run_ids": analysed}  # the run ids select the runs
    chapter(SYNTHESIS, "Does alignment explain zero-shot accuracy?", SYNTHESIS_NOTEBOOK, synthesis, True)  # always
    parts = {profile: shipped_chapters(root, manifest, profile, kernel) for profile in with_shipped}
    write_toc(root, experiments, manifest, calibration=calibration is not None, parts=parts)
    return manifest


def _compute_runs(root, chosen, experiments, calibration, quick, runs_dir, cache_dir, grid) -> list:
    """Compute the chosen experiments' runs and the calibration's on ``engine``; record the study's run ids, those
    that failed (their errors) and those repaired (damaged files set aside and recomputed: the repairs), and return
    the run ids the synthesis reads (every experiment's). ``grid``: :func:`xltlib.grid.run_grid`, engine bound."""
    # the notebooks run in root: the grid resolves the same folders, so it computes the runs they will ask for
    calibrating = calibration_grid(calibration, str(root / cache_dir))
    chosen_runs = grid_configs(chosen, quick, runs_dir, str(root / cache_dir))
    outcomes = grid(chosen_runs + calibrating, str(root / runs_dir))
    analysed = run_ids(grid_configs(experiments, quick, runs_dir, str(root / cache_dir)))
    failed = {outcome.run_id: outcome.error for outcome in outcomes if outcome.status != "ok"}
    repaired = {outcome.run_id: list(outcome.repaired) for outcome in outcomes if outcome.repaired}
    (root / STUDY_RUNS).parent.mkdir(parents=True, exist_ok=True)
    study = sorted({*analysed, *run_ids(calibrating)})
    atomic_write_json(root / STUDY_RUNS, {"runs_dir": runs_dir, "study": study, "failed": failed, "repaired": repaired})
    return analysed


def chapter_parameters(experiment: Experiment, quick: bool, runs_dir: str, cache_dir: str) -> dict[str, Any]:
    """The parameters an experiment's chapter is executed with: its experiments-file entry, and where it reads."""
    parameters = {**experiment.parameters, "quick": quick, "runs_dir": runs_dir, "cache_dir": cache_dir}
    if quick:  # one seed on the tiny profile's own encoder
        parameters |= {"seeds": with_notebook_defaults(experiment.parameters)["seeds"][:1], "draws": None}
    return parameters


def _check_only(only: list[str] | None, names: list[str], experiments_file: str | Path) -> None:
    for name in only or []:
        if name not in names:
            raise XltError(
                f"no experiment {name!r} in {experiments_file}{did_you_mean(name, names)}; it has: {', '.join(names)}"
            )


def shipped_chapters(root: Path, manifest: dict[str, Any], profile: str, kernel: str) -> list[tuple[str, str]]:
    """Execute the chapters of ``profile``'s experiments and its synthesis on its shipped run records; ``(name, title)``
    of each.

    The records are checked against their manifest first; nothing is computed, so the chapters take
    seconds, and they are always executed: re-shipped records keep their folder, hence the parameters.
    """
    from xltlib.report.shipped import shipped_folder

    runs_dir = str(shipped_folder(profile, root).relative_to(root))
    _, experiments = load_experiments(root / "notebooks" / "experiments" / f"{profile}.yaml")
    chapters = []
    for experiment in experiments:
        parameters = {**experiment.parameters, "runs_dir": runs_dir, "shipped": True}
        _run_one(
            root, manifest, experiment.name, experiment.title, EXPERIMENT_NOTEBOOK, parameters, True, kernel=kernel
        )
        chapters.append((experiment.name, experiment.title))
    name, title = f"{profile}-{SYNTHESIS}", f"Does alignment explain zero-shot accuracy? The {profile} profile"
    _run_one(
        root, manifest, name, title, SYNTHESIS_NOTEBOOK, {"runs_dir": runs_dir, "profile": ""}, True, kernel=kernel
    )
    return chapters + [(name, title)]


def grid_configs(experiments: list[Experiment], quick: bool, runs_dir: str, cache_dir: str) -> list:
    """Every run the experiments' chapters will read, in the order they appear: each chapter's grid, built by
    :func:`~xltlib.report.experiment.experiment_grid` from the very parameters the chapter is executed with."""
    from xltlib.report.experiment import experiment_grid

    configs = []
    for experiment in experiments:
        parameters = with_notebook_defaults(chapter_parameters(experiment, quick, runs_dir, cache_dir))
        try:
            configs += experiment_grid({**parameters, "cache_dir": cache_dir})
        except XltError as error:  # its chapter will fail with this error, and say so; the others go on
            log.warning("%s: no runs dispatched: %s", experiment.name, error)
    return configs


def calibration_grid(calibration: dict[str, Any] | None, cache_dir: str) -> list:
    """The calibration chapter's runs (none without a calibration chapter)."""
    from xltlib.report.experiment import calibration_configs

    if calibration is None:
        return []
    grids = calibration_configs(calibration["tasks"], calibration["seeds"], None, calibration["quick"], cache_dir)
    return [config for grid in grids.values() for config in grid]


def run_ids(configs: list) -> list[str]:
    """The runs ``configs`` compute and read: each one's, then their encoders' pre-trained runs."""
    return list(dict.fromkeys([c.run_id() for c in configs] + [c.pretrained().run_id() for c in configs]))


def calibration_parameters(experiments: list[Experiment], quick: bool) -> dict[str, Any] | None:
    """The calibration chapter's tasks and seeds: the experiments' ``standard`` runs on synthetic tasks.

    Seeds are those every such task has (the first one with ``quick``, as the experiments
    then run); None when no experiment runs ``standard`` on a synthetic task.
    """
    from xltlib.data.tasks import get_task

    seeds_by_task: dict[str, set[int]] = {}
    for experiment in experiments:
        parameters = with_notebook_defaults(experiment.parameters)
        task = parameters["task"]
        if get_task(task).profile != "synthetic" or "standard" not in parameters["methods"]:
            continue
        seeds = list(parameters["seeds"])[: 1 if quick else None]
        seeds_by_task.setdefault(task, set()).update(seeds)
    if not seeds_by_task:
        return None
    shared = sorted(set.intersection(*seeds_by_task.values()))
    return {"tasks": sorted(seeds_by_task), "seeds": shared, "quick": quick} if shared else None


def _run_one(root, manifest, name, title, notebook, parameters, force, *, kernel) -> None:
    previous = manifest.get(name)
    chapter = root / CHAPTERS / f"{name}.ipynb"
    if (
        not force
        and previous
        and previous["status"] == "ok"
        and previous["parameters"] == parameters
        and whole_chapter(chapter)  # a damaged one is set aside and executed again
    ):
        log.info("%s: finished earlier with the same parameters; skipped (use --force to rerun)", name)
        return
    manifest[name] = {"status": "running", "parameters": parameters, "title": title}
    _write_manifest(root, manifest)
    log.info("%s: executing %s", name, notebook)
    entry = execute(notebook, name, title, parameters, root, kernel)
    manifest[name] = {**entry, "title": title}
    _write_manifest(root, manifest)
    log.info(
        "%s: %s in %.0f s%s", name, entry["status"], entry["seconds"], f" ({entry['error']})" if entry["error"] else ""
    )


def write_toc(
    root: Path,
    experiments: list[Experiment],
    manifest: dict[str, Any],
    calibration: bool = False,
    parts: dict[str, list[tuple[str, str]]] | None = None,
) -> Path:
    """``_toc.yml``: front pages, the calibration (if asked for), one chapter per experiment, the synthesis, then
    ``parts``' chapters (name, title) of shipped profiles, then the back pages."""
    chapters = [{"file": page} for page in FRONT_PAGES[1:]]
    if calibration and (root / CHAPTERS / f"{CALIBRATION}.ipynb").exists():
        chapters.append({"file": f"{CHAPTERS}/{CALIBRATION}"})
    for experiment in experiments:
        if (root / CHAPTERS / f"{experiment.name}.ipynb").exists():
            status = manifest.get(experiment.name, {}).get("status")
            title = experiment.title + (" (failed)" if status == "failed" else "")
            chapters.append({"file": f"{CHAPTERS}/{experiment.name}", "title": title})
    chapters.append({"file": f"{CHAPTERS}/{SYNTHESIS}"})
    for profile, names in (parts or {}).items():
        if (root / f"book/{profile}-profile.md").exists():  # the profile's own introduction, before its chapters
            chapters.append({"file": f"book/{profile}-profile"})
        for name, title in names:
            failed = manifest.get(name, {}).get("status") == "failed"
            chapters.append({"file": f"{CHAPTERS}/{name}", "title": title + (" (failed)" if failed else "")})
    chapters += [{"file": page} for page in BACK_PAGES]
    toc = {"format": "jb-book", "root": FRONT_PAGES[0], "chapters": chapters}
    path = root / "_toc.yml"
    atomic_write_text(
        path,
        "# Generated by `python -m xltlib batch`; edit the experiments file instead.\n"
        + yaml.safe_dump(toc, sort_keys=False),
    )
    return path
