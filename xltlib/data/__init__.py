"""Data: the task registry, loaders of real (XTREME-layout, hub) and generated (synthetic) data, and batching."""
