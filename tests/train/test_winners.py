"""The winners' recipes: their transforms, their treatment of dropout, their combination,
each trained on a tiny set, and their blend."""

import numpy as np
import pandas as pd
import pytest
import scipy.linalg

from deepsync.config import BaselineConfig, parse_models
from deepsync.data.segment import read_segment
from deepsync.features import winners as features
from deepsync.features.cache import FeatureCache, cache_folder
from deepsync.runs import trained_models
from deepsync.submit.blend import rank_average
from deepsync.submit.stage import candidates
from deepsync.train import tabular, winners
from deepsync.train.metrics import auc
from tests.conftest import WINNERS


def spd(rng, n, size=6):
    a = rng.normal(size=(n, size, size * 3))
    return a @ np.swapaxes(a, 1, 2) / (size * 3)


def test_tangent_space_is_the_log_map_at_the_log_euclidean_mean():
    rng = np.random.default_rng(0)
    matrices = spd(rng, 30).reshape(15, 2, 6, 6)  # 15 windows, 2 electrodes
    upper = np.triu_indices(6)
    rows = matrices[..., upper[0], upper[1]].reshape(15, -1)
    ours = winners.CoherenceTangentSpace(bands=6).fit_transform(rows)
    assert ours.shape == (15, 2 * 21)
    for e in range(2):
        mats = matrices[:, e]
        reference = scipy.linalg.expm(np.mean([scipy.linalg.logm(m) for m in mats], axis=0))
        whiten = np.linalg.inv(scipy.linalg.sqrtm(reference))
        coefficients = np.where(upper[0] == upper[1], 1.0, np.sqrt(2))
        for w in range(15):
            tangent = np.real(scipy.linalg.logm(whiten @ mats[w] @ whiten))
            expected = tangent[upper] * coefficients
            assert np.allclose(ours[w, e * 21 : (e + 1) * 21], expected, atol=1e-6)


def test_the_tangent_reference_is_the_set_at_hand():
    """tsupdate: a predicted set is mapped at its own mean, so a shift common to all of
    its matrices disappears (as Alex and Gilberto's pipeline did)."""
    rng = np.random.default_rng(1)
    matrices = spd(rng, 20)[:, None]
    upper = np.triu_indices(6)
    rows = matrices[..., upper[0], upper[1]].reshape(20, -1)
    space = winners.CoherenceTangentSpace(bands=6).fit(rows)
    scaled = 3.0 * matrices  # every matrix of the predicted set scaled alike
    shifted = space.transform(scaled[..., upper[0], upper[1]].reshape(20, -1))
    assert np.allclose(shifted, space.transform(rows), atol=1e-8)


def test_fengs_scaler_standardises_each_set_by_itself():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    scaled = winners.BatchStandardScaler().fit(np.zeros((4, 2))).transform(x)
    assert np.allclose(scaled[:, 0], [-1.2247449, 0, 1.2247449]) and (scaled[:, 1] == 0).all()


class PlantedCache:
    """The cache's interface over planted window rows: 12 segments x 4 windows, 2 columns."""

    def __init__(self, values):
        self.values = values

    def kept_windows(self, rows, names):
        return np.ones((len(rows), self.values.shape[1]), bool)

    def window_features(self, rows, names, owner, window):
        return self.values[rows][owner, window].copy()


class Echo:
    """An estimator whose score for a window is its first column (what combines is seen)."""

    def fit(self, x, y):
        self.seen = x.copy()
        return self

    def predict_proba(self, x):
        return np.stack([1 - x[:, 0], x[:, 0]], axis=1)


def run_with_echo(monkeypatch, name):
    """``name``'s treatment and combination around an estimator that echoes column 0."""
    values = np.full((2, 4, 2), 0.5)
    values[0, :, 0] = [0.9, 0.3, np.nan, 0.2]
    values[0, 2, 1] = -np.inf
    values[1] = np.nan  # a segment of dropout only
    echo = Echo()
    recipe = winners.RECIPES[name]
    echoing = winners.Recipe(**{**recipe.__dict__, "make": lambda seed, rows: echo})
    monkeypatch.setitem(winners.RECIPES, name, echoing)
    spec = parse_models(name)[0]
    rows, labels = np.array([0, 1]), np.array([1, 0])
    (scores,) = tabular.fit_predict(
        PlantedCache(values), spec, rows, labels, [rows], BaselineConfig(), seed=0
    )
    return echo.seen, scores


def test_alex_and_gilberto_leave_out_windows_not_finite_and_take_the_max(monkeypatch):
    seen, scores = run_with_echo(monkeypatch, "ag_rlp_xgb")
    assert seen[:, 0].tolist() == [0.9, 0.3, 0.2]  # the window with NaN and -inf: gone
    assert scores.tolist() == [0.9, 0.5]  # max; no window left: the training base rate


def test_feng_zeroes_values_not_finite_and_takes_the_mean(monkeypatch):
    seen, scores = run_with_echo(monkeypatch, "feng_knn")
    assert len(seen) == 8 and seen[2].tolist() == [0.0, 0.0] and (seen[4:] == 0).all()
    assert np.allclose(scores, [(0.9 + 0.3 + 0 + 0.2) / 4, 0.0])


def test_fengs_booster_sees_what_was_not_finite_as_missing(monkeypatch):
    seen, _ = run_with_echo(monkeypatch, "feng_xgb")
    assert len(seen) == 8 and np.isnan(seen[2]).all() and np.isnan(seen[4:]).all()


def test_andriys_svm_keeps_the_features_that_matter():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 400))
    y = (x[:, 7] + x[:, 123] > 0).astype(int)
    model = winners.TopFeaturesSvm(features=20, seed=0).fit(x, y)
    assert {7, 123} <= set(model.columns_.tolist()) and len(model.columns_) == 20
    assert auc(y, model.decision_function(x)) > 0.95


def test_andriys_svm_gives_the_same_scores_whatever_the_global_random_state():
    """Its L1 solver visits features in a random order: seeded by the model's seed, not by
    numpy's global state (which differs from process to process, a fold worker's too)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 60))
    y = (x[:, :20].sum(axis=1) + rng.normal(size=400) > 0).astype(int)
    scores = []
    for state in (1, 2):
        np.random.seed(state)
        scores.append(winners.TopFeaturesSvm(features=40, seed=0).fit(x, y).decision_function(x))
    assert np.array_equal(scores[0], scores[1])


def test_every_recipe_trains_on_a_tiny_set(winners_run):
    config, report = winners_run
    assert list(report.metrics) == WINNERS.split(",")
    models = trained_models(report.folder)
    folds = pd.read_csv(report.folder / "folds.csv")
    for name in WINNERS.split(","):
        oof = pd.read_csv(models[name] / "oof.csv")
        test = pd.read_csv(models[name] / "test.csv")
        assert len(oof) == len(folds) and oof["score"].between(0, 1).all(), name
        assert test["score"].between(0, 1).all() and len(test) == 2 * test["segment"].nunique()
        assert np.isfinite(report.metrics[name]["pooled_auc"]), name


def test_the_cache_holds_the_winners_features_as_computed(winners_run):
    config, report = winners_run
    cache = FeatureCache.open(cache_folder(config.features))
    assert cache.families["rlp"].shape[1:] == (3, 96)  # 60 s: three 20 s windows
    assert cache.families["feng"].shape[1:] == (2, 112) and cache.families["fengmore"].shape[1] == 1
    for row in cache.segments["row"][:: len(cache.segments) // 5]:
        segment = read_segment(cache.segments.loc[row, "path"]).channels_major
        expected = features.relative_log_power(segment.astype(np.float64), 400.0)
        stored = np.asarray(cache.families["rlp"][row])
        assert np.allclose(stored, expected.astype(np.float32), equal_nan=True)


def test_the_winners_blend_is_their_equal_rank_average(winners_run):
    config, report = winners_run
    found = candidates(report.folder, config)
    blend = next(c for c in found if c.model == "blend")
    raw = [c.raw for c in found if c.model != "blend"]
    expected = rank_average([r.reindex(blend.oof.index) for r in raw])
    assert np.allclose(blend.oof.to_numpy(), expected.to_numpy())
    assert blend.calibration.startswith("none+none")
    labels = pd.read_csv(trained_models(report.folder)["baseline"] / "oof.csv")
    labels = labels.set_index("segment")["label"].reindex(blend.oof.index)
    assert blend.oof_auc == pytest.approx(auc(labels, expected))


def test_a_window_with_one_clean_slice_stays_finite():
    """All coherences 1 (one slice): singular, and indefinite by 1e-8 once stored in float32."""
    rng = np.random.default_rng(3)
    upper = np.triu_indices(6)
    rows = spd(rng, 10)[:, None][..., upper[0], upper[1]].reshape(10, -1)
    rows = np.vstack([rows, np.ones((1, 21))]).astype(np.float32).astype(np.float64)
    rows[-1, 3] -= 4e-8
    out = winners.CoherenceTangentSpace(bands=6).fit_transform(rows)
    assert np.isfinite(out).all()


def test_andriys_svm_ranks_by_total_gain_and_keeps_only_features_split_on():
    """As R's ``xgb.importance``: each feature's total gain (not its mean gain per split),
    and no feature the ranker never split on (here 380 constant columns) to make up 300."""
    rng = np.random.default_rng(4)
    x = np.hstack([rng.normal(size=(400, 20)), np.ones((400, 380))])
    y = (x[:, 3] + 0.5 * x[:, 11] + rng.normal(scale=0.8, size=400) > 0).astype(int)
    model = winners.TopFeaturesSvm(features=300, seed=0).fit(x, y)
    assert len(model.columns_) > 0 and model.columns_.max() < 20  # no constant column
    booster = model.ranker_.get_booster()
    total, mean = (booster.get_score(importance_type=k) for k in ("total_gain", "gain"))
    used = sorted(total, key=lambda f: -total[f])
    assert sorted(model.columns_.tolist()) == sorted(int(f[1:]) for f in used)
    top = winners.TopFeaturesSvm(features=5, seed=0).fit(x, y).columns_.tolist()
    assert sorted(top) == sorted(int(f[1:]) for f in used[:5])
    by_mean = sorted(mean, key=lambda f: -mean[f])[:5]
    assert sorted(top) != sorted(int(f[1:]) for f in by_mean)  # the two rankings differ here


def test_andriys_svm_takes_every_feature_when_its_ranker_cannot_split():
    x = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0]])  # two rows: below min_child_weight
    model = winners.TopFeaturesSvm(features=2, seed=0).fit(x, np.array([0, 1]))
    assert model.columns_.tolist() == [0, 1]
