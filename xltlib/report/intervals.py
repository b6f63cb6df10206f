"""Estimates with 95% intervals, as the analysis reports them: one flat dict per estimate
(``estimate``, ``std_error``, ``ci_low``, ``ci_high``, ``p_value``), and its text for the book's prose."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

CONFIDENCE = 0.95


def nan_estimate() -> dict:
    """An estimate that could not be made: every statistic NaN."""
    return dict.fromkeys(["estimate", "std_error", "ci_low", "ci_high", "p_value"], np.nan)


def mean_ci(values: np.ndarray) -> dict:
    """Mean with a one-sample t interval and p-value (NaN interval below two values)."""
    values = np.asarray(values, dtype=float)  # gains of real-data runs arrive as objects (their draw is missing)
    if len(values) == 0:
        return nan_estimate()
    mean = float(values.mean())
    if len(values) < 2:
        return {**nan_estimate(), "estimate": mean}
    sem = float(stats.sem(values))
    if sem == 0:
        return {"estimate": mean, "std_error": 0.0, "ci_low": mean, "ci_high": mean, "p_value": np.nan}
    low, high = stats.t.interval(CONFIDENCE, len(values) - 1, loc=mean, scale=sem)
    return {
        "estimate": mean,
        "std_error": sem,
        "ci_low": low,
        "ci_high": high,
        "p_value": float(stats.ttest_1samp(values, 0.0).pvalue),
    }


def describe(row: pd.Series, scale: float = 1.0, unit: str = "", digits: int = 1) -> str:
    """``"+2.1 pts (95% CI −0.4 to +4.6)"``: an estimate and its interval for the book's prose."""

    def number(value: float) -> str:
        if pd.isna(value):
            return "n/a"
        rounded = round(value * scale, digits) + 0.0  # + 0.0 turns a rounded −0.0 into +0.0
        return f"{rounded:+.{digits}f}".replace("-", "−")

    interval = "" if pd.isna(row["ci_low"]) else f" (95% CI {number(row['ci_low'])} to {number(row['ci_high'])})"
    return f"{number(row['estimate'])}{unit}{interval}"


def holm(p_values: pd.Series) -> pd.Series:
    """Holm-adjusted p-values of one family of tests; NaN entries (no test) stay NaN and do not count in it."""
    adjusted = pd.Series(np.nan, index=p_values.index)
    present = p_values.dropna()
    if len(present):
        adjusted[present.index] = multipletests(present.to_numpy(float), method="holm")[1]
    return adjusted
