"""``submissions/ledger.csv``: every submission written, sent, refused and scored, appended.

The ledger is an append-only list of events; nothing in it is ever rewritten. Each event
is one CSV line written with a single ``write`` on a file opened for appending, then
synced, and ends with a checksum of its fields. A crash in the middle of a line leaves a
line without its end: the next append first ends it, and reading skips any line whose
checksum does not match (with a warning), so every complete event survives.

Events: ``written`` (a submission file with its local scores), ``submitted`` (sent to
Kaggle: its reference), ``refused`` (Kaggle, the client or the credentials said no: why),
``kaggle`` (the scores Kaggle returned for a submission, read back later).
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
import warnings
import zlib
from pathlib import Path

import pandas as pd

from deepsync.durable import ends_line, naming, write_all

LEDGER_FILE = "ledger.csv"
COLUMNS = [
    "time",
    "event",
    "file",
    "run",
    "model",
    "calibration",
    "config_hash",
    "oof_auc",
    "local_public",
    "local_private",
    "kaggle_ref",
    "kaggle_status",
    "kaggle_public",
    "kaggle_private",
    "message",
    "crc",  # CRC-32 of the fields before it: a line cut short by a crash never passes
]
EVENTS = ("written", "submitted", "refused", "kaggle")
HEADER = ",".join(COLUMNS)


def append(folder: Path, event: str, **values) -> dict:
    """Append one event (``values``: any of COLUMNS) to ``folder/ledger.csv``; return it."""
    if event not in EVENTS:
        raise ValueError(f"unknown ledger event {event!r}")
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown ledger columns {sorted(unknown)}")
    row = {c: "" for c in COLUMNS} | {k: _text(v) for k, v in values.items()}
    row |= {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event}
    path = Path(folder) / LEDGER_FILE
    row["crc"] = _crc([row[c] for c in COLUMNS[:-1]])
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow([row[c] for c in COLUMNS])
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path):
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            new = os.fstat(fd).st_size == 0  # a new ledger (or one a crash left empty)
            ends_line(fd)  # a crash cut the last event short: end it, skip it on reading
            write_all(fd, ((HEADER + "\n" if new else "") + line.getvalue()).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    return row


def read(folder: Path) -> pd.DataFrame:
    """Every complete event, oldest first (an empty frame with COLUMNS if none).

    Each line is read on its own (no event holds a line break): a line a crash cut short,
    even inside quotes, costs that line only.
    """
    path = Path(folder) / LEDGER_FILE
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    rows, skipped = [], 0
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:  # bad bytes: skipped
        lines = handle.read().split("\n")
    for text in lines:
        fields = next(csv.reader([text]), [])
        if not fields or text == HEADER:
            continue
        if len(fields) != len(COLUMNS) or fields[-1] != _crc(fields[:-1]):
            skipped += 1
            continue
        rows.append(dict(zip(COLUMNS, fields, strict=True)))
    if skipped:
        warnings.warn(
            f"{path}: skipped {skipped} incomplete line(s) (an interrupted write)", stacklevel=2
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("oof_auc", "local_public", "local_private", "kaggle_public", "kaggle_private"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _crc(fields: list[str]) -> str:
    return f"{zlib.crc32(chr(31).join(fields).encode()):08x}"


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)  # exact: a score read back equals the one written
    return " ".join(str(value).split())  # one line, always
