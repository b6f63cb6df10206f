"""The synthetic profile's shipped encoders: a set of pre-training draws, checked by sha256.

Pre-training a tiny encoder is chaotic: which draws succeed depends even on float rounding,
so a build on another CPU gives another encoder and another benchmark. The project builds
its encoders once (``python -m xltlib pretrain --rebuild``, :func:`xltlib.synthetic.build.build_encoder_set`)
and ships them, as XLM-R's users download weights. A set is a folder::

    manifest.json        the recipe's hash, the generated data's sha256, the build rule and
                         every draw it tried, and the sha256 of every shipped file
    mlm-seed-{S}/        one passing draw (masked-LM seed S), a ``save_pretrained`` folder:
                         config.json, model.safetensors, tokenizer files, and pretraining.json
                         (loss curves, stage scores, build check, machine, versions, time)

The draws are named by their masked-LM seed, which is also a run's ``draw``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xltlib.errors import XltError
from xltlib.files import atomic_directory, atomic_write_text, file_sha256
from xltlib.integrity import HIDDEN_SIDECAR, read_sidecar, tree_damage
from xltlib.synthetic.generated import data_sha256

REPO = Path(__file__).resolve().parents[2]
SHIPPED_ENCODERS = REPO / "data" / "synthetic-encoders"
"""Where the default profile's encoders live (committed to the repository)."""
MANIFEST = "manifest.json"
SET_FIELDS = ("recipe_hash", "data_sha256", "draws")
"""What a set's manifest must hold to be read."""


def draw_folder(root: str | Path, draw: int) -> Path:
    return Path(root) / f"mlm-seed-{draw}"


def _restore_hint(root: Path) -> str:
    shown = root.relative_to(REPO) if root.is_relative_to(REPO) else root
    return (
        f"restore the shipped files with `git checkout -- {shown}`, or rebuild the set with "
        f"`python -m xltlib pretrain --rebuild --out {shown}` (README, 'Shipped encoders')"
    )


def read_manifest(root: str | Path = SHIPPED_ENCODERS, fields: tuple[str, ...] = SET_FIELDS) -> dict[str, Any]:
    """The set's manifest, with ``fields``; a clear error, saying how to restore it, when it is missing or damaged."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise XltError(f"{path} is missing, so the synthetic encoders cannot be checked; {_restore_hint(root)}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        cause = _manifest_fault(manifest, fields)
    except ValueError as error:  # undecodable bytes too
        cause = f"not JSON: {error}"
    if cause:
        raise XltError(
            f"{path} is damaged ({cause}), so the synthetic encoders cannot be checked; {_restore_hint(root)}"
        )
    return manifest


def _manifest_fault(manifest: Any, fields: tuple[str, ...]) -> str | None:
    if not isinstance(manifest, dict):
        return "not a JSON object"
    if missing := [field for field in fields if field not in manifest]:
        return f"no {', '.join(missing)}"
    draws = manifest.get("draws", {})
    if not isinstance(draws, dict) or not all(
        draw.isdigit() and isinstance(entry, dict) and isinstance(entry.get("files"), dict)
        for draw, entry in draws.items()
    ):
        return "its draws are not masked-LM seeds with their files' sha256"
    return None


def shipped_draws(root: str | Path = SHIPPED_ENCODERS) -> list[int]:
    """The masked-LM seeds of the set's draws, in order."""
    return sorted(int(draw) for draw in read_manifest(root)["draws"])


def verified_encoder(draw: int, recipe_hash: str, root: str | Path = SHIPPED_ENCODERS) -> Path:
    """The folder of draw ``draw``, after checking the set's recipe and every file's sha256.

    Raises a clear error for a draw the set lacks, a set built from another recipe than
    ``recipe_hash`` (the code's), and a missing or altered file.
    """
    root = Path(root)
    manifest = read_manifest(root)
    if manifest["recipe_hash"] != recipe_hash:
        raise XltError(
            f"the encoders in {root} were built from recipe {manifest['recipe_hash'][:12]}…, but the code's recipe "
            f"hashes to {recipe_hash[:12]}…: a recipe change needs rebuilt encoders (`python -m xltlib pretrain "
            f"--rebuild`, README 'Shipped encoders'), or restore the code; if {root / MANIFEST} was edited, "
            f"{_restore_hint(root)}"
        )
    draws = manifest["draws"]
    if str(draw) not in draws:
        raise XltError(
            f"draw {draw} is not in {root}; its draws (masked-LM seeds): {', '.join(map(str, shipped_draws(root)))}"
        )
    folder = draw_folder(root, draw)
    for name, expected in draws[str(draw)]["files"].items():  # only these: a killed write's temporary is not read
        path = folder / name
        if not path.is_file():
            raise XltError(f"{path} is missing; {_restore_hint(root)}")
        if (actual := file_sha256(path)) != expected:
            size = path.stat().st_size
            found = "empty: 0 bytes" if size == 0 else f"{size:,} bytes, sha256 {actual[:12]}…"
            raise XltError(
                f"{path} is not the shipped file ({found}; {root / MANIFEST} records sha256 {str(expected)[:12]}…); "
                f"{_restore_hint(root)}"
            )
    return folder


GENERATOR_CODE = "xltlib/synthetic/{generated,languages,grammar,examples}.py"
"""The code that generates the data (:mod:`xltlib.synthetic.generated` and what it draws from)."""


def check_data(data_dir: str | Path, root: str | Path = SHIPPED_ENCODERS) -> None:
    """Fail unless ``data_dir`` holds exactly the generated data the set was built and calibrated on.

    Data that match the record written with them but not the set's hash were generated by other code than the
    set's; data that no longer match their record are a damaged cache entry (:func:`ensure_data` regenerates it).
    """
    expected = read_manifest(root, ("data_sha256",))["data_sha256"]
    if (actual := data_sha256(data_dir)) == expected:
        return
    head = f"the generated data in {data_dir} (sha256 {actual[:12]}…) are not those the shipped encoders were built on"
    recorded = read_sidecar(Path(data_dir), sidecar=HIDDEN_SIDECAR) is not None
    if recorded and (found := tree_damage(Path(data_dir), sidecar=HIDDEN_SIDECAR)):
        raise XltError(f"{head}: the folder is damaged ({found[0]}); the next run sets it aside and generates it again")
    raise XltError(
        f"{head} ({expected[:12]}…): the data generator ({GENERATOR_CODE}) changed since the encoders were built; "
        "restore its code (`git diff -- xltlib/synthetic` shows the change), or rebuild the encoders "
        f"(`python -m xltlib pretrain --rebuild`, README 'Shipped encoders'); if {Path(root) / MANIFEST} was edited, "
        f"{_restore_hint(Path(root))}"
    )


def write_encoder_set(
    out: str | Path, draws: Mapping[int, Path], manifest: dict[str, Any], draw_records: Mapping[int, dict[str, Any]]
) -> Path:
    """Copy each draw's folder into ``out/mlm-seed-{S}``, add its record to its ``pretraining.json``, write the
    manifest.

    ``manifest`` gets the ``draws`` entry (every file's sha256). Written whole or not at all.
    """
    with atomic_directory(out, "remove it first (git rm -r, for the shipped set)") as tmp:
        files = {}
        for draw, source in draws.items():
            folder = draw_folder(tmp, draw)
            shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".*"))  # records, temporaries: not shipped
            report_path = folder / "pretraining.json"
            report = json.loads(report_path.read_text()) | draw_records[draw]
            atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
            files[str(draw)] = {"files": {path.name: file_sha256(path) for path in sorted(folder.iterdir())}}
        atomic_write_text(tmp / MANIFEST, json.dumps({**manifest, "draws": files}, indent=2) + "\n")
    return Path(out)
