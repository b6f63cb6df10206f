"""How much XNLI a linear classifier reads off frozen multilingual-e5-small features, at the e5 profile's size.

    python book/probes/e5_linear_probe.py [--train 512] [--dev 300]

Encodes the first ``--train`` English XNLI test pairs (the e5 profile's training items) and the
first ``--dev`` English dev pairs with the converted model (``models import-e5``), fits an
L2-regularised multinomial logistic regression (L-BFGS, standardised features) on the first
token's final state and on the mean of all final states, and prints English dev accuracy of
each. English data only: it bounds what the profile's fine-tuning can reach at that size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from xltlib.profiles.e5 import e5_model
from xltlib.profiles.quick_xtreme import real_data_folder

LABELS = {"entailment": 0, "neutral": 1, "contradiction": 2}


def pairs(path: Path, n: int) -> tuple[list[str], list[str], torch.Tensor]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[:n]]
    return [r[0] for r in rows], [r[1] for r in rows], torch.tensor([LABELS[r[2].strip()] for r in rows])


@torch.no_grad()
def features(model, tokenizer, first: list[str], second: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    cls, mean = [], []
    for start in range(0, len(first), 32):
        batch = tokenizer(
            first[start : start + 32],
            second[start : start + 32],
            padding=True,
            truncation=True,
            max_length=128,
            return_tensors="pt",
        )
        states = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1)
        cls.append(states[:, 0])
        mean.append((states * mask).sum(1) / mask.sum(1))
    return torch.cat(cls), torch.cat(mean)


def probe_accuracy(train: torch.Tensor, labels: torch.Tensor, dev: torch.Tensor, dev_labels: torch.Tensor) -> float:
    mu, sd = train.mean(0), train.std(0) + 1e-6
    x, x_dev = (train - mu) / sd, (dev - mu) / sd
    weights = torch.zeros(x.shape[1], 3, requires_grad=True)
    bias = torch.zeros(3, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=300)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weights + bias, labels) + 1e-2 * (weights**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return ((x_dev @ weights + bias).argmax(1) == dev_labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--dev", type=int, default=300)
    parser.add_argument("--cache", default="cache")
    args = parser.parse_args()
    torch.manual_seed(0)
    root, folder = real_data_folder(), e5_model(args.cache)
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    *train_text, labels = pairs(root / "xnli/test-labeled/test-en.tsv", args.train)
    *dev_text, dev_labels = pairs(root / "xnli/xtreme/dev-en.tsv", args.dev)
    train, dev = features(model, tokenizer, *train_text), features(model, tokenizer, *dev_text)
    for name, i in (("first token", 0), ("mean pooling", 1)):
        print(
            f"{name:<13} English dev accuracy {probe_accuracy(train[i], labels, dev[i], dev_labels):.3f} "
            f"({args.train} training pairs, {args.dev} dev pairs)"
        )


if __name__ == "__main__":
    main()
