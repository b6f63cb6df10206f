"""Training-step speed: our loop's step vs a plain XTREME-style step, and MFU on GPU.

    python benchmarks/train_step.py --shape base --device cuda
    python benchmarks/train_step.py --shape tiny --device cpu

Random weights at the real shapes (timing does not need trained weights), full-length
sequences (no padding) so FLOPs are exact. Prints, from one run:
- ours ÷ plain: a step of our real loop (:func:`xltlib.training.fit`: collation and dynamic
  padding, method object, schedule, deferred loss checks, fused AdamW on CUDA) against a
  bare ``loss.backward(); clip; optimizer.step()`` loop on pre-built device tensors with
  the same precision (bf16 autocast on CUDA);
- tokens/s, and model FLOP utilisation = (6·N_nonembed + 12·L·s·h) FLOPs/token × tokens/s
  ÷ the bf16 matmul rate measured on this device in this run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import matmul_rate, sync
from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizer

from xltlib.config import RunConfig
from xltlib.data.batches import TokenizedPairs
from xltlib.models import autocast_for
from xltlib.training import Checkpointing, fit

SHAPES = {  # hidden, layers, heads, intermediate
    "tiny": (64, 2, 2, 128),
    "base": (768, 12, 12, 3072),
    "large": (1024, 24, 16, 4096),
}


def build(shape: str, device: torch.device) -> XLMRobertaForSequenceClassification:
    hidden, layers, heads, inter = SHAPES[shape]
    config = XLMRobertaConfig(
        vocab_size=250002,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        max_position_embeddings=514,
        type_vocab_size=1,
        num_labels=3,
    )
    return XLMRobertaForSequenceClassification(config).to(device)


def time_steps(step, steps: int, device: torch.device) -> float:
    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=SHAPES, default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="also print the top kernels of a plain step")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build(args.shape, device)
    batch = {
        "input_ids": torch.randint(5, 250000, (args.batch_size, args.seq_len), device=device),
        "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long, device=device),
        "labels": torch.randint(0, 3, (args.batch_size,), device=device),
    }
    config = RunConfig(task="xnli", model="xlm-roberta-base", batch_size=args.batch_size, epochs=1.0, warmup_ratio=0.0)
    plain_optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)

    def plain():
        with autocast_for(device):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        plain_optimizer.step()
        plain_optimizer.zero_grad(set_to_none=True)

    def ours(steps: int) -> None:
        """The real loop (collation, method object, deferred loss checks, fused AdamW on CUDA)."""
        features = [
            {"input_ids": ids.tolist(), "attention_mask": [1] * args.seq_len, "labels": int(label)}
            for ids, label in zip(batch["input_ids"].cpu(), batch["labels"].cpu())
        ] * steps
        data = TokenizedPairs.from_features(tokenizer, features, device)
        fit(model, tokenizer, data, config, Checkpointing(Path(tempfile.mkdtemp()) / "none.pt", every=10**9), device)

    tokenizer = XLMRobertaTokenizer(vocab=[(t, 0.0) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")])
    t_plain = time_steps(plain, args.steps, device)
    ours(3)
    sync(device)
    start = time.perf_counter()
    ours(args.steps)
    sync(device)
    t_ours = (time.perf_counter() - start) / args.steps
    hidden, layers, _, _ = SHAPES[args.shape]
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    non_embedding = sum(p.numel() for p in model.parameters()) - embedding
    flops_per_token = 6 * non_embedding + 12 * layers * args.seq_len * hidden
    tokens = args.batch_size * args.seq_len
    rate = matmul_rate(device)
    print(
        f"device={device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}) "
        f"shape={args.shape} batch={args.batch_size}x{args.seq_len} non-embedding params={non_embedding / 1e6:.1f}M"
    )
    print(f"plain step {t_plain * 1e3:.1f} ms | ours {t_ours * 1e3:.1f} ms | ours ÷ plain = {t_ours / t_plain:.3f}")
    print(f"tokens/s (ours) = {tokens / t_ours:,.0f}")
    if args.profile:
        with torch.profiler.profile() as profiler:
            time_steps(plain, 5, device)
        print(profiler.key_averages().table(sort_by="self_device_time_total", row_limit=12, max_name_column_width=60))
    print(
        f"matmul rate = {rate / 1e12:.1f} TFLOP/s | model FLOP utilisation = "
        f"{flops_per_token * tokens / t_ours / rate:.3f}"
    )


if __name__ == "__main__":
    main()
