"""Every in-memory input kind gives the exact oracle's MAE, overall and per slice, with filters on
dictionary (pandas category) columns; anything else is a UsageError listing what is accepted."""

from __future__ import annotations

import json

import dask.dataframe as dd
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from helpers import Oracle, assert_exact

import l1stream
from l1stream.cli import main
from l1stream.errors import SchemaError, UsageError

REGIONS = np.array(["north", "south", "east", "west"])


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(17)
    n = 5_003
    actual = rng.lognormal(10, 1, n)
    prediction = actual * rng.normal(1, 0.2, n)
    return pd.DataFrame({"actual": actual, "prediction": prediction,
                         "region": pd.Categorical(REGIONS[rng.integers(0, 4, n)]),
                         "model": np.where(rng.random(n) < 0.5, "v1", "v2")})


def oracle(frame, regions=None):
    keep = frame if regions is None else frame[frame.region.isin(regions)]
    return Oracle({(m,): [(g.actual.to_numpy(), g.prediction.to_numpy())] for m, g in keep.groupby("model")})


def inputs(frame, tmp_path):
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, tmp_path / "logs.parquet", row_group_size=1_000)
    return {
        "pandas": frame,
        "dask": dd.from_pandas(frame, npartitions=5),
        "polars": pl.from_pandas(frame),
        "polars-lazy": pl.from_pandas(frame).lazy(),
        "arrow-table": table,
        "arrow-batch": table.combine_chunks().to_batches()[0],
        "arrow-reader": pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=700)),
        "arrow-dataset (in memory)": ds.dataset(table),
        "arrow-dataset (Parquet files)": ds.dataset(tmp_path / "logs.parquet"),
        "path": str(tmp_path / "logs.parquet"),
    }


@pytest.mark.parametrize("kind", ["pandas", "dask", "polars", "polars-lazy", "arrow-table", "arrow-batch",
                                  "arrow-reader", "arrow-dataset (in memory)", "arrow-dataset (Parquet files)",
                                  "path"])
def test_every_input_kind_is_exact(frame, tmp_path, kind):
    source = inputs(frame, tmp_path)[kind]
    assert_exact(l1stream.evaluate(source, by="model", chunk_rows=999), oracle(frame))


@pytest.mark.parametrize("kind", ["pandas", "polars", "polars-lazy", "arrow-table", "arrow-reader",
                                  "arrow-dataset (in memory)", "arrow-dataset (Parquet files)", "path"])
def test_filters_on_a_category_column(frame, tmp_path, kind):
    """The demo's region column is dictionary-encoded; a pandas category is written as one."""
    source = inputs(frame, tmp_path)[kind]
    result = l1stream.evaluate(source, by="model", filters="region in north,south", chunk_rows=999)
    assert_exact(result, oracle(frame, ["north", "south"]))
    assert result.filters == ("region in north,south",)
    if kind != "arrow-reader":  # a reader is read once
        assert_exact(l1stream.evaluate(source, by="model", filters="region==east"), oracle(frame, ["east"]))


def test_category_filter_on_the_command_line(frame, tmp_path, capsys):
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "cat.parquet")
    code = main(["mae", str(tmp_path / "cat.parquet"), "--filter", "region in north,south", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["mae"] == oracle(frame, ["north", "south"]).mae


def test_a_filtered_pyarrow_dataset_keeps_its_filter(frame, tmp_path):
    """Reading the files behind a filtered dataset would count rows the dataset leaves out."""
    source = inputs(frame, tmp_path)["arrow-dataset (Parquet files)"].filter(ds.field("region") == "west")
    assert_exact(l1stream.evaluate(source, by="model"), oracle(frame, ["west"]))


def test_a_lazy_frame_is_streamed_not_collected(frame, monkeypatch):
    lazy = pl.from_pandas(frame).lazy()
    monkeypatch.setattr(pl.LazyFrame, "collect", lambda *a, **k: pytest.fail("the LazyFrame was collected whole"))
    assert_exact(l1stream.evaluate(lazy, by="model", chunk_rows=500), oracle(frame))


def test_missing_column_names_the_input_and_suggests(frame):
    with pytest.raises(SchemaError, match=r"a polars DataFrame has no column 'predicton' \(did you mean "
                                          r"'prediction'\?\); columns: actual, prediction"):
        l1stream.evaluate(pl.from_pandas(frame), prediction="predicton")


@pytest.mark.parametrize("source, words", [
    ({"actual": [1.0], "prediction": [2.0]}, r"a dict is not a source .*pyarrow.table\(d\)"),
    (3, r"an int is not a source"),
    ([pa.table({"actual": [1.0]})], r"a list holding a pyarrow.Table .*one object at a time"),
    (np.zeros(3), r"a numpy.ndarray is not a source .*l1stream.mean_absolute_error\(y_true, y_pred\)"),
])
def test_unsupported_inputs_list_what_is_accepted(source, words):
    with pytest.raises(UsageError, match=words) as caught:
        l1stream.evaluate(source)
    for accepted in ("pandas DataFrame", "polars DataFrame or LazyFrame", "pyarrow Table", "RecordBatchReader",
                     "pyarrow.dataset.Dataset", "os.PathLike"):
        assert accepted in str(caught.value)


def test_paths_only_functions_say_so(frame):
    with pytest.raises(UsageError, match=r"by path, and got in-memory data .*l1stream.evaluate reads"):
        l1stream.error_quantiles(pa.Table.from_pandas(frame))


def test_the_report_refuses_what_it_cannot_read(frame):
    with pytest.raises(UsageError, match=r"the report reads paths, tables, pandas and Dask DataFrames.*to_pandas"):
        l1stream.evaluate_report(pl.from_pandas(frame))
