"""Read and write one 10-minute segment: the kit's single way in and out of a file.

Reading returns float32 ``(samples, channels)`` plus metadata, from either layout
(Kaggle's ``dataStruct`` .mat, the re-release's top-level ``data`` .mat, or CSV),
compressed or not. A .mat goes first to `fastmat` (ISA-L inflate, no copies); a file it
does not recognise goes to `scipy.io.loadmat`, with the same result. Anything unreadable
raises `DeepSyncError` naming the file; the known ``1_45_1.mat``-style integrity failure
is read anyway, with a warning.
"""

from __future__ import annotations

import io
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from deepsync.data import fastmat
from deepsync.durable import write_bytes
from deepsync.errors import DeepSyncError

CHANNELS = 16
SAMPLING_RATE = 400  # Hz
MAT_HEADER_BYTES = 128  # MAT v5: text, subsystem offset, version, endian mark
MI_COMPRESSED = 15  # MAT v5 element type of a zlib-compressed element
# The 2014 American Epilepsy Society prediction challenge's one struct per file
AES_2014_VARIABLE = re.compile(r"(interictal|preictal|test)_segment_\d+")
FINITE_CHECK_BLOCK = 1 << 16  # values checked per step: a 256 KiB temporary, not a full copy


class SegmentIntegrityWarning(UserWarning):
    """A file whose compressed data fails its integrity check but still decodes."""


@dataclass(frozen=True)
class Segment:
    """One segment's signal and what the file says about it.

    ``data`` is read-only and, from a .mat, a Fortran-ordered view of channel-major memory
    (MATLAB's own layout, no copy): use `channels_major` for C-contiguous (channels, samples).
    """

    data: np.ndarray  # float32 (samples, channels), microvolts; read-only
    sampling_rate: float  # Hz
    sequence: int | None  # 1..6 within the hour; training files only
    channel_indices: tuple[int, ...]

    @property
    def channels_major(self) -> np.ndarray:
        """The signal as float32 (channels, samples), C-contiguous: free for Fortran data."""
        return np.ascontiguousarray(self.data.T)

    @property
    def dropout_fraction(self) -> float:
        """Share of samples where every electrode reads exactly zero (the implant stopped)."""
        if self.data.size == 0:
            return 1.0
        return float(np.mean(np.all(self.data == 0, axis=1)))


def read_segment(path: str | Path) -> Segment:
    """Read a segment file of either layout, validated; `DeepSyncError` names a bad file."""
    path = Path(path)
    if not path.is_file():
        raise DeepSyncError(f"{path}: file not found; rerun `make data`")
    if path.suffix.lower() == ".csv":
        return _validated(path, _read_csv(path), SAMPLING_RATE, None, None)
    try:
        mat = fastmat.read_mat(path)
    except (fastmat.NotRecognised, OSError):  # scipy reads it, or says what is wrong
        return _read_with_scipy(path)
    return _validated(
        path,
        mat.signal.T,  # (samples, channels), as stored
        mat.sampling_rate or SAMPLING_RATE,
        None if mat.sequence is None else int(mat.sequence),
        mat.channel_indices,
    )


def _read_with_scipy(path: Path) -> Segment:
    """The general path: `scipy.io.loadmat`, for files the fast reader does not recognise."""
    variables = _loadmat(path)
    if "dataStruct" in variables:
        struct = variables["dataStruct"]
        names = struct.dtype.names or ()
        if struct.size != 1 or "data" not in names:
            raise DeepSyncError(f"{path}: dataStruct has no 'data' field; is this a segment file?")
        fields = struct.reshape(-1)[0]
        rate = _scalar(fields, "iEEGsamplingRate", names)
        sequence = _scalar(fields, "sequence", names)
        channels = fields["channelIndices"] if "channelIndices" in names else None
        return _validated(
            path,
            fields["data"],
            rate or SAMPLING_RATE,
            None if sequence is None else int(sequence),
            channels,
        )
    other = other_competition(
        {k: (np.shape(v), v.dtype.names is not None) for k, v in variables.items() if k[0] != "_"}
    )
    if other:
        raise DeepSyncError(f"{path}: {other}")
    if "data" in variables:
        return _validated(path, variables["data"], SAMPLING_RATE, None, None)
    found = ", ".join(k for k in variables if not k.startswith("__")) or "none"
    raise DeepSyncError(
        f"{path}: no 'dataStruct' or 'data' variable (found: {found}); is this a segment file?"
    )


def other_competition(variables: dict[str, tuple[tuple[int, ...], bool]]) -> str | None:
    """What a file of another Kaggle EEG competition is, from its variables, or None.

    ``variables``: name -> (shape, is a struct). The 2014 competitions' files are .mat too,
    and a copy renamed like a Melbourne file would otherwise read as a broken segment.
    """
    names = set(variables)
    if {"data", "freq", "channels"} <= names:
        rows, cols = (tuple(variables["data"][0]) + (0, 0))[:2]
        return (
            "this looks like a file of another competition (2014 layout: data "
            f"{rows} x {cols}, freq, channels: the UPenn and Mayo Clinic seizure detection "
            "challenge's 1-second clips), not a Melbourne segment; leave it out of DATA_DIR"
        )
    segments = sorted(n for n in names if AES_2014_VARIABLE.fullmatch(n))
    if segments and variables[segments[0]][1]:
        return (
            f"this looks like a file of another competition (2014 layout: struct {segments[0]} "
            "with data, sampling_frequency, channels: the American Epilepsy Society "
            "seizure prediction challenge), not a Melbourne segment; leave it out of DATA_DIR"
        )
    return None


def describe_other(path: Path) -> str | None:
    """`other_competition` of a .mat file, from its variable headers (no data read)."""
    try:
        listed = scipy.io.whosmat(path)
    except Exception:  # scipy raises many types on garbage input: then it is not one
        return None
    return other_competition({name: (shape, kind == "struct") for name, shape, kind in listed})


def write_segment(
    path: str | Path,
    data: np.ndarray,
    *,
    sequence: int | None,
    sampling_rate: int = SAMPLING_RATE,
    compress: bool = True,
    level: int = 3,
) -> None:
    """Write a Kaggle-layout .mat: MAT v5, ``dataStruct`` with the real files' fields.

    ``sequence`` is written for training files and left out for test files, as in the
    competition data. ``compress`` gives the compressed element MATLAB ``-v7`` writes, at
    zlib ``level`` (3 is 4x faster to write than scipy's 6, for 5% more bytes).
    The file appears under its name only once complete.
    """
    path = Path(path)
    data = np.asarray(data, dtype=np.float32)
    struct = {
        "data": data,
        "iEEGsamplingRate": np.array([[float(sampling_rate)]]),
        "nSamplesSegment": np.array([[float(data.shape[0])]]),
        "channelIndices": np.arange(1, data.shape[1] + 1, dtype=np.float64)[None, :],
    }
    if sequence is not None:
        struct["sequence"] = np.array([[float(sequence)]])
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"dataStruct": struct})
    content = buffer.getvalue()
    if compress:  # one variable: header, then its element wrapped as miCOMPRESSED
        packed = zlib.compress(content[MAT_HEADER_BYTES:], level)
        tag = np.array(
            [MI_COMPRESSED, len(packed)], dtype="=u4"
        ).tobytes()  # scipy writes native order
        content = content[:MAT_HEADER_BYTES] + tag + packed
    write_bytes(path, content)


def _loadmat(path: Path) -> dict:
    try:
        return scipy.io.loadmat(path)
    except (ValueError, zlib.error) as error:
        if "compress" not in str(error):
            raise DeepSyncError(f"{path}: not a readable MAT file ({error})") from None
        first = error
    except Exception as error:  # scipy raises many types on garbage input
        raise DeepSyncError(f"{path}: not a readable MAT file ({error})") from None
    # Compressed data that fails its integrity check (train_1/1_45_1.mat): try without it.
    try:
        variables = scipy.io.loadmat(path, verify_compressed_data_integrity=False)
    except Exception as error:
        raise DeepSyncError(f"{path}: corrupt compressed data ({error})") from None
    warnings.warn(
        f"{path}: compressed data fails its integrity check ({first}); read anyway",
        SegmentIntegrityWarning,
        stacklevel=4,
    )
    return variables


def _read_csv(path: Path) -> np.ndarray:
    """A re-release CSV: one row per sample, one column per electrode, optional header."""
    try:
        with open(path) as f:
            first = f.readline()
        skip = 0 if _is_numeric_row(first) else 1
        return np.loadtxt(path, delimiter=",", dtype=np.float32, skiprows=skip, ndmin=2)
    except (OSError, ValueError) as error:
        raise DeepSyncError(f"{path}: not a readable segment CSV ({error})") from None


def _is_numeric_row(line: str) -> bool:
    try:
        [float(x) for x in line.strip().split(",") if x.strip()]
    except ValueError:
        return False
    return bool(line.strip())


def _scalar(fields: np.void, name: str, names: tuple[str, ...]) -> float | None:
    if name not in names:
        return None
    value = np.asarray(fields[name])
    return float(value.reshape(-1)[0]) if value.size else None


def _validated(
    path: Path, data: np.ndarray, rate: float, sequence: int | None, channels: np.ndarray | None
) -> Segment:
    data = np.asarray(data)
    if data.dtype.kind not in "fiu" or data.ndim != 2:
        raise DeepSyncError(
            f"{path}: data is {data.dtype} with shape {data.shape}; expected a 2-D numeric "
            f"(samples, {CHANNELS}) array"
        )
    if data.shape[1] != CHANNELS:
        if data.shape[0] == CHANNELS:
            raise DeepSyncError(
                f"{path}: data has shape {data.shape}: electrodes on rows; "
                f"expected (samples, {CHANNELS})"
            )
        raise DeepSyncError(f"{path}: data has shape {data.shape}; expected (samples, {CHANNELS})")
    data = np.asarray(data, dtype=np.float32, order="F")  # channel-major memory, as MATLAB's
    if not _all_finite(data):
        raise DeepSyncError(f"{path}: data holds NaN or Inf values; re-download the file")
    data.flags.writeable = False  # the same on every path (the fast one views file bytes)
    if channels is None or np.asarray(channels).size != CHANNELS:
        channel_indices = tuple(range(1, CHANNELS + 1))
    else:
        channel_indices = tuple(int(c) for c in np.asarray(channels).reshape(-1))
    return Segment(data, float(rate), sequence, channel_indices)


def _all_finite(data: np.ndarray) -> bool:
    """No NaN or Inf, checked in blocks: no temporary the size of the signal."""
    flat = data.ravel(order="K")  # a view for C- or Fortran-contiguous data
    return all(
        np.isfinite(flat[start : start + FINITE_CHECK_BLOCK]).all()
        for start in range(0, flat.size, FINITE_CHECK_BLOCK)
    )
