"""The numba kernel against scipy's spectrogram, and the dropout rules around it."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal

from deepsync.config import FeaturesConfig
from deepsync.errors import DeepSyncError
from deepsync.features.spectrogram import (
    log_band_edges,
    plan_for,
    run_kernel,
    segment_features,
)

FS = 400


def signal(seconds, seed=0, channels=16):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal((channels, seconds * FS)), axis=1) * 3
    x += rng.normal(0, 30, x.shape) + 40  # an offset: detrending must remove it
    return np.round(x).astype(np.float32)


def reference(x, plan):
    """scipy.signal.spectrogram, pooled the way the kernel pools: the definition."""
    length = plan.window.size
    _, _, psd = scipy.signal.spectrogram(
        x.astype(np.float64),
        fs=FS,
        window="hann",
        nperseg=length,
        noverlap=length - plan.hop,
        detrend="constant",
        scaling="density",
        axis=-1,
    )
    e = plan.band_edges
    bands = np.stack([psd[:, e[b] : e[b + 1]].mean(axis=1) for b in range(len(e) - 1)], axis=1)
    image = np.log(np.stack([bands[:, :, a:b].mean(axis=2) for a, b in plan.pooled_frames], 2))
    canonical = np.stack(
        [psd[:, lo:hi].mean(axis=1) for lo, hi in zip(plan.table_lo, plan.table_hi, strict=True)],
        axis=1,
    )
    table = np.stack([canonical[:, :, a:b].mean(axis=2) for a, b in plan.table_windows], axis=1)
    return image, np.log(table)  # (C, B, T), (C, W, D)


@pytest.mark.parametrize(
    "params, seconds",
    [
        (FeaturesConfig(), 120),
        (
            FeaturesConfig(
                window_seconds=2.0, hop_seconds=1.0, bands=48, frames=30, table_window_seconds=20.0
            ),
            90,
        ),
        (
            FeaturesConfig(window_seconds=0.5, hop_seconds=0.25, bands=40, frames=200),
            30,
        ),  # upsampled
    ],
)
def test_kernel_matches_scipy(params, seconds):
    x = signal(seconds)
    plan = plan_for(params, x.shape[1], FS)
    features = segment_features(x, plan)
    image, table = reference(x, plan)
    ours = features.image.astype(np.float64)
    assert ours.shape == image.shape
    # float16 storage: about 3 significant digits; the kernel itself is far closer
    assert np.max(np.abs(ours - image) / np.maximum(np.abs(image), 1)) < 1e-3
    assert np.allclose(features.table[:, :, :6].transpose(1, 0, 2), table, rtol=0, atol=1e-4)
    share = table - np.log(np.exp(table).sum(axis=2, keepdims=True))
    assert np.allclose(features.table[:, :, 6:].transpose(1, 0, 2), share, atol=1e-4)


def test_kernel_before_float16_is_closer_still():
    x = signal(60, seed=4)
    plan = plan_for(FeaturesConfig(), x.shape[1], FS)
    image, _, _ = run_kernel(x, plan, np.ones(plan.n_frames, bool))
    expected, _ = reference(x, plan)
    assert np.max(np.abs(image - expected) / np.maximum(np.abs(expected), 1)) < 1e-4


def test_band_edges_are_log_spaced_with_one_bin_at_least():
    edges = log_band_edges(80, 1.0, 201)
    assert edges[0] == 1 and edges[-1] == 201 and len(edges) == 81
    widths = np.diff(edges)
    assert widths.min() >= 1 and widths[-1] > 5 * widths[0]
    assert np.all(np.diff(widths) >= -1)  # wider towards high frequencies
    with pytest.raises(DeepSyncError, match="features.bands"):
        log_band_edges(250, 1.0, 201)


def test_dropout_is_masked_never_logged():
    x = signal(120, seed=2)  # 48,000 samples
    x[:, 4_000:20_000] = 0  # 10-50 s: dropout on all electrodes
    x[3, 22_000:22_400] = 0  # one flat electrode is not dropout
    x[:, 30_000:30_100] = 0  # a quarter-second gap at 75 s: interpolated
    plan = plan_for(FeaturesConfig(), x.shape[1], FS)
    features = segment_features(x, plan)
    assert np.isfinite(features.image.astype(np.float32)).all()
    assert np.isfinite(features.table).all()
    assert features.dropout == pytest.approx(16_100 / x.shape[1])
    assert not features.all_zero
    masked = np.flatnonzero(~features.frame_valid)
    seconds = 120 / 144  # per pooled frame
    long_gap = masked[masked * seconds < 60]
    assert long_gap.min() * seconds == pytest.approx(10, abs=1.5)
    assert (long_gap.max() + 1) * seconds == pytest.approx(50, abs=1.5)
    assert len(masked) - len(long_gap) <= 2  # the short gap
    assert features.window_valid.tolist() == [False, False, True, True]
    image = features.image.astype(np.float32)
    short = masked[masked * seconds > 60]
    neighbours = image[:, :, [short.min() - 1, short.max() + 1]]
    assert np.all(image[:, :, short] >= neighbours.min(axis=2, keepdims=True) - 1e-2)
    assert np.all(image[:, :, short] <= neighbours.max(axis=2, keepdims=True) + 1e-2)


def test_all_zero_segment_is_flagged():
    x = np.zeros((16, 40 * FS), np.float32)
    features = segment_features(x, plan_for(FeaturesConfig(), x.shape[1], FS))
    assert features.all_zero and features.dropout == 1.0
    assert not features.image.any() and not features.window_valid.any()
    assert np.isfinite(features.table).all()


def test_too_short_a_segment_is_a_user_error():
    with pytest.raises(DeepSyncError, match="window"):
        plan_for(FeaturesConfig(), 100, FS)


@pytest.mark.parametrize("seconds", [20, 45, 120, 600])
def test_table_windows_tile_the_segment(seconds):
    plan = plan_for(FeaturesConfig(), seconds * FS, FS)
    windows = plan.table_windows
    assert windows[0, 0] == 0 and windows[-1, 1] == plan.n_frames
    assert np.array_equal(windows[1:, 0], windows[:-1, 1])
    seconds_each = (windows[:, 1] - windows[:, 0]) * 0.5
    if seconds >= 45:
        assert np.all((seconds_each > 20) & (seconds_each < 45))


def test_threads_give_the_same_bits_as_one_thread():
    """Workers run the kernel on one thread: the cache must not depend on the workers."""
    x = signal(120, seed=5)
    x[:, 4_000:9_000] = 0  # dropout: masked frames, interpolated and mean-filled cells
    x.flags.writeable = False  # read-only, as a decoded segment is
    plan = plan_for(FeaturesConfig(), x.shape[1], FS)
    threaded = segment_features(x, plan)
    serial = segment_features(x, plan, threads=False)
    for name in ("image", "table", "window_valid", "frame_valid"):
        assert np.array_equal(getattr(threaded, name), getattr(serial, name)), name
    assert (threaded.dropout, threaded.all_zero) == (serial.dropout, serial.all_zero)


def test_kernels_load_without_starting_threads():
    """The forkserver runs `load_kernels`: threads started there would break every fork."""
    code = (
        "import numba.np.ufunc.parallel as p\n"
        "from deepsync.features.stage import load_kernels\n"
        "load_kernels()\n"
        "assert not p._is_initialized, 'numba threading layer started'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


FEATURE_BITS = """
import hashlib, sys
import numpy as np
from deepsync.config import FeaturesConfig
from deepsync.features.spectrogram import plan_for, segment_features
rng = np.random.default_rng(0)
x = (np.round(rng.normal(0, 100, (16, 24000))) * 0.3).astype(np.float32)
x[:, 3000:5000] = 0
x.flags.writeable = False
plan = plan_for(FeaturesConfig(), x.shape[1], 400)
for threads in (False, True):
    f = segment_features(x, plan, threads=threads)
    print(hashlib.md5(f.image.tobytes() + f.table.tobytes()).hexdigest())
"""


def test_fresh_and_cached_compilations_give_the_same_bits(tmp_path):
    """A cold numba cache (CI, a new Kaggle kernel) must not change the features."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    runs = [
        subprocess.run(
            [sys.executable, "-c", FEATURE_BITS], env=env, capture_output=True, text=True
        )
        for _ in range(2)  # the first compiles, the second loads what it cached
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    bits = [r.stdout.split() for r in runs]
    assert len(set(bits[0] + bits[1])) == 1, bits  # fresh, cached, serial, threaded
