"""``rs_da``: randomized smoothing by data augmentation with synonyms (Huang et al. 2021)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from xltlib.config.methods import SynonymAugmentationParams
from xltlib.data.batches import SynonymAugmentedPairs, TokenizedPairs, TrainingData, augmented_copies
from xltlib.data.synonyms import SynonymTable
from xltlib.methods.base import Standard

if TYPE_CHECKING:
    from xltlib.config import RunConfig


class SynonymAugmentation(Standard):
    """Randomized smoothing by data augmentation: synonyms substituted in the training text.

    Each word of the source-language pair that has synonyms is replaced, with probability
    ``rate``, by one of them chosen uniformly; fresh choices every time an example is
    drawn (seeded by run seed and step, so a resumed run draws the same). With ``copies``,
    the copies are drawn once before training instead (Huang et al.'s released scripts),
    in one of two modes (``copies_style``, :func:`~xltlib.data.batches.augmented_copies`):

    - ``robust-xlt``: their ``perturb.py``'s procedure: training on the copies alone, each
      space-separated token (punctuation attached) looked up case-sensitively and drawn
      uniformly from itself and its neighbours. Their draws come from numpy's unseeded
      global generator; ours are seeded by the run seed.
    - ``with-originals`` (default, as the runs stored before the choice): the original
      pairs plus the copies, words (``\\w+`` runs) looked up lower-cased and re-cased.
    """

    name = "rs_da"

    Params = SynonymAugmentationParams

    def training_data(self, frame, tokenizer, config: RunConfig, device: torch.device) -> TrainingData:
        table = SynonymTable.from_json(self.params.synonyms_path(config))
        if self.params.copies:
            return TokenizedPairs(
                tokenizer,
                augmented_copies(frame, table, self.params.copies, config.seed, self.params.copies_style),
                config.max_seq_length,
                device,
            )
        return SynonymAugmentedPairs(
            tokenizer, frame, config.max_seq_length, device, table, self.params.rate, config.seed
        )
