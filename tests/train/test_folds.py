"""Folds: grouped by hour, stratified, deterministic, written once and reused."""

import numpy as np
import pandas as pd
import pytest

from deepsync.errors import DeepSyncError
from deepsync.train.folds import (
    grouped_folds,
    load_or_make_folds,
    random_folds,
    training_segments,
)


def segments(patients=2, interictal_hours=7, preictal_hours=4, extras=3):
    """Rows shaped like the cache's training segments (six per hour, extras alone)."""
    rows = []
    for p in range(1, patients + 1):
        for label, hours, name in (
            (0, interictal_hours, "interictal"),
            (1, preictal_hours, "preictal"),
        ):
            for h in range(hours):
                for s in range(6):
                    rows.append((f"{p}_{name}_{h}_{s}", p, label, f"{p}-{name}-{h:03d}"))
        for e in range(extras):
            rows.append((f"{p}_extra_{e}", p, 1, f"{p}-extra-{e:04d}"))
    frame = pd.DataFrame(rows, columns=["segment", "patient", "label", "hour"])
    return frame.assign(row=np.arange(len(frame)))


def test_no_hour_is_split_and_every_fold_has_both_classes():
    folds = grouped_folds(segments(), k=3, seed=1)
    assert (folds.groupby("hour")["fold"].nunique() == 1).all()
    for _, part in folds.groupby(["patient", "fold"]):
        assert set(part["label"]) == {0, 1}
    assert len(folds) == len(segments())


def test_classes_are_spread_evenly():
    folds = grouped_folds(segments(interictal_hours=9, preictal_hours=6, extras=0), k=3, seed=5)
    counts = folds.groupby(["patient", "label", "fold"]).size().unstack()
    assert (counts.max(axis=1) - counts.min(axis=1) <= 6).all()  # within one hour


def test_extra_preictal_files_are_their_own_groups():
    folds = grouped_folds(segments(preictal_hours=1, extras=4), k=3, seed=2)
    extras = folds[folds["hour"].str.contains("extra")]
    assert extras.groupby("patient")["fold"].nunique().min() >= 2  # they spread out


def test_deterministic_from_the_seed():
    a = grouped_folds(segments(), k=3, seed=11)
    b = grouped_folds(segments(), k=3, seed=11)
    assert a.equals(b)
    others = [grouped_folds(segments(), k=3, seed=s)["fold"] for s in range(12, 20)]
    assert any(not o.equals(a["fold"]) for o in others)


def test_too_few_preictal_hours_for_the_folds_is_one_clear_error():
    with pytest.raises(DeepSyncError, match="train.folds <= 3"):
        grouped_folds(segments(preictal_hours=3, extras=0), k=4, seed=0)


def test_random_folds_split_hours():
    folds = random_folds(segments(), k=3, seed=0)
    assert (folds.groupby("hour")["fold"].nunique() > 1).any()


def test_written_once_then_reused_and_a_mismatch_is_refused(tmp_path):
    path = tmp_path / "run" / "folds.csv"
    made = load_or_make_folds(path, segments(), 3, seed=4)
    again = load_or_make_folds(path, segments(), 3, seed=99)  # the file wins over the seed
    assert again.equals(made)
    with pytest.raises(DeepSyncError, match="other segments or fold counts"):
        load_or_make_folds(path, segments(), 4, seed=4)
    with pytest.raises(DeepSyncError, match="other segments"):
        load_or_make_folds(path, segments(patients=1), 3, seed=4)


def test_training_segments_leave_out_unsafe_test_and_all_zero(tiny_cache):
    _, cache = tiny_cache
    chosen = training_segments(cache.segments)
    rows = cache.segments.set_index("segment").loc[chosen["segment"]]
    assert (rows["split"] == "train").all() and rows["safe"].all()
    assert not rows["all_zero"].any()
    excluded = cache.segments[~cache.segments["segment"].isin(chosen["segment"])]
    assert ((excluded["split"] == "test") | ~excluded["safe"] | excluded["all_zero"]).all()
    assert set(training_segments(cache.segments, [2])["patient"]) == {2}
