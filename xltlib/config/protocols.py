"""Named fine-tuning protocols of the real profile: each published recipe's settings, declared once.

An experiment names its protocol; :func:`protocol_settings` turns (protocol, task, model)
into RunConfig fields and method parameters, under the experiment's own ``overrides``.

- ``huang2021``: Huang et al. (2021)'s released scripts (uclanlp/Robust-XLT
  ``scripts/train_{xnli,pawsx}.sh``): XNLI 1 epoch, PAWS-X 3; batch 8 × 4 accumulation
  (2 × 16 for large models); lr 2e-5; max length 128; the best checkpoint on English dev;
  RS-DA as offline copies, 3 per XNLI pair and 10 per PAWS-X pair. They did not run XCOPA.
- ``huang2021-cpu``: huang2021's structure (best English-dev checkpoint, RS-DA as offline copies,
  XNLI 1 epoch, PAWS-X and XCOPA several, XCOPA after a SocialIQa stage as in xtreme-r) at sizes a
  2-core CPU computes for multilingual-e5-small (the e5 profile, :mod:`xltlib.profiles.e5`). Fixed before any
  run, not tuned: batches of 16 with lr 1e-4 (a few dozen steps at 2e-5 leave a fresh head untrained),
  the word-embedding matrix frozen, batches grouped by length, one RS-DA copy, 512 (XNLI) or 256
  training items, 100 evaluation items per language and 100 sentences for alignment. At these sizes
  fine-tuning barely leaves chance (English dev, standard, XNLI: 0.41 with 512 items; 0.45 with 2,048 at
  lr 1e-4 or 5e-5; 0.34 and 0.35 at 3e-5 and 3e-4 with 512), which the e5 chapters state.
  ``huang2021`` is the same study at full size.
- ``xtreme-r``: XTREME-R's fine-tuning scripts (google-research/xtreme): 5 epochs, lr 2e-5
  (3e-5 for large models on XCOPA), max length 128, the same batch as above, the last checkpoint.

Both keep XTREME's ``run_classify.py`` optimiser defaults: no warm-up, no weight decay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xltlib.errors import XltError, unknown


@dataclass(frozen=True)
class Protocol:
    """A fine-tuning recipe.

    Attributes:
        name: how experiments name it.
        source: where its settings come from.
        epochs: per task (a task missing here is one the recipe never ran).
        settings: RunConfig fields shared by its tasks.
        select_checkpoint: ``last`` or ``source_dev`` (best accuracy on the source language's dev set).
        rs_da_copies: per task, offline RS-DA copies per training example (absent: fresh draws per batch).
        large_learning_rate: per task, the learning rate of large models where it differs.
        task_settings: per task, RunConfig fields over ``settings`` (sizes of a scaled-down recipe).
    """

    name: str
    source: str
    epochs: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    select_checkpoint: str = "last"
    rs_da_copies: dict[str, int] = field(default_factory=dict)
    large_learning_rate: dict[str, float] = field(default_factory=dict)
    task_settings: dict[str, dict[str, Any]] = field(default_factory=dict)


_SHARED = {"learning_rate": 2e-5, "max_seq_length": 128, "warmup_ratio": 0.0, "weight_decay": 0.0}

PROTOCOLS: dict[str, Protocol] = {
    "huang2021": Protocol(
        "huang2021",
        "uclanlp/Robust-XLT scripts/train_{xnli,pawsx}.sh (Huang et al. 2021)",
        epochs={"xnli": 1.0, "pawsx": 3.0},
        settings=_SHARED,
        select_checkpoint="source_dev",
        rs_da_copies={"xnli": 3, "pawsx": 10},
    ),
    "huang2021-cpu": Protocol(
        "huang2021-cpu",
        "huang2021 at 2-core CPU scale (the e5 profile; xltlib/config/protocols.py)",
        epochs={"xnli": 1.0, "pawsx": 2.0, "xcopa": 2.0},
        select_checkpoint="source_dev",
        settings={
            **_SHARED,
            "learning_rate": 1e-4,
            "batch_size": 16,
            "grad_accum_steps": 2,
            "freeze_word_embeddings": True,
            "group_by_length": True,
            "max_eval_examples": 100,
            "max_align_sentences": 100,
        },
        rs_da_copies={"xnli": 1, "pawsx": 1, "xcopa": 1},
        task_settings={
            "xnli": {"max_train_examples": 512, "eval_split": "dev"},
            "pawsx": {"max_train_examples": 256, "eval_split": "dev"},
            "xcopa": {"max_train_examples": 256, "eval_split": "test"},
        },
    ),
    "xtreme-r": Protocol(
        "xtreme-r",
        "google-research/xtreme scripts/train_{xnli,xcopa}.sh (Ruder et al. 2021)",
        epochs={"xnli": 5.0, "pawsx": 5.0, "xcopa": 5.0},
        settings=_SHARED,
        large_learning_rate={"xcopa": 3e-5},
    ),
}


def is_large(model: str) -> bool:
    """Large models train with micro-batches of 2 (memory); ``-large`` in the name, as XLM-R large."""
    return "large" in model.rsplit("/", 1)[-1].lower()


def protocol_settings(name: str, task: str, model: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """RunConfig fields and method parameters of protocol ``name`` for ``task`` fine-tuning ``model``."""
    if name not in PROTOCOLS:
        raise unknown("protocol", name, PROTOCOLS)
    protocol = PROTOCOLS[name]
    if task not in protocol.epochs:
        raise XltError(
            f"protocol {name} has no recipe for {task} (it covers {', '.join(protocol.epochs)}; source: "
            f"{protocol.source})"
        )
    fields = {
        "batch_size": 32,
        "grad_accum_steps": 16 if is_large(model) else 4,
        **protocol.settings,
        "epochs": protocol.epochs[task],
        "select_checkpoint": protocol.select_checkpoint,
        **protocol.task_settings.get(task, {}),
    }
    if is_large(model) and task in protocol.large_learning_rate:
        fields["learning_rate"] = protocol.large_learning_rate[task]
    params = {"rs_da": {"copies": protocol.rs_da_copies[task]}} if task in protocol.rs_da_copies else {}
    return fields, params
