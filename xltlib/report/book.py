"""Build the Jupyter Book offline: MathJax served from the book itself, never from a CDN.

MathJax 3 comes from the npm registry's ``mathjax`` package (fetched once by setup or by
the first build, checked against its published sha512, unpacked into
``book/_static/mathjax``); ``_config.yml`` points Sphinx's ``mathjax_path`` at it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import platform
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd
import yaml

from xltlib.errors import XltError
from xltlib.files import atomic_directory, atomic_write_text
from xltlib.report.batch import CHAPTERS, REPO, STUDY_RUNS, read_manifest
from xltlib.report.chapters import chapter_damage
from xltlib.store import code_version, git_commit, load_results

log = logging.getLogger(__name__)

MATHJAX_VERSION = "3.2.2"
MATHJAX_URL = f"https://registry.npmjs.org/mathjax/-/mathjax-{MATHJAX_VERSION}.tgz"
MATHJAX_SHA512 = "Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
"""The npm registry's ``dist.integrity`` of mathjax@3.2.2 (base64 sha512)."""
MATHJAX_DIR = Path("book/_static/mathjax")
PACKAGES = (
    "torch",
    "transformers",
    "datasets",
    "tokenizers",
    "papermill",
    "jupyter-book",
    "pandas",
    "seaborn",
    "statsmodels",
    "scipy",
)


def ensure_mathjax(root: Path = REPO) -> Path:
    """``book/_static/mathjax`` with MathJax's ``es5`` build; downloaded once (needs the npm registry)."""
    target = root / MATHJAX_DIR
    if (target / "tex-chtml.js").is_file():
        return target
    log.info("fetching MathJax %s from the npm registry (once)", MATHJAX_VERSION)
    try:
        with urllib.request.urlopen(MATHJAX_URL, timeout=60) as response:
            archive = response.read()
    except OSError as error:
        raise XltError(
            f"MathJax is not in {target} and {MATHJAX_URL} cannot be fetched ({error}); "
            "run `make setup` where the npm registry is reachable, or unpack that tarball's "
            f"package/es5 into {target}"
        ) from None
    digest = base64.b64encode(hashlib.sha512(archive).digest()).decode()
    if digest != MATHJAX_SHA512:
        raise XltError(f"{MATHJAX_URL} does not match its published sha512; not unpacking it")
    shutil.rmtree(target, ignore_errors=True)  # a copy without its entry file is not MathJax
    with (
        atomic_directory(target, "or delete it") as partial,
        tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar,
    ):
        members = [m for m in tar.getmembers() if m.name.startswith("package/es5/") and m.isfile()]
        for member in members:
            member.name = member.name.removeprefix("package/es5/")
        tar.extractall(partial, members=members, filter="data")
    return target


def write_reproducibility(root: Path = REPO, runs_dir: str = "runs") -> Path:
    """``book/reproducibility.md``: versions, the batch's chapters, the runs behind them, how to rerun."""
    versions, chapters = _package_rows(), _chapter_rows(read_manifest(root))
    run_rows, runs_line = _run_rows(root, runs_dir)
    text = f"""# Reproducibility

Built {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from commit `{git_commit() or "unknown"}`
on {platform.platform()} with Python {platform.python_version()}.

## Software

| package | version |
|---|---|
{chr(10).join(versions)}

{_encoders_line()}

## Chapters of this build

| chapter | status | time | parameters |
|---|---|---|---|
{chr(10).join(chapters) or "| (none) | | | |"}

## Runs

{runs_line} They are in `{runs_dir}/<run id>/` (`config.json`
holds the full configuration; the id ends with the first 12 hex digits of the sha256 of what the run
computes: every field, with local models and data by their content). `code` is the version of the
training, method, data and metric code that computed the run: this checkout's is `{code_version("synthetic")}` for
synthetic runs (their grammar and generator count too) and `{code_version()}` for the others; a
run computed by other code is marked **other**, and `--recompute-stale` recomputes it.

| run id | task | draw | method | seed | code |
|---|---|---|---|---|---|
{chr(10).join(run_rows) or "| (none) | | | | | |"}

## Rerunning

- The whole book: `python -m xltlib study` (add `--force` to re-execute every chapter;
  runs are cached, so only missing runs train).
- One chapter: `python -m xltlib batch notebooks/experiments/synthetic.yaml --only NAME --force`,
  then `python -m xltlib book`.
- One run: `python -m xltlib run --task syn-nli --method pgd --seed 1` (see `--help`).
"""
    path = root / "book" / "reproducibility.md"
    atomic_write_text(path, text)
    return path


def _package_rows() -> list[str]:
    rows = []
    for package in PACKAGES:
        try:
            rows.append(f"| {package} | {metadata.version(package)} |")
        except metadata.PackageNotFoundError:
            rows.append(f"| {package} | not installed |")
    return rows


def _chapter_rows(manifest: dict) -> list[str]:
    def shown(parameters: dict) -> str:  # the synthesis's run ids are listed under Runs, not here
        return json.dumps(
            {k: f"[{len(v)} runs, listed below]" if k == "run_ids" and v else v for k, v in parameters.items()},
            sort_keys=True,
        )

    return [
        f"| {entry.get('title', name)} | {entry['status']} | {entry.get('seconds', 0):.0f} s | "
        f"`{shown(entry['parameters'])}` |"
        for name, entry in manifest.items()
    ]


def _run_rows(root: Path, runs_dir: str) -> tuple[list[str], str]:
    """The study's runs (the batch's ``runs.json``), or every run of the folder when no batch recorded them."""
    recorded = _study_runs(root / STUDY_RUNS)
    if recorded.get("runs_dir") == runs_dir:
        table = load_results(root / runs_dir, recorded["study"])
        line = f"Every number in the book comes from these {table.run_id.nunique()} runs of the study."
    else:
        table = load_results(root / runs_dir)
        line = f"No batch recorded its runs in `{runs_dir}`: these are every complete run there."
    runs = table.drop_duplicates("run_id")
    rows = [
        f"| `{row.run_id}` | {row.task} | {'' if pd.isna(row.draw) else row.draw} | {row.method} | {row.seed} | "
        f"{'' if row.code_version == code_version(row.profile) else '**other**'} |"
        for row in runs.sort_values("run_id").itertuples()
    ]
    return rows, line


def _study_runs(path: Path) -> dict:
    """The batch's record of the study's runs; empty when there is none, or when it is damaged (then the page lists
    every complete run, saying so, until the next batch writes it again)."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except ValueError as error:
        log.warning(
            "%s is damaged (not JSON: %s): listing every complete run instead; a batch writes it again", path, error
        )
        return {}
    if isinstance(recorded, dict) and (not recorded or isinstance(recorded.get("study"), list)):
        return recorded
    log.warning("%s is damaged (not the study's runs): listing every complete run instead", path)
    return {}


def _encoders_line() -> str:
    """Which shipped synthetic encoders the synthetic runs fine-tuned (README, "Shipped encoders")."""
    from xltlib.synthetic import shipped

    try:
        manifest = shipped.read_manifest()
    except XltError:
        return "The shipped synthetic encoders are missing from this checkout."
    return (
        f"Synthetic runs fine-tune the shipped encoders of `{shipped.SHIPPED_ENCODERS.relative_to(REPO)}` (recipe "
        f"`{manifest['recipe_hash'][:12]}`, draws {', '.join(map(str, shipped.shipped_draws()))}; their sha256 is "
        "checked before every run)."
    )


def check_chapters(root: Path = REPO) -> None:
    """Refuse to build from a damaged chapter or table of contents (the book never executes chapters): name it, and
    the command that executes it again."""
    rerun = (
        "run the batch that wrote it again (`python -m xltlib study`, or `python -m xltlib batch <experiments file>`)"
    )
    try:
        toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
        files = [chapter["file"] for chapter in toc["chapters"]]
    except (ValueError, yaml.YAMLError, KeyError, TypeError) as error:
        raise XltError(f"{root / '_toc.yml'} is damaged ({type(error).__name__}: {error}); {rerun}") from None
    for file in files:
        chapter = root / f"{file}.ipynb"
        if Path(file).parent == CHAPTERS and (cause := chapter_damage(chapter)) is not None:
            raise XltError(f"the chapter {chapter} is damaged ({cause}); {rerun}: it executes the chapter again")


def build_book(root: Path = REPO) -> Path:
    """``jupyter-book build`` of the executed chapters (never executes them); returns index.html."""
    if not (root / "_toc.yml").exists() or not (root / CHAPTERS).is_dir():
        raise XltError("no chapters yet: run `python -m xltlib batch notebooks/experiments/synthetic.yaml` first")
    check_chapters(root)
    ensure_mathjax(root)
    if not (root / "book" / "reproducibility.md").exists():
        write_reproducibility(root)
    # The interpreter itself, not the `jupyter-book` script: its shebang breaks when a venv moves.
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(root), "--quiet"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise XltError(f"jupyter-book build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return root / "_build" / "html" / "index.html"
