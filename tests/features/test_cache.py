"""The feature cache: resumable after a kill, keyed by parameters, failures listed."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from deepsync.config import load_config
from deepsync.data.segment import read_segment
from deepsync.data.stage import prepare
from deepsync.features.cache import FeatureCache, cache_folder, read_journal
from deepsync.features.spectrogram import plan_for, segment_features
from deepsync.features.stage import build_features, summary


def configure(data_dir, root, cache_root, *extra):
    return load_config(
        overrides=[
            "data.source=dir",
            f"data.data_dir={data_dir}",
            f"data.root={root}",
            f"features.cache_root={cache_root}",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def indexed(tiny_set, tmp_path_factory):
    """The tiny set indexed, and a complete cache built in one uninterrupted run."""
    base = tmp_path_factory.mktemp("features")
    config = configure(tiny_set, base / "data", base / "cache")
    prepare(config, progress=False)
    report = build_features(config, workers=2, progress=False)
    assert report.ok and report.computed == report.total
    return config, FeatureCache.open(report.folder)


def arrays(cache):
    return [np.asarray(a) for a in (cache.stacks, cache.table, cache.windows, cache.frames)]


def every_array(cache):
    """The cache's arrays and its families' (what a rerun must give back bit for bit)."""
    return arrays(cache) + [np.asarray(cache.families[n]) for n in sorted(cache.families)]


def same_arrays(a, b):
    pairs = zip(every_array(a), every_array(b), strict=True)
    return all(np.array_equal(x, y, equal_nan=True) for x, y in pairs)  # NaN: dropout, winners


def features_command(config, cache_root, *extra):
    return [
        sys.executable,
        "-m",
        "deepsync",
        "--no-progress",
        "--workers",
        "1",
        "--set",
        f"data.root={config.data.root}",
        "--set",
        f"features.cache_root={cache_root}",
        *extra,
        "features",
    ]


def test_cache_holds_what_the_kernel_computes(indexed):
    config, cache = indexed
    ok = cache.segments[cache.segments["status"] == "ok"]
    assert len(ok) == len(cache.segments) == cache.stacks.shape[0]
    row = ok.iloc[5]
    segment = read_segment(row["path"])
    plan = plan_for(config.features, segment.data.shape[0], segment.sampling_rate)
    expected = segment_features(segment.data.T, plan)
    assert np.array_equal(cache.stacks[row["row"]], expected.image)
    assert np.isfinite(cache.stacks[:].astype(np.float32)).all()
    assert cache.segments["all_zero"].sum() == 4  # the tiny set: one per patient and split
    zero = cache.segments[cache.segments["all_zero"]]
    assert (zero["dropout"] == 1.0).all()


def test_band_power_table(indexed):
    _, cache = indexed
    table = cache.band_power_table()
    assert len(table) == cache.segments["windows_valid"].sum()
    assert {"segment", "patient", "label", "hour", "window", "e1_b1_log", "e16_b6_rel"} <= set(
        table.columns
    )
    assert np.isfinite(table.filter(like="_b").to_numpy()).all()


def test_rerun_reuses_everything(indexed):
    config, cache = indexed
    before = arrays(cache)
    report = build_features(config, workers=1, progress=False)
    assert report.computed == 0 and report.reused == report.total
    assert all(
        np.array_equal(a, b)
        for a, b in zip(before, arrays(FeatureCache.open(report.folder)), strict=True)
    )


def test_torn_journal_and_lost_rows_are_recomputed(indexed, tmp_path):
    config, cache = indexed
    folder = cache_folder(config.features)
    copy = tmp_path / "cache" / folder.name
    shutil.copytree(folder, copy)
    lines = (copy / "journal.jsonl").read_text().splitlines()
    kept = lines[:10]
    (copy / "journal.jsonl").write_text("\n".join(kept) + "\n" + lines[10][:15])  # torn write
    with open(copy / "stacks.npy", "r+b") as f:  # rows past the journal: garbage
        f.seek(-1000, os.SEEK_END)
        f.write(b"\xff" * 1000)
    (copy / "segments.csv").unlink()
    moved = configure(config.data.data_dir, config.data.root, tmp_path / "cache")
    report = build_features(moved, workers=1, progress=False)
    assert report.reused == 10 and report.computed == report.total - 10
    assert all(
        np.array_equal(a, b)
        for a, b in zip(arrays(cache), arrays(FeatureCache.open(copy)), strict=True)
    )


def test_kill_then_resume_gives_the_uninterrupted_cache(indexed, tmp_path):
    config, cache = indexed
    cache_root = tmp_path / "cache"
    args = features_command(config, cache_root)
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = (
        cache_folder(load_config(overrides=[f"features.cache_root={cache_root}"]).features)
        / "journal.jsonl"
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 3:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    finished = journal.read_text().count("\n")
    assert finished < len(cache.segments), "the run ended before it could be killed"
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished} already cached" in resumed.stdout
    assert all(
        np.array_equal(a, b)
        for a, b in zip(arrays(cache), arrays(FeatureCache.open(journal.parent)), strict=True)
    )


def test_parameters_key_the_cache(indexed, tmp_path):
    config, _ = indexed
    same = configure(config.data.data_dir, config.data.root, tmp_path)
    other = configure(config.data.data_dir, config.data.root, tmp_path, "features.bands=40")
    assert cache_folder(same.features).name == cache_folder(config.features).name
    assert cache_folder(other.features) != cache_folder(same.features)
    report = build_features(other, workers=1, progress=False)
    assert report.computed == report.total  # nothing stale served
    assert FeatureCache.open(report.folder).stacks.shape[2] == 40
    params = json.loads((report.folder / "params.json").read_text())
    assert params["bands"] == 40


def test_a_corrupt_file_is_listed_while_the_rest_is_cached(tiny_set, tmp_path):
    data = tmp_path / "copy"
    shutil.copytree(tiny_set, data)
    bad = data / "train_2" / "2_3_0.mat"
    bad.write_bytes(bad.read_bytes()[:5000])  # truncated
    config = configure(data, tmp_path / "data", tmp_path / "cache")
    prepare(config, progress=False)
    report = build_features(config, workers=2, progress=False)
    assert [path for path, _ in report.failed] == [str(bad.resolve())]
    assert report.computed == report.total - 1
    text = summary(report)
    assert "1 failed" in text and "2_3_0.mat" in text
    cache = FeatureCache.open(report.folder)
    status = cache.segments.set_index("segment")["status"]
    assert status["2_3_0.mat"] == "failed" and (status.drop("2_3_0.mat") == "ok").all()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepsync",
            "--no-progress",
            "--set",
            f"data.root={tmp_path / 'data'}",
            "--set",
            f"features.cache_root={tmp_path / 'cache'}",
            "features",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "2_3_0.mat" in result.stdout
    assert "could not be read" in result.stderr


def test_pictures_show_a_pair_per_patient(indexed, tmp_path):
    from deepsync.features.pictures import choose_pairs, save_pictures, stack_axes

    config, cache = indexed
    pairs = choose_pairs(cache, patients=5)
    labels = cache.segments.set_index("row")["label"]
    assert [p for p, _, _ in pairs] == [1, 2]
    assert all(labels[i] == 0 and labels[p] == 1 for _, i, p in pairs)
    axes = stack_axes(cache, config.features)
    assert axes.seconds == 20  # the tiny set's segments
    assert axes.band_hz[0] >= 1 and axes.band_hz[-1] <= 200  # min_hz to Nyquist
    assert np.all(np.diff(axes.band_hz) > 0)
    paths = save_pictures(cache, tmp_path / "pictures", axes, patients=1)
    assert len(paths) == 1 and paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- nothing half-written is trusted: full disks, damaged rows, two runs at once ------------


def test_a_disk_that_fills_mid_row_leaves_only_whole_rows_trusted(indexed, tmp_path, monkeypatch):
    """The disk takes part of a row (a short count), then refuses: a rerun with space left
    recomputes that row and the rest, and every array equals the uninterrupted run's."""
    config, cache = indexed
    moved = configure(config.data.data_dir, config.data.root, tmp_path / "cache")
    real, budget = os.pwrite, [cache.stacks[0].nbytes * 25 + 1234]

    def filling(fd, data, offset):
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        taken = min(len(data), budget[0])
        budget[0] -= taken
        return real(fd, bytes(data[:taken]), offset)

    monkeypatch.setattr(os, "pwrite", filling)
    with pytest.raises(OSError) as raised:
        build_features(moved, workers=1, progress=False)
    monkeypatch.undo()
    assert raised.value.errno == errno.ENOSPC and raised.value.filename.endswith(".npy")
    folder = cache_folder(moved.features)
    journalled = read_journal(folder)
    assert 0 < len(journalled) < len(cache.segments)
    assert not (folder / "segments.csv").exists()  # no finished cache is claimed
    report = build_features(moved, workers=1, progress=False)
    assert report.reused == len(journalled)
    assert report.computed == len(cache.segments) - len(journalled)
    assert same_arrays(cache, FeatureCache.open(folder))


def test_rows_whose_sync_failed_are_never_journalled(indexed, tmp_path, monkeypatch):
    """A write-back error is reported once: a second sync would pass, the data lost."""
    config, cache = indexed
    moved = configure(config.data.data_dir, config.data.root, tmp_path / "cache")
    real, calls = os.fdatasync, []

    def failing_once(fd):
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd)

    monkeypatch.setattr(os, "fdatasync", failing_once)
    with pytest.raises(OSError, match="Input/output error"):
        build_features(moved, workers=1, progress=False)
    monkeypatch.undo()
    assert len(calls) == 1 and read_journal(cache_folder(moved.features)) == {}
    report = build_features(moved, workers=1, progress=False)
    assert report.computed == report.total
    assert same_arrays(cache, FeatureCache.open(report.folder))


def test_a_damaged_row_is_computed_again(indexed, tmp_path):
    config, cache = indexed
    folder = cache_folder(config.features)
    copy = tmp_path / "cache" / folder.name
    shutil.copytree(folder, copy)
    row_bytes = cache.stacks[0].nbytes
    with open(copy / "stacks.npy", "r+b") as f:  # bytes that changed after their journal line
        f.seek(-row_bytes * 3, os.SEEK_END)
        f.write(b"\xff" * 100)
    lines = (copy / "journal.jsonl").read_text().splitlines()
    unverifiable = json.loads(lines[7])
    del unverifiable["crc"]  # a row journalled before rows had checksums
    lines[7] = json.dumps(unverifiable)
    (copy / "journal.jsonl").write_text("\n".join(lines) + "\n")
    moved = configure(config.data.data_dir, config.data.root, tmp_path / "cache")
    report = build_features(moved, workers=1, progress=False)
    assert report.computed == 2 and report.reused == report.total - 2
    assert same_arrays(cache, FeatureCache.open(copy))


@pytest.mark.skipif(
    os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"]).returncode != 0,
    reason="needs a mount namespace (root) for a small tmpfs",
)
def test_a_real_full_disk_then_a_rerun_with_space(indexed, tmp_path):
    """The issue's own reproduction: the cache on a tmpfs too small for it, then enlarged."""
    config, cache = indexed
    mount = tmp_path / "small"
    mount.mkdir()
    size = sum(p.stat().st_size for p in cache.folder.glob("*.npy")) // 3
    command = " ".join(features_command(config, mount))
    script = (
        f"mount -t tmpfs -o size={size} tmpfs {mount} && {{ {command}; echo rc=$?; "
        f"mount -o remount,size={size * 6} {mount} && {command}; echo rc=$?; "
        f"cp -r {mount}/. {tmp_path}/kept; }}"
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300
    )
    first, _, second = result.stdout.partition("rc=1")
    assert "rc=0" in second, result.stdout + result.stderr
    warned, error = result.stderr.strip().splitlines()  # at the start, and where it stopped
    assert "Traceback" not in result.stderr
    assert warned.startswith("features: warning: the feature cache needs about ")
    assert "MB free: free some space, or set features.cache_root to a bigger disk" in warned
    assert error.startswith("deepsync features: error: no space left on the disk holding")
    assert "or set features.cache_root to a folder on another disk" in error
    assert "already cached" in second and " 0 failed" in second
    assert same_arrays(cache, FeatureCache.open(tmp_path / "kept" / cache.folder.name))


def test_a_second_run_on_the_same_cache_is_refused_and_nothing_is_mixed(indexed, tmp_path):
    """Run B (another data folder, the same cache folder) while run A writes the cache."""
    config, cache = indexed
    other = tmp_path / "other"
    shutil.copytree(config.data.data_dir, other, ignore=shutil.ignore_patterns("test_*"))
    other_config = configure(other, tmp_path / "other-data", tmp_path / "cache")
    prepare(other_config, progress=False)  # an index of fewer segments
    first = subprocess.Popen(
        features_command(config, tmp_path / "cache"), stdout=subprocess.PIPE, text=True
    )
    lock = cache_folder(other_config.features) / ".deepsync.lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and str(first.pid) in lock.read_text()):
        assert first.poll() is None and time.monotonic() < deadline, "run A ended too soon"
        time.sleep(0.002)
    first.send_signal(signal.SIGSTOP)  # run A holds the cache, halfway through
    try:
        second = subprocess.run(
            features_command(other_config, tmp_path / "cache"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2 and "Traceback" not in second.stderr
    [line] = second.stderr.strip().splitlines()
    assert line.startswith(f"deepsync features: error: {lock.parent} is in use by deepsync ")
    assert f"features (PID {first.pid}, since " in line and "rerun deepsync features" in line
    assert first.wait(timeout=300) == 0
    finished = FeatureCache.open(lock.parent)
    assert len(finished.segments) == finished.stacks.shape[0] == len(cache.segments)
    assert same_arrays(cache, finished)
    assert not lock.exists()
