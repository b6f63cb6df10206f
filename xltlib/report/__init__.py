"""Reporting: the papermill batch, the notebooks' helpers, the analysis and the book."""
