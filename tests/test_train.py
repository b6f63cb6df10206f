"""The loop's building blocks: data plan, gradient accumulation, optimizer groups."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from xltlib.config import RunConfig
from xltlib.data.batches import TokenizedPairs
from xltlib.methods import make_method
from xltlib.methods.base import ModelCall
from xltlib.models import autocast_for, load_classifier
from xltlib.training import (
    Checkpointing,
    OptimizerSettings,
    StepPlan,
    accumulate_gradients,
    fit,
    make_optimizer,
    train_loop,
)

CPU = torch.device("cpu")


def test_every_epoch_visits_every_example_once_in_a_seeded_order():
    plan = StepPlan(n_examples=50, batch_size=8, grad_accum_steps=2, epochs=2.0, seed=3)
    assert plan.steps_per_epoch == 7 and plan.total_steps == 14
    epochs = [
        np.concatenate([np.concatenate(plan.micro_batches(s)) for s in range(e * 7, (e + 1) * 7)]) for e in (0, 1)
    ]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(50))
    assert not np.array_equal(epochs[0], epochs[1])
    assert [len(m) for m in plan.micro_batches(0)] == [4, 4]
    assert [len(m) for m in plan.micro_batches(6)] == [2]  # the epoch's ragged last batch
    same_seed = StepPlan(50, 8, seed=3, epochs=2.0, grad_accum_steps=2)
    assert all(np.array_equal(a, b) for a, b in zip(plan.micro_batches(9), same_seed.micro_batches(9)))


def test_fractional_epochs_round_up_to_whole_steps():
    assert StepPlan(100, 10, 0, epochs=0.25).total_steps == 3


@pytest.fixture(scope="module")
def tiny(tiny_xlmr):
    return tiny_xlmr(words=60, lengths=(3, 15), documents=200, vocab_size=120)


def test_accumulated_gradients_equal_full_batch_gradients(tiny):
    """Micro-batches of different padded lengths, weighted by size, give the batch-mean gradient."""
    path, corpus = tiny
    model, tokenizer = load_classifier(path, num_labels=3)
    model.eval()  # no dropout, so both passes see the same function
    frame = pd.DataFrame({"text_a": corpus[:10], "text_b": corpus[10:20], "label": [i % 3 for i in range(10)]})
    data = TokenizedPairs(tokenizer, frame, max_length=64, device=torch.device("cpu"))
    method = make_method("standard", {})

    def gradients(micro_batches):
        model.zero_grad()

        def backward(rows, step, weight):
            return method.backward(ModelCall(model), data.batch(rows, step), scale=weight)

        loss = accumulate_gradients(backward, micro_batches, 0, torch.device("cpu"))
        return loss, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    whole_loss, whole = gradients([np.arange(10)])
    split_loss, split = gradients([np.arange(0, 4), np.arange(4, 8), np.arange(8, 10)])
    assert torch.allclose(whole_loss, split_loss, atol=1e-6)
    assert torch.allclose(whole, split, atol=1e-6, rtol=1e-4)


def test_no_weight_decay_on_biases_and_layer_norms(tiny):
    model, _ = load_classifier(tiny[0], num_labels=2)
    decay, no_decay = make_optimizer(
        model, OptimizerSettings.of_run(RunConfig(task="pawsx", model=str(tiny[0])))
    ).param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_pretraining_stages_decay_every_weight_as_the_shipped_recipe_did(tiny):
    model, _ = load_classifier(tiny[0], num_labels=2)
    settings = OptimizerSettings(1e-3, 0.01, 0.05, decay_everything=True, fused=True)
    (group,) = make_optimizer(model, settings).param_groups
    assert group["weight_decay"] == 0.01 and len(group["params"]) == len(list(model.parameters()))


def test_cpu_autocast_is_bf16_only_when_asked():
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    with autocast_for(torch.device("cpu")):
        assert (x @ x.T).dtype == torch.float32
    with autocast_for(torch.device("cpu"), cpu_bf16=True):
        assert (x @ x.T).dtype == torch.bfloat16


def _regression_loop(plan: StepPlan, out_of_memory_above: int | None = None) -> tuple[list[float], torch.Tensor]:
    """Least squares on fixed data through :func:`train_loop`; with ``out_of_memory_above``, any micro-batch larger
    than that raises the GPU's out-of-memory error, as a too-large batch would."""
    torch.manual_seed(0)
    inputs, targets = torch.randn(32, 5), torch.randn(32)
    module = torch.nn.Linear(5, 1)

    def backward(rows, step, weight):
        if out_of_memory_above is not None and len(rows) > out_of_memory_above:
            torch.nn.functional.mse_loss(module(inputs[rows]).squeeze(-1), targets[rows]).backward()  # a partial pass
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        loss = torch.nn.functional.mse_loss(module(inputs[rows]).squeeze(-1), targets[rows])
        (loss * weight).backward()
        return loss.detach()

    settings = OptimizerSettings(learning_rate=0.05, weight_decay=0.0, warmup_ratio=0.0)
    losses = train_loop(module, plan, settings, backward, torch.device("cpu"), "regression", progress=False)
    return losses, module.weight.detach().clone()


def test_out_of_memory_splits_the_step_into_micro_batches_and_trains_the_same():
    whole, whole_weights = _regression_loop(StepPlan(32, 16, seed=1, epochs=2))
    plan = StepPlan(32, 16, seed=1, epochs=2)
    split, split_weights = _regression_loop(plan, out_of_memory_above=4)
    assert plan.grad_accum_steps == 4  # 16 → 8 → 4 rows per micro-batch, kept for the steps after
    assert split == pytest.approx(whole, rel=1e-5)  # the half-done pass left no gradient behind
    assert torch.allclose(split_weights, whole_weights, atol=1e-6)


def test_out_of_memory_with_single_row_micro_batches_is_raised():
    with pytest.raises(torch.OutOfMemoryError):
        _regression_loop(StepPlan(32, 16, seed=1, epochs=1, grad_accum_steps=16), out_of_memory_above=0)


def test_the_step_matched_standard_arm_takes_epochs_factor_times_the_steps(tiny):
    path, corpus = tiny
    pairs = pd.DataFrame({"text_a": corpus[:32], "text_b": corpus[32:64], "label": [i % 2 for i in range(32)]})
    steps = {}
    for method, params in (("standard", {}), ("standard_matched", {"epochs_factor": 3.0})):
        model, tokenizer = load_classifier(path, 2)
        config = RunConfig(task="pawsx", model=str(path), method=method, method_params=params, batch_size=8)
        steps[method] = len(fit(model, tokenizer, pairs, config, Checkpointing(Path(tempfile.mkdtemp()) / "c.pt"), CPU))
    assert steps == {"standard": 8, "standard_matched": 24}  # 32 rows in batches of 8, 2 epochs; then 3 × that


def test_a_weights_only_checkpoint_leaves_out_adams_moments_and_still_resumes(tmp_path, caplog):
    torch.manual_seed(0)
    inputs, targets = torch.randn(32, 5), torch.randn(32)
    module = torch.nn.Linear(5, 1)

    def backward(rows, step, weight):
        loss = torch.nn.functional.mse_loss(module(inputs[rows]).squeeze(-1), targets[rows])
        (loss * weight).backward()
        return loss.detach()

    settings = OptimizerSettings(learning_rate=0.05, weight_decay=0.0, warmup_ratio=0.0)
    checkpoint = Checkpointing(tmp_path / "weights.pt", every=2, weights_only=True)
    train_loop(module, StepPlan(32, 8, seed=1, steps=3), settings, backward, CPU, "first", checkpoint, progress=False)
    state = torch.load(checkpoint.path, weights_only=False)
    assert state["step"] == 3 and "optimizer" not in state and "model" in state
    resumed = train_loop(module, StepPlan(32, 8, seed=1, steps=5), settings, backward, CPU, "more", checkpoint, False)
    assert len(resumed) == 2  # steps 4 and 5: it resumed at step 3
    assert "AdamW's moments restart at zero" in caplog.text
