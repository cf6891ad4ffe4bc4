"""`make bench-features`: the feature stage against what 2016 competitors ran.

On N full-length (600 s) synthetic segments, in one run, alternating the contenders over
several repetitions, it prints medians and ratios for: ``scipy.io.loadmat`` alone,
per-channel ``scipy.signal.spectrogram``, our kernel (band powers only, and with every
feature family), our decode, the FFT floor, and the whole `make features` path with all
cores, band powers only and with every family, against ``loadmat`` alone with as many
processes; plus peak RSS per worker. Timings are this machine's, noisy: trust ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from contextlib import closing
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.io
import scipy.signal

from deepsync import pipeline
from deepsync.bench import harness
from deepsync.bench.harness import medians, own_peak_rss, timed
from deepsync.config import SyntheticConfig, load_config
from deepsync.data import synthetic
from deepsync.data.segment import read_segment
from deepsync.errors import DeepSyncError
from deepsync.features.spectrogram import plan_for, segment_features
from deepsync.features.stage import in_worker
from deepsync.parallel import parallel_map

KERNEL_TARGET = 4.0  # at least this many times faster than per-channel scipy
FAMILIES_TARGET = 2.0  # the default families: at most this many times the band powers' time


def _winners():
    """The winners profile's features: every family, the 2016 winners' four too."""
    return load_config("winners").features


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deepsync.bench.features", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--files", type=int, default=48, help="600 s segments (default 48)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("data/bench"),
        help="where the bench segments are generated once",
    )
    args = parser.parse_args(argv)
    return harness.exit_code("bench-features", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if min(args.files, args.reps, args.workers) < 1:
        raise DeepSyncError("--files, --reps and --workers must be >= 1")
    paths = _segments(args.root, args.files)
    print(
        f"bench-features: {len(paths)} segments of 600 s x 16 channels, "
        f"{sum(p.stat().st_size for p in paths) / len(paths) / 1e6:.1f} MB each on disk, "
        f"{args.reps} repetitions, {args.workers} workers, {os.cpu_count()} cores"
    )
    per_segment = _per_segment(paths[: max(4, len(paths) // 4)], args.reps)
    whole = _whole_path(args.root, paths, args.reps, args.workers)
    _report(per_segment, whole, args.workers, _worker_peak_rss(paths, args.workers))
    return 0


def _segments(root: Path, count: int) -> list[Path]:
    """Full-length synthetic training segments (generated once, then reused)."""
    hours = max(1, -(-count // 12))
    cfg = SyntheticConfig(
        seed=11,
        patients=1,
        interictal_hours=hours,
        preictal_hours=hours,
        unsafe_hours=0,
        extra_preictal=0,
        test_hours=1,
        seconds=600,
    )
    folder = root / "synthetic"
    synthetic.generate(cfg, folder, workers=os.cpu_count() or 1, progress=True)
    return sorted(folder.glob("train_1/*.mat"))[:count]


def _loadmat(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scipy.io.loadmat(path)["dataStruct"][0, 0]["data"]


def _scipy_spectrogram(x: np.ndarray) -> None:
    """What competitors ran: one scipy call per electrode. x: (samples, channels)."""
    for c in range(x.shape[1]):
        scipy.signal.spectrogram(x[:, c], fs=400, window="hann", nperseg=400, noverlap=200)


def _per_segment(paths: list[Path], reps: int) -> dict[str, float]:
    """Median seconds per segment of each step, contenders alternating on each file."""
    params = load_config(overrides=["features.families=power"]).features
    first = read_segment(paths[0])
    plan = plan_for(params, first.data.shape[0], first.sampling_rate)
    every = plan_for(load_config().features, first.data.shape[0], first.sampling_rate)
    theirs = plan_for(_winners(), first.data.shape[0], first.sampling_rate)
    segment_features(first.channels_major, plan)  # numba: load or compile once
    segment_features(first.channels_major, every)
    frames = (
        np.lib.stride_tricks.sliding_window_view(first.channels_major, 400, axis=1)[:, ::200]
        * plan.window
    )
    times: dict[str, list[float]] = {
        k: [] for k in ("loadmat", "decode", "scipy", "kernel", "families", "winners", "fft floor")
    }
    for _ in range(reps):
        for path in paths:
            times["loadmat"].append(timed(_loadmat, path))
            times["decode"].append(timed(read_segment, path))
            segment = read_segment(path)
            times["scipy"].append(timed(_scipy_spectrogram, segment.data))
            times["kernel"].append(timed(segment_features, segment.channels_major, plan))
            times["families"].append(timed(segment_features, segment.channels_major, every))
            times["winners"].append(timed(segment_features, segment.channels_major, theirs))
            times["fft floor"].append(timed(_fft_floor, frames))
    return medians(times)


def _fft_floor(frames: np.ndarray) -> None:
    """Every frame's FFT and nothing else, on all cores: no feature code can beat it."""
    scipy.fft.rfft(frames, axis=-1, workers=os.cpu_count())


def _load_only(path: Path) -> int:
    return _loadmat(path).shape[0]


def _whole_path(root: Path, paths: list[Path], reps: int, workers: int) -> dict[str, float]:
    """Wall seconds per segment: `make features` on all cores vs loadmat alone, alternating."""
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        folder = Path(scratch) / "segments" / "train_1"
        folder.mkdir(parents=True)
        for path in paths:
            os.link(path, folder / path.name)
        where = [
            "data.source=dir",
            f"data.data_dir={folder.parent}",
            f"data.root={scratch}/data",
            f"features.cache_root={scratch}/cache",
        ]
        configs = {
            "make features": load_config(overrides=[*where, "features.families=power"]),
            "make features, default families": load_config(overrides=where),
        }
        options = pipeline.Options(workers=workers, progress=False)
        pipeline.run(configs["make features"], ["data"], options)
        for config in configs.values():  # warm: page cache, numba cache
            pipeline.run(config, ["features"], options)
        times = {"loadmat alone": [], **{name: [] for name in configs}}
        for _ in range(reps):
            start = time.perf_counter()
            with closing(parallel_map(_load_only, paths, workers)) as loaded:
                list(loaded)
            times["loadmat alone"].append((time.perf_counter() - start) / len(paths))
            for name, config in configs.items():
                shutil.rmtree(f"{scratch}/cache")
                start = time.perf_counter()
                report = pipeline.run(config, ["features"], options)["features"]
                times[name].append((time.perf_counter() - start) / len(paths))
                assert report.ok and report.computed == len(paths)
    return medians(times)


def _peak_rss_after(path: Path) -> int:
    """In a worker: peak RSS (bytes) after the stage's own work on one segment."""
    from deepsync.features.stage import compute_segment, shapes_of

    params = _winners()  # every family, the winners' too: the most memory
    compute_segment((0, str(path), [], params, shapes_of(params, read_segment(path), 1)))
    return own_peak_rss()


def _worker_peak_rss(paths: list[Path], workers: int) -> int:
    with closing(parallel_map(_peak_rss_after, paths, max(workers, 2), in_worker)) as peaks:
        return max(peaks)


def _report(per: dict[str, float], whole: dict[str, float], workers: int, rss: int) -> None:
    ms = {k: v * 1000 for k, v in per.items()}
    print("\nper segment, one process (median ms):")
    for name, label in (
        ("loadmat", "scipy.io.loadmat"),
        ("decode", "our decode (read_segment)"),
        ("scipy", "per-channel scipy.signal.spectrogram"),
        ("kernel", "our kernel (segment_features, all threads)"),
        ("families", "the same with the default families"),
        ("winners", "the same with the winners' four too"),
        ("fft floor", "FFT floor: scipy.fft.rfft of all frames, all cores"),
    ):
        print(f"  {label:<46} {ms[name]:8.1f}")
    kernel_ratio = per["scipy"] / per["kernel"]
    print(
        f"  kernel vs per-channel scipy: {kernel_ratio:.2f}x faster "
        f"(target {KERNEL_TARGET:.0f}x: {'met' if kernel_ratio >= KERNEL_TARGET else 'NOT met'})"
    )
    print(f"  kernel vs FFT floor: {per['kernel'] / per['fft floor']:.2f}x the floor (target 2x)")
    print(f"  decode vs loadmat: {per['loadmat'] / per['decode']:.2f}x faster")
    families = per["families"] / per["kernel"]
    print(f"  default families (all, rlp) vs band powers only: {families:.2f}x the time")
    theirs = per["winners"] / per["kernel"]
    print(f"  with the winners' families (PROFILE=winners) vs band powers: {theirs:.2f}x")
    print(f"\nwhole path, {workers} processes (median ms per segment, wall):")
    for name, value in whole.items():
        print(f"  {name:<46} {value * 1000:8.1f}")
    ratio = whole["loadmat alone"] / whole["make features"]
    print(
        f"  make features vs loadmat alone: {ratio:.2f}x "
        f"({'faster: target met' if ratio > 1 else 'slower: target NOT met'})"
    )
    ratio = whole["make features, default families"] / whole["make features"]
    met = "met" if ratio <= FAMILIES_TARGET else "NOT met"
    print(
        f"  default families vs band powers only: {ratio:.2f}x the time per segment "
        f"(target at most {FAMILIES_TARGET:.0f}x: {met})"
    )
    print(f"\npeak RSS per worker: {rss / 2**20:.0f} MiB (target under 600 MB)")


if __name__ == "__main__":
    raise SystemExit(main())
