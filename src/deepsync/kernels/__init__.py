"""Kaggle kernels: this pipeline as self-contained kernel scripts, pushed, watched, brought home."""
