"""Files written by Spark (parquet-mr) itself, read exactly, through the C decoder and without it.

Spark runs for real (pyspark on the machine's JRE, ``local[2]``, no UI) and writes the rows the
test made in Python: its defaults (snappy, v1 pages, hive ``partitionBy``), v2 pages, dictionary
off, small row groups and pages, and each codec it writes.  Ground truth is the Python values
handed to Spark, summed exactly (helpers.Oracle), never a Parquet reader.  parquet-mr lists
``BIT_PACKED`` among a column chunk's encodings for levels it does not store: the C decoder must
still take those files (``chunks.decodable`` is watched), not hand them to pyarrow.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess

import numpy as np
import pytest
from helpers import Oracle, assert_exact
from services import need

import l1stream
from l1stream.parquet import chunks, pages

ROWS = 24_000


def _java_ok() -> bool:
    java = shutil.which("java")
    if not java:
        return False
    return subprocess.run([java, "-version"], capture_output=True, timeout=60).returncode == 0


def _rows():
    rng = np.random.default_rng(23)
    actual = np.round(rng.lognormal(9, 1, ROWS), 3)
    prediction = actual * rng.lognormal(0, 0.3, ROWS)
    models = rng.choice(["v1", "v2", "v3"], ROWS)
    rows = []
    for i in range(ROWS):
        a = None if i % 97 == 0 else float(actual[i])  # nulls: Spark's doubles are optional columns
        p = float("nan") if i % 89 == 0 else float(prediction[i])  # NaNs, left out under omit
        rows.append((a, p, str(models[i]), i % 11 == 0))
    return rows


# name -> (DataFrameWriter options, compression): each a way Spark users write
SHAPES = {
    "defaults": ({}, None),
    "v2-pages": ({"parquet.writer.version": "v2"}, None),
    "no-dictionary-small-pages": ({"parquet.enable.dictionary": "false", "parquet.block.size": "65536",
                                   "parquet.page.size": "4096"}, None),
    "zstd": ({"parquet.block.size": "131072"}, "zstd"),
    "gzip": ({}, "gzip"),
    "lz4": ({}, "lz4"),
    "uncompressed": ({}, "none"),
}


@pytest.fixture(scope="module")
def spark_tables(tmp_path_factory):
    need(_java_ok(), "Spark needs a Java runtime (Debian: openjdk-17-jre-headless)")
    try:
        from pyspark.sql import SparkSession
        from pyspark.sql.types import BooleanType, DoubleType, StringType, StructField, StructType
    except ImportError:
        need(False, "pyspark is not installed (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("spark")
    spark = (SparkSession.builder.master("local[2]").appName("l1stream-tests")
             .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1").config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    rows = _rows()
    schema = StructType([StructField("actual", DoubleType()), StructField("prediction", DoubleType()),
                         StructField("model", StringType()), StructField("holdout", BooleanType())])
    try:
        frame = spark.createDataFrame(rows, schema).repartition(3)
        written = {}
        for name, (options, compression) in SHAPES.items():
            writer = frame.write.mode("overwrite").partitionBy("model")
            for key, value in options.items():
                writer = writer.option(key, value)
            if compression:
                writer = writer.option("compression", compression)
            writer.parquet(str(root / name))
            written[name] = str(root / name)
    finally:
        spark.stop()
    return rows, written


def _oracle(rows, by_model: bool) -> Oracle:
    slices = {}
    for a, p, model, _ in rows:
        if a is None or math.isnan(p):
            continue
        slices.setdefault((model,) if by_model else (), []).append(([a], [p]))
    return Oracle(slices)


@pytest.mark.parametrize("native", ["1", "0"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_spark_output_is_exact(spark_tables, shape, native, monkeypatch):
    rows, written = spark_tables
    monkeypatch.setenv("L1STREAM_NATIVE", native)
    refused = []
    original = chunks.decodable

    def watch(column, rows):
        ok = original(column, rows)
        if not ok:
            refused.append((column.compression, column.encodings))
        return ok

    monkeypatch.setattr(chunks, "decodable", watch)
    assert_exact(l1stream.evaluate(written[shape], nan_policy="omit"), _oracle(rows, False))
    assert_exact(l1stream.evaluate(written[shape], nan_policy="omit", by="model"), _oracle(rows, True))
    if native == "1" and shape not in ("gzip", "lz4"):
        # Spark's BIT_PACKED-listing chunks, v2 pages, zstd: all on the C path
        assert not refused, refused


def test_spark_output_filtered_on_a_boolean_column(spark_tables):
    rows, written = spark_tables
    kept = [r for r in rows if r[3]]
    result = l1stream.evaluate(written["defaults"], nan_policy="omit", filters=[("holdout", "==", True)])
    assert_exact(result, _oracle(kept, False))


def test_spark_writes_what_the_test_claims(spark_tables):
    """The shapes differ as named: codecs, page versions and the BIT_PACKED listing are really there."""
    import glob

    import pyarrow.parquet as pq

    _, written = spark_tables

    def first(shape):
        files = sorted(glob.glob(os.path.join(written[shape], "model=*", "*.parquet")))
        assert files and all(not os.path.basename(f).startswith(".") for f in files)
        return pq.ParquetFile(files[0]).metadata

    meta = first("defaults")
    assert meta.created_by.startswith("parquet-mr")
    column = meta.row_group(0).column(0)
    assert column.compression == "SNAPPY" and "BIT_PACKED" in column.encodings
    assert first("zstd").row_group(0).column(0).compression == "ZSTD"
    assert first("gzip").row_group(0).column(0).compression == "GZIP"
    assert first("uncompressed").row_group(0).column(0).compression == "UNCOMPRESSED"
    assert first("no-dictionary-small-pages").num_row_groups >= 1
    assert "PLAIN_DICTIONARY" not in first("no-dictionary-small-pages").row_group(0).column(0).encodings
    v2 = first("v2-pages").row_group(0).column(0)
    assert pages.DATA_PAGE_V2 in _page_types(written["v2-pages"], v2)
    assert pages.DATA_PAGE not in _page_types(written["v2-pages"], v2)
    assert pages.DATA_PAGE_V2 not in _page_types(written["defaults"], column)


def _page_types(directory, column) -> set:
    """The page types in the first file's column chunk, walked header by header."""
    import glob

    path = sorted(glob.glob(os.path.join(directory, "model=*", "*.parquet")))[0]
    start, size = chunks.chunk_range(column)
    with open(path, "rb") as handle:
        handle.seek(start)
        chunk = handle.read(size)
    kinds, at = set(), 0
    while at < len(chunk):
        kind, _, header, body, _ = pages._pages.page_header(chunk, at)
        kinds.add(kind)
        at += header + body
    return kinds


@pytest.mark.parametrize("shape", ["defaults", "zstd"])
def test_the_report_on_spark_output_equals_numpy_and_fractions(spark_tables, shape):
    """The error report (its sample, the selection made in the first pass) on parquet-mr's files:
    numpy's quantiles overall and per model, the Fraction top-1% share, of the rows used."""
    from fractions import Fraction

    rows, written = spark_tables
    report = l1stream.evaluate_report(written[shape], by="model", nan_policy="omit", quantiles=(0.9, 0.99))
    kept = [(a, p, m) for a, p, m, _ in rows if a is not None and not math.isnan(p)]
    losses = np.abs(np.array([r[0] for r in kept]) - np.array([r[1] for r in kept]))
    assert report.quantiles.median == np.median(losses)
    assert report.quantiles.quantiles[0.99] == np.quantile(losses, 0.99)
    k = math.ceil(0.01 * len(losses))
    top = sorted(losses.tolist(), reverse=True)[:k]
    assert report.top_share == float(sum(map(Fraction, top)) / sum(map(Fraction, losses.tolist())))
    for model in ("v1", "v2", "v3"):
        mine = np.array([abs(a - p) for a, p, m in kept if m == model])
        assert report.slice_quantiles[(model,)]["median"] == np.median(mine)
        assert report.slice_quantiles[(model,)][0.9] == np.quantile(mine, 0.9)
