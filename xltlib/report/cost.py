"""What the real study costs on one GPU: every run it computes, each stage priced in GPU-hours; nothing is run.

:func:`study_plan` builds the runs of an experiments file as the batch does
(:func:`xltlib.report.batch.grid_configs`: each chapter's parameters, the protocol's settings under the
experiment's overrides, methods × seeds, then one pre-trained run per encoder and task), but without
RunConfigs, which need the data folders to exist: it reads the same parameters through
:func:`~xltlib.config.protocols.protocol_settings` and :func:`~xltlib.config.methods.normalize_params`.
:func:`plan_summary` is what ``study --dry-run`` prints.

Each run is priced per stage, every input at its full ``max_seq_length`` (128) tokens: an upper bound,
since dynamic padding and length-grouped batches shorten real batches.

- **training**: training examples × rs_da's data factor (its offline copies: ``copies`` in Robust-XLT's
  style, ``copies + 1`` with the originals, 1 for fresh draws) × epochs (× ``standard_matched``'s
  ``epochs_factor``) × 128 × the choices of a multiple-choice item (each is one sequence,
  :func:`xltlib.data.batches.tokenize_pairs`) × the method's pass count (:func:`pass_ratio`) ÷ the training
  rate. Sizes: the row counts that ``data fetch`` writes and ``data verify`` checks
  (:data:`xltlib.data.verify.ITEMS`: MultiNLI 392,702; PAWS-X English 49,401; COPA 400; SocialIQa 33,410),
  cut to ``max_train_examples``.
- **first_stage**: XTREME-R's SocialIQa stage before XCOPA, a ``standard`` training of its 3-choice items with
  the run's settings; computed once per (model, seed, settings) and shared by every method
  (:func:`xltlib.pipeline.first_stage`), so charged to the first run that needs it.
- **selection**: with ``select_checkpoint="source_dev"``, English dev (XNLI 2,490; PAWS-X 2,000; COPA 100 × 2
  choices) scored every ``select_every_steps`` optimizer steps (or at epoch ends), forward only.
- **evaluation**: each target's test set (XNLI 5,010 × 15 languages; PAWS-X 2,000 × 7; XCOPA 500 × 11 × 2
  choices: English COPA's test labels are hidden), the generalized pairs (``generalized_examples`` rows of
  every ordered pair of labeled languages), rs_rp's smoothed prediction ``eval_copies`` times over, and the
  causal arm of ``standard`` runs on sentence pairs (:mod:`xltlib.evaluation.surgery`: the test sets once
  more); forward only.
- **alignment**: per fine-tuned and pre-trained run, the task's parallel sentences (the test split's text
  columns stacked, or ``max_align_sentences``) in the source once and in each target, and, with
  ``tatoeba_dir``, each target's Tatoeba pairs with English (1,000 per language; Swahili 390, Tamil 307,
  Thai 548: counted in LASER@74bc6ae7 ``data/tatoeba/v1``, ``../shared/data``); forward only.
- **checkpoints**: a write every ``checkpoint_every`` steps and at the end of each training (the first stage
  also writes its ``stage.pt``), parameters × 4 bytes × 3 (weights and AdamW's two moments; 1 weights-only)
  at an assumed :data:`WRITE_BYTES_PER_S`.

Rates (:data:`TRAINING_TOKENS_PER_S`): ``benchmarks/train_step.py`` on one H200, a standard step of
micro-batch 32 × 128 (book, speed chapter: 108k tokens/s for XLM-R base, 77k for large; mBERT and any other
model without ``large`` in its name at base's rate). The protocols train in micro-batches of the full batch
of 32; a run with ``grad_accum_steps`` > 1 trains in smaller ones, for which that rate is optimistic.
Forward-only throughput was not measured: it is assumed :data:`FORWARD_SPEEDUP` times the training rate (a
forward is about a third of a forward and backward's FLOPs). Parameter counts (:data:`PARAMETERS`): each
model built from its hub config (vocabulary × hidden size, 12 or 24 layers, pooler): 278M, 560M, 178M.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

import pandas as pd

from xltlib.config import ALIGNMENT_FIELDS, PRETRAINED, RunConfig
from xltlib.config.hub_models import namespaced, pinned_revision
from xltlib.config.logistics import Logistics
from xltlib.config.methods import normalize_params
from xltlib.config.protocols import is_large, protocol_settings, step_matched_params
from xltlib.config.run import FIRST_STAGE_FIELDS
from xltlib.data import tasks
from xltlib.data.tatoeba import ENGLISH, has_tatoeba
from xltlib.data.verify import ITEMS, FileSpec
from xltlib.errors import XltError
from xltlib.profiles.quick_xtreme import QUICK_SIZES
from xltlib.report.batch import Experiment, chapter_parameters, load_experiments, with_notebook_defaults

TRAINING_TOKENS_PER_S = {"base": 108_000.0, "large": 77_000.0}
"""Training tokens/s of a standard step at micro-batch 32 × 128 on one H200 (book/speed.md)."""
MEASURED_MICRO_BATCH = 32
FORWARD_SPEEDUP = 3.0
"""Forward-only throughput ÷ training throughput: assumed, not measured."""
PARAMETERS = {
    "FacebookAI/xlm-roberta-base": 278_043_648,
    "FacebookAI/xlm-roberta-large": 559_890_432,
    "google-bert/bert-base-multilingual-cased": 177_853_440,
}
"""Parameters of each model built from its hub config (the classifier head adds a few thousand)."""
WRITE_BYTES_PER_S = 1e9
"""Checkpoint write speed: assumed."""
TATOEBA_PAIRS, FEWER_TATOEBA_PAIRS = 1000, {"sw": 390, "ta": 307, "th": 548}
STAGES = ("training", "first_stage", "selection", "evaluation", "alignment", "checkpoints")
"""The plan's cost columns, in GPU-hours."""
RUN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.default is not dataclasses.MISSING}

LEFT_OUT = (
    "Left out: downloading the models and data sets from the hub; loading and tokenizing the data (MultiNLI once per "
    "run, and rs_da's rewritten text every batch when it draws afresh: +5% a step on a CPU, speed chapter); host "
    "work beyond what the benchmark's training step includes (the evaluation and alignment loops, the Procrustes "
    "fits, the metrics); Ray's start and scheduling; runs that fail and run again; the weights best.pt keeps each "
    "time English dev improves; and the sweep (`python -m xltlib sweep`) that chooses PGD's, FreeLB's and RS-RP's "
    "strengths. Every input is counted at its full 128 tokens, which dynamic padding shortens (an upper bound on "
    "tokens), against rates measured on a host-bound step (a lower bound on speed)."
)


@dataclasses.dataclass(frozen=True)
class ExperimentRuns:
    """One experiment's runs as its chapter's grid builds them: shared RunConfig fields, (method, params) arms,
    seeds."""

    name: str
    settings: dict[str, Any]
    arms: list[tuple[str, dict[str, Any]]]
    seeds: list[int]


def study_plan(experiments_file: Path, quick: bool = False, logistics: Logistics = Logistics()) -> pd.DataFrame:
    """One row per run the study computes: experiment, run_id (the readable part of a run id: the hash needs the
    data), task, model, method, seed, micro_batch, optimizer_steps, checkpoint_bytes, each stage's GPU-hours
    (:data:`STAGES`) and their total. A shared pre-trained run or first stage is charged to the first run that needs
    it. ``quick``: the experiments ``--quick`` runs, their first seed, at the quick sizes."""
    _, experiments = load_experiments(experiments_file)
    rows, stages, pretrained = [], set(), set()
    for experiment in experiments:
        if quick and not experiment.quick:
            continue
        runs = experiment_runs(experiment, quick)
        for method, params in runs.arms:
            for seed in runs.seeds:
                settings = {**runs.settings, "seed": seed}
                stage = tuple(settings[name] for name in FIRST_STAGE_FIELDS)
                first = settings["first_stage_file"] is not None and stage not in stages
                stages.add(stage)
                rows.append({"experiment": runs.name, **_fine_tuned(settings, method, params, first, logistics)})
        aligned = tuple(runs.settings[name] for name in ALIGNMENT_FIELDS)
        if aligned not in pretrained:
            pretrained.add(aligned)
            rows.append({"experiment": runs.name, **_pretrained(runs.settings)})
    plan = pd.DataFrame(rows)
    plan["total"] = plan[list(STAGES)].sum(axis=1)
    plan.attrs |= {"quick": quick, "logistics": logistics}
    return plan


def experiment_runs(experiment: Experiment, quick: bool) -> ExperimentRuns:
    """The experiment's runs, from the very parameters its chapter is executed with (as
    :func:`xltlib.report.experiment.experiment_configs` reads them for a real task)."""
    parameters = with_notebook_defaults(chapter_parameters(experiment, quick, "runs", "cache"))
    task = tasks.get_task(parameters["task"])
    if task.profile != "xtreme" or parameters["doses"] or parameters["model"] is None:
        raise XltError(
            f"{experiment.name}: the cost plan prices GPU runs of the real profile's tasks (a model, no doses); "
            f"task {task.name} of profile {task.profile}"
        )
    fields, protocol_params = ({}, {})
    if parameters["protocol"] is not None:
        fields, protocol_params = protocol_settings(parameters["protocol"], task.name, parameters["model"])
    settings = {**RUN_DEFAULTS, **fields, **parameters["overrides"], **(QUICK_SIZES if quick else {})}
    model = namespaced(parameters["model"])
    settings |= {
        "task": task.name,
        "model": model,
        "model_revision": pinned_revision(model, settings["model_revision"]),
        "src_lang": settings["src_lang"] or task.source_language,
        "tgt_langs": tuple(settings["tgt_langs"]) or task.languages,
    }
    given = parameters["method_params"]
    arms = [
        (method, normalize_params(method, {**protocol_params.get(method, {}), **given.get(method, {})}))
        for method in parameters["methods"]
    ]
    return ExperimentRuns(experiment.name, settings, arms, list(parameters["seeds"]))


def pass_ratio(method: str, params: dict[str, Any]) -> float:
    """A step's cost ÷ a standard step's, in passes: forward 1, backward 2, backward to δ only 1 (``benchmarks/
    robust_step.py`` measures it within 8% on a CPU, speed chapter)."""
    if method == "pgd":
        steps = params["steps"]
        return (2 * steps + 3) / 3 if params["adversarial_only"] else (2 * steps + 6) / 3
    if method == "freelb":
        return float(params["steps"])
    return 1.0


def data_factor(method: str, params: dict[str, Any]) -> float:
    """How many times its training set a method trains on: rs_da's offline copies (as many as ``standard_matched``'s
    epochs factor: :func:`~xltlib.config.protocols.step_matched_params`), else 1."""
    return step_matched_params(params)["epochs_factor"] if method == "rs_da" else 1.0


def _fine_tuned(
    settings: dict[str, Any], method: str, params: dict[str, Any], first_stage: bool, logistics: Logistics
) -> dict[str, Any]:
    task = tasks.get_task(settings["task"])
    examples = _capped(_train_rows(settings, task), settings["max_train_examples"]) * data_factor(method, params)
    training = _Training(settings, examples, settings["epochs"] * params.get("epochs_factor", 1.0), _choices(task))
    written = training.checkpoint_bytes(logistics)
    stage_seconds = 0.0
    if first_stage:
        siqa = tasks.get_task("siqa")
        rows = _capped(_file_spec(settings["first_stage_file"]).rows, settings["max_train_examples"])
        stage = _Training(settings, rows, settings["epochs"], _choices(siqa))
        stage_seconds = stage.seconds(1.0)
        written += stage.checkpoint_bytes(logistics) + _model_bytes(settings["model"], weights_only=True)
    seconds = {
        "training": training.seconds(pass_ratio(method, params)),
        "first_stage": stage_seconds,
        "selection": _forward_seconds(settings, _selection_inputs(settings, task, training)),
        "evaluation": _forward_seconds(settings, _evaluation_inputs(settings, task, method, params)),
        "alignment": _forward_seconds(settings, _alignment_inputs(settings, task)),
        "checkpoints": written / WRITE_BYTES_PER_S,
    }
    micro_batch = settings["batch_size"] // settings["grad_accum_steps"]
    return {
        **_identity(settings, method, settings["seed"]),
        **{"micro_batch": micro_batch, "optimizer_steps": training.steps, "checkpoint_bytes": written},
        **{stage: value / 3600 for stage, value in seconds.items()},
    }


def _pretrained(settings: dict[str, Any]) -> dict[str, Any]:
    """The alignment-only run of the experiment's encoder before fine-tuning."""
    alignment = _forward_seconds(settings, _alignment_inputs(settings, tasks.get_task(settings["task"])))
    costs = {stage: alignment / 3600 if stage == "alignment" else 0.0 for stage in STAGES}
    return {**_identity(settings, PRETRAINED, 0), "optimizer_steps": 0, "checkpoint_bytes": 0, **costs}


def _identity(settings: dict[str, Any], method: str, seed: int) -> dict[str, Any]:
    return {
        "run_id": f"{settings['task']}-{method}-s{seed}",
        "task": settings["task"],
        "model": settings["model"],
        "method": method,
        "seed": seed,
    }


@dataclasses.dataclass(frozen=True)
class _Training:
    """One training: ``examples`` rows (of ``choices`` sequences each) for ``epochs``, with the run's settings."""

    settings: dict[str, Any]
    examples: float
    epochs: float
    choices: int

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.examples / self.settings["batch_size"])

    @property
    def steps(self) -> int:
        """Optimizer steps, as :class:`xltlib.training.StepPlan` counts them."""
        return max(1, math.ceil(self.epochs * self.steps_per_epoch))

    def seconds(self, ratio: float) -> float:
        tokens = self.examples * self.epochs * self.choices * self.settings["max_seq_length"] * ratio
        return tokens / _training_rate(self.settings["model"])

    def checkpoint_bytes(self, logistics: Logistics) -> float:
        """A write every ``checkpoint_every`` steps and one at the end (:func:`~xltlib.training.train_loop`)."""
        writes = (self.steps - 1) // logistics.checkpoint_every + 1
        return writes * _model_bytes(self.settings["model"], logistics.checkpoint_weights_only)


def _selection_inputs(settings: dict[str, Any], task: tasks.Task, training: _Training) -> int:
    """English dev, once per scoring (:func:`xltlib.training.selection_steps`)."""
    if settings["select_checkpoint"] != "source_dev":
        return 0
    every, steps = settings["select_every_steps"], training.steps
    if every is not None:
        scorings = max(steps // every, 1)
    else:  # each epoch's end, and the last step
        scorings = len(set(range(training.steps_per_epoch, steps + 1, training.steps_per_epoch)) | {steps})
    dev = _capped(_split_spec(task, "dev", settings["src_lang"]).rows, settings["max_eval_examples"])
    return scorings * dev * _choices(task)


def _evaluation_inputs(settings: dict[str, Any], task: tasks.Task, method: str, params: dict[str, Any]) -> int:
    """Test sets and generalized pairs (rs_rp's vote over ``eval_copies`` passes), then the causal arm's passes."""
    src = settings["src_lang"]
    rows = {lang: _eval_rows(settings, task, lang) for lang in settings["tgt_langs"]}
    if settings["generalized_examples"] and src not in rows and _split_spec(task, settings["eval_split"], src).labeled:
        rows[src] = _eval_rows(settings, task, src)  # the source joins the pairs where its labels are known
    generalized = [min(settings["generalized_examples"], rows[a]) for a in rows for b in rows if a != b]
    copies = params.get("eval_copies") or 1  # rs_rp's smoothed prediction; 0 or absent: one pass
    inputs = (sum(rows[lang] for lang in settings["tgt_langs"]) + sum(generalized)) * copies
    if method == "standard" and task.kind != "multiple_choice" and src in rows:
        inputs += rows[src] + sum(n for lang, n in rows.items() if lang != src and n == rows[src])
    return inputs * _choices(task)


def _alignment_inputs(settings: dict[str, Any], task: tasks.Task) -> int:
    """The parallel sentences in the source once and in each target (at most), then the targets' Tatoeba pairs."""
    src = settings["src_lang"]
    targets = [lang for lang in dict.fromkeys(settings["tgt_langs"]) if lang != src]
    stacked = _split_spec(task, task.parallel_split, src).rows * len(task.parallel_columns)
    inputs = _capped(stacked, settings["max_align_sentences"]) * (1 + len(targets))
    if settings["tatoeba_dir"] is not None and src == ENGLISH:
        for lang in filter(has_tatoeba, targets):
            inputs += 2 * _capped(FEWER_TATOEBA_PAIRS.get(lang, TATOEBA_PAIRS), settings["max_align_sentences"])
    return inputs


def _eval_rows(settings: dict[str, Any], task: tasks.Task, lang: str) -> int:
    return _capped(_split_spec(task, settings["eval_split"], lang).rows, settings["max_eval_examples"])


def _train_rows(settings: dict[str, Any], task: tasks.Task) -> int:
    if settings["train_file"] is not None:
        return _file_spec(settings["train_file"]).rows
    return _split_spec(task, "train", settings["src_lang"]).rows


@functools.cache  # every run asks
def _declared() -> dict[str, FileSpec]:
    """The files ``data fetch`` writes, by path in its layout, with their row counts."""
    return {spec.path: spec for item in ITEMS.values() for spec in item() if spec.rows is not None}


def _split_spec(task: tasks.Task, split: str, lang: str) -> FileSpec:
    """The declared file of ``task``'s ``split`` in ``lang``: the first of the task's file names that is declared."""
    for template in task.local_templates(split):
        path = f"{task.name}/{template.format(lang=lang)}"
        if path in _declared():
            return _declared()[path]
    raise XltError(f"no declared size of {task.name}'s {split} split in {lang} (xltlib/data/verify.py)")


def _file_spec(path: str) -> FileSpec:
    """The declared file that ``path`` (a file of a data folder in the fetched layout) is."""
    for declared, spec in _declared().items():
        if Path(path).as_posix().endswith(f"/{declared}"):
            return spec
    raise XltError(f"{path} is none of the files xltlib/data/verify.py declares: its size is unknown")


def _capped(rows: float, limit: int | None) -> float:
    return rows if limit is None else min(rows, limit)


def _choices(task: tasks.Task) -> int:
    """Sequences per item: one per choice of a multiple-choice item, one per pair."""
    return len(task.labels) if task.kind == "multiple_choice" else 1


def _training_rate(model: str) -> float:
    return TRAINING_TOKENS_PER_S["large" if is_large(model) else "base"]


def _forward_seconds(settings: dict[str, Any], inputs: float) -> float:
    return inputs * settings["max_seq_length"] / (_training_rate(settings["model"]) * FORWARD_SPEEDUP)


def _model_bytes(model: str, weights_only: bool) -> float:
    """Bytes of a checkpoint: float32 weights, and AdamW's two moments unless ``weights_only``."""
    if model not in PARAMETERS:
        raise XltError(f"no parameter count for {model}; the cost plan knows {', '.join(PARAMETERS)}")
    return PARAMETERS[model] * 4 * (1 if weights_only else 3)


def plan_summary(plan: pd.DataFrame) -> str:
    """What ``study --dry-run`` prints: the runs, GPU-hours per experiment and stage and in all, the checkpoint bytes,
    and what the estimate leaves out."""
    fine_tuned = plan[plan.method != PRETRAINED]
    stages = int((plan.first_stage > 0).sum())
    table = plan.groupby("experiment", sort=False)[[*STAGES, "total"]].sum()
    table.loc["all"] = table.sum()
    lines = [
        f"{len(plan)} runs: {len(fine_tuned)} fine-tuned and {len(plan) - len(fine_tuned)} pre-trained (alignment "
        f"only); {stages} SocialIQa first stage(s), each computed once and shared by the methods of its (model, "
        "seed).",
        "",
        "GPU-hours on one H200: training at the tokens/s measured at micro-batch 32 × 128 (108k base and mBERT, 77k "
        f"large; book, speed chapter), forward passes assumed {FORWARD_SPEEDUP:g}× as fast (not measured):",
        table.round(1).to_string(),
        "",
        f"In all: {table.loc['all', 'total']:,.0f} GPU-hours. {_checkpoints(plan)}",
    ]
    smaller = int((fine_tuned.micro_batch < MEASURED_MICRO_BATCH).sum())
    if smaller:
        lines.append(f"{smaller} runs train in micro-batches under 32, for which the measured rate is optimistic.")
    if plan.attrs.get("quick"):
        lines.append("--quick runs a small stand-in model on a CPU: these are the named models' hours at quick sizes.")
    return "\n".join([*lines, "", LEFT_OUT])


def _checkpoints(plan: pd.DataFrame) -> str:
    """The checkpoints' bytes, and how to write fewer."""
    logistics = plan.attrs.get("logistics", Logistics())
    written = (
        f"Checkpoints write {plan.checkpoint_bytes.sum() / 1e12:,.1f} TB at an assumed {WRITE_BYTES_PER_S / 1e9:g} GB/s"
    )
    if logistics.checkpoint_weights_only:
        return f"{written} (weights only, every {logistics.checkpoint_every} steps)."
    return (
        f"{written} (weights and AdamW's moments every {logistics.checkpoint_every} steps; --checkpoint-weights-only "
        "writes a third, a larger --checkpoint-every fewer)."
    )
