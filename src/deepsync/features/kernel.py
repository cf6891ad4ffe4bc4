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

The same segment must give the same bits whatever compiled it: no fastmath. With
reassociation and FMA contraction allowed, each compiled copy of a loop rounded its own
way (freshly compiled and cache-loaded code, the threaded and the serial kernel
differed in the last bit), so a resumed cache was not the uninterrupted one. The one
long reduction, a frame's sum, uses fixed partial sums instead. There is one entry
point, serial and free of the GIL: threads split the channels among themselves
(`deepsync.features.spectrogram.run_kernel`), and the forkserver loads it without
starting a threading layer (OpenMP threads do not survive a fork).
"""

from __future__ import annotations

import numpy as np
from numba import njit

POWER_FLOOR = 1e-12  # PSD floor before the log: a flat channel must not give log(0)
FRAMES_PER_BLOCK = 128  # STFT frames windowed and transformed together: they stay in cache
BLOCK = 256  # samples per block of the time-domain kernel: its transposed block stays in L1
LANES = 16  # electrodes side by side in the time-domain kernel (one segment's 16)
SUMS = 11  # running sums per electrode in the time-domain kernel
PARTIAL_SUMS = 8  # a frame's sum: independent partial sums, combined in a fixed order


@njit(cache=True, nogil=True)
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
    spectra_re,
    spectra_im,
):  # pragma: no cover - numba
    """Fill ``image`` (C, B, T) with log mean PSD and ``table`` (C, W, D) with mean PSD.

    x: (C, N) float32, channel-major. window: (L,) float32. scale: (K,) PSD scaling per
    rfft bin. band_edges: (B + 1,) bin edges, band b is [edges[b], edges[b + 1]).
    pooled_frames: (T, 2) first and one-past-last STFT frame of each pooled frame;
    table_windows likewise (W, 2) for the table's windows. table_lo, table_hi: (D,) bin
    ranges of the canonical bands. frame_valid: (F,) bool, False where a frame overlaps
    dropout. spectra_re, spectra_im: float32 (C, F, K2), filled with the detrended,
    windowed spectrum of every clean frame's first K2 bins (unscaled; K2 = 0: none), for
    the cross-spectral feature families. Channel after channel, without the GIL: callers
    run channel ranges on threads, all through this one compiled function, so the bits
    never depend on how the work was split (two compiled copies of the loop would round
    differently).
    """
    n_frames = frame_valid.size
    pooled_lo, pooled_hi = _frame_members(pooled_frames, n_frames)
    window_lo, window_hi = _frame_members(table_windows, n_frames)
    window_dft = _window_dft(window)
    # three tuples (numba passes them as they are): what to sum, where, and the outputs
    sums = (band_edges, pooled_frames, table_lo, table_hi, table_windows, frame_valid)
    members = (pooled_lo, pooled_hi, window_lo, window_hi, window_dft)
    outputs = (image, table, spectra_re, spectra_im)
    for c in range(x.shape[0]):
        _channel(c, x, window, hop, scale, sums, members, outputs)


@njit(cache=True)
def _window_dft(window):  # pragma: no cover - numba
    """Detrending in the frequency domain: a frame's mean m, windowed, adds m * DFT(window).

    (2, K) float32: real parts, then imaginary parts.
    """
    dft = np.fft.rfft(window.astype(np.float64))
    out = np.empty((2, dft.size), np.float32)
    out[0], out[1] = dft.real, dft.imag
    return out


@njit(cache=True)
def _channel(c, x, window, hop, scale, sums, members, outputs):  # pragma: no cover - numba
    """One channel's rows of ``image``, ``table`` and spectra; see `spectrogram_kernel`."""
    band_edges, pooled_frames, table_lo, table_hi, table_windows, frame_valid = sums
    pooled_lo, pooled_hi, window_lo, window_hi, window_dft = members
    image, table, spectra_re, spectra_im = outputs
    length = window.size
    bins = length // 2 + 1
    n_frames = frame_valid.size
    pooled = np.zeros((pooled_frames.shape[0], bins), np.float32)
    windows = np.zeros((table_windows.shape[0], bins), np.float32)
    power = np.empty(bins, np.float32)
    kept = min(spectra_re.shape[2], bins)
    frames = np.empty((FRAMES_PER_BLOCK, length), np.float32)
    means = np.empty(FRAMES_PER_BLOCK, np.float32)
    for first in range(0, n_frames, FRAMES_PER_BLOCK):  # a block stays in cache
        count = min(FRAMES_PER_BLOCK, n_frames - first)
        # Loops run over 1-D views with indices from range(n): provably non-negative, so
        # no negative-index wrap-around per element and the compiler vectorises them.
        for j in range(count):
            samples = x[c, (first + j) * hop : (first + j) * hop + length]
            frame = frames[j]
            for i in range(length):
                frame[i] = samples[i] * window[i]
            means[j] = _frame_sum(samples) / length
        spectrum = np.fft.rfft(frames[:count])  # (count, K) complex64
        real, imag = window_dft[0], window_dft[1]
        # Power goes straight into the time sums: pooled frames and table windows.
        for j in range(count):
            f = first + j
            if not frame_valid[f]:
                continue
            m = means[j]
            row = spectrum[j]
            for k in range(bins):  # real arithmetic: complex ops do not vectorise here
                re = row[k].real - m * real[k]
                im = row[k].imag - m * imag[k]
                power[k] = re * re + im * im
            if kept:
                out_re, out_im = spectra_re[c, f], spectra_im[c, f]
                for k in range(kept):
                    out_re[k] = row[k].real - m * real[k]
                    out_im[k] = row[k].imag - m * imag[k]
            for t in range(pooled_lo[f], pooled_hi[f]):
                target = pooled[t]
                for k in range(bins):
                    target[k] += power[k]
            for w in range(window_lo[f], window_hi[f]):
                target = windows[w]
                for k in range(bins):
                    target[k] += power[k]
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
def _frame_sum(samples):  # pragma: no cover - numba
    """Sum of a 1-D float32 array, in the same order however it is compiled.

    PARTIAL_SUMS interleaved partial sums combined pairwise: independent chains that
    the compiler vectorises without reordering a single addition.
    """
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(0.0)
    whole = samples.size - samples.size % PARTIAL_SUMS
    for i in range(0, whole, PARTIAL_SUMS):
        s0 += samples[i]
        s1 += samples[i + 1]
        s2 += samples[i + 2]
        s3 += samples[i + 3]
        s4 += samples[i + 4]
        s5 += samples[i + 5]
        s6 += samples[i + 6]
        s7 += samples[i + 7]
    tail = np.float32(0.0)
    for i in range(whole, samples.size):
        tail += samples[i]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)) + tail


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


@njit(cache=True)
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


@njit(cache=True, nogil=True)
def cross_spectra_kernel(
    spectra_re,
    spectra_im,
    frame_valid,
    windows,
    window_valid,
    band_lo,
    band_hi,
    band_cross_re,
    band_cross_im,
    coherence,
    power,
):  # pragma: no cover - numba
    """Cross spectra of every kept window's clean frames, reduced to what families need.

    spectra_re, spectra_im: float32 (C, F, K) from `spectrogram_kernel`; windows: (W, 2)
    STFT frame ranges; window_valid: (W,); band_lo, band_hi: (D,) bin ranges. Fills, for
    kept windows (the rest stay as given):
    - band_cross_re, band_cross_im (W, D, C, C): sum over the band's bins and the window's
      clean frames of conj(X_i) X_j (Hermitian; the diagonal holds band powers);
    - coherence (W, D, P): per pair i < j (row by row), |S_ij|^2 / (S_ii S_jj) per bin,
      averaged over the band's bins (0 where a power is 0);
    - power (W, K, C): each electrode's power per bin, summed over the clean frames.
    The frame sums run in float32 in a fixed order; band sums in float64.
    """
    channels, _, bins = spectra_re.shape
    acc_re = np.zeros((channels, channels, bins), np.float32)
    acc_im = np.zeros((channels, channels, bins), np.float32)
    quad = np.zeros((8, bins), np.float32)  # four pairs' real and imaginary sums
    clean = np.empty(frame_valid.size, np.int64)
    for w in range(windows.shape[0]):
        if not window_valid[w]:
            continue
        kept = 0  # the window's clean frames
        for f in range(windows[w, 0], windows[w, 1]):
            if frame_valid[f]:
                clean[kept] = f
                kept += 1
        for i in range(channels):
            j = i
            # Four pairs (i, j..j+3) at once: electrode i's frame is read once for four,
            # and their sums are rows of one array (the compiler vectorises that, not
            # eight separate rows). Each frame is added in time order: the same bits as
            # a frame-by-frame loop over each pair.
            while j + 4 <= channels:
                quad[:] = 0.0
                for q in range(kept):
                    f = clean[q]
                    ri, ii = spectra_re[i, f], spectra_im[i, f]
                    r0, i0 = spectra_re[j, f], spectra_im[j, f]
                    r1, i1 = spectra_re[j + 1, f], spectra_im[j + 1, f]
                    r2, i2 = spectra_re[j + 2, f], spectra_im[j + 2, f]
                    r3, i3 = spectra_re[j + 3, f], spectra_im[j + 3, f]
                    for k in range(bins):
                        x, y = ri[k], ii[k]
                        quad[0, k] += x * r0[k] + y * i0[k]
                        quad[1, k] += x * i0[k] - y * r0[k]
                        quad[2, k] += x * r1[k] + y * i1[k]
                        quad[3, k] += x * i1[k] - y * r1[k]
                        quad[4, k] += x * r2[k] + y * i2[k]
                        quad[5, k] += x * i2[k] - y * r2[k]
                        quad[6, k] += x * r3[k] + y * i3[k]
                        quad[7, k] += x * i3[k] - y * r3[k]
                for m in range(4):
                    acc_re[i, j + m] = quad[2 * m]
                    acc_im[i, j + m] = quad[2 * m + 1]
                j += 4
            rest = j
            for j in range(rest, channels):  # the rest (a few pairs) one at a time
                out_re, out_im = acc_re[i, j], acc_im[i, j]
                out_re[:] = 0.0
                out_im[:] = 0.0
                for q in range(kept):
                    f = clean[q]
                    ri, ii = spectra_re[i, f], spectra_im[i, f]
                    rj, ij = spectra_re[j, f], spectra_im[j, f]
                    for k in range(bins):
                        out_re[k] += ri[k] * rj[k] + ii[k] * ij[k]
                        out_im[k] += ri[k] * ij[k] - ii[k] * rj[k]
        for i in range(channels):
            for k in range(bins):
                power[w, k, i] = acc_re[i, i, k]
        pair = 0
        for i in range(channels):
            for j in range(i, channels):
                for d in range(band_lo.size):
                    total_re = 0.0
                    total_im = 0.0
                    share = 0.0
                    for k in range(band_lo[d], band_hi[d]):
                        total_re += acc_re[i, j, k]
                        total_im += acc_im[i, j, k]
                        if j > i:
                            scale = float(acc_re[i, i, k]) * float(acc_re[j, j, k])
                            if scale > 0:
                                magnitude = (
                                    float(acc_re[i, j, k]) ** 2 + float(acc_im[i, j, k]) ** 2
                                )
                                share += magnitude / scale
                    band_cross_re[w, d, i, j] = total_re
                    band_cross_im[w, d, i, j] = total_im
                    band_cross_re[w, d, j, i] = total_re
                    band_cross_im[w, d, j, i] = -total_im
                    if j > i:
                        coherence[w, d, pair] = share / max(band_hi[d] - band_lo[d], 1)
                if j > i:
                    pair += 1


@njit(cache=True, nogil=True)
def time_domain_kernel(x, starts, stops, window_valid, moments, products):  # pragma: no cover
    """Moments and cross products of every kept window's clean samples.

    x: float32 (C, N); starts, stops: (W,) sample ranges; a sample is clean unless every
    electrode reads exactly zero (dropout). Fills, for kept windows:
    - moments (W, C, 9) float64: clean samples n, their mean, sums of d^2, d^3, d^4
      (d = x - mean), crossings of the mean between neighbouring clean samples, such
      neighbour pairs, the variance of first differences (over clean pairs) and of
      second differences (over clean triples);
    - products (W, C, C) float64: sum of d_i d_j over clean samples (float32 samples,
      float32 BLAS: within 1e-6 of float64 for a window's correlations).

    Electrodes go LANES at a time, side by side: blocks of samples are transposed into
    (BLOCK, LANES) in L1, and `_moment_step` updates every electrode's sums at once, which
    the compiler vectorises across electrodes; each electrode's sums still run in time
    order, so the bits never depend on how it was compiled.
    """
    channels, samples = x.shape
    clean = np.zeros(samples, np.bool_)
    for t in range(samples):
        for c in range(channels):
            if x[c, t] != 0.0:
                clean[t] = True
                break
    longest = 0
    for w in range(starts.size):
        longest = max(longest, stops[w] - starts[w])
    groups = (channels + LANES - 1) // LANES
    weight = np.zeros(longest, np.float64)  # 1 at clean samples
    pair = np.zeros(longest, np.float64)  # 1 where this sample and the one before are clean
    triple = np.zeros(longest, np.float64)  # ... and the one before that
    centred = np.zeros((longest, groups * LANES), np.float32)  # time-major, for one sgemm
    block = np.zeros(BLOCK * LANES, np.float64)
    sums = np.zeros(SUMS * LANES, np.float64)  # (SUMS, LANES), flat: offsets the compiler sees
    for w in range(starts.size):
        if not window_valid[w]:
            continue
        a, n_w = starts[w], stops[w] - starts[w]
        n = 0
        for t in range(n_w):
            weight[t] = 1.0 if clean[a + t] else 0.0
            n += clean[a + t]
        pair[0] = triple[0] = triple[1] = 0.0
        for t in range(1, n_w):
            pair[t] = weight[t] * weight[t - 1]
        for t in range(2, n_w):
            triple[t] = pair[t] * weight[t - 2]
        pairs = 0.0
        triples = 0.0
        for t in range(n_w):
            pairs += pair[t]
            triples += triple[t]
        for g in range(groups):
            c0 = g * LANES
            width = min(LANES, channels - c0)
            sums[:] = 0.0
            for c in range(width):  # the means, each in time order
                row = x[c0 + c, a : a + n_w]
                total = 0.0
                for t in range(n_w):
                    total += row[t] * weight[t]
                sums[c] = total / max(n, 1)
            for first in range(0, n_w, BLOCK):
                size = min(BLOCK, n_w - first)
                for c in range(width):
                    row = x[c0 + c, a + first : a + first + size]
                    for i in range(size):
                        block[i * LANES + c] = row[i]
                for i in range(size):
                    t = first + i
                    _moment_step(
                        sums,
                        block[i * LANES : (i + 1) * LANES],
                        centred[t, c0 : c0 + LANES],
                        weight[t],
                        pair[t],
                        triple[t],
                    )
            for c in range(width):
                m = moments[w, c0 + c]
                m[0] = n
                m[1] = sums[c]
                m[3] = sums[LANES + c]
                m[4] = sums[2 * LANES + c]
                m[5] = sums[3 * LANES + c]
                m[6] = pairs
                if pairs:
                    m[7] = sums[5 * LANES + c] / pairs - (sums[4 * LANES + c] / pairs) ** 2
                if triples:
                    m[8] = sums[7 * LANES + c] / triples - (sums[6 * LANES + c] / triples) ** 2
        d = centred[:n_w]
        products[w] = np.dot(d.T, d)[:channels, :channels]
        for c in range(channels):
            moments[w, c, 2] = products[w, c, c]


@njit(inline="always")
def _moment_step(sums, now, out, weight, pair, triple):  # pragma: no cover - numba
    """One sample of LANES electrodes: `sums` rows are the mean (read), d^3, d^4, mean
    crossings, first differences and their squares, second differences and their squares
    (weighted by clean pairs and triples), then the previous sample, whether it was above
    the mean, the previous first difference. ``out``: the centred sample (float32)."""
    for c in range(LANES):
        value = now[c]
        v = (value - sums[c]) * weight
        out[c] = v
        v2 = v * v
        sums[LANES + c] += v2 * v
        sums[2 * LANES + c] += v2 * v2
        above = 1.0 if v >= 0 else 0.0
        sums[3 * LANES + c] += pair * abs(above - sums[9 * LANES + c])
        step = value - sums[8 * LANES + c]
        sums[4 * LANES + c] += pair * step
        sums[5 * LANES + c] += pair * step * step
        bend = step - sums[10 * LANES + c]
        sums[6 * LANES + c] += triple * bend
        sums[7 * LANES + c] += triple * bend * bend
        sums[8 * LANES + c] = value
        sums[9 * LANES + c] = above
        sums[10 * LANES + c] = step


@njit(cache=True, nogil=True)
def welch_kernel(x, window, hop, window_samples, scale, band_lo, band_hi, out):  # pragma: no cover
    """Welch's mean PSD per band of each non-overlapping window, in float64: ``out``
    (W, C, D) holds, per window of ``window_samples`` from sample 0, channel and band
    [band_lo[d], band_hi[d]) of rfft bins, the mean over the band's bins of the mean
    over the window's frames of the detrended, windowed one-sided PSD.

    As ``scipy.signal.welch(nperseg=L, noverlap=L - hop, detrend="constant")`` (float64):
    x: (C, N) float32; window: (L,) float64; scale: (K,) float64 PSD scaling per bin.
    """
    length = window.size
    bins = length // 2 + 1
    count = (window_samples - length) // hop + 1
    dft = np.fft.rfft(window)  # a frame's mean m adds m * DFT(window): detrend after
    frames = np.empty((count, length))
    means = np.empty(count)
    power = np.empty(bins)
    for c in range(x.shape[0]):
        for w in range(out.shape[0]):
            start = w * window_samples
            for j in range(count):
                samples = x[c, start + j * hop : start + j * hop + length]
                frame = frames[j]
                total = 0.0
                for i in range(length):
                    value = np.float64(samples[i])
                    frame[i] = value * window[i]
                    total += value
                means[j] = total / length
            spectrum = np.fft.rfft(frames)  # (count, K) complex128
            power[:] = 0.0
            for j in range(count):
                m = means[j]
                row = spectrum[j]
                for k in range(bins):
                    re = row[k].real - m * dft[k].real
                    im = row[k].imag - m * dft[k].imag
                    power[k] += re * re + im * im
            for d in range(band_lo.size):
                total = 0.0
                for k in range(band_lo[d], band_hi[d]):
                    total += power[k] * scale[k]
                out[w, c, d] = total / (count * (band_hi[d] - band_lo[d]))
