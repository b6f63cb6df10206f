"""Load any Hugging Face encoder or classifier, run it on the right device and precision, and build tiny XLM-Rs.

The experiments target ``xlm-roberta-base``, but the hub is not always reachable (CI,
air-gapped machines). :func:`build_tiny_xlmr` makes a small, randomly initialised model that
is laid out exactly like the real one (same classes, special-token ids, pair template,
config fields), so every code path that loads ``xlm-roberta-base`` can run unchanged on a
local folder instead; the synthetic profile pre-trains such a model
(:mod:`xltlib.synthetic.pretraining`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, trainers
from transformers import (
    AutoModel,
    AutoModelForMultipleChoice,
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
from xltlib.files import atomic_directory, build_once, canonical_sha256

# XLM-R's fixed special tokens, in id order 0..3; `<mask>` is appended as the last id.
_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


_BOS_ID, _PAD_ID, _EOS_ID = 0, 1, 2


_MASK = "<mask>"


# Bump when `build_tiny_xlmr` would write something different for the same inputs,
# so `tiny_xlmr` does not hand back a stale cached build.
_RECIPE_VERSION = 2


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
def quiet_transformers() -> Iterator[None]:
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
    name_or_path: str | Path,
    model_class: type,
    device: torch.device | str | None,
    revision: str | None = None,
    **model_kwargs,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load tokenizer and model, turning "not found anywhere" into one actionable XltError."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
        with quiet_transformers():
            # float32 master weights: mixed precision is applied by autocast at run time.
            # SDPA: fused attention kernels (flash / memory-efficient on CUDA) instead of an explicit softmax
            model = model_class.from_pretrained(
                name_or_path, revision=revision, dtype=torch.float32, attn_implementation="sdpa", **model_kwargs
            )
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
    name_or_path: str | Path,
    num_labels: int,
    device: torch.device | str | None = None,
    revision: str | None = None,
    multiple_choice: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Any HF encoder (hub id, at ``revision``, or local folder) with a fresh task head.

    The head is a `num_labels`-way classifier, or with ``multiple_choice`` one score per
    choice (``AutoModelForMultipleChoice``, as XTREME-R fine-tunes XCOPA).
    """
    if multiple_choice:
        return _load(name_or_path, AutoModelForMultipleChoice, device, revision)
    return _load(name_or_path, AutoModelForSequenceClassification, device, revision, num_labels=num_labels)


def load_encoder(
    name_or_path: str | Path, device: torch.device | str | None = None, revision: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The bare encoder (no task head) and its tokenizer, for extracting embeddings."""
    return _load(name_or_path, AutoModel, device, revision)


def resolve_device(device: str | None = None):
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_for(device: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on CUDA; on CPU only with ``cpu_bf16``, full precision otherwise.

    CPU bf16 pays off only where the CPU computes it natively (AVX512-BF16, AMX): there a
    masked-LM step of the synthetic encoder ran 1.5× faster (benchmarks/pretrain_step.py);
    elsewhere it is emulated and slower. So it is opt-in, per recipe, never automatic.
    """
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cpu_bf16 and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (torch's own probe; assumed so where torch has none)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return not any(probes) or any(probe() for probe in probes if probe)


def train_tokenizer(corpus: Iterable[str], spec: TinyXlmrSpec) -> XLMRobertaTokenizer:
    """Train a SentencePiece-style Unigram tokenizer on `corpus`, laid out like XLM-R's.

    The pieces come from `tokenizers`' BPE trainer and their Unigram scores are the log
    frequencies of the pieces in the BPE-tokenized corpus (add-one smoothed, so every piece,
    single characters included, stays usable for unseen words). `tokenizers`' own Unigram
    trainer only seeds pieces that occur inside two *distinct* words, so it never learns a
    whole word of a small closed vocabulary (the synthetic languages came out at 3 pieces
    per word); BPE merges by frequency and does. The result is deterministic for a corpus.
    """
    texts = list(corpus)
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    # On reload, XLMRobertaTokenizer rebuilds its pipeline from the vocab alone, so train with
    # exactly the pre-tokenizer it will use (and no normalizer, which it would drop).
    bpe.pre_tokenizer = XLMRobertaTokenizer().backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size - 1,  # leave room for <mask>
        special_tokens=list(_SPECIALS),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    counts = Counter(piece for encoding in bpe.encode_batch(texts) for piece in encoding.tokens)
    pieces = [piece for piece in bpe.get_vocab() if piece not in _SPECIALS]
    total = sum(counts[piece] + 1 for piece in pieces)
    scored = [(piece, round(math.log((counts[piece] + 1) / total), 4)) for piece in pieces]
    vocab = (
        [(token, 0.0) for token in _SPECIALS] + sorted(scored, key=lambda item: (-item[1], item[0])) + [(_MASK, 0.0)]
    )
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=spec.max_length)


def init_model(spec: TinyXlmrSpec, vocab_size: int) -> XLMRobertaForMaskedLM:
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


def build_tiny_xlmr(out_dir: str | Path, corpus: Iterable[str], spec: TinyXlmrSpec = TinyXlmrSpec()) -> Path:
    """Train a tokenizer on `corpus`, initialise a tiny XLM-R and save both into `out_dir`.

    The folder loads with `AutoTokenizer` / `AutoModelForSequenceClassification` just like
    `xlm-roberta-base`. It is written into a temporary sibling and renamed into place, so it either
    exists complete or not at all. The model's vocabulary is the tokenizer's real size, which is
    below `spec.vocab_size` when the corpus is small; `<mask>` is always the last id.
    """
    with atomic_directory(out_dir, "use tiny_xlmr() to reuse builds") as tmp:
        tokenizer = train_tokenizer(corpus, spec)
        model = init_model(spec, len(tokenizer))
        with quiet_transformers():
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


def tiny_xlmr(cache_dir: str | Path, corpus_texts: Iterable[str], spec: TinyXlmrSpec = TinyXlmrSpec()) -> Path:
    """A tiny XLM-R for (spec, corpus) under `cache_dir`, built on first use and reused after."""
    texts = list(corpus_texts)  # consumed twice: hashed, then (maybe) trained on
    key = canonical_sha256({"spec": asdict(spec), "corpus": canonical_sha256(texts), "recipe": _RECIPE_VERSION})
    path = Path(cache_dir) / f"tiny-xlmr-{key[:16]}"
    return build_once(path, lambda out: build_tiny_xlmr(out, texts, spec))
