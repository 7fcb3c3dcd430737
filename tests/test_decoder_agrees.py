"""Files the C decoder and pyarrow must judge alike: both read them the same, or both refuse.

Each file is a real pyarrow-written file with one byte changed where the change keeps every
length and offset valid, so that only the point under test differs.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from services import need_native_decoder

import l1stream
from l1stream.errors import BadFileError
from l1stream.parquet import chunks, pages

need_native_decoder()
from l1stream.parquet import _pages  # noqa: E402


def both_paths(monkeypatch, path, **options):
    outcomes = []
    for native in ("1", "0"):
        monkeypatch.setenv("L1STREAM_NATIVE", native)
        try:
            result = l1stream.evaluate(str(path), nan_policy="omit", **options)
            outcomes.append(("ok", result.count, result.mae))
        except BadFileError as exc:
            outcomes.append(("refused", str(exc)))
    return outcomes


def test_a_bit_packed_level_run_shorter_than_declared_is_refused_by_both(tmp_path, monkeypatch):
    """Definition levels of 8 values in one bit-packed group (header 0x03, 1 byte): declaring two
    groups (0x05) with one byte present is refused by pyarrow ("Number of decoded rep / def levels
    do not match"), so the C path must refuse it too instead of reading 8 levels."""
    path = tmp_path / "levels.parquet"
    actual = [1.0, None, 3.0, 4.0, None, 6.0, 7.0, 8.0]
    pq.write_table(pa.table({"actual": pa.array(actual), "prediction": pa.array([0.0] * 8)}), str(path),
                   compression="none", use_dictionary=False, write_statistics=False, data_page_version="1.0")
    data = bytearray(path.read_bytes())
    start = pq.ParquetFile(str(path)).metadata.row_group(0).column(0).data_page_offset
    at = data.index(bytes.fromhex("0200000003"), start)  # level block length 2, one bit-packed group
    data[at + 4] = 0x05
    path.write_bytes(bytes(data))
    with pytest.raises(OSError):
        pq.read_table(str(path))
    outcomes = both_paths(monkeypatch, path)
    assert [o[0] for o in outcomes] == ["refused", "refused"], outcomes


def test_the_untouched_file_reads_the_same_on_both_paths(tmp_path, monkeypatch):
    path = tmp_path / "fine.parquet"
    actual = [1.0, None, 3.0, 4.0, None, 6.0, 7.0, 8.0]
    pq.write_table(pa.table({"actual": pa.array(actual), "prediction": pa.array([0.0] * 8)}), str(path),
                   compression="none", use_dictionary=False, write_statistics=False, data_page_version="1.0")
    assert both_paths(monkeypatch, path) == [("ok", 6, 29 / 6), ("ok", 6, 29 / 6)]


def i32(value: int) -> bytes:
    """A Thrift compact i32: zigzag, then a varint."""
    z = (value << 1) ^ (value >> 31)
    out = bytearray()
    while z >> 7:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    return bytes(out + bytes([z]))


def _dictionary_page(num_values: int) -> bytes:
    # PageHeader{type=DICTIONARY_PAGE, sizes=8*n, dictionary_page_header{num_values=n, encoding=PLAIN}}
    size = num_values * 8
    header = (b"\x15" + i32(2) + b"\x15" + i32(size) + b"\x15" + i32(size) + b"\x4c"
              + b"\x15" + i32(num_values) + b"\x15" + i32(0) + b"\x00" + b"\x00")
    return header + bytes(size)


def _dictionary_data_page(indices: bytes, num_values: int) -> bytes:
    body = bytes([1]) + indices  # bit width 1, then the RLE / bit-packed runs
    header = (b"\x15" + i32(0) + b"\x15" + i32(len(body)) + b"\x15" + i32(len(body)) + b"\x2c"
              + b"\x15" + i32(num_values) + b"\x15" + i32(8) + b"\x15" + i32(3) + b"\x15" + i32(3) + b"\x00\x00")
    return header + body


def test_indices_into_an_empty_dictionary_are_corrupt():
    """A dictionary page of 0 values, then bit-packed indices: nothing may be read from the empty
    dictionary (it was a heap-buffer-overflow under ASan)."""
    chunk = _dictionary_page(0) + _dictionary_data_page(b"\x03\x00", 8)
    dictionary, out, scratch = np.empty(0), np.empty(8), bytearray(1 << 12)
    _, offset = _pages.decode_page(chunk, 0, 0, True, 0, None, dictionary, None, scratch)
    with pytest.raises(_pages.Corrupt):
        _pages.decode_page(chunk, offset, 0, True, 0, dictionary, out, None, scratch)


def _encoding_positions(metadata: bytes) -> list:
    """Offsets (in the serialized FileMetaData) of every ColumnMetaData.encodings element."""
    from l1stream.parquet.footer import _Reader

    r, found = _Reader(metadata), []
    for fid, kind in r.fields():
        if fid != 4 or kind != 9:
            r.skip(kind)
            continue
        for _ in range(r.list_header()[0]):
            for gid, gkind in r.fields():
                if gid != 1 or gkind != 9:
                    r.skip(gkind)
                    continue
                for _ in range(r.list_header()[0]):
                    for cid, ckind in r.fields():
                        if cid != 3:
                            r.skip(ckind)
                            continue
                        for mid, mkind in r.fields():
                            if mid == 2 and mkind == 9:
                                size, _ = r.list_header()
                                for _ in range(size):
                                    found.append((r.pos, r.i32()))
                            else:
                                r.skip(mkind)
    return found


def test_spark_style_bit_packed_in_chunk_encodings_stays_on_the_c_path(tmp_path, monkeypatch):
    """parquet-mr lists BIT_PACKED for levels it does not store: the chunk must still be decoded in C
    (a reader that refuses such chunks never reads Spark's output natively)."""
    path = tmp_path / "spark-like.parquet"
    rng = np.random.default_rng(4)
    a = pa.array(rng.lognormal(5, 1, 5000), mask=rng.random(5000) < 0.1)
    pq.write_table(pa.table({"actual": a, "prediction": pa.array(rng.lognormal(5, 1, 5000))}), str(path),
                   use_dictionary=False, data_page_version="1.0")
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - length
    rle = [pos for pos, value in _encoding_positions(bytes(data[start:-8])) if value == 3]
    assert rle
    for pos in rle:
        data[start + pos] = 0x08  # RLE (3, zigzag 6) -> BIT_PACKED (4, zigzag 8)
    path.write_bytes(bytes(data))
    column = pq.ParquetFile(str(path)).metadata.row_group(0).column(0)
    assert "BIT_PACKED" in column.encodings
    handed = []
    monkeypatch.setattr(pages.NativeRowGroups, "_reread", lambda self, index, exc: handed.append(exc))
    original = chunks.decodable
    refused = []

    def spy(column, rows):
        ok = original(column, rows)
        if not ok:
            refused.append(column.encodings)
        return ok

    monkeypatch.setattr(chunks, "decodable", spy)
    result = l1stream.evaluate(str(path), nan_policy="omit")
    assert not refused and not handed
    table = pq.read_table(str(path))
    from helpers import clean_rows, exact_mae

    x, y = clean_rows(table["actual"].to_pylist(), table["prediction"].to_pylist())
    assert result.mae == exact_mae(x, y)


def test_the_c_parts_turn_off_on_a_big_endian_machine(monkeypatch):
    from l1stream.exact import native

    assert native.native_enabled() == (os.environ.get("L1STREAM_NATIVE", "1") != "0")
    monkeypatch.setattr(native.sys, "byteorder", "big")
    assert not native.native_enabled() and not pages.native_decoder_enabled()


def test_a_column_chunk_claimed_past_the_end_of_the_file_allocates_nothing(tmp_path):
    """A hostile footer claiming a 3 GiB column chunk in a tiny file: refused before allocating."""
    import resource

    from fsspec.implementations.local import LocalFileSystem

    from l1stream.engine.scan import open_parquet

    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"x": [1.0, 2.0]}), path)
    fs = LocalFileSystem()
    parquet = open_parquet(path, fs)
    reader = pages.NativeRowGroups(parquet, path, fs, ["x"], file_size=os.path.getsize(path))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    buffer = bytearray()
    with pytest.raises(_pages.Corrupt, match="byte file"):
        reader._read(4, 3 << 30, buffer)
    assert len(buffer) == 0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 << 10  # KiB: nothing allocated
    reader.close()
    parquet.close()


REGRESSIONS = sorted((__import__("pathlib").Path(__file__).parent / "data" / "fuzz-regressions" / "scan").glob("*"))


@pytest.mark.parametrize("path", [p for p in REGRESSIONS if not p.name.startswith(".")], ids=lambda p: p.name)
def test_fuzz_findings_stay_fixed_both_paths_agree(path, monkeypatch):
    """Inputs the whole-file fuzzer found (fuzz/README.md): the C path and pyarrow must agree."""
    outcomes = both_paths(monkeypatch, path)
    assert outcomes[0] == outcomes[1] or [o[0] for o in outcomes] == ["refused", "refused"], outcomes


@pytest.mark.parametrize("damage", ["not base64", "not a schema"])
def test_a_damaged_arrow_schema_is_read_from_the_parquet_schema_on_every_path(tmp_path, monkeypatch, caplog, damage):
    """pyarrow refuses a file whose ARROW:schema metadata is damaged (found by fuzzing the scan); the
    pages are intact, l1stream's reader never looks at that metadata, and the pyarrow path now reads
    the file from its Parquet schema with a warning: the same exact answer either way."""
    import base64
    import logging

    from helpers import exact_mae

    rng = np.random.default_rng(3)
    actual, prediction = rng.lognormal(3, 1, 500), rng.lognormal(3, 1, 500)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"actual": actual, "prediction": prediction}), path)
    data = bytearray(path.read_bytes())
    at = data.index(b"ARROW:schema") + len(b"ARROW:schema")
    # the KeyValue's value: a field header byte, a varint length, then the base64 text
    length, shift, pos = 0, 0, at + 1
    while True:
        length |= (data[pos] & 0x7F) << shift
        shift += 7
        pos += 1
        if not data[pos - 1] & 0x80:
            break
    value = bytes(data[pos:pos + length])
    if damage == "not base64":
        value = value[:10] + b"!" + value[11:]
    else:
        raw = bytearray(base64.b64decode(value))
        for i in range(8, len(raw) - 8, 7):
            raw[i] ^= 0xFF
        value = base64.b64encode(bytes(raw))
        assert len(value) == length
    data[pos:pos + length] = value
    path.write_bytes(bytes(data))
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own refusal, whatever its class
        pq.ParquetFile(str(path))
    expected = exact_mae(actual, prediction)
    assert l1stream.evaluate(str(path), scheduler="synchronous").mae == expected
    monkeypatch.setenv("L1STREAM_NATIVE", "0")
    with caplog.at_level(logging.WARNING, logger="l1stream"):
        assert l1stream.evaluate(str(path), scheduler="synchronous").mae == expected
    assert "ARROW:schema metadata is damaged" in caplog.text
