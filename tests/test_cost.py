"""The real study's cost plan: every run the study computes, priced from cited sizes and rates, with no data at hand."""

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from xltlib.config.logistics import Logistics
from xltlib.errors import XltError
from xltlib.report.cost import pass_ratio, plan_summary, study_plan

REPO = Path(__file__).resolve().parent.parent
XTREME = REPO / "notebooks" / "experiments" / "xtreme.yaml"
SPECS = yaml.safe_load(XTREME.read_text())["experiments"].values()
EXPERIMENTS = [spec["parameters"] for spec in SPECS]


@pytest.fixture(scope="module")
def plan():
    return study_plan(XTREME)


def module_level(path: Path, name: str) -> ast.AST:
    """The statement of ``path`` that defines ``name`` (read, not imported: the modules import torch)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == name for target in node.targets):
            return node
    raise AssertionError(f"{path} defines no {name}")


def test_the_plan_has_every_run_of_the_experiments_file(plan):
    fine_tuned = sum(len(parameters["methods"]) * len(parameters["seeds"]) for parameters in EXPERIMENTS)
    encoders = {(parameters["model"], parameters["task"]) for parameters in EXPERIMENTS}  # one pre-trained run each
    assert len(plan) == fine_tuned + len(encoders)
    assert (plan.method == "pretrained").sum() == len(encoders)
    assert not plan.duplicated(["experiment", "run_id"]).any()


def test_one_first_stage_per_model_and_seed_of_the_xcopa_experiments(plan):
    staged = {
        (parameters["model"], seed)
        for parameters in EXPERIMENTS
        if parameters["overrides"].get("first_stage_file")
        for seed in parameters["seeds"]
    }
    charged = plan[plan.first_stage > 0]
    assert len(charged) == len(staged) == 9 and set(charged.task) == {"xcopa"}
    assert len(set(zip(charged.model, charged.seed))) == len(staged)


def test_a_robust_method_costs_more_than_standard(plan):
    cost = plan[plan.experiment == "xnli-xtremer-xlmr-base"].groupby("method").total.sum()
    assert cost["pgd"] > cost["freelb"] > cost["standard"]


def test_huang2021_rs_da_trains_on_ten_copies_of_paws_x(plan):
    runs = plan[(plan.experiment == "pawsx-huang2021-xlmr-base") & (plan.seed == 1)].set_index("method")
    assert pass_ratio("rs_da", {}) == pass_ratio("standard", {}) == 1  # the same passes per step
    assert runs.training["rs_da"] == pytest.approx(10 * runs.training["standard"])


def test_weights_only_checkpoints_write_a_third_of_the_bytes(plan):
    weights_only = study_plan(XTREME, logistics=Logistics(checkpoint_weights_only=True))
    no_stage = plan.first_stage == 0  # a first stage's stage.pt holds the weights either way
    assert (3 * weights_only.checkpoint_bytes[no_stage] == plan.checkpoint_bytes[no_stage]).all()
    assert weights_only.checkpoints.sum() < plan.checkpoints.sum() / 2.9


def test_the_summary_names_the_runs_the_total_and_what_it_leaves_out(plan):
    summary = plan_summary(plan)
    assert f"{len(plan)} runs" in summary and f"In all: {plan.total.sum():,.0f} GPU-hours" in summary
    assert "xcopa-xtremer-mbert" in summary and "TB" in summary
    for left_out in ("hub", "tokenizing", "Ray", "fail", "sweep", "128 tokens"):
        assert left_out in summary.split("Left out:")[1]


def test_the_quick_plan_prices_the_quick_runs():
    quick = study_plan(XTREME, quick=True)
    marked = [spec["parameters"] for spec in SPECS if spec["quick"]]
    assert len(quick) == sum(len(parameters["methods"]) + 1 for parameters in marked)  # one seed, and the encoder
    assert set(quick.seed) == {0, 1}
    assert "stand-in" in plan_summary(quick)


def test_the_plan_needs_no_data_no_torch_and_seconds(tmp_path):
    script = (
        "import sys, time; from pathlib import Path; start = time.monotonic()\n"
        "from xltlib.report.cost import study_plan, plan_summary\n"
        f"plan_summary(study_plan(Path({str(XTREME)!r})))\n"
        "print('torch' in sys.modules, time.monotonic() - start)"
    )
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)  # no data here
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "False" and time.monotonic() - start < 30


def test_a_synthetic_experiments_file_is_refused():
    with pytest.raises(XltError, match="real profile"):
        study_plan(REPO / "notebooks" / "experiments" / "synthetic.yaml")


def test_study_dry_run_prints_the_plan_and_computes_nothing(tmp_path, capsys):
    from xltlib.__main__ import main

    assert main(["study", "--profile", "xtreme", "--dry-run", "--checkpoint-weights-only"]) == 0
    printed = capsys.readouterr().out
    assert f"{len(study_plan(XTREME))} runs" in printed and "GPU-hours on one H200" in printed
    assert "weights only" in printed and "Left out:" in printed
