"""xltlib — robust cross-lingual fine-tuning and alignment study helpers."""

__version__ = "0.1.0"
