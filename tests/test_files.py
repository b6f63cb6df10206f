"""Every write of the project is whole or absent; every identity is a canonical hash."""

import logging
import subprocess
import sys
import threading
import time

import pytest

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
