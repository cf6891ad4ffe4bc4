"""Making one patient's score mean what another's does: the leaderboard pools patients.

Each method maps every patient's scores separately, on out-of-fold predictions (to
measure it) and on test predictions (to submit):
- ``none``: scores as the models gave them;
- ``rank``: each patient's scores to their ranks in (0, 1) (a patient's base rate is lost);
- ``standardise``: each patient's logits to zero mean, unit spread, back through a sigmoid;
- ``prior``: each patient's logits shifted so the mean score is that patient's preictal
  share of the training segments;
- ``platt``: a logistic fit of label on logit(score) per patient.
Methods that use labels (prior, platt) are cross-fitted on OOF predictions: fold k's map
comes from the other folds. On test predictions they use all of the patient's OOF rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import rankdata

from deepsync.names import CALIBRATIONS
from deepsync.train.metrics import auc, calibrate, calibrate_test, logit

METHODS = CALIBRATIONS  # ties go to the earlier one
SHIFT_BOUND = 40.0  # logits: more than enough to reach any base rate from any scores


def calibrate_oof(oof: pd.DataFrame, method: str) -> np.ndarray:
    """``oof`` (patient, fold, label, score) scores through ``method``, cross-fitted."""
    if method == "platt":
        return calibrate(oof).to_numpy()
    out = oof["score"].to_numpy(dtype=np.float64).copy()
    for _, part in oof.groupby("patient"):
        if method == "prior":
            for fold, held in part.groupby("fold"):
                rate = part.loc[part["fold"] != fold, "label"].mean()
                out[oof.index.get_indexer(held.index)] = _to_prior(held["score"], rate)
        else:
            out[oof.index.get_indexer(part.index)] = _unsupervised(part["score"], method)
    return out


def calibrate_scores(oof: pd.DataFrame, test: pd.DataFrame, method: str) -> np.ndarray:
    """``test`` (patient, score) scores through ``method``, fitted on ``oof`` where it learns."""
    if method == "platt":
        return calibrate_test(oof, test).to_numpy()
    out = test["score"].to_numpy(dtype=np.float64).copy()
    for patient, part in test.groupby("patient"):
        where = test.index.get_indexer(part.index)
        if method == "prior":
            out[where] = _to_prior(
                part["score"], oof.loc[oof["patient"] == patient, "label"].mean()
            )
        else:
            out[where] = _unsupervised(part["score"], method)
    return out


def measured(oof: pd.DataFrame) -> dict[str, float]:
    """Pooled OOF AUC of every method."""
    return {m: auc(oof["label"], calibrate_oof(oof, m)) for m in METHODS}


def best(aucs: dict[str, float]) -> str:
    """The method of the highest AUC; ties (within 1e-9) go to the simpler, earlier one."""
    top = max(v for v in aucs.values() if not np.isnan(v))
    return next(m for m in METHODS if m in aucs and aucs[m] >= top - 1e-9)


def _unsupervised(scores: pd.Series, method: str) -> np.ndarray:
    values = scores.to_numpy(dtype=np.float64)
    if method == "none":
        return values
    if method == "rank":
        return (rankdata(values) - 0.5) / len(values)
    logits = logit(values)
    spread = logits.std()
    return expit((logits - logits.mean()) / (spread if spread > 1e-12 else 1.0))


def _to_prior(scores: pd.Series, rate: float) -> np.ndarray:
    """Scores with their logits shifted so that their mean is ``rate`` (bisection)."""
    logits = logit(scores.to_numpy(dtype=np.float64))
    if not 0 < rate < 1 or len(logits) == 0:
        return expit(logits)
    lo, hi = -SHIFT_BOUND, SHIFT_BOUND
    for _ in range(60):  # the mean of sigmoids is increasing in the shift
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expit(logits + mid).mean() < rate else (lo, mid)
    return expit(logits + (lo + hi) / 2)
