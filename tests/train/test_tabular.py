"""Window models: names in train.models, each estimator on feature families, on the run's folds."""

import json
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from deepsync.config import BaselineConfig, parse_models
from deepsync.errors import DeepSyncError
from deepsync.names import GROUPS
from deepsync.runs import trained_models
from deepsync.train import tabular
from deepsync.train.metrics import auc
from deepsync.train.stage import train
from tests.conftest import FAST_CNN, tiny_config


def test_model_names_parse_into_estimators_and_families():
    specs = parse_models(
        "baseline, cnn,gbm:power+corr,knn,svm:all,logistic:stats+power,feng_knn,andriy_svm"
    )
    assert [(s.name, s.estimator, s.families, s.folder) for s in specs] == [
        ("baseline", "ag_rlp_xgb", ("rlp",), "baseline"),
        ("cnn", "cnn", (), "cnn"),
        ("gbm:power+corr", "gbm", ("power", "corr"), "gbm-power+corr"),
        ("knn:share", "knn", ("share",), "knn-share"),
        ("svm:all", "svm", GROUPS["all"], "svm-all"),
        ("logistic:power+stats", "logistic", ("power", "stats"), "logistic-power+stats"),
        ("feng_knn", "feng_knn", ("feng",), "feng_knn"),
        ("andriy_svm", "andriy_svm", GROUPS["all"], "andriy_svm"),
    ]
    assert tabular.recipe_of(specs[0]).combine == "max"
    assert tabular.recipe_of(specs[6]).combine == "mean"
    assert tabular.recipe_of(specs[2]) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("baseline,rnn", "entry 'rnn': use baseline, cnn, a recipe of the 2016 winners"),
        ("gbm:colour", "train.models entry gbm:colour='colour': use all .the kit's families."),
        ("gbm:power+rlp", "power .table s., rlp .20.0 s. are cut into windows of different"),
        ("gbm:corr,gbm:corr", "name each model once"),
        ("gbm:share,gbm", "name each model once"),  # the same model twice
    ],
)
def test_a_bad_model_name_is_a_one_line_error(text, message):
    with pytest.raises(DeepSyncError, match=message):
        parse_models(text)


def test_combine_takes_each_segments_windows():
    scores = np.array([0.1, 0.9, 0.4, 0.3, 0.5])
    owner = np.array([0, 0, 2, 2, 2])
    assert tabular.combine(scores, owner, 4, "max", 0.25).tolist() == [0.9, 0.25, 0.5, 0.25]
    assert tabular.combine(scores, owner, 4, "mean", 0.25)[[0, 2]] == pytest.approx([0.5, 0.4])
    single = tabular.combine(np.array([0.7]), np.array([1]), 2, "std", 0.3)
    assert single.tolist() == [0.3, 0.0]


@pytest.mark.parametrize("estimator", sorted(tabular.ESTIMATORS))
def test_each_estimator_learns_a_separable_window_signal(estimator):
    """On window rows whose first column carries the class, every estimator ranks well."""
    rng = np.random.default_rng(0)

    class Cache:  # the cache's interface, on planted features: 40 segments x 3 windows
        windows = np.ones((40, 3), bool)
        windows[5, 1:] = False

        def kept_windows(self, rows, names):
            return self.windows[rows]

        def window_features(self, rows, names, owner, window):
            labels = (np.asarray(rows) % 2).astype(float)
            values = rng.normal(0, 1, (len(rows), 3, 6))
            values[:, :, 0] += 2.5 * labels[:, None]
            return values[owner, window]

    rows = np.arange(40)
    spec = parse_models(f"{estimator}:power")[0]
    train_rows, held = rows[:30], rows[30:]
    (scores,) = tabular.fit_predict(
        Cache(), spec, train_rows, train_rows % 2, [held], BaselineConfig(neighbours=5), seed=1
    )
    assert scores.shape == (10,) and ((scores >= 0) & (scores <= 1)).all()
    assert auc(held % 2, scores) > 0.9


def test_a_window_model_trains_on_its_families_and_a_run_can_gain_models(tiny_cache, tiny_set):
    base, _ = tiny_cache
    config = tiny_config(tiny_set, base, "train.run=zoo", "train.models=baseline")
    train(config, progress=False)
    more = tiny_config(
        tiny_set, base, "train.run=zoo", "train.models=gbm:corr+hjorth,knn:power,svm:stats"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # LightGBM's feature-name warning is not shown
        report = train(more, progress=False)
    folder = base / "runs" / "zoo"
    models = trained_models(folder)
    assert list(models) == ["baseline", "gbm:corr+hjorth", "knn:power", "svm:stats"]
    assert models["gbm:corr+hjorth"] == folder / "gbm-corr+hjorth"
    assert json.loads((folder / "config.json").read_text())["models"] == list(models)
    folds = pd.read_csv(folder / "folds.csv")
    for name, path in models.items():
        oof = pd.read_csv(path / "oof.csv")
        assert sorted(oof["segment"]) == sorted(folds["segment"])
        assert oof["score"].between(0, 1).all()
        if name != "baseline":
            assert name in report.metrics
    gbm = pd.read_csv(models["gbm:corr+hjorth"] / "oof.csv")
    base_scores = pd.read_csv(models["baseline"] / "oof.csv")
    assert not np.allclose(gbm["score"], base_scores["score"])  # other features, other model


def test_a_family_the_cache_lacks_is_an_error_before_training(tiny_cache, tiny_set, tmp_path):
    base, _ = tiny_cache
    narrow = tiny_config(tiny_set, base, "features.families=power,stats")
    from deepsync.features.stage import build_features

    build_features(narrow, workers=1, progress=False)
    config = tiny_config(
        tiny_set,
        base,
        "features.families=power,stats",
        "train.run=narrow",
        "train.models=logistic:corr",
    )
    with pytest.raises(DeepSyncError, match="holds no corr features .*add them"):
        train(config, progress=False)
    assert not (base / "runs" / "narrow").exists()


def test_the_cnn_and_a_window_model_share_the_run(tiny_cache, tiny_set):
    base, _ = tiny_cache
    config = tiny_config(
        tiny_set, base, *FAST_CNN, "train.run=mixed", "train.models=cnn,logistic:power+corr"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = train(config, progress=False)
    assert list(report.metrics) == ["cnn", "logistic:power+corr"]
    assert list(trained_models(base / "runs" / "mixed")) == ["cnn", "logistic:power+corr"]


def test_window_rows_read_a_block_of_segments_at_a_time_give_the_dense_rows(
    tiny_cache, monkeypatch
):
    """Families read 3 segments at a time into one array: what indexing the whole families
    gives, window for window (kept ones only, in segment order)."""
    from deepsync.features import cache as cache_module

    _, cache = tiny_cache
    families = parse_models("logistic:share+corr")[0].families
    rows = np.flatnonzero(cache.segments["status"] == "ok")[::-1][:11]  # any order
    kept = cache.kept_windows(rows, families)
    assert 0 < kept.sum() < kept.size  # some windows left out
    parts = [np.asarray(cache.families[n][rows]) for n in families]
    dense = np.concatenate([p.reshape(*kept.shape, -1) for p in parts], axis=2)[kept]
    monkeypatch.setattr(cache_module, "READ_ROWS", 3)
    values, owner = tabular.window_rows(cache, rows, families)
    assert np.array_equal(owner, np.nonzero(kept)[0])
    assert values.dtype == np.float32 and np.array_equal(values, dense, equal_nan=True)


def test_the_gbm_grows_the_same_trees_with_lightgbm_or_scikit_learn(monkeypatch):
    from deepsync.config import Config
    from deepsync.train import tabular

    cfg = Config().baseline
    lgbm = tabular._gbm(cfg, 7, 100).get_params()
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # as where it is not installed
    sk = tabular._gbm(cfg, 7, 100)
    assert type(sk).__name__ == "HistGradientBoostingClassifier"
    sk = sk.get_params()
    for ours, (sk_name, lgbm_name) in tabular.GBM_WORDS.items():
        assert sk[sk_name] == lgbm[lgbm_name], ours
    assert (sk["max_iter"], sk["learning_rate"]) == (cfg.iterations, cfg.learning_rate)
    assert sk["class_weight"] == lgbm["class_weight"] == "balanced"
    assert sk["random_state"] == lgbm["random_state"] == 7
