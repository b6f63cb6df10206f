"""Can a small XLM-R learn to compare the two segments of a pair? A diagnostic, not a timing.

Trains a randomly initialised ``XLMRobertaForSequenceClassification`` from scratch on
token-id pairs ``<s> a </s></s> b </s>``, with fresh random examples every step, on two tasks:

- ``control``: is the first token of ``a`` in the lower half of the vocabulary? (reads one token)
- ``same``: is ``b`` identical to ``a``, or is one token substituted? (compares the segments)

The synthetic tasks' neutral pairs and PAWS pairs need the second kind of reading; this
script shows in a minute whether the architecture learns it at a given size and budget.

    python book/probes/pair_matching_probe.py --vocab 20 --length 3 --steps 3000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, get_linear_schedule_with_warmup

FIRST_CONTENT_ID = 5  # ids below are XLM-R's specials (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4 here)


def pairs(rng: np.random.Generator, n: int, vocab: int, length: int, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    first = rng.integers(FIRST_CONTENT_ID, vocab, size=(n, length))
    second = first.copy()
    if task == "control":
        labels = first[:, 0] < (FIRST_CONTENT_ID + vocab) // 2
    else:
        labels = rng.random(n) < 0.5
        rows = np.flatnonzero(labels)
        position = rng.integers(length, size=len(rows))
        shift = rng.integers(1, vocab - FIRST_CONTENT_ID, size=len(rows))
        second[rows, position] = FIRST_CONTENT_ID + (first[rows, position] - FIRST_CONTENT_ID + shift) % (
            vocab - FIRST_CONTENT_ID
        )
    ids = np.concatenate([np.zeros((n, 1)), first, np.full((n, 2), 2), second, np.full((n, 1), 2)], axis=1)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long)


def train_and_score(args: argparse.Namespace, task: str) -> tuple[float, float, float]:
    """(mean loss of the last 100 steps, accuracy on 2,000 fresh pairs, seconds)."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = XLMRobertaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        intermediate_size=4 * args.hidden,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=2 * args.length + 8,
        num_labels=2,
    )
    model = XLMRobertaForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, args.steps // 10, args.steps)
    start, losses = time.perf_counter(), []
    for _ in range(args.steps):
        ids, labels = pairs(rng, args.batch, args.vocab, args.length, task)
        loss = F.cross_entropy(model(input_ids=ids).logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step(), schedule.step(), optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    ids, labels = pairs(rng, 2000, args.vocab, args.length, task)
    with torch.no_grad():
        accuracy = (model(input_ids=ids).logits.argmax(-1) == labels).float().mean().item()
    return float(np.mean(losses[-100:])), accuracy, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=20, help="vocabulary size including the 5 special ids")
    parser.add_argument("--length", type=int, default=3, help="tokens per segment")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.vocab < FIRST_CONTENT_ID + 2:
        parser.error(f"--vocab must be at least {FIRST_CONTENT_ID + 2}")
    print(
        f"{args.layers} layers, hidden {args.hidden}, vocab {args.vocab}, {args.length} tokens per segment, "
        f"{args.steps} steps of {args.batch} fresh pairs, lr {args.lr}"
    )
    print("task     loss(last 100)  accuracy  seconds   (chance: loss 0.693, accuracy 0.5)")
    for task in ("control", "same"):
        loss, accuracy, seconds = train_and_score(args, task)
        print(f"{task:<8} {loss:14.3f}  {accuracy:8.3f}  {seconds:7.0f}")


if __name__ == "__main__":
    main()
