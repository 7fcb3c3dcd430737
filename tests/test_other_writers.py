"""Files written by other engines' own writers, at their defaults and common options, read exactly.

Ground truth: the Python values written (never read back through l1stream), summed exactly with
Fractions (helpers.exact_mae).  Each file is read with the C decoder and without it
(``L1STREAM_NATIVE=0``): both must give the oracle's bits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import clean_rows, exact_mae
from services import need_module

import l1stream


def values(seed=11, rows=30_000):
    rng = np.random.default_rng(seed)
    actual = np.round(rng.lognormal(10, 1, rows), 2)
    prediction = actual * rng.lognormal(0, 0.2, rows)
    prediction[rng.random(rows) < 0.01] = np.nan  # NaNs (left out under omit)
    actual = actual.tolist()
    for i in rng.choice(rows, rows // 50, replace=False):
        actual[int(i)] = None  # nulls
    model = rng.choice(["a", "b", "c"], rows).tolist()
    return actual, prediction.tolist(), model


# what the C decoder takes; other codecs (gzip, lz4, brotli) go through pyarrow
C_CODECS = {"SNAPPY", "ZSTD", "UNCOMPRESSED"}


def per_slice(actual, prediction, model) -> dict:
    """The exact MAE and count of every model's finite rows (the oracle of a by="model" run)."""
    out = {}
    for m in sorted(set(model)):
        rows = [(a, p) for a, p, k in zip(actual, prediction, model) if k == m]
        a, p = clean_rows([r[0] for r in rows], [None if isinstance(r[1], float) and math.isnan(r[1]) else r[1]
                                                  for r in rows])
        out[(m,)] = (exact_mae(a, p), len(a))
    return out


def check(path, actual, prediction, monkeypatch, model=None):
    from l1stream.parquet import chunks

    a, p = clean_rows(actual, [None if isinstance(v, float) and math.isnan(v) else v for v in prediction])
    want = exact_mae(a, p)
    slices = per_slice(actual, prediction, model) if model is not None else None
    refused, original = [], chunks.decodable

    def watch(column, rows):
        ok = original(column, rows)
        if not ok and column.compression in C_CODECS:
            refused.append((column.compression, column.encodings))
        return ok

    monkeypatch.setattr(chunks, "decodable", watch)
    for native in ("1", "0"):
        monkeypatch.setenv("L1STREAM_NATIVE", native)
        result = l1stream.evaluate(str(path), nan_policy="omit")
        assert result.count == len(a), native
        assert result.mae == want, native
        if slices is not None:  # the writer's own string column, read as a dictionary, as the slice key
            got = l1stream.evaluate(str(path), nan_policy="omit", by="model").slice_numbers()
            assert {k: (v["mae"], v["count"]) for k, v in got.items()} == slices, native
    assert not refused, f"the C decoder handed these chunks to pyarrow: {refused}"


@pytest.mark.parametrize("compression", ["zstd", "snappy", "lz4", "gzip", "uncompressed"])
def test_polars(tmp_path, monkeypatch, compression):
    pl = need_module("polars")
    actual, prediction, model = values()
    frame = pl.DataFrame({"actual": actual, "prediction": prediction, "model": model},
                         schema={"actual": pl.Float64, "prediction": pl.Float64, "model": pl.Utf8})
    path = tmp_path / "polars.parquet"
    frame.write_parquet(path, compression=compression, row_group_size=7_000)
    check(path, actual, prediction, monkeypatch, model)


@pytest.mark.parametrize("options", ["", ", PARQUET_VERSION V2", ", COMPRESSION zstd", ", ROW_GROUP_SIZE 5000"])
def test_duckdb(tmp_path, monkeypatch, options):
    duckdb = need_module("duckdb")
    import pyarrow as pa

    actual, prediction, model = values(seed=12)
    table = pa.table({"actual": pa.array(actual, pa.float64()), "prediction": pa.array(prediction, pa.float64()),
                      "model": model})
    path = tmp_path / "duck.parquet"
    con = duckdb.connect()
    con.register("t", table)
    con.execute(f"COPY t TO '{path}' (FORMAT parquet{options})")
    check(path, actual, prediction, monkeypatch, model)


@pytest.mark.parametrize("compression", [None, "SNAPPY", "GZIP", "ZSTD"])
def test_fastparquet(tmp_path, monkeypatch, compression):
    fastparquet = need_module("fastparquet")
    import pandas as pd

    actual, prediction, model = values(seed=13, rows=12_000)
    frame = pd.DataFrame({"actual": pd.array(actual, dtype="Float64").astype("float64"),
                          "prediction": prediction, "model": model})
    # fastparquet writes NaN for a pandas float null: the oracle sees the same NaN (left out either way)
    path = tmp_path / "fp.parquet"
    fastparquet.write(str(path), frame, compression=compression, row_group_offsets=4_000)
    check(path, frame["actual"].tolist(), prediction, monkeypatch, model)


def test_a_hive_dataset_written_by_polars_and_read_per_slice(tmp_path):
    pl = need_module("polars")
    actual, prediction, model = values(seed=14, rows=9_000)
    frame = pl.DataFrame({"actual": actual, "prediction": prediction, "model": model})
    frame.write_parquet(tmp_path / "logs", partition_by="model")
    result = l1stream.evaluate(str(tmp_path / "logs"), by="model", nan_policy="omit")
    got = {row["model"]: (row["mae"], row["count"]) for row in result.groups.to_dict("records")}
    want = {}
    for m in ("a", "b", "c"):
        rows = [(a, p) for a, p, k in zip(actual, prediction, model) if k == m]
        a, p = clean_rows([r[0] for r in rows], [None if math.isnan(r[1]) else r[1] for r in rows])
        want[m] = (exact_mae(a, p), len(a))
    assert got == want


@pytest.mark.parametrize("writer", ["polars", "duckdb"])
def test_slices_without_nulls_take_the_one_pass_kernel_on_other_writers_files(tmp_path, monkeypatch, writer):
    """Finite values, a string slice column: the grouped C kernel path, against Fractions per slice and
    against pyarrow alone (L1STREAM_NATIVE=0, the general sort path)."""
    rng = np.random.default_rng(15)
    actual = rng.lognormal(10, 1, 20_000).tolist()
    prediction = (np.array(actual) * rng.lognormal(0, 0.2, 20_000)).tolist()
    model = rng.choice(["a", "b", "c", "d"], 20_000).tolist()
    path = tmp_path / f"{writer}.parquet"
    if writer == "polars":
        pl = need_module("polars")
        pl.DataFrame({"actual": actual, "prediction": prediction, "model": model}).write_parquet(
            path, row_group_size=6_000)
    else:
        duckdb = need_module("duckdb")
        import pyarrow as pa

        con = duckdb.connect()
        con.register("t", pa.table({"actual": actual, "prediction": prediction, "model": model}))
        con.execute(f"COPY t TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 6000)")
    for native in ("1", "0"):
        monkeypatch.setenv("L1STREAM_NATIVE", native)
        got = l1stream.evaluate(str(path), by="model").slice_numbers()
        assert {k: (v["mae"], v["count"]) for k, v in got.items()} == per_slice(actual, prediction, model), native
