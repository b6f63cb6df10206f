"""Is `<s>` the bottleneck of syn-nli? Fine-tune the synthetic encoder with other poolings.

XLM-R's classification head reads the `<s>` state only. This diagnostic fine-tunes the
profile's pre-trained encoder on base-language ``syn-nli`` train pairs with the same
optimizer and learning rate as a synthetic run, but classifies from the `<s>` state, the
mean or the max over tokens, and reports base dev accuracy and the recall of each label.
If a pooling over all tokens learned neutral pairs where `<s>` does not, the signal would
be present and only badly routed.

    python book/probes/pooling_probe.py --cache cache --steps 125 625 --mlm-only   # the design notes' table
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import get_linear_schedule_with_warmup

from xltlib.config import SYNTHETIC_FINETUNING
from xltlib.data import loading, tasks
from xltlib.models import load_encoder
from xltlib.synthetic import generated
from xltlib.synthetic.build import ensure_encoder
from xltlib.synthetic.recipe import default_synthetic_profile, without_detection_stage

POOLINGS = ("cls", "mean", "max")


def pooled(states: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "cls":
        return states[:, 0]
    if pooling == "mean":
        weights = mask.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(1) / weights.sum(1)
    return states.masked_fill(mask.unsqueeze(-1) == 0, torch.finfo(states.dtype).min).max(1).values


def train_and_score(encoder_dir, train, dev, label_names, pooling: str, steps: int, seed: int) -> tuple[float, dict]:
    torch.manual_seed(seed)
    encoder, tokenizer = load_encoder(encoder_dir, "cpu")
    width, labels = encoder.config.hidden_size, sorted(train.label.unique())
    head = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.Tanh(), torch.nn.Linear(width, len(labels)))
    parameters = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=SYNTHETIC_FINETUNING["learning_rate"], weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, steps // 10, steps)
    batch = SYNTHETIC_FINETUNING["batch_size"]

    def logits(rows):
        encoded = tokenizer(
            rows.text_a.tolist(),
            rows.text_b.tolist(),
            padding=True,
            truncation=True,
            max_length=SYNTHETIC_FINETUNING["max_seq_length"],
            return_tensors="pt",
        )
        return head(pooled(encoder(**encoded).last_hidden_state, encoded["attention_mask"], pooling))

    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(train)) for _ in range(steps * batch // len(train) + 1)])
    for step in range(steps):
        rows = train.iloc[order[step * batch : (step + 1) * batch]]
        loss = F.cross_entropy(logits(rows), torch.tensor([labels.index(label) for label in rows.label]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step(), schedule.step(), optimizer.zero_grad()
    encoder.eval(), head.eval()
    with torch.no_grad():
        predicted = np.concatenate([logits(dev.iloc[i : i + 256]).argmax(-1).numpy() for i in range(0, len(dev), 256)])
    truth = np.array([labels.index(label) for label in dev.label])
    recall = {label_names[int(label)]: float((predicted[truth == i] == i).mean()) for i, label in enumerate(labels)}
    return float((predicted == truth).mean()), recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default="cache", help="the synthetic profile's cache (built if missing)")
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[125, 625], help="optimizer steps (125 = a default run)"
    )
    parser.add_argument("--poolings", nargs="+", default=list(POOLINGS), choices=POOLINGS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mlm-only", action="store_true", help="the profile's encoder before its detection stage")
    args = parser.parse_args()
    profile = default_synthetic_profile()
    data_dir = generated.ensure_data(profile.data, args.cache)
    encoder_dir = ensure_encoder(without_detection_stage(profile) if args.mlm_only else profile, args.cache)
    task = tasks.get_task("syn-nli")
    train, dev = (loading.load_split(task, "base", split, str(data_dir)) for split in ("train", "dev"))
    print(f"{'steps':>5} {'pooling':>7} {'dev acc':>7}  recall per label  (seconds)")
    for steps in args.steps:
        for pooling in args.poolings:
            start = time.perf_counter()
            accuracy, recall = train_and_score(encoder_dir, train, dev, task.labels, pooling, steps, args.seed)
            recalls = " ".join(f"{label}:{value:.2f}" for label, value in recall.items())
            print(
                f"{steps:>5} {pooling:>7} {accuracy:>7.3f}  {recalls}  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
