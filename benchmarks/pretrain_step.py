"""Masked-LM pre-training step of the synthetic encoder: each speed-up of the build, measured in one run.

    python benchmarks/pretrain_step.py [--device cpu] [--steps 20]

The default profile's encoder shape and real batches of its corpora (generated into
``--cache`` if absent; a tokenizer is trained on a slice of them). Each row adds one change
to the row above, timed in alternation with the reference so both see the same machine load:

- reference: ``model(**batch).loss`` — the LM head on every token, SDPA attention, XLM-R's
  dropout 0.1, full precision on CPU;
- sparse head: :func:`xltlib.models.masked_lm_loss` (the same loss, head on masked tokens only);
- eager attention on CPU (what the build's training loops use there);
- bf16 autocast (``PretrainSpec.bf16``);
- no dropout (``PretrainSpec.dropout=0``; a change of recipe, not only of speed).

Prints ms per step, reference ÷ row, and time ÷ floor, where the floor is the step's
matmul FLOPs (6 × (tokens × non-embedding encoder weights + predicted tokens × LM-head
weights)) at the fp32 / bf16 matmul rate measured on this device in this run.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from transformers import DataCollatorForLanguageModeling

from common import matmul_rate, paired_best_times
from xltlib import profiles, synthetic
from xltlib.models import _dropout, _eager_attention_on_cpu, _init_model, _shuffled_batch, _train_tokenizer, masked_lm_loss
from xltlib.train import autocast_for

VARIANTS = ("reference", "+ sparse head", "+ eager attention", "+ bf16 autocast", "+ no dropout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per timing (best of 3 timings)")
    parser.add_argument("--cache", default="cache")
    args = parser.parse_args()
    device = torch.device(args.device)
    profile = profiles.default_synthetic_profile()
    data_dir = synthetic.ensure_data(profile.data, args.cache)
    documents = [tuple(line.split("\t")) for recipe in profile.data.recipes
                 for line in (data_dir / f"mono-{recipe.code}.tsv").read_text(encoding="utf-8").splitlines()[:4000]]  # fmt: skip
    tokenizer = _train_tokenizer([text for document in documents for text in document], profile.encoder)
    ids = tokenizer([a for a, _ in documents], [b for _, b in documents], truncation=True)["input_ids"]
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=profile.pretraining.mask_probability, seed=0)
    batch_size = profile.pretraining.batch_size
    batches = [{key: value.to(device) for key, value in collate([{"input_ids": ids[i]} for i in _shuffled_batch(step, len(ids), batch_size, 0)]).items()}
               for step in range(args.steps)]  # fmt: skip

    def trainer(variant: int):
        model = _init_model(profile.encoder, len(tokenizer)).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def run() -> None:
            with contextlib.ExitStack() as stack:
                if variant >= 2:
                    stack.enter_context(_eager_attention_on_cpu(model, device))
                if variant >= 4:
                    stack.enter_context(_dropout(model, 0.0))
                for batch in batches:
                    with autocast_for(device, cpu_bf16=variant >= 3):
                        loss = masked_lm_loss(model, batch) if variant >= 1 else model(**batch).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)

        return run, model

    reference, model = trainer(0)
    tokens = sum(int(batch["attention_mask"].sum()) for batch in batches) / len(batches)
    predicted = sum(int((batch["labels"] != -100).sum()) for batch in batches) / len(batches)
    hidden, vocab = model.config.hidden_size, model.config.vocab_size
    encoder_weights = sum(p.numel() for n, p in model.roberta.named_parameters() if "embeddings" not in n)
    floor_flops = 6 * (tokens * encoder_weights + predicted * (hidden * hidden + hidden * vocab))
    rates = {False: matmul_rate(device, torch.float32), True: matmul_rate(device, torch.bfloat16)}
    print(f"device={device} encoder {profile.encoder.num_layers}x{hidden} vocab {vocab} | batch {batch_size} docs, "
          f"{tokens:.0f} real tokens, {predicted:.0f} predicted | matmul fp32 {rates[False] / 1e9:.0f} / bf16 {rates[True] / 1e9:.0f} GFLOP/s")  # fmt: skip
    print("| step | ms per step | reference ÷ step | time ÷ floor |\n|---|---|---|---|")
    for variant, name in enumerate(VARIANTS):
        run, _ = trainer(variant)
        t_reference, t_variant = paired_best_times(reference, run, device, repeats=3)
        step = t_variant / args.steps
        floor = floor_flops / rates[variant >= 3 or device.type == "cuda"]
        print(f"| {name} | {step * 1e3:.1f} | {t_reference / t_variant:.2f} | {step / floor:.1f} |", flush=True)


if __name__ == "__main__":
    main()
