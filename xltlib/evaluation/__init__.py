"""Evaluation: zero-shot accuracy (and the generalized setting), and alignment: encoding plus metric kernels."""
