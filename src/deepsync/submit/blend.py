"""Rank averaging, the 2016 winners' way of blending: only each model's ordering counts.

Every input's scores become their ranks scaled into (0, 1), then a weighted mean of
those is taken per file. Ranks are pooled over all of a submission's files (patients
together), so each input's own cross-patient calibration is kept. The result does not
depend on the order the inputs are given in, only on which weight goes with which.

`fitted_blend` chooses the weights on out-of-fold scores, cross-fitted: each fold is
blended with the weights the other folds preferred, so its OOF AUC is an honest figure
for the weights that the test set gets (chosen on every fold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


WEIGHT_STEP = 0.1  # blend weights are multiples of this, summing to one...
MAX_GRID = 500  # ...or of a coarser step, so that at most this many weightings are tried


def weight_grid(inputs: int, step: float = WEIGHT_STEP) -> list[tuple[float, ...]]:
    """Every weighting of ``inputs`` models in multiples of ``step`` that sums to one.

    With many models the step grows (1/8 for five, 1/3 for ten) until the grid holds
    at most `MAX_GRID` weightings: every one is scored on each fold.
    """
    units = round(1 / step)
    while units > 1 and math.comb(units + inputs - 1, inputs - 1) > MAX_GRID:
        units -= 1

    def spread(left: int, slots: int):
        if slots == 1:
            yield (left,)
            return
        for first in range(left + 1):
            for rest in spread(left - first, slots - 1):
                yield (first, *rest)

    return [tuple(u / units for u in combo) for combo in spread(units, inputs)]


@dataclass(frozen=True)
class FittedBlend:
    """A rank blend whose weights were chosen on out-of-fold scores, honestly.

    ``oof``: each fold's rows blended with the weights that scored best on the *other*
    folds (no fold is scored by weights its own labels chose); ``weights``: those chosen
    on every fold, for the test set; ``per_fold``: the weights each fold got.
    """

    oof: pd.Series
    weights: tuple[float, ...]
    per_fold: dict[int, tuple[float, ...]]


def fitted_blend(
    inputs: list[pd.Series], labels: pd.Series, folds: pd.Series, step: float = WEIGHT_STEP
) -> FittedBlend:
    """Rank blends of ``inputs`` (aligned on one index) with cross-fitted weights.

    Weights are picked by pooled ROC AUC; ties go to the weighting nearest equal weights.
    """
    from deepsync.train.metrics import auc

    grid = weight_grid(len(inputs), step)
    equal = 1 / len(inputs)
    blends = {w: rank_average(inputs, list(w)) for w in grid}

    def best(rows: pd.Series) -> tuple[float, ...]:
        def score(w):
            value = auc(labels[rows], blends[w][rows])
            return (-1.0 if np.isnan(value) else value, -sum(abs(x - equal) for x in w))

        return max(grid, key=score)

    oof = pd.Series(np.nan, index=labels.index, dtype=np.float64)
    per_fold = {}
    for fold in sorted(folds.unique()):
        here = folds == fold
        per_fold[int(fold)] = chosen = best(~here)
        oof[here] = blends[chosen][here]
    return FittedBlend(oof, best(pd.Series(True, index=labels.index)), per_fold)
