"""The segment index: one table of every usable segment, whatever layout it came in.

Columns: ``segment`` (Kaggle name, the key of labels and submissions), ``patient``,
``split`` (train | test), ``label`` (0 interictal, 1 preictal; empty for test),
``hour`` (the fold-grouping key), ``sequence`` (1..6; empty where unknown), ``safe``,
``bytes``, ``path`` (absolute), ``layout`` (kaggle | ecosystem).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from deepsync.data.layout import hour_group, parse_name, sequence_of
from deepsync.durable import PARTIAL, read_csv, write_csv
from deepsync.errors import DeepSyncError

LABELS_FILE = "train_and_test_data_labels_safe.csv"
COLUMNS = [
    "segment",
    "patient",
    "split",
    "label",
    "hour",
    "sequence",
    "safe",
    "bytes",
    "path",
    "layout",
]
_MAT_MAGIC = b"MATLAB 5.0 MAT-file"


@dataclass
class Scan:
    """What indexing a folder found: the table and what was left out, and why."""

    segments: pd.DataFrame
    labels_source: str
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    problems: list[str] = field(default_factory=list)  # one line each
    unreadable: set[str] = field(default_factory=set)  # paths that are no segment file at all


def packaged_labels() -> dict[str, tuple[int, int]]:
    """The real competition's labels file, shipped with the kit: name -> (class, safe)."""
    text = resources.files("deepsync.data").joinpath("reference", LABELS_FILE).read_text()
    return _parse_labels(text.splitlines(), "the packaged labels file")


def read_labels(path: Path) -> dict[str, tuple[int, int]]:
    """A ``image,class,safe`` labels file: name -> (class, safe)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return _parse_labels(f, str(path))
    except (UnicodeDecodeError, csv.Error) as error:
        raise DeepSyncError(f"{path}: not a labels CSV file ({error}); restore it") from None


def _parse_labels(lines, where: str) -> dict[str, tuple[int, int]]:
    rows = csv.DictReader(lines)
    if rows.fieldnames is None or not {"image", "class", "safe"} <= set(rows.fieldnames):
        raise DeepSyncError(f"{where}: expected columns image,class,safe")
    try:
        return {r["image"]: (int(r["class"]), int(r["safe"])) for r in rows}
    except (TypeError, ValueError):
        raise DeepSyncError(f"{where}: class and safe must be 0 or 1 on every row") from None


def scan_folder(folder: Path, labels: dict[str, tuple[int, int]] | None = None) -> Scan:
    """Index every segment under ``folder`` (Kaggle layout or the re-release), read-only.

    Labels come from ``labels`` if given, else the folder's own labels file, else the
    packaged copy of the real one. Training segments take their class from the name
    and ``safe`` from the labels; old-test files count only if labelled (the 283 extra
    preictal files); files of the re-release were all safe by construction.
    """
    folder = _checked_folder(folder)
    source = "given"
    if labels is None:
        found = _find_labels_file(folder)
        labels, source = (
            (read_labels(found), str(found))
            if found
            else (packaged_labels(), "packaged copy of the real labels file")
        )
    rows, skipped, problems, unreadable = {}, {}, [], set()
    for path in _walk(folder):
        parsed = parse_name(path)
        if parsed is None:
            if path.suffix.lower() == ".mat":
                skipped["not a segment name"] = skipped.get("not a segment name", 0) + 1
            continue
        if parsed.kind == "old_test" and parsed.name not in labels:
            skipped["old test set, unlabelled"] = skipped.get("old test set, unlabelled", 0) + 1
            continue
        label, safe = _label(parsed, path, labels, source, problems)
        if parsed.name in rows:
            kept = rows[parsed.name]["path"]
            problems.append(f"{path}: same segment as {kept}; kept the first")
            continue
        size = path.stat().st_size
        wrong = _not_a_segment(path, size)
        if wrong:
            problems.append(f"{path}: {wrong}; copy or download it again")
            unreadable.add(str(path.resolve()))
        rows[parsed.name] = _row(parsed, path, label, safe, size)
    if not rows:
        raise DeepSyncError(
            f"no segment files under {folder}: expected train_I/I_J_K.mat and "
            "test_I_new/new_I_J.mat (Kaggle) or PatITrain_J_K / PatITest_J_0 (.mat or .csv)"
        )
    table = pd.DataFrame(list(rows.values()), columns=COLUMNS)
    return Scan(_typed(table), source, skipped, problems, unreadable)


def _checked_folder(folder: Path) -> Path:
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DeepSyncError(
            f"data folder {folder} is a file, not a folder; set DATA_DIR to the folder that "
            "holds train_1/, test_1_new/ ... (or the PatITrain_* files)"
        )
    if not folder.is_dir():
        raise DeepSyncError(f"data folder {folder} does not exist; check DATA_DIR")
    return folder


def _label(parsed, path: Path, labels: dict, source: str, problems: list[str]):
    """(class, safe) of a segment: a labelled old-test file's from the labels; a Kaggle
    training file's class from its name and ``safe`` from the labels (a disagreement or a
    file missing there is a problem, said); the re-release's were all safe."""
    if parsed.kind == "old_test":
        return labels[parsed.name][0], bool(labels[parsed.name][1])
    label, safe = parsed.label, True
    if parsed.kind == "train" and parsed.layout == "kaggle":
        known = labels.get(parsed.name)
        if known is None:
            problems.append(f"{path}: not in the labels file ({source}); taken as safe")
        else:
            safe = bool(known[1])
            if known[0] != label:
                problems.append(f"{path}: the labels file says class {known[0]}")
    return label, safe


def _row(parsed, path: Path, label, safe: bool, size: int) -> dict:
    return {
        "segment": parsed.name,
        "patient": parsed.patient,
        "split": "test" if parsed.kind == "test" else "train",
        "label": label,
        "hour": hour_group(parsed),
        "sequence": sequence_of(parsed.number) if parsed.kind == "train" else None,
        "safe": safe,
        "bytes": size,
        "path": str(path.resolve()),
        "layout": parsed.layout,
    }


def _find_labels_file(folder: Path) -> Path | None:
    for candidate in (folder / LABELS_FILE, *sorted(folder.glob(f"*/{LABELS_FILE}"))):
        if candidate.is_file():
            return candidate
    return None


def _walk(folder: Path):
    """Every file below ``folder`` in a stable order, following no symlinked folders."""
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and not name.endswith(PARTIAL):
                yield Path(top, name)


def _not_a_segment(path: Path, size: int) -> str | None:
    """Cheap check of the first bytes (a MAT v5 header, or a CSV of numbers): why not."""
    if size == 0:
        return "an empty file (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(128)
    text = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    if path.suffix.lower() == ".mat" and not head.startswith(_MAT_MAGIC):
        return "a text file, not a MAT file" if text else "not a MAT v5 file (no MAT header)"
    if path.suffix.lower() != ".mat" and not text:
        return "not a CSV of numbers (binary bytes)"
    return None


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    table = table.astype(
        {"patient": "int64", "label": "Int8", "sequence": "Int8", "safe": "bool", "bytes": "int64"}
    )
    order = table["split"].map({"train": 0, "test": 1})
    number = table["segment"].map(lambda name: parse_name(name).number)
    table = table.assign(_o=order, _n=number).sort_values(["_o", "patient", "label", "_n"])
    return table.drop(columns=["_o", "_n"]).reset_index(drop=True)


def save_index(table: pd.DataFrame, path: Path) -> None:
    """Write the index as CSV, atomically."""
    write_csv(path, table)


def load_index(path: Path) -> pd.DataFrame:
    """Read an index written by `save_index`, with its column types."""
    if not path.exists():
        raise DeepSyncError(f"no segment index at {path}; run `make data` first")
    table = read_csv(
        path, dtype={"segment": str, "split": str, "hour": str, "path": str, "layout": str}
    )
    if list(table.columns) != COLUMNS:
        raise DeepSyncError(f"{path} is not a segment index of this version; rerun `make data`")
    return _typed(table)
