"""`deepsync leaderboard`: how local CV tracked the public and private scores, per submission.

One row per submission file and settings (``file``, ``config_hash``) in the ledger: its
pooled OOF AUC, its local Public (and, on synthetic data, Private) score, what Kaggle
returned, and the gaps: how far the leaderboard fell below (or rose above) local CV.
With ``--kaggle`` the scores of submitted files are read back through the kaggle client
first and appended to the ledger as ``kaggle`` events.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from deepsync.durable import write_csv
from deepsync.submit import kaggle_api, ledger

TABLE_FILE = "leaderboard.csv"
COLUMNS = [
    "file",
    "model",
    "calibration",
    "oof_auc",
    "local_public",
    "local_private",
    "kaggle_public",
    "kaggle_private",
    "public_minus_oof",
    "private_minus_oof",
    "kaggle_status",
    "kaggle_ref",
    "time",
    "config_hash",
]


def refresh_from_kaggle(folder: Path, competition: str) -> int:
    """Append a ``kaggle`` event for each submitted file whose Kaggle state changed."""
    events = ledger.read(folder)
    sent = events[events["event"].isin(["submitted", "kaggle"]) & (events["kaggle_ref"] != "")]
    if sent.empty:
        return 0
    latest = sent.groupby("kaggle_ref").last()
    by_ref = {s.ref: s for s in kaggle_api.submissions(competition)}
    added = 0
    for ref, known in latest.iterrows():
        remote = by_ref.get(ref)
        if remote is None:
            continue
        state = (remote.status, remote.public_score, remote.private_score)
        if state == (
            known["kaggle_status"],
            _none(known["kaggle_public"]),
            _none(known["kaggle_private"]),
        ):
            continue
        ledger.append(
            folder,
            "kaggle",
            file=known["file"],
            run=known["run"],
            model=known["model"],
            calibration=known["calibration"],
            config_hash=known["config_hash"],
            oof_auc=known["oof_auc"],
            kaggle_ref=ref,
            kaggle_status=remote.status,
            kaggle_public=remote.public_score,
            kaggle_private=remote.private_score,
            message=remote.error,
        )
        added += 1
    return added


def table(folder: Path) -> pd.DataFrame:
    """The leaderboard: best known private score first (then public, then OOF)."""
    events = ledger.read(folder)
    written = events[events["event"] == "written"]
    if written.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for (file, digest), group in written.groupby(["file", "config_hash"], sort=False):
        local = group.iloc[-1]
        kaggle = events[
            (events["file"] == file)
            & (events["config_hash"] == digest)
            & events["event"].isin(["submitted", "refused", "kaggle"])
        ]
        row = {c: local.get(c, "") for c in COLUMNS if c in local}
        row |= {"kaggle_public": math.nan, "kaggle_private": math.nan, "kaggle_status": ""}
        row["kaggle_ref"] = ""
        if not kaggle.empty:
            last = kaggle.iloc[-1]
            row["kaggle_status"] = (
                "REFUSED" if last["event"] == "refused" else last["kaggle_status"]
            )
            row["kaggle_ref"] = last["kaggle_ref"]
            row["kaggle_public"], row["kaggle_private"] = (
                last["kaggle_public"],
                last["kaggle_private"],
            )
        public = _first_known(row["kaggle_public"], row["local_public"])
        private = _first_known(row["kaggle_private"], row["local_private"])
        row["public_minus_oof"] = public - row["oof_auc"]
        row["private_minus_oof"] = private - row["oof_auc"]
        rows.append(row)
    rows.sort(
        key=lambda r: (
            _sortable(_first_known(r["kaggle_private"], r["local_private"])),
            _sortable(_first_known(r["kaggle_public"], r["local_public"])),
            _sortable(r["oof_auc"]),
        ),
        reverse=True,
    )
    return pd.DataFrame(rows, columns=COLUMNS)


def save(frame: pd.DataFrame, folder: Path) -> Path:
    path = Path(folder) / TABLE_FILE
    write_csv(path, frame, float_format="%.5f")
    return path


def render(frame: pd.DataFrame) -> str:
    """The table for a terminal: one line per submission, '-' where a score is unknown."""
    if frame.empty:
        return "leaderboard: no submissions yet (run `make submit`)"
    shown = [
        ("file", "file", 24, str),
        ("model", "model", 8, str),
        ("oof_auc", "OOF", 7, float),
        ("local_public", "public", 7, float),
        ("local_private", "private", 7, float),
        ("kaggle_public", "K pub", 7, float),
        ("kaggle_private", "K priv", 7, float),
        ("public_minus_oof", "pub-OOF", 8, float),
        ("private_minus_oof", "priv-OOF", 8, float),
        ("kaggle_status", "Kaggle", 9, str),
    ]
    head = " ".join(
        f"{title:<{w}}" if kind is str else f"{title:>{w}}" for _, title, w, kind in shown
    )
    lines = [head]
    for _, row in frame.iterrows():
        cells = []
        for column, _, width, kind in shown:
            value = row[column]
            if kind is str:
                text = str(value) if isinstance(value, str) and value else "-"
                cells.append(f"{text[:width]:<{width}}")
            else:
                number = float(value) if value not in ("", None) else math.nan
                text = (
                    "-"
                    if math.isnan(number)
                    else f"{number:+.3f}"
                    if "minus" in column
                    else f"{number:.4f}"
                )
                cells.append(f"{text:>{width}}")
        lines.append(" ".join(cells))
    lines.append(
        "  public/private: local scores from the test labels; K pub/K priv: what Kaggle "
        "returned; pub-OOF, priv-OOF: leaderboard minus local CV (Kaggle's where known)"
    )
    return "\n".join(lines)


def _first_known(*values) -> float:
    for value in values:
        if value not in ("", None) and not (isinstance(value, float) and math.isnan(value)):
            return float(value)
    return math.nan


def _sortable(value) -> float:
    value = _first_known(value)
    return -math.inf if math.isnan(value) else value


def _none(value):
    return (
        None if value in ("", None) or (isinstance(value, float) and math.isnan(value)) else value
    )
