"""A minimal MAT v5 reader for the segment files this kit meets: faster than `scipy.io.loadmat`.

Decoding a 10-minute segment is nearly all zlib inflate. This reader inflates with
libdeflate (the system's ``libdeflate.so.0``, through ctypes; about 13% faster than ISA-L
here, into a buffer of the exact size) when it loads, else with ISA-L (`isal`, about twice
as fast as zlib) when it imports, else with zlib (Kaggle's kernel image has neither), and
hands back the signal as a view of the inflated bytes: MATLAB stores the (samples, channels)
matrix column-major, so its bytes already are (channels, samples), C-contiguous. The file
is read with one ``read()``; uncompressed files are not copied at all.

It knows two little-endian layouts, each one variable in one miCOMPRESSED or miMATRIX element:
- Kaggle: ``dataStruct``, a 1x1 struct of numeric fields among `KAGGLE_FIELDS`;
- the epilepsyecosystem.org re-release: a numeric matrix ``data``.

Anything else (other classes, cell arrays, sparse, complex, logical, big-endian, more
variables, bytes left over, a size that does not add up, corrupt compressed data) raises
`NotRecognised`, and the caller reads the file with scipy instead: this reader returns the
data loadmat would, or nothing. Layout and codes: MathWorks, "MAT-File Format", Level 5.
"""

from __future__ import annotations

import ctypes
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    from isal import isal_zlib
except ImportError:  # Kaggle's kernel image: zlib reads the same streams, half as fast
    isal_zlib = None

INFLATE_ERRORS = (zlib.error,) if isal_zlib is None else (zlib.error, isal_zlib.error)
LIBDEFLATE_NAMES = ("libdeflate.so.0", "libdeflate.0.dylib")  # ABI 0: every 1.x release
LIBDEFLATE_SUCCESS, LIBDEFLATE_BAD_DATA = 0, 1  # other results: the output size was wrong
SIZE_PEEK_BYTES = 1024  # compressed bytes inflated to read the element tag (and its size)
MAX_DEFLATE_RATIO = 1032  # no deflate stream inflates to more than this many times its size

HEADER_BYTES = 128  # descriptive text, subsystem data offset, version, endian mark
HEADER_TEXT = b"MATLAB 5.0 MAT-file"
HEADER_VERSION = 0x0100
LITTLE_ENDIAN_MARK = b"IM"  # 'MI' written as a native uint16 by a little-endian machine
TAG_BYTES = 8  # an element's tag: data type and byte count, two uint32 words

# Element data types; the numeric ones map to a little-endian dtype.
MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 14, 15
NUMERIC_TYPES = {
    1: np.dtype("i1"),
    2: np.dtype("u1"),
    3: np.dtype("<i2"),
    4: np.dtype("<u2"),
    5: np.dtype("<i4"),
    6: np.dtype("<u4"),
    7: np.dtype("<f4"),
    9: np.dtype("<f8"),
    12: np.dtype("<i8"),
    13: np.dtype("<u8"),
}
# Array classes: struct, and the numeric ones with the dtype MATLAB holds them in.
MX_STRUCT = 2
NUMERIC_CLASSES = {
    6: np.dtype("<f8"),
    7: np.dtype("<f4"),
    8: np.dtype("i1"),
    9: np.dtype("u1"),
    10: np.dtype("<i2"),
    11: np.dtype("<u2"),
    12: np.dtype("<i4"),
    13: np.dtype("<u4"),
    14: np.dtype("<i8"),
    15: np.dtype("<u8"),
}
CLASS_MASK = 0xFF
COMPLEX_FLAG, LOGICAL_FLAG = 0x0800, 0x0200  # array flags bits; the global bit is harmless

KAGGLE_VARIABLE, RE_RELEASE_VARIABLE = "dataStruct", "data"
KAGGLE_FIELDS = frozenset(
    {"data", "iEEGsamplingRate", "nSamplesSegment", "channelIndices", "sequence"}
)

Inflate = Callable[[memoryview], "bytes | np.ndarray"]  # any contiguous buffer of bytes
Value = np.ndarray | dict[str, np.ndarray]  # a numeric matrix, or a struct's fields


class NotRecognised(Exception):
    """The file is outside what this reader knows: read it with scipy instead."""


@dataclass(frozen=True)
class MatSegment:
    """What a segment .mat holds, as stored; the caller validates shapes and values."""

    signal: np.ndarray  # float32 (channels, samples): the data matrix transposed; read-only
    sampling_rate: float | None  # Hz: iEEGsamplingRate's first value; None if absent or empty
    sequence: float | None  # 1..6 within the hour; None if absent or empty (test files)
    channel_indices: np.ndarray | None  # channelIndices in MATLAB's shape; None if absent


def inflate_zlib(stream: memoryview) -> bytes:
    """Inflate one whole zlib stream with the standard library (the fallback)."""
    return _inflate_whole(zlib.decompressobj(), stream)


def inflate_isal(stream: memoryview) -> bytes:
    """Inflate one whole zlib stream with ISA-L: about twice as fast; needs ``isal``."""
    if isal_zlib is None:
        raise RuntimeError("isal is not installed; use inflate_zlib")
    return _inflate_whole(isal_zlib.decompressobj(), stream)


def _load_libdeflate():
    """libdeflate's (alloc, free, zlib_decompress_ex) through ctypes, or None if absent."""
    for name in LIBDEFLATE_NAMES:
        try:
            lib = ctypes.CDLL(name)
            alloc = lib.libdeflate_alloc_decompressor
            free = lib.libdeflate_free_decompressor
            decompress = lib.libdeflate_zlib_decompress_ex
        except (OSError, AttributeError):
            continue
        alloc.argtypes, alloc.restype = [], ctypes.c_void_p
        free.argtypes, free.restype = [ctypes.c_void_p], None
        decompress.argtypes = [
            ctypes.c_void_p,  # decompressor
            ctypes.c_void_p,  # in
            ctypes.c_size_t,  # in_nbytes
            ctypes.c_void_p,  # out
            ctypes.c_size_t,  # out_nbytes_avail: must be filled exactly (no actual_out)
            ctypes.POINTER(ctypes.c_size_t),  # actual_in_nbytes_ret
            ctypes.c_void_p,  # actual_out_nbytes_ret: NULL
        ]
        decompress.restype = ctypes.c_int
        return alloc, free, decompress
    return None


LIBDEFLATE = _load_libdeflate()
FALLBACK_INFLATE: Inflate = inflate_zlib if isal_zlib is None else inflate_isal


def inflate_libdeflate(stream: memoryview) -> np.ndarray:
    """Inflate one whole zlib stream with libdeflate into a uint8 array of the exact size.

    A MAT miCOMPRESSED stream holds one element, whose tag (type, byte count) comes first:
    the first 8 bytes inflated give the size. A stream that does not inflate to exactly
    that goes to `FALLBACK_INFLATE`, so any stream inflates as with zlib. Needs libdeflate.
    """
    if LIBDEFLATE is None:
        raise RuntimeError("libdeflate is not installed; use inflate_isal or inflate_zlib")
    size = _inflated_size(stream)
    if size is None:
        return FALLBACK_INFLATE(stream)
    alloc, free, decompress = LIBDEFLATE
    source = np.frombuffer(stream, np.uint8)
    out = np.empty(size, np.uint8)
    used = ctypes.c_size_t()
    decompressor = alloc()
    if not decompressor:
        raise MemoryError("libdeflate_alloc_decompressor")
    try:
        result = decompress(
            decompressor, source.ctypes.data, source.size, out.ctypes.data, size, used, None
        )
    finally:
        free(decompressor)
    if result == LIBDEFLATE_BAD_DATA:
        raise NotRecognised("compressed data: invalid or corrupt stream")
    if result != LIBDEFLATE_SUCCESS:  # another size than the tag's: let the general path say
        return FALLBACK_INFLATE(stream)
    if used.value != source.size:
        raise NotRecognised("compressed stream truncated, or bytes after it")
    return out


def _inflated_size(stream: memoryview) -> int | None:
    """Tag plus payload bytes of the element that ``stream`` starts with; None if unclear."""
    for peek in (stream[:SIZE_PEEK_BYTES], stream):
        try:
            head = zlib.decompressobj().decompress(peek, TAG_BYTES)
        except zlib.error:
            return None  # corrupt: the fallback says how
        if len(head) == TAG_BYTES:
            (size,) = struct.unpack_from("<I", head, 4)
            size += TAG_BYTES
            return size if size <= MAX_DEFLATE_RATIO * len(stream) else None
        if len(peek) == len(stream):
            break
    return None


# The fastest one present.
INFLATE: Inflate = FALLBACK_INFLATE if LIBDEFLATE is None else inflate_libdeflate


def read_mat(path: str | Path, *, inflate: Inflate = INFLATE) -> MatSegment:
    """Read a segment .mat with one ``read()``; `NotRecognised` if outside this reader."""
    with open(path, "rb") as file:
        raw = file.read()
    return decode_mat(raw, inflate=inflate)


def decode_mat(raw: bytes, *, inflate: Inflate = INFLATE) -> MatSegment:
    """Decode a whole segment .mat held in memory; arrays are views of ``raw`` where possible."""
    buffer = memoryview(raw)
    _check_header(buffer)
    name, value = _only_variable(buffer, inflate)
    if name == KAGGLE_VARIABLE and isinstance(value, dict):
        return _kaggle_segment(value)
    if name == RE_RELEASE_VARIABLE and isinstance(value, np.ndarray):
        return MatSegment(_signal(value), None, None, None)
    raise NotRecognised(f"variable {name!r} is not a segment variable")


def _check_header(buffer: memoryview) -> None:
    """A little-endian MAT v5 header followed by at least one element tag."""
    if len(buffer) < HEADER_BYTES + TAG_BYTES:
        raise NotRecognised("shorter than a MAT v5 header and one element")
    if buffer[: len(HEADER_TEXT)] != HEADER_TEXT:
        raise NotRecognised("no MAT v5 header text")
    (version,) = struct.unpack_from("<H", buffer, HEADER_BYTES - 4)
    if buffer[HEADER_BYTES - 2 : HEADER_BYTES] != LITTLE_ENDIAN_MARK or version != HEADER_VERSION:
        raise NotRecognised("not a little-endian MAT v5 file")


def _only_variable(buffer: memoryview, inflate: Inflate) -> tuple[str, Value]:
    """The file's one variable: an miMATRIX element, bare or as one miCOMPRESSED element."""
    kind, body = _whole_element(buffer, HEADER_BYTES)
    if kind == MI_COMPRESSED:
        kind, body = _whole_element(memoryview(inflate(body)), 0)
    if kind != MI_MATRIX:
        raise NotRecognised(f"variable element of type {kind}")
    return _matrix(body, in_struct=False)


def _whole_element(buffer: memoryview, pos: int) -> tuple[int, memoryview]:
    """The element at ``pos`` that fills the rest of ``buffer`` exactly: (type, payload).

    Top-level elements are not padded (a compressed one ends where its stream ends); bytes
    after it would be another variable or damage, which this reader leaves to scipy.
    """
    if len(buffer) < pos + TAG_BYTES:
        raise NotRecognised("truncated variable tag")
    kind, size = struct.unpack_from("<II", buffer, pos)
    if pos + TAG_BYTES + size != len(buffer):
        raise NotRecognised(
            f"variable of {size} bytes in {len(buffer) - pos - TAG_BYTES}: truncated, "
            "more variables, or bytes left over"
        )
    return kind, buffer[pos + TAG_BYTES :]


def _element(buffer: memoryview, pos: int, end: int) -> tuple[int, memoryview, int]:
    """The sub-element at ``pos`` in ``buffer[:end]``: (type, payload, position after it).

    A small data element packs type and byte count (1 to 4) in one word and its payload
    in the next; others have a full tag and a payload padded to 8 bytes.
    """
    if pos + TAG_BYTES > end:
        raise NotRecognised("truncated element tag")
    word, size = struct.unpack_from("<II", buffer, pos)
    if word >> 16:  # small data element
        kind, size = word & 0xFFFF, word >> 16
        if size > 4:
            raise NotRecognised(f"small data element of {size} bytes")
        return kind, buffer[pos + 4 : pos + 4 + size], pos + TAG_BYTES
    after = pos + TAG_BYTES + size + (-size % 8)
    if after > end:
        raise NotRecognised("element runs past its parent")
    return word, buffer[pos + TAG_BYTES : pos + TAG_BYTES + size], after


def _matrix(body: memoryview, *, in_struct: bool) -> tuple[str, Value]:
    """An miMATRIX payload: (name, value), a 2-D numeric matrix or a top-level 1x1 struct."""
    end = len(body)
    array_class, dims, name, pos = _array_header(body, end)
    if array_class in NUMERIC_CLASSES:
        value, pos = _numeric(body, pos, end, dims, NUMERIC_CLASSES[array_class])
    elif array_class == MX_STRUCT and not in_struct:
        value, pos = _struct_fields(body, pos, end, dims)
    else:
        raise NotRecognised(f"array class {array_class}")
    if pos != end:
        raise NotRecognised(f"{end - pos} bytes left in array {name!r}")
    return name, value


def _array_header(body: memoryview, end: int) -> tuple[int, tuple[int, int], str, int]:
    """An array's flags, dimensions and name: (class, (rows, columns), name, position after)."""
    kind, flags, pos = _element(body, 0, end)
    if kind != MI_UINT32 or len(flags) != 8:
        raise NotRecognised("no array flags")
    (flag_word,) = struct.unpack_from("<I", flags)
    if flag_word & (COMPLEX_FLAG | LOGICAL_FLAG):
        raise NotRecognised("complex or logical array")
    kind, dims_bytes, pos = _element(body, pos, end)
    if kind != MI_INT32 or len(dims_bytes) != 8:
        raise NotRecognised("not a 2-D array")
    dims = struct.unpack("<ii", dims_bytes)
    if min(dims) < 0:
        raise NotRecognised(f"negative dimensions {dims}")
    kind, name_bytes, pos = _element(body, pos, end)
    if kind != MI_INT8:
        raise NotRecognised(f"array name of type {kind}")
    if b"\0" in bytes(name_bytes):  # an array name's length is its own: loadmat keeps a NUL
        raise NotRecognised(f"array name {bytes(name_bytes)!r} holds a NUL")
    return flag_word & CLASS_MASK, dims, _ascii(name_bytes), pos


def _numeric(
    body: memoryview, pos: int, end: int, dims: tuple[int, int], class_dtype: np.dtype
) -> tuple[np.ndarray, int]:
    """A real numeric matrix in MATLAB's shape (Fortran-ordered view of the payload).

    MATLAB may store a class's values in a smaller type (a double 400 as miUINT16); only
    casts that keep every value exactly are recognised, so the result equals loadmat's.
    """
    kind, payload, pos = _element(body, pos, end)
    stored = NUMERIC_TYPES.get(kind)
    if stored is None:
        raise NotRecognised(f"numeric data of type {kind}")
    if len(payload) != dims[0] * dims[1] * stored.itemsize:
        raise NotRecognised(f"{len(payload)} bytes for a {dims} array of {stored}")
    values = np.frombuffer(payload, dtype=stored)
    if stored != class_dtype:
        if not np.can_cast(stored, class_dtype, "safe"):
            raise NotRecognised(f"{class_dtype} class stored as {stored}")
        values = values.astype(class_dtype)
    return values.reshape(dims, order="F"), pos


def _struct_fields(
    body: memoryview, pos: int, end: int, dims: tuple[int, int]
) -> tuple[dict[str, np.ndarray], int]:
    """A 1x1 struct of numeric fields: {field name: matrix}."""
    if dims != (1, 1):
        raise NotRecognised(f"struct array of shape {dims}")
    kind, length_bytes, pos = _element(body, pos, end)
    if kind != MI_INT32 or len(length_bytes) != 4:
        raise NotRecognised("no field name length")
    (length,) = struct.unpack("<i", length_bytes)
    kind, names_bytes, pos = _element(body, pos, end)
    if kind != MI_INT8 or length <= 0 or not names_bytes or len(names_bytes) % length:
        raise NotRecognised("malformed field names")
    names = [_ascii(names_bytes[i : i + length]) for i in range(0, len(names_bytes), length)]
    if len(set(names)) != len(names):
        raise NotRecognised(f"repeated field names {names}")
    fields = {}
    for name in names:
        kind, field_body, pos = _element(body, pos, end)
        if kind != MI_MATRIX:
            raise NotRecognised(f"field {name!r} of type {kind}")
        field_name, fields[name] = _matrix(field_body, in_struct=True)
        if field_name:
            raise NotRecognised(f"field {name!r} has a name of its own")
    return fields, pos


def _ascii(raw: memoryview) -> str:
    """A NUL-padded ASCII name; anything after the first NUL must be NUL."""
    text, _, padding = bytes(raw).partition(b"\0")
    if padding.strip(b"\0") or not text.isascii():
        raise NotRecognised(f"name {bytes(raw)!r}")
    return text.decode("ascii")


def _kaggle_segment(fields: dict[str, np.ndarray]) -> MatSegment:
    """The Kaggle struct's fields as a segment; other or missing fields are not recognised."""
    if "data" not in fields or not fields.keys() <= KAGGLE_FIELDS:
        raise NotRecognised(f"dataStruct fields {sorted(fields)}")
    return MatSegment(
        _signal(fields["data"]),
        _first_value(fields.get("iEEGsamplingRate")),
        _first_value(fields.get("sequence")),
        fields.get("channelIndices"),
    )


def _signal(matrix: np.ndarray) -> np.ndarray:
    """The (samples, channels) data matrix as float32 (channels, samples), read-only.

    The transpose of a Fortran-ordered matrix is C-contiguous: free for float32 data.
    """
    signal = matrix.T.astype(np.float32, copy=False)
    signal.flags.writeable = False
    return signal


def _first_value(matrix: np.ndarray | None) -> float | None:
    """A scalar field's value: its first element, or None if absent or empty."""
    if matrix is None or matrix.size == 0:
        return None
    return float(matrix.reshape(-1)[0])


def _inflate_whole(decompressor, stream: memoryview) -> bytes:
    """``stream`` as exactly one complete zlib stream, or `NotRecognised` (corrupt, short, long)."""
    try:
        inflated = decompressor.decompress(stream)
    except INFLATE_ERRORS as error:
        raise NotRecognised(f"compressed data: {error}") from None
    if not decompressor.eof or decompressor.unused_data:
        raise NotRecognised("compressed stream truncated, or bytes after it")
    return inflated
