"""The baseline: the 2016 winners' kind of model on the band-power table, minutes on a CPU.

Each kept 30 s window of a segment is one row (16 electrodes x 6 bands, log power and
log share of the total); a classifier learns window rows labelled with their segment's
class, and a segment's score combines its windows' scores (max by default: the winners
found max and std beat mean). Per patient, per fold, on the run's folds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepsync.config import BaselineConfig
from deepsync.features.cache import FeatureCache


def window_rows(cache: FeatureCache, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kept windows of the cache ``rows``: features (windows, C * 12), owner index into rows."""
    kept = np.asarray(cache.windows[rows])  # (segments, W)
    owner, window = np.nonzero(kept)
    table = np.asarray(cache.table[rows[owner], window])  # (windows, C, 12)
    return table.reshape(len(owner), int(np.prod(cache.table.shape[2:]))), owner


def combine(scores: np.ndarray, owner: np.ndarray, segments: int, how: str, empty: float):
    """Per segment: max, mean or std of its window scores; ``empty`` where it has none."""
    frame = pd.DataFrame({"owner": owner, "score": scores})
    grouped = frame.groupby("owner")["score"].agg(how)
    if how == "std":
        grouped = grouped.fillna(0.0)  # one window: no spread
    out = np.full(segments, empty, dtype=np.float64)
    out[grouped.index.to_numpy()] = grouped.to_numpy()
    return out


def make_estimator(cfg: BaselineConfig, seed: int):
    if cfg.estimator == "logistic":
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(C=0.05, class_weight="balanced", max_iter=2000),
        )
    return HistGradientBoostingClassifier(
        max_iter=cfg.iterations,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=15,
        min_samples_leaf=10,
        l2_regularization=1.0,
        class_weight="balanced",
        early_stopping=False,
        random_state=seed,
    )


def fit_predict(
    cache: FeatureCache,
    train_rows: np.ndarray,
    train_labels: np.ndarray,
    predict_rows: list[np.ndarray],
    cfg: BaselineConfig,
    seed: int,
) -> list[np.ndarray]:
    """Fit on the training segments' windows; segment scores for each array of rows.

    A segment without a kept window (dropout everywhere) gets the training base rate.
    """
    features, owner = window_rows(cache, train_rows)
    model = make_estimator(cfg, seed).fit(features, train_labels[owner])
    prior = float(np.mean(train_labels))
    out = []
    for rows in predict_rows:
        x, who = window_rows(cache, rows)
        scores = model.predict_proba(x)[:, 1] if len(x) else np.empty(0)
        out.append(combine(scores, who, len(rows), cfg.combine, prior))
    return out
