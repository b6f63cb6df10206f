"""RunConfig as command-line flags: typed by the fields' annotations, documented by their ``help`` metadata.

Like transformers' ``HfArgumentParser``, the flags are built from the dataclass; every value is parsed by pydantic
from its annotation, so ``--group-by-length false`` is ``False`` and ``--seed 1.5`` fails with the flag named.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

DURATIONS = {
    "study": "about 32 min",
    "e5": "about 1 h 40 min",
    "quick": "a few minutes",
    "rebuild": "about 2 h 30 min",
}
"""How long the long commands take on a 2-core CPU (measured; the README and the book give the dates), as their help
states it; a test checks that the README states the same."""
STUDY_PROFILES = {
    "synthetic": f"the default: artificial languages, shipped encoders, offline ({DURATIONS['study']} on 2 cores); its "
    "book also shows the e5 profile's shipped results",
    "e5": f"multilingual-e5-small on real XNLI, PAWS-X and XCOPA data, offline ({DURATIONS['e5']} on 2 cores)",
    "xtreme": "XLM-R and mBERT under the published recipes (GPUs, hub data)",
}
"""The study's profiles, as ``study --help`` and the README name them."""


FLAG_ALIASES = {
    "learning_rate": "--lr",
    "grad_accum_steps": "--grad-accum",
    "tgt_langs": "--langs",
    "generalized_examples": "--generalized",
}
"""Short flags of some RunConfig fields; every other field's flag is its name with dashes (``--max-seq-length``)."""


def run_flags() -> list[tuple[str, str, dict[str, Any]]]:
    """``(flag, field, argparse keywords)`` of every RunConfig field but ``method_params`` (``key=value`` arguments).

    Flags are typed by the fields' annotations (:func:`typed_value`) and documented by their ``help`` metadata
    (:func:`xltlib.config.run.documented`) with their defaults, RunConfig's and
    :data:`~xltlib.config.SYNTHETIC_FINETUNING`'s: the CLI states no default of its own.
    """
    from xltlib.config import SYNTHETIC_FINETUNING, RunConfig

    hints = typing.get_type_hints(RunConfig)
    flags = []
    for field in dataclasses.fields(RunConfig):
        if field.name == "method_params":
            continue
        defaults = [] if field.default in (dataclasses.MISSING, None, ()) else [f"default: {field.default}"]
        if field.name in SYNTHETIC_FINETUNING:
            defaults.append(f"synthetic tasks: {SYNTHETIC_FINETUNING[field.name]}")
        text = _plain(field.metadata["help"]) + (f" ({'; '.join(defaults)})" if defaults else "")
        flag = FLAG_ALIASES.get(field.name, "--" + field.name.replace("_", "-"))
        path = field.name.endswith(("_dir", "_file"))  # str fields that name a file or folder
        keywords = {
            "type": typed_value(hints[field.name]),
            "help": text,
            "metavar": "PATH" if path else _metavar(hints[field.name]),
        }
        if hints[field.name] is bool:  # `--group-by-length` alone means true; `--group-by-length false` is false
            keywords |= {"nargs": "?", "const": True}
        flags.append((flag, field.name, keywords))
    return flags


def typed_value(annotation: Any) -> Callable[[str], Any]:
    """Parse a flag's text as ``annotation`` (pydantic's string rules: ``false``/``no``/``0`` for bool, ``1e-4`` for
    float, a Literal's values only); a tuple's items are comma-separated. argparse reports a failure with the flag."""
    adapter = TypeAdapter(annotation)
    is_tuple = typing.get_origin(annotation) is tuple

    def parse(text: str) -> Any:
        try:
            if is_tuple:
                return adapter.validate_python([item.strip() for item in text.split(",") if item.strip()])
            return adapter.validate_strings(text)
        except ValidationError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error.errors()[0]['msg']}") from None

    parse.__name__ = _metavar(annotation)  # argparse names the expected type by it
    return parse


def _metavar(annotation: Any) -> str:
    """How help and errors name a flag's type: ``INT``, ``FLOAT``, ``BOOL``, ``{dev,test}``, ``A,B,...``."""
    options = [arg for arg in typing.get_args(annotation) if arg is not type(None)] or [annotation]
    if typing.get_origin(annotation) is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(annotation))) + "}"
    if typing.get_origin(annotation) is tuple:
        return "A,B,..."
    return options[0].__name__.upper() if isinstance(options[0], type) else str(options[0])


def _plain(docstring: str) -> str:
    """Docstring text as help text: reST roles and literals unwrapped, ``%`` escaped for argparse."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", docstring)
    return text.replace("``", "").replace("%", "%%")


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field but ``method_params``; unset flags stay ``None`` (RunConfig's default applies)."""
    for flag, field, keywords in run_flags():
        parser.add_argument(flag, dest=field, default=None, required=field == "task", **keywords)


# The flags of how runs are computed (not what), shared by run, batch and study.


def add_runtime_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs", help="runs directory (default: runs)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (default)")
    add_logistics_flags(parser)
    add_recompute_flag(parser)
    add_cache_flag(parser)


def add_logistics_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=1000,
        help="optimizer steps between checkpoints (default: 1000: about a minute of XLM-R training on one H200)",
    )
    parser.add_argument(
        "--checkpoint-weights-only",
        action="store_true",
        help="checkpoints without AdamW's moments (a third of the bytes; a run resumed from one is not exact)",
    )
    parser.add_argument(
        "--eval-batch-size", type=int, default=64, help="examples per forward pass in evaluation (default: 64)"
    )


def logistics_from(args: argparse.Namespace):
    """The run logistics of the flags (:class:`xltlib.config.logistics.Logistics`); bad values fail here."""
    from xltlib.config.logistics import Logistics

    return Logistics(
        getattr(args, "device", None), args.checkpoint_every, args.checkpoint_weights_only, args.eval_batch_size
    )


def add_recompute_flag(parser: argparse.ArgumentParser) -> None:
    stale = "recompute runs computed by other code (training, method, data or metric code changed; the book flags them)"
    parser.add_argument("--recompute-stale", action="store_true", help=stale)


def add_cache_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache", default="cache", help="folder of generated data and pre-trained encoders (default: cache)"
    )
    parser.add_argument("--quick", action="store_true", help="synthetic tasks: the tiny profile (smoke tests; seconds)")


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        default="ray",
        choices=["local", "ray"],
        help="where the runs are computed: as Ray tasks, one per core or GPU (ray), or one at a time "
        "in this process (local); default: ray, 1.6x faster on a 2-core CPU (book, speed chapter)",
    )
    parser.add_argument("--address", help="--engine ray: join this Ray cluster (default: start Ray on this machine)")
    add_recompute_flag(parser)
    add_logistics_flags(parser)
    parser.add_argument(
        "--gpus-per-run",
        type=float,
        default=1.0,
        help="--engine ray: GPUs per run where there are GPUs; fractions share one among small models (default: 1)",
    )
    parser.add_argument(
        "--threads-per-run",
        type=int,
        help="--engine ray: CPU threads per run (default: 1 without "
        "GPUs; with GPUs, the cores shared among the runs they hold)",
    )
