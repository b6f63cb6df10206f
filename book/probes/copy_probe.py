"""Does the pre-trained encoder copy a word from the other segment of a pair? A diagnostic.

The pair tasks need the encoder to match the words of one segment against the other. The
simplest form of that matching is copying: a masked word whose sentence stands, whole, in
the other segment can be read off there. This script masks one content word (not the
determiner or the negation marker) of each of N base-language ``syn-nli`` dev premises and
asks the masked-LM head for it in three contexts:

- ``alone``: ``<s> sentence </s>``: what the sentence's own context gives;
- ``unrelated``: ``<s> other sentence </s></s> sentence </s>``: a pair, nothing to copy;
- ``itself``: ``<s> sentence </s></s> sentence </s>``: the answer stands in the first segment.

It prints top-1 accuracy in each context; ``itself − unrelated`` is how much the encoder
copies. Base dev data only.

The profile's encoder after its detection stage keeps a masked-LM head that was not trained
with it, so by default this probes the profile's masked-LM encoder *before* that stage
(built and cached apart on first use; the design notes' figures are of the earlier profile's
2,000-step masked-LM encoder).

    python book/probes/copy_probe.py --cache cache                  # the profile's masked-LM encoder
    python book/probes/copy_probe.py --encoder PATH --cache cache   # any folder with an MLM head
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from xltlib.data import loading, tasks
from xltlib.synthetic import generated, grammar, languages
from xltlib.synthetic.build import ensure_encoder
from xltlib.synthetic.recipe import default_synthetic_profile, without_detection_stage

CONTEXTS = ("alone", "unrelated", "itself")


def masked_inputs(
    tokenizer, sentences: list[str], others: list[str], function_words: set[str], context: str, rng: np.random.Generator
) -> tuple[list[list[int]], list[int], list[int]]:
    """(input ids, masked position, true id) per sentence; the masked word is in the last segment.

    The same ``rng`` state picks the same word of a sentence in every context.
    """
    function_ids = {tokenizer.convert_tokens_to_ids("▁" + word) for word in function_words}
    if context == "alone":
        encoded = tokenizer(sentences)["input_ids"]
    else:
        encoded = tokenizer(others if context == "unrelated" else sentences, sentences)["input_ids"]
    rows, positions, targets = [], [], []
    for ids in encoded:
        start = 1 if context == "alone" else ids.index(tokenizer.sep_token_id) + 2  # <s> a </s></s> b </s>
        candidates = [i for i in range(start, len(ids) - 1) if ids[i] not in function_ids]
        position = candidates[int(rng.integers(len(candidates)))]
        rows.append([*ids[:position], tokenizer.mask_token_id, *ids[position + 1 :]])
        positions.append(position)
        targets.append(ids[position])
    return rows, positions, targets


def accuracy(
    model, tokenizer, rows: list[list[int]], positions: list[int], targets: list[int], batch: int = 256
) -> float:
    hits = 0
    for start in range(0, len(rows), batch):
        padded = tokenizer.pad({"input_ids": rows[start : start + batch]}, return_tensors="pt")
        with torch.no_grad():
            logits = model(**padded).logits
        index = torch.arange(len(padded["input_ids"]))
        predicted = logits[index, torch.tensor(positions[start : start + batch])].argmax(-1)
        hits += int((predicted == torch.tensor(targets[start : start + batch])).sum())
    return hits / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default="cache", help="the synthetic profile's cache (built if missing)")
    parser.add_argument("--encoder", type=Path, help="an encoder folder with an MLM head (default: the profile's)")
    parser.add_argument("--sentences", type=int, default=1000, help="base dev premises to probe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.sentences < 2:
        parser.error("--sentences must be at least 2")
    if args.encoder and not (args.encoder / "config.json").is_file():
        parser.error(f"--encoder {args.encoder} holds no saved model (no config.json)")
    profile = default_synthetic_profile()
    data_dir = generated.ensure_data(profile.data, args.cache)
    encoder_dir = args.encoder or ensure_encoder(without_detection_stage(profile), args.cache)
    lexicon = languages.build_lexicon(profile.data.grammar, profile.data.recipes)
    function_words = {form for word in grammar.FUNCTION_WORDS for form in lexicon.forms["base"][(word, 0)]}
    dev = loading.load_split(tasks.get_task("syn-nli"), "base", "dev", str(data_dir))
    sentences = list(dict.fromkeys(dev.text_a))[: args.sentences]
    others = sentences[1:] + sentences[:1]
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    model = AutoModelForMaskedLM.from_pretrained(encoder_dir).eval()
    print(f"{encoder_dir}: one masked content word in each of {len(sentences)} base dev premises")
    scores = {}
    for context in CONTEXTS:
        scores[context] = accuracy(
            model,
            tokenizer,
            *masked_inputs(tokenizer, sentences, others, function_words, context, np.random.default_rng(args.seed)),
        )
        print(f"{context:>9}: top-1 accuracy {scores[context]:.3f}")
    print(f"copy gain (itself − unrelated): {scores['itself'] - scores['unrelated']:+.3f}")


if __name__ == "__main__":
    main()
