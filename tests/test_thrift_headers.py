"""Page headers read exactly as Thrift's compact protocol (C++, what pyarrow uses) reads them.

Each header below is built byte by byte from the compact protocol's rules and the expected
reading worked out by hand from the spec (field ids are i16, an i32 is a zigzag varint truncated
to 32 bits, required fields must be present, a known field of another type is skipped).
"""

from __future__ import annotations

import pytest
from services import need_native_decoder

need_native_decoder()
from l1stream.parquet import _pages  # noqa: E402

I32, STRUCT, BINARY = 5, 12, 8


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def zigzag(value: int, bits: int = 64) -> int:
    return (value << 1) ^ (value >> (bits - 1)) if value >= 0 else ((-value) << 1) - 1


def field(delta: int, kind: int, body: bytes) -> bytes:
    return bytes([(delta << 4) | kind]) + body


def long_field(field_id: int, kind: int, body: bytes) -> bytes:
    """A field header in long form: type nibble, then the id as a zigzag varint."""
    return bytes([kind]) + varint(zigzag(field_id)) + body


def i32(value: int) -> bytes:
    return varint(zigzag(value))


def data_page_header(num_values=3, encoding=0, definition=3, repetition=3, drop=()) -> bytes:
    fields = [(1, num_values), (2, encoding), (3, definition), (4, repetition)]
    out, last = b"", 0
    for fid, value in fields:
        if fid in drop:
            continue
        out += field(fid - last, I32, i32(value))
        last = fid
    return out + b"\x00"


def page_header(*fields: bytes) -> bytes:
    return b"".join(fields) + b"\x00"


def standard(values=3, sub=None) -> bytes:
    size = values * 8
    return page_header(field(1, I32, i32(0)), field(1, I32, i32(size)), field(1, I32, i32(size)),
                       field(2, STRUCT, sub if sub is not None else data_page_header(values)))


def read(header: bytes):
    """(type, num_values, header length, compressed size, uncompressed size)."""
    return _pages.page_header(header + bytes(64), 0)


def test_a_plain_header():
    header = standard(3)
    assert read(header) == (0, 3, len(header), 24, 24)


def test_a_long_form_field_id_is_16_bits():
    """Id 65538 is id 2 to Thrift (i16): it sets uncompressed_page_size."""
    header = page_header(field(1, I32, i32(0)), long_field(65538, I32, i32(24)), field(1, I32, i32(24)),
                         field(2, STRUCT, data_page_header(3)))
    assert read(header) == (0, 3, len(header), 24, 24)


def test_deltas_after_a_wrapped_id_follow_int16_arithmetic():
    """Long-form id 65539 is 3; the next delta (+2) then names field 5, the data page header."""
    header = page_header(field(1, I32, i32(0)), field(1, I32, i32(24)), long_field(65539, I32, i32(24)),
                         field(2, STRUCT, data_page_header(3)))
    assert read(header) == (0, 3, len(header), 24, 24)


def test_a_negative_long_form_id_that_wraps_to_a_known_field():
    """-65535 as i16 is 1: the page type."""
    header = page_header(long_field(-65535, I32, i32(0)), field(1, I32, i32(24)), field(1, I32, i32(24)),
                         field(2, STRUCT, data_page_header(3)))
    assert read(header)[:2] == (0, 3)


def test_an_i32_varint_is_truncated_to_32_bits_before_zigzag():
    """A varint of 2**33 + 48 reads as 48 (truncated), zigzag 24."""
    big = varint((1 << 33) + 48)
    header = page_header(field(1, I32, i32(0)), field(1, I32, big), field(1, I32, i32(24)),
                         field(2, STRUCT, data_page_header(3)))
    assert read(header) == (0, 3, len(header), 24, 24)


def test_a_known_field_of_another_type_is_skipped():
    """A BINARY field with the id of num_values is skipped, the i32 one after it counts (ids may repeat)."""
    sub = (field(1, BINARY, varint(2) + b"xy") + long_field(1, I32, i32(3)) + field(1, I32, i32(0))
           + field(1, I32, i32(3)) + field(1, I32, i32(3)) + b"\x00")
    header = standard(3, sub)
    assert read(header)[:2] == (0, 3)


@pytest.mark.parametrize("missing", [1, 2, 3, 4])
def test_a_data_page_header_missing_a_required_field_is_refused(missing):
    header = standard(3, data_page_header(3, drop=(missing,)))
    with pytest.raises(_pages.Corrupt):
        read(header)


@pytest.mark.parametrize("missing", [1, 2, 3])
def test_a_page_header_missing_a_required_field_is_refused(missing):
    fields = {1: i32(0), 2: i32(24), 3: i32(24)}
    out, last = b"", 0
    for fid, body in fields.items():
        if fid != missing:
            out += field(fid - last, I32, body)
            last = fid
    header = page_header(out, field(5 - last, STRUCT, data_page_header(3)))
    with pytest.raises(_pages.Corrupt):
        read(header)


def test_a_dictionary_page_header_needs_its_encoding():
    sub = field(1, I32, i32(3)) + b"\x00"  # num_values only
    header = page_header(field(1, I32, i32(2)), field(1, I32, i32(24)), field(1, I32, i32(24)),
                         field(4, STRUCT, sub))
    with pytest.raises(_pages.Corrupt):
        read(header)
    sub = field(1, I32, i32(3)) + field(1, I32, i32(0)) + b"\x00"
    header = page_header(field(1, I32, i32(2)), field(1, I32, i32(24)), field(1, I32, i32(24)),
                         field(4, STRUCT, sub))
    assert read(header)[:2] == (2, 3)


def test_nesting_deeper_than_thrifts_limit_is_refused_and_shallower_is_read():
    def nested(depth):  # an unknown field 9 holding structs inside structs
        inner = b"\x00"
        for _ in range(depth):
            inner = field(1, STRUCT, inner) + b"\x00"
        return inner
    ok = standard(3)[:-1] + field(4, STRUCT, nested(40)) + b"\x00"
    assert read(ok)[:2] == (0, 3)
    deep = standard(3)[:-1] + field(4, STRUCT, nested(100)) + b"\x00"
    with pytest.raises(_pages.Corrupt):
        read(deep)


def v2_header(num_values=3, num_nulls=0, num_rows=3, definition_bytes=0, repetition_bytes=0) -> bytes:
    """A DATA_PAGE_V2 header (type 3; its DataPageHeaderV2 is field 8: ids 1-6 in order)."""
    sub = b"".join(field(1, I32, i32(v)) for v in (num_values, num_nulls, num_rows, 0, definition_bytes,
                                                    repetition_bytes)) + b"\x00"
    size = num_values * 8
    return page_header(field(1, I32, i32(3)), field(1, I32, i32(size)), field(1, I32, i32(size)), field(5, STRUCT, sub))


@pytest.mark.parametrize("what, values", [("rows", {"num_rows": -1}), ("definition bytes", {"definition_bytes": -2}),
                                          ("repetition bytes", {"repetition_bytes": -1})])
def test_a_v2_header_with_a_negative_count_is_refused_as_pyarrow_refuses_it(what, values):
    """pyarrow: "Invalid page header (negative number of rows)" / "(negative levels byte length)"."""
    assert read(v2_header())[:2] == (3, 3)
    with pytest.raises(_pages.Corrupt, match="negative row count or level length"):
        read(v2_header(**values))
