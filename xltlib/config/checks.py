"""Type and range checks shared by every validated setting; each failure is an XltError naming the setting."""

from __future__ import annotations

import math
from typing import Any

from xltlib.errors import XltError, did_you_mean


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise XltError(f"{name}: {value!r} is not one of {', '.join(choices)}{did_you_mean(value, choices)}")


def check_number(
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
