"""Local leaderboard scores: the pooled ROC AUC over the Public (and Private) test files.

The organisers published the final test set's public labels
(``contest_test_data_labels_public.csv``: ``image,class,usage``, ``PatITest_J_0`` is
``new_I_J.mat``, usage Public / Private / Ignored), so a submission's public score is
computed here exactly as Kaggle did: one AUC over the three patients' Public files
together, Ignored (all-dropout) files left out. The Private classes are blank in that
file; the synthetic set's labels file has them too, so both splits score there.
"""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from deepsync.errors import DeepSyncError
from deepsync.train.metrics import auc

LABELS_FILE = "contest_test_data_labels_public.csv"
SPLITS = ("Public", "Private")
_TEST_NAME = re.compile(r"^Pat(\d+)Test_(\d+)_0$")


def reference_labels() -> Path:
    """The organisers' public labels of the real final test set, shipped with the kit."""
    return Path(str(resources.files("deepsync.data") / "reference" / LABELS_FILE))


def load_labels(path: Path) -> pd.DataFrame:
    """Labels by submission file name: File, patient, label (NaN if unknown), usage."""
    try:
        frame = pd.read_csv(path, dtype={"image": str, "usage": str})
    except (OSError, ValueError) as error:
        raise DeepSyncError(f"cannot read test labels {path}: {error}") from None
    if not {"image", "class", "usage"} <= set(frame.columns):
        raise DeepSyncError(f"{path} is not a test labels file (columns image,class,usage)")
    parts = frame["image"].str.extract(_TEST_NAME)
    if parts.isna().any().any():
        bad = frame["image"][parts[0].isna()].iloc[0]
        raise DeepSyncError(f"{path}: {bad!r} is not a PatITest_J_0 name")
    return pd.DataFrame(
        {
            "File": "new_" + parts[0] + "_" + parts[1] + ".mat",
            "patient": parts[0].astype(int),
            "label": pd.to_numeric(frame["class"], errors="coerce"),
            "usage": frame["usage"].str.strip(),
        }
    )


def score(scores: pd.Series, labels: pd.DataFrame) -> dict:
    """Pooled and per-patient AUC on each split whose labels are known.

    ``scores``: Class by File. Returns ``{split: {"auc", "files", "patients": {p: auc}}}``
    for Public and Private; a split whose labels are unknown (the real Private split)
    is None. A labelled file missing from ``scores`` is an error: a score over part of
    a split is not the leaderboard's.
    """
    out: dict[str, dict | None] = {}
    for split in SPLITS:
        rows = labels[labels["usage"] == split]
        if rows.empty or rows["label"].isna().all():
            out[split] = None
            continue
        values = scores.reindex(rows["File"]).to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            missing = rows["File"][np.isnan(values)].iloc[0]
            raise DeepSyncError(
                f"the submission has no score for {missing} ({split}): score a whole submission"
            )
        label = rows["label"].to_numpy()
        patients = {
            str(p): auc(label[rows["patient"] == p], values[rows["patient"] == p])
            for p in sorted(rows["patient"].unique())
        }
        out[split] = {"auc": auc(label, values), "files": len(rows), "patients": patients}
    return out


def matches(labels: pd.DataFrame, sample: list[str]) -> bool:
    """Whether ``labels`` label the files of ``sample`` (synthetic vs real test sets)."""
    return set(labels["File"]) == set(sample)


def describe(scores: dict) -> str:
    """One line per known split: pooled AUC, then per patient."""
    lines = []
    for split, result in scores.items():
        if result is None:
            lines.append(f"  {split:<8} unknown here (Kaggle scores it)")
            continue
        per = ", ".join(
            f"patient {p} {v:.3f}" if not math.isnan(v) else f"patient {p} -"
            for p, v in result["patients"].items()
        )
        lines.append(
            f"  {split:<8} {result['auc']:.5f} pooled over {result['files']} files ({per})"
        )
    return "\n".join(lines)
