"""Masked-LM pre-training step of the synthetic encoder: each speed-up of the build, measured in one run.

    python benchmarks/pretrain_step.py [--device cpu] [--steps 20]

The default profile's encoder shape and real batches of its corpora (generated into
``--cache`` if absent; a tokenizer is trained on a slice of them). Each row adds one change
to the row above (the last row, to today's build), timed in alternation with the reference
so both see the same machine load:

- reference: ``model(**batch).loss`` — the LM head on every token, SDPA attention, XLM-R's
  dropout 0.1, full precision on CPU;
- sparse head: :func:`xltlib.synthetic.pretraining.masked_lm_loss` (the same loss, head on masked tokens only);
- eager attention on CPU (what the build's training loops use there);
- bf16 autocast (``PretrainSpec.bf16``);
- batches of similar length (``PretrainSpec.group_by_length``, Hugging Face's
  ``group_by_length``: the same documents per epoch, less padding) and fused AdamW:
  today's build;
- dropout masks drawn from numpy random bytes (a candidate, not adopted: it needs an
  attention function of its own, and the build fits its budget without it);
- no dropout (``PretrainSpec.dropout=0``; a change of recipe, rejected), on today's build.

Prints ms per step, reference ÷ row, and time ÷ floor, where the floor is the step's
matmul FLOPs (6 × (tokens × non-embedding encoder weights + predicted tokens × LM-head
weights)) at the fp32 / bf16 matmul rate measured on this device in this run.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from common import matmul_rate, paired_best_times
from transformers import AttentionInterface, DataCollatorForLanguageModeling

from xltlib.models import autocast_for, init_model, train_tokenizer
from xltlib.synthetic import generated, recipe
from xltlib.synthetic.pretraining import _dropout, eager_attention_on_cpu, masked_lm_loss
from xltlib.training import StepPlan


class Step(NamedTuple):
    name: str
    sparse_head: bool = True
    eager_attention: bool = True
    bf16: bool = True
    length_grouped: bool = False
    fused_adamw: bool = False
    numpy_dropout: bool = False
    dropout: float = 0.1


STEPS = (
    Step("reference", sparse_head=False, eager_attention=False, bf16=False),
    Step("+ sparse head", eager_attention=False, bf16=False),
    Step("+ eager attention", bf16=False),
    Step("+ bf16 autocast"),
    Step("+ length-grouped batches", length_grouped=True),
    Step("+ fused AdamW (today's build)", length_grouped=True, fused_adamw=True),
    Step("+ numpy dropout masks (candidate)", length_grouped=True, fused_adamw=True, numpy_dropout=True),
    Step("today's build + no dropout (rejected)", length_grouped=True, fused_adamw=True, dropout=0.0),
)


def length_grouped(batches: list[np.ndarray], lengths: np.ndarray) -> list[np.ndarray]:
    """The same rows, regrouped into batches of similar length (one ``group_by_length`` megabatch), in shuffled
    order."""
    rows = np.concatenate(batches)
    grouped = rows[np.argsort(lengths[rows], kind="stable")].reshape(len(batches), -1)
    return list(grouped[np.random.default_rng(0).permutation(len(batches))])


class NumpyMaskDropout(torch.nn.Dropout):
    """``nn.Dropout`` with masks from 16-bit numpy draws (PCG64 bytes): torch's CPU ``bernoulli_`` costs ~4 ns an
    element."""

    def __init__(self, p: float, generator: np.random.Generator):
        super().__init__(p)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        draws = np.frombuffer(self.generator.bytes(2 * x.numel()), dtype=np.uint16).reshape(x.shape)
        return x * torch.from_numpy(draws >= round(self.p * 65536)).to(x.device) * (1.0 / (1.0 - self.p))


def attention_dropping_through_module(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Transformers' eager attention, with attention weights dropped by the module's dropout layer (so by
    NumpyMaskDropout)."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = module.dropout(torch.nn.functional.softmax(weights, dim=-1))
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


AttentionInterface.register("numpy_dropout_eager", attention_dropping_through_module)


@contextlib.contextmanager
def numpy_dropout(model: torch.nn.Module, probability: float) -> Iterator[None]:
    """Every dropout layer of ``model`` replaced by a NumpyMaskDropout inside the block (attention weights included)."""
    generator = np.random.default_rng(0)
    swapped = [
        (parent, name, child)
        for parent in list(model.modules())
        for name, child in parent.named_children()
        if isinstance(child, torch.nn.Dropout)
    ]
    kept_attention = model.config._attn_implementation
    for parent, name, _ in swapped:
        setattr(parent, name, NumpyMaskDropout(probability, generator))
    model.set_attn_implementation("numpy_dropout_eager")
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
        model.set_attn_implementation(kept_attention)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per timing (best of 3 timings)")
    parser.add_argument("--cache", default="cache")
    args = parser.parse_args()
    device = torch.device(args.device)
    profile = recipe.default_synthetic_profile()
    data_dir = generated.ensure_data(profile.data, args.cache)
    documents = [
        tuple(line.split("\t"))
        for language in profile.data.recipes
        for line in (data_dir / f"mono-{language.code}.tsv").read_text(encoding="utf-8").splitlines()[:4000]
    ]
    tokenizer = train_tokenizer([text for document in documents for text in document], profile.encoder)
    ids = tokenizer([a for a, _ in documents], [b for _, b in documents], truncation=True)["input_ids"]
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=profile.pretraining.mask_probability, seed=0)
    batch_size = profile.pretraining.batch_size
    plan = StepPlan(len(ids), batch_size, 0, steps=args.steps, drop_last=True)
    shuffled = [plan.micro_batches(step)[0] for step in range(args.steps)]
    row_orders = {False: shuffled, True: length_grouped(shuffled, np.array([len(row) for row in ids]))}
    batches = {
        grouped: [
            {key: value.to(device) for key, value in collate([{"input_ids": ids[i]} for i in rows]).items()}
            for rows in orders
        ]
        for grouped, orders in row_orders.items()
    }

    def trainer(step: Step):
        model = init_model(profile.encoder, len(tokenizer)).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=step.fused_adamw)

        def run() -> None:
            with contextlib.ExitStack() as stack:
                if step.eager_attention:
                    stack.enter_context(eager_attention_on_cpu(model, device))
                if step.numpy_dropout:
                    stack.enter_context(numpy_dropout(model, step.dropout))
                elif step.dropout != 0.1:
                    stack.enter_context(_dropout(model, step.dropout))
                for batch in batches[step.length_grouped]:
                    with autocast_for(device, cpu_bf16=step.bf16):
                        loss = masked_lm_loss(model, batch) if step.sparse_head else model(**batch).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)

        return run, model

    reference, model = trainer(STEPS[0])
    tokens = np.mean([int(batch["attention_mask"].sum()) for batch in batches[False]])
    predicted = np.mean([int((batch["labels"] != -100).sum()) for batch in batches[False]])
    padded = {grouped: np.mean([batch["input_ids"].numel() for batch in chosen]) for grouped, chosen in batches.items()}
    hidden, vocab = model.config.hidden_size, model.config.vocab_size
    encoder_weights = sum(p.numel() for n, p in model.roberta.named_parameters() if "embeddings" not in n)
    floor_flops = 6 * (tokens * encoder_weights + predicted * (hidden * hidden + hidden * vocab))
    rates = {False: matmul_rate(device, torch.float32), True: matmul_rate(device, torch.bfloat16)}
    print(
        f"device={device} encoder {profile.encoder.num_layers}x{hidden} vocab {vocab} | batch {batch_size} "
        f"docs, {tokens:.0f} real "
        f"tokens (padded: {padded[False]:.0f}; length-grouped: {padded[True]:.0f}), {predicted:.0f} predicted | "
        f"matmul fp32 "
        f"{rates[False] / 1e9:.0f} / bf16 {rates[True] / 1e9:.0f} GFLOP/s"
    )
    print("| step | ms per step | reference ÷ step | time ÷ floor |\n|---|---|---|---|")
    for step in STEPS:
        run, _ = trainer(step)
        t_reference, t_step = paired_best_times(reference, run, device, repeats=3)
        seconds = t_step / args.steps
        floor = floor_flops / rates[step.bf16 or device.type == "cuda"]
        print(f"| {step.name} | {seconds * 1e3:.1f} | {t_reference / t_step:.2f} | {seconds / floor:.1f} |", flush=True)


if __name__ == "__main__":
    main()
