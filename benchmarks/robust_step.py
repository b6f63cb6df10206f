"""Cost of a robust training step: each method's step time ÷ the standard step, vs the pass count.

    python benchmarks/robust_step.py                               # synthetic encoder shape, CPU
    python benchmarks/robust_step.py --shape base --device cuda    # xlm-roberta-base shape, bf16

Every method runs the real step of :mod:`xltlib.training` (its training data, its backward,
clipping, AdamW) on the same synthetic base-language pairs, same batch size and length,
random weights. Steps of all methods are timed in alternation (so they share the
machine's load), and the median per method is divided by the standard step's median.

The prediction counts passes: a forward is F, a full backward 2F, a backward to δ only
(no weight gradients) ≈ 1F; a standard step is 3F. PGD with K steps then costs
(2K+6)/3 with the clean loss and (2K+3)/3 without; FreeLB costs K; rs_rp and rs_da 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import sync
from train_step import SHAPES, build

from xltlib.config import RunConfig
from xltlib.methods import make_method
from xltlib.methods.base import ModelCall
from xltlib.models import autocast_for, build_tiny_xlmr, load_classifier
from xltlib.report.cost import pass_ratio
from xltlib.synthetic import generated, grammar, languages
from xltlib.synthetic.recipe import default_synthetic_profile
from xltlib.training import OptimizerSettings, accumulate_gradients, make_optimizer


def pairs_frame(n: int, words: int) -> pd.DataFrame:
    """Base-language sentence pairs of about ``words`` words per side (place phrase and adjectives on)."""
    spec = generated.DataSpec()
    lexicon = languages.build_lexicon(spec.grammar, spec.recipes)
    rng = np.random.default_rng(0)

    def sentence() -> str:
        text = []
        while len(text) < words:
            frame = grammar.sample_frame(lexicon, rng, adjective_rate=1.0, place_rate=1.0)
            text += languages.render(frame, lexicon, languages.BASE, rng).split()
        return " ".join(text[:words])

    return pd.DataFrame(
        {
            "text_a": [sentence() for _ in range(n)],
            "text_b": [sentence() for _ in range(n)],
            "label": [i % 3 for i in range(n)],
        }
    )


def build_model(shape: str, tokenizer_dir: Path, device: torch.device):
    model, tokenizer = load_classifier(tokenizer_dir, num_labels=3, device=device)
    if shape != "synthetic":  # an XLM-R shape, randomly initialised (the synthetic encoder's tokenizer)
        model = build(shape, device)
    return model, tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["synthetic", *SHAPES], default="synthetic")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--words", type=int, default=28, help="words per segment (≈ tokens: one piece per word)")
    parser.add_argument("--rounds", type=int, default=15, help="timed steps per method")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    frame = pairs_frame(args.batch_size * 4, args.words)
    encoder = default_synthetic_profile().encoder
    tokenizer_dir = build_tiny_xlmr(Path(tempfile.mkdtemp()) / "enc", [*frame.text_a, *frame.text_b], encoder)
    synonyms = Path(tempfile.mkdtemp()) / "synonyms.json"
    lexicon = languages.build_lexicon(generated.DataSpec().grammar, generated.DataSpec().recipes)
    synonyms.write_text(pd.Series(generated.synonym_table(lexicon)).to_json())

    torch.manual_seed(0)
    model, tokenizer = build_model(args.shape, tokenizer_dir, device)
    model.train()
    methods = {
        "standard": {},
        "pgd": {},
        "pgd adversarial_only": {"adversarial_only": True},
        "freelb": {},
        "rs_rp": {},
        "rs_da": {"synonyms_file": str(synonyms)},
    }
    call = ModelCall(model, lambda: autocast_for(device))
    steppers = {}
    for label, params in methods.items():
        name = label.split()[0]
        config = RunConfig(
            task="pawsx",
            model=str(tokenizer_dir),
            method=name,
            method_params=params,
            batch_size=args.batch_size,
            max_seq_length=2 * args.words + 4,
        )
        method = make_method(name, config.method_params)
        data = method.training_data(frame, tokenizer, config, device)
        optimizer = make_optimizer(model, OptimizerSettings.of_run(config))
        rows = np.arange(args.batch_size)

        def step(method=method, data=data, optimizer=optimizer, counter=[0]):
            counter[0] += 1

            def backward(micro, step, weight):
                return method.backward(call, data.batch(micro, step), scale=weight)

            accumulate_gradients(backward, [rows], counter[0], device)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        steppers[label] = (step, pass_ratio(name, config.method_params))

    times: dict[str, list[float]] = {label: [] for label in steppers}
    for step, _ in steppers.values():
        step(), step()  # warm-up (allocator, kernels, autotuning)
    for _ in range(args.rounds):
        for label, (step, _) in steppers.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[label].append(time.perf_counter() - start)

    lengths = tokenizer(list(frame.text_a[: args.batch_size]), list(frame.text_b[: args.batch_size]))["input_ids"]
    parameters = sum(p.numel() for p in model.parameters())
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(
        f"shape={args.shape} ({parameters / 1e6:.1f}M parameters) device={where} batch={args.batch_size}×"
        f"{max(map(len, lengths))} tokens, {'bf16 autocast' if device.type == 'cuda' else 'float32'}, "
        f"median of {args.rounds} steps"
    )
    standard = statistics.median(times["standard"])
    print(f"{'method':<22}{'step ms':>9}{'measured ÷ standard':>22}{'predicted':>11}{'measured ÷ predicted':>22}")
    for label, (_, predicted) in steppers.items():
        median = statistics.median(times[label])
        ratio = median / standard
        print(f"{label:<22}{median * 1e3:9.1f}{ratio:22.2f}{predicted:11.2f}{ratio / predicted:22.2f}")


if __name__ == "__main__":
    main()
