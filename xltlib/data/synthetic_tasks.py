"""The synthetic profile's tasks, registered beside the real ones: their languages and labels.

Declared here rather than read from the synthetic world (:mod:`xltlib.synthetic`), which sits
above the data layer; a test checks that its generator renders exactly these languages. A file
of its own so that it counts in the code version of synthetic runs only
(:data:`xltlib.store.PROFILE_CODE`).
"""

from __future__ import annotations

from xltlib.data import tasks

SYNTHETIC_LANGUAGES = (
    "base",
    "a100svo",
    "a100sov-f",
    "a100vso",
    "a50svo-f",
    "a50sov",
    "a50vso-f",
    "a0svo",
    "a0sov-f",
    "a0vso",
)
"""The synthetic profile's languages, source first: the generator (:mod:`xltlib.synthetic.languages`) renders
exactly these."""


for _name, _labels in (
    ("syn-nli", ("entailment", "neutral", "contradiction")),
    ("syn-paws", ("0", "1")),  # 0 = not a paraphrase, 1 = paraphrase (the PAWS-X convention)
):
    tasks.register_task(
        tasks.Task(
            name=_name,
            languages=SYNTHETIC_LANGUAGES,
            labels=_labels,
            hub_id=None,
            text_columns=("text_a", "text_b"),
            parallel_split=tasks.PARALLEL_SENTENCES,
            source_language=SYNTHETIC_LANGUAGES[0],
            profile="synthetic",
        )
    )
