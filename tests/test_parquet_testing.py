"""The public parquet-testing corpus (tests/data/parquet-testing, Apache-2.0): files other writers
made, read by l1stream with and without its C decoder.

Oracle: pyarrow's own read of the two columns, then exact Fraction arithmetic (helpers.exact_mae).
Files that are corrupt, encrypted or malformed must give a clean, located error (exit 3) or the
oracle's number, and never abort the process: each runs in a subprocess, whose exit code shows an
abort (134) that no ``except`` could catch.
"""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from helpers import clean_rows, exact_mae

import l1stream
from l1stream.errors import BadFileError

CORPUS = pathlib.Path(__file__).parent / "data" / "parquet-testing"
GOOD = [  # file, actual column, prediction column
    ("alltypes_tiny_pages.parquet", "double_col", "float_col"),
    ("alltypes_tiny_pages.parquet", "bigint_col", "int_col"),
    ("alltypes_tiny_pages_plain.parquet", "double_col", "float_col"),
    ("alltypes_plain.parquet", "double_col", "float_col"),
    ("alltypes_plain.snappy.parquet", "double_col", "float_col"),
    ("alltypes_dictionary.parquet", "double_col", "bigint_col"),
    ("byte_stream_split.zstd.parquet", "f64", "f32"),
    ("byte_stream_split_extended.gzip.parquet", "double_plain", "double_byte_stream_split"),
    ("byte_stream_split_extended.gzip.parquet", "float_plain", "double_plain"),
    ("datapage_v1-snappy-compressed-checksum.parquet", "a", "b"),
    ("datapage_v1-uncompressed-checksum.parquet", "a", "b"),
    ("datapage_v2.snappy.parquet", "c", "b"),
    ("delta_binary_packed.parquet", "bitwidth0", "bitwidth5"),
    ("floating_orders_nan_count.parquet", "double_ieee754", "double_typedef"),
    ("hadoop_lz4_compressed.parquet", "v11", "c0"),
    ("non_hadoop_lz4_compressed.parquet", "v11", "c0"),
    ("lz4_raw_compressed.parquet", "v11", "c0"),
]


def oracle(path, actual, prediction):
    table = pq.read_table(path, columns=[actual, prediction])
    a, p = clean_rows(table[actual].to_pylist(), table[prediction].to_pylist())
    return exact_mae(a, p), len(a)


@pytest.mark.parametrize("native", ["1", "0"])
@pytest.mark.parametrize("name, actual, prediction", GOOD)
def test_corpus_files_read_exactly(monkeypatch, native, name, actual, prediction):
    monkeypatch.setenv("L1STREAM_NATIVE", native)
    path = CORPUS / "data" / name
    want, count = oracle(path, actual, prediction)
    result = l1stream.evaluate(str(path), actual=actual, prediction=prediction, nan_policy="omit")
    assert result.count == count
    assert result.mae == want or (math.isnan(want) and math.isnan(result.mae))


@pytest.mark.parametrize("native", ["1", "0"])
def test_a_corrupt_page_checksum_is_a_clean_error(monkeypatch, native):
    monkeypatch.setenv("L1STREAM_NATIVE", native)
    with pytest.raises(BadFileError, match="datapage_v1-corrupt-checksum"):
        l1stream.evaluate(str(CORPUS / "data" / "datapage_v1-corrupt-checksum.parquet"), actual="a", prediction="b")


def run_cli(path, *args, native="1"):
    env = {**os.environ, "L1STREAM_NATIVE": native}
    return subprocess.run([sys.executable, "-m", "l1stream", "mae", str(path), *args], capture_output=True,
                          text=True, timeout=120, env=env)


HOSTILE = sorted(p.name for p in (CORPUS / "bad_data").iterdir()) + [
    "nation.dict-malformed.parquet", "encrypt_columns_plaintext_footer.parquet.encrypted",
    "uniform_encryption.parquet.encrypted"]


@pytest.mark.parametrize("native", ["1", "0"])
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_files_give_a_located_error_or_the_oracles_number_never_an_abort(name, native):
    path = CORPUS / ("bad_data" if (CORPUS / "bad_data" / name).exists() else "data") / name
    try:
        schema = pq.read_schema(path)
        numeric = [f.name for f in schema if str(f.type) in ("double", "float", "int32", "int64")][:2]
    except Exception:
        numeric = []
    args = ["--actual", numeric[0], "--prediction", numeric[1]] if len(numeric) == 2 else []
    proc = run_cli(path, *args, "--nan-policy", "omit", "--json", native=native)
    assert proc.returncode in (0, 3), (proc.returncode, proc.stderr[-2000:])
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    if proc.returncode == 0:
        import json

        want, count = oracle(path, *numeric)
        doc = json.loads(proc.stdout)
        assert doc["count"] == count and doc["mae"] == want
    else:  # the error names the file, or (fewer than two numeric columns) what the data lacks
        assert name.split(".")[0] in proc.stderr or "is not in the data" in proc.stderr, proc.stderr


def test_an_unknown_codec_number_is_a_clean_error_not_an_abort(tmp_path):
    """pyarrow aborts the process on RowGroupMetaData.column(i) for a codec number it does not know:
    patch a real file's codec (SNAPPY = 1, zigzag varint 0x02) to 9 (0x12), same length."""
    import pyarrow as pa

    from l1stream.parquet.footer import _Reader

    path = tmp_path / "codec.parquet"
    pq.write_table(pa.table({"actual": [1.0, 2.0], "prediction": [1.5, 2.5]}), str(path), compression="snappy")
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - length
    r = _Reader(bytes(data[start:-8]))
    positions = []
    for fid, kind in r.fields():
        if fid == 4 and kind == 9:
            size, _ = r.list_header()
            for _ in range(size):
                for gid, gkind in r.fields():
                    if gid == 1 and gkind == 9:
                        count, _ = r.list_header()
                        for _ in range(count):
                            for cid, ckind in r.fields():
                                if cid == 3:
                                    for mid, mkind in r.fields():
                                        if mid == 4:
                                            positions.append(r.pos)
                                        r.skip(mkind)
                                else:
                                    r.skip(ckind)
                    else:
                        r.skip(gkind)
        else:
            r.skip(kind)
    assert len(positions) == 2 and all(data[start + p] == 0x02 for p in positions)
    for p in positions:
        data[start + p] = 0x12
    path.write_bytes(bytes(data))
    for native in ("1", "0"):
        proc = run_cli(path, native=native)
        assert proc.returncode == 3, (proc.returncode, proc.stderr)
        assert "codec number 9" in proc.stderr and "codec.parquet" in proc.stderr
