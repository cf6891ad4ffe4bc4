"""The 2016 winners' models, at their published settings: named models of ``train.models``.

Source: alexandrebarachant/kaggle-seizure-prediction-challenge-2016 (BSD 3-clause), the
first place of the Melbourne competition: a rank average of eleven per-patient models.
Each `Recipe` names its file there, the feature family it reads (computed as theirs by
`deepsync.features.winners`), how its window scores become a segment's, and what it does
with feature values that are not finite (dropout). Seven of the eleven are here:

| name | theirs | public / private |
|---|---|---|
| ``ag_rlp_xgb`` (the kit's ``baseline``) | Alex_Gilberto_relative_log_power_XGB | 0.807 / 0.769 |
| ``ag_xfcoh_ts_xgb`` | Alex_Gilberto_coherences_transposed_TS_XGB | 0.750 / 0.767 |
| ``feng_xgb`` | Feng_xgb | 0.759 / 0.776 |
| ``feng_knn`` | Feng_knn | 0.796 / 0.740 |
| ``feng_knn_more`` | Feng_knnmorefeature | 0.759 / 0.727 |
| ``feng_glm_more`` | Feng_glmmorefeature | 0.679 / 0.733 |
| ``andriy_svm`` | Andriy_submission5_7_SVM (on the kit's families) | 0.736 / 0.754 |

Left out: Alex and Gilberto's all-flat set (AR error, Petrosian and Higuchi fractal
dimensions, Hurst exponent) and auto-correlation matrices, Andriy's glmnet and XGB (his
1,965 MATLAB features). ``andriy_svm`` runs his selection and classifier on the kit's own
families (all of them, 30 s windows) instead of his features. What else differs from
theirs: XGBoost 3's ``hist`` trees (theirs: 0.4's ``exact``), scikit-learn's current
solvers (``lbfgs`` for the GLM, theirs ``liblinear``), each patient's folds the kit's own
(hour-grouped) rather than their two- and 26-fold schemes, and no resampling before Feng's
filter (his resampled 600 s to 400 Hz: the identity on these files).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from deepsync.names import RECIPE_FAMILIES

N_JOBS = os.cpu_count() or 1  # each estimator's threads (a fold worker sets its share)
RANKER_ROUNDS = 100  # Andriy's XGBoost ranker (his 1000: `TopFeaturesSvm`)


@dataclass(frozen=True)
class Recipe:
    """One of the winners' models: what it reads, how it is made, how it combines."""

    name: str
    source: str  # the file of their repository it follows (what it reads: RECIPE_FAMILIES)
    combine: str  # window scores to a segment's: max (Alex, Gilberto, Andriy) | mean (Feng)
    # drop: windows left out (their ignore_na) | zero: set to 0 (Feng's KNN, GLM) | missing:
    # NaN, XGBoost's missing value (Feng's XGB took -inf, which XGBoost now refuses)
    non_finite: str
    make: Callable[[int, int], object]  # (seed, training rows) -> an untrained estimator


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, source: str, combine: str, non_finite: str):
    """Register the decorated ``(seed, rows) -> estimator`` factory as the recipe ``name``
    (one of `deepsync.names.RECIPE_FAMILIES`, which says what it reads)."""

    def add(make):
        if name not in RECIPE_FAMILIES:
            raise ValueError(f"recipe {name!r}: add what it reads to names.RECIPE_FAMILIES")
        RECIPES[name] = Recipe(name, source, combine, non_finite, make)
        return make

    return add


def _xgb(**settings):
    from xgboost import XGBClassifier

    return XGBClassifier(n_jobs=N_JOBS, verbosity=0, **settings)  # N_JOBS read at each call


def _ag_bagged_xgb(seed: int, bags: int):
    """Alex and Gilberto's classifier: a bag of slow XGBoost models (``models/*.yml``)."""
    from sklearn.ensemble import BaggingClassifier

    booster = _xgb(
        n_estimators=500,
        learning_rate=0.01,
        max_depth=4,
        subsample=0.5,
        colsample_bytree=0.5,
        colsample_bylevel=1.0,
        min_child_weight=2,
        random_state=42,
    )
    return BaggingClassifier(
        booster, n_estimators=bags, max_samples=0.99, max_features=0.99, random_state=666 + seed
    )


@recipe("ag_rlp_xgb", "Alex_Gilberto/models/relative_log_power_XGB.yml", "max", "drop")
def _ag_rlp_xgb(seed: int, rows: int):
    return _ag_bagged_xgb(seed, bags=10)


@recipe("ag_xfcoh_ts_xgb", "Alex_Gilberto/models/coherence_transposed_TS_XGB.yml", "max", "drop")
def _ag_xfcoh_ts_xgb(seed: int, rows: int):
    from sklearn.pipeline import make_pipeline

    return make_pipeline(CoherenceTangentSpace(bands=6), _ag_bagged_xgb(seed, bags=10))


@recipe("feng_xgb", "Feng/models/XGB.py", "mean", "missing")
def _feng_xgb(seed: int, rows: int):
    return _xgb(
        n_estimators=500,
        learning_rate=0.22,
        max_depth=3,
        subsample=0.8,
        colsample_bytree=0.78,
        random_state=seed,
    )


def _feng_knn(rows: int):
    """40 neighbours by Manhattan distance, weighted by closeness (fewer on a tiny set):
    scikit-learn's ``KNeighborsClassifier``'s scores from a compiled exact search
    (`deepsync.train.neighbours`)."""
    from sklearn.pipeline import make_pipeline

    from deepsync.train.neighbours import ManhattanKnn

    return make_pipeline(BatchStandardScaler(), ManhattanKnn(neighbours=min(40, rows)))


@recipe("feng_knn", "Feng/models/KNN.py", "mean", "zero")
def _feng_knn_spectra(seed: int, rows: int):
    return _feng_knn(rows)


@recipe("feng_knn_more", "Feng/models/KNNmorefeature.py", "mean", "zero")
def _feng_knn_more(seed: int, rows: int):
    return _feng_knn(rows)


@recipe("feng_glm_more", "Feng/models/GLM.py", "mean", "zero")
def _feng_glm_more(seed: int, rows: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.6, max_iter=5000))


@recipe("andriy_svm", "Andriy/mod_svm_5_7.R", "max", "zero")
def _andriy_svm(seed: int, rows: int):
    return TopFeaturesSvm(features=300, seed=seed)


class BatchStandardScaler(TransformerMixin, BaseEstimator):
    """Standardise by the statistics of the rows at hand, in fit and in predict alike.

    Feng's KNN scaled the test set by its own mean and spread (``fit_transform`` on it),
    not the training set's: reproduced. A column without spread is only centred.
    """

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        spread = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)

    def fit_transform(self, x, y=None):
        return self.transform(x)


class CoherenceTangentSpace(TransformerMixin, BaseEstimator):
    """Each electrode's band coherence matrix to its Riemannian tangent space.

    Alex and Gilberto's ``CoherenceToTangent`` (``Alex_Gilberto/models.py``, pyRiemann's
    ``Shrinkage(1e-9)`` then ``TangentSpace(metric="logeuclid", tsupdate=True)``): per
    electrode, the reference is the log-Euclidean mean of the matrices being transformed
    (``tsupdate``: the training set's in fit, the predicted set's in predict); each
    matrix C becomes the upper triangle of logm(R^-1/2 C R^-1/2), off-diagonal terms times
    sqrt(2). Rows: per electrode the upper triangle with the diagonal, as `xfcoh` holds it.
    """

    def __init__(self, bands: int = 6):
        self.bands = bands

    def fit(self, x, y=None):
        return self

    def fit_transform(self, x, y=None):
        return self.transform(x)

    def transform(self, x):
        upper = np.triu_indices(self.bands)
        matrices = self._matrices(x.reshape(len(x), -1, upper[0].size), upper)  # (N, C, D, D)
        logs = _spd_function(matrices, _log)
        reference = _spd_function(logs.mean(axis=0), np.exp)  # (C, D, D)
        whitening = _spd_function(reference, lambda w: w**-0.5)
        tangent = _spd_function(whitening @ matrices @ whitening, _log)
        coefficients = np.where(upper[0] == upper[1], 1.0, np.sqrt(2.0))
        rows = tangent[..., upper[0], upper[1]] * coefficients
        return rows.reshape(len(x), -1)

    def _matrices(self, rows: np.ndarray, upper) -> np.ndarray:
        n, channels, _ = rows.shape
        out = np.zeros((n, channels, self.bands, self.bands))
        out[..., upper[0], upper[1]] = rows
        out = out + np.swapaxes(out, -1, -2)
        out[..., np.arange(self.bands), np.arange(self.bands)] /= 2
        shrink = 1e-9  # pyRiemann's Shrinkage(1e-9)
        trace = np.trace(out, axis1=-2, axis2=-1)[..., None, None] / self.bands
        return (1 - shrink) * out + shrink * trace * np.eye(self.bands)


def _log(values: np.ndarray) -> np.ndarray:
    """The log of eigenvalues, those below 1e-12 taken as 1e-12: a window with one clean
    slice has a singular coherence matrix, and its float32 copy in the cache can be
    indefinite by 1e-8 (theirs, in float64, kept the shrinkage's 1e-9)."""
    return np.log(np.maximum(values, 1e-12))


def _spd_function(matrices: np.ndarray, function) -> np.ndarray:
    """``function`` of symmetric positive-definite matrices, through their eigenvalues."""
    values, vectors = np.linalg.eigh(matrices)
    return (vectors * function(values)[..., None, :]) @ np.swapaxes(vectors, -1, -2)


class TopFeaturesSvm(ClassifierMixin, BaseEstimator):
    """Andriy's SVM (``Andriy/mod_svm_5_7.R``): the 300 features with the largest total
    gain in an XGBoost ranker (eta 0.3, depth 3, subsample 0.8, two parallel trees a
    round), standardised, in an L1-regularised linear SVM (LIBLINEAR type 5, cost 100);
    its decision values through a sigmoid.

    As R's ``xgb.importance`` ranks them: by each feature's total gain over the splits that
    use it, and only the features the ranker split on (fewer than 300 where it split on
    fewer; the first ``features`` columns where it split on none). The ranker runs ``rounds``
    (`RANKER_ROUNDS`), not his 1000: eta 0.3 separates the training windows within a few
    dozen rounds, after which nearly every tree is a single leaf that costs a full pass
    over the rows and adds no split (README, "The 2016 winners, reproduced")."""

    def __init__(self, features: int = 300, seed: int = 0, rounds: int = RANKER_ROUNDS):
        self.features, self.seed, self.rounds = features, seed, rounds

    def fit(self, x, y):
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        self.ranker_ = _xgb(
            n_estimators=self.rounds,
            learning_rate=0.3,
            max_depth=3,
            subsample=0.8,
            colsample_bytree=1.0,
            num_parallel_tree=2,
            importance_type="total_gain",
            random_state=self.seed,
        ).fit(x, y)
        gain = self.ranker_.feature_importances_  # each feature's share of the total gain
        order = np.argsort(-gain, kind="stable")
        if gain.any():  # else (no split: too few rows) the first columns
            order = order[gain[order] > 0]
        self.columns_ = np.sort(order[: self.features])
        self.scaler_ = StandardScaler().fit(x[:, self.columns_])
        self.svm_ = LinearSVC(  # tol: LIBLINEAR's own default for this type
            penalty="l1",
            loss="squared_hinge",
            dual=False,
            C=100.0,
            tol=0.01,
            max_iter=10000,
            random_state=self.seed,  # its L1 solver visits features in a random order
        )
        self.svm_.fit(self.scaler_.transform(x[:, self.columns_]), y)
        self.classes_ = self.svm_.classes_
        return self

    def decision_function(self, x):
        return self.svm_.decision_function(self.scaler_.transform(x[:, self.columns_]))
