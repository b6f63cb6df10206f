"""RunConfig: everything that determines a run's numbers, validated before any compute.

Every default of a run is here: :class:`RunConfig`'s fields (the XLM-R settings) and
:data:`SYNTHETIC_FINETUNING` (what differs for the synthetic profile). The CLI's flags and
help are generated from both (``xltlib.__main__``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from xltlib.config import hub_models
from xltlib.config.checks import check_choice, check_number
from xltlib.config.methods import normalize_params, validated_params
from xltlib.data import tasks
from xltlib.data.tatoeba import TATOEBA_HELP
from xltlib.errors import XltError, did_you_mean
from xltlib.files import canonical_sha256, content_sha256

PROFILES = ("xtreme", "synthetic")


EvalSplit = Literal["dev", "test"]
EVAL_SPLITS = get_args(EvalSplit)


Pooling = Literal["mean", "cls"]
POOLINGS = get_args(Pooling)


CheckpointChoice = Literal["last", "source_dev"]
CHECKPOINT_CHOICES = get_args(CheckpointChoice)


PRETRAINED = "pretrained"
"""Method name of the alignment-only run of the encoder before fine-tuning (no training)."""


ALIGNMENT_FIELDS = (
    "task",
    "model",
    "model_revision",
    "draw",
    "max_seq_length",
    "src_lang",
    "tgt_langs",
    "data_dir",
    "profile",
    "align_pooling",
    "max_align_sentences",
    "tatoeba_dir",
)
"""The fields that can change a pre-trained encoder's alignment; see :meth:`RunConfig.pretrained`."""

FIRST_STAGE_FIELDS = tuple(
    "task model model_revision first_stage_file seed learning_rate epochs batch_size grad_accum_steps max_seq_length "
    "group_by_length freeze_word_embeddings warmup_ratio weight_decay max_grad_norm max_train_examples".split()
)
"""What a SocialIQa first stage's result depends on (:func:`xltlib.pipeline.first_stage`): every method of one
(model, seed) shares it, as they share their pre-trained run."""
LATER_FIELDS = (
    "tatoeba_dir",
    "first_stage_file",
    "select_checkpoint",
    "select_every_steps",
    "group_by_length",
    "freeze_word_embeddings",
)
"""Fields added after runs were first stored: at their default they are left out of a run's identity,
so adding them renamed no stored run."""
LATER_METHOD_PARAMS = {"rs_da": {"copies": 0, "copies_style": "with-originals"}}
"""Method parameters added after runs were first stored, with their defaults: left out of the identity likewise."""
BUILD_REPORTS = ("pretraining.json",)
"""Files of a model folder that report how it was built (times included), not what it computes: not in its identity."""


def documented(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A RunConfig field with its documentation as metadata (``help``), as transformers' ``TrainingArguments`` do."""
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass(frozen=True)
class RunConfig:
    """One fine-tuning run: train on the source language, evaluate zero-shot on targets.

    Every field takes part in the run's hash (:meth:`run_id`), so two configs that could
    give different numbers never share a run directory. Logistics that cannot change the
    numbers (output folder, device, checkpoint interval) are not here.

    Each field is documented by its ``help`` (:func:`documented`), which the CLI's ``--help`` shows.
    """

    task: str = documented(help="registered task name (``xnli``, ``pawsx``; see :mod:`xltlib.data.tasks`).")
    model: str = documented(
        help="Hugging Face encoder, a hub id (``xlm-roberta-base``) or a local folder saved with ``save_pretrained``. "
        "A local folder is stored as an absolute path and identified by its content (:meth:`identity`)."
    )
    model_revision: str | None = documented(
        None,
        "the hub revision of ``model`` (branch, tag or commit; ``None``: the hub's default branch). Pin a commit for "
        "runs that must stay comparable: it is part of the run's identity. Hub models only.",
    )
    draw: int | None = documented(
        None,
        "which pre-training draw of the synthetic profile's encoder ``model`` is (its masked-LM seed; "
        ":mod:`xltlib.synthetic.shipped`), so that the draw is a factor of the analysis; ``None`` for every other "
        "model. Synthetic tasks only; :func:`xltlib.synthetic.run_config.synthetic_run_config` fills it in.",
    )
    method: str = documented(
        "standard",
        "training method (``standard``, ``pgd``, ``freelb``, ``rs_rp``, ``rs_da``; see :mod:`xltlib.methods`), or "
        "``pretrained`` for the alignment of the encoder before fine-tuning (see :meth:`pretrained`).",
    )
    method_params: dict[str, Any] = documented(
        default_factory=dict, help="the method's parameters; validated and completed with defaults."
    )
    learning_rate: float = documented(2e-5, "peak AdamW learning rate (linear warm-up, then linear decay).")
    epochs: float = documented(2.0, "passes over the training set; fractions allowed (``0.5``) for quick runs.")
    batch_size: int = documented(32, "examples per optimizer step (split into ``grad_accum_steps`` micro-batches).")
    grad_accum_steps: int = documented(1, "micro-batches per optimizer step; must divide ``batch_size``.")
    max_seq_length: int = documented(128, "pair length in tokens after truncation (longest first).")
    group_by_length: bool = documented(
        False,
        "batches of examples of similar length (Hugging Face's ``group_by_length``: each epoch shuffled, then sorted "
        "by length within groups of 50 batches), so dynamic padding pads less; a GPU speed path that changes the data"
        " order, hence the numbers.",
    )
    freeze_word_embeddings: bool = documented(
        False,
        "keep the word-embedding matrix fixed while fine-tuning (positions, LayerNorms and every layer above still "
        "train). A CPU-scale economy: with a 250k-row vocabulary (XLM-R's), AdamW and the dense embedding gradient "
        "took 40% of a step of multilingual-e5-small on a 2-core CPU. Perturbations act on the embeddings' output, so"
        " every method still runs.",
    )
    warmup_ratio: float = documented(0.1, "fraction of optimizer steps spent warming up the learning rate.")
    weight_decay: float = documented(0.01, "AdamW weight decay (not applied to biases and LayerNorm weights).")
    max_grad_norm: float = documented(1.0, "gradient clipping threshold (L2 norm over all parameters).")
    seed: int = documented(1, "seeds weight initialisation of the classifier head, dropout and data order.")
    src_lang: str | None = documented(
        None,
        "language of the training data (the source of zero-shot transfer); ``None``: the task's source language "
        "(``en``; ``base`` for synthetic tasks).",
    )
    tgt_langs: tuple[str, ...] = documented((), "languages to evaluate; empty means every language of the task.")
    data_dir: str | None = documented(
        None,
        "local folder in the XTREME TSV layout (``{split}-{lang}.tsv``) for evaluation; ``None`` loads the task from "
        "the dataset hub. Synthetic tasks always read a generated folder "
        "(:func:`xltlib.synthetic.run_config.synthetic_run_config` fills it in).",
    )
    train_file: str | None = documented(
        None,
        "source-language training file (TSV, or JSON lines for XCOPA); ``None`` takes ``data_dir``'s training file "
        "where it has one (the synthetic tasks' ``train-base.tsv``, XCOPA's ``copa-en/train-en.jsonl``), else the "
        "hub's train split (with ``data_dir`` set and no training file there, a train file is required).",
    )
    eval_split: EvalSplit = documented("dev", "``dev`` or ``test``; an unlabeled split is refused before training.")
    first_stage_file: str | None = documented(
        None,
        "SocialIQa JSON lines (``data fetch xcopa`` writes ``xcopa/siqa/train.jsonl``) fine-tuned on first, with "
        "``standard`` training and the run's settings, before the task: XTREME-R's XCOPA recipe (SIQA, then COPA). "
        "Multiple-choice tasks only; ``None``: one stage.",
    )
    select_checkpoint: CheckpointChoice = documented(
        "last",
        "``last`` (the model at the end of training) or ``source_dev``: of the models scored on the source language's"
        " dev split (read from ``data_dir`` or the hub) during training, the best (ties: the earlier); see "
        "``select_every_steps``.",
    )
    select_every_steps: int | None = documented(
        None,
        'with ``select_checkpoint="source_dev"``: score the model every N optimizer steps, as the published scripts '
        "do (``--save_steps`` with ``--eval_all_checkpoints``: XTREME 100 for XNLI and 200 for PAWS-X, Robust-XLT "
        "1,000 and 500); a run shorter than N steps scores its last model. ``None``: at every epoch's end.",
    )
    max_train_examples: int | None = documented(None, "keep only the first N training examples (``None``: all).")
    max_eval_examples: int | None = documented(
        None,
        "keep only the first N examples per language (``None``: all), also of the source dev split that "
        '``select_checkpoint="source_dev"`` scores.',
    )
    profile: str | None = documented(
        None,
        "``xtreme`` (real data) or ``synthetic``; stored with every result row. ``None``: the task's profile (a task "
        "belongs to exactly one).",
    )
    align_pooling: Pooling = documented(
        "mean",
        "``mean`` (over non-padding tokens) or ``cls`` (first token): how a layer's token states become the sentence "
        "embedding that alignment is measured on.",
    )
    max_align_sentences: int | None = documented(
        None,
        "keep only the first N rows of the task's parallel sentences (``None``: all) when measuring alignment, and of"
        " each language's Tatoeba pairs.",
    )
    generalized_examples: int = documented(
        0,
        "also score the generalized setting (Huang et al. 2021): first segment in language a, second in language b "
        "(XCOPA: the premise and its question in a, the choices in b), for every ordered pair a ≠ b of the source and"
        " target languages with a labeled evaluation split, on its first N rows (line-aligned); stored as accuracy "
        'with ``tgt_lang = "a|b"``. 0: off.',
    )
    tatoeba_dir: str | None = documented(
        None,
        "LASER's ``tatoeba/v1`` folder (``tatoeba.xxx-eng.{xxx,eng}``): alignment is then also measured on Tatoeba, "
        "for every target that has a Tatoeba test set, when the source language is English; each alignment row names "
        "its ``corpus`` (``task`` or ``tatoeba``). ``None``: the task's own parallel sentences only.",
    )

    def __post_init__(self) -> None:
        task = tasks.get_task(self.task)
        self._check_training_numbers()
        self._check_data_numbers()
        self._complete_task_settings(task)
        self._complete_method()
        self._complete_model()
        if self.model_revision is not None and Path(self.model).exists():
            raise XltError(f"model_revision names a hub revision; {self.model} is a local folder")
        self._complete_files(task)
        if self.method != PRETRAINED:
            validated_params(self.method, self.method_params).check_run(self)

    def _check_training_numbers(self) -> None:
        check_number("learning_rate", self.learning_rate, float, low=0, low_open=True)
        check_number("epochs", self.epochs, float, low=0, low_open=True)
        check_number("batch_size", self.batch_size, int, low=1)
        check_number("grad_accum_steps", self.grad_accum_steps, int, low=1)
        if self.batch_size % self.grad_accum_steps:
            raise XltError(
                f"batch_size ({self.batch_size}) must be a multiple of grad_accum_steps ({self.grad_accum_steps})"
            )
        check_number("max_seq_length", self.max_seq_length, int, low=8)
        check_number("warmup_ratio", self.warmup_ratio, float, low=0, high=1)
        check_number("weight_decay", self.weight_decay, float, low=0)
        check_number("max_grad_norm", self.max_grad_norm, float, low=0, low_open=True)
        check_number("seed", self.seed, int, low=0)

    def _check_data_numbers(self) -> None:
        for name in ("max_train_examples", "max_eval_examples", "max_align_sentences"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), int, low=1)
        check_number("generalized_examples", self.generalized_examples, int, low=0)
        check_choice("eval_split", self.eval_split, EVAL_SPLITS)
        check_choice("select_checkpoint", self.select_checkpoint, CHECKPOINT_CHOICES)
        if self.select_every_steps is not None:
            check_number("select_every_steps", self.select_every_steps, int, low=1)
            if self.select_checkpoint != "source_dev":
                raise XltError(
                    'select_every_steps says when to score source dev; it needs select_checkpoint="source_dev"'
                )
        check_choice("align_pooling", self.align_pooling, POOLINGS)

    def _complete_task_settings(self, task: tasks.Task) -> None:
        """Profile, draw and languages: checked against the task, defaults taken from it."""
        object.__setattr__(self, "profile", self.profile or task.profile)
        check_choice("profile", self.profile, PROFILES)
        if self.profile != task.profile:
            raise XltError(f"task {task.name} belongs to profile {task.profile!r}, not {self.profile!r}")
        if self.draw is not None:
            check_number("draw", self.draw, int, low=0)
            if self.profile != "synthetic":
                raise XltError(f"draw names a pre-training draw of the synthetic encoders; task {task.name} has none")
        object.__setattr__(self, "src_lang", self.src_lang or task.source_language)
        check_choice("src_lang", self.src_lang, task.languages)
        tgt_langs = tuple(self.tgt_langs) or task.languages
        for lang in tgt_langs:
            check_choice("tgt_langs", lang, task.languages)
        object.__setattr__(self, "tgt_langs", tgt_langs)

    def _complete_method(self) -> None:
        if self.method == PRETRAINED:
            if self.method_params:
                raise XltError(f"method {PRETRAINED!r} trains nothing and takes no method_params")
        else:
            object.__setattr__(self, "method_params", normalize_params(self.method, self.method_params))

    def _complete_model(self) -> None:
        """A local folder made absolute; a known hub model by its namespaced id, at its pinned commit by default."""
        object.__setattr__(self, "model", _absolute_if_local(self.model))
        if not Path(self.model).exists():
            object.__setattr__(self, "model", hub_models.namespaced(self.model))
            object.__setattr__(self, "model_revision", hub_models.pinned_revision(self.model, self.model_revision))

    def _complete_files(self, task: tasks.Task) -> None:
        """``data_dir`` and ``train_file`` made absolute, checked to exist, and required where the task needs them."""
        if self.first_stage_file is not None and task.kind != "multiple_choice":
            raise XltError(
                f"first_stage_file is a SocialIQa stage before a multiple-choice task; {task.name} is not one"
            )
        for name in ("data_dir", "train_file", "tatoeba_dir", "first_stage_file"):
            path = getattr(self, name)
            if path is not None:
                if not Path(path).exists():
                    raise XltError(
                        f"{name}: {path} does not exist; "
                        f"{TATOEBA_HELP if name == 'tatoeba_dir' else tasks.data_help(task)}"
                    )
                object.__setattr__(self, name, str(Path(path).resolve()))
        if task.hub_id is None and self.data_dir is None:
            raise XltError(f"task {task.name} needs data_dir (its data is generated); {tasks.data_help(task)}")
        if self.data_dir is not None and self.train_file is None and self.method != PRETRAINED:
            object.__setattr__(self, "train_file", str(self._local_train_file(task)))

    def _local_train_file(self, task: tasks.Task) -> Path:
        """The source-language training file of ``data_dir`` (generated data, or a layout with one, like XCOPA's)."""
        try:
            return tasks.local_split_path(task, self.data_dir, "train", self.src_lang)
        except XltError:
            if task.hub_id is None:
                raise
        raise XltError(
            f"train_file is required with data_dir: {self.data_dir} has no {task.name} training set in "
            f"{self.src_lang} (pass --train-file, or drop --data-dir to use the hub)"
        )

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

    def identity(self) -> dict[str, Any]:
        """What the run computes: every field, with local files and folders as the sha256 of their content.

        :data:`LATER_FIELDS` at their defaults are left out. Hub ids stay ids (with ``model_revision``); ``model``,
        ``data_dir``, ``train_file``,
        ``tatoeba_dir``, ``first_stage_file`` and a ``synonyms_file`` that are local are replaced by their content's
        hash
        (:func:`xltlib.files.content_sha256`), so the same run has the same id on every
        machine and in every checkout, wherever its files live.
        """
        values = self.to_dict()
        for name in LATER_FIELDS:
            if values[name] == RunConfig.__dataclass_fields__[name].default:
                del values[name]
        later = LATER_METHOD_PARAMS.get(self.method, {})
        values["method_params"] = {k: v for k, v in values["method_params"].items() if k not in later or v != later[k]}
        for name in ("model", "data_dir", "train_file", "tatoeba_dir", "first_stage_file"):
            if values.get(name) is not None and Path(values[name]).exists():
                values[name] = {"sha256": content_sha256(values[name], BUILD_REPORTS if name == "model" else ())}
        if values["method_params"].get("synonyms_file"):
            values["method_params"] = {
                **values["method_params"],
                "synonyms_file": {"sha256": content_sha256(values["method_params"]["synonyms_file"])},
            }
        return values

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`identity`: the same wherever and whenever it is computed."""
        return canonical_sha256(self.identity())

    @property
    def model_name(self) -> str:
        """How results name the model: the hub id (``@revision`` if pinned), or a local folder's name and content
        hash."""
        if Path(self.model).exists():
            return f"{Path(self.model).name}@{content_sha256(self.model, BUILD_REPORTS)[:12]}"
        return f"{self.model}@{self.model_revision}" if self.model_revision else self.model

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
