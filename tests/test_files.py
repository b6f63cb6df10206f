"""Every write of the project is whole or absent; every identity is a canonical hash."""

import ast
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import xltlib
from xltlib.errors import XltError
from xltlib.files import atomic_directory, atomic_write, atomic_write_json, build_once, canonical_sha256, file_lock


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"accuracy": 0.5})
    before = path.read_text()

    def crash_halfway(tmp):
        tmp.write_text('{"accuracy": 0.')
        raise KeyboardInterrupt("killed while writing")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash_halfway)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_the_temporary_keeps_the_suffix_writers_go_by(tmp_path):
    seen = []
    atomic_write(tmp_path / "chapter.ipynb", lambda tmp: seen.append(tmp.suffix) or tmp.write_text("{}"))
    assert seen == [".ipynb"] and (tmp_path / "chapter.ipynb").read_text() == "{}"


def test_canonical_hash_ignores_key_order_and_sees_every_value():
    assert canonical_sha256({"a": 1, "b": [1, 2]}) == canonical_sha256({"b": [1, 2], "a": 1})
    assert canonical_sha256({"a": 1, "b": [1, 2]}) != canonical_sha256({"a": 1, "b": [2, 1]})


def test_a_cache_entry_asked_for_at_once_is_built_once(tmp_path):
    builds = []

    def slow_build(out):
        builds.append(threading.get_ident())
        time.sleep(0.5)
        with atomic_directory(out, "reuse it") as tmp:
            (tmp / "weights").write_text("built")

    threads = [threading.Thread(target=build_once, args=(tmp_path / "encoder", slow_build)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and (tmp_path / "encoder" / "weights").read_text() == "built"


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, caplog):
    lock = tmp_path / ".lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\nfrom xltlib.files import file_lock\n"
            f"held = file_lock({str(lock)!r}, 'a run')\nheld.__enter__()\nprint('held', flush=True)\nsys.stdin.read()",
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(XltError, match="waited 0.2 s for .* pid"):
        with file_lock(lock, "a run", timeout=0.2):
            pass
    holder.kill()  # dies holding the lock: the kernel releases it, the file still names the holder
    holder.wait()
    with caplog.at_level(logging.INFO, logger="xltlib"), file_lock(lock, "a run", timeout=5):
        assert f"pid {holder.pid}" in caplog.text and "taking over" in caplog.text


WRITERS = {"write_text", "write_bytes", "to_parquet", "to_csv", "torch.save", "json.dump"}
"""Calls that write a file: Path.write_text / write_bytes, pandas' to_parquet / to_csv, torch.save, json.dump."""


def _direct_writes(path: Path) -> list[str]:
    """Writes in ``path`` that are not the ``write`` callable of an ``atomic_write(path, write)`` or of
    ``integrity.write_recorded(path, write)``, which is atomic_write's (nor in files.py)."""
    tree = ast.parse(path.read_text())
    inside_atomic = {
        id(node)
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and getattr(call.func, "id", getattr(call.func, "attr", "")) in ("atomic_write", "write_recorded")
        for argument in call.args[1:]
        for node in ast.walk(argument)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in inside_atomic:
            continue
        function = ast.unparse(node.func)
        name = function if function in WRITERS else getattr(node.func, "attr", None)
        opens_for_writing = getattr(node.func, "id", None) == "open" and any(
            isinstance(arg, ast.Constant) and isinstance(arg.value, str) and set(arg.value) & set("wax")
            for arg in [*node.args[1:], *(keyword.value for keyword in node.keywords if keyword.arg == "mode")]
        )
        if name in WRITERS or opens_for_writing:
            found.append(f"{path.name}:{node.lineno} {function}")
    return found


def test_every_file_write_in_the_package_goes_through_atomic_write():
    """A killed process leaves a file's old content or its new one, never half of it: every write in xltlib is
    files.atomic_write's (save_pretrained folders are written inside atomic_directory, checked by their tests)."""
    package = Path(xltlib.__file__).parent
    direct = [
        write for path in sorted(package.rglob("*.py")) if path.name != "files.py" for write in _direct_writes(path)
    ]
    assert not direct, direct


def test_the_write_finder_finds_a_direct_write(tmp_path):
    module = tmp_path / "writer.py"
    module.write_text(
        "import json\nfrom pathlib import Path\n"
        "def bad(p):\n    Path(p).write_text('x')\n    with open(p, 'w') as f:\n        json.dump({}, f)\n"
        "def good(p):\n    atomic_write(p, lambda tmp: Path(tmp).write_text('x'))\n"
    )
    assert [write.split()[1] for write in _direct_writes(module)] == ["Path(p).write_text", "open", "json.dump"]
