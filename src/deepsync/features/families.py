"""The feature families, per table window, beside the band-power table; and the winners'.

Each family turns one segment's table windows into a (windows, width) float32 array;
`FAMILIES` names them (``features.families``). The band powers (``power``) come from the
spectrogram kernel; the others are computed here from what they share, computed once per
segment: the window's clean samples (time-domain families) and the cross-spectral
matrices of its clean STFT frames (the frequency-domain ones, on the kernel's frames:
Hann window, constant detrend, the same hop). Dropout never reaches a feature: samples
where every electrode reads zero are left out of the time-domain statistics (and of
differences across them), STFT frames touching dropout out of the spectra, and a window
the table drops (more than ``features.table_max_dropout`` lost) holds zeros, as its
table row does.

Families, per window (C electrodes, P = C (C - 1) / 2 pairs, the six canonical bands):
- ``power``: log power and log share of the total in the six bands (C x 12);
- ``share``: the log shares alone (C x 6), blind to a gain common to the bands (read from
  the band-power table: every cache holds it);
- ``corr``: Pearson correlation of the electrodes' samples (P, upper triangle row by row)
  and the correlation matrix's eigenvalues, ascending (C);
- ``bandcorr``: per band, the correlation of the band-filtered signals (the real part of
  the cross spectrum summed over the band, over the square root of the two powers) and
  that matrix's eigenvalues (6 x (P + C));
- ``coherence``: per band, the magnitude-squared coherence of each pair averaged over
  the band's frequency bins, as ``scipy.signal.coherence`` (6 x P);
- ``entropy``: per electrode, the spectral entropy of the 0.1-170 Hz spectrum (0 to 1)
  and its 50% and 90% spectral edge frequencies in Hz (C x 3);
- ``hjorth``: per electrode, log activity (variance), mobility and complexity (C x 3);
- ``stats``: per electrode, log variance, skewness, excess kurtosis and zero crossings
  (of the mean) per second (C x 4).

And the 2016 winners' four, on their own windows (`deepsync.features.winners`): ``rlp``
(relative log power, 20 s), ``xfcoh`` (cross-frequency coherence, 20 s), ``feng`` (Feng's
band log-spectra, 30 s) and ``fengmore`` (with his correlations, 50 s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from deepsync.features import winners

BAND_COUNT = 6
POWER_FLOOR = 1e-12  # variances before a log, as the kernel's floor for powers
SPECTRAL = ("bandcorr", "coherence", "entropy")  # the families that need the kernel's spectra


@dataclass(frozen=True)
class Family:
    """A named feature family: its width and column names for C electrodes, and how.

    ``seconds``: the length of its own windows, cut from the segment's first sample (the
    winners' families: `deepsync.features.winners`); None: the table's windows.
    """

    name: str
    width: Callable[[int], int]
    columns: Callable[[int], list[str]]
    compute: Callable[[SegmentWindows], np.ndarray] | None  # None: from the kernel (power)
    seconds: float | None = None

    def windows(self, samples: int, rate: float, table_windows: int) -> int:
        """How many windows a segment of ``samples`` has in this family."""
        return table_windows if self.seconds is None else samples // int(self.seconds * rate)


def _pairs(channels: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(channels) for j in range(i + 1, channels)]


def _per_electrode(*names: str) -> Callable[[int], list[str]]:
    return lambda c: [f"e{e + 1}_{n}" for e in range(c) for n in names]


def _matrix_columns(prefix: str) -> Callable[[int], list[str]]:
    def columns(c: int) -> list[str]:
        pairs = [f"{prefix}_e{i + 1}_e{j + 1}" for i, j in _pairs(c)]
        return pairs + [f"{prefix}_eig{k + 1}" for k in range(c)]

    return columns


def _banded(each: Callable[[int], list[str]]) -> Callable[[int], list[str]]:
    return lambda c: [f"b{b + 1}_{name}" for b in range(BAND_COUNT) for name in each(c)]


def _coherence_columns(c: int) -> list[str]:
    return [f"coh_e{i + 1}_e{j + 1}" for i, j in _pairs(c)]


class SegmentWindows:
    """One segment cut into the table's windows; what several families need, once.

    x: float32 (channels, samples); spectra_re, spectra_im: float32 (channels, frames,
    bins) the kernel's detrended, windowed spectra of clean frames (bins up to the top
    band's edge); frame_valid: (frames,) False where an STFT frame touches dropout;
    windows: (W, 2) first and one-past-last STFT frame of each window; window_valid: (W,)
    the windows the table keeps; bins: (D, 2) rfft bin range of each canonical band.
    """

    def __init__(
        self,
        x: np.ndarray,
        *,
        spectra: tuple[np.ndarray, np.ndarray],
        window_length: int,
        hop: int,
        sampling_rate: float,
        frame_valid: np.ndarray,
        windows: np.ndarray,
        window_valid: np.ndarray,
        bins: np.ndarray,
    ):
        self.x, self.spectra, self.length, self.hop = x, spectra, window_length, hop
        self.rate, self.frame_valid = sampling_rate, frame_valid
        self.windows, self.window_valid, self.bins = windows, window_valid, bins
        self.channels = x.shape[0]

    @property
    def count(self) -> int:
        return len(self.windows)

    @cached_property
    def signal(self) -> np.ndarray:
        """The segment, float64 (channels, samples), for the winners' families."""
        return self.x.astype(np.float64)

    @cached_property
    def feng_filtered(self) -> np.ndarray:
        return winners.feng_filter(self.signal, self.rate)

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(W,) first and one-past-last sample of each window: what its frames cover."""
        return self.windows[:, 0] * self.hop, (self.windows[:, 1] - 1) * self.hop + self.length

    @cached_property
    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """`time_domain_kernel`'s (W, C, 9) moments and (W, C, C) cross products."""
        from deepsync.features.kernel import time_domain_kernel  # numba: only when used

        moments = np.zeros((self.count, self.channels, 9))
        products = np.zeros((self.count, self.channels, self.channels))
        starts, stops = self.samples()
        time_domain_kernel(self.x, starts, stops, self.window_valid, moments, products)
        return moments, products

    @cached_property
    def cross(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`cross_spectra_kernel`'s band cross spectra (W, D, C, C) complex, coherence
        (W, D, P) and power per bin (W, K, C)."""
        from deepsync.features.kernel import cross_spectra_kernel  # numba: only when used

        c, d, k = self.channels, len(self.bins), self.spectra[0].shape[2]
        band_re, band_im = np.zeros((self.count, d, c, c)), np.zeros((self.count, d, c, c))
        coherence = np.zeros((self.count, d, c * (c - 1) // 2))
        power = np.zeros((self.count, k, c), np.float32)
        cross_spectra_kernel(
            *self.spectra,
            self.frame_valid,
            self.windows,
            self.window_valid,
            np.ascontiguousarray(self.bins[:, 0]),
            np.ascontiguousarray(self.bins[:, 1]),
            band_re,
            band_im,
            coherence,
            power,
        )
        return band_re + 1j * band_im, coherence, power


def _correlation(cov: np.ndarray) -> np.ndarray:
    """(..., C, C) covariance-like matrices to correlations; a flat electrode gives 0."""
    sd = np.sqrt(np.maximum(np.real(np.diagonal(cov, axis1=-2, axis2=-1)), 0.0))
    scale = sd[..., :, None] * sd[..., None, :]
    out = np.divide(np.real(cov), scale, out=np.zeros(cov.shape), where=scale > 0)
    diagonal = np.arange(cov.shape[-1])
    out[..., diagonal, diagonal] = 1.0
    return out


def _matrix_features(corr: np.ndarray) -> np.ndarray:
    """(..., C, C) correlations to (..., P + C): upper triangle, then eigenvalues."""
    upper = np.triu_indices(corr.shape[-1], k=1)
    return np.concatenate([corr[..., upper[0], upper[1]], np.linalg.eigvalsh(corr)], axis=-1)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    return np.divide(top, bottom, out=np.zeros(np.broadcast(top, bottom).shape), where=bottom > 0)


def _kept(segment: SegmentWindows, values: np.ndarray) -> np.ndarray:
    """(W, ...) values to (W, width) rows, dropped windows zero."""
    out = values.reshape(segment.count, -1).copy()
    out[~segment.window_valid] = 0.0
    return out


def corr_features(segment: SegmentWindows) -> np.ndarray:
    return _kept(segment, _matrix_features(_correlation(segment.moments[1])))


def bandcorr_features(segment: SegmentWindows) -> np.ndarray:
    return _kept(segment, _matrix_features(_correlation(segment.cross[0])))  # (W, D, P + C)


def coherence_features(segment: SegmentWindows) -> np.ndarray:
    return _kept(segment, segment.cross[1])


def entropy_features(segment: SegmentWindows) -> np.ndarray:
    lo, hi = int(segment.bins[:, 0].min()), int(segment.bins[:, 1].max())
    power = segment.cross[2][:, lo:hi].astype(np.float64)  # (W, K, C)
    share = _ratio(power, power.sum(axis=1, keepdims=True))
    logs = np.log(np.where(share > 0, share, 1.0))
    entropy = -(share * logs).sum(axis=1) / np.log(hi - lo)  # (W, C)
    cumulative = np.cumsum(share, axis=1)
    bin_hz = segment.rate / segment.length
    edges = [lo + (cumulative < q).sum(axis=1).clip(max=hi - lo - 1) for q in (0.5, 0.9)]
    return _kept(segment, np.stack([entropy, edges[0] * bin_hz, edges[1] * bin_hz], axis=2))


def hjorth_features(segment: SegmentWindows) -> np.ndarray:
    m = segment.moments[0]
    activity = _ratio(m[..., 2], m[..., 0])
    mobility = np.sqrt(_ratio(m[..., 7], activity))
    complexity = _ratio(np.sqrt(_ratio(m[..., 8], m[..., 7])), mobility)
    log_activity = np.log(np.maximum(activity, POWER_FLOOR))
    return _kept(segment, np.stack([log_activity, mobility, complexity], axis=2))


def stats_features(segment: SegmentWindows) -> np.ndarray:
    m = segment.moments[0]
    variance = _ratio(m[..., 2], m[..., 0])
    skewness = _ratio(_ratio(m[..., 3], m[..., 0]), variance**1.5)
    kurtosis = np.where(variance > 0, _ratio(_ratio(m[..., 4], m[..., 0]), variance**2) - 3, 0)
    crossings = _ratio(m[..., 5] * segment.rate, m[..., 6])
    log_variance = np.log(np.maximum(variance, POWER_FLOOR))
    return _kept(segment, np.stack([log_variance, skewness, kurtosis, crossings], axis=2))


def _rlp_columns(c: int) -> list[str]:
    return [f"e{e + 1}_b{b + 1}" for e in range(c) for b in range(BAND_COUNT)]


def _xfcoh_columns(c: int) -> list[str]:
    pairs = [(a, b) for a in range(BAND_COUNT) for b in range(a, BAND_COUNT)]
    return [f"e{e + 1}_b{a + 1}_b{b + 1}" for e in range(c) for a, b in pairs]


def _feng_columns(c: int) -> list[str]:
    return [f"e{e + 1}_{n}" for e in range(c) for n in (*(f"b{b + 1}" for b in range(6)), "std")]


def _fengmore_columns(c: int) -> list[str]:
    return _feng_columns(c) + _matrix_columns("time")(c) + _matrix_columns("bands")(c)


WINNERS = (  # the 2016 winners' families, on their own windows (deepsync.features.winners)
    Family(
        "rlp",
        lambda c: c * BAND_COUNT,
        _rlp_columns,
        lambda s: winners.relative_log_power(s.x, s.rate),
        winners.SECONDS["rlp"],
    ),
    Family(
        "xfcoh",
        lambda c: c * BAND_COUNT * (BAND_COUNT + 1) // 2,
        _xfcoh_columns,
        lambda s: winners.cross_frequency_coherence(s.signal, s.rate),
        winners.SECONDS["xfcoh"],
    ),
    Family(
        "feng",
        lambda c: c * 7,
        _feng_columns,
        lambda s: winners.feng_spectrum(s.feng_filtered, s.rate),
        winners.SECONDS["feng"],
    ),
    Family(
        "fengmore",
        lambda c: c * 7 + 2 * (c * (c - 1) // 2 + c),
        _fengmore_columns,
        lambda s: winners.feng_more(s.feng_filtered, s.rate),
        winners.SECONDS["fengmore"],
    ),
)

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "power",
            lambda c: c * 2 * BAND_COUNT,
            lambda c: [
                f"e{e + 1}_b{b + 1}_{kind}"
                for e in range(c)
                for kind in ("log", "rel")
                for b in range(BAND_COUNT)
            ],
            None,
        ),
        Family(
            "share",
            lambda c: c * BAND_COUNT,
            lambda c: [f"e{e + 1}_b{b + 1}_rel" for e in range(c) for b in range(BAND_COUNT)],
            None,
        ),
        Family("corr", lambda c: c * (c - 1) // 2 + c, _matrix_columns("corr"), corr_features),
        Family(
            "bandcorr",
            lambda c: BAND_COUNT * (c * (c - 1) // 2 + c),
            _banded(_matrix_columns("corr")),
            bandcorr_features,
        ),
        Family(
            "coherence",
            lambda c: BAND_COUNT * c * (c - 1) // 2,
            _banded(_coherence_columns),
            coherence_features,
        ),
        Family(
            "entropy",
            lambda c: c * 3,
            _per_electrode("entropy", "sef50", "sef90"),
            entropy_features,
        ),
        Family(
            "hjorth",
            lambda c: c * 3,
            _per_electrode("activity", "mobility", "complexity"),
            hjorth_features,
        ),
        Family(
            "stats",
            lambda c: c * 4,
            _per_electrode("log_variance", "skewness", "kurtosis", "zero_crossings"),
            stats_features,
        ),
        *WINNERS,
    )
}


def compute_families(segment: SegmentWindows, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """float32 (windows, width) per named family (power excepted: the kernel's table).

    The kit's families are finite (dropout never reaches them); the winners' keep the NaN
    and -inf their computation gives, for each of their models to treat as theirs did.
    """
    out = {}
    for name in names:
        family = FAMILIES[name]
        if family.compute is None:
            continue
        if family.windows(segment.x.shape[1], segment.rate, segment.count) == 0:
            values = np.empty((0, family.width(segment.channels)))  # shorter than its window
        else:
            values = family.compute(segment)
        if family.seconds is None:
            values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        out[name] = values.astype(np.float32)
    return out
