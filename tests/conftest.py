"""Shared fixtures: small real data sets built in temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepsync.config import SyntheticConfig
from deepsync.data import synthetic

# Small enough for seconds, big enough for every kind of file the real set has.
TINY = SyntheticConfig(
    seed=7,
    patients=2,
    interictal_hours=3,
    preictal_hours=2,
    unsafe_hours=1,
    extra_preictal=2,
    test_hours=2,
    seconds=20,
)


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory) -> Path:
    """A tiny synthetic set in the competition layout (read-only for tests: copy to change)."""
    root = tmp_path_factory.mktemp("tiny")
    synthetic.generate(TINY, root / "synthetic", workers=1, progress=False)
    return root / "synthetic"
