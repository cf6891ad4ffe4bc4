"""The 2016 winners' features, computed as they computed them: on their own windows of the
raw signal, dropout and all.

Source: the winning team's repository, alexandrebarachant/kaggle-seizure-prediction-challenge-2016
(BSD 3-clause; Alexandre Barachant, Andriy Temko, Feng Li, Gilberto Titericz Junior). The
facts are theirs; the code is ours (vectorised, float64, the same numbers). Each function
takes one segment, float64 (channels, samples) at ``rate`` Hz, and returns float64
(windows, width) rows, one per window of its own length cut from the first sample on
(the rest of the segment is left out, as theirs was). Nothing is cleaned: a window of
dropout gives NaN or -inf where theirs did, and each model decides what to do with it, as
each of theirs did (`deepsync.train.winners`).

- `relative_log_power` (``Alex_Gilberto/preproc.py``, ``relative_log_power``;
  ``config/config_relative_log_power.yml``): 20 s windows; per window and electrode, Welch's
  PSD (periodic Hann of 512 samples, 128 overlap, constant detrend, one-sided density);
  the mean PSD of the bins in [0.1, 4), [4, 8), [8, 15), [15, 30), [30, 90), [90, 170) Hz;
  the log of each band's share of the six means. C x 6 columns, electrode by electrode.
- `cross_frequency_coherence` (``preproc.py``, ``coherences`` with ``transpose=True``;
  ``config/config_coherence_transposed.yml``): 20 s windows; slices of 512 samples every
  256 (symmetric Hann, no detrend), each band the mean of its complex FFT bins; per
  electrode the 6 x 6 coherence of its bands across slices, |Pxy|^2 / (Pxx Pyy). The upper
  triangle with the diagonal, C x 21 columns; a window whose spectra sum to zero is NaN.
- `feng_filter`, `feng_spectrum` (``Feng/preprocessors/filtering.py`` and ``fft.py``,
  ``compute_fft``; ``kaggle_SETTINGS.json``): a 5th-order Butterworth band-pass, 0.1-180 Hz,
  run forward (``lfilter``) over the whole segment; 30 s windows; per electrode the mean of
  log10 |rfft| over the bins of 0.1-4, 4-8, 8-12, 12-30, 30-70, 70-180 Hz, and the
  window's standard deviation. C x 7 columns.
- `feng_more` (``fft.py``, ``process_file_more``; ``kaggle_SETTINGS_more.json``): 50 s
  windows of the filtered signal: `feng_spectrum`'s C x 7; the correlation matrix of the
  electrodes after each sample is standardised across electrodes (upper triangle, then the
  eigenvalues' magnitudes, ascending); the same of the electrodes' six band log-spectra,
  each band standardised across electrodes. C x 7 + 2 (P + C) columns.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.signal

from deepsync.names import FAMILY_WINDOWS, GROUPS

AG_BANDS_HZ = ((0.1, 4.0), (4.0, 8.0), (8.0, 15.0), (15.0, 30.0), (30.0, 90.0), (90.0, 170.0))
FENG_EDGES_HZ = (0.1, 4.0, 8.0, 12.0, 30.0, 70.0, 180.0)  # np.digitize edges, 6 bands
WELCH_LENGTH, WELCH_OVERLAP = 512, 0.25  # relative log power
COHERENCE_LENGTH, COHERENCE_OVERLAP = 512, 0.5  # cross-frequency coherence
FENG_BAND_HZ = (0.1, 180.0)  # Butterworth band-pass, order 5
SECONDS = {n: FAMILY_WINDOWS[n] for n in GROUPS["winners"]}  # their windows' lengths (s)


def windows_of(x: np.ndarray, rate: float, seconds: float) -> np.ndarray:
    """(windows, channels, samples) views of the non-overlapping windows from sample 0."""
    length = int(seconds * rate)
    count = x.shape[1] // length
    return x[:, : count * length].reshape(x.shape[0], count, length).transpose(1, 0, 2)


def relative_log_power(x: np.ndarray, rate: float) -> np.ndarray:
    """(W, C x 6): log of each band's share of the six band means of Welch's PSD.

    x: (C, N) float32 or float64 (the kernel reads float32 samples, computes in float64).
    """
    from deepsync.features.kernel import welch_kernel  # numba: only when used

    length = int(SECONDS["rlp"] * rate)
    count = x.shape[1] // length
    window = scipy.signal.get_window("hann", WELCH_LENGTH)  # periodic, as welch's default
    freqs = np.fft.rfftfreq(WELCH_LENGTH, 1.0 / rate)
    scale = np.full(freqs.size, 2.0 / (rate * np.sum(window**2)))  # one-sided density
    scale[0] /= 2
    if WELCH_LENGTH % 2 == 0:
        scale[-1] /= 2  # the Nyquist bin is not doubled
    bins = [np.flatnonzero((freqs >= a) & (freqs < b)) for a, b in AG_BANDS_HZ]
    lo = np.array([b[0] for b in bins], np.int64)
    hi = np.array([b[-1] + 1 for b in bins], np.int64)
    bands = np.empty((count, x.shape[0], lo.size))
    hop = WELCH_LENGTH - int(WELCH_LENGTH * WELCH_OVERLAP)
    samples = np.ascontiguousarray(x, dtype=np.float32)
    welch_kernel(samples, window, hop, length, scale, lo, hi, bands)
    with np.errstate(divide="ignore", invalid="ignore"):  # dropout: NaN or -inf, as theirs
        share = np.log(bands / bands.sum(axis=2, keepdims=True))  # (W, C, 6)
    return share.reshape(count, -1)


def cross_frequency_coherence(x: np.ndarray, rate: float) -> np.ndarray:
    """(W, C x 21): per electrode the upper triangle (with the diagonal) of its bands'
    6 x 6 coherence matrix."""
    windows = windows_of(x, rate, SECONDS["xfcoh"])
    length = COHERENCE_LENGTH
    hop = length - int(length * COHERENCE_OVERLAP)
    window = np.hanning(length)  # symmetric, as scipy.signal.hanning was
    freqs = np.fft.fftfreq(length, 1.0 / rate)[: length // 2]
    bins = [np.flatnonzero((freqs >= a) & (freqs < b)) for a, b in AG_BANDS_HZ]
    upper = np.triu_indices(len(AG_BANDS_HZ))
    out = np.empty((len(windows), windows.shape[1], upper[0].size))
    for c in range(windows.shape[1]):
        frames = np.lib.stride_tricks.sliding_window_view(windows[:, c], length, axis=1)
        spectra = scipy.fft.fft(frames[:, ::hop] * window, axis=2)  # (W, S, L)
        banded = np.stack([spectra[:, :, b].mean(axis=2) for b in bins], axis=2)  # (W, S, 6)
        power = np.mean(np.abs(banded) ** 2, axis=1)  # (W, 6)
        cross = np.einsum("wsa,wsb->wab", banded, banded.conj()) / banded.shape[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            coherence = np.abs(cross) ** 2 / (power[:, :, None] * power[:, None, :])
        coherence[~np.any(banded != 0, axis=(1, 2))] = np.nan  # no signal: theirs is NaN
        out[:, c] = coherence[:, upper[0], upper[1]]
    return out.reshape(len(windows), -1)


def feng_filter(x: np.ndarray, rate: float) -> np.ndarray:
    """The band-passed signal, float32 (channels, samples), as Feng's preprocessing."""
    b, a = scipy.signal.butter(5, np.array(FENG_BAND_HZ) / (rate / 2), btype="band")
    return scipy.signal.lfilter(b, a, x, axis=1).astype(np.float32)


def _feng_bands(windows: np.ndarray, rate: float) -> np.ndarray:
    """(W, C, 6): the mean of log10 |rfft| over each band's bins (of the whole window)."""
    with np.errstate(divide="ignore"):
        spectrum = np.log10(np.abs(scipy.fft.rfft(windows.astype(np.float64), axis=2)))
    freqs = np.fft.rfftfreq(windows.shape[2], 1.0 / rate)
    band = np.digitize(freqs, FENG_EDGES_HZ)  # 0 below, 1..6 the bands, 7 above 180 Hz
    return np.stack([spectrum[..., band == k].mean(axis=2) for k in range(1, 7)], axis=2)


def feng_spectrum(filtered: np.ndarray, rate: float, seconds: float = SECONDS["feng"]):
    """(W, C x 7): per electrode its six band log-spectra, then its standard deviation."""
    windows = windows_of(filtered, rate, seconds)
    spread = windows.astype(np.float64).std(axis=2)  # float32 data, float64 sums
    rows = np.concatenate([_feng_bands(windows, rate), spread[..., None]], axis=2)
    return rows.reshape(len(windows), -1)


def feng_more(filtered: np.ndarray, rate: float) -> np.ndarray:
    """(W, C x 7 + 2 (P + C)): Feng's spectra, time-domain and band-spectrum correlations."""
    seconds = SECONDS["fengmore"]
    windows = windows_of(filtered, rate, seconds)
    spectra = feng_spectrum(filtered, rate, seconds)
    time_domain = np.stack([_matrix_rows(w) for w in windows.astype(np.float64)])
    bands = _feng_bands(windows, rate)
    bands[np.isneginf(bands)] = 0
    band_domain = np.stack([_matrix_rows(b) for b in bands])
    return np.concatenate([spectra, time_domain, band_domain], axis=1)


def _matrix_rows(data: np.ndarray) -> np.ndarray:
    """Feng's correlation features of (C, n) rows: each column standardised across the
    rows, the rows' correlation matrix (upper triangle) and its |eigenvalues|, ascending."""
    data = data.copy()
    data[np.isneginf(data)] = 0
    spread = data.std(axis=0)
    scaled = (data - data.mean(axis=0)) / np.where(spread > 0, spread, 1.0)  # sklearn's scale
    flat = ~scaled.any(axis=1)
    scaled[flat, -1] += 0.00001  # a flat row: correlations defined, as theirs
    with np.errstate(divide="ignore", invalid="ignore"):
        matrix = np.corrcoef(scaled)
    matrix[~np.isfinite(matrix)] = 0
    eigen = np.sort(np.abs(np.linalg.eigvals(matrix)))
    upper = np.triu_indices(matrix.shape[0], k=1)
    return np.concatenate([matrix[upper], eigen])
