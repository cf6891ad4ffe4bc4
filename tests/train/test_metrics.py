"""Metrics: AUC per fold, per patient and pooled; cross-fitted per-patient calibration."""

import math

import numpy as np
import pandas as pd

from deepsync.train.metrics import auc, calibrate, calibrate_test, oof_metrics, summary_table


def oof(seed=0, offsets=(0.0, 3.0), n=60):
    """Two patients whose scores separate the classes equally well but sit apart."""
    rng = np.random.default_rng(seed)
    parts = []
    for patient, offset in enumerate(offsets, start=1):
        label = rng.integers(0, 2, n)
        logit = offset + 1.5 * label + rng.normal(0, 1, n)
        parts.append(
            pd.DataFrame(
                {
                    "segment": [f"{patient}_{i}" for i in range(n)],
                    "patient": patient,
                    "label": label,
                    "fold": np.arange(n) % 3,
                    "score": 1 / (1 + np.exp(-logit)),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_auc_is_nan_with_one_class():
    assert math.isnan(auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert auc([0, 1], [0.1, 0.9]) == 1.0


def test_pooled_auc_suffers_from_patient_offsets_and_calibration_repairs_it():
    frame = oof()
    metrics = oof_metrics(frame)
    per_patient = [p["auc"] for p in metrics["patients"].values()]
    assert metrics["pooled_auc"] < min(per_patient) - 0.05
    assert metrics["pooled_auc_calibrated"] > metrics["pooled_auc"] + 0.05
    assert all(len(p["folds"]) == 3 for p in metrics["patients"].values())


def test_calibration_never_sees_the_labels_of_the_fold_it_maps():
    frame = oof(seed=3)
    before = calibrate(frame)
    flipped = frame.copy()
    fold0 = flipped["fold"] == 0
    flipped.loc[fold0, "label"] = 1 - flipped.loc[fold0, "label"]
    after = calibrate(flipped)
    assert np.allclose(before[fold0], after[fold0])  # fold 0's own labels play no part
    assert not np.allclose(before[~fold0], after[~fold0])  # the others' maps changed


def test_calibration_is_monotonic_within_a_patient():
    frame = oof(seed=4)
    out = calibrate_test(frame, frame[["patient", "score"]])
    for _, part in frame.assign(out=out).groupby("patient"):
        order = np.argsort(part["score"].to_numpy())
        assert np.all(np.diff(part["out"].to_numpy()[order]) >= -1e-12)


def test_summary_table_lists_each_model_and_patient():
    text = summary_table({"baseline": oof_metrics(oof()), "cnn": oof_metrics(oof(seed=1))})
    assert "patient 1" in text and "patient 2" in text and "platt" in text
    assert text.count("\n") == 2
