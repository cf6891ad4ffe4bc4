"""The numba kernel: framing, detrend, Hann window, FFT, power, band and time pooling, log.

One pass over a segment gives both products of the feature stage:
- the image stack, log mean PSD per (channel, band, frame): log-spaced bands up to the
  Nyquist frequency, STFT frames pooled into a fixed number of time frames;
- the table, mean PSD per (channel, window, canonical band) over 20-30 s windows.

It matches ``scipy.signal.spectrogram(x, fs, window="hann", nperseg=L, noverlap=L - hop,
detrend="constant", scaling="density")`` pooled the same way (tests check it). Every
parameter is an argument: numba freezes globals into the compiled code, and its cache
is keyed by this file alone. STFT frames that overlap dropout are left out of every
mean; a pooled cell with no frame left is NaN here and filled by the caller.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

POWER_FLOOR = 1e-12  # PSD floor before the log: a flat channel must not give log(0)
# Reordering sums lets LLVM vectorise them; no "nnan": NaN marks masked cells.
FAST = {"reassoc", "contract", "arcp", "nsz"}


@njit(parallel=True, cache=True, fastmath=FAST)
def spectrogram_kernel(
    x,
    window,
    hop,
    scale,
    band_edges,
    pooled_frames,
    table_lo,
    table_hi,
    table_windows,
    frame_valid,
    image,
    table,
):  # pragma: no cover - numba
    """Fill ``image`` (C, B, T) with log mean PSD and ``table`` (C, W, D) with mean PSD.

    x: (C, N) float32, channel-major. window: (L,) float32. scale: (K,) PSD scaling per
    rfft bin. band_edges: (B + 1,) bin edges, band b is [edges[b], edges[b + 1]).
    pooled_frames: (T, 2) first and one-past-last STFT frame of each pooled frame;
    table_windows likewise (W, 2) for the table's windows. table_lo, table_hi: (D,) bin
    ranges of the canonical bands. frame_valid: (F,) bool, False where a frame overlaps
    dropout.
    """
    channels = x.shape[0]
    length = window.size
    bins = length // 2 + 1
    n_frames = frame_valid.size
    for c in prange(channels):
        frames = np.empty((n_frames, length), np.float32)
        for f in range(n_frames):
            start = f * hop
            mean = np.float32(0.0)
            for i in range(length):
                mean += x[c, start + i]
            mean /= length
            for i in range(length):
                frames[f, i] = (x[c, start + i] - mean) * window[i]
        spectrum = np.fft.rfft(frames)  # (F, K) complex64
        power = np.empty((n_frames, bins), np.float32)
        for f in range(n_frames):
            for k in range(bins):
                v = spectrum[f, k]
                power[f, k] = v.real * v.real + v.imag * v.imag
        # Pool over time first (few rows), then over frequency: both are means.
        pooled = _time_means(power, pooled_frames, frame_valid, scale)  # (T, K)
        windows = _time_means(power, table_windows, frame_valid, scale)  # (W, K)
        for t in range(pooled.shape[0]):
            for b in range(band_edges.size - 1):
                lo, hi = band_edges[b], band_edges[b + 1]
                mean = pooled[t, lo:hi].sum() / (hi - lo)
                image[c, b, t] = np.log(max(mean, POWER_FLOOR)) if mean == mean else np.nan
        for w in range(windows.shape[0]):
            for d in range(table_lo.size):
                lo, hi = table_lo[d], table_hi[d]
                table[c, w, d] = windows[w, lo:hi].sum() / (hi - lo)


@njit(cache=True, fastmath=FAST)
def _time_means(power, ranges, frame_valid, scale):  # pragma: no cover - numba
    """(R, K) PSD averaged over the valid STFT frames of each range; NaN rows where none."""
    out = np.zeros((ranges.shape[0], power.shape[1]), np.float64)
    for r in range(ranges.shape[0]):
        count = 0
        for f in range(ranges[r, 0], ranges[r, 1]):
            if frame_valid[f]:
                count += 1
                for k in range(power.shape[1]):
                    out[r, k] += power[f, k]
        for k in range(power.shape[1]):
            out[r, k] = out[r, k] * scale[k] / count if count else np.nan
    return out


@njit(cache=True, fastmath=FAST)
def dropout_frames(x, length, hop, n_frames):  # pragma: no cover - numba
    """(F,) True where STFT frame f overlaps a sample at which every electrode reads 0.

    Also returns the share of such samples in the segment. x: (C, N) float32.
    """
    channels, samples = x.shape
    zero = np.ones(samples, np.bool_)
    for c in range(channels):
        for n in range(samples):
            zero[n] &= x[c, n] == 0.0
    before = np.zeros(samples + 1, np.int64)  # zero samples before index n
    for n in range(samples):
        before[n + 1] = before[n] + zero[n]
    hit = np.empty(n_frames, np.bool_)
    for f in range(n_frames):
        hit[f] = before[f * hop + length] - before[f * hop] > 0
    return hit, before[samples] / max(samples, 1)
