"""Every write of the project is whole or absent; every identity is a canonical hash."""

import pytest

from xltlib.files import atomic_write, atomic_write_json, canonical_sha256


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
