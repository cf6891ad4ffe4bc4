"""Out-of-fold scores to the numbers that matter: AUC per fold, per patient, and pooled.

The leaderboard ranks all patients' test files together with one ROC AUC, so a model
must also be calibrated across patients: a score of 0.3 must mean the same for each.
`calibrate` maps each patient's scores through a logistic fit of label on score (Platt
scaling), cross-fitted on the OOF predictions so that no fold is scored by a map fitted
on its own labels; `oof_metrics` reports the pooled AUC with and without it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


def auc(labels, scores) -> float:
    """ROC AUC; NaN when only one class is present (never a silent 0 or 0.5)."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return math.nan
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))


def _platt(known: pd.DataFrame, scores: pd.Series) -> np.ndarray:
    """``scores`` through a logistic fit of label on logit(score) over ``known`` rows.

    With one class in ``known`` there is nothing to fit: the scores come back unchanged.
    """
    if known["label"].nunique() < 2:
        return scores.to_numpy(dtype=np.float64)
    model = LogisticRegression(C=1.0).fit(logit(known["score"])[:, None], known["label"])
    return model.predict_proba(logit(scores)[:, None])[:, 1]


def logit(scores: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def calibrate(oof: pd.DataFrame) -> pd.Series:
    """Per patient Platt-scaled OOF scores; fold k's map is fitted on the other folds."""
    out = pd.Series(np.nan, index=oof.index, dtype=np.float64)
    for _, part in oof.groupby("patient"):
        for fold, held in part.groupby("fold"):
            out[held.index] = _platt(part[part["fold"] != fold], held["score"])
    return out


def calibrate_test(oof: pd.DataFrame, test: pd.DataFrame) -> pd.Series:
    """Test scores through each patient's map fitted on all of that patient's OOF scores."""
    out = test["score"].astype(np.float64).copy()
    for patient, part in test.groupby("patient"):
        out[part.index] = _platt(oof[oof["patient"] == patient], part["score"])
    return out


def oof_metrics(oof: pd.DataFrame) -> dict:
    """AUC per fold and per patient, pooled over patients raw and calibrated.

    ``oof``: one row per training segment with columns segment, patient, label, fold, score.
    """
    calibrated = calibrate(oof)
    per_patient = {}
    for patient, part in oof.groupby("patient"):
        per_patient[str(patient)] = {
            "auc": auc(part["label"], part["score"]),
            "folds": [auc(f["label"], f["score"]) for _, f in part.groupby("fold")],
            "segments": len(part),
            "preictal": int(part["label"].sum()),
        }
    return {
        "pooled_auc": auc(oof["label"], oof["score"]),
        "pooled_auc_calibrated": auc(oof["label"], calibrated),
        "mean_patient_auc": float(np.nanmean([p["auc"] for p in per_patient.values()])),
        "patients": per_patient,
    }


def summary_table(metrics: dict[str, dict]) -> str:
    """One line per model: per-patient AUCs, then pooled raw and after Platt scaling, and with a
    ``baseline`` (the winners' recipe, the bar) among them, each model's pooled AUC less
    the baseline's."""
    patients = sorted({p for m in metrics.values() for p in m["patients"]}, key=int)
    width = max(10, *(len(name) + 2 for name in metrics))
    bar = metrics.get("baseline", {}).get("pooled_auc")
    head = f"{'model':<{width}}" + "".join(f"{'patient ' + p:>11}" for p in patients)
    head += f"{'pooled':>9}{'platt':>12}" + (f"{'vs baseline':>13}" if bar else "")
    lines = [head]
    for name, m in metrics.items():
        cells = "".join(f"{m['patients'].get(p, {}).get('auc', math.nan):>11.3f}" for p in patients)
        line = f"{name:<{width}}{cells}{m['pooled_auc']:>9.3f}{m['pooled_auc_calibrated']:>12.3f}"
        if bar and name != "baseline":
            line += f"{m['pooled_auc'] - bar:>+13.3f}"
        lines.append(line)
    return "\n".join(lines)
