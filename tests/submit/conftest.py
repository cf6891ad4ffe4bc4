"""A run trained once on the tiny cache (baseline and a tiny CNN), for the submit stage."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from deepsync.train.stage import train
from tests.conftest import FAST_CNN, tiny_config


@pytest.fixture(scope="session")
def trained_run(tiny_cache, tiny_set):
    """(config, base folder) of a run of both models on the tiny set."""
    base, _ = tiny_cache
    config = tiny_config(tiny_set, base, *FAST_CNN, "train.run=submitting")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(config, progress=False)
    return config, base


@pytest.fixture
def submit_config(trained_run, tmp_path):
    """The trained run's config with a submissions folder of this test's own."""
    config, _ = trained_run
    submit = dataclasses.replace(config.submit, folder=tmp_path / "submissions")
    return dataclasses.replace(config, submit=submit)


def with_submit(config, **changes):
    return dataclasses.replace(config, submit=dataclasses.replace(config.submit, **changes))
