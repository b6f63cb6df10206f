"""RunConfig: everything that determines a run's numbers, validated before any compute."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tasks
from .errors import XltError, did_you_mean
from .method_params import normalize_params

PROFILES = ("xtreme", "synthetic")
EVAL_SPLITS = ("dev", "test")
POOLINGS = ("mean", "cls")
PRETRAINED = "pretrained"
"""Method name of the alignment-only run of the encoder before fine-tuning (no training)."""
ALIGNMENT_FIELDS = (
    "task", "model", "draw", "max_seq_length", "src_lang", "tgt_langs", "data_dir", "profile", "align_pooling",
    "max_align_sentences",
)  # fmt: skip
"""The fields that can change a pre-trained encoder's alignment; see :meth:`RunConfig.pretrained`."""


@dataclass(frozen=True)
class RunConfig:
    """One fine-tuning run: train on the source language, evaluate zero-shot on targets.

    Every field takes part in the run's hash (:meth:`run_id`), so two configs that could
    give different numbers never share a run directory. Logistics that cannot change the
    numbers (output folder, device, checkpoint interval) are not here.

    Attributes:
        task: registered task name (``xnli``, ``pawsx``; see :mod:`xltlib.tasks`).
        model: Hugging Face encoder, a hub id (``xlm-roberta-base``) or a local folder
            saved with ``save_pretrained``. Local folders are stored as absolute paths.
        draw: which pre-training draw of the synthetic profile's encoder ``model`` is (its
            masked-LM seed; :mod:`xltlib.shipped`), so that the draw is a factor of the
            analysis; ``None`` for every other model. Synthetic tasks only;
            :func:`xltlib.profiles.synthetic_run_config` fills it in.
        method: training method (``standard``, ``pgd``, ``freelb``, ``rs_rp``, ``rs_da``; see
            :mod:`xltlib.robust`), or ``pretrained``
            for the alignment of the encoder before fine-tuning (see :meth:`pretrained`).
        method_params: the method's parameters; validated and completed with defaults.
        learning_rate: peak AdamW learning rate (linear warm-up, then linear decay).
        epochs: passes over the training set; fractions allowed (``0.5``) for quick runs.
        batch_size: examples per optimizer step (split into ``grad_accum_steps`` micro-batches).
        grad_accum_steps: micro-batches per optimizer step; must divide ``batch_size``.
        max_seq_length: pair length in tokens after truncation (longest first).
        warmup_ratio: fraction of optimizer steps spent warming up the learning rate.
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        max_grad_norm: gradient clipping threshold (L2 norm over all parameters).
        seed: seeds weight initialisation of the classifier head, dropout and data order.
        src_lang: language of the training data (the source of zero-shot transfer);
            ``None``: the task's source language (``en``; ``base`` for synthetic tasks).
        tgt_langs: languages to evaluate; empty means every language of the task.
        data_dir: local folder in the XTREME TSV layout (``{split}-{lang}.tsv``) for
            evaluation; ``None`` loads the task from the dataset hub. Synthetic tasks
            always read a generated folder (:func:`xltlib.profiles.synthetic_run_config` fills it in).
        train_file: source-language training TSV; ``None`` takes the hub's train split
            (with ``data_dir`` set, a train file is required, except for synthetic tasks,
            whose generated folder has ``{task}/train-base.tsv``).
        eval_split: ``dev`` or ``test``; an unlabeled split is refused before training.
        max_train_examples: keep only the first N training examples (``None``: all).
        max_eval_examples: keep only the first N examples per language (``None``: all).
        profile: ``xtreme`` (real data) or ``synthetic``; stored with every result row.
            ``None``: the task's profile (a task belongs to exactly one).
        align_pooling: ``mean`` (over non-padding tokens) or ``cls`` (first token): how a
            layer's token states become the sentence embedding that alignment is measured on.
        max_align_sentences: keep only the first N rows of the task's parallel sentences
            (``None``: all) when measuring alignment.
        generalized_examples: also score the generalized setting (Huang et al. 2021): first
            segment in language a, second in language b, for every ordered pair a ≠ b of the
            source and target languages, on the first N rows of the (line-aligned) evaluation
            split; stored as accuracy with ``tgt_lang = "a|b"``. 0: off.
    """

    task: str
    model: str
    draw: int | None = None
    method: str = "standard"
    method_params: dict[str, Any] = field(default_factory=dict)
    learning_rate: float = 2e-5
    epochs: float = 2.0
    batch_size: int = 32
    grad_accum_steps: int = 1
    max_seq_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 1
    src_lang: str | None = None
    tgt_langs: tuple[str, ...] = ()
    data_dir: str | None = None
    train_file: str | None = None
    eval_split: str = "dev"
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    profile: str | None = None
    align_pooling: str = "mean"
    max_align_sentences: int | None = None
    generalized_examples: int = 0

    def __post_init__(self) -> None:
        task = tasks.get_task(self.task)
        _check_number("learning_rate", self.learning_rate, float, low=0, low_open=True)
        _check_number("epochs", self.epochs, float, low=0, low_open=True)
        _check_number("batch_size", self.batch_size, int, low=1)
        _check_number("grad_accum_steps", self.grad_accum_steps, int, low=1)
        if self.batch_size % self.grad_accum_steps:
            raise XltError(
                f"batch_size ({self.batch_size}) must be a multiple of grad_accum_steps ({self.grad_accum_steps})"
            )
        _check_number("max_seq_length", self.max_seq_length, int, low=8)
        _check_number("warmup_ratio", self.warmup_ratio, float, low=0, high=1)
        _check_number("weight_decay", self.weight_decay, float, low=0)
        _check_number("max_grad_norm", self.max_grad_norm, float, low=0, low_open=True)
        _check_number("seed", self.seed, int, low=0)
        for name in ("max_train_examples", "max_eval_examples", "max_align_sentences"):
            if getattr(self, name) is not None:
                _check_number(name, getattr(self, name), int, low=1)
        _check_number("generalized_examples", self.generalized_examples, int, low=0)
        _check_choice("eval_split", self.eval_split, EVAL_SPLITS)
        object.__setattr__(self, "profile", self.profile or task.profile)
        _check_choice("profile", self.profile, PROFILES)
        if self.profile != task.profile:
            raise XltError(f"task {task.name} belongs to profile {task.profile!r}, not {self.profile!r}")
        if self.draw is not None:
            _check_number("draw", self.draw, int, low=0)
            if self.profile != "synthetic":
                raise XltError(f"draw names a pre-training draw of the synthetic encoders; task {task.name} has none")
        object.__setattr__(self, "src_lang", self.src_lang or task.source_language)
        _check_choice("align_pooling", self.align_pooling, POOLINGS)
        _check_choice("src_lang", self.src_lang, task.languages)
        tgt_langs = tuple(self.tgt_langs) or task.languages
        for lang in tgt_langs:
            _check_choice("tgt_langs", lang, task.languages)
        object.__setattr__(self, "tgt_langs", tgt_langs)
        if self.method == PRETRAINED:
            if self.method_params:
                raise XltError(f"method {PRETRAINED!r} trains nothing and takes no method_params")
        else:
            object.__setattr__(self, "method_params", normalize_params(self.method, self.method_params))
        object.__setattr__(self, "model", _absolute_if_local(self.model))
        for name in ("data_dir", "train_file"):
            path = getattr(self, name)
            if path is not None:
                if not Path(path).exists():
                    raise XltError(f"{name}: {path} does not exist; {tasks.data_help(task)}")
                object.__setattr__(self, name, str(Path(path).resolve()))
        if task.hub_id is None and self.data_dir is None:
            raise XltError(f"task {task.name} needs data_dir (its data is generated); {tasks.data_help(task)}")
        if task.hub_id is None and self.train_file is None and self.method != PRETRAINED:
            train_file = tasks.local_split_path(task, self.data_dir, "train", self.src_lang)
            object.__setattr__(self, "train_file", str(train_file))
        if self.data_dir is not None and self.train_file is None and self.method != PRETRAINED:
            raise XltError(
                "train_file is required with data_dir: a local XTREME-layout folder has no "
                "English training set (pass --train-file, or drop --data-dir to use the hub)"
            )
        if self.method != PRETRAINED:
            from . import robust  # the method's own checks (files, layers) need the method, and torch

            robust.make_method(self.method, self.method_params).check(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a plain dict (``config.json``), naming unknown keys."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                raise XltError(f"RunConfig has no field {key!r}{did_you_mean(key, known)}")
        values = dict(values)
        if "tgt_langs" in values:
            values["tgt_langs"] = tuple(values["tgt_langs"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["tgt_langs"] = list(self.tgt_langs)
        return values

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of all fields: stable across processes and machines."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def pretrained(self) -> RunConfig:
        """The alignment-only run of this config's encoder before fine-tuning.

        Only :data:`ALIGNMENT_FIELDS` are kept (training settings are reset to defaults and
        the seed to 0), so every fine-tuned run of one (model, task) shares it.
        """
        return RunConfig(**{name: getattr(self, name) for name in ALIGNMENT_FIELDS}, method=PRETRAINED, seed=0)

    def run_id(self) -> str:
        """Short, readable run directory name: ``{task}-{method}-s{seed}-{hash12}``."""
        return f"{self.task}-{self.method}-s{self.seed}-{self.config_hash()[:12]}"


def _absolute_if_local(model: str) -> str:
    """A local model folder is stored absolute (so the hash names one model); hub ids as given."""
    if not isinstance(model, str) or not model:
        raise XltError(f"model must be a hub id or a local folder, got {model!r}")
    path = Path(model)
    return str(path.resolve()) if path.exists() else model


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise XltError(f"{name}: {value!r} is not one of {', '.join(choices)}{did_you_mean(value, choices)}")


def _check_number(
    name: str,
    value: Any,
    kind: type,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    """Type and range check; ints are accepted where floats are expected, bools never."""
    accepted = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, accepted) or not math.isfinite(value):
        raise XltError(f"{name} must be a finite {kind.__name__}, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise XltError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise XltError(f"{name} must be <= {high}, got {value!r}")
