"""Rank averaging, the 2016 winners' way of blending: only each model's ordering counts.

Every input's scores become their ranks scaled into (0, 1), then a weighted mean of
those is taken per file. Ranks are pooled over all of a submission's files (patients
together), so each input's own cross-patient calibration is kept. The result does not
depend on the order the inputs are given in, only on which weight goes with which.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from deepsync.errors import DeepSyncError


def ranks(scores: pd.Series) -> pd.Series:
    """Scores to ranks in (0, 1): (rank - 0.5) / n, ties sharing their mean rank."""
    values = scores.to_numpy(dtype=np.float64)
    return pd.Series((rankdata(values) - 0.5) / len(values), index=scores.index)


def rank_average(inputs: list[pd.Series], weights: list[float] | None = None) -> pd.Series:
    """Weighted mean of the inputs' ranks, file by file, in the first input's order."""
    if not inputs:
        raise DeepSyncError("blend needs at least one submission")
    weights = [1.0] * len(inputs) if weights is None else [float(w) for w in weights]
    if len(weights) != len(inputs):
        raise DeepSyncError(f"{len(weights)} weights for {len(inputs)} submissions: give one each")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise DeepSyncError("blend weights must not be negative, and not all zero")
    index = inputs[0].index
    for other in inputs[1:]:
        if set(other.index) != set(index):
            raise DeepSyncError("the submissions to blend do not hold the same files")
    total = sum(w * ranks(s).reindex(index) for w, s in zip(weights, inputs, strict=True))
    return total / sum(weights)
