"""Everything that determines a run's numbers, validated before any compute, and importable without torch.

- :mod:`xltlib.config.run`: :class:`RunConfig`;
- :mod:`xltlib.config.synthetic`: the synthetic profile's fine-tuning defaults;
- :mod:`xltlib.config.methods`: each training method's parameters;
- :mod:`xltlib.config.protocols` and :mod:`xltlib.config.hub_models`: the published recipes and the hub encoders they
  fine-tune, at pinned commits;
- :mod:`xltlib.config.experiments`: the schema of an experiments file;
- :mod:`xltlib.config.checks`: the type and range checks they share.
"""

from xltlib.config.run import ALIGNMENT_FIELDS, EVAL_SPLITS, POOLINGS, PRETRAINED, PROFILES, RunConfig
from xltlib.config.synthetic import SYNTHETIC_FINETUNING

__all__ = ["ALIGNMENT_FIELDS", "EVAL_SPLITS", "POOLINGS", "PRETRAINED", "PROFILES", "SYNTHETIC_FINETUNING", "RunConfig"]
