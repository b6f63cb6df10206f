"""Tatoeba, the alignment corpus of XTREME's retrieval task, in LASER's layout.

LASER's ``data/tatoeba/v1`` holds, for each language ``xxx`` (ISO 639-3), the files
``tatoeba.xxx-eng.xxx`` and ``tatoeba.xxx-eng.eng``: line i of one is the translation of
line i of the other, mostly 1,000 pairs. Each language has its own English sentences, so a
language's pairs measure its alignment with English only.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xltlib.errors import XltError

ISO_639_3 = {
    "ar": "ara",
    "bg": "bul",
    "de": "deu",
    "el": "ell",
    "es": "spa",
    "et": "est",
    "fr": "fra",
    "hi": "hin",
    "id": "ind",
    "it": "ita",
    "ja": "jpn",
    "ko": "kor",
    "ru": "rus",
    "sw": "swh",
    "ta": "tam",
    "th": "tha",
    "tr": "tur",
    "ur": "urd",
    "vi": "vie",
    "zh": "cmn",
}
"""The tasks' 2-letter codes → Tatoeba's 3-letter ones (Swahili is ``swh``, Mandarin ``cmn``).
Haitian Creole (ht) and Quechua (qu), two XCOPA languages, have no Tatoeba test set."""

ENGLISH = "en"

TATOEBA_HELP = (
    "Tatoeba comes from LASER's data/tatoeba/v1 (`python -m xltlib data fetch tatoeba`, or the "
    "project's ../shared/data/tatoeba/v1)"
)


def tatoeba_files(tatoeba_dir: str | Path, lang: str) -> tuple[Path, Path]:
    """The (English, ``lang``) files of ``lang``'s Tatoeba pairs."""
    code = ISO_639_3[lang]
    folder = Path(tatoeba_dir)
    return folder / f"tatoeba.{code}-eng.eng", folder / f"tatoeba.{code}-eng.{code}"


def has_tatoeba(lang: str) -> bool:
    return lang in ISO_639_3


def tatoeba_pairs(tatoeba_dir: str | Path, lang: str, limit: int | None = None) -> pd.DataFrame:
    """``lang``'s Tatoeba pairs as a two-column frame (``en``, ``lang``), first ``limit`` rows.

    A missing file names itself and how to get it; files of different lengths are refused,
    since their lines could not be translations of each other.
    """
    if not has_tatoeba(lang):
        raise XltError(f"Tatoeba has no test set for {lang!r}; it has: {', '.join(sorted(ISO_639_3))}")
    columns = {}
    for side, path in zip((ENGLISH, lang), tatoeba_files(tatoeba_dir, lang)):
        if not path.is_file():
            raise XltError(f"{path} does not exist; {TATOEBA_HELP}")
        columns[side] = path.read_text(encoding="utf-8").splitlines()
    if len(columns[ENGLISH]) != len(columns[lang]):
        raise XltError(
            f"{tatoeba_files(tatoeba_dir, lang)[1]} has {len(columns[lang])} lines but its English side "
            f"has {len(columns[ENGLISH])}: the pairs are not line-aligned"
        )
    frame = pd.DataFrame({side: pd.Series(lines, dtype="str") for side, lines in columns.items()})
    return frame.iloc[:limit].reset_index(drop=True) if limit is not None else frame
