"""The winners' features equal their published formulas, computed directly, window by window.

Each check re-derives a feature from its description in the winners' repository
(alexandrebarachant/kaggle-seizure-prediction-challenge-2016) with plain loops and
library calls: scipy.signal.welch, numpy's FFT, pandas' groupby, scikit-learn's scale,
on a small segment and on the three real competition files (patient 1, 49-75 % dropout).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.signal
from sklearn.preprocessing import scale

from deepsync.data.segment import read_segment
from deepsync.features import winners

RATE = 400.0
REAL = Path(__file__).resolve().parents[2].parent / "shared/data/melbourne/real/train_1"
REAL_FILES = sorted(REAL.glob("*.mat")) if REAL.is_dir() else []
BANDS = [[0.1, 4], [4, 8], [8, 15], [15, 30], [30, 90], [90, 170]]


def small_segment(seconds=100, seed=0) -> np.ndarray:
    """float64 (16, samples): 1/f-like noise, a dropout stretch, a window of pure dropout."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0, 5, (16, int(seconds * RATE))), axis=1)
    x += rng.normal(0, 20, x.shape)
    x[:, 3000:7000] = 0  # dropout inside the first window
    x[:, 20 * 400 * 2 : 20 * 400 * 3] = 0  # the third 20 s window: nothing but dropout
    return np.round(x.astype(np.float32), 1).astype(np.float64)


def real_segments():
    if not REAL_FILES:
        pytest.skip(f"the three real competition files are not here ({REAL}): ../shared absent")
    return [read_segment(p).channels_major.astype(np.float64) for p in REAL_FILES]


def published_relative_log_power(window: np.ndarray) -> np.ndarray:
    """Alex and Gilberto's ``relative_log_power`` for one (16, 8000) window, as published."""
    freqs, power = scipy.signal.welch(window, fs=RATE, nperseg=512, noverlap=int(512 * 0.25))
    out = [power[:, (freqs >= a) & (freqs < b)].mean(1) for a, b in BANDS]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.array(out) / np.sum(out, 0)).T.ravel()  # (16, 6) flattened


def check_relative_log_power(x: np.ndarray) -> int:
    ours = winners.relative_log_power(x, RATE)
    n = 20 * 400
    assert ours.shape == (x.shape[1] // n, 96)
    for w in range(len(ours)):
        theirs = published_relative_log_power(x[:, w * n : (w + 1) * n])
        finite = np.isfinite(theirs)
        assert np.array_equal(finite, np.isfinite(ours[w]))  # NaN and -inf where theirs are
        assert np.allclose(ours[w][finite], theirs[finite], rtol=0, atol=1e-6)
    return int((~np.isfinite(ours)).all(axis=1).sum())


def test_relative_log_power_is_welchs_formula_on_a_small_segment():
    x = small_segment()
    assert check_relative_log_power(x) == 1  # the window of pure dropout: NaN, left out later


def test_relative_log_power_is_welchs_formula_on_the_real_files():
    windows_of_dropout = [check_relative_log_power(x) for x in real_segments()]
    assert sum(windows_of_dropout) > 0  # 49-75 % dropout: whole windows of it


def published_coherences(window: np.ndarray) -> np.ndarray:
    """``coherences(..., window=512, overlap=0.5, transpose=True)`` for one window, with
    their loop: per slice the band means of the FFT, then per electrode |Pxy|^2 / Pxx Pyy."""
    length, step = 512, 256
    hann = scipy.signal.windows.hann(length, sym=True)
    freqs = np.fft.fftfreq(length, d=1.0 / RATE)[: length // 2]
    index = [np.where((freqs >= a) & (freqs < b))[0] for a, b in BANDS]
    starts = range(0, window.shape[1] - length + 1, step)
    slices = np.zeros((len(starts), 6, 16), complex)
    for i, start in enumerate(starts):
        spectrum = np.fft.fft(hann * window[:, start : start + length]).T
        for band, idx in enumerate(index):
            slices[i, band] = spectrum[idx].mean(0)
    slices = slices.transpose(0, 2, 1)  # (slices, electrodes, bands)
    pxx = np.mean(np.abs(slices) ** 2, axis=0)
    out = []
    for electrode in range(16):
        pxy = np.dot(slices[:, electrode].T, np.conj(slices[:, electrode])) / len(slices)
        with np.errstate(divide="ignore", invalid="ignore"):
            matrix = np.abs(pxy) ** 2 / np.outer(pxx[electrode], pxx[electrode])
        out.append(matrix[np.triu_indices(6)])
    return np.concatenate(out)


def test_cross_frequency_coherence_is_their_loop():
    x = small_segment(seconds=60)
    ours = winners.cross_frequency_coherence(x, RATE)
    assert ours.shape == (3, 16 * 21)
    for w in range(3):
        theirs = published_coherences(x[:, w * 8000 : (w + 1) * 8000])
        finite = np.isfinite(theirs)
        assert np.array_equal(finite, np.isfinite(ours[w]))
        assert np.allclose(ours[w][finite], theirs[finite], rtol=1e-9, atol=1e-12)
    assert np.isnan(ours[2]).all()  # the window of pure dropout
    diagonal = [i for i, (a, b) in enumerate(zip(*np.triu_indices(6), strict=True)) if a == b]
    assert np.allclose(ours[0].reshape(16, 21)[:, diagonal], 1.0)


def published_feng(filtered: np.ndarray, seconds: int) -> np.ndarray:
    """Feng's ``compute_fft`` ("meanlog_std", 6 bands) on his filtered data, as published."""
    edges = [0.1, 4, 8, 12, 30, 70, 180]
    rows = []
    for w in range(filtered.shape[1] // int(seconds * RATE)):
        row = []
        for channel in filtered:
            xw = channel[int(w * seconds * RATE) : int((w + 1) * seconds * RATE)]
            with np.errstate(divide="ignore"):
                fft = np.log10(np.absolute(np.fft.rfft(xw)))
            freq = np.fft.rfftfreq(n=xw.shape[-1], d=1.0 / RATE)
            frame = pd.DataFrame({"fft": fft, "band": np.digitize(freq, edges)})
            row += list(frame.groupby("band").mean().fft.iloc[1:-1]) + [np.std(xw)]
        rows.append(row)
    return np.array(rows)


def test_feng_filter_and_spectra_are_his():
    x = small_segment(seconds=90)
    b, a = scipy.signal.butter(5, np.array([0.1, 180]) / 200.0, btype="band")
    filtered = winners.feng_filter(x, RATE)
    assert np.allclose(filtered, scipy.signal.lfilter(b, a, x, axis=1).astype(np.float32))
    ours = winners.feng_spectrum(filtered, RATE)
    theirs = published_feng(filtered, 30)
    assert ours.shape == theirs.shape == (3, 16 * 7)
    assert np.isfinite(theirs).all()  # the filter rings on through dropout
    assert np.allclose(ours, theirs, rtol=1e-5, atol=1e-6)  # theirs: float32 std
    silent = winners.feng_spectrum(np.zeros((16, 12000), np.float32), RATE).reshape(16, 7)
    assert np.isneginf(silent[:, :6]).all() and (silent[:, 6] == 0).all()  # an all-zero file


def published_correlations(data: np.ndarray) -> np.ndarray:
    """Feng's ``CorrelationMatrix`` and ``Eigenvalues`` after scikit-learn's ``scale``."""
    data = scale(np.where(np.isneginf(data), 0, data), axis=0)
    for channel in data:
        if np.all(channel == 0.0):
            channel[-1] += 0.00001
    matrix = np.corrcoef(data)
    matrix[~np.isfinite(matrix)] = 0
    eigen = np.sort(np.absolute(np.linalg.eig(matrix)[0]))
    return np.concatenate([matrix[np.triu_indices(16, k=1)], eigen])


def test_feng_more_features_are_his():
    x = small_segment(seconds=100)
    filtered = winners.feng_filter(x, RATE)
    ours = winners.feng_more(filtered, RATE)
    assert ours.shape == (2, 16 * 7 + 2 * 136)
    n = 50 * 400
    for w in range(2):
        window = filtered[:, w * n : (w + 1) * n].astype(np.float64)
        spectra = published_feng(filtered[:, w * n : (w + 1) * n], 50)[0]
        bands = spectra.reshape(16, 7)[:, :6]
        theirs = np.concatenate(
            [spectra, published_correlations(window), published_correlations(bands)]
        )
        finite = np.isfinite(theirs)
        assert np.array_equal(finite, np.isfinite(ours[w]))
        assert np.allclose(ours[w][finite], theirs[finite], rtol=1e-5, atol=1e-6)
