import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xltlib.config import RunConfig
from xltlib.data.tasks import TASKS
from xltlib.errors import XltError


def make(**overrides):
    return RunConfig(**{"task": "pawsx", "model": "xlm-roberta-base", **overrides})


def test_defaults_fill_target_languages_and_method_params():
    config = make()
    assert config.tgt_langs == TASKS["pawsx"].languages
    assert config.method_params == {}


def test_hash_is_stable_across_processes():
    code = "from xltlib.config import RunConfig; print(RunConfig(task='pawsx', model='xlm-roberta-base').config_hash())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == make().config_hash()


def test_hash_separates_configs_that_can_differ():
    base = make()
    assert make(seed=2).config_hash() != base.config_hash()
    assert make(learning_rate=3e-5).config_hash() != base.config_hash()
    assert make(tgt_langs=("de",)).config_hash() != base.config_hash()
    # Spelling out the default target languages is the same run.
    assert make(tgt_langs=TASKS["pawsx"].languages).config_hash() == base.config_hash()


def test_dict_round_trip_keeps_the_hash():
    config = make(seed=7, tgt_langs=("de", "fr"))
    assert RunConfig.from_dict(config.to_dict()).config_hash() == config.config_hash()


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"task": "xnl"}, "did you mean 'xnli'"),
        ({"method": "standrd"}, "did you mean 'standard'"),
        ({"method_params": {"eps": "0.1"}}, "has no parameter 'eps'"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"batch_size": True}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": float("nan")}, "epochs"),
        ({"batch_size": 30, "grad_accum_steps": 4}, "multiple of grad_accum_steps"),
        ({"tgt_langs": ("de", "dee")}, "tgt_langs: 'dee'"),
        ({"src_lang": "xx"}, "src_lang"),
        ({"eval_split": "tset"}, "did you mean 'test'"),
        ({"profile": "synthetc"}, "did you mean 'synthetic'"),
        ({"data_dir": "/no/such/folder", "train_file": None}, "/no/such/folder does not exist"),
        ({"max_train_examples": 0}, "max_train_examples"),
        ({"align_pooling": "cl"}, "did you mean 'cls'"),
        ({"max_align_sentences": 1.5}, "max_align_sentences"),
        ({"method": "pretrained", "method_params": {"x": 1}}, "takes no method_params"),
    ],
)
def test_invalid_values_name_the_field(overrides, expected):
    with pytest.raises(XltError, match=expected.replace("(", r"\(")):
        make(**overrides)


def test_data_dir_without_train_file_is_refused(tmp_path):
    with pytest.raises(XltError, match="train_file is required"):
        make(data_dir=str(tmp_path))


def test_from_dict_names_unknown_keys():
    with pytest.raises(XltError, match="did you mean 'learning_rate'"):
        RunConfig.from_dict({"task": "pawsx", "model": "m", "lerning_rate": 1e-5})


def test_local_model_paths_are_stored_absolute(tmp_path, monkeypatch):
    (tmp_path / "tiny").mkdir()
    monkeypatch.chdir(tmp_path)
    assert make(model="tiny").model == str(tmp_path / "tiny")


def test_pretrained_run_is_shared_by_every_fine_tuning_run_of_a_model_and_task():
    base = make(tgt_langs=("de", "fr"))
    pretrained = base.pretrained()
    assert pretrained.method == "pretrained" and pretrained.seed == 0
    for other in (make(tgt_langs=("de", "fr"), seed=3), make(tgt_langs=("de", "fr"), learning_rate=1e-3, epochs=1.0)):
        assert other.pretrained().run_id() == pretrained.run_id()
    # ... but not across what changes the encoder's embeddings or the sentences they are measured on.
    for changed in (
        {"model": "xlm-roberta-large"},
        {"align_pooling": "cls"},
        {"max_align_sentences": 100},
        {"max_seq_length": 64},
        {"tgt_langs": ("de",)},
    ):
        assert make(**{"tgt_langs": ("de", "fr"), **changed}).pretrained().run_id() != pretrained.run_id()


def test_importing_the_config_loads_no_torch():
    check = (
        "import sys, xltlib.config; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if "
        "'torch' in m)[:5]"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_method_has_its_parameters_model_and_no_other():
    from xltlib import methods
    from xltlib.config.methods import METHOD_PARAMS

    assert set(METHOD_PARAMS) == set(methods.METHODS)
    assert all(methods.METHODS[name].Params is METHOD_PARAMS[name] for name in METHOD_PARAMS)


def test_a_run_is_identified_by_what_it_computes_not_where_its_files_live(tiny_xlmr, shared_data, tmp_path):
    """Two checkouts (or machines) at different paths give the same run the same id; other content, another id."""
    model, _ = tiny_xlmr(words=20, lengths=(3, 8), documents=50, vocab_size=80)
    configs = []
    for place in ("checkout-a", "elsewhere/checkout-b"):
        root = tmp_path / place
        shutil.copytree(model, root / "model")
        shutil.copytree(shared_data / "pawsx" / "xtreme", root / "data")
        configs.append(
            RunConfig(
                task="pawsx",
                model=str(root / "model"),
                data_dir=str(root / "data"),
                train_file=str(root / "data" / "dev-en.tsv"),
            )
        )
    first, second = configs
    assert first.model != second.model and first.run_id() == second.run_id()
    assert first.pretrained().run_id() == second.pretrained().run_id() and first.model_name == second.model_name
    with open(Path(second.data_dir) / "test-de.tsv", "a") as handle:
        handle.write("ein Satz\tein anderer\t1\n")
    assert RunConfig.from_dict(second.to_dict()).run_id() != first.run_id()


def test_a_hub_model_is_identified_by_id_and_revision(tmp_path):
    assert make(model_revision="abc123").run_id() != make().run_id()
    assert make(model_revision="abc123").model_name == "FacebookAI/xlm-roberta-base@abc123"
    (tmp_path / "local").mkdir()
    with pytest.raises(XltError, match="model_revision names a hub revision"):
        make(model=str(tmp_path / "local"), model_revision="abc123")
