"""Load Hugging Face encoders for classification, and build tiny XLM-R stand-ins offline.

The experiments target `xlm-roberta-base`, but the hub is not always reachable (CI, air-gapped
machines). `build_tiny_xlmr` makes a small, randomly initialised model that is laid out exactly
like the real one (same classes, special-token ids, pair template, config fields), so every code
path that loads `xlm-roberta-base` can run unchanged on a local folder instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, trainers
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    XLMRobertaTokenizer,
)
from transformers.utils import logging as hf_logging

from xltlib.errors import XltError

# XLM-R's fixed special tokens, in id order 0..3; `<mask>` is appended as the last id.
_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
_BOS_ID, _PAD_ID, _EOS_ID = 0, 1, 2
_MASK = "<mask>"
# Bump when `build_tiny_xlmr` would write something different for the same inputs,
# so `tiny_xlmr` does not hand back a stale cached build.
_RECIPE_VERSION = 1


@dataclass(frozen=True)
class TinyXlmrSpec:
    """Shape of a tiny XLM-R; small enough to train and test on a CPU in seconds."""

    vocab_size: int = 2000
    """Upper bound on tokenizer pieces, specials included; a small corpus may yield fewer."""
    hidden_size: int = 64
    """Width of embeddings and hidden states (must be divisible by `num_heads`)."""
    num_layers: int = 2
    """Number of transformer blocks."""
    num_heads: int = 2
    """Attention heads per block."""
    intermediate_size: int = 128
    """Width of the feed-forward layer inside each block."""
    max_positions: int = 130
    """`max_position_embeddings`: XLM-R counts positions from `pad_token_id + 1`, so this
    allows `max_positions - 2` = 128 tokens per sequence (xlm-roberta-base: 514 for 512)."""
    seed: int = 0
    """Seed for the random weights; same spec and corpus give the same model."""

    @property
    def max_length(self) -> int:
        """Longest sequence (special tokens included) the position embeddings can hold."""
        return self.max_positions - _PAD_ID - 1


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' load report and progress bars for the duration of the block.

    Loading an MLM checkpoint as a classifier always reports a fresh classifier head and an unused
    LM head; that is expected here and would only bury real messages. Size mismatches still raise.
    A filter, not a log level: transformers runs extra checks (and warns) when that level is set.
    """
    report_logger = logging.getLogger("transformers.modeling_utils")
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    report_logger.addFilter(_errors_only)
    try:
        yield
    finally:
        report_logger.removeFilter(_errors_only)
        if bars:
            hf_logging.enable_progress_bar()


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def _load(
    name_or_path: str | Path, model_class: type, device: torch.device | str | None, **model_kwargs
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load tokenizer and model, turning "not found anywhere" into one actionable XltError."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        with _quiet_transformers():
            # float32 master weights: mixed precision is applied by autocast at run time.
            model = model_class.from_pretrained(name_or_path, dtype=torch.float32, **model_kwargs)
    except OSError as err:
        if Path(name_or_path).exists():
            raise  # a broken local folder: the library's own message is the useful one
        raise XltError(
            f"cannot load model {str(name_or_path)!r}: it is neither an existing local folder nor "
            "reachable on the Hugging Face hub; build a local tiny model with "
            "xltlib.models.build_tiny_xlmr (or tiny_xlmr) and pass its folder instead"
        ) from err
    if device is not None:
        model.to(device)
    return model, tokenizer


def load_classifier(
    name_or_path: str | Path, num_labels: int, device: torch.device | str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Any HF encoder (hub id or local folder) with a fresh `num_labels`-way classification head."""
    return _load(name_or_path, AutoModelForSequenceClassification, device, num_labels=num_labels)


def load_encoder(
    name_or_path: str | Path, device: torch.device | str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The bare encoder (no task head) and its tokenizer, for extracting embeddings."""
    return _load(name_or_path, AutoModel, device)


def _train_tokenizer(corpus: Iterable[str], spec: TinyXlmrSpec) -> XLMRobertaTokenizer:
    """Train a SentencePiece-style Unigram tokenizer on `corpus`, laid out like XLM-R's."""
    # On reload, XLMRobertaTokenizer rebuilds its pipeline from the vocab alone, so train with
    # exactly the pre-tokenizer it will use (and no normalizer, which it would drop).
    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = XLMRobertaTokenizer().backend_tokenizer.pre_tokenizer
    trainer = trainers.UnigramTrainer(
        vocab_size=spec.vocab_size - 1,  # leave room for <mask>
        special_tokens=list(_SPECIALS),
        unk_token="<unk>",
        show_progress=False,
    )
    unigram.train_from_iterator(corpus, trainer)
    trained = [
        (piece, score)
        for piece, score in json.loads(unigram.to_str())["model"]["vocab"]
        if piece not in _SPECIALS
    ]
    vocab = [(token, 0.0) for token in _SPECIALS] + _canonical(trained) + [(_MASK, 0.0)]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=spec.max_length)


def _canonical(pieces: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Make the trainer's output a function of the corpus alone, so rebuilds are identical.

    `tokenizers`' Unigram trainer iterates randomly seeded hash maps, so two runs on the same
    corpus (even in one process) differ: EM sums floats in varying order (scores jitter by ~1e-10),
    and the corpus characters EM pruned are re-added with scores `lowest + k * 1e-4` in varying
    order, so they trade scores and ids. Give that ladder one score, round the jitter away, and
    sort ties by piece.
    """
    lowest = min((score for _, score in pieces), default=0.0)
    ladder, penalty = set(), 0.0
    for _ in pieces:  # same float steps as UnigramTrainer.finalize, so membership is exact
        ladder.add(lowest + penalty)
        penalty += 0.0001
    rescored = [
        (piece, round(lowest if len(piece) == 1 and score in ladder else score, 4))
        for piece, score in pieces
    ]
    return sorted(rescored, key=lambda item: (-item[1], item[0]))


def _init_model(spec: TinyXlmrSpec, vocab_size: int) -> XLMRobertaForMaskedLM:
    """A randomly initialised XLM-R MLM, seeded without disturbing the global RNG."""
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_positions,
        type_vocab_size=1,
        pad_token_id=_PAD_ID,
        bos_token_id=_BOS_ID,
        eos_token_id=_EOS_ID,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return XLMRobertaForMaskedLM(config)


def build_tiny_xlmr(
    out_dir: str | Path, corpus: Iterable[str], spec: TinyXlmrSpec = TinyXlmrSpec()
) -> Path:
    """Train a tokenizer on `corpus`, initialise a tiny XLM-R and save both into `out_dir`.

    The folder loads with `AutoTokenizer` / `AutoModelForSequenceClassification` just like
    `xlm-roberta-base`. It is written into a temporary sibling and renamed into place, so it either
    exists complete or not at all. The model's vocabulary is the tokenizer's real size, which is
    below `spec.vocab_size` when the corpus is small; `<mask>` is always the last id.
    """
    out = Path(out_dir)
    if out.exists():
        raise XltError(f"{out} already exists; remove it first, or use tiny_xlmr() to reuse builds")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        tokenizer = _train_tokenizer(corpus, spec)
        model = _init_model(spec, len(tokenizer))
        with _quiet_transformers():
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def tiny_xlmr(
    cache_dir: str | Path, corpus_texts: Iterable[str], spec: TinyXlmrSpec = TinyXlmrSpec()
) -> Path:
    """A tiny XLM-R for (spec, corpus) under `cache_dir`, built on first use and reused after."""
    texts = list(corpus_texts)  # consumed twice: hashed, then (maybe) trained on
    corpus_hash = hashlib.sha256()
    for text in texts:
        corpus_hash.update(text.encode("utf-8") + b"\0")
    key = json.dumps(
        {"spec": asdict(spec), "corpus": corpus_hash.hexdigest(), "recipe": _RECIPE_VERSION},
        sort_keys=True,
    )
    path = Path(cache_dir) / f"tiny-xlmr-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if not path.exists():
        try:
            build_tiny_xlmr(path, texts, spec)
        except (XltError, OSError):
            if not path.exists():
                raise  # otherwise a concurrent process finished the same build first
    return path
