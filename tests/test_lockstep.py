"""The lockstep sum: two column chunks decoded page by page straight into an exact sum (_lockstep.h).

``reduce_pair`` must hand exactly the rows asked for to the sum, or decline (nulls, a value that
is not finite, a page it does not take, damage) and leave the rows to the ordinary path: never
count a row twice, never drop one.  Ground truth: exact integer sums of the values pyarrow reads
(``_units``, independent of l1stream), and the job with the C parts turned off.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from helpers import _units, exact_mae

import l1stream
from l1stream.exact import native
from l1stream.parquet import chunks, pages

REQUIRE = os.environ.get("L1STREAM_REQUIRE_NATIVE") == "1"
if pages._pages is None or native._CompiledAbsDiffSum is None:
    if REQUIRE:
        raise RuntimeError("L1STREAM_REQUIRE_NATIVE=1 but l1stream's C extensions are not built")
    pytest.skip("l1stream's C extensions are not built", allow_module_level=True)

from l1stream.exact._kernel import AbsDiffSum  # noqa: E402


def oracle_units(a: list, p: list) -> int:
    """sum |a - p| in 2**-1074 units, from Python ints."""
    return sum(abs(_units(x) - _units(y)) for x, y in zip(a, p))


def reader(path: str, data: bytes | None = None) -> pages.NativeRowGroups:
    return pages.NativeRowGroups(pq.ParquetFile(path), path, LocalFileSystem(), ["actual", "prediction"], data=data)


def values(path: str, index: int) -> tuple:
    table = pq.ParquetFile(path).read_row_group(index, columns=["actual", "prediction"])
    return table["actual"].to_pylist(), table["prediction"].to_pylist()


def write(path: str, n: int, seed: int = 0, **options) -> str:
    rng = np.random.default_rng(seed)
    actual = np.round(rng.lognormal(8, 1.5, n), int(rng.integers(0, 4)))
    prediction = actual * rng.lognormal(0, 0.2, n)
    schema = pa.schema([pa.field("actual", pa.float64(), nullable=options.pop("nullable", True)),
                        pa.field("prediction", pa.float64(), nullable=True)])
    pq.write_table(pa.table({"actual": actual, "prediction": prediction}, schema=schema), path, **options)
    return path


WRITERS = {
    "defaults": {},
    "small pages": {"data_page_size": 3000, "row_group_size": 7000},
    "no dictionary, v2 pages": {"use_dictionary": False, "data_page_version": "2.0", "data_page_size": 5000},
    "zstd, required actual": {"compression": "zstd", "nullable": False, "data_page_size": 4000},
    "uncompressed, CRC": {"compression": "none", "write_page_checksum": True, "data_page_size": 2048},
    "byte stream split": {"use_dictionary": False, "column_encoding": "BYTE_STREAM_SPLIT", "data_page_size": 6000},
    "dictionary only": {"data_page_size": 1500, "dictionary_pagesize_limit": 1 << 20},
}


@pytest.mark.parametrize("writer", WRITERS)
def test_every_row_range_is_summed_exactly(tmp_path, writer):
    path = write(str(tmp_path / "t.parquet"), 20_000, seed=len(writer), **dict(WRITERS[writer]))
    native, meta = reader(path), pq.ParquetFile(path).metadata
    rng = np.random.default_rng(1)
    for index in range(meta.num_row_groups):
        a, p = values(path, index)
        rows = len(a)
        cuts = [(0, rows), (0, 1), (rows - 1, rows), (rows // 3, rows // 3)]
        cuts += [tuple(sorted(rng.integers(0, rows + 1, 2).tolist())) for _ in range(6)]
        for start, stop in cuts:
            total = AbsDiffSum()
            why = native.reduce_pair(index, ("actual", "prediction"), total.consumer(), 1 << 20, start, stop)
            assert why is None, (writer, index, start, stop, why)
            assert total.rows == stop - start
            assert total.units() == oracle_units(a[start:stop], p[start:stop]), (writer, index, start, stop)
    native.close()


def test_the_file_in_memory_is_read_in_place(tmp_path):
    path = write(str(tmp_path / "t.parquet"), 9_000, data_page_size=2000)
    data = open(path, "rb").read()
    native = reader(path, data=data)
    total = AbsDiffSum()
    assert native.reduce_pair(0, ("actual", "prediction"), total.consumer(), 1 << 20) is None
    assert total.units() == oracle_units(*values(path, 0))


def test_the_columns_in_either_order(tmp_path):
    path = write(str(tmp_path / "t.parquet"), 5_000, data_page_size=1000)
    a, p = values(path, 0)
    total = AbsDiffSum()
    assert reader(path).reduce_pair(0, ("prediction", "actual"), total.consumer(), 1 << 20) is None
    assert total.units() == oracle_units(p, a)


def test_it_declines_nulls_and_values_that_are_not_finite(tmp_path):
    n = 6_000
    rng = np.random.default_rng(3)
    actual = rng.lognormal(5, 1, n)
    for case, prediction in (("nulls", pa.array(actual * 1.1, mask=np.arange(n) == 4_500)),
                             ("not finite", pa.array(np.where(np.arange(n) == 4_500, np.inf, actual * 1.1)))):
        path = str(tmp_path / f"{case}.parquet")
        pq.write_table(pa.table({"actual": actual, "prediction": prediction}), path, data_page_size=4000)
        total = AbsDiffSum()
        why = reader(path).reduce_pair(0, ("actual", "prediction"), total.consumer(), 1 << 20)
        assert why is not None and case in why
        # rows before the page that holds row 4,500 are taken alone
        total = AbsDiffSum()
        assert reader(path).reduce_pair(0, ("actual", "prediction"), total.consumer(), 1 << 20, 0, 10) is None
        assert total.units() == oracle_units(actual[:10].tolist(), (actual[:10] * 1.1).tolist())


@pytest.mark.parametrize("policy", ["omit", "propagate"])
def test_a_row_group_declined_midway_is_read_again_whole_never_twice(tmp_path, policy):
    """Pages before the null went into a sum that is thrown away; the job's counts and MAE are exact."""
    rng = np.random.default_rng(4)
    n = 30_000
    actual = np.round(rng.lognormal(9, 1, n), 2)
    prediction = np.round(actual * rng.lognormal(0, 0.1, n), 2)
    bad = np.zeros(n, bool)
    bad[[17_000, 29_999]] = True  # late in the first row group and the last row of the second
    nan_rows = np.zeros(n, bool)
    nan_rows[5_000] = True
    prediction_col = pa.array(np.where(nan_rows, np.nan, prediction), mask=bad)
    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"actual": actual, "prediction": prediction_col}), path, row_group_size=20_000,
                   data_page_size=8000)
    result = l1stream.evaluate(path, nan_policy=policy, scheduler="synchronous")
    keep = ~bad & ~nan_rows
    assert result.rows_read == n
    assert result.left_out == {"null": 2, "nan": 1, "inf": 0}
    if policy == "omit":
        assert result.count == int(keep.sum())
        assert result.mae == exact_mae(actual[keep], prediction[keep])
    else:
        assert np.isnan(result.mae)


def test_clean_files_take_the_lockstep_sum_and_agree_with_the_c_parts_off(tmp_path, monkeypatch):
    for i in range(3):
        write(str(tmp_path / f"part-{i}.parquet"), 12_000, seed=i, row_group_size=5_000, data_page_size=3000)
    calls = []
    real = pages._pages.reduce_pair
    monkeypatch.setattr(pages._pages, "reduce_pair", lambda *args: calls.append(1) or real(*args))
    native = l1stream.evaluate(str(tmp_path), scheduler="synchronous")
    assert len(calls) == 9  # every row group of the three files
    monkeypatch.setenv("L1STREAM_NATIVE", "0")
    plain = l1stream.evaluate(str(tmp_path), scheduler="synchronous")
    assert native.mae == plain.mae and native.count == plain.count == 36_000
    frames = [pq.read_table(str(tmp_path / f"part-{i}.parquet")) for i in range(3)]
    a = [v for f in frames for v in f["actual"].to_pylist()]
    p = [v for f in frames for v in f["prediction"].to_pylist()]
    assert native.mae == exact_mae(a, p)


def test_a_damaged_late_page_is_still_the_ordinary_path_s_error(tmp_path):
    """A CRC mismatch on a later page: the lockstep sum declines, and the job names the damage as before."""
    path = write(str(tmp_path / "t.parquet"), 20_000, use_dictionary=False, compression="none",
                 write_page_checksum=True, data_page_size=4000)
    meta = pq.ParquetFile(path).metadata.row_group(0).column(1)
    data = bytearray(open(path, "rb").read())
    data[meta.data_page_offset + meta.total_compressed_size - 100] ^= 0x40  # inside the last page's values
    open(path, "wb").write(bytes(data))
    with pytest.raises(l1stream.BadFileError, match="CRC"):
        l1stream.evaluate(path, scheduler="synchronous")


def test_a_chunk_with_more_rows_than_its_row_group_is_declined(tmp_path):
    path = write(str(tmp_path / "t.parquet"), 4_000, data_page_size=1000)
    native = reader(path)
    meta = native.parquet.metadata.row_group(0)
    position, level = native.leaf["actual"]
    column = meta.column(position)
    begin, size = chunks.chunk_range(column)
    chunk = open(path, "rb").read()[begin:begin + size]
    lane = (chunk, begin, size, chunks.CODECS[column.compression], level)
    for rows in (3_999, 2_000):  # the row group as a footer might misstate it
        why = pages._pages.reduce_pair([lane, lane], rows, 0, rows, 1 << 20, AbsDiffSum().consumer())
        assert why is not None and "damage" in why
    total = AbsDiffSum()
    assert pages._pages.reduce_pair([lane, lane], 4_000, 0, 4_000, 1 << 20, total.consumer()) is None
    assert total.units() == 0 and total.rows == 4_000


def test_a_page_of_more_values_than_the_limit_is_declined(tmp_path):
    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"actual": np.zeros(300_000), "prediction": np.ones(300_000)}), path,
                   max_rows_per_page=300_000, data_page_size=1 << 30)
    total = AbsDiffSum()
    why = reader(path).reduce_pair(0, ("actual", "prediction"), total.consumer(), 1000)
    assert why is not None and "more values than a chunk" in why
    assert l1stream.evaluate(path, chunk_rows=1000, scheduler="synchronous").mae == 1.0


def test_bad_arguments_are_refused():
    consumer = AbsDiffSum().consumer()
    lane = (b"", 0, 0, 0, 0)
    with pytest.raises(ValueError):
        pages._pages.reduce_pair([lane], 0, 0, 0, 1, consumer)
    with pytest.raises(ValueError):
        pages._pages.reduce_pair([lane, lane], 10, 5, 11, 1, consumer)
    with pytest.raises(ValueError):
        pages._pages.reduce_pair([lane, lane], 0, 0, 0, 1, object())
    with pytest.raises(ValueError, match="exactly the chunk"):
        pages._pages.reduce_pair([(b"abc", 0, 2, 0, 0), lane], 0, 0, 0, 1, consumer)
    assert pages._pages.reduce_pair([lane, lane], 0, 0, 0, 1, consumer) is None


def test_a_second_dictionary_page_is_damage_on_every_path(tmp_path):
    """pyarrow allows one dictionary page per column chunk ("Column cannot have more than one
    dictionary"); the C decoders must refuse a second one too, not decode with the latest."""
    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"actual": np.tile([1.0, 2.0, 4.0], 100), "prediction": np.zeros(300)}), path,
                   compression="none")
    native = reader(path)
    column = native.parquet.metadata.row_group(0).column(native.leaf["actual"][0])
    begin, size = chunks.chunk_range(column)
    chunk = open(path, "rb").read()[begin:begin + size]
    first = column.data_page_offset - begin  # the dictionary page's bytes
    doubled = chunk[:first] + chunk[:first] + chunk[first:]
    with pytest.raises(pages._pages.Corrupt, match="second dictionary page"):
        pages._pages.decode_column_chunks([(doubled, 0, 1, np.empty(300), np.empty(300, np.uint8))])
    lane = (doubled, 0, len(doubled), 0, 1)
    why = pages._pages.reduce_pair([lane, lane], 300, 0, 300, 1 << 20, AbsDiffSum().consumer())
    assert why is not None and "second dictionary page" in why
    pages._pages.decode_column_chunks([(chunk, 0, 1, np.empty(300), np.empty(300, np.uint8))])  # once is fine


def test_the_buffers_a_thread_held_go_when_it_ends(tmp_path):
    """Page windows, page buffers and decompression contexts are per thread and kept for its next
    row group; a thread that ends frees them (a notebook's runs on fresh threads must not pile up)."""
    import threading

    for i in range(2):
        write(str(tmp_path / f"p{i}.parquet"), 300_000, seed=i, compression="zstd")

    def rss_mib() -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def run():
        l1stream.evaluate(str(tmp_path), scheduler="synchronous")

    def runs(count: int) -> None:
        for _ in range(count):
            thread = threading.Thread(target=run)
            thread.start()
            thread.join()

    runs(40)  # warm: imports, and the allocator's per-thread arenas (glibc keeps up to 8 per core)
    before = rss_mib()
    runs(80)
    assert rss_mib() - before < 40, (before, rss_mib())  # buffers kept by ended threads: 4+ MiB each, 320+
