"""Everything that determines a run's numbers, validated before any compute, and importable without torch.

- :mod:`xltlib.config.run`: :class:`RunConfig` and the synthetic profile's fine-tuning defaults;
- :mod:`xltlib.config.methods`: each training method's parameters;
- :mod:`xltlib.config.experiments`: the schema of an experiments file;
- :mod:`xltlib.config.checks`: the type and range checks they share.
"""

from xltlib.config.run import (
    ALIGNMENT_FIELDS,
    EVAL_SPLITS,
    POOLINGS,
    PRETRAINED,
    PROFILES,
    SYNTHETIC_FINETUNING,
    RunConfig,
)

__all__ = ["ALIGNMENT_FIELDS", "EVAL_SPLITS", "POOLINGS", "PRETRAINED", "PROFILES", "SYNTHETIC_FINETUNING", "RunConfig"]
