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
FRAMES_PER_BLOCK = 128  # STFT frames windowed and transformed together: they stay in cache


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
    dropout. Channels run in parallel on numba's threads.
    """
    n_frames = frame_valid.size
    pooled_lo, pooled_hi = _frame_members(pooled_frames, n_frames)
    window_lo, window_hi = _frame_members(table_windows, n_frames)
    window_dft = _window_dft(window)
    for c in prange(x.shape[0]):
        _channel(
            c,
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
            pooled_lo,
            pooled_hi,
            window_lo,
            window_hi,
            window_dft,
            image,
            table,
        )


@njit(cache=True, fastmath=FAST)
def spectrogram_kernel_serial(
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
    """`spectrogram_kernel` on the calling thread, channel after channel: the same results.

    For worker processes, which share the cores among themselves: it never starts numba's
    threading layer, so it can be loaded in the forkserver before workers fork from it
    (GNU OpenMP does not survive a fork).
    """
    n_frames = frame_valid.size
    pooled_lo, pooled_hi = _frame_members(pooled_frames, n_frames)
    window_lo, window_hi = _frame_members(table_windows, n_frames)
    window_dft = _window_dft(window)
    for c in range(x.shape[0]):
        _channel(
            c,
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
            pooled_lo,
            pooled_hi,
            window_lo,
            window_hi,
            window_dft,
            image,
            table,
        )


@njit(cache=True)
def _window_dft(window):  # pragma: no cover - numba
    """Detrending in the frequency domain: a frame's mean m, windowed, adds m * DFT(window)."""
    return np.fft.rfft(window.astype(np.float64)).astype(np.complex64)


@njit(cache=True, fastmath=FAST)
def _channel(
    c,
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
    pooled_lo,
    pooled_hi,
    window_lo,
    window_hi,
    window_dft,
    image,
    table,
):  # pragma: no cover - numba
    """One channel's rows of ``image`` and ``table``; the rest as `spectrogram_kernel`."""
    length = window.size
    bins = length // 2 + 1
    n_frames = frame_valid.size
    pooled = np.zeros((pooled_frames.shape[0], bins), np.float32)
    windows = np.zeros((table_windows.shape[0], bins), np.float32)
    power = np.empty(bins, np.float32)
    frames = np.empty((FRAMES_PER_BLOCK, length), np.float32)
    means = np.empty(FRAMES_PER_BLOCK, np.float32)
    for first in range(0, n_frames, FRAMES_PER_BLOCK):  # a block stays in cache
        count = min(FRAMES_PER_BLOCK, n_frames - first)
        for j in range(count):  # one pass: window the frame and sum it
            start = (first + j) * hop
            total = np.float32(0.0)
            for i in range(length):
                v = x[c, start + i]
                total += v
                frames[j, i] = v * window[i]
            means[j] = total / length
        spectrum = np.fft.rfft(frames[:count])  # (count, K) complex64
        # Power goes straight into the time sums: pooled frames and table windows.
        for j in range(count):
            f = first + j
            if not frame_valid[f]:
                continue
            for k in range(bins):
                v = spectrum[j, k] - means[j] * window_dft[k]
                power[k] = v.real * v.real + v.imag * v.imag
            for t in range(pooled_lo[f], pooled_hi[f]):
                for k in range(bins):
                    pooled[t, k] += power[k]
            for w in range(window_lo[f], window_hi[f]):
                for k in range(bins):
                    windows[w, k] += power[k]
    for t in range(pooled.shape[0]):
        count = _valid_count(frame_valid, pooled_frames[t, 0], pooled_frames[t, 1])
        for b in range(band_edges.size - 1):
            lo, hi = band_edges[b], band_edges[b + 1]
            if count == 0:
                image[c, b, t] = np.nan
                continue
            total = 0.0
            for k in range(lo, hi):
                total += pooled[t, k] * scale[k]
            image[c, b, t] = np.log(max(total / (count * (hi - lo)), POWER_FLOOR))
    for w in range(windows.shape[0]):
        count = _valid_count(frame_valid, table_windows[w, 0], table_windows[w, 1])
        for d in range(table_lo.size):
            lo, hi = table_lo[d], table_hi[d]
            total = 0.0
            for k in range(lo, hi):
                total += windows[w, k] * scale[k]
            table[c, w, d] = total / (count * (hi - lo)) if count else np.nan


@njit(cache=True)
def _frame_members(ranges, n_frames):  # pragma: no cover - numba
    """Per STFT frame, the first and one-past-last range (pooled frame, window) holding it."""
    lo = np.full(n_frames, ranges.shape[0], np.int64)
    hi = np.zeros(n_frames, np.int64)
    for r in range(ranges.shape[0]):
        for f in range(ranges[r, 0], ranges[r, 1]):
            lo[f] = min(lo[f], r)
            hi[f] = max(hi[f], r + 1)
    return lo, hi


@njit(cache=True)
def _valid_count(frame_valid, first, stop):  # pragma: no cover - numba
    count = 0
    for f in range(first, stop):
        count += frame_valid[f]
    return count


@njit(cache=True, fastmath=FAST)
def dropout_frames(x, length, hop, n_frames):  # pragma: no cover - numba
    """(F,) True where STFT frame f overlaps a sample at which every electrode reads 0.

    Also returns the share of such samples in the segment. x: (C, N) float32.
    """
    channels, samples = x.shape
    before = np.zeros(samples + 1, np.int64)  # all-zero samples before index n
    for n in range(samples):
        zero = True
        for c in range(channels):  # the first electrode nearly always settles it
            if x[c, n] != 0.0:
                zero = False
                break
        before[n + 1] = before[n] + zero
    hit = np.empty(n_frames, np.bool_)
    for f in range(n_frames):
        hit[f] = before[f * hop + length] - before[f * hop] > 0
    return hit, before[samples] / max(samples, 1)
