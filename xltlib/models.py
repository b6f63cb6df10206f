"""Load Hugging Face encoders for classification, and build tiny XLM-R stand-ins offline.

The experiments target `xlm-roberta-base`, but the hub is not always reachable (CI, air-gapped
machines). `build_tiny_xlmr` makes a small, randomly initialised model that is laid out exactly
like the real one (same classes, special-token ids, pair template, config fields), so every code
path that loads `xlm-roberta-base` can run unchanged on a local folder instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
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
from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

from xltlib.atomic import atomic_directory, build_once
from xltlib.config import _check_number
from xltlib.errors import XltError

log = logging.getLogger(__name__)

DETECTION_FORMED_RECALL = 0.5
"""Held-out recall below which the detection stage is reported as not formed (a warning)."""

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
    vocab = [(token, 0.0) for token in _SPECIALS] + sorted(scored, key=lambda item: (-item[1], item[0])) + [(_MASK, 0.0)]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=spec.max_length)


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
    with atomic_directory(out_dir, "use tiny_xlmr() to reuse builds") as tmp:
        tokenizer = _train_tokenizer(corpus, spec)
        model = _init_model(spec, len(tokenizer))
        with _quiet_transformers():
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


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
    return build_once(path, lambda out: build_tiny_xlmr(out, texts, spec))


@dataclass(frozen=True)
class PretrainSpec:
    """Masked-LM pre-training of a tiny XLM-R from scratch (the recipe of BERT and XLM-R).

    Attributes:
        steps: optimizer steps.
        batch_size: documents per step, drawn without replacement from the shuffled corpus.
        learning_rate: peak AdamW learning rate (linear warm-up, then linear decay to 0).
        warmup_ratio: fraction of steps spent warming up.
        weight_decay: AdamW weight decay.
        mask_probability: fraction of tokens to predict; of those 80% become ``<mask>``,
            10% a random token and 10% stay unchanged.
        dropout: dropout on hidden states and attention weights during masked-LM steps only
            (the saved config keeps XLM-R's 0.1 for fine-tuning). XLM-R pre-trains with 0.1;
            compute-limited pre-training learns more per step without it (Geiping & Goldstein,
            "Cramming", ICML 2023).
        bf16: bf16 autocast on every device, CPU included (see :func:`xltlib.train.autocast_for`);
            part of the recipe, so a CPU and a GPU build of one spec train alike.
        group_by_length: batches of documents of similar length, as Hugging Face's
            ``group_by_length`` makes them (each epoch's shuffled documents, sorted by length
            within mega-batches of 50 batches): the same documents per epoch with less
            padding, a fifth faster on the synthetic corpus (benchmarks/pretrain_step.py).
        seed: seeds data order, masking and dropout (weights are seeded by ``TinyXlmrSpec.seed``).
    """

    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    mask_probability: float = 0.15
    dropout: float = 0.1
    bf16: bool = False
    group_by_length: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _check_schedule(self)
        if not isinstance(self.group_by_length, bool):
            raise XltError(f"PretrainSpec.group_by_length must be True or False, got {self.group_by_length!r}")
        _check_number("PretrainSpec.steps", self.steps, int, low=1)
        _check_number("PretrainSpec.mask_probability", self.mask_probability, float, low=0, high=1)
        _check_dropout("PretrainSpec.dropout", self.dropout)


@dataclass(frozen=True)
class DetectionSpec:
    """Intermediate training on source-language pairs: does each word say something new?

    A token-classification head on the encoder's last layer is trained to tell, for every
    word of a sentence pair, whether the other sentence states its fact (labels of
    :func:`xltlib.synthetic.detection_pairs`); the head is then discarded. This is
    intermediate-task training on the source language between pre-training and fine-tuning
    (Phang et al., AACL 2020, did it on English for XTREME), with a word-level objective in
    the spirit of ELECTRA's replaced-token detection (Clark et al., ICLR 2020).

    With ``pair_weight`` > 0 a second head, on the ``<s>`` token, is trained alongside to tell
    which segments hold a new word (neither, the second, the first, both). Why: the word-level
    stage can form (held-out recall 0.96) while ``<s>`` never learns to gather its verdicts,
    and then fine-tuning, which reads ``<s>``, stalls at the 0.66 that negation alone gives
    (book, design notes, "How robust the profile is"). The default profile runs such a ``<s>`` stage
    after the word-level one on every draw (:func:`xltlib.profiles.default_synthetic_profile`).

    Attributes:
        steps: optimizer steps; 0 skips the stage.
        batch_size: pairs per step, drawn without replacement from the shuffled pairs.
        learning_rate: peak AdamW learning rate (linear warm-up, then linear decay to 0).
        warmup_ratio: fraction of steps spent warming up.
        weight_decay: AdamW weight decay.
        dropout: dropout on hidden states and attention weights during the stage; the saved
            config keeps it, so fine-tuning the encoder uses it too (masked-LM pre-training
            uses XLM-R's 0.1).
        held_out: pairs kept out of training to report the head's recall and false-positive rate (≥ 1).
        pair_weight: weight of the ``<s>`` head's loss next to the word-level loss (0 trains no such head).
        bf16: bf16 autocast on every device, CPU included (as :attr:`PretrainSpec.bf16`).
        seed: seeds the heads' weights, data order and dropout.
    """

    steps: int = 0
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    dropout: float = 0.0
    held_out: int = 500
    pair_weight: float = 0.0
    bf16: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _check_schedule(self)
        _check_number("DetectionSpec.steps", self.steps, int, low=0)
        _check_number("DetectionSpec.held_out", self.held_out, int, low=1)
        _check_number("DetectionSpec.pair_weight", self.pair_weight, float, low=0)
        _check_dropout("DetectionSpec.dropout", self.dropout)


def _check_dropout(name: str, value: float) -> None:
    _check_number(name, value, float, low=0, high=1)
    if value == 1:
        raise XltError(f"{name} must be < 1, got 1")


def _check_schedule(spec: PretrainSpec | DetectionSpec) -> None:
    """The optimizer fields that PretrainSpec and DetectionSpec share."""
    kind = type(spec).__name__
    _check_number(f"{kind}.batch_size", spec.batch_size, int, low=1)
    _check_number(f"{kind}.learning_rate", spec.learning_rate, float, low=0, low_open=True)
    _check_number(f"{kind}.warmup_ratio", spec.warmup_ratio, float, low=0, high=1)
    _check_number(f"{kind}.weight_decay", spec.weight_decay, float, low=0)
    _check_number(f"{kind}.seed", spec.seed, int, low=0)
    if not isinstance(spec.bf16, bool):
        raise XltError(f"{kind}.bf16 must be True or False, got {spec.bf16!r}")


def pretrain_encoder(
    out_dir: str | Path,
    corpus: Iterable[str | tuple[str, str]],
    spec: TinyXlmrSpec,
    pretraining: PretrainSpec,
    device: torch.device | str = "cpu",
    progress: bool = True,
    detection_pairs: Sequence[tuple[str, ...]] = (),
    stages: Sequence[DetectionSpec] = (),
) -> Path:
    """Train a tokenizer on ``corpus``, pre-train an ``XLMRobertaForMaskedLM`` on it, save both.

    A document of ``corpus`` is one text or a pair of texts, encoded with XLM-R's pair
    template (``<s> a </s></s> b </s>``) like the pairs of the classification tasks. The
    masked-LM pre-training is followed by the intermediate change-detection ``stages``, in
    order, on ``detection_pairs`` (rows ``(a, b, labels_a, labels_b[, kinds_a, kinds_b])``,
    see :class:`DetectionSpec`); their words must be in the tokenizer's corpus.

    The folder loads with ``from_pretrained`` like ``xlm-roberta-base`` (``AutoModel``,
    ``AutoModelForSequenceClassification``) and holds ``pretraining.json`` with the specs, the
    loss curves, each stage's held-out scores and the time taken. Deterministic for the
    inputs on one device type. Written whole or not at all.
    """
    documents = [(document,) if isinstance(document, str) else tuple(document) for document in corpus]
    stages = [stage for stage in stages if stage.steps]
    for stage in stages:
        _check_enough_pairs(detection_pairs, stage)
    warn_if_bf16_is_emulated(torch.device(device), pretraining, *stages)
    with atomic_directory(out_dir, "reuse it (xltlib.profiles caches builds)") as tmp:
        started = time.perf_counter()
        tokenizer = _train_tokenizer([text for document in documents for text in document], spec)
        model = _init_model(spec, len(tokenizer)).to(device)
        losses = _mlm_steps(model, tokenizer, documents, pretraining, torch.device(device), progress)
        report = {
            "encoder": asdict(spec),
            "pretraining": asdict(pretraining),
            "documents": len(documents),
            "vocab_size": len(tokenizer),
            "parameters": sum(p.numel() for p in model.parameters()),
            "loss_every_100_steps": _every_100(losses),
            "masked_lm_seconds": round(time.perf_counter() - started, 1),
            "stages": [],
        }
        for stage in stages:
            stage_started = time.perf_counter()
            scores = _detection_steps(model, tokenizer, list(detection_pairs), stage, torch.device(device), progress)
            report["stages"].append({"spec": asdict(stage), **scores, "seconds": round(time.perf_counter() - stage_started, 1)})
            _warn_if_not_formed(report["stages"][-1])
        report["seconds"] = round(time.perf_counter() - started, 1)
        _save(model, tokenizer, report, tmp)
    return Path(out_dir)


def warn_if_bf16_is_emulated(device: torch.device, *specs: PretrainSpec | DetectionSpec) -> None:
    """Warn when a spec asks for bf16 on a CPU that lacks native bf16: it still trains alike, only slower."""
    wanted = device.type == "cpu" and any(spec.bf16 and spec.steps for spec in specs)
    if wanted and not cpu_has_native_bf16():
        log.warning("this CPU has no native bf16 (AVX512-BF16 or AMX), so the build's bf16 autocast is emulated: "
                    "expect it to take several times longer than the book's speed chapter")  # fmt: skip


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (torch's own probe; assumed so where torch has none)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return not any(probes) or any(probe() for probe in probes if probe)


def _check_enough_pairs(detection_pairs: Sequence, detection: DetectionSpec) -> None:
    if len(detection_pairs) <= detection.held_out:
        raise XltError(f"the detection stage needs more than {detection.held_out} pairs (held out), got {len(detection_pairs)}")


def _save(model, tokenizer, report: dict, folder: Path) -> None:
    """An encoder folder that loads like ``xlm-roberta-base``, with its build report."""
    model.to("cpu")
    with _quiet_transformers():
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "pretraining.json").write_text(json.dumps(report, indent=2) + "\n")


def _not_formed(stage: dict) -> dict[str, float]:
    """Recalls below :data:`DETECTION_FORMED_RECALL` in a stage's report: ``{"overall": r}`` or ``{kind: r, ...}``; empty when formed."""
    if stage["detection_held_out_recall"] < DETECTION_FORMED_RECALL:
        return {"overall": stage["detection_held_out_recall"]}
    return {kind: recall for kind, recall in stage["detection_held_out_recall_by_kind"].items()
            if recall < DETECTION_FORMED_RECALL}  # fmt: skip


def _warn_if_not_formed(stage: dict) -> None:
    missed = _not_formed(stage)
    if "overall" in missed:
        log.warning("the detection stage did not form: held-out recall of new words %.2f < %.2f; fine-tuning "
                    "will hardly compare the two segments (book, design notes: 'Why the change-detection stage')",
                    missed["overall"], DETECTION_FORMED_RECALL)  # fmt: skip
    elif missed:
        log.warning("the detection stage did not form for %s (held-out recall %s < %.2f): fine-tuning will hardly "
                    "notice a change of these words (book, design notes: 'Why no verb synonyms')", ", ".join(missed),
                    ", ".join(f"{recall:.2f}" for recall in missed.values()), DETECTION_FORMED_RECALL)  # fmt: skip


def batch_schedule(rows: int, batch_size: int, seed: int, lengths: Sequence[int] | None = None) -> Callable[[int], np.ndarray]:
    """Row indices of each optimizer step: full batches of a fresh order per epoch, fixed by seed.

    The order is a permutation; with ``lengths`` (one per row), Hugging Face's
    ``group_by_length`` order of that epoch instead (:attr:`PretrainSpec.group_by_length`).
    """
    from transformers.trainer_pt_utils import get_length_grouped_indices

    @functools.lru_cache(maxsize=1)  # steps ask for one epoch at a time
    def epoch_order(epoch: int) -> np.ndarray:
        if lengths is None:
            return np.random.default_rng([seed, epoch]).permutation(rows)
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
        return np.asarray(get_length_grouped_indices(list(lengths), batch_size, generator=generator))

    def step_rows(step: int) -> np.ndarray:
        epoch, position = divmod(step, rows // batch_size)
        return epoch_order(epoch)[position * batch_size : (position + 1) * batch_size]

    return step_rows


def _every_100(losses: list[float]) -> list[float]:
    return [round(float(np.mean(losses[i : i + 100])), 4) for i in range(0, len(losses), 100)]


def _word_label_ids(tokenizer, pairs: list[tuple[str, ...]]) -> tuple[list[list[int]], list[list[int]], list[list[str | None]]]:
    """Token ids of each pair, a label per token (its word's, -100 where there is none) and a kind per token.

    A row is ``(a, b, labels_a, labels_b[, kinds_a, kinds_b])``; without kinds every
    labeled token's kind is ``"word"``.
    """
    encoded = tokenizer([a for a, *_ in pairs], [b for _, b, *_ in pairs], truncation=True)
    labels, kinds = [], []
    for row, (_, _, labels_a, labels_b, *kinds_ab) in enumerate(pairs):
        words = (labels_a.split(), labels_b.split())
        word_kinds = tuple(column.split() for column in kinds_ab) or (["word"] * len(words[0]), ["word"] * len(words[1]))
        tokens = list(zip(encoded.word_ids(row), encoded.sequence_ids(row)))
        labels.append([-100 if word is None or words[segment][word] == "-" else int(words[segment][word])
                       for word, segment in tokens])  # fmt: skip
        kinds.append([None if label == -100 else word_kinds[segment][word] for label, (word, segment) in zip(labels[-1], tokens)])
    return encoded["input_ids"], labels, kinds


def _pair_labels(pairs: list[tuple[str, ...]]) -> list[int]:
    """Per pair: which segments hold a new word, as 2·first + second (0 neither, 1 second, 2 first, 3 both)."""
    return [2 * ("1" in labels_a.split()) + ("1" in labels_b.split()) for _, _, labels_a, labels_b, *_ in pairs]


def _detection_steps(model, tokenizer, pairs: list[tuple[str, ...]], detection: DetectionSpec,
                     device: torch.device, progress: bool) -> dict:  # fmt: skip
    """Run the change-detection stage on ``model``'s encoder; return its loss curve and held-out scores."""
    from transformers import get_linear_schedule_with_warmup

    from .train import autocast_for

    ids, labels, kinds = _word_label_ids(tokenizer, pairs)
    pair_labels = _pair_labels(pairs)
    train_rows = len(ids) - detection.held_out
    if train_rows < detection.batch_size:
        raise XltError(f"{train_rows} detection pairs are fewer than one batch of {detection.batch_size}")

    def batch(rows) -> tuple[dict, torch.Tensor, torch.Tensor]:
        padded = tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt")
        width = padded["input_ids"].shape[1]
        targets = torch.tensor([labels[i] + [-100] * (width - len(labels[i])) for i in rows])
        pair_targets = torch.tensor([pair_labels[i] for i in rows])
        return {key: value.to(device) for key, value in padded.items()}, targets.to(device), pair_targets.to(device)

    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = detection.dropout
    _set_dropout(model, detection.dropout)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), _eager_attention_on_cpu(model, device):
        torch.manual_seed(detection.seed)
        head = torch.nn.Linear(model.config.hidden_size, 2).to(device)
        pair_head = torch.nn.Linear(model.config.hidden_size, 4).to(device) if detection.pair_weight else None
        parameters = [*model.roberta.parameters(), *head.parameters(), *(pair_head.parameters() if pair_head is not None else ())]
        optimizer = torch.optim.AdamW(parameters, lr=detection.learning_rate, weight_decay=detection.weight_decay, fused=True)
        scheduler = get_linear_schedule_with_warmup(optimizer, round(detection.warmup_ratio * detection.steps), detection.steps)
        step_rows = batch_schedule(train_rows, detection.batch_size, detection.seed)
        losses = []
        model.train()
        bar = tqdm(range(detection.steps), desc="detection stage", disable=not progress, mininterval=1.0)
        for step in bar:
            inputs, targets, pair_targets = batch(step_rows(step))
            with autocast_for(device, cpu_bf16=detection.bf16):
                hidden = model.roberta(**inputs).last_hidden_state
                logits = head(hidden)
                pair_logits = pair_head(hidden[:, 0]) if pair_head is not None else None
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)
            if pair_logits is not None:
                loss = loss + detection.pair_weight * torch.nn.functional.cross_entropy(pair_logits.float(), pair_targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if step % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
    held_out_kinds = [kind for row in kinds[train_rows:] for kind in row if kind is not None]
    scores = _held_out_scores(model, head, pair_head, batch, train_rows, len(ids), held_out_kinds)
    return {"detection_loss_every_100_steps": _every_100(losses), **scores}


def _held_out_scores(model, head, pair_head, batch, start: int, stop: int, kinds: list[str]) -> dict:
    """Recall of new words (overall and per kind) and false-positive rate on stated words, over pairs ``start:stop``.

    ``kinds`` names the kind of every labeled token of those pairs, in order. One overall
    recall can hide a kind of word the stage never learned (changed verbs once had recall
    0.00 inside an overall 0.77), so the recall of each kind is reported too. With a
    ``pair_head``, also the accuracy of its four-way verdict.
    """
    model.eval()
    predicted, truth, pair_hits = [], [], []
    with torch.no_grad():
        for first in range(start, stop, 250):
            inputs, targets, pair_targets = batch(range(first, min(first + 250, stop)))
            hidden = model.roberta(**inputs).last_hidden_state
            keep = targets != -100
            predicted.append(head(hidden).argmax(-1)[keep].cpu())
            truth.append(targets[keep].cpu())
            if pair_head is not None:
                pair_hits.append((pair_head(hidden[:, 0]).argmax(-1) == pair_targets).cpu())
    predicted, truth = torch.cat(predicted).numpy(), torch.cat(truth).numpy()
    kinds = np.array(kinds)
    new = truth == 1
    pair_accuracy = {"detection_held_out_pair_accuracy": round(float(torch.cat(pair_hits).float().mean()), 4)} if pair_hits else {}
    return {
        **pair_accuracy,
        "detection_held_out_recall": round(float(predicted[new].mean()), 4),
        "detection_held_out_false_positive_rate": round(float(predicted[~new].mean()), 4),
        "detection_held_out_recall_by_kind": {
            kind: round(float(predicted[new & (kinds == kind)].mean()), 4) for kind in sorted(set(kinds[new]))
        },
    }


def _mlm_steps(model, tokenizer, documents: list[tuple[str, ...]], pretraining: PretrainSpec, device: torch.device,
               progress: bool) -> list[float]:  # fmt: skip
    """Run the MLM optimizer steps; return every step's loss."""
    from transformers import DataCollatorForLanguageModeling, get_linear_schedule_with_warmup

    from .train import autocast_for

    ids: list[list[int]] = [[] for _ in documents]
    for segments in (1, 2):  # batched: single texts and pairs tokenize separately
        rows = [i for i, document in enumerate(documents) if len(document) == segments]
        if rows:
            columns = [list(column) for column in zip(*(documents[i] for i in rows))]
            for i, row_ids in zip(rows, tokenizer(*columns, truncation=True)["input_ids"]):
                ids[i] = row_ids
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=pretraining.mask_probability, seed=pretraining.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=pretraining.learning_rate, weight_decay=pretraining.weight_decay,
                                  fused=True)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(pretraining.warmup_ratio * pretraining.steps), pretraining.steps
    )
    if len(ids) < pretraining.batch_size:
        raise XltError(f"the corpus has {len(ids)} documents, fewer than one batch of {pretraining.batch_size}")
    step_rows = batch_schedule(len(ids), pretraining.batch_size, pretraining.seed,
                               [len(row) for row in ids] if pretraining.group_by_length else None)  # fmt: skip
    losses = []
    model.train()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
            _dropout(model, pretraining.dropout), _eager_attention_on_cpu(model, device):  # fmt: skip
        torch.manual_seed(pretraining.seed)
        bar = tqdm(range(pretraining.steps), desc="pre-train MLM", disable=not progress, mininterval=1.0)
        for step in bar:
            batch = {key: value.to(device) for key, value in collate([{"input_ids": ids[i]} for i in step_rows(step)]).items()}
            with autocast_for(device, cpu_bf16=pretraining.bf16):
                loss = masked_lm_loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if step % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
    return losses


def masked_lm_loss(model: XLMRobertaForMaskedLM, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``model(**batch).loss``, with the LM head applied to the masked tokens only.

    The head works token by token, so the loss is the same; it just skips projecting onto the
    vocabulary the 85% of tokens that have nothing to predict (the sparse prediction of
    "Cramming"), which saves a fifth of a synthetic-encoder step (benchmarks/pretrain_step.py).
    """
    hidden = model.roberta(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    predicted = batch["labels"] != -100
    logits = model.lm_head(hidden[predicted])
    full_precision = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 logits up, float64 kept
    return torch.nn.functional.cross_entropy(full_precision, batch["labels"][predicted])


def _set_dropout(model: torch.nn.Module, probability: float) -> list[tuple[torch.nn.Dropout, float]]:
    """Set every dropout layer of ``model`` to ``probability``; return each layer with its previous value."""
    layers = [(module, module.p) for module in model.modules() if isinstance(module, torch.nn.Dropout)]
    for layer, _ in layers:
        layer.p = probability
    return layers


@contextmanager
def _dropout(model: torch.nn.Module, probability: float) -> Iterator[None]:
    """Every dropout layer of ``model`` at ``probability`` inside the block; the config and the layers' own values are kept."""
    kept = _set_dropout(model, probability)
    try:
        yield
    finally:
        for layer, p in kept:
            layer.p = p


@contextmanager
def _eager_attention_on_cpu(model: PreTrainedModel, device: torch.device) -> Iterator[None]:
    """Eager attention inside the block when training on CPU; the model's own choice is restored after.

    The same attention, computed differently: on this project's CPU, a bf16 masked-LM step of
    the synthetic encoder took 8% longer with SDPA than with eager attention, and 2.3× as long
    without dropout (one probe, 2026-11-26); in full precision the two are on par.
    """
    if device.type != "cpu":
        yield
        return
    kept = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(kept)
