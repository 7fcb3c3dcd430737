"""libFuzzer harness (atheris): raw column chunks through the C page decoder.

Input: byte 0 = codec (0 none, 1 snappy, 2 zstd; modulo 3), byte 1 = max definition level (0 or 1), then a column
chunk.  Every page is parsed and decoded as the reader does it, one by one (``decode_page``) and
whole (``decode_column_chunks``, alone and paired); each call must return or raise
Corrupt/Unsupported, never crash, and the two ways must agree.  Snappy and zstd streams are checked
against pyarrow's codecs (reference implementations).  See fuzz/README.md.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["l1stream"]):
    import numpy as np
    import pyarrow as pa

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
            pass  # whole-chunk decoding may refuse what page-by-page took (no dictionary yet, counts)
        else:
            assert second[0] == second[1] == first[2][0], (second, first[2])
    if codec == 1:
        check_snappy(chunk[:4096])
    elif codec == 6:
        check_zstd(chunk[:4096])


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
