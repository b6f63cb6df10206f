"""Shipped run records (data/<profile>-results): written with a manifest, verified on read, read without compute."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from xltlib.errors import XltError
from xltlib.report import shipped
from xltlib.store import METRICS_FILE, load_results


def _fake_run(runs, run_id: str, task: str, method: str, seed: int, value: float) -> None:
    folder = runs / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "task": task,
                "method": method,
                "seed": seed,
                "src_lang": "en",
                "tgt_langs": ["en", "de"],
                "model": "/elsewhere/e5",
            }
        )
    )
    (folder / "env.json").write_text("{}")
    (folder / "checkpoint.pt").write_bytes(b"weights are never shipped")
    rows = pd.DataFrame(
        {
            "run_id": [run_id],
            "task": [task],
            "method": [method],
            "seed": [seed],
            "src_lang": ["en"],
            "tgt_lang": ["de"],
            "metric": ["accuracy"],
            "value": [value],
        }
    )
    rows.to_parquet(folder / METRICS_FILE)


@pytest.fixture
def shipped_root(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs, "xnli-standard-s1-a", "xnli", "standard", 1, 0.61)
    _fake_run(runs, "xnli-pretrained-s0-b", "xnli", "pretrained", 0, float("nan"))
    _fake_run(runs, "pawsx-standard-s1-c", "pawsx", "standard", 1, 0.52)
    (tmp_path / "notebooks").mkdir()
    shipped.ship("e5", runs, ["xnli-standard-s1-a", "xnli-pretrained-s0-b", "pawsx-standard-s1-c"], root=tmp_path)
    return tmp_path


def test_ship_copies_records_without_weights_and_reads_them_back(shipped_root):
    folder = shipped.shipped_folder("e5", shipped_root)
    assert not list(folder.rglob("*.pt"))
    configs, run_ids = shipped.stored_runs(folder, "xnli")
    assert [c.method for c in configs] == ["standard"] and configs[0].tgt_langs == ["en", "de"]
    assert run_ids == ["xnli-standard-s1-a", "xnli-pretrained-s0-b"]
    assert load_results(folder, run_ids[:1]).value.tolist() == [0.61]
    manifest = json.loads((folder / shipped.MANIFEST).read_text())
    assert manifest["recompute"] == shipped.RECOMPUTE["e5"] and manifest["runs"] == 3


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "no-manifest"])
def test_a_damaged_shipped_record_is_refused_with_the_restore_command(shipped_root, damage):
    folder = shipped_root / shipped.SHIPPED["e5"]
    target = folder / "xnli-standard-s1-a" / METRICS_FILE
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "delete":
        target.unlink()
    else:
        target = folder / shipped.MANIFEST
        target.unlink()
    with pytest.raises(XltError, match=f"git checkout -- {shipped.SHIPPED['e5']}") as error:
        shipped.shipped_folder("e5", shipped_root)
    assert str(target) in str(error.value)


def test_shipping_refuses_an_incomplete_study(shipped_root):
    runs = shipped_root / "runs"
    shutil.rmtree(runs / "pawsx-standard-s1-c")
    with pytest.raises(XltError, match="1 of the e5 study's 2 runs are not complete"):
        shipped.ship("e5", runs, ["xnli-standard-s1-a", "pawsx-standard-s1-c"], root=shipped_root)


def test_no_task_runs_is_a_clear_error(shipped_root):
    with pytest.raises(XltError, match="no fine-tuned run of task xcopa"):
        shipped.stored_runs(shipped.shipped_folder("e5", shipped_root), "xcopa")
