"""Which sample submission and which test labels a submission is checked and scored with.

Two of each can apply: the data set's own (``make data`` wrote where: the synthetic set
carries its sample submission and its hidden test labels), and the real competition's,
shipped with the kit. A submission file goes with the one that names its files.
"""

from __future__ import annotations

import csv
from pathlib import Path

from deepsync.config import Config
from deepsync.data.stage import DATASET_FILE
from deepsync.durable import read_json
from deepsync.errors import DeepSyncError
from deepsync.submit import scoring, submission


def pick_sample(config: Config, csv_path: Path | None = None) -> Path:
    """The data's own sample submission, else Kaggle's; for a CSV, the one naming its files."""
    return _pick(
        _own(config, "sample"),
        submission.reference_sample(),
        csv_path,
        lambda p: set(submission.read_sample(p)),
    )


def pick_labels(config: Config, csv_path: Path | None = None) -> Path:
    """The data's own test labels, else the organisers'; for a CSV, the ones naming its files."""
    return _pick(
        _own(config, "labels"),
        scoring.reference_labels(),
        csv_path,
        lambda p: set(scoring.load_labels(p)["File"]),
    )


def _pick(own: Path | None, reference: Path, csv_path: Path | None, names_in) -> Path:
    """``own`` if there is one, else ``reference``; for a CSV, whichever names more of its files."""
    candidates = [p for p in (own, reference) if p is not None]
    if csv_path is None:
        return candidates[0]
    names = _names(csv_path)
    return max(candidates, key=lambda p: len(names & names_in(p)))


def _own(config: Config, what: str) -> Path | None:
    path = Path(config.data.root) / DATASET_FILE
    if not path.exists():
        return None
    described = read_json(path)
    if what == "sample":
        own = Path(described["folder"]) / submission.SAMPLE_FILE
    else:
        own = Path(described["test_labels"]) if described.get("test_labels") else None
    return own if own is not None and own.exists() else None


def _names(csv_path: Path) -> set[str]:
    """The first column's values of a CSV, however malformed the rest is."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            return {row[0].strip() for row in csv.reader(handle) if row}
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DeepSyncError(f"cannot read {csv_path}: {error}") from None
