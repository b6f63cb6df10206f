"""Synonym substitution for ``rs_da``: a word → synonyms table and a vectorised sampler."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from xltlib.errors import XltError

COUNTER_FITTED_URL = (
    "https://raw.githubusercontent.com/uclanlp/Robust-XLT/"
    "175cddb89c4e86c7152d0175db8f824f7f4e6bad/counterfitted_neighbors.json"
)
SYNONYMS_HELP = (
    "for English use the counter-fitted neighbours of Mrkšić et al. (2016) as shipped by the "
    "paper's code: download "
    f"{COUNTER_FITTED_URL} and pass rs_da synonyms_file=PATH; synthetic tasks use the generated synonyms-base.json"
)

CopiesStyle = Literal["with-originals", "robust-xlt"]
"""How ``rs_da``'s offline copies are made (:func:`xltlib.data.batches.augmented_copies`)."""

_WORD = re.compile(r"(\w+)")
_SPACE_FREE = re.compile(
    r"([^ ]+)"
)  # str.split(' ')'s tokens but the empty ones (double spaces), which have no neighbours


class SynonymTable:
    """Word → tuple of synonyms, as written (``exact``) and lower-cased (``synonyms``).

    Words without synonyms are left out. Lower-casing merges keys that differ only in case
    (the last one wins); ``exact`` keeps them apart, for a lookup as case-sensitive as the
    released Robust-XLT code's.
    """

    def __init__(self, synonyms: dict[str, Sequence[str]]):
        self.exact = {word: tuple(options) for word, options in synonyms.items() if options}
        self.synonyms = {word.lower(): options for word, options in self.exact.items()}

    @classmethod
    def from_json(cls, path: str | Path) -> SynonymTable:
        path = Path(path)
        if not path.is_file():
            raise XltError(f"synonym table {path} not found; {SYNONYMS_HELP}")
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise XltError(f"synonym table {path} is not valid JSON: {error}") from None
        if not isinstance(table, dict) or not all(isinstance(v, list) for v in table.values()):
            raise XltError(f"synonym table {path} must be a JSON object of word → list of synonyms")
        return cls(table)


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


class Substituter:
    """Pre-split texts whose words with synonyms can be redrawn many times, cheaply.

    Texts are split once into word and non-word pieces (punctuation and spaces are kept
    as they are); every draw then picks, for all substitutable words of the requested
    texts at once, whether to replace each (probability ``rate``) and by which synonym.

    A word is a ``\\w+`` run, looked up lower-cased and replaced in its own case
    (``Movie`` → ``Film``). With ``exact``, words are Robust-XLT's ``perturb.py`` tokens
    instead: the pieces between single spaces, punctuation attached (``dog.`` is not
    ``dog``), looked up as written and replaced by the neighbour as written.
    """

    def __init__(self, texts: Sequence[str], table: SynonymTable, exact: bool = False):
        self.exact = exact
        splitter, lookup = (_SPACE_FREE, table.exact) if exact else (_WORD, table.synonyms)
        self.pieces = [splitter.split(text) for text in texts]  # odd positions are words
        slot_text, slot_piece, self.slot_options = [], [], []
        for t, pieces in enumerate(self.pieces):
            for p in range(1, len(pieces), 2):
                options = lookup.get(pieces[p] if exact else pieces[p].lower())
                if options:
                    slot_text.append(t), slot_piece.append(p), self.slot_options.append(options)
        self.slot_text = np.asarray(slot_text, dtype=np.int64)
        self.slot_piece = np.asarray(slot_piece, dtype=np.int64)
        self.slot_count = np.asarray([len(o) for o in self.slot_options], dtype=np.int64)
        self.first_slot = np.searchsorted(self.slot_text, np.arange(len(texts) + 1))

    @property
    def substitutable_words(self) -> int:
        return len(self.slot_text)

    def draw(
        self, text_ids: Sequence[int], rate: float, rng: np.random.Generator, keep_word: bool = False
    ) -> list[str]:
        """The texts ``text_ids`` with each substitutable word replaced with probability ``rate``.

        The replacement is drawn uniformly from the word's synonyms, or with ``keep_word``
        from the word and its synonyms (so a word stays itself with probability 1 / (k + 1)).
        """
        text_ids = np.asarray(text_ids, dtype=np.int64)
        slots = np.concatenate(
            [np.arange(self.first_slot[t], self.first_slot[t + 1]) for t in text_ids] or [np.zeros(0, np.int64)]
        )
        replace = rng.random(len(slots)) < rate
        chosen = (rng.random(len(slots)) * (self.slot_count[slots] + keep_word)).astype(np.int64)
        replace &= chosen < self.slot_count[slots]  # the extra option of keep_word is the word itself
        pieces = {int(t): list(self.pieces[t]) for t in text_ids}
        for slot, pick in zip(slots[replace], chosen[replace]):
            text, piece = int(self.slot_text[slot]), int(self.slot_piece[slot])
            option = self.slot_options[slot][pick]
            pieces[text][piece] = option if self.exact else _match_case(option, pieces[text][piece])
        return ["".join(pieces[int(t)]) for t in text_ids]
