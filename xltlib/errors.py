"""One exception type for every user-facing problem, and the "did you mean" helper."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class XltError(Exception):
    """A problem the user can fix (bad parameter, missing file, unlabeled split).

    The CLI prints its message as one line and exits with status 2, before any compute.
    """


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return `" (did you mean 'x'?)"` for a near miss among `choices`, else `""`."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown(kind: str, value: str, choices: Iterable[str]) -> XltError:
    """An XltError for an unknown name, listing the valid ones and the nearest match."""
    choices = sorted(choices)
    return XltError(f"unknown {kind} {value!r}{did_you_mean(value, choices)}; choose from: {', '.join(choices)}")
