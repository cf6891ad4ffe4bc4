"""Window models: classifiers on window rows of chosen feature families.

A model of ``train.models`` is one of:
- ``ESTIMATOR:FAMILY+FAMILY`` (``gbm:power+corr``, ``knn:share``, ``svm:all``; the families
  default to ``share``): the kit's own, an estimator of `ESTIMATORS` on its families,
  combining window scores by ``baseline.combine`` (max by default, as the winners found);
- a recipe of the 2016 winners by its name (`deepsync.train.winners.RECIPES`:
  ``ag_rlp_xgb``, ``feng_knn``, ...), at their settings, on their features;
- ``baseline``: the winners' best single model (Alex and Gilberto's relative log power
  in bagged XGBoost, ``ag_rlp_xgb``), the bar every other model must clear.
Each window of a segment (`deepsync.features.families`) is one row, labelled with its
segment's class; a segment's score combines its windows' scores. Per patient, per fold,
on the run's folds.

`ESTIMATORS` is the registry of the kit's estimators: one function per name builds an
untrained scikit-learn style estimator; a new model is one decorated function and its
name in `deepsync.names.ESTIMATORS`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from deepsync.config import BaselineConfig, ModelSpec
from deepsync.train import winners
from deepsync.train.winners import RECIPES

ESTIMATORS: dict[str, Callable[[BaselineConfig, int, int], object]] = {}
# Training windows (a model's folds together) from which its folds are fitted in worker
# processes, a share of the cores each: below it, starting workers costs more than it saves.
PARALLEL_WINDOWS = 2_000


def register(name: str):
    """Add a factory ``(BaselineConfig, seed, training rows) -> estimator`` under ``name``."""

    def add(factory):
        ESTIMATORS[name] = factory
        return factory

    return add


@register("logistic")
def _logistic(cfg: BaselineConfig, seed: int, rows: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=0.05, class_weight="balanced", max_iter=2000)
    )


# The gbm's trees, in each library's words: (scikit-learn, LightGBM) names per setting.
GBM_WORDS = {
    "iterations": ("max_iter", "n_estimators"),
    "learning_rate": ("learning_rate", "learning_rate"),
    "leaves": ("max_leaf_nodes", "num_leaves"),
    "min_leaf": ("min_samples_leaf", "min_child_samples"),
    "l2": ("l2_regularization", "reg_lambda"),
}


@register("gbm")
def _gbm(cfg: BaselineConfig, seed: int, rows: int):
    """LightGBM where it is installed (Kaggle's image has it), else scikit-learn's own:
    the same trees (`GBM_WORDS`), class-balanced, seeded."""
    trees = {
        "iterations": cfg.iterations,
        "learning_rate": cfg.learning_rate,
        "leaves": 15,
        "min_leaf": 10,
        "l2": 1.0,
    }
    try:
        import lightgbm
    except ImportError:
        from sklearn.ensemble import HistGradientBoostingClassifier

        settings = {GBM_WORDS[k][0]: v for k, v in trees.items()}
        return HistGradientBoostingClassifier(
            **settings, class_weight="balanced", early_stopping=False, random_state=seed
        )
    settings = {GBM_WORDS[k][1]: v for k, v in trees.items()}
    return lightgbm.LGBMClassifier(
        **settings,
        colsample_bytree=0.5,
        class_weight="balanced",
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=winners.N_JOBS,
        verbose=-1,
    )


@register("svm")
def _svm(cfg: BaselineConfig, seed: int, rows: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(C=1.0, class_weight="balanced", random_state=seed))


@register("knn")
def _knn(cfg: BaselineConfig, seed: int, rows: int):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(),
        KNeighborsClassifier(n_neighbors=min(cfg.neighbours, rows), weights="distance"),
    )


def recipe_of(spec: ModelSpec) -> winners.Recipe | None:
    """The winners' recipe a model follows, or None (the kit's own)."""
    return RECIPES.get(spec.estimator)


def window_rows(cache, rows: np.ndarray, families: tuple[str, ...], non_finite: str = "zero"):
    """Kept windows of the cache ``rows``: features (windows, width), owner index into rows.

    Values that are not finite (only the winners' families hold them): ``drop`` leaves
    their windows out, ``zero`` sets them to 0, ``missing`` to NaN (XGBoost's missing).
    """
    kept = cache.kept_windows(rows, families)  # (segments, W)
    owner, window = np.nonzero(kept)
    values = cache.window_features(rows, families, owner, window)  # (windows, width)
    broken = ~np.isfinite(values)
    if not broken.any():
        return values, owner
    if non_finite == "drop":
        whole = ~broken.any(axis=1)
        return values[whole], owner[whole]
    values[broken] = 0.0 if non_finite == "zero" else np.nan
    return values, owner


def combine(scores: np.ndarray, owner: np.ndarray, segments: int, how: str, empty: float):
    """Per segment: max, mean or std of its window scores; ``empty`` where it has none."""
    import pandas as pd

    frame = pd.DataFrame({"owner": owner, "score": scores})
    grouped = frame.groupby("owner")["score"].agg(how)
    if how == "std":
        grouped = grouped.fillna(0.0)  # one window: no spread
    out = np.full(segments, empty, dtype=np.float64)
    out[grouped.index.to_numpy()] = grouped.to_numpy()
    return out


def _scores(model, x: np.ndarray) -> np.ndarray:
    """Preictal scores in (0, 1): probabilities, or a margin (the SVM's) through a sigmoid."""
    if hasattr(model, "predict_proba"):  # False for an SVC without probability=True
        with warnings.catch_warnings():  # LightGBM names the columns it was fitted on
            warnings.filterwarnings("ignore", "X does not have valid feature names")
            return model.predict_proba(x)[:, 1]
    from scipy.special import expit

    return expit(model.decision_function(x))


def fit_predict(
    cache,
    spec: ModelSpec,
    train_rows: np.ndarray,
    train_labels: np.ndarray,
    predict_rows: list[np.ndarray],
    cfg: BaselineConfig,
    seed: int,
) -> list[np.ndarray]:
    """Fit on the training segments' windows; segment scores for each array of rows.

    A segment without a kept window (dropout everywhere) gets the training base rate.
    A recipe of the winners brings its own estimator, treatment of values that are not
    finite, and combination; the kit's models take ``cfg``'s.
    """
    recipe = recipe_of(spec)
    non_finite = recipe.non_finite if recipe else "zero"
    features, owner = window_rows(cache, train_rows, spec.families, non_finite)
    make = recipe.make if recipe else lambda s, n: ESTIMATORS[spec.estimator](cfg, s, n)
    model = make(seed, len(features))
    model.fit(features, train_labels[owner])
    prior = float(np.mean(train_labels))
    how = recipe.combine if recipe else cfg.combine
    out = []
    for rows in predict_rows:
        x, who = window_rows(cache, rows, spec.families, non_finite)
        scores = _scores(model, x) if len(x) else np.empty(0)
        out.append(combine(scores, who, len(rows), how, prior))
    return out


@dataclass(frozen=True)
class FoldFit:
    """One fold of a window model: `fit_predict`'s arguments, small enough to send to a
    process (the cache by its folder)."""

    cache_folder: Path
    spec: ModelSpec
    train_rows: np.ndarray
    train_labels: np.ndarray
    predict_rows: list[np.ndarray]
    cfg: BaselineConfig
    seed: int
    threads: int = 0  # in a worker: threads of its estimator (0: as in this process)


def fit_folds(cache, jobs: list[FoldFit], workers: int, *, progress: bool, desc: str) -> list:
    """`fit_predict` of every job, in order: here one after the other, or, when the folds
    hold at least `PARALLEL_WINDOWS` training windows, in ``workers`` processes with a
    share of the cores each (XGBoost, LightGBM and scikit-learn give the same scores with
    any number of threads). Warnings raised in a worker are raised again here."""
    from deepsync.parallel import parallel_map

    windows = sum(int(cache.kept_windows(j.train_rows, j.spec.families).sum()) for j in jobs)
    processes = min(workers, len(jobs)) if windows >= PARALLEL_WINDOWS else 1
    out: list = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, unit="fold", disable=not progress, leave=False)
    with bar:
        if processes <= 1:
            for index, job in enumerate(jobs):
                out[index] = _fit(cache, job)
                bar.update()
            return out
        threads = max(1, (os.cpu_count() or 1) // processes)
        items = [(i, replace(job, threads=threads)) for i, job in enumerate(jobs)]
        with closing(parallel_map(_fit_in_worker, items, processes)) as results:
            for index, scores, caught in results:
                for category, message in caught:
                    warnings.warn(message, category, stacklevel=1)
                out[index] = scores
                bar.update()
    return out


def _fit(cache, job: FoldFit) -> list[np.ndarray]:
    return fit_predict(
        cache, job.spec, job.train_rows, job.train_labels, job.predict_rows, job.cfg, job.seed
    )


def _fit_in_worker(item: tuple[int, FoldFit]) -> tuple[int, list[np.ndarray], list]:
    """In a worker process: one fold with ``job.threads`` threads; its scores and the
    warnings it raised (category, text)."""
    import numba
    from threadpoolctl import threadpool_limits

    from deepsync.features.cache import FeatureCache

    index, job = item
    winners.N_JOBS = job.threads  # the estimators' own thread count (XGBoost, LightGBM)
    numba.set_num_threads(min(job.threads, numba.config.NUMBA_NUM_THREADS))  # the KNN's
    with threadpool_limits(job.threads), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = _fit(FeatureCache.open(job.cache_folder), job)
    return index, scores, [(w.category, str(w.message)) for w in caught]
