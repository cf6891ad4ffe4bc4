"""Per-segment features: the CNN's image stack, the winners' band-power table and families.

`plan_for` turns the configuration and a segment length into the index arrays the
kernel needs (computed once per length); `segment_features` runs the kernel on one
segment and applies the dropout rules: masked frames never reach a log, short gaps are
interpolated from their neighbours, longer ones take the channel-band mean, and an
all-zero segment is flagged (its stack is all zeros).
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.signal

from deepsync.config import FeaturesConfig
from deepsync.errors import DeepSyncError
from deepsync.features.families import SPECTRAL, SegmentWindows, compute_families
from deepsync.features.kernel import POWER_FLOOR, dropout_frames, spectrogram_kernel

CANONICAL_BANDS_HZ = (
    (0.1, 4.0),
    (4.0, 8.0),
    (8.0, 15.0),
    (15.0, 30.0),
    (30.0, 90.0),
    (90.0, 170.0),
)  # the winners' six bands


@dataclass(frozen=True)
class SpectrogramPlan:
    """Index arrays for one segment length; see `spectrogram_kernel` for their meaning."""

    window: np.ndarray  # (L,) float32, periodic Hann as scipy's get_window("hann", L)
    hop: int
    n_frames: int  # STFT frames F
    scale: np.ndarray  # (K,) one-sided PSD density scaling per rfft bin
    band_edges: np.ndarray  # (B + 1,) rfft bin edges of the image bands
    pooled_frames: np.ndarray  # (T, 2) first and one-past-last STFT frame of each
    table_lo: np.ndarray  # (D,) first rfft bin of each canonical band
    table_hi: np.ndarray  # (D,) one past the last bin
    table_windows: np.ndarray  # (W, 2) first and one-past-last STFT frame of each
    impute_max_frames: int
    table_max_dropout: float
    sampling_rate: float
    families: tuple[str, ...]  # beside the band powers (deepsync.features.families)


@dataclass(frozen=True)
class SegmentFeatures:
    """One segment's features and dropout record."""

    image: np.ndarray  # float16 (channels, bands, frames): log mean PSD
    table: np.ndarray  # float32 (windows, channels, 12): log power in 6 bands, then relative
    window_valid: np.ndarray  # (windows,) bool: table windows kept (dropout below the limit)
    frame_valid: np.ndarray  # (frames,) bool: pooled frames with at least one clean STFT frame
    dropout: float  # share of samples where every electrode reads zero
    all_zero: bool
    families: dict[str, np.ndarray]  # name -> float32 (windows, width); power is ``table``


def plan_for(params: FeaturesConfig, samples: int, sampling_rate: float) -> SpectrogramPlan:
    """The kernel's index arrays for segments of ``samples`` at ``sampling_rate`` Hz."""
    length = int(round(params.window_seconds * sampling_rate))
    hop = int(round(params.hop_seconds * sampling_rate))
    if length < 2 or samples < length:
        raise DeepSyncError(
            f"segments of {samples} samples are shorter than the {length}-sample STFT window; "
            "lower features.window_seconds"
        )
    n_frames = (samples - length) // hop + 1
    window = scipy.signal.get_window("hann", length).astype(np.float32)
    bins = length // 2 + 1
    scale = np.full(bins, 2.0 / (sampling_rate * float(np.sum(window.astype(np.float64) ** 2))))
    scale[0] /= 2
    if length % 2 == 0:
        scale[-1] /= 2  # the Nyquist bin is not doubled in a one-sided spectrum
    bin_hz = sampling_rate / length
    lo = [int(np.ceil(a / bin_hz)) for a, _ in CANONICAL_BANDS_HZ]
    hi = [min(int(np.ceil(b / bin_hz)), bins) for _, b in CANONICAL_BANDS_HZ]
    if any(h <= l_ for l_, h in zip(lo, hi, strict=True)):
        raise DeepSyncError("features.window_seconds is too short to resolve the 0.1-4 Hz band")
    # Table windows tile the segment: as many as fit, each about table_window_seconds long.
    n_windows = max(1, int(round(n_frames * params.hop_seconds / params.table_window_seconds)))
    window_edges = np.round(np.linspace(0, n_frames, n_windows + 1)).astype(np.int64)
    return SpectrogramPlan(
        window=window,
        hop=hop,
        n_frames=n_frames,
        scale=scale,
        band_edges=log_band_edges(params.bands, params.min_hz / bin_hz, bins),
        pooled_frames=_pooled(n_frames, params.frames),
        table_lo=np.array(lo, np.int64),
        table_hi=np.array(hi, np.int64),
        table_windows=np.stack([window_edges[:-1], window_edges[1:]], axis=1),
        impute_max_frames=params.impute_max_frames,
        table_max_dropout=params.table_max_dropout,
        sampling_rate=float(sampling_rate),
        families=params.family_names,
    )


def log_band_edges(bands: int, first_bin: float, bins: int) -> np.ndarray:
    """(bands + 1,) rfft bin edges, log-spaced from ``first_bin`` to the Nyquist bin.

    Low bands are narrower than one bin in log spacing: every band gets at least one bin,
    so the lowest bands are single bins and the spacing is logarithmic above them.
    """
    start = max(1, int(np.floor(first_bin)))
    if bands > bins - start:
        raise DeepSyncError(
            f"features.bands={bands} exceeds the {bins - start} frequency bins above "
            "features.min_hz; use fewer bands or a longer features.window_seconds"
        )
    edges = np.geomspace(start, bins, bands + 1)
    out = np.empty(bands + 1, np.int64)
    out[0], out[-1] = start, bins
    for i in range(1, bands):  # at least one bin per band, room left for the rest
        out[i] = min(max(int(round(edges[i])), out[i - 1] + 1), bins - (bands - i))
    return out


def run_kernel(
    x: np.ndarray, plan: SpectrogramPlan, frame_valid: np.ndarray, *, threads: bool = True
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The raw kernel: float32 (C, B, T) log mean PSD, NaN where masked; float64 (C, W, D) PSD;
    float32 (C, F, K) real and imaginary spectra of clean frames when a spectral feature
    family needs them (K = 0 otherwise).

    x: float32 (channels, samples), C-contiguous; frame_valid: (F,) bool. ``threads``:
    channel ranges on one thread per core, else all on this thread (the same bits).
    """
    channels, bands = x.shape[0], plan.band_edges.size - 1
    image = np.empty((channels, bands, plan.pooled_frames.shape[0]), np.float32)
    table = np.empty((channels, plan.table_windows.shape[0], plan.table_lo.size), np.float64)
    kept = int(plan.table_hi.max()) if set(plan.families) & set(SPECTRAL) else 0
    spectra = _spectra_buffers((channels, plan.n_frames if kept else 0, kept))

    def run(first: int, stop: int) -> None:
        spectrogram_kernel(
            x[first:stop],
            plan.window,
            plan.hop,
            plan.scale,
            plan.band_edges,
            plan.pooled_frames,
            plan.table_lo,
            plan.table_hi,
            plan.table_windows,
            frame_valid,
            image[first:stop],
            table[first:stop],
            spectra[0][first:stop],
            spectra[1][first:stop],
        )

    parts = min(channels, os.cpu_count() or 1) if threads else 1
    edges = np.linspace(0, channels, parts + 1).round().astype(int)
    if parts == 1:
        run(0, channels)
    else:  # the kernel releases the GIL: the threads really run at once
        list(_threads().map(run, edges[:-1], edges[1:]))
    return image, table, spectra


_buffers = threading.local()


def _spectra_buffers(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 arrays of ``shape``, kept per thread and reused from segment to segment.

    Tens of MB each for a 600 s segment: fresh ones cost a page fault per 4 kB, more than
    the kernel spends filling them. Only clean frames are written, and only they are read.
    """
    held = getattr(_buffers, "spectra", None)
    if held is None or held[0].shape != shape:
        held = _buffers.spectra = (np.empty(shape, np.float32), np.empty(shape, np.float32))
    return held


@functools.cache
def _threads() -> ThreadPoolExecutor:
    """One pool of kernel threads per process, started on first use (never in workers)."""
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="spectrogram")


def _pooled(n_frames: int, pooled: int) -> np.ndarray:
    """(pooled, 2) STFT frame ranges of the pooled time frames, each at least one frame.

    With fewer STFT frames than pooled frames, neighbours repeat a frame (upsampling).
    """
    edges = np.round(np.linspace(0, n_frames, pooled + 1)).astype(np.int64)
    start = np.minimum(edges[:-1], n_frames - 1)
    return np.stack([start, np.maximum(edges[1:], start + 1)], axis=1)


def segment_features(
    channels_major: np.ndarray, plan: SpectrogramPlan, *, threads: bool = True
) -> SegmentFeatures:
    """Run the kernel on one segment (float32 (channels, samples)) and apply dropout rules.

    ``threads=False`` keeps the kernel on this thread: for worker processes, which share
    the cores already.
    """
    x = np.ascontiguousarray(channels_major, dtype=np.float32)
    hit, dropout = dropout_frames(x, plan.window.size, plan.hop, plan.n_frames)
    image, table, spectra = run_kernel(x, plan, ~hit, threads=threads)
    frame_valid = ~np.isnan(image[0, 0])
    _fill_masked(image, frame_valid, plan.impute_max_frames)
    window_valid = np.array(
        [
            hit[a:b].mean() <= plan.table_max_dropout and not np.isnan(table[0, w, 0])
            for w, (a, b) in enumerate(plan.table_windows)
        ],
        dtype=bool,
    )
    windows = SegmentWindows(
        x,
        spectra=spectra,
        window_length=plan.window.size,
        hop=plan.hop,
        sampling_rate=plan.sampling_rate,
        frame_valid=~hit,
        windows=plan.table_windows,
        window_valid=window_valid,
        bins=np.stack([plan.table_lo, plan.table_hi], axis=1),
    )
    return SegmentFeatures(
        image.astype(np.float16),
        _table_rows(table, window_valid),
        window_valid,
        frame_valid,
        float(dropout),
        not frame_valid.any(),
        compute_families(windows, plan.families),
    )


def _fill_masked(image: np.ndarray, valid: np.ndarray, max_gap: int) -> None:
    """Replace masked time frames in place: short gaps interpolated, long ones the mean."""
    if valid.all():
        return
    if not valid.any():
        image[:] = 0.0  # all-zero segment: flagged, skipped for training, predicted neutral
        return
    idx = np.flatnonzero(valid)
    mean = image[:, :, idx].mean(axis=2, keepdims=True)
    masked = np.flatnonzero(~valid)
    gap_start = np.r_[True, np.diff(masked) > 1]
    for run in np.split(masked, np.flatnonzero(gap_start)[1:]):
        left, right = run[0] - 1, run[-1] + 1
        inside = left >= 0 and right < valid.size
        if len(run) <= max_gap and inside:
            w = (run - left) / (right - left)
            image[:, :, run] = image[:, :, [left]] * (1 - w) + image[:, :, [right]] * w
        else:
            image[:, :, run] = mean


def _table_rows(table: np.ndarray, window_valid: np.ndarray) -> np.ndarray:
    """(windows, channels, 12): log power in the six bands, then log share of the total.

    Dropped windows hold zeros (never NaN); ``window_valid`` says which to use.
    """
    power = np.where(window_valid[None, :, None], table, 1.0)  # (C, W, D)
    log_power = np.log(np.maximum(power, POWER_FLOOR))
    log_share = log_power - np.log(np.maximum(power.sum(axis=2, keepdims=True), POWER_FLOOR))
    rows = np.concatenate([log_power, log_share], axis=2).transpose(1, 0, 2)
    rows[~window_valid] = 0.0
    return rows.astype(np.float32)
