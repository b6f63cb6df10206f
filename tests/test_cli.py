"""The CLI fails fast and clearly on bad input: one line, exit 2, well under 10 s."""

import re
import subprocess
import sys
import time

import pytest

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=REPO):
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "xltlib", *args], capture_output=True, text=True, cwd=cwd)
    return done, time.monotonic() - start


def assert_clear_failure(done, seconds, expected):
    assert done.returncode == 2, done.stderr
    assert seconds < 10
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert expected in lines[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--task", "xnl", "--model", "m"], "did you mean 'xnli'"),
        (["--task", "pawsx", "--model", "m", "--method", "standrd"], "did you mean 'standard'"),
        (
            ["--task", "pawsx", "--model", "m", "--data-dir", "/no/such/dir", "--train-file", "x"],
            "/no/such/dir does not exist",
        ),
        (["--task", "pawsx", "--model", "m", "eps"], "must look like key=value"),
        (["--task", "pawsx", "--model", "m", "eps=0.1"], "has no parameter 'eps'"),
        (["--task", "pawsx", "--model", "m", "--langs", "de,xx"], "tgt_langs: 'xx'"),
        (["--task", "pawsx", "--model", "m", "--method", "pgd", "norm=l3"], "one of ('l2', 'linf')"),
        (["--task", "pawsx", "--model", "m", "--method", "freelb", "steps=0"], "steps must be >= 1"),
        (["--task", "pawsx", "--model", "m", "--method", "rs_da"], "rs_da needs synonyms_file"),
    ],
)
def test_bad_run_arguments_fail_fast_with_one_line(args, expected, tmp_path):
    assert_clear_failure(*run_cli("run", *args, "--out", str(tmp_path)), expected)


def test_unlabeled_test_split_fails_fast_naming_the_file(shared_data, tmp_path):
    xnli = shared_data / "xnli" / "xtreme"
    done, seconds = run_cli(
        "run",
        "--task",
        "xnli",
        "--model",
        "xlm-roberta-base",
        "--data-dir",
        str(xnli),
        "--train-file",
        str(xnli / "dev-en.tsv"),
        "--eval-split",
        "test",
        "--out",
        str(tmp_path),
    )
    assert_clear_failure(done, seconds, "test-ar.tsv")
    assert "no label" in done.stderr


def test_unreachable_model_is_named(shared_data, tmp_path):
    pawsx = shared_data / "pawsx"
    done, seconds = run_cli(
        "run",
        "--task",
        "pawsx",
        "--model",
        "no-such-org/no-such-model",
        "--data-dir",
        str(pawsx / "xtreme"),
        "--train-file",
        str(pawsx / "paws-wiki-en" / "train-source.tsv"),
        "--out",
        str(tmp_path),
        "--max-train-examples",
        "10",
        "--max-eval-examples",
        "10",
    )
    assert done.returncode == 2
    assert "no-such-org/no-such-model" in done.stderr.splitlines()[-1]


def test_help_lists_every_run_flag():
    done, _ = run_cli("run", "--help")
    for flag in ("--task", "--model", "--method", "--data-dir", "--train-file", "--eval-split", "--seed", "--out"):
        assert flag in done.stdout


def test_help_states_the_synthetic_learning_rate_in_use():
    from xltlib.config import SYNTHETIC_FINETUNING
    from xltlib.config.cli import run_flags

    help_text = next(keywords["help"] for flag, _, keywords in run_flags() if flag == "--lr")
    stated = re.search(r"synthetic tasks: ([0-9.e-]+)\)", help_text)
    assert stated and float(stated.group(1)) == SYNTHETIC_FINETUNING["learning_rate"]


def test_every_run_config_field_has_a_flag_whose_help_is_its_metadata_and_defaults():
    """The CLI states no default or description of its own: both come from RunConfig (and SYNTHETIC_FINETUNING)."""
    import dataclasses

    from xltlib.__main__ import build_parser
    from xltlib.config import SYNTHETIC_FINETUNING, RunConfig

    run = next(
        action
        for action in build_parser()._subparsers._group_actions[0].choices.values()
        if action.prog.endswith(" run")
    )
    actions = {action.dest: action for action in run._actions}
    for field in dataclasses.fields(RunConfig):
        if field.name == "method_params":
            assert actions["params"].nargs == "*"  # method parameters arrive as key=value
            continue
        help_text = actions[field.name].help
        assert set(re.sub(r"``|:[a-z]+:`~?|`", "", field.metadata["help"]).split()) <= set(
            help_text.replace("%%", "%").split()
        )
        if field.default not in (dataclasses.MISSING, None, ()):
            assert f"default: {field.default}" in help_text
        if field.name in SYNTHETIC_FINETUNING:
            assert f"synthetic tasks: {SYNTHETIC_FINETUNING[field.name]}" in help_text
        assert actions[field.name].default is None  # unset flags leave RunConfig's defaults in charge
    assert "default: 2.0; synthetic tasks: 1.0" in actions["epochs"].help  # the defaults that once drifted


@pytest.mark.parametrize(
    "method, params, field, value",
    [
        ("pgd", ["eps=0.2", "norm=linf", "perturb_layer=2"], "perturb_layer", 2),
        ("freelb", ["steps=2"], "steps", 2),
        ("rs_rp", ["sigma=0.3", "eval_copies=8"], "eval_copies", 8),
        ("rs_da", ["rate=0.5", "synonyms_file={shared}/synonyms/counterfitted_neighbors.json"], "rate", 0.5),
    ],
)
def test_every_method_and_its_parameters_reach_the_run_config(method, params, field, value, shared_data):
    from xltlib.__main__ import _config_from_args, build_parser

    params = [p.format(shared=shared_data) for p in params]
    args = build_parser().parse_args(["run", "--task", "pawsx", "--model", "m", "--method", method, *params])
    config = _config_from_args(args)
    assert config.method == method and config.method_params[field] == value
    assert config.run_id().startswith(f"pawsx-{method}-s1-")
    default = _config_from_args(
        build_parser().parse_args(
            [
                "run",
                "--task",
                "pawsx",
                "--model",
                "m",
                "--method",
                method,
                *[p for p in params if p.startswith("synonyms_file")],
            ]
        )
    )
    assert default.run_id() != config.run_id()


def _parsed_config(*flags: str):
    from xltlib.__main__ import _config_from_args, build_parser

    return _config_from_args(
        build_parser().parse_args(["run", "--task", "xnli", "--model", "xlm-roberta-base", *flags])
    )


def test_typed_flags_parse_every_field_type_and_a_false_bool_is_the_default_run():
    default = _parsed_config()
    off = _parsed_config("--group-by-length", "false")
    assert off.group_by_length is False and off.run_id() == default.run_id()
    assert _parsed_config("--group-by-length").group_by_length is True  # the bare flag means true
    assert _parsed_config("--group-by-length", "yes").run_id() != default.run_id()
    typed = _parsed_config("--seed", "3", "--lr", "1e-4", "--langs", "de, fr", "--eval-split", "test")
    assert (typed.seed, typed.learning_rate, typed.tgt_langs, typed.eval_split) == (3, 1e-4, ("de", "fr"), "test")
    assert isinstance(typed.seed, int) and isinstance(typed.learning_rate, float)
    assert _parsed_config("--max-train-examples", "10").max_train_examples == 10


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--group-by-length", "maybe", "valid boolean"),
        ("--seed", "1.5", "valid integer"),
        ("--lr", "fast", "valid number"),
        ("--eval-split", "train", "'dev' or 'test'"),
        ("--max-eval-examples", "ten", "valid integer"),
    ],
)
def test_a_bad_flag_value_fails_naming_the_flag(flag, value, message, capsys):
    with pytest.raises(SystemExit):
        _parsed_config(flag, value)
    error = capsys.readouterr().err
    assert f"argument {flag}" in error and value in error and message in error


def test_a_missing_path_flag_names_the_path(tmp_path):
    from xltlib.errors import XltError

    with pytest.raises(XltError, match=f"data_dir: {tmp_path / 'absent'} does not exist"):
        _parsed_config("--data-dir", str(tmp_path / "absent"))


def test_the_readme_states_the_times_and_profiles_the_help_states():
    """Help and README give one set of durations and profile names (they once said ~40 min and ~1 h 50 min)."""
    from xltlib.config.cli import DURATIONS, STUDY_PROFILES

    readme = (REPO / "README.md").read_text()
    help_text = " ".join(run_cli(*command, "--help")[0].stdout for command in (["study"], ["pretrain"]))
    for duration in DURATIONS.values():
        assert duration in " ".join(help_text.split()), duration
        assert duration in readme, duration
    profiles = readme.split("## Profiles", 1)[1].split("\n## ", 1)[0]
    profiles_in_readme = re.findall(r"^\| `(\w+)`(?: \(default\))? \|", profiles, flags=re.M)
    assert profiles_in_readme == list(STUDY_PROFILES)
