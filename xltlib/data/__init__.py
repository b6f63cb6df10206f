"""Data: the task registry, loaders of real (XTREME-layout, hub) and generated (synthetic) data, and batching."""

from xltlib.data import synthetic_tasks  # noqa: F401  (registers the synthetic tasks with the registry)
