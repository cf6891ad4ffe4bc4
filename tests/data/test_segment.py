"""The one segment reader and writer: real .mat files, every failure named."""

import warnings
import zlib

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepsync.data import fastmat
from deepsync.data.segment import (
    MAT_HEADER_BYTES,
    Segment,
    SegmentIntegrityWarning,
    read_segment,
    write_segment,
)
from deepsync.errors import DeepSyncError

FIXTURE = HealthCheck.function_scoped_fixture  # tmp_path is reused across examples: fine


def signal(samples=400, channels=16, seed=0):
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, 30, (samples, channels))).astype(np.float32)


@pytest.mark.parametrize("compress", [True, False])
def test_written_file_reads_back_like_the_real_ones(tmp_path, compress):
    x = signal()
    path = tmp_path / "1_3_1.mat"
    write_segment(path, x, sequence=3, compress=compress)
    raw = path.read_bytes()
    assert raw.startswith(b"MATLAB 5.0 MAT-file")
    element_type = np.frombuffer(raw[MAT_HEADER_BYTES : MAT_HEADER_BYTES + 4], "<u4")[0]
    assert element_type == (15 if compress else 14)  # miCOMPRESSED / miMATRIX
    struct = scipy.io.loadmat(path)["dataStruct"]
    assert struct.shape == (1, 1)
    assert struct.dtype.names == (
        "data",
        "iEEGsamplingRate",
        "nSamplesSegment",
        "channelIndices",
        "sequence",
    )
    fields = struct[0, 0]
    assert fields["data"].dtype == np.float32 and np.array_equal(fields["data"], x)
    assert fields["iEEGsamplingRate"].tolist() == [[400.0]]
    assert fields["nSamplesSegment"].tolist() == [[400.0]]
    assert fields["channelIndices"].tolist() == [list(map(float, range(1, 17)))]
    assert fields["sequence"].tolist() == [[3.0]]
    segment = read_segment(path)
    assert np.array_equal(segment.data, x) and segment.sequence == 3
    assert segment.sampling_rate == 400 and segment.channel_indices == tuple(range(1, 17))


def test_test_files_have_no_sequence(tmp_path):
    write_segment(tmp_path / "new_1_1.mat", signal(), sequence=None)
    names = scipy.io.loadmat(tmp_path / "new_1_1.mat")["dataStruct"].dtype.names
    assert "sequence" not in names
    assert read_segment(tmp_path / "new_1_1.mat").sequence is None


def test_compressed_file_is_smaller_and_no_partial_left(tmp_path):
    write_segment(tmp_path / "a.mat", signal(4000), sequence=1)
    write_segment(tmp_path / "b.mat", signal(4000), sequence=1, compress=False)
    assert (tmp_path / "a.mat").stat().st_size < (tmp_path / "b.mat").stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mat", "b.mat"]


def test_dropout_fraction(tmp_path):
    x = signal(1000)
    x[100:350] = 0
    x[500, :8] = 0  # only some electrodes: not dropout
    write_segment(tmp_path / "a.mat", x, sequence=1)
    assert read_segment(tmp_path / "a.mat").dropout_fraction == pytest.approx(0.25)


def test_re_release_mat_and_csv(tmp_path):
    x = signal(50)
    scipy.io.savemat(tmp_path / "Pat1Train_1_0.mat", {"data": x}, do_compression=True)
    np.savetxt(tmp_path / "Pat1Test_2_0.csv", x, delimiter=",", fmt="%.1f")
    header = ",".join(f"ch{i}" for i in range(1, 17))
    np.savetxt(
        tmp_path / "Pat1Test_3_0.csv", x, delimiter=",", fmt="%.1f", header=header, comments=""
    )
    for name in ("Pat1Train_1_0.mat", "Pat1Test_2_0.csv", "Pat1Test_3_0.csv"):
        segment = read_segment(tmp_path / name)
        assert segment.data.dtype == np.float32
        assert np.array_equal(segment.data, x), name


def corrupt_like_1_45_1(path):
    """Extra bytes inside the compressed element: loadmat's integrity check refuses it."""
    raw = path.read_bytes()
    body = zlib.decompress(raw[MAT_HEADER_BYTES + 8 :])
    packed = zlib.compress(body + b"\0" * 64)
    tag = np.array([15, len(packed)], "<u4").tobytes()
    path.write_bytes(raw[:MAT_HEADER_BYTES] + tag + packed)


def test_integrity_failure_is_read_with_a_warning_naming_the_file(tmp_path):
    x = signal()
    path = tmp_path / "1_45_1.mat"
    write_segment(path, x, sequence=3)
    corrupt_like_1_45_1(path)
    with pytest.raises(ValueError):
        scipy.io.loadmat(path)
    with pytest.warns(SegmentIntegrityWarning, match="1_45_1.mat"):
        segment = read_segment(path)
    assert np.array_equal(segment.data, x)


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "1_1_0.mat"
    write_segment(path, signal(4000), sequence=1)
    raw = path.read_bytes()
    for cut in (len(raw) // 2, 200, 130, 60, 0):
        path.write_bytes(raw[:cut])
        with pytest.raises(DeepSyncError, match="1_1_0.mat"), warnings.catch_warnings():
            warnings.simplefilter("error")
            read_segment(path)


@settings(max_examples=30, deadline=None, suppress_health_check=[FIXTURE])
@given(st.binary(min_size=0, max_size=2000))
def test_garbage_raises_the_user_error(tmp_path, garbage):
    path = tmp_path / "2_1_0.mat"
    path.write_bytes(garbage)
    with pytest.raises(DeepSyncError, match="2_1_0.mat"):
        read_segment(path)


@settings(max_examples=25, deadline=None, suppress_health_check=[FIXTURE])
@given(st.tuples(st.integers(1, 40), st.integers(1, 40)).filter(lambda s: s[1] != 16))
def test_wrong_shapes_are_refused(tmp_path, shape):
    path = tmp_path / "3_1_0.mat"
    scipy.io.savemat(path, {"data": np.zeros(shape, np.float32)})
    with pytest.raises(DeepSyncError, match=r"3_1_0.mat.*expected"):
        read_segment(path)


def test_electrodes_on_rows_are_named(tmp_path):
    path = tmp_path / "a.mat"
    scipy.io.savemat(path, {"data": np.zeros((16, 400), np.float32)})
    with pytest.raises(DeepSyncError, match="electrodes on rows"):
        read_segment(path)


def test_wrong_variables_are_refused(tmp_path):
    path = tmp_path / "a.mat"
    scipy.io.savemat(path, {"eeg": signal()})
    with pytest.raises(DeepSyncError, match="found: eeg"):
        read_segment(path)
    scipy.io.savemat(path, {"dataStruct": {"signal": signal()}})
    with pytest.raises(DeepSyncError, match="no 'data' field"):
        read_segment(path)
    scipy.io.savemat(path, {"data": np.array(["text"])})
    with pytest.raises(DeepSyncError, match="expected"):
        read_segment(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused(tmp_path, bad):
    x = signal()
    x[10, 3] = bad
    write_segment(tmp_path / "a.mat", x, sequence=1)
    with pytest.raises(DeepSyncError, match="NaN or Inf"):
        read_segment(tmp_path / "a.mat")


def test_missing_file(tmp_path):
    with pytest.raises(DeepSyncError, match="not found"):
        read_segment(tmp_path / "nope.mat")


def scipy_only(monkeypatch):
    """Send every .mat to the scipy path, as if the fast reader recognised nothing."""

    def not_recognised(path, **kwargs):
        raise fastmat.NotRecognised("forced by the test")

    monkeypatch.setattr(fastmat, "read_mat", not_recognised)


def segment_files(folder):
    """One file of each common kind: Kaggle compressed or not, test file, re-release."""
    x = signal(401)
    write_segment(folder / "1_1_0.mat", x, sequence=1)
    write_segment(folder / "1_2_0.mat", x, sequence=2, compress=False)
    write_segment(folder / "new_1_1.mat", x, sequence=None)
    scipy.io.savemat(folder / "Pat1Train_1_0.mat", {"data": x}, do_compression=True)
    scipy.io.savemat(folder / "Pat1Train_2_0.mat", {"data": x / 7.0})  # float64
    return sorted(folder.iterdir())


def test_fast_path_reads_the_common_files_without_scipy(tmp_path, monkeypatch):
    paths = segment_files(tmp_path)

    def no_loadmat(*args, **kwargs):
        raise AssertionError("loadmat called")

    monkeypatch.setattr(scipy.io, "loadmat", no_loadmat)
    for path in paths:
        assert read_segment(path).data.shape == (401, 16)


def test_fast_and_scipy_paths_give_identical_segments(tmp_path, monkeypatch):
    paths = segment_files(tmp_path)
    fast = [read_segment(path) for path in paths]
    scipy_only(monkeypatch)
    for path, a, b in zip(paths, fast, [read_segment(path) for path in paths], strict=True):
        assert np.array_equal(a.data, b.data), path.name
        assert a.data.dtype == b.data.dtype == np.float32, path.name
        assert a.data.flags.f_contiguous and b.data.flags.f_contiguous, path.name
        assert not a.data.flags.writeable and not b.data.flags.writeable, path.name
        assert (a.sampling_rate, a.sequence, a.channel_indices) == (
            b.sampling_rate,
            b.sequence,
            b.channel_indices,
        ), path.name


@pytest.mark.parametrize("fast", [True, False])
def test_channels_major_is_free_for_mat_files(tmp_path, monkeypatch, fast):
    if not fast:
        scipy_only(monkeypatch)
    for path in segment_files(tmp_path):
        segment = read_segment(path)
        channels_major = segment.channels_major
        assert channels_major.shape == (16, 401) and channels_major.flags.c_contiguous
        assert np.shares_memory(channels_major, segment.data), path.name
        assert np.array_equal(channels_major, segment.data.T)


def test_channels_major_of_a_c_ordered_segment_is_a_copy():
    x = signal(10)
    segment = Segment(x, 400.0, None, tuple(range(1, 17)))
    assert segment.channels_major.flags.c_contiguous
    assert np.array_equal(segment.channels_major, x.T)
    assert not np.shares_memory(segment.channels_major, x)


@pytest.mark.parametrize("fast", [True, False])
def test_both_paths_refuse_bad_data_with_the_same_message(tmp_path, monkeypatch, fast):
    if not fast:
        scipy_only(monkeypatch)
    cases = {
        "rows.mat": (np.zeros((16, 400), np.float32), "electrodes on rows"),
        "narrow.mat": (np.zeros((400, 15), np.float32), r"shape \(400, 15\); expected"),
        "nan.mat": (np.where(signal() > 50, np.nan, signal()), "NaN or Inf"),
        "inf.mat": (np.where(signal() > 50, np.inf, signal()), "NaN or Inf"),
    }
    for name, (x, message) in cases.items():
        scipy.io.savemat(tmp_path / name, {"data": x})
        with pytest.raises(DeepSyncError, match=f"{name}: .*{message}"):
            read_segment(tmp_path / name)


def test_finite_check_covers_every_block(tmp_path):
    x = signal(5000)  # 80,000 values: more than one block
    x[-1, -1] = np.nan  # the last value of the last block
    write_segment(tmp_path / "a.mat", x, sequence=1)
    with pytest.raises(DeepSyncError, match="NaN or Inf"):
        read_segment(tmp_path / "a.mat")
