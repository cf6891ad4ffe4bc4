"""The submit stage's config: the tiny trained run with a submissions folder per test."""

from __future__ import annotations

import dataclasses

import pytest


@pytest.fixture
def submit_config(trained_run, tmp_path):
    """The trained run's config with a submissions folder of this test's own."""
    config, _ = trained_run
    submit = dataclasses.replace(config.submit, folder=tmp_path / "submissions")
    return dataclasses.replace(config, submit=submit)


def with_submit(config, **changes):
    return dataclasses.replace(config, submit=dataclasses.replace(config.submit, **changes))
