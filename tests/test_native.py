"""The compiled parts: the Parquet page decoder (l1stream/_pages.c) and the exact kernel (_kernel.c).

Ground truth is independent: pyarrow's own reader (bit for bit, nulls included), zlib's CRC-32,
pyarrow's Snappy codec, and exact Fraction arithmetic.  In CI (``L1STREAM_REQUIRE_NATIVE=1``)
a missing extension is a failure, not a skip: the build is optional for users, not for us.
"""

from __future__ import annotations

import logging
import os
import zlib
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from helpers import exact_mae, examples
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import l1stream
from l1stream.engine.scan import open_parquet
from l1stream.errors import BadFileError
from l1stream.exact import summation as _exact
from l1stream.parquet import pages

REQUIRE = os.environ.get("L1STREAM_REQUIRE_NATIVE") == "1"
if pages._pages is None or _exact._compiled_abs_diff_units is None:
    if REQUIRE:
        raise RuntimeError("L1STREAM_REQUIRE_NATIVE=1 but l1stream's C extensions are not built "
                           "(pip install -e . needs a C compiler and the Python headers)")
    pytest.skip("l1stream's C extensions are not built", allow_module_level=True)

from l1stream.exact._kernel import abs_diff_units, folds  # noqa: E402

from l1stream.parquet import _pages  # noqa: E402

UNITS = 1 << 1074


def bits(array: pa.Array) -> tuple:
    """Exact identity of a float64 column: value bit patterns where valid, and the null mask."""
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    valid = np.asarray(array.is_valid())
    values = np.frombuffer(array.buffers()[1], dtype=np.int64, count=len(array), offset=array.offset * 8)
    return valid.tolist(), np.where(valid, values, 0).tolist()


class StrictReader(pages.NativeRowGroups):
    """The decoder under test may not hand a row group to pyarrow: that would hide its bugs."""

    def _reread(self, index, exc):
        raise AssertionError(f"the decoder gave up on row group {index}: {exc}")


def native_tables(path: str, columns: list, chunk_rows: int = 1 << 20, reuse: bool = False):
    """Every row group through the decoder.  With ``reuse`` (as the job runs it) output arrays are
    recycled from one row group to the next, so each row group's tables are copied before the next."""
    local = LocalFileSystem()
    parquet = open_parquet(path, local)
    reader = StrictReader(parquet, path, local, columns, reuse=reuse)
    try:
        out = []
        for i in range(parquet.metadata.num_row_groups):
            chunks = reader.read(i, chunk_rows)
            out.append(None if chunks is None else [(offset, _copy(table)) for offset, table in chunks])
        return out
    finally:
        reader.close()
        parquet.close()


def _copy(table: pa.Table) -> pa.Table:
    """A deep copy (recycled buffers are overwritten by the next row group)."""
    return pa.Table.from_pylist(table.to_pylist(), schema=table.schema) if table.num_rows else table


def values_strategy():
    special = st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, -1.7976931348623157e308,
                               float("nan"), float("inf"), float("-inf"), 1.0, 1e-300])
    plain = st.floats(allow_nan=True, allow_infinity=True, width=64)
    rounded = st.integers(-10**9, 10**9).map(lambda i: i / 100)
    return st.lists(st.one_of(special, plain, rounded, rounded, st.none()), min_size=0, max_size=300)


WRITER_OPTIONS = st.fixed_dictionaries({
    "compression": st.sampled_from(["snappy", "zstd", "none"]),
    "use_dictionary": st.booleans(),
    "data_page_version": st.sampled_from(["1.0", "2.0"]),
    "write_page_checksum": st.booleans(),
    "data_page_size": st.sampled_from([64, 1024, 1 << 20]),
    "dictionary_pagesize_limit": st.sampled_from([64, 1 << 20]),
    "row_group_size": st.sampled_from([7, 100, 1000]),
    "byte_stream_split": st.booleans(),
    "nullable": st.booleans(),
})


PINNED = [  # writer combinations that matter, run on every test run whatever hypothesis draws
    dict(compression=c, use_dictionary=d, data_page_version=v, write_page_checksum=True, data_page_size=64,
         dictionary_pagesize_limit=64, row_group_size=100, byte_stream_split=b, nullable=True)
    for c, d, v, b in [("snappy", True, "1.0", False), ("zstd", True, "2.0", False), ("none", False, "1.0", True),
                       ("snappy", False, "2.0", True), ("zstd", False, "1.0", False)]
]
SPECIAL = [0.0, -0.0, 5e-324, float("nan"), float("inf"), None, 1e300, -2.5] * 40


def _apply_examples(test):
    for columns in (1, 2, 8, 9, 17, 20):
        for reuse in (False, True):
            for options in PINNED[:2] if columns not in (9, 20) else PINNED:
                test = example(values=SPECIAL, options=options, columns=columns, reuse=reuse)(test)
    return test


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=values_strategy(), options=WRITER_OPTIONS, columns=st.sampled_from([1, 2, 8, 9, 17, 20]),
       reuse=st.booleans())
@_apply_examples
def test_decoder_matches_pyarrow_bit_for_bit(tmp_path_factory, values, options, columns, reuse):
    """Any number of DOUBLE columns (each its own permutation of the values), with buffers recycled
    or not, against pyarrow's reading of the same file, bit for bit with nulls."""
    tmp_path = tmp_path_factory.mktemp("decoder")
    options = dict(options)
    nullable = options.pop("nullable") or any(v is None for v in values)
    names = [f"c{i}" for i in range(columns)]
    if options.pop("byte_stream_split"):
        options["use_dictionary"] = False
        options["column_encoding"] = {name: "BYTE_STREAM_SPLIT" for name in names}
    fields = [pa.field(name, pa.float64(), nullable=nullable) for name in names]
    schema = pa.schema(fields + [pa.field("label", pa.string())])
    data = {name: values[i:] + values[:i] for i, name in enumerate(names)}  # distinct per column
    table = pa.table({**data, "label": [str(i % 3) for i in range(len(values))]}, schema=schema)
    path = str(tmp_path / "t.parquet")
    pq.write_table(table, path, **options)
    expected = pq.ParquetFile(path)
    for index, chunks in enumerate(native_tables(path, names + ["label"], reuse=reuse)):
        if not values:
            assert chunks is None  # an empty row group: pyarrow's
            continue
        assert chunks is not None, "every option here is one the decoder takes"
        (offset, got), = chunks
        want = expected.read_row_group(index, columns=names + ["label"])
        assert offset == 0 and got.column_names == names + ["label"]
        for name in names:
            assert bits(got[name]) == bits(want[name]), name
        assert got["label"].equals(want["label"])


def test_what_the_decoder_does_not_take_goes_to_pyarrow(tmp_path):
    x = np.arange(50, dtype=np.float64)
    cases = {
        "gzip": (pa.table({"x": x}), {"compression": "gzip"}),
        "lz4": (pa.table({"x": x}), {"compression": "lz4"}),
        "brotli": (pa.table({"x": x}), {"compression": "brotli"}),
        "float32": (pa.table({"x": x.astype(np.float32)}), {}),
        "int64": (pa.table({"x": x.astype(np.int64)}), {}),
        "nested": (pa.table({"x": [[v] for v in x.tolist()]}), {}),
    }
    for name, (table, options) in cases.items():
        path = str(tmp_path / f"{name}.parquet")
        pq.write_table(table, path, **options)
        assert native_tables(path, ["x"]) == [None], name


@pytest.mark.parametrize("chunk_rows", [1, 999, 1000, 4096, 5000])
def test_large_row_groups_stream_in_chunks_equal_to_pyarrow(tmp_path, chunk_rows):
    """A row group above chunk_rows is decoded page by page and re-cut; the chunks add up to pyarrow's rows."""
    rng = np.random.default_rng(chunk_rows)
    n = 12_345
    x = pa.array(np.round(rng.lognormal(5, 2, n), 3), mask=rng.random(n) < 0.03)
    y = pa.array(rng.normal(size=n))
    table = pa.table({"x": x, "y": y, "label": pa.array([f"s{i % 7}" for i in range(n)])})
    path = str(tmp_path / "big.parquet")
    pq.write_table(table, path, row_group_size=n, data_page_size=3000, dictionary_pagesize_limit=20_000,
                   write_page_checksum=True)
    (chunks,) = native_tables(path, ["x", "y", "label"], chunk_rows=chunk_rows)
    chunks = list(chunks)
    assert [offset for offset, _ in chunks] == list(range(0, n, chunk_rows))
    assert all(t.num_rows == min(chunk_rows, n - o) for o, t in chunks)
    got = pa.concat_tables(t for _, t in chunks)
    for name in ("x", "y"):
        assert bits(got[name]) == bits(table[name])
    assert got["label"].equals(table["label"])
    if chunk_rows == 999:  # and through the whole job
        result = l1stream.evaluate(path, actual="x", prediction="y", nan_policy="omit", chunk_rows=chunk_rows)
        keep = np.asarray(x.is_valid())
        assert result.mae == exact_mae(np.asarray(x.fill_null(0))[keep], np.asarray(y)[keep])


def test_a_streamed_row_group_that_fails_midway_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    path = str(tmp_path / "big.parquet")
    n = 5000
    # distinct values in both columns: pages of at most chunk_rows values (a one-page constant column
    # would go to pyarrow whole, by design: test_memory_bounds.py)
    pq.write_table(pa.table({"actual": np.arange(n, dtype=np.float64), "prediction": np.arange(n) * 0.5}), path,
                   data_page_size=1000)
    real, calls = _pages.decode_page, []

    def fails_later(*args):
        calls.append(1)
        if len(calls) > 6:
            raise _pages.Corrupt("simulated failure on a later page")
        return real(*args)

    monkeypatch.setattr(_pages, "decode_page", fails_later)
    # the streamed tables' path (the lockstep sum, which would take these rows whole, declines)
    monkeypatch.setattr(_pages, "reduce_pair", lambda *args: "declined by the test")
    with pytest.raises(BadFileError) as caught:
        l1stream.evaluate(path, chunk_rows=1000, scheduler="synchronous")
    assert "simulated failure" in str(caught.value) and "L1STREAM_NATIVE=0" in str(caught.value)


def test_same_state_with_and_without_the_decoder(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    n = 20_000
    actual = np.round(rng.lognormal(10, 1, n), 2)
    prediction = np.round(actual * rng.lognormal(0, 0.1, n), 2)
    prediction[rng.random(n) < 0.01] = np.nan
    for i in range(3):
        a = pa.array(actual[i::3], mask=rng.random(len(actual[i::3])) < 0.02)
        pq.write_table(pa.table({"actual": a, "prediction": prediction[i::3], "g": (np.arange(len(a)) % 4)}),
                       str(tmp_path / f"part-{i}.parquet"), row_group_size=2_000, write_page_checksum=True,
                       data_page_size=4096)
    options = {"nan_policy": "omit", "by": ["g"], "scheduler": "synchronous"}
    native = l1stream.evaluate(str(tmp_path), **options)
    monkeypatch.setenv("L1STREAM_NATIVE", "0")
    assert not pages.native_decoder_enabled()
    plain = l1stream.evaluate(str(tmp_path), **options)
    timeless = [{k: v for k, v in r.to_dict().items() if k != "elapsed_seconds"} for r in (native, plain)]
    assert timeless[0] == timeless[1]
    keep = ~np.isnan(prediction)
    assert native.count < keep.sum()  # nulls were left out too
    assert native.left_out == plain.left_out and native.left_out["null"] > 0 and native.left_out["nan"] > 0


def test_a_corrupt_page_is_never_trusted(tmp_path, capsys):
    path = tmp_path / "data" / "part-0.parquet"
    path.parent.mkdir()
    table = pa.table({"actual": np.arange(1000.0), "prediction": np.arange(1000.0) + 0.5})
    pq.write_table(table, str(path), write_page_checksum=True, use_dictionary=False)
    column = pq.ParquetFile(str(path)).metadata.row_group(0).column(1)
    raw = bytearray(path.read_bytes())
    raw[column.data_page_offset + column.total_compressed_size - 3] ^= 0x10  # inside a page body: a value's bits
    path.write_bytes(bytes(raw))
    pq.write_table(table, str(path.parent / "part-1.parquet"), write_page_checksum=True)
    with pytest.raises(BadFileError) as caught:
        l1stream.evaluate(str(path.parent), scheduler="synchronous")
    message = str(caught.value)
    assert str(path) in message and "row group 0" in message and "CRC" in message.upper()
    skipped = l1stream.evaluate(str(path.parent), on_bad_file="skip", scheduler="synchronous")
    assert list(skipped.skipped) == [str(path)] and skipped.count == 1000 and skipped.mae == 0.5


def test_decoder_disagreement_falls_back_to_pyarrow_and_warns(tmp_path, monkeypatch, caplog):
    path = str(tmp_path / "t.parquet")
    actual, prediction = np.arange(300.0), np.arange(300.0)[::-1].copy()
    pq.write_table(pa.table({"actual": actual, "prediction": prediction}), path)

    def refuses(*args):
        raise _pages.Corrupt("simulated disagreement")

    monkeypatch.setattr(_pages, "decode_page", refuses)
    monkeypatch.setattr(_pages, "decode_column_chunks", refuses)
    monkeypatch.setattr(_pages, "reduce_pair", lambda *args: "page 0: damage: simulated disagreement")
    with caplog.at_level(logging.WARNING, logger="l1stream"):
        result = l1stream.evaluate(path, scheduler="synchronous")
    assert result.mae == exact_mae(actual, prediction)
    assert "simulated disagreement" in caplog.text and "pyarrow's values" in caplog.text


def test_random_damage_never_crashes_the_decoder(tmp_path):
    """Flip bytes and truncate: every call returns or raises Corrupt/Unsupported (no crash, no hang)."""
    rng = np.random.default_rng(11)
    path = str(tmp_path / "t.parquet")
    values = np.round(rng.lognormal(8, 1, 3000), 2)
    values = pa.array(values, mask=rng.random(3000) < 0.05)
    pq.write_table(pa.table({"x": values}), path, data_page_size=2048, write_page_checksum=False)
    column = pq.ParquetFile(path).metadata.row_group(0).column(0)
    start = column.dictionary_page_offset or column.data_page_offset
    chunk = open(path, "rb").read()[start:start + column.total_compressed_size]
    out, valid, dictionary, scratch = np.empty(3000), np.empty(3000, np.uint8), np.empty(3000), bytearray(1 << 16)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(3000):
        damaged = bytearray(chunk)
        for _ in range(int(rng.integers(1, 4))):
            damaged[int(rng.integers(0, len(damaged)))] = int(rng.integers(0, 256))
        damaged = bytes(damaged[:len(damaged) - int(rng.integers(0, 3)) * int(rng.integers(0, 50))])
        offset, have_dictionary = 0, False
        try:
            while offset < len(damaged):
                kind, count, _, _, size = _pages.page_header(damaged, offset)
                if size > len(scratch):
                    raise _pages.Unsupported("page too large for this test")
                target = dictionary if kind == 2 else out
                _, offset = _pages.decode_page(damaged, offset, 1, True, 1, dictionary if have_dictionary else None,
                                               target[:count] if count <= len(target) else target, valid, scratch)
                have_dictionary |= kind == 2
            outcomes["ok"] += 1
        except (_pages.Corrupt, _pages.Unsupported, ValueError):
            outcomes["refused"] += 1
    assert outcomes["refused"] > 1000 and sum(outcomes.values()) == 3000


@pytest.mark.parametrize("size", [0, 1, 15, 16, 63, 64, 65, 127, 1000, 1 << 16, (1 << 20) + 3])
def test_crc32_equals_zlib(size):
    data = np.random.default_rng(size).bytes(size)
    assert _pages.crc32(data) == zlib.crc32(data)


@pytest.mark.parametrize("kind", ["random", "zeros", "text", "prices", "short-period"])
def test_snappy_equals_pyarrow_codec(kind):
    rng = np.random.default_rng(3)
    makers = {"random": lambda n: rng.bytes(n), "zeros": bytes, "text": lambda n: (b"the quick brown fox " * n)[:n],
              "prices": lambda n: np.round(rng.lognormal(12, 0.3, n // 8 + 1), 2).tobytes()[:n],
              "short-period": lambda n: (rng.bytes(3) * n)[:n]}
    for size in [0, 1, 7, 8, 17, 100, 4097, 300_000]:
        data = makers[kind](size)
        compressed = pa.compress(data, codec="snappy", asbytes=True)
        assert _pages.snappy_uncompress(compressed, size) == data
        if size:
            with pytest.raises(_pages.Corrupt):
                _pages.snappy_uncompress(compressed[:-1], size)
            with pytest.raises(_pages.Corrupt):
                _pages.snappy_uncompress(compressed, size + 1)


@pytest.mark.parametrize("kind", ["random", "zeros", "text", "prices", "short-period"])
def test_zstd_equals_pyarrow_codec(kind):
    """The vendored zstd decompressor against pyarrow's zstd (another build of the reference library),
    at several levels, with concatenated frames (a page may hold more than one), and refusing a stream
    that does not fill the page's stated size exactly."""
    rng = np.random.default_rng(5)
    makers = {"random": lambda n: rng.bytes(n), "zeros": bytes, "text": lambda n: (b"the quick brown fox " * n)[:n],
              "prices": lambda n: np.round(rng.lognormal(12, 0.3, n // 8 + 1), 2).tobytes()[:n],
              "short-period": lambda n: (rng.bytes(3) * n)[:n]}
    for size in [0, 1, 7, 100, 4097, 300_000]:
        data = makers[kind](size)
        for level in (1, 3, 19):
            compressed = pa.Codec("zstd", compression_level=level).compress(data, asbytes=True)
            assert _pages.zstd_uncompress(compressed, size) == data
            assert _pages.zstd_uncompress(compressed + compressed, 2 * size) == data + data
        with pytest.raises(_pages.Corrupt):
            _pages.zstd_uncompress(compressed[:-1], size)
        with pytest.raises(_pages.Corrupt):
            _pages.zstd_uncompress(compressed, size + 1)
        if size:
            with pytest.raises(_pages.Corrupt):
                _pages.zstd_uncompress(compressed, size - 1)
    with pytest.raises(_pages.Corrupt):
        _pages.zstd_uncompress(b"not zstd at all", 15)


SNAPPY_INPUTS = st.one_of(
    st.binary(max_size=3000),
    st.integers(0, 50_000).map(lambda n: np.random.default_rng(n).bytes(n)),  # one long literal
    st.integers(0, 50_000).map(lambda n: bytes(n)),  # long runs: copies with short offsets
    st.integers(1, 20_000).map(lambda n: np.round(np.random.default_rng(n).lognormal(12, .3, n), 2).tobytes()),
    st.tuples(st.binary(min_size=1, max_size=40), st.integers(1, 3000)).map(lambda t: (t[0] * t[1])),
)


@settings(max_examples=examples(150), deadline=None)
@given(SNAPPY_INPUTS, SNAPPY_INPUTS)
def test_two_snappy_streams_at_once_equal_one_by_one(first, second):
    """The interleaved decompression (two columns' pages together) against pyarrow's codec, including
    streams that end in the same step and streams of very different lengths."""
    a, b = (pa.compress(x, codec="snappy", asbytes=True) for x in (first, second))
    assert _pages.snappy_uncompress2(a, len(first), b, len(second)) == (first, second)
    if len(a) > 1:
        with pytest.raises(_pages.Corrupt, match="stream 0"):
            _pages.snappy_uncompress2(a[:-1], len(first), b, len(second))


def test_default_writer_row_groups_decode_in_pairs_bit_for_bit(tmp_path):
    """pyarrow's defaults at a realistic size (dictionary pages near 1 MiB, then PLAIN fallback): the
    path the benchmark takes, with the two columns' pages decompressed together."""
    rng = np.random.default_rng(2)
    n = 300_000
    actual = np.round(rng.lognormal(12, 0.3, n), 2)
    table = pa.table({"actual": actual, "prediction": np.round(actual * rng.lognormal(0, 0.1, n), 2)})
    path = str(tmp_path / "t.parquet")
    pq.write_table(table, path, row_group_size=131072, write_page_checksum=True)
    chunks = native_tables(path, ["actual", "prediction"])
    got = pa.concat_tables(t for row_group in chunks for _, t in row_group)
    for name in ("actual", "prediction"):
        assert bits(got[name]) == bits(table[name])


FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(FLOATS, FLOATS), max_size=70))
def test_kernel_equals_fractions(pairs):
    a = np.array([x for x, _ in pairs], dtype=np.float64)
    p = np.array([y for _, y in pairs], dtype=np.float64)
    expected = sum((abs(Fraction(x) - Fraction(y)) for x, y in pairs), Fraction(0))
    assert Fraction(abs_diff_units(a, p), UNITS) == expected
    for fold in folds():  # every vector width this processor runs, not only the one chosen
        assert Fraction(abs_diff_units(a, p, fold), UNITS) == expected, fold


def test_kernel_folds_are_the_widest_this_machine_runs():
    import re

    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    found = set(re.findall(r"\b(avx2|avx512f)\b", flags))
    assert folds()[0] == "sse2" or not flags
    assert ("avx2" in folds()) == ("avx2" in found)
    assert ("avx512" in folds()) == ("avx512f" in found)


@pytest.mark.parametrize("fold", folds())
@pytest.mark.parametrize("n", [0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 4095, 4096, 4097, 4111, 8208])
def test_kernel_every_fold_at_every_ragged_length(fold, n):
    """Rows past the last whole loop step go to the bins one by one: every length, every width."""
    rng = np.random.default_rng(n)
    a = np.round(rng.lognormal(3, 2, n), 3) * rng.choice([-1, 1], n)
    p = a + rng.normal(size=n) * 10.0 ** rng.integers(-12, 3, n)
    expected = sum((abs(Fraction(x) - Fraction(y)) for x, y in zip(a.tolist(), p.tolist())), Fraction(0))
    assert Fraction(abs_diff_units(a, p, fold), UNITS) == expected


@pytest.mark.parametrize("data", ["ordinary", "mixed-signs", "whole-range", "subnormal", "near-overflow"])
def test_kernel_blocks_equal_fractions_and_the_numpy_kernel(data):
    rng = np.random.default_rng(5)
    n = 9_001  # several 4096-row blocks and a ragged tail
    if data == "ordinary":
        a = np.round(rng.lognormal(12, 0.3, n), 2)
        p = np.round(a * rng.lognormal(0, 0.1, n), 2)
    elif data == "mixed-signs":
        a, p = rng.normal(size=n), rng.normal(size=n)
        a[::97] = 1e-9 * rng.normal(size=len(a[::97]))  # tiny values beside large ones: the second fold and bins
    elif data == "whole-range":
        a = rng.integers(-2**62, 2**62, n).view(np.float64)
        a = np.where(np.isfinite(a), a, 1.0)
        p = rng.permutation(a)
    elif data == "subnormal":
        a, p = rng.integers(-2**40, 2**40, n) * 5e-324, rng.integers(-2**40, 2**40, n) * 5e-324
    else:
        a = np.full(n, 1.7976931348623157e308) * rng.choice([-1, 1], n)
        p = -a * rng.random(n)
    expected = sum((abs(Fraction(x) - Fraction(y)) for x, y in zip(a.tolist(), p.tolist())), Fraction(0))
    assert Fraction(abs_diff_units(a, p), UNITS) == expected
    for fold in folds():
        assert Fraction(abs_diff_units(a, p, fold), UNITS) == expected, fold
    plain = _exact.ExactSum()
    for start in range(0, n, _exact.BLOCK_ROWS):
        plain._block_abs_diff(a[start:start + _exact.BLOCK_ROWS], p[start:start + _exact.BLOCK_ROWS])
    assert plain.units == abs_diff_units(a, p)


def test_kernel_reports_non_finite_values():
    assert abs_diff_units(np.array([1.0, np.nan]), np.array([1.0, 2.0])) is None
    assert abs_diff_units(np.array([1.0] * 9000), np.array([1.0] * 8999 + [np.inf])) is None
    with pytest.raises(ValueError):
        abs_diff_units(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError):
        abs_diff_units(np.zeros(3, dtype=np.float32), np.zeros(3, dtype=np.float32))
    for fold in folds():
        assert abs_diff_units(np.ones(40), np.array([1.0] * 39 + [np.nan]), fold) is None
        assert abs_diff_units(np.array([-np.inf] + [1.0] * 39), np.ones(40), fold) is None
    with pytest.raises(ValueError, match="no fold 'mmx'"):
        abs_diff_units(np.zeros(3), np.zeros(3), "mmx")


def test_version_says_which_c_parts_run(capsys, monkeypatch):
    from l1stream.cli.commands import main

    with pytest.raises(SystemExit):
        main(["--version"])
    assert "(C page decoder and kernel)" in capsys.readouterr().out
    monkeypatch.setenv("L1STREAM_NATIVE", "0")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "C parts off: L1STREAM_NATIVE=0" in capsys.readouterr().out
