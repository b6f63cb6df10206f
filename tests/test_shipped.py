"""The shipped synthetic encoders: in step with the recipe, checked by sha256, loaded like XLM-R, never pre-trained."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForMaskedLM, AutoTokenizer

from xltlib import integrity
from xltlib.errors import XltError
from xltlib.synthetic import build, generated, recipe, run_config, shipped

SHIPPED = shipped.SHIPPED_ENCODERS
RECIPE = recipe.default_synthetic_profile().recipe_hash()


def test_the_shipped_encoders_were_built_from_the_recipe_in_the_code():
    recorded = shipped.read_manifest()["recipe_hash"]
    assert recorded == RECIPE, (
        "the encoder recipe in the code no longer hashes to the one the shipped encoders were built from: "
        "rebuild and re-ship them (README, 'Shipped encoders')"
    )


def test_every_shipped_draw_passed_its_check_verifies_and_loads_like_xlmr_in_float32():
    manifest = shipped.read_manifest()
    draws = shipped.shipped_draws()
    assert len(draws) >= recipe.default_synthetic_profile().check.ship == 10
    assert sum(path.stat().st_size for path in SHIPPED.rglob("*") if path.is_file()) <= 24 * 2**20
    embeddings = []
    for draw in draws:
        folder = shipped.verified_encoder(draw, RECIPE)
        record = json.loads((folder / "pretraining.json").read_text())
        assert record["recipe_hash"] == RECIPE and record["pretraining"]["seed"] == record["encoder"]["seed"] == draw
        assert record["build_check"]["passed"] and record["build_check"]["lowest"] >= recipe.SOURCE_ACCURACY_FLOOR
        assert {"device_name", "packages", "started"} <= set(record["environment"])
        with safe_open(folder / "model.safetensors", "pt") as weights:  # stored in float16, read in float32
            assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {"F16"}
        model = AutoModelForMaskedLM.from_pretrained(folder, dtype=torch.float32)
        assert {tensor.dtype for tensor in model.state_dict().values() if tensor.is_floating_point()} == {torch.float32}
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.sep_token_id) == (0, 1, 2)
        embeddings.append(model.state_dict()["roberta.embeddings.word_embeddings.weight"])
    assert all(not torch.equal(embeddings[0], other) for other in embeddings[1:])  # independent draws
    passed = [attempt["masked_lm_seed"] for attempt in manifest["attempts"] if attempt["passed"]]
    assert draws == passed[: len(draws)]  # the rule: the first passing seeds, none skipped


@pytest.fixture
def copied_set(tmp_path):
    return shutil.copytree(SHIPPED, tmp_path / "set")


def test_an_altered_weights_file_is_refused_with_how_to_restore_it(copied_set):
    draw = shipped.shipped_draws(copied_set)[0]
    weights = shipped.draw_folder(copied_set, draw) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(XltError, match="is not the shipped file") as error:
        shipped.verified_encoder(draw, RECIPE, copied_set)
    assert (
        str(weights) in str(error.value)
        and "git checkout" in str(error.value)
        and "pretrain --rebuild" in str(error.value)
    )


def test_a_missing_weights_file_names_itself_and_how_to_restore_it(copied_set):
    draw = shipped.shipped_draws(copied_set)[-1]
    weights = shipped.draw_folder(copied_set, draw) / "model.safetensors"
    weights.unlink()
    with pytest.raises(XltError, match="is missing") as error:
        shipped.verified_encoder(draw, RECIPE, copied_set)
    assert (
        str(weights) in str(error.value)
        and "git checkout" in str(error.value)
        and "pretrain --rebuild" in str(error.value)
    )


def test_a_missing_manifest_an_unknown_draw_and_another_recipe_are_refused(copied_set):
    with pytest.raises(XltError, match="draw 99 is not in .*its draws"):
        shipped.verified_encoder(99, RECIPE, copied_set)
    with pytest.raises(XltError, match="a recipe change needs rebuilt encoders"):
        shipped.verified_encoder(shipped.shipped_draws(copied_set)[0], "0" * 64, copied_set)
    (copied_set / shipped.MANIFEST).unlink()
    with pytest.raises(XltError, match="manifest.json is missing.*git checkout"):
        shipped.verified_encoder(0, RECIPE, copied_set)


def test_the_restore_hint_names_the_shipped_folder_inside_the_repository():
    with pytest.raises(XltError, match="git checkout -- data/synthetic-encoders"):
        shipped.read_manifest(SHIPPED / "absent")


def test_generated_data_that_differ_from_the_shipped_sets_are_refused(tmp_path):
    data_dir = generated.ensure_data(recipe.quick_synthetic_profile().data, tmp_path, progress=False)
    root = tmp_path / "set"
    root.mkdir()
    (root / shipped.MANIFEST).write_text(json.dumps({"data_sha256": generated.data_sha256(data_dir)}))
    shipped.check_data(data_dir, root)
    with open(data_dir / "syn-nli" / "test-a0svo.tsv", "a", encoding="utf-8") as handle:
        handle.write("one\tmore\tentailment\n")
    with pytest.raises(XltError, match="the folder is damaged"):  # not as it was generated
        shipped.check_data(data_dir, root)
    integrity.record_tree(data_dir, sidecar=integrity.HIDDEN_SIDECAR)  # as another generator would have written it
    with pytest.raises(XltError, match="the data generator .* changed"):
        shipped.check_data(data_dir, root)


@pytest.mark.slow  # generates the default profile's data (~25 s)
def test_a_default_run_takes_a_shipped_draw_of_its_data_and_never_pretrains(tmp_path, monkeypatch):
    def no_pretraining(*args, **kwargs):
        raise AssertionError("a run of the default profile pre-trained an encoder")

    monkeypatch.setattr(build, "pretrain_encoder", no_pretraining)
    draws = shipped.shipped_draws()
    config = run_config.synthetic_run_config("syn-nli", tmp_path, progress=False)
    assert (config.model, config.draw) == (str(shipped.draw_folder(SHIPPED, draws[0])), draws[0])
    assert generated.data_sha256(config.data_dir) == shipped.read_manifest()["data_sha256"]
    other = run_config.synthetic_run_config("syn-paws", tmp_path, progress=False, draw=draws[-1], seed=2)
    assert (other.model, other.draw) == (str(shipped.draw_folder(SHIPPED, draws[-1])), draws[-1])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xltlib",
            "run",
            "--task",
            "syn-nli",
            "--draw",
            "99",
            "--cache",
            str(tmp_path),
            "--out",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        cwd=shipped.REPO,
    )
    assert done.returncode == 2 and "draw 99 is not in" in done.stderr and not (tmp_path / "runs").exists()
