"""Folds: per patient, stratified by class, grouped by hour, written once and reused.

Segments of one hour are near copies of each other; a fold split that puts one hour on
both sides scores the model on what it memorised (2016 teams saw CV AUC about 0.1 above
the leaderboard that way). Here every hour (patient, class, hour; each extra preictal file
of the old test set is its own group) lies in exactly one fold, each class is spread
evenly over the folds, and the assignment depends only on the segments and the seed.
`random_folds` is the hour-blind split, kept to show what the grouping is worth.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deepsync.durable import read_csv, write_csv
from deepsync.errors import DeepSyncError

FOLD_COLUMNS = ["segment", "patient", "label", "hour", "row", "fold"]


def training_segments(segments: pd.DataFrame, patients: Sequence[int] = ()) -> pd.DataFrame:
    """The cache's segments a model may learn from: safe training files, cached, not all
    zero; of ``patients`` only, where given."""
    keep = (
        (segments["split"] == "train")
        & segments["safe"].astype(bool)
        & (segments["status"] == "ok")
        & ~segments["all_zero"].astype(bool)
    )
    if patients:
        keep &= segments["patient"].isin(patients)
    chosen = segments.loc[keep, ["segment", "patient", "label", "hour", "row"]].copy()
    chosen["label"] = chosen["label"].astype(int)
    return chosen.reset_index(drop=True)


def grouped_folds(segments: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """Each hour to one of ``k`` folds, per patient and class, balancing segment counts.

    Hours are visited in a seeded random order, largest first, and each goes to the fold
    holding the fewest segments of its class so far (ties: lowest fold number).
    """
    rng = np.random.default_rng(seed)
    fold_of_hour: dict[str, int] = {}
    for _, part in segments.groupby(["patient", "label"], sort=True):
        sizes = part.groupby("hour").size()
        order = sizes.index.to_numpy()[rng.permutation(len(sizes))]
        order = sorted(order, key=lambda h: -sizes[h])  # stable: ties keep the random order
        filled = np.zeros(k, int)
        for hour in order:
            fold = int(np.argmin(filled))
            fold_of_hour[hour] = fold
            filled[fold] += sizes[hour]
    folds = segments.assign(fold=segments["hour"].map(fold_of_hour).astype(int))
    check_folds(folds, k)
    return folds[FOLD_COLUMNS]


def random_folds(segments: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """Hour-blind stratified folds (what leaky 2016 CV did): for comparison only."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(segments), int)
    for _, part in segments.groupby(["patient", "label"], sort=True):
        index = part.index.to_numpy()[rng.permutation(len(part))]
        fold[index] = np.arange(len(index)) % k
    return segments.assign(fold=fold)[FOLD_COLUMNS]


def check_folds(folds: pd.DataFrame, k: int) -> None:
    """Every patient's every fold validates on both classes, and no hour spans two folds."""
    for patient, part in folds.groupby("patient"):
        for fold in range(k):
            labels = set(part.loc[part["fold"] == fold, "label"])
            if labels != {0, 1}:
                counts = part.groupby("label")["hour"].nunique().to_dict()
                raise DeepSyncError(
                    f"patient {patient}: fold {fold} would validate on one class only "
                    f"({counts.get(0, 0)} interictal and {counts.get(1, 0)} preictal hours); "
                    f"use train.folds <= {min(counts.get(0, 0), counts.get(1, 0))}"
                )
    spread = folds.groupby("hour")["fold"].nunique()
    if (spread > 1).any():
        raise DeepSyncError(f"hour {spread.idxmax()} lies in more than one fold")


def load_or_make_folds(path: Path, segments: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """The run's folds: read from ``path`` when it holds these segments, else made and written.

    Every model of a run reads the same file, so their OOF predictions line up for blending.
    """
    if path.exists():
        folds = read_csv(path, dtype={"segment": str, "hour": str})
        same = sorted(folds["segment"]) == sorted(segments["segment"])
        if same and folds["fold"].max() == k - 1:
            check_folds(folds, k)
            return folds.set_index("segment").loc[segments["segment"]].reset_index()[FOLD_COLUMNS]
        raise DeepSyncError(
            f"{path} holds other segments or fold counts than this run; "
            "use another --set train.run=NAME, or delete the run folder"
        )
    folds = grouped_folds(segments, k, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, folds)
    return folds
