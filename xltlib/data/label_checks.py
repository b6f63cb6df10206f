"""Label checks before training: the label set, class balance, and no unlabeled evaluation split.

Loaders already refuse a label outside the task's set, naming the file and line; these
checks look at a split as a whole. A training split may be partly labeled (the PAWS-X hub
marks unlabeled rows with −1): the unlabeled rows are reported and left out. An evaluation
split must be fully labeled and must not carry one class on every row, which is what a copy
with hidden labels filled by a placeholder looks like (the English COPA test set here is
all 0s).
"""

from __future__ import annotations

import logging

import pandas as pd

from xltlib.data.loading import describe_source, require_labels
from xltlib.data.tasks import Task
from xltlib.errors import XltError

log = logging.getLogger(__name__)

PLACEHOLDER_ROWS = 20
"""An evaluation split of at least this many rows with a single class is taken for placeholder labels."""

IMBALANCE_RATIO = 3.0
"""A training split whose largest class outnumbers its smallest by more than this is reported."""


def class_counts(frame: pd.DataFrame, task: Task) -> dict[str, int]:
    """Labeled rows per class, every class of the task listed (0 where absent)."""
    counts = frame["label"].dropna().astype(int).value_counts()
    return {label: int(counts.get(i, 0)) for i, label in enumerate(task.labels)}


def checked_training_split(frame: pd.DataFrame, task: Task) -> pd.DataFrame:
    """The labeled rows of a training split, after checking that they exist and cover every class.

    Unlabeled rows are dropped and reported; a missing class is an error; a strong imbalance is reported.
    """
    what = describe_source(frame)
    labeled = frame[frame["label"].notna()]
    if labeled.empty:
        raise XltError(f"training split {what} has no labels; training needs labeled rows")
    if len(labeled) < len(frame):
        log.warning(
            "training split %s: %d of %d rows are unlabeled (hub label -1 or none) and are left out",
            what,
            len(frame) - len(labeled),
            len(frame),
        )
    counts = class_counts(labeled, task)
    missing = [label for label, n in counts.items() if n == 0]
    if missing:
        raise XltError(
            f"training split {what} has no example of {', '.join(missing)} "
            f"(classes: {counts}); a classifier cannot learn a class it never sees"
        )
    if max(counts.values()) > IMBALANCE_RATIO * min(counts.values()):
        log.warning("training split %s is imbalanced: %s", what, counts)
    log.debug("training split %s: %d labeled rows, classes %s", what, len(labeled), counts)
    result = labeled.reset_index(drop=True)
    result.attrs = dict(frame.attrs)
    return result


def check_evaluation_split(frame: pd.DataFrame, task: Task) -> None:
    """Refuse an evaluation split that is unlabeled, partly labeled, or labeled with one placeholder class."""
    require_labels(frame)
    counts = class_counts(frame, task)
    present = [label for label, n in counts.items() if n]
    if len(present) == 1 and len(task.labels) > 1 and len(frame) >= PLACEHOLDER_ROWS:
        raise XltError(
            f"{describe_source(frame)}: all {len(frame)} rows carry label {present[0]!r}, which looks like "
            "placeholder labels (a copy whose real labels are hidden, such as SuperGLUE's COPA test); "
            "accuracy on it would be meaningless. Evaluate on another split or a labeled copy."
        )
