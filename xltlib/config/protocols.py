"""Named fine-tuning protocols of the real profile: each published recipe's settings, declared once.

An experiment names its protocol; :func:`protocol_settings` turns (protocol, task, model)
into RunConfig fields and method parameters, under the experiment's own ``overrides``.
Every setting is either published (read off the pinned script in :attr:`Protocol.sources`)
or ours, with the reason in :attr:`Protocol.ours`; :func:`protocol_table` lays both out for
the book.

- ``huang2021``: Huang et al. (2021)'s released scripts (uclanlp/Robust-XLT): XNLI 1 epoch,
  PAWS-X 3; an effective batch of 32; lr 2e-5; max length 128; the best English-dev model of
  those scored every 1,000 (XNLI) or 500 (PAWS-X) steps; RS-DA as Robust-XLT's ``perturb.py``
  makes it: only the copies, 3 per XNLI pair and 10 per PAWS-X pair. They did not run XCOPA.
- ``huang2021-cpu``: huang2021's structure (best English-dev checkpoint, RS-DA as offline copies,
  XNLI 1 epoch, PAWS-X and XCOPA several, XCOPA after a SocialIQa stage as in xtreme-r) at sizes a
  2-core CPU computes for multilingual-e5-small (the e5 profile, :mod:`xltlib.profiles.e5`). Fixed before any
  run, not tuned: batches of 16 with lr 1e-4 (a few dozen steps at 2e-5 leave a fresh head untrained),
  the word-embedding matrix frozen, batches grouped by length, one RS-DA copy beside each original (the
  variant its runs were computed with), 512 (XNLI) or 256 training items, 100 evaluation items per language
  and 100 sentences for alignment, the best of its epoch ends. At these sizes fine-tuning barely leaves chance
  (English dev, standard, XNLI: 0.41 with 512 items; 0.45 with 2,048 at lr 1e-4 or 5e-5; 0.34 and 0.35 at 3e-5
  and 3e-4 with 512), which the e5 chapters state. ``huang2021`` is the same study at full size.
- ``xtreme-r``: XTREME-R's fine-tuning scripts (google-research/xtreme): 5 epochs, lr 2e-5
  (3e-5 for large models on XNLI and XCOPA), max length 128, the same batch, the best English-dev
  model of those scored every 100 (XNLI) or 200 (PAWS-X) steps; XCOPA after 5 epochs of SocialIQa,
  its last model.

All keep XTREME's ``run_classify.py`` optimiser defaults: no warm-up, no weight decay, clipping at 1.

The published scripts split the batch of 32 into micro-batches of 8 (2 for large models) and
accumulate. Here a step is one micro-batch of 32 (``grad_accum_steps`` 1): the same
gradient, a fraction of the passes; training splits a step only after running out of GPU
memory (:func:`xltlib.training.train_loop`), or when ``grad_accum_steps`` asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from xltlib.errors import XltError, unknown

ROBUST_XLT = "uclanlp/Robust-XLT@0bb3c34ff1575be3ac07a8ead707d32ce30e57ff"
XTREME = "google-research/xtreme"
XTREME_SCRIPTS = {
    "xnli": f"{XTREME}@091824888a60162ad9ea10d7fe67aa561615e4ca scripts/train_xnli.sh",
    "pawsx": f"{XTREME}@1e21ba0744b2bf207e4efa9bd0238b80ee18afac scripts/train_pawsx.sh",
    "xcopa": f"{XTREME}@c061466856f8e04d403b43d2562657d6ee72424c scripts/train_xcopa.sh",
}

STRENGTHS_ARE_OURS = (
    "PGD, FreeLB and RS-RP strengths: the synthetic profile's defaults until `python -m xltlib sweep` chooses them "
    "on English dev for the model (the published scripts run RS-DA only)"
)


@dataclass(frozen=True)
class Protocol:
    """A fine-tuning recipe.

    Attributes:
        name: how experiments name it.
        sources: per task, the script its published settings are read from (``owner/repo@commit path``).
        epochs: per task (a task missing here is one the recipe never ran).
        settings: RunConfig fields shared by its tasks.
        select_checkpoint: ``last`` or ``source_dev`` (best accuracy on the source language's dev set).
        select_every_steps: per task, how often source dev is scored (absent: at epoch ends).
        rs_da_params: per task, the rs_da parameters (offline copies and how they are made).
        large_learning_rate: per task, the learning rate of large models where it differs.
        task_settings: per task, RunConfig fields over ``settings`` (sizes of a scaled-down recipe).
        ours: setting → why it is our choice rather than the published one (the book's protocol table).
    """

    name: str
    sources: dict[str, str]
    epochs: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    select_checkpoint: str = "last"
    select_every_steps: dict[str, int] = field(default_factory=dict)
    rs_da_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    large_learning_rate: dict[str, float] = field(default_factory=dict)
    task_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    ours: dict[str, str] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """Where the recipe comes from, in one line."""
        return "; ".join(dict.fromkeys(self.sources.values()))


_SHARED = {"learning_rate": 2e-5, "max_seq_length": 128, "warmup_ratio": 0.0, "weight_decay": 0.0}
_FULL_BATCH = {"batch_size": 32, "grad_accum_steps": 1}
_OUR_MICRO_BATCH = (
    "one micro-batch of 32 (the scripts: 8 × 4, large models 2 × 16): the same gradient in fewer passes; split "
    "after an out-of-memory error"
)
_OUR_SEEDS = "seeds 1, 2, 3 (the scripts: one run, seed 7 in Robust-XLT, 42 in XTREME)"
_FAITHFUL_RS_DA = "robust-xlt"  # rs_da copies_style: the copies as Robust-XLT's perturb.py writes them

PROTOCOLS: dict[str, Protocol] = {
    "huang2021": Protocol(
        "huang2021",
        sources={task: f"{ROBUST_XLT} scripts/train_{task}.sh, perturb.py" for task in ("xnli", "pawsx")},
        epochs={"xnli": 1.0, "pawsx": 3.0},
        settings={**_SHARED, **_FULL_BATCH},
        select_checkpoint="source_dev",
        select_every_steps={"xnli": 1000, "pawsx": 500},
        rs_da_params={
            "xnli": {"copies": 3, "copies_style": _FAITHFUL_RS_DA},
            "pawsx": {"copies": 10, "copies_style": _FAITHFUL_RS_DA},
        },
        ours={"micro-batch": _OUR_MICRO_BATCH, "seeds": _OUR_SEEDS, "strengths": STRENGTHS_ARE_OURS},
    ),
    "huang2021-cpu": Protocol(
        "huang2021-cpu",
        sources={
            task: "huang2021 at 2-core CPU scale (xltlib/config/protocols.py)" for task in ("xnli", "pawsx", "xcopa")
        },
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
        rs_da_params={task: {"copies": 1} for task in ("xnli", "pawsx", "xcopa")},
        task_settings={
            "xnli": {"max_train_examples": 512, "eval_split": "dev"},
            "pawsx": {"max_train_examples": 256, "eval_split": "dev"},
            "xcopa": {"max_train_examples": 256, "eval_split": "test"},
        },
        ours={"everything": "a CPU-scale version of huang2021, fixed before any run (module docstring)"},
    ),
    "xtreme-r": Protocol(
        "xtreme-r",
        sources=XTREME_SCRIPTS,
        epochs={"xnli": 5.0, "pawsx": 5.0, "xcopa": 5.0},
        settings={**_SHARED, **_FULL_BATCH},
        select_every_steps={"xnli": 100, "pawsx": 200},  # XCOPA: run_xcopa.py predicts with its last model
        large_learning_rate={"xnli": 3e-5, "xcopa": 3e-5},
        ours={
            "micro-batch": _OUR_MICRO_BATCH,
            "seeds": _OUR_SEEDS,
            "strengths": STRENGTHS_ARE_OURS,
            "rs_da": "RS-DA with fresh synonym draws whenever a batch is drawn (XTREME-R has no robust training)",
        },
    ),
}


def is_large(model: str) -> bool:
    """Large models take their own learning rate in some recipes; ``-large`` in the name, as XLM-R large."""
    return "large" in model.rsplit("/", 1)[-1].lower()


STEP_MATCHED = "standard_matched"
"""The ``standard`` arm trained for as many optimizer steps as ``rs_da``'s copies take (:func:`step_matched_params`)."""


def step_matched_params(rs_da: dict[str, Any]) -> dict[str, Any]:
    """``standard_matched``'s parameters for ``rs_da``'s: its epochs multiplied by the copies' share of the data."""
    copies = rs_da.get("copies", 0)
    factor = copies if rs_da.get("copies_style") == _FAITHFUL_RS_DA else copies + 1
    return {"epochs_factor": float(max(factor, 1))}


def protocol_settings(name: str, task: str, model: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """RunConfig fields and method parameters of protocol ``name`` for ``task`` fine-tuning ``model``."""
    protocol = _protocol_for(name, task)
    every = protocol.select_every_steps.get(task)
    fields = {
        **protocol.settings,
        "epochs": protocol.epochs[task],
        "select_checkpoint": "source_dev" if every else protocol.select_checkpoint,
        **({"select_every_steps": every} if every else {}),
        **protocol.task_settings.get(task, {}),
    }
    if is_large(model) and task in protocol.large_learning_rate:
        fields["learning_rate"] = protocol.large_learning_rate[task]
    rs_da = protocol.rs_da_params.get(task)
    params = {"rs_da": rs_da, STEP_MATCHED: step_matched_params(rs_da)} if rs_da else {}
    return fields, params


def _protocol_for(name: str, task: str) -> Protocol:
    if name not in PROTOCOLS:
        raise unknown("protocol", name, PROTOCOLS)
    protocol = PROTOCOLS[name]
    if task not in protocol.epochs:
        raise XltError(
            f"protocol {name} has no recipe for {task} (it covers {', '.join(protocol.epochs)}; source: "
            f"{protocol.source})"
        )
    return protocol


def protocol_table(name: str) -> pd.DataFrame:
    """One row per (task, setting) of protocol ``name``: its value (base models; large where it differs) and where
    it comes from (the published script, or ours and why)."""
    protocol, rows = PROTOCOLS[name], []
    for task in protocol.epochs:
        published = f"published: {protocol.sources[task]}"
        for setting, value in _task_settings_in_words(name, task).items():
            why = protocol.ours.get("micro-batch" if setting == "batch" else setting) or protocol.ours.get("everything")
            if setting == STEP_MATCHED:
                why = "as many optimizer steps as rs_da's copies take, to separate substitution from training longer"
            rows.append(
                {"task": task, "setting": setting, "value": value, "source": f"ours: {why}" if why else published}
            )
        for setting in ("seeds", "strengths"):
            if setting in protocol.ours:
                rows.append(
                    {"task": task, "setting": setting, "value": "", "source": f"ours: {protocol.ours[setting]}"}
                )
    return pd.DataFrame(rows)


def _task_settings_in_words(name: str, task: str) -> dict[str, str]:
    base, params = protocol_settings(name, task, "base")
    large = protocol_settings(name, task, "large")[0]
    every = base.get("select_every_steps")
    if every:
        selection = f"best English dev, every {every} steps"
    else:
        selection = "best English dev, at epoch ends" if base["select_checkpoint"] == "source_dev" else "last model"
    learning_rate = f"{base['learning_rate']:g}"
    if large["learning_rate"] != base["learning_rate"]:
        learning_rate += f" (large {large['learning_rate']:g})"
    rs_da = params.get("rs_da")
    words = {
        "epochs": f"{base['epochs']:g}",
        "learning rate": learning_rate,
        "batch": f"{base['batch_size']} in {base['grad_accum_steps']} micro-batch(es)",
        "max length": str(base["max_seq_length"]),
        "warm-up, weight decay": f"{base['warmup_ratio']:g}, {base['weight_decay']:g}",
        "checkpoint": selection,
        "rs_da": f"{rs_da['copies']} copies ({rs_da.get('copies_style', 'with-originals')})"
        if rs_da
        else "fresh draws",
    }
    if STEP_MATCHED in params:
        words[STEP_MATCHED] = f"standard for {params[STEP_MATCHED]['epochs_factor']:g}× the epochs"
    return words


def protocol_markdown(name: str) -> str:
    """:func:`protocol_table` as the book prints it: a setting per row, a column per task, then the source (the book's
    page holds this text verbatim, and a test keeps the two equal)."""
    table = protocol_table(name)
    wide = table.pivot(index="setting", columns="task", values="value").reindex(table.setting.unique())
    wide = wide[list(PROTOCOLS[name].epochs)].fillna("")
    sources = table.groupby("setting", sort=False).source.agg(lambda s: "; ".join(dict.fromkeys(s)))
    wide["source"] = sources.str.replace(r"^published: .*", "published", regex=True)
    header = f"| setting | {' | '.join(wide.columns)} |\n|{'---|' * (len(wide.columns) + 1)}\n"
    return header + "\n".join(f"| {setting} | {' | '.join(row)} |" for setting, row in wide.iterrows())
