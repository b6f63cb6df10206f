"""GPU speed in one run: training throughput of every method, the XTREME reference loop, retrieval, encoding.

    python benchmarks/train_throughput.py                    # CUDA: base and large shapes, N = 100k and 1M
    python benchmarks/train_throughput.py --small            # CPU smoke run: tiny shape, N = 2k and 8k

Random weights at XLM-R shapes, every sequence 128 tokens (pairs truncated to length), the
real training step of each method (:mod:`xltlib.training`: its batches, backward, clipping,
fused AdamW on CUDA, bf16 autocast on CUDA). Prints, from one run:

- per shape and method: step time, tokens/s, and model FLOP utilisation = the method's
  passes (its pass-count prediction × a standard step's FLOPs, 6·N_nonembed + 12·L·s·h per
  token) ÷ the bf16 matmul rate measured in this run; measured ÷ predicted cost;
- the reference loop as XTREME's ``run_classify.py`` runs it: fp32, padded to 128, plain
  AdamW, ``loss.item()`` every step; and our ``standard`` step's speed-up over it;
- retrieval (``xltlib.evaluation.kernels``) at N × N, d = 768, bf16 in, fp32 accumulation:
  2·N²·d ÷ time as a fraction of the matmul rate, and margin ÷ cosine time;
- encoding throughput (sentences/s, mean-pooled last layer) of the base shape.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import transformers
from common import best_time, matmul_rate, wall_times
from robust_step import pairs_frame
from train_step import SHAPES, build
from transformers import AutoTokenizer

from xltlib.config import RunConfig
from xltlib.evaluation.alignment import encode
from xltlib.evaluation.kernels import retrieval_accuracy
from xltlib.methods import make_method
from xltlib.methods.base import ModelCall
from xltlib.models import autocast_for, build_tiny_xlmr
from xltlib.report.cost import pass_ratio
from xltlib.synthetic import generated, languages
from xltlib.synthetic.recipe import default_synthetic_profile
from xltlib.training import OptimizerSettings, accumulate_gradients, make_optimizer

METHODS = ("standard", "pgd", "freelb", "rs_rp", "rs_da")
LENGTH = 128


def setup(batch_size: int) -> tuple[pd.DataFrame, Path, Path]:
    """Pairs long enough to fill 128 tokens, a tokenizer folder for them, and a synonym table."""
    frame = pairs_frame(batch_size * 4, words=LENGTH)
    folder = build_tiny_xlmr(
        Path(tempfile.mkdtemp()) / "enc", [*frame.text_a, *frame.text_b], default_synthetic_profile().encoder
    )
    synonyms = Path(tempfile.mkdtemp()) / "synonyms.json"
    lexicon = languages.build_lexicon(generated.DataSpec().grammar, generated.DataSpec().recipes)
    synonyms.write_text(pd.Series(generated.synonym_table(lexicon)).to_json())
    return frame, folder, synonyms


def method_step(model, tokenizer, frame, method: str, synonyms: Path, folder: Path, batch_size: int, device):
    """One optimizer step of ``method`` on the first ``batch_size`` pairs, and its pass-count prediction."""
    params = {"synonyms_file": str(synonyms)} if method == "rs_da" else {}
    config = RunConfig(
        task="pawsx",
        model=str(folder),
        method=method,
        method_params=params,
        batch_size=batch_size,
        max_seq_length=LENGTH,
    )
    trainer = make_method(method, config.method_params)
    data = trainer.training_data(frame, tokenizer, config, device)
    optimizer = make_optimizer(model, OptimizerSettings.of_run(config))
    call, rows, counter = ModelCall(model, lambda: autocast_for(device)), np.arange(batch_size), [0]

    def step() -> None:
        counter[0] += 1
        accumulate_gradients(
            lambda micro, s, w: trainer.backward(call, data.batch(micro, s), scale=w), [rows], counter[0], device
        )
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, pass_ratio(method, config.method_params)


def reference_step(model, tokenizer, frame, batch_size: int, device):
    """XTREME's run_classify.py step: fp32, padded to 128, plain AdamW, the loss read back every step."""
    batch = tokenizer(
        list(frame.text_a[:batch_size]),
        list(frame.text_b[:batch_size]),
        truncation=True,
        max_length=LENGTH,
        padding="max_length",
        return_tensors="pt",
    )
    batch = {
        **{k: v.to(device) for k, v in batch.items()},
        "labels": torch.zeros(batch_size, dtype=torch.long, device=device),
    }
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    losses = []

    def step() -> None:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())

    return step


def median_step(step, steps: int, device) -> float:
    """Median step time after two warm-up steps (allocator, kernels, autotuning)."""
    return statistics.median(wall_times(step, device, repeats=steps, warmup=2))


def non_embedding_parameters(model) -> int:
    embedding = sum(p.numel() for name, p in model.named_parameters() if "embeddings" in name)
    return sum(p.numel() for p in model.parameters()) - embedding


def training(shape: str, frame, folder, synonyms, args, device, rate: float) -> None:
    torch.manual_seed(0)
    model, tokenizer = build(shape, device), AutoTokenizer.from_pretrained(folder)
    model.train()
    hidden, layers, _, _ = SHAPES[shape]
    parameters = non_embedding_parameters(model)
    per_token, tokens = 6 * parameters + 12 * layers * LENGTH * hidden, args.batch_size * LENGTH
    print(f"\n{shape}: batch {args.batch_size}×{LENGTH}, {parameters / 1e6:.1f}M non-embedding parameters")
    print(f"{'method':<10}{'step ms':>9}{'tokens/s':>11}{'MFU':>7}{'÷ standard':>12}{'predicted':>11}")
    standard = None
    for method in METHODS:
        step, predicted = method_step(model, tokenizer, frame, method, synonyms, folder, args.batch_size, device)
        seconds = median_step(step, args.steps, device)
        standard = standard or seconds
        print(
            f"{method:<10}{seconds * 1e3:9.1f}{tokens / seconds:11,.0f}"
            f"{predicted * per_token * tokens / seconds / rate:7.3f}"
            f"{seconds / standard:12.2f}{predicted:11.2f}"
        )
    reference = median_step(reference_step(model, tokenizer, frame, args.batch_size, device), args.steps, device)
    print(
        f"{'reference':<10}{reference * 1e3:9.1f}{tokens / reference:11,.0f}"
        f"{per_token * tokens / reference / rate:7.3f}"
        f"   fp32, padded, .item() per step; reference ÷ standard step time = {reference / standard:.2f}"
    )


def retrieval(sizes: list[int], device, rate: float) -> None:
    print(f"\nretrieval, d = 768, bf16 in: {'N':>9}{'cosine s':>10}{'of matmul rate':>16}{'margin ÷ cosine':>17}")
    for n in sizes:
        x, y = (torch.randn(n, 768, device=device).to(torch.bfloat16) for _ in range(2))
        cosine = best_time(lambda: retrieval_accuracy(x, y, "cosine"), device, repeats=2)
        margin = best_time(lambda: retrieval_accuracy(x, y, "margin"), device, repeats=2)
        print(f"{'':<30}{n:>9,}{cosine:10.2f}{2 * n * n * 768 / cosine / rate:16.3f}{margin / cosine:17.2f}")


def encoding(shape: str, frame, folder, device, sentences: int) -> None:
    model, tokenizer = build(shape, device), AutoTokenizer.from_pretrained(folder)
    texts = list(np.resize(frame.text_a.str.split().str[:30].str.join(" ").to_numpy(), sentences))
    hidden, layers, _, _ = SHAPES[shape]
    seconds = best_time(
        lambda: encode(model.base_model, tokenizer, texts, [layers], "mean", 256, LENGTH, device), device, repeats=2
    )
    print(
        f"\nencoding ({shape} shape, 30-word sentences, last layer, batch 256): {sentences / seconds:,.0f} sentences/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="CPU smoke sizes: tiny shape, small N, few steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    shapes, sizes, sentences = (
        (["tiny"], [2_000, 8_000], 512) if args.small else (["base", "large"], [100_000, 1_000_000], 50_000)
    )
    if args.small:
        args.batch_size, args.steps = 8, 3
    rate = matmul_rate(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(
        f"{datetime.date.today()} {name}; torch {torch.__version__}, transformers {transformers.__version__}; "
        f"matmul rate {rate / 1e12:.1f} TFLOP/s ({'bf16' if device.type == 'cuda' else 'fp32'})"
    )
    frame, folder, synonyms = setup(args.batch_size)
    for shape in shapes:
        training(shape, frame, folder, synonyms, args, device, rate)
    retrieval(sizes, device, rate)
    encoding(shapes[0], frame, folder, device, sentences)


if __name__ == "__main__":
    main()
