"""Each feature family against a direct scipy/numpy computation, and its dropout rules."""

import numpy as np
import pytest
import scipy.signal
import scipy.stats

from deepsync.config import FeaturesConfig, parse_families
from deepsync.errors import DeepSyncError
from deepsync.features.families import FAMILIES
from deepsync.features.spectrogram import plan_for, segment_features
from deepsync.names import GROUPS
from tests.features.test_kernel import FS, signal

ALL = GROUPS["all"]

TOLERANCE = 1e-4
UPPER = np.triu_indices(16, k=1)


def correlated(seconds, seed=0):
    """A test signal whose electrodes share a component (correlations far from 0)."""
    x = signal(seconds, seed).astype(np.float64)
    x[1::2] += 0.8 * x[0]
    return np.round(x).astype(np.float32)


def window_of(plan, w, x):
    """Window ``w``'s samples: exactly those its STFT frames cover, float64."""
    first, stop = plan.table_windows[w]
    return x[:, first * plan.hop : (stop - 1) * plan.hop + plan.window.size].astype(np.float64)


def welch_kwargs(plan):
    length = plan.window.size
    return dict(
        fs=FS, window="hann", nperseg=length, noverlap=length - plan.hop, detrend="constant"
    )


def bands(plan):
    return list(zip(plan.table_lo, plan.table_hi, strict=True))


def cross_sums(pieces, plan):
    """scipy's cross spectra (K, C, C) of each piece, summed over all their frames."""
    kw = welch_kwargs(plan)
    total = 0
    for piece in pieces:
        freqs, cross = scipy.signal.csd(piece[:, None, :], piece[None, :, :], **kw)
        frames = (piece.shape[1] - plan.window.size) // plan.hop + 1
        total = total + np.moveaxis(cross, -1, 0) * frames
    return freqs, total


def expected(name, xs, plan, pieces=None):
    """What family ``name`` must hold for one window of samples ``xs`` (C, n), by scipy.

    Spectral families use the cross spectra of ``pieces`` (default: the whole window),
    the window's stretches of frames that touch no dropout.
    """
    if name == "corr":
        corr = np.corrcoef(xs)
        return np.concatenate([corr[UPPER], np.linalg.eigvalsh(corr)])
    if name in ("coherence", "bandcorr", "entropy"):
        freqs, cross = cross_sums([xs] if pieces is None else pieces, plan)
        power = np.real(np.diagonal(cross, axis1=1, axis2=2))  # (K, C)
    if name == "coherence":
        ratio = np.abs(cross) ** 2 / (power[:, :, None] * power[:, None, :])
        return np.concatenate(
            [ratio[lo:hi, UPPER[0], UPPER[1]].mean(axis=0) for lo, hi in bands(plan)]
        )
    if name == "bandcorr":
        out = []
        for lo, hi in bands(plan):
            band = np.real(cross[lo:hi].sum(axis=0))
            matrix = band / np.sqrt(np.outer(np.diag(band), np.diag(band)))
            out.append(np.concatenate([matrix[UPPER], np.linalg.eigvalsh(matrix)]))
        return np.concatenate(out)
    if name == "entropy":
        lo, hi = plan.table_lo.min(), plan.table_hi.max()
        share = (power[lo:hi] / power[lo:hi].sum(axis=0)).T  # (C, bins)
        entropy = scipy.stats.entropy(share, axis=1) / np.log(hi - lo)
        cumulative = np.cumsum(share, axis=1)
        edges = [freqs[lo + np.argmax(cumulative >= q, axis=1)] for q in (0.5, 0.9)]
        return np.stack([entropy, *edges], axis=1).ravel()
    if name == "hjorth":
        d1, d2 = np.diff(xs, axis=1), np.diff(xs, n=2, axis=1)
        mobility = np.sqrt(d1.var(axis=1) / xs.var(axis=1))
        complexity = np.sqrt(d2.var(axis=1) / d1.var(axis=1)) / mobility
        return np.stack([np.log(xs.var(axis=1)), mobility, complexity], axis=1).ravel()
    if name == "stats":
        centred = xs - xs.mean(axis=1, keepdims=True)
        changes = (centred[:, 1:] >= 0) != (centred[:, :-1] >= 0)
        per_second = changes.sum(axis=1) / ((xs.shape[1] - 1) / FS)
        return np.stack(
            [
                np.log(xs.var(axis=1)),
                scipy.stats.skew(xs, axis=1),
                scipy.stats.kurtosis(xs, axis=1),
                per_second,
            ],
            axis=1,
        ).ravel()
    raise AssertionError(name)


COMPUTED = [name for name in ALL if FAMILIES[name].compute is not None]


@pytest.mark.parametrize("name", COMPUTED)
@pytest.mark.parametrize(
    "params, seconds",
    [
        (FeaturesConfig(), 60),
        (FeaturesConfig(window_seconds=2.0, hop_seconds=1.0, table_window_seconds=20.0), 50),
    ],
)
def test_each_family_matches_scipy(name, params, seconds):
    x = correlated(seconds)
    plan = plan_for(params, x.shape[1], FS)
    features = segment_features(x, plan)
    values = features.families[name]
    assert values.shape == (len(plan.table_windows), FAMILIES[name].width(16))
    assert values.dtype == np.float32
    assert len(FAMILIES[name].columns(16)) == values.shape[1]
    for w in range(len(plan.table_windows)):
        reference = expected(name, window_of(plan, w, x), plan)
        scale = np.maximum(np.abs(reference), 1)  # Hz and per-second counts: relative
        assert np.max(np.abs(values[w] - reference) / scale) < TOLERANCE, (name, w)


def test_correlated_electrodes_show_in_corr_and_coherence():
    x = correlated(60)
    plan = plan_for(FeaturesConfig(), x.shape[1], FS)
    families = segment_features(x, plan).families
    pairs = families["corr"][0, : len(UPPER[0])]
    shared = (UPPER[0] % 2 == 1) & (UPPER[1] % 2 == 1)  # both odd: both carry x[0]
    assert pairs[shared].mean() > 0.5 > abs(pairs[~shared & (UPPER[0] > 0)].mean())


@pytest.mark.parametrize("name", COMPUTED)
def test_dropout_samples_never_reach_a_family(name):
    """A window with dropout equals the same window with the dropout cut out."""
    x = correlated(60, seed=3)
    plan = plan_for(FeaturesConfig(), x.shape[1], FS)
    holed = x.copy()
    first, stop = plan.table_windows[0]
    start = int(first) * plan.hop
    gap = slice(start + 4_000, start + 4_000 + 6 * plan.window.size)  # 6 s of dropout
    holed[:, gap] = 0
    features = segment_features(holed, plan)
    assert features.window_valid.all()
    values = features.families[name][0]
    assert np.isfinite(values).all()
    if name in ("corr", "hjorth", "stats"):  # time domain: the dropout samples left out
        xs = window_of(plan, 0, holed)
        keep = (xs != 0).any(axis=0)
        clean = xs[:, keep]
        if name == "corr":
            reference = expected("corr", clean, plan)
        elif name == "hjorth":  # differences only between neighbouring clean samples
            a, b = np.flatnonzero(~keep)[[0, -1]]
            d1 = np.concatenate([np.diff(xs[:, :a]), np.diff(xs[:, b + 1 :])], axis=1)
            d2 = np.concatenate([np.diff(xs[:, :a], 2), np.diff(xs[:, b + 1 :], 2)], axis=1)
            mobility = np.sqrt(d1.var(axis=1) / clean.var(axis=1))
            complexity = np.sqrt(d2.var(axis=1) / d1.var(axis=1)) / mobility
            reference = np.stack([np.log(clean.var(axis=1)), mobility, complexity], 1).ravel()
        else:
            reference = expected("stats", clean, plan)[0::4]  # log variance
            values = values[0::4]
        assert np.max(np.abs(values - reference) / np.maximum(np.abs(reference), 1)) < 1e-4
    else:  # frequency domain: the frames touching dropout left out, as the table does
        xs = window_of(plan, 0, holed)
        length, hop = plan.window.size, plan.hop
        before = xs[:, : gap.start - start]  # frames from the window's start, all clean
        after_start = -(-(gap.stop - start) // hop) * hop  # first frame after the gap
        pieces = [before, xs[:, after_start:]]
        clean_frames = (~_frames_hit(holed, plan))[first:stop].sum()
        assert sum((p.shape[1] - length) // hop + 1 for p in pieces) == clean_frames
        reference = expected(name, xs, plan, pieces)
        scale = np.maximum(np.abs(reference), 1)
        assert np.max(np.abs(values - reference) / scale) < TOLERANCE


def _frames_hit(x, plan):
    from deepsync.features.kernel import dropout_frames

    return dropout_frames(x, plan.window.size, plan.hop, plan.n_frames)[0]


def test_a_dropped_window_holds_zeros_and_an_all_zero_segment_too():
    x = correlated(120, seed=5)
    x[:, 4_000:20_000] = 0  # most of the first window: dropped, as the table drops it
    plan = plan_for(FeaturesConfig(), x.shape[1], FS)
    features = segment_features(x, plan)
    assert features.window_valid.tolist() == [False, False, True, True]
    for name in COMPUTED:
        assert not features.families[name][:2].any()
        assert features.families[name][2:].any()
    silent = segment_features(np.zeros_like(x), plan)
    for name in COMPUTED:
        assert not silent.families[name].any()


def test_a_flat_electrode_gives_zeros_not_nans():
    x = correlated(60, seed=6)
    x[5] = 7.0  # stuck at one value: no variance, no power
    plan = plan_for(FeaturesConfig(), x.shape[1], FS)
    families = segment_features(x, plan).families
    for name in COMPUTED:
        assert np.isfinite(families[name]).all(), name


def test_families_are_named_by_the_configuration():
    assert parse_families("all") == ALL
    assert parse_families("stats,power") == ("power", "stats")  # the registry's order
    assert parse_families("corr+coherence") == ("corr", "coherence")
    with pytest.raises(DeepSyncError, match="features.families='power,colour'.*use all"):
        parse_families("power,colour")
    plan = plan_for(FeaturesConfig(families="corr"), 60 * FS, FS)
    features = segment_features(correlated(60), plan)
    assert set(features.families) == {"corr"}  # power is the table's


@pytest.mark.parametrize("channels", [16, 7])
def test_cross_spectra_sum_each_pair_frame_by_frame_to_the_bit(channels):
    """The kernel's blocked pair sums (four pairs a pass, then the rest two frames a pass)
    are float32 sums over the clean frames in time order: the same bits as that loop."""
    from deepsync.features.kernel import cross_spectra_kernel

    rng = np.random.default_rng(3)
    frames, bins = 25, 37
    re = rng.standard_normal((channels, frames, bins)).astype(np.float32)
    im = rng.standard_normal((channels, frames, bins)).astype(np.float32)
    frame_valid = rng.random(frames) > 0.2
    windows = np.array([[0, 12], [12, 25]])
    lo, hi = np.array([1, 5, 20]), np.array([5, 20, 37])
    count, d = len(windows), len(lo)
    band_re, band_im = (
        np.zeros((count, d, channels, channels)),
        np.zeros((count, d, channels, channels)),
    )
    coherence = np.zeros((count, d, channels * (channels - 1) // 2))
    power = np.zeros((count, bins, channels), np.float32)
    cross_spectra_kernel(
        re,
        im,
        frame_valid,
        windows,
        np.ones(count, bool),
        lo,
        hi,
        band_re,
        band_im,
        coherence,
        power,
    )
    for w, (a, b) in enumerate(windows):
        clean = [f for f in range(a, b) if frame_valid[f]]
        for i in range(channels):
            for j in range(i, channels):
                s_re, s_im = np.zeros(bins, np.float32), np.zeros(bins, np.float32)
                for f in clean:
                    s_re = s_re + (re[i, f] * re[j, f] + im[i, f] * im[j, f])
                    s_im = s_im + (re[i, f] * im[j, f] - im[i, f] * re[j, f])
                if i == j:
                    assert np.array_equal(power[w, :, i], s_re)
                for band in range(d):
                    total_re = total_im = 0.0
                    for k in range(lo[band], hi[band]):
                        total_re += float(s_re[k])
                        total_im += float(s_im[k])
                    assert band_re[w, band, i, j] == total_re and band_re[w, band, j, i] == total_re
                    assert (
                        band_im[w, band, i, j] == total_im and band_im[w, band, j, i] == -total_im
                    )
