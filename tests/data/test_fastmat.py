"""The fast MAT v5 reader: loadmat's answer on every file it takes, `NotRecognised` otherwise."""

import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
import scipy.io
import scipy.sparse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deepsync.data import fastmat
from deepsync.data.fastmat import NotRecognised, decode_mat, read_mat
from deepsync.data.segment import (
    MAT_HEADER_BYTES,
    SegmentIntegrityWarning,
    read_segment,
    write_segment,
)
from deepsync.errors import DeepSyncError

FIXTURE = HealthCheck.function_scoped_fixture  # tmp_path is reused across examples: fine
INFLATES = [fastmat.INFLATE, fastmat.inflate_zlib]  # default: libdeflate, else isal, else zlib
KAGGLE = ("iEEGsamplingRate", "sequence")

# MAT v5 codes, written out here rather than taken from the module under test.
MI = {"int8": 1, "uint8": 2, "int16": 3, "uint16": 4, "int32": 5, "uint32": 6}
MI |= {"single": 7, "double": 9, "int64": 12, "uint64": 13, "matrix": 14, "compressed": 15}
MX = {"struct": 2, "double": 6, "single": 7, "int8": 8, "uint8": 9, "int16": 10}
MX |= {"uint16": 11, "int32": 12, "uint32": 13, "int64": 14, "uint64": 15}
MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8"}
MI_DTYPES |= {12: "i8", 13: "u8"}
MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4"}
MX_DTYPES |= {14: "i8", 15: "u8"}


def signal(samples=400, channels=16, seed=0):
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, 30, (samples, channels))).astype(np.float32)


# --- a hand-made MAT v5 writer: what MATLAB writes and scipy does not -------------------------


def element(kind, payload, order="<"):
    """A data element: small format for 1..4 bytes (as MATLAB writes), else tag and padding."""
    if 0 < len(payload) <= 4:
        return struct.pack(order + "I", len(payload) << 16 | kind) + payload.ljust(4, b"\0")
    return struct.pack(order + "II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def matrix(array_class, dims, parts, name="", flags=0, order="<"):
    """An miMATRIX element: array flags, dimensions, name, then ``parts`` (bytes)."""
    body = (
        element(MI["uint32"], struct.pack(order + "II", array_class | flags, 0), order)
        + element(MI["int32"], struct.pack(f"{order}{len(dims)}i", *dims), order)
        + element(MI["int8"], name.encode(), order)
        + parts
    )
    return struct.pack(order + "II", MI["matrix"], len(body)) + body


def numeric(values, array_class, stored, name="", order="<"):
    """A real 2-D matrix of class ``array_class`` whose values are stored as type ``stored``."""
    values = np.asarray(values)
    data = values.astype(np.dtype(MI_DTYPES[stored]).newbyteorder(order)).tobytes(order="F")
    return matrix(array_class, values.shape, element(stored, data, order), name, order=order)


def struct_1x1(name, fields, name_length=32):
    """A 1x1 struct holding ``fields`` ({name: matrix element without name})."""
    names = b"".join(f.encode().ljust(name_length, b"\0") for f in fields)
    parts = element(MI["int32"], struct.pack("<i", name_length)) + element(MI["int8"], names)
    return matrix(MX["struct"], (1, 1), parts + b"".join(fields.values()), name)


def mat_file(*variables, compress=True, order="<"):
    """A MAT v5 file: header, then each variable bare or as an miCOMPRESSED element."""
    text = b"MATLAB 5.0 MAT-file, Platform: hand-made for tests".ljust(116)
    mark = b"IM" if order == "<" else b"MI"
    content = text + b" " * 8 + struct.pack(order + "H", 0x0100) + mark
    for variable in variables:
        if compress:
            packed = zlib.compress(variable)
            variable = struct.pack(order + "II", MI["compressed"], len(packed)) + packed
        content += variable
    return content


def matlab_style_segment(x, sequence=3, compress=True):
    """A Kaggle file as MATLAB writes it: doubles holding integers stored as small integers."""
    fields = {
        "data": numeric(x, MX["single"], MI["single"]),
        "iEEGsamplingRate": numeric([[400.0]], MX["double"], MI["uint16"]),  # small element
        "nSamplesSegment": numeric([[float(len(x))]], MX["double"], MI["uint32"]),
        "channelIndices": numeric(np.arange(1.0, 17.0)[None, :], MX["double"], MI["uint8"]),
    }
    if sequence is not None:
        fields["sequence"] = numeric([[float(sequence)]], MX["double"], MI["uint8"])
    return mat_file(struct_1x1("dataStruct", fields), compress=compress)


# --- comparing with loadmat ------------------------------------------------------------------


def assert_matches_loadmat(path, inflate=fastmat.INFLATE):
    """The fast reader gives exactly what loadmat gives, in the promised layout."""
    mat = read_mat(path, inflate=inflate)
    variables = scipy.io.loadmat(path)
    if "dataStruct" in variables:
        fields = variables["dataStruct"][0, 0]
        names = fields.dtype.names
    else:
        fields, names = variables, ("data",)
    data = fields["data"]
    assert mat.signal.dtype == np.float32 and mat.signal.flags.c_contiguous
    assert not mat.signal.flags.writeable
    assert mat.signal.shape == data.shape[::-1]
    assert np.array_equal(mat.signal, data.T.astype(np.float32), equal_nan=True)
    for name, value in zip(KAGGLE, (mat.sampling_rate, mat.sequence), strict=True):
        expected = fields[name].reshape(-1)[0] if name in names and fields[name].size else None
        assert (value is None) == (expected is None), name
        assert value is None or np.array_equal(value, expected, equal_nan=True), name
    if "channelIndices" in names:
        expected = fields["channelIndices"]
        assert mat.channel_indices.shape == expected.shape
        assert np.array_equal(mat.channel_indices, expected, equal_nan=True)
    else:
        assert mat.channel_indices is None
    return mat


def assert_not_recognised(path):
    for inflate in INFLATES:
        with pytest.raises(NotRecognised):
            read_mat(path, inflate=inflate)


# --- files the reader takes ------------------------------------------------------------------


@pytest.mark.parametrize("inflate", INFLATES, ids=["default", "zlib"])
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("sequence", [3, None])
def test_kaggle_files_match_loadmat(tmp_path, compress, sequence, inflate):
    x = signal(401)  # odd sample count: the data element needs padding
    path = tmp_path / "1_3_1.mat"
    write_segment(path, x, sequence=sequence, compress=compress)
    mat = assert_matches_loadmat(path, inflate)
    assert np.array_equal(mat.signal, x.T) and mat.sequence == sequence


@pytest.mark.parametrize("inflate", INFLATES, ids=["default", "zlib"])
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_re_release_files_match_loadmat(tmp_path, compress, dtype, inflate):
    x = (signal(77) / 7).astype(dtype)  # float64 values with no exact float32
    path = tmp_path / "Pat1Train_1_0.mat"
    scipy.io.savemat(path, {"data": x}, do_compression=compress)
    mat = assert_matches_loadmat(path, inflate)
    assert mat.sampling_rate is None and mat.sequence is None
    assert np.array_equal(mat.signal, x.T.astype(np.float32))


@pytest.mark.parametrize("samples", [0, 1, 2, 3, 5, 401])
@pytest.mark.parametrize("channels", [1, 3, 16])
def test_odd_shapes_match_loadmat(tmp_path, samples, channels):
    path = tmp_path / "a.mat"
    scipy.io.savemat(path, {"data": signal(samples, channels)})
    assert_matches_loadmat(path)
    for compress in (True, False):
        write_segment(path, signal(samples, channels), sequence=1, compress=compress)
        assert_matches_loadmat(path)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("sequence", [6, None])
def test_matlab_style_small_integer_storage(tmp_path, compress, sequence):
    x = signal(3)
    path = tmp_path / "1_6_0.mat"
    path.write_bytes(matlab_style_segment(x, sequence, compress))
    mat = assert_matches_loadmat(path)
    assert mat.sampling_rate == 400.0 and mat.sequence == sequence
    assert mat.channel_indices.dtype == np.float64  # the class, not the stored uint8
    segment = read_segment(path)
    assert np.array_equal(segment.data, x) and segment.sequence == sequence
    assert segment.channel_indices == tuple(range(1, 17))


@pytest.mark.parametrize("array_class", sorted(MX_DTYPES))
@pytest.mark.parametrize("stored", sorted(MI_DTYPES))
def test_every_numeric_storage_of_every_class(tmp_path, array_class, stored):
    """Each element type under each class: exact casts are read, others are left to scipy."""
    values = np.arange(48).reshape(3, 16) % 100  # fits every type
    path = tmp_path / "a.mat"
    path.write_bytes(mat_file(numeric(values, array_class, stored, "data"), compress=False))
    exact = np.can_cast(MI_DTYPES[stored], MX_DTYPES[array_class], "safe")
    if exact:
        assert_matches_loadmat(path)
    else:
        assert_not_recognised(path)
    assert np.array_equal(read_segment(path).data, values)


def test_double_data_stored_as_int16_like_matlab(tmp_path):
    x = signal(5).astype(np.float64)
    path = tmp_path / "Pat1Test_1_0.mat"
    path.write_bytes(mat_file(numeric(x, MX["double"], MI["int16"], "data")))
    assert_matches_loadmat(path)
    assert np.array_equal(read_segment(path).data, x)


def test_uncompressed_signal_is_a_view_of_the_file_bytes(tmp_path):
    x = signal(9)
    write_segment(tmp_path / "a.mat", x, sequence=1, compress=False)
    raw = (tmp_path / "a.mat").read_bytes()
    mat = decode_mat(raw)
    assert np.shares_memory(mat.signal, np.frombuffer(raw, np.uint8))
    write_segment(tmp_path / "b.mat", x, sequence=1)
    assert not read_mat(tmp_path / "b.mat").signal.flags.owndata  # a view of inflated bytes


def test_isal_and_zlib_inflate_alike():
    pytest.importorskip("isal")
    stream = memoryview(zlib.compress(signal(1000).tobytes(), 3))
    assert fastmat.inflate_isal(stream) == fastmat.inflate_zlib(stream)
    assert fastmat.FALLBACK_INFLATE is fastmat.inflate_isal
    if fastmat.LIBDEFLATE is None:
        assert fastmat.INFLATE is fastmat.inflate_isal


def compressed_element(tmp_path, x):
    """The zlib stream of a compressed segment file's one element."""
    write_segment(tmp_path / "a.mat", x, sequence=1)
    return memoryview(bytearray((tmp_path / "a.mat").read_bytes()[MAT_HEADER_BYTES + 8 :]))


needs_libdeflate = pytest.mark.skipif(fastmat.LIBDEFLATE is None, reason="no libdeflate")


@needs_libdeflate
def test_libdeflate_inflates_as_zlib(tmp_path):
    assert fastmat.INFLATE is fastmat.inflate_libdeflate
    stream = compressed_element(tmp_path, signal(1000))
    out = fastmat.inflate_libdeflate(stream)
    assert out.dtype == np.uint8 and out.tobytes() == fastmat.inflate_zlib(stream)
    plain = memoryview(zlib.compress(signal(1000).tobytes(), 3))  # no MAT tag: the fallback
    assert bytes(fastmat.inflate_libdeflate(plain)) == fastmat.inflate_zlib(plain)
    for tiny in (b"", b"abc", b"abcdefgh"):  # shorter than a tag, exactly one
        stream = memoryview(zlib.compress(tiny))
        assert bytes(fastmat.inflate_libdeflate(stream)) == tiny


@needs_libdeflate
def test_libdeflate_refuses_what_zlib_refuses(tmp_path):
    good = bytes(compressed_element(tmp_path, signal(1000)))
    corrupt = bytearray(good)
    corrupt[len(good) // 2] ^= 0xFF
    checksum = bytearray(good)
    checksum[-1] ^= 0xFF
    for bad in (good[:-1], good[: len(good) // 2], good + b"more", corrupt, checksum, b""):
        with pytest.raises(NotRecognised):
            fastmat.inflate_libdeflate(memoryview(bytes(bad)))
        with pytest.raises(NotRecognised):
            fastmat.inflate_zlib(memoryview(bytes(bad)))


@needs_libdeflate
def test_libdeflate_with_a_tag_that_lies_about_the_size():
    for size in (0, 100, 2**32 - 1):  # too small, too big, beyond any deflate ratio
        body = struct.pack("<II", 14, size) + b"\1" * 1000
        stream = memoryview(zlib.compress(body))
        assert bytes(fastmat.inflate_libdeflate(stream)) == body


def test_without_isal_zlib_reads_the_same(tmp_path):
    """Kaggle's kernel image has no isal: a fresh interpreter where it cannot import."""
    x = signal(11)
    write_segment(tmp_path / "a.mat", x, sequence=2)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np; sys.modules['isal'] = None\n"
        "from deepsync.data import fastmat\n"
        "assert fastmat.isal_zlib is None and fastmat.FALLBACK_INFLATE is fastmat.inflate_zlib\n"
        "assert fastmat.INFLATE in (fastmat.inflate_zlib, fastmat.inflate_libdeflate)\n"
        "for inflate in (fastmat.INFLATE, fastmat.inflate_zlib):\n"
        "    mat = fastmat.read_mat(sys.argv[1] + '/a.mat', inflate=inflate)\n"
        "    assert np.array_equal(mat.signal, np.load(sys.argv[1] + '/x.npy').T)\n"
        "    assert mat.sequence == 2\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[FIXTURE])
@given(
    data=st.integers(1, 30).flatmap(
        lambda n: arrays(
            np.float32,
            (n, 16),
            elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
        )
    ),
    sequence=st.none() | st.integers(1, 6),
    compress=st.booleans(),
)
def test_random_segments_round_trip(tmp_path, data, sequence, compress):
    path = tmp_path / "1_1_0.mat"
    write_segment(path, data, sequence=sequence, compress=compress)
    assert_matches_loadmat(path)
    segment = read_segment(path)
    assert np.array_equal(segment.data, data) and segment.sequence == sequence


# --- files left to scipy ---------------------------------------------------------------------


def corrupt_like_1_45_1(path):
    """Extra bytes after the variable inside the compressed element (loadmat refuses them)."""
    raw = path.read_bytes()
    body = zlib.decompress(raw[MAT_HEADER_BYTES + 8 :])
    packed = zlib.compress(body + b"\0" * 64)
    path.write_bytes(raw[:MAT_HEADER_BYTES] + struct.pack("<II", 15, len(packed)) + packed)


def bytes_after_the_stream(path):
    """Bytes after the zlib stream's end but inside the compressed element."""
    raw = path.read_bytes() + b"garbage!"
    size = len(raw) - MAT_HEADER_BYTES - 8
    path.write_bytes(raw[:MAT_HEADER_BYTES] + struct.pack("<II", 15, size) + raw[136:])


@pytest.mark.parametrize("damage", [corrupt_like_1_45_1, bytes_after_the_stream])
def test_leftover_bytes_in_the_compressed_element_go_to_scipy(tmp_path, damage):
    x = signal()
    path = tmp_path / "1_45_1.mat"
    write_segment(path, x, sequence=3)
    damage(path)
    assert_not_recognised(path)
    with warnings.catch_warnings():  # the integrity warning is test_segment's business
        warnings.simplefilter("ignore", SegmentIntegrityWarning)
        assert np.array_equal(read_segment(path).data, x)


@pytest.mark.parametrize("compress", [True, False])
def test_every_truncation_is_not_recognised(tmp_path, compress):
    path = tmp_path / "1_1_0.mat"
    write_segment(path, signal(3), sequence=1, compress=compress)
    raw = path.read_bytes()
    for cut in range(len(raw)):
        with pytest.raises(NotRecognised):
            decode_mat(raw[:cut])
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DeepSyncError, match="1_1_0.mat"):
        read_segment(path)


def unrecognised_files(x):
    """(name, variables for savemat) of files outside the fast reader, that scipy reads."""
    struct_fields = {"data": x, "iEEGsamplingRate": 400.0, "sequence": 1.0}
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = x
    return {
        "cell array": {"data": cell},
        "complex": {"data": x.astype(np.complex64)},
        "logical": {"data": x > 0},
        "text": {"data": np.array(["text"])},
        "3-D": {"data": x[None]},
        "nested struct": {"dataStruct": struct_fields | {"extra": {"a": 1.0}}},
        "unknown field": {"dataStruct": struct_fields | {"extra": 1.0}},
        "struct array": {"dataStruct": np.array([(x,), (x,)], dtype=[("data", object)])},
        "two variables": {"data": x, "other": 1.0},
        "other name": {"eeg": x},
        "sparse": {"data": scipy.sparse.csc_matrix(x)},
    }


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("kind", sorted(unrecognised_files(signal(3))))
def test_unrecognised_files_go_to_scipy(tmp_path, kind, compress):
    x = signal(3)
    path = tmp_path / "a.mat"
    scipy.io.savemat(path, unrecognised_files(x)[kind], do_compression=compress)
    assert_not_recognised(path)
    readable = {"nested struct": x, "unknown field": x, "two variables": x, "logical": x > 0}
    if kind in readable:  # loadmat reads a logical matrix as uint8: a numeric segment
        assert np.array_equal(read_segment(path).data, readable[kind])
    else:
        with pytest.raises(DeepSyncError, match="a.mat"):
            read_segment(path)


def test_big_endian_file_goes_to_scipy(tmp_path):
    x = signal(3)
    path = tmp_path / "a.mat"
    path.write_bytes(mat_file(numeric(x, MX["single"], MI["single"], "data", ">"), order=">"))
    assert_not_recognised(path)
    assert np.array_equal(scipy.io.loadmat(path)["data"], x)  # the hand-made file is valid
    assert np.array_equal(read_segment(path).data, x)


@pytest.mark.parametrize("length", [0, 100, 127, 128, 135, 136, 1000])
def test_garbage_is_not_recognised(length):
    raw = bytes(np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8))
    with pytest.raises(NotRecognised):
        decode_mat(raw)
    with pytest.raises(NotRecognised):
        decode_mat(b"MATLAB 5.0 MAT-file" + raw)


@settings(max_examples=300, deadline=None)
@given(
    compress=st.booleans(),
    sequence=st.none() | st.integers(1, 6),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_damaged_files_are_refused_or_read_as_loadmat_reads_them(
    tmp_path_factory, compress, sequence, edits
):
    """Bytes overwritten anywhere: the reader refuses the file or agrees with loadmat."""
    path = tmp_path_factory.mktemp("damaged") / "1_1_0.mat"
    write_segment(path, signal(3), sequence=sequence, compress=compress)
    raw = bytearray(path.read_bytes())
    for position, value in edits:
        raw[position % len(raw)] = value
    path.write_bytes(raw)
    try:
        read_mat(path)
    except NotRecognised:
        return
    assert_matches_loadmat(path)


def test_a_nul_counted_into_a_variable_name_goes_to_scipy(tmp_path):
    """A damaged name length (10 -> 11) takes the padding's NUL into the name: loadmat then
    names the variable 'dataStruct\\x00', so the fast reader must not call it dataStruct
    (found by the damaged-files property test: position 172, value 11)."""
    path = tmp_path / "1_1_0.mat"
    write_segment(path, signal(3), sequence=None, compress=False)
    raw = bytearray(path.read_bytes())
    assert raw[172] == 10 and bytes(raw[176:186]) == b"dataStruct"
    raw[172] = 11
    path.write_bytes(raw)
    assert "dataStruct\x00" in scipy.io.loadmat(path)
    assert_not_recognised(path)
