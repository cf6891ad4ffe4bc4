"""Fixtures for the training stage: the tiny set indexed and cached once per session."""

from __future__ import annotations

import pytest

from deepsync.config import load_config
from deepsync.data.stage import prepare
from deepsync.features.cache import FeatureCache
from deepsync.features.stage import build_features

FAST_CNN = [  # a 0.4 M-parameter timm model: the loop's behaviour, in seconds
    "cnn.model=test_resnet",
    "cnn.epochs=2",
    "cnn.batch_size=8",
    "cnn.patience=5",
]


def tiny_config(tiny_set, base, *extra):
    return load_config(
        overrides=[
            "data.source=dir",
            f"data.data_dir={tiny_set}",
            f"data.root={base}/data",
            f"features.cache_root={base}/cache",
            f"train.runs_root={base}/runs",
            "train.folds=2",
            *extra,
        ]
    )


@pytest.fixture(scope="session")
def tiny_cache(tiny_set, tmp_path_factory):
    """(base folder, FeatureCache) of the tiny set: two patients, 20 s segments."""
    base = tmp_path_factory.mktemp("train")
    config = tiny_config(tiny_set, base)
    prepare(config, progress=False)
    report = build_features(config, workers=1, progress=False)
    assert report.ok
    return base, FeatureCache.open(report.folder)
