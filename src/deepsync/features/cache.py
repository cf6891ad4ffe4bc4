"""The feature cache: one memory-mappable array per product, rows in segment-index order.

Layout of ``cache/features-<hash of the parameters>/``:
- ``params.json``: the parameters the hash covers (a change never serves stale features);
- ``stacks.npy``: float16 (segments, channels, bands, frames), the CNN's image stacks;
- ``table.npy``: float32 (segments, windows, channels, 12), band powers per window;
- ``windows.npy``: bool (segments, windows), table windows kept (dropout below the limit);
- ``frames.npy``: bool (segments, frames), image frames with clean signal (the rest were
  filled: interpolated or the mean);
- ``family_<name>.npy``: float32 (segments, windows, width) for each feature family beside
  the band powers (``features.families``; `deepsync.features.families`), on the table's
  windows, or on the family's own (the winners', NaN or -inf where dropout gave them);
  ``params.json`` says which families the cache holds;
- ``segments.csv``: the segment index plus row, status, dropout, all_zero, frames_valid,
  windows_valid; written when a run ends;
- ``journal.jsonl``: one line per finished segment with the CRC-32 of its rows, appended
  only after its rows are written in full and synced, so a killed run (or a full disk)
  resumes where it stopped; a rerun checks each journalled row against its CRC and
  computes again any that does not match: a half-written row is never trusted;
- ``.deepsync.lock``: held by the run writing the cache (and by runs reading it), so that
  two runs never write one cache at once.

Only the main process writes, with ``pwrite`` at each row's offset: its memory stays
small however big the arrays grow.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepsync.config import FeaturesConfig, parse_families
from deepsync.durable import checksum, ends_line, naming, read_csv, replacing, write_all
from deepsync.errors import DeepSyncError
from deepsync.features.families import FAMILIES

KERNEL_VERSION = 6  # part of the hash: bump when the kernel or the cache layout changes
TABLE_COLUMNS = 12  # log power in 6 bands, then log share of the total
READ_ROWS = 256  # segments of a family read at a time by `FeatureCache.window_features`
ARRAYS = ("stacks", "table", "windows", "frames")  # every cache; family_<name> beside them
COMMIT_ROWS = 16  # rows synced and journalled together: a kill loses at most these...
COMMIT_SECONDS = 1.0  # ...or this much work


def cache_folder(params: FeaturesConfig) -> Path:
    """``cache_root/features-<hash>``: the hash covers every parameter that shapes output."""
    return Path(params.cache_root) / f"features-{params_hash(params)}"


def params_hash(params: FeaturesConfig) -> str:
    described = {k: v for k, v in asdict(params).items() if k != "cache_root"}
    described["families"] = list(params.family_names)  # "all" resolved
    described["kernel_version"] = KERNEL_VERSION
    text = json.dumps(described, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Shapes:
    """Array shapes of one cache."""

    segments: int
    channels: int
    bands: int
    frames: int
    windows: int
    families: tuple[tuple[str, int, int], ...] = ()  # (name, windows, width) of each family

    @property
    def arrays(self) -> tuple[str, ...]:
        return (*ARRAYS, *(f"family_{name}" for name, _, _ in self.families))

    def of(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        n, c = self.segments, self.channels
        if name.startswith("family_"):
            family = {f: (w, width) for f, w, width in self.families}[name.removeprefix("family_")]
            return (n, *family), np.dtype(np.float32)
        return {
            "stacks": ((n, c, self.bands, self.frames), np.dtype(np.float16)),
            "table": ((n, self.windows, c, TABLE_COLUMNS), np.dtype(np.float32)),
            "windows": ((n, self.windows), np.dtype(np.bool_)),
            "frames": ((n, self.frames), np.dtype(np.bool_)),
        }[name]


class RowWriter:
    """Writes rows into the cache's .npy files in place (``pwrite``), and keeps the journal.

    Rows are journalled in groups (`COMMIT_ROWS`, `COMMIT_SECONDS`): the arrays are synced
    first, then the group's journal lines are appended and synced. A row in the journal
    is on disk in full; `holds` checks that it still is.
    """

    def __init__(self, folder: Path, shapes: Shapes):
        self.folder, self.shapes = folder, shapes
        self.files, self.offsets = {}, {}
        self.journal_path = folder / "journal.jsonl"
        self.pending: list[str] = []  # journal lines of rows written but not yet synced
        self.committed = time.monotonic()
        self.failed = False  # a commit failed: what it was syncing is not known to be on disk
        try:
            for name in shapes.arrays:
                self._open(name)
            self.journal = os.open(self.journal_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except BaseException:
            for fd in self.files.values():
                os.close(fd)
            raise

    def _open(self, name: str) -> None:
        """Open (or make: a sparse file, every row a hole) one array; note its rows' place."""
        path = self.folder / f"{name}.npy"
        shape, dtype = self.shapes.of(name)
        if not _has_shape(path, shape, dtype):
            with replacing(path) as partial:
                np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape).flush()
        fd = os.open(path, os.O_RDWR)
        row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        self.files[name] = fd
        self.offsets[name] = (os.fstat(fd).st_size - shape[0] * row_bytes, row_bytes)

    def write(self, row: int, arrays: dict[str, np.ndarray], record: dict) -> None:
        """Write one segment's rows in full; journal them with the next commit."""
        if set(arrays) != set(self.shapes.arrays):
            raise DeepSyncError(f"internal: rows of {sorted(arrays)}, not {self.shapes.arrays}")
        rows = [self._bytes(name, arrays[name]) for name in self.shapes.arrays]
        for name, data in zip(self.shapes.arrays, rows, strict=True):
            header, row_bytes = self.offsets[name]
            with naming(self.folder / f"{name}.npy"):
                write_all(self.files[name], data, header + row * row_bytes)
        self.pending.append(json.dumps({"row": row, **record, "crc": checksum(*rows)}))
        if len(self.pending) >= COMMIT_ROWS or time.monotonic() - self.committed > COMMIT_SECONDS:
            self.commit()

    def commit(self) -> None:
        """Sync the rows written so far, then append their journal lines and sync those.

        After a failed commit none is tried again: a second sync can succeed where the
        first reported lost data (the kernel reports a write-back error once).
        """
        self.committed = time.monotonic()
        if not self.pending or self.failed:
            return
        self.failed = True
        for name, fd in self.files.items():
            with naming(self.folder / f"{name}.npy"):
                os.fdatasync(fd)
        with naming(self.journal_path):
            ends_line(self.journal)  # a line a crash cut short stays a line of its own
            write_all(self.journal, "".join(f"{line}\n" for line in self.pending).encode())
            os.fdatasync(self.journal)
        self.pending.clear()
        self.failed = False

    def holds(self, row: int, record: dict) -> bool:
        """Whether the row on disk is the one ``record`` journalled (its CRC matches)."""
        if "crc" not in record:  # journalled before rows had checksums: unverifiable
            return False
        rows = []
        for name in self.shapes.arrays:
            header, row_bytes = self.offsets[name]
            with naming(self.folder / f"{name}.npy"):
                rows.append(os.pread(self.files[name], row_bytes, header + row * row_bytes))
        return checksum(*rows) == record["crc"]

    def close(self) -> None:
        """Commit what is written, and close the files (they are closed even if that fails)."""
        try:
            self.commit()
        finally:
            for fd in (*self.files.values(), self.journal):
                os.close(fd)

    def _bytes(self, name: str, values: np.ndarray) -> np.ndarray:
        data = np.ascontiguousarray(values, dtype=self.shapes.of(name)[1])
        if data.nbytes != self.offsets[name][1]:
            raise DeepSyncError(
                f"internal: {name} row of {data.nbytes} bytes, not {self.offsets[name][1]}"
            )
        return data


def _has_shape(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    if not path.exists():
        return False
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError):  # EOFError: an empty or cut file
        return False
    return array.shape == shape and array.dtype == dtype


def held_families(folder: Path) -> tuple[str, ...]:
    """The feature families a cache holds, from its params.json (power: caches before 5)."""
    try:
        params = json.loads((Path(folder) / "params.json").read_text())
    except (OSError, ValueError):  # ValueError: not JSON, not UTF-8
        return ("power",)
    return parse_families(params.get("families", "power"))


def read_journal(folder: Path) -> dict[int, dict]:
    """Journalled rows: row -> record. A torn line (a kill mid-write) is ignored."""
    path = folder / "journal.jsonl"
    done = {}
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line)
                done[int(record["row"])] = record
            except (ValueError, KeyError, TypeError):  # torn, or not a record of ours
                continue
    return done


@dataclass
class FeatureCache:
    """A finished cache, memory-mapped: what the training loader reads."""

    folder: Path
    segments: pd.DataFrame  # one row per segment, ``row`` indexes the arrays
    stacks: np.ndarray  # float16 (segments, channels, bands, frames), memory-mapped
    table: np.ndarray  # float32 (segments, windows, channels, 12), memory-mapped
    windows: np.ndarray  # bool (segments, windows)
    frames: np.ndarray  # bool (segments, frames): False where the stack was filled in
    families: dict[str, np.ndarray]  # name -> float32 (segments, windows, width), memory-mapped

    @classmethod
    def open(cls, folder: Path) -> FeatureCache:
        folder = Path(folder)
        if not (folder / "segments.csv").exists():
            raise DeepSyncError(f"no finished feature cache in {folder}; run `make features`")
        segments = read_csv(folder / "segments.csv", dtype={"segment": str, "hour": str})
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        held = held_families(folder)
        families = {
            name: np.load(folder / f"family_{name}.npy", mmap_mode="r")
            for name in held
            if FAMILIES[name].compute is not None
        }
        table = arrays["table"]  # every cache's: the band powers, seen as two families
        families["power"] = table.reshape(*table.shape[:2], -1)
        families["share"] = table[..., TABLE_COLUMNS // 2 :]  # (N, W, C, 6): reshaped as read
        return cls(folder, segments, **arrays, families=families)

    def check_families(self, names: tuple[str, ...]) -> None:
        """A one-line error unless the cache holds every named family."""
        missing = [n for n in names if n not in self.families]
        if missing:
            raise DeepSyncError(
                f"the feature cache {self.folder} holds no {', '.join(missing)} features "
                f"(it holds {', '.join(self.families)}); add them to features.families "
                "(all by default) and run `make features`"
            )

    def window_features(
        self, rows: np.ndarray, names: tuple[str, ...], owner: np.ndarray, window: np.ndarray
    ) -> np.ndarray:
        """float32 (len(owner), width): the named families side by side (one kind of window:
        `deepsync.config.same_windows`) at window ``window[i]`` of segment
        ``rows[owner[i]]`` (``owner`` ascending, as `numpy.nonzero` gives it). Read a family
        and `READ_ROWS` segments at a time into the one array returned: the whole families
        of ``rows`` are never in memory."""
        self.check_families(names)
        widths = [int(np.prod(self.families[n].shape[2:])) for n in names]
        out = np.empty((len(owner), sum(widths)), np.float32)
        column = 0
        for name, width in zip(names, widths, strict=True):
            family = self.families[name]
            for first in range(0, len(rows), READ_ROWS):
                lo, hi = np.searchsorted(owner, [first, first + READ_ROWS])
                part = np.asarray(family[rows[first : first + READ_ROWS]])
                part = part.reshape(*part.shape[:2], width)
                out[lo:hi, column : column + width] = part[owner[lo:hi] - first, window[lo:hi]]
            column += width
        return out

    def kept_windows(self, rows: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        """bool (len(rows), windows): the windows the named families hold for ``rows``: the
        table's kept ones, or every window of the winners' own (their models sort out the
        values that are not finite)."""
        if FAMILIES[names[0]].seconds is None:
            return np.asarray(self.windows[rows])
        return np.ones((len(rows), self.families[names[0]].shape[1]), bool)

    def columns(self, names: tuple[str, ...]) -> list[str]:
        """Column names of `window_features` for ``names``."""
        channels = self.stacks.shape[1]
        return [f"{name}.{column}" for name in names for column in FAMILIES[name].columns(channels)]

    def band_power_table(self) -> pd.DataFrame:
        """The winners' features: one row per kept window of every cached segment.

        Columns: segment, patient, split, label, hour, window, then per electrode e and band
        b ``e{e}_b{b}_log`` (log power) and ``e{e}_b{b}_rel`` (log share of the total).
        """
        ok = self.segments[self.segments["status"] == "ok"]
        rows = []
        for row in ok.itertuples():
            for w in np.flatnonzero(self.windows[row.row]):
                rows.append((row.row, w))
        if not rows:
            return pd.DataFrame()
        index = np.array(rows)
        values = np.asarray(self.table[index[:, 0], index[:, 1]])  # (rows, C, 12)
        channels = values.shape[1]
        names = [
            f"e{e + 1}_b{b + 1}_{kind}"
            for e in range(channels)
            for kind in ("log", "rel")
            for b in range(TABLE_COLUMNS // 2)
        ]
        flat = values.reshape(len(index), channels, 2, TABLE_COLUMNS // 2).reshape(len(index), -1)
        meta = (
            self.segments.set_index("row")
            .loc[index[:, 0], ["segment", "patient", "split", "label", "hour"]]
            .reset_index(drop=True)
        )
        return pd.concat(
            [meta.assign(window=index[:, 1]), pd.DataFrame(flat, columns=names)], axis=1
        )
