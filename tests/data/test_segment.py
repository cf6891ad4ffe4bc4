"""The one segment reader and writer: real .mat files, every failure named."""

import warnings
import zlib

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepsync.data.segment import (
    MAT_HEADER_BYTES,
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
