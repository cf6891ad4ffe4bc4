"""Shared fixtures: small real data sets built in temporary folders."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from deepsync.config import SyntheticConfig, load_config
from deepsync.data import synthetic
from deepsync.data.stage import prepare
from deepsync.features.cache import FeatureCache
from deepsync.features.stage import build_features
from deepsync.train.stage import train
from tests.standins.kaggle_server import point_kaggle_client_here, running_stand_in

USER, KEY = "deepsync-tester", "dummy-key-0123456789abcdef"  # never a real credential

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


# Long enough for every window of the winners' families (20, 30 and 50 s), small otherwise.
TINY_LONG = SyntheticConfig(
    seed=11,
    patients=2,
    interictal_hours=3,
    preictal_hours=2,
    unsafe_hours=1,
    extra_preictal=1,
    test_hours=1,
    seconds=60,
)
WINNERS = "baseline,ag_xfcoh_ts_xgb,feng_xgb,feng_knn,feng_knn_more,feng_glm_more,andriy_svm"


@pytest.fixture(scope="session")
def winners_run(tmp_path_factory):
    """(config, report) of the winners' seven models trained on a 60 s tiny set."""
    root = tmp_path_factory.mktemp("winners")
    synthetic.generate(TINY_LONG, root / "synthetic", workers=1, progress=False)
    config = tiny_config(
        root / "synthetic",
        root,
        "features.families=all,winners",
        f"train.models={WINNERS}",
        "train.run=winners",
        f"submit.blend={WINNERS}",
        "submit.blend_weights=" + ",".join("1" * len(WINNERS.split(","))),
        "submit.calibration=none",
    )
    prepare(config, progress=False)
    assert build_features(config, workers=1, progress=False).ok
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = train(config, progress=False)
    return config, report


FAST_CNN = [  # a 0.4 M-parameter timm model: the loop's behaviour, in seconds
    "cnn.model=test_resnet",
    "cnn.epochs=2",
    "cnn.batch_size=8",
    "cnn.patience=5",
]


def start_as_in_a_terminal(args: list[str], **popen) -> subprocess.Popen:
    """A process in its own group that Ctrl-C (SIGINT to the group) reaches as in a terminal.

    A shell's background job ignores SIGINT and its children inherit that; a terminal's
    foreground process does not.
    """
    return subprocess.Popen(
        args,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **popen,
    )


def interrupt_when(process: subprocess.Popen, ready: Callable[[], object], to: str) -> str:
    """Ctrl-C once ``ready()`` is true: to the process's "group" (a terminal) or "main" alone.

    The process's stderr once it has ended (it must be started with stderr piped).
    """
    deadline = time.monotonic() + 240
    while not ready():
        if process.poll() is not None:
            pytest.fail(process.stderr.read())
        assert time.monotonic() < deadline
        time.sleep(0.1)
    if to == "group":
        os.killpg(process.pid, signal.SIGINT)
    else:
        os.kill(process.pid, signal.SIGINT)
    return process.communicate(timeout=120)[1]


def tiny_overrides(tiny_set, base, *extra) -> list[str]:
    """``--set`` values that put every stage's files for the tiny set under ``base``."""
    return [
        "data.source=dir",
        f"data.data_dir={tiny_set}",
        f"data.root={base}/data",
        f"features.cache_root={base}/cache",
        f"train.runs_root={base}/runs",
        f"submit.folder={base}/submissions",
        "train.folds=2",
        *extra,
    ]


def tiny_config(tiny_set, base, *extra):
    return load_config(overrides=tiny_overrides(tiny_set, base, *extra))


@pytest.fixture(scope="session")
def tiny_cache(tiny_set, tmp_path_factory):
    """(base folder, FeatureCache) of the tiny set: two patients, 20 s segments."""
    base = tmp_path_factory.mktemp("train")
    config = tiny_config(tiny_set, base)
    prepare(config, progress=False)
    report = build_features(config, workers=1, progress=False)
    assert report.ok
    return base, FeatureCache.open(report.folder)


@pytest.fixture
def kaggle_home(monkeypatch, tmp_path):
    """The real kaggle client, sent to the stand-in with dummy credentials; returns its HOME."""
    point_kaggle_client_here(monkeypatch, tmp_path / "home", USER, KEY)
    return tmp_path / "home"


@pytest.fixture
def kaggle_server(kaggle_home):
    """A stand-in Kaggle on localhost:7777, running for one test."""
    with running_stand_in() as state:
        yield state


@pytest.fixture(scope="session")
def trained_run(tiny_cache, tiny_set):
    """(config, base folder) of a run of both models on the tiny set."""
    base, _ = tiny_cache
    config = tiny_config(tiny_set, base, *FAST_CNN, "train.run=submitting")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(config, progress=False)
    return config, base
