"""The error report on files other engines wrote: Polars, DuckDB and fastparquet hive datasets.

Ground truth from the Python values written (never read back through l1stream): numpy's median
and quantiles of the losses of the rows used, overall and per model, and the top-1% share and the
mean squared error with Fractions.  Each dataset has several files per model, so the report's
sample (report/sampled.py) and the selection made during the first pass are exercised, with the C
decoder and without it.  Spark's files: tests/test_spark.py.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest
from services import need_module

import l1stream


def _rows(seed: int, files: int = 6, rows: int = 4_000) -> list:
    """Per file: (model, actual, prediction) with nulls in actual and NaNs in prediction."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(files):
        for model in ("a", "b"):
            actual = np.round(rng.lognormal(9 + (model == "b"), 1, rows), 2).tolist()
            prediction = (np.array([v or 0.0 for v in actual]) * rng.lognormal(0, 0.2, rows)).tolist()
            for j in rng.choice(rows, rows // 40, replace=False):
                actual[int(j)] = None
            for j in rng.choice(rows, rows // 60, replace=False):
                prediction[int(j)] = math.nan
            out.append((model, i, actual, prediction))
    return out


def _write(writer: str, root, parts: list) -> None:
    for model, i, actual, prediction in parts:
        path = root / f"model={model}" / f"part-{i}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        if writer == "polars":
            pl = need_module("polars")
            pl.DataFrame({"actual": actual, "prediction": prediction},
                         schema={"actual": pl.Float64, "prediction": pl.Float64}).write_parquet(path)
        elif writer == "duckdb":
            duckdb = need_module("duckdb")
            con = duckdb.connect()
            con.register("t", pa.table({"actual": pa.array(actual, pa.float64()),
                                        "prediction": pa.array(prediction, pa.float64())}))
            con.execute(f"COPY t TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 1500)")
        else:
            fastparquet = need_module("fastparquet")
            pd = need_module("pandas")
            fastparquet.write(str(path), pd.DataFrame({"actual": pd.array(actual, dtype="Float64").astype(float),
                                                       "prediction": prediction}), row_group_offsets=1500)


def _losses(parts: list, model=None) -> np.ndarray:
    """The float losses of the rows used (nulls and NaNs left out), as numpy computes them."""
    kept = []
    for m, _, actual, prediction in parts:
        if model is not None and m != model:
            continue
        for a, p in zip(actual, prediction):
            if a is not None and not math.isnan(p):
                kept.append((a, p))
    a, p = np.array([r[0] for r in kept]), np.array([r[1] for r in kept])
    return np.abs(a - p), a, p


@pytest.mark.parametrize("native", ["1", "0"])
@pytest.mark.parametrize("writer", ["polars", "duckdb", "fastparquet"])
def test_the_report_on_other_writers_files_equals_numpy_and_fractions(tmp_path, monkeypatch, writer, native):
    parts = _rows(seed={"polars": 31, "duckdb": 32, "fastparquet": 33}[writer])
    _write(writer, tmp_path, parts)
    monkeypatch.setenv("L1STREAM_NATIVE", native)
    report = l1stream.evaluate_report(str(tmp_path), by="model", nan_policy="omit", quantiles=(0.9, 0.99))
    losses, a, p = _losses(parts)
    assert report.result.count == len(losses)
    assert report.quantiles.median == np.median(losses)
    for q in (0.9, 0.99):
        assert report.quantiles.quantiles[q] == np.quantile(losses, q)
    k = math.ceil(0.01 * len(losses))
    top = sorted(losses.tolist(), reverse=True)[:k]
    assert report.top_share == float(sum(map(Fraction, top)) / sum(map(Fraction, losses.tolist())))
    squares = sum((Fraction(x) - Fraction(y)) ** 2 for x, y in zip(a.tolist(), p.tolist()))
    assert report.overall.mse == float(squares / len(a))
    for model in ("a", "b"):
        mine = _losses(parts, model)[0]
        got = report.slice_quantiles[(model,)]
        assert got["median"] == np.median(mine)
        assert got[0.99] == np.quantile(mine, 0.99)
    assert report.passes >= 1 and 0 < report.reread < 1  # a sample was read twice
