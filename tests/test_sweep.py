"""``python -m xltlib sweep``: the written rule, and the real profile's path end to end on a stand-in encoder."""

from __future__ import annotations

import pandas as pd
import pytest

from xltlib.__main__ import main
from xltlib.errors import XltError
from xltlib.store import load_results
from xltlib.sweep import Sweep, choose_strengths


def _table(drops: dict[tuple[str, float], dict[str, float]]) -> pd.DataFrame:
    """Runs whose dev accuracy is standard's (0.8) minus the given drop in points, two seeds each."""
    rows = [
        {"task": task, "method": "standard", "strength": None, "seed": seed, "dev_accuracy": 0.8}
        for task in ("a", "b")
        for seed in (1, 2)
    ]
    for (method, strength), by_task in drops.items():
        for task, drop in by_task.items():
            rows += [
                {"task": task, "method": method, "strength": strength, "seed": seed, "dev_accuracy": 0.8 - drop / 100}
                for seed in (1, 2)
            ]
    return pd.DataFrame(rows)


def test_the_rule_takes_the_strongest_rung_whose_weaker_rungs_all_pass_on_every_task():
    table = _table(
        {
            ("pgd", 0.1): {"a": 0.2, "b": 0.5},
            ("pgd", 0.3): {"a": 0.9, "b": 0.0},
            ("pgd", 1.0): {"a": 3.0, "b": 0.1},  # fails on a
            ("pgd", 3.0): {"a": 0.0, "b": 0.0},  # passes alone: not chosen, a weaker rung failed
            ("rs_rp", 0.1): {"a": 0.0, "b": 1.5},  # the weakest fails on b: nothing is chosen
            ("rs_rp", 0.3): {"a": 0.0, "b": 0.0},
        }
    )
    assert choose_strengths(table, budget=1.0) == {"pgd": 0.3, "rs_rp": None}
    assert choose_strengths(table, budget=2.0) == {"pgd": 0.3, "rs_rp": 0.3}


def test_a_bad_sweep_fails_before_any_run():
    with pytest.raises(XltError, match="did you mean 'pgd'"):
        Sweep("synthetic", methods=("pgdd",))
    with pytest.raises(XltError, match="needs --model"):
        Sweep("xtreme")
    with pytest.raises(XltError, match="did you mean 'xtreme'"):
        Sweep("xtrem")


def test_the_real_profiles_sweep_reads_only_english_dev_and_prints_the_choice(tmp_path, capsys, shared_data):
    runs = tmp_path / "runs"
    argv = ["sweep", "--profile", "xtreme", "--quick", "--tasks", "pawsx", "--methods", "rs_rp", "--seeds", "1"]
    assert main([*argv, "--engine", "local", "--out", str(runs), "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "rs_rp   sigma = " in printed and "dev accuracy minus standard" in printed
    accuracy = load_results(runs).query("metric == 'accuracy'")
    assert set(accuracy.tgt_lang) == {"en"} and set(accuracy.method) == {"standard", "rs_rp"}
    assert len(accuracy) == 5  # standard and four rungs
