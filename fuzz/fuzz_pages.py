"""libFuzzer harness (atheris): raw column chunks through the C page decoder.

Input: byte 0 = codec (0 none, 1 snappy, 2 zstd; modulo 3), byte 1 = max definition level (0 or 1), then a column
chunk.  Every page is parsed and decoded as the reader does it, one by one (``decode_page``) and
whole (``decode_column_chunks``, alone and paired); each call must return or raise
Corrupt/Unsupported, never crash, and the two ways must agree.  The lockstep sum (``reduce_pair``,
the chunk beside a hand-built PLAIN chunk whose page size the input's last byte sets) must take
exactly what the whole decoding takes without nulls or non-finite values, with the same exact sum
(over every row and over a range the input sets), and decline everything else.  Snappy and zstd
streams are checked against pyarrow's codecs (reference implementations).  See fuzz/README.md.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["l1stream"]):
    import numpy as np
    import pyarrow as pa
    from l1stream.exact._kernel import AbsDiffSum, abs_diff_units

    from l1stream.parquet import _pages

ROWS = 4096
SNAPPY = pa.Codec("snappy")
ZSTD = pa.Codec("zstd")
CODEC_OF_BYTE = (0, 1, 6)  # Parquet's UNCOMPRESSED, SNAPPY, ZSTD
REFUSED = (_pages.Corrupt, _pages.Unsupported)


def one_by_one(chunk: bytes, codec: int, level: int):
    out, valid = np.empty(ROWS), np.empty(ROWS, np.uint8)
    dictionary, scratch = np.empty(ROWS), bytearray(1 << 16)
    offset, have_dictionary, rows = 0, False, 0
    while offset < len(chunk):
        kind, count, _, _, size = _pages.page_header(chunk, offset)
        if size > len(scratch) or count > ROWS or rows + max(count, 0) > ROWS:
            raise _pages.Unsupported("too large for the harness")
        target = dictionary if kind == 2 else out[rows:]
        _, offset = _pages.decode_page(chunk, offset, codec, True, level, dictionary[:count] if have_dictionary
                                       else None, target[:max(count, 0)] if kind == 2 else target,
                                       valid[rows:] if level else None, scratch)
        if kind == 2:
            have_dictionary = True
        elif kind in (0, 3):
            rows += count
    return rows


def whole(chunk: bytes, codec: int, level: int, rows: int):
    out = np.empty(rows)
    valid = np.empty(rows, np.uint8) if level else None
    nulls = _pages.decode_column_chunks([(chunk, codec, level, out, valid)])
    return out, valid, nulls


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _i32(value: int) -> bytes:  # a Thrift compact i32 field of id (previous + 1)
    return bytes([0x15]) + _varint((value << 1) ^ (value >> 31))


def plain_chunk(values: np.ndarray, per_page: int) -> bytes:
    """Uncompressed PLAIN v1 pages of a required DOUBLE column, ``per_page`` values each (Thrift by hand)."""
    out = bytearray()
    for i in range(0, len(values), per_page):
        body = values[i:i + per_page].tobytes()
        # PageHeader: type 0, sizes, then field 5 (delta 2, a struct) = DataPageHeader(num_values, PLAIN, RLE, RLE)
        header = (_i32(0) + _i32(len(body)) + _i32(len(body)) + bytes([0x2C])
                  + _i32(len(body) // 8) + _i32(0) + _i32(3) + _i32(3) + b"\x00" + b"\x00")
        out += header + body
    return bytes(out)


def check_lockstep(chunk: bytes, codec: int, level: int, rows: int, decoded, tail: int) -> None:
    """reduce_pair beside a plain chunk: the same rows and sum as the whole decoding, or a decline."""
    other = np.arange(rows, dtype=np.float64) * 0.75 - 3.0
    plain = plain_chunk(other, 1 + tail % 61)
    lanes = [(chunk, 0, len(chunk), codec, level), (plain, 0, len(plain), 0, 0)]
    clean = decoded is not None and decoded[2][0] == 0 and bool(np.isfinite(decoded[0]).all())
    spans = [(0, rows)] + ([(tail % (rows + 1), rows - (tail // 7) % (rows + 1))] if clean else [])
    for start, stop in spans:
        if stop < start:
            continue
        total = AbsDiffSum()
        why = _pages.reduce_pair(lanes, rows, start, stop, ROWS, total.consumer())
        if not clean:
            assert why is not None, "the lockstep sum took a chunk the whole decoding refuses or finds nulls in"
            return
        assert why is None, f"the lockstep sum declined a clean chunk: {why}"
        assert total.rows == stop - start
        assert total.units() == abs_diff_units(decoded[0][start:stop], other[start:stop]), (start, stop)


def check_snappy(data: bytes) -> None:
    """Where our Snappy decoder returns bytes, pyarrow's must return the same bytes."""
    size, shift, i = 0, 0, 0
    while i < len(data) and i < 5:
        size |= (data[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not data[i - 1] & 0x80:
            break
    if size > 1 << 20:
        return
    try:
        ours = _pages.snappy_uncompress(data, size)
    except REFUSED + (ValueError,):
        return
    try:
        expected = SNAPPY.decompress(data, decompressed_size=size, asbytes=True)
    except (OSError, ValueError, pa.ArrowException):
        raise AssertionError("l1stream's Snappy decoder accepted a stream pyarrow's codec refuses") from None
    if ours != expected:
        raise AssertionError("snappy output differs from pyarrow's codec")


def check_zstd(data: bytes) -> None:
    """Where our zstd call returns bytes, pyarrow's zstd must return the same bytes.

    The first 3 bytes are the stated size (as a page header states it), the rest the stream."""
    if len(data) < 4:
        return
    size, stream = int.from_bytes(data[:3], "little") % (1 << 20), data[3:]
    try:
        ours = _pages.zstd_uncompress(stream, size)
    except REFUSED + (ValueError,):
        return
    try:
        expected = ZSTD.decompress(stream, decompressed_size=size, asbytes=True)
    except (OSError, ValueError, pa.ArrowException):
        raise AssertionError("the zstd decoder accepted a stream pyarrow's codec refuses") from None
    if ours != expected:
        raise AssertionError("zstd output differs from pyarrow's codec")


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    codec, level, chunk = CODEC_OF_BYTE[data[0] % 3], data[1] & 1, bytes(data[2:])
    try:
        rows = one_by_one(chunk, codec, level)
    except REFUSED:
        rows = None
    if rows is not None and 0 < rows <= ROWS:
        try:
            first = whole(chunk, codec, level, rows)
            second = _pages.decode_column_chunks([(chunk, codec, level, np.empty(rows),
                                                   np.empty(rows, np.uint8) if level else None)] * 2)
        except REFUSED:
            first = None  # whole-chunk decoding may refuse what page-by-page took (no dictionary yet, counts)
        else:
            assert second[0] == second[1] == first[2][0], (second, first[2])
        check_lockstep(chunk, codec, level, rows, first, data[-1])
    if codec == 1:
        check_snappy(chunk[:4096])
    elif codec == 6:
        check_zstd(chunk[:4096])


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
