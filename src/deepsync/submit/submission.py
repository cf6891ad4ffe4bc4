"""Submission files: read, validate against the sample submission, write.

A submission is ``File,Class``: exactly the sample submission's files, each once, with a
number in [0, 1]. `problems` lists everything wrong with a file, precisely (which files
are missing, extra or duplicated, which lines hold no number or one out of range), so
that nothing Kaggle would reject ever leaves this kit. Files are written to a temporary
name and renamed: a crash never leaves half a submission under the final name.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from importlib import resources
from pathlib import Path

import pandas as pd

from deepsync.durable import replacing
from deepsync.errors import DeepSyncError

HEADER = ["File", "Class"]
SAMPLE_FILE = "sample_submission.csv"
SHOWN = 3  # names or lines quoted per kind of problem
SHOWN_CHARACTERS = 60  # of a name or value quoted in a problem


def reference_sample() -> Path:
    """The competition's own sample submission (1908 final-test files), shipped with the kit."""
    return Path(str(resources.files("deepsync.data") / "reference" / SAMPLE_FILE))


def read_sample(path: Path) -> list[str]:
    """The sample submission's file names, in its order."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        why = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else error
        raise DeepSyncError(f"cannot read the sample submission {path} ({why})") from None
    if not rows or [c.strip() for c in rows[0]] != HEADER or len(rows) < 2:
        raise DeepSyncError(f"{path} is not a sample submission (File,Class and one row a file)")
    return [row[0].strip() for row in rows[1:] if row]


def problems(path: Path, sample: list[str]) -> list[str]:
    """Everything wrong with the submission at ``path`` against ``sample``; [] if valid."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # Excel's BOM is fine
            reader, rows, end = csv.reader(handle), [], 0
            for row in reader:  # (first line, last line, fields): a quoted field may span lines
                rows.append((end + 1, reader.line_num, row))
                end = reader.line_num
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        return [f"cannot be read as CSV ({error})"]
    if not rows:
        return ["is empty: the first line must be File,Class"]
    found = []
    header = [c.strip() for c in rows[0][2]]
    if header != HEADER:
        found.append(f"header is {','.join(header)[:SHOWN_CHARACTERS]!r}, not File,Class")
    names, bad_shape, spanning, not_number, not_finite, out_of_range = [], [], [], [], [], []
    for line, last, row in rows[1:]:
        if not row or all(not c.strip() for c in row):
            continue  # blank lines: pandas and Kaggle skip them
        if last > line:
            spanning.append(f'line {line} opens a quote (") that runs to line {last}')
            continue  # its files are swallowed by the quote: they count as missing
        if len(row) != 2:
            bad_shape.append(f"line {line} has {len(row)} fields")
            names.append(row[0].strip())  # its file is there, malformed: not also "missing"
            continue
        name, text = row[0].strip(), row[1].strip()
        names.append(name)
        try:
            value = float(text)
        except ValueError:
            not_number.append(
                f"line {line} ({shown(name)}): {text[:SHOWN_CHARACTERS]!r} is not a number"
            )
            continue
        if not math.isfinite(value):
            not_finite.append(f"line {line} ({shown(name)}): {text}")
        elif not 0 <= value <= 1:
            out_of_range.append(f"line {line} ({shown(name)}): {text}")
    counts = Counter(names)
    wanted = set(sample)
    duplicated = sorted(shown(n) for n, k in counts.items() if k > 1)
    missing = [shown(n) for n in sample if n not in counts]
    extra = [shown(n) for n in counts if n not in wanted]
    for label, items in (
        ("quoted fields that run over several lines", spanning),
        ("rows of the wrong shape", bad_shape),
        ("missing files", missing),
        ("files not in the sample submission", extra),
        ("duplicated files", duplicated),
        ("values that are not numbers", not_number),
        ("NaN or infinite values", not_finite),
        ("values outside [0, 1]", out_of_range),
    ):
        if items:
            more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
            found.append(f"{len(items)} {label}: {', '.join(items[:SHOWN])}{more}")
    return found


def shown(text: str) -> str:
    """A name or value as a problem quotes it: as it is if printable and short, else quoted
    with control characters escaped (a NUL as \\x00) and cut after `SHOWN_CHARACTERS`."""
    if text.isprintable() and len(text) <= SHOWN_CHARACTERS:
        return text
    escaped = repr(text)
    if len(escaped) <= SHOWN_CHARACTERS:
        return escaped
    return f"{escaped[:SHOWN_CHARACTERS]}... ({len(text)} characters)"


def check(path: Path, sample: list[str]) -> None:
    """Raise a one-line `DeepSyncError` listing every problem of the submission at ``path``."""
    found = problems(path, sample)
    if found:
        raise DeepSyncError(f"{path} is not a valid submission: {'; '.join(found)}")


def read(path: Path, sample: list[str]) -> pd.Series:
    """A valid submission's Class by File, in the sample's order."""
    check(path, sample)
    frame = pd.read_csv(path, encoding="utf-8-sig", skip_blank_lines=True)
    frame.columns = [c.strip() for c in frame.columns]
    scores = frame.assign(File=frame["File"].astype(str).str.strip()).set_index("File")["Class"]
    return scores.astype(float).reindex(sample)


def write(path: Path, scores: pd.Series, sample: list[str]) -> Path:
    """Write ``scores`` (Class by File) as a submission in the sample's order; validated.

    The file appears under ``path`` only once it is complete and valid.
    """
    ordered = scores.reindex(sample)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as partial:
        pd.DataFrame({"File": sample, "Class": ordered.to_numpy()}).to_csv(
            partial, index=False, float_format="%.8f"
        )
        found = problems(partial, sample)
        if found:
            raise DeepSyncError(f"refusing to write {path}: {'; '.join(found)}")
    return path
