"""A file of one huge row group is read by several tasks, each row exactly once.

Ground truth: an exact oracle over the values written (helpers.Oracle).  Pieces are checked at the
level of rows (every row of the file in exactly one piece's range, in order) and end to end (the
MAE, counts and slices; the C decoder and pyarrow; every scheduler; filters; the store).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from helpers import Oracle, assert_exact

import l1stream
from l1stream.engine.planning import plan_tasks
from l1stream.engine.scan import Piece, iter_piece_chunks, my_row_ranges, open_parquet
from l1stream.sources.discovery import discover
from l1stream.sources.filters import bind_filters

ROWS = 300_000


@pytest.fixture(scope="module")
def one_row_group(tmp_path_factory):
    rng = np.random.default_rng(31)
    actual = np.round(rng.lognormal(8, 1, ROWS), 2)
    prediction = actual * rng.lognormal(0, 0.2, ROWS)
    mask = rng.random(ROWS) < 0.01
    path = tmp_path_factory.mktemp("split") / "big.parquet"
    table = pa.table({"actual": pa.array(actual, mask=mask), "prediction": prediction,
                      "model": rng.choice(["a", "b"], ROWS)})
    pq.write_table(table, path, row_group_size=ROWS, data_page_size=20_000, compression="zstd")
    keep = ~mask
    models = table["model"].to_numpy(zero_copy_only=False)
    slices = {(m,): [(actual[keep & (models == m)], prediction[keep & (models == m)])] for m in ("a", "b")}
    return path, Oracle(slices), Oracle({(): [(actual[keep], prediction[keep])]})


def test_the_pieces_of_one_row_group_cover_every_row_once(one_row_group):
    path, _, _ = one_row_group
    parquet = open_parquet(str(path), LocalFileSystem())
    for splits in (2, 3, 7, 16):
        ranges = [r for s in range(splits)
                  for r in my_row_ranges(parquet.metadata, Piece(str(path), split=s, splits=splits),
                                         ["actual", "prediction"])]
        assert [r[0] for r in ranges] == [0] * len(ranges) and len(ranges) == splits
        assert ranges[0][1] == 0 and ranges[-1][2] == ROWS
        assert all(a[2] == b[1] for a, b in zip(ranges, ranges[1:]))  # contiguous, no gap, no overlap
    # a column the decoder does not take (a string `by` column): the first piece reads it whole
    whole = [my_row_ranges(parquet.metadata, Piece(str(path), split=s, splits=4), ["actual", "prediction", "model"])
             for s in range(4)]
    assert whole == [[(0, 0, ROWS)], [], [], []]
    parquet.close()


@pytest.mark.parametrize("native", ["1", "0"])
@pytest.mark.parametrize("splits", [3, 8])
def test_the_rows_of_each_piece_are_those_pyarrow_reads_there(one_row_group, native, splits, monkeypatch):
    path, _, _ = one_row_group
    monkeypatch.setenv("L1STREAM_NATIVE", native)
    from l1stream.engine.scan import ScanSpec

    want = pq.read_table(str(path), columns=["actual", "prediction"])
    spec = ScanSpec(actual="actual", prediction="prediction", chunk_rows=7_000)
    got = []
    for s in range(splits):
        for _, _, table in iter_piece_chunks(Piece(str(path), split=s, splits=splits), spec, LocalFileSystem()):
            got.append(pa.table({n: table[n].combine_chunks() for n in table.column_names}))  # copy out
    assert pa.concat_tables(got).equals(want)


@pytest.mark.parametrize("native", ["1", "0"])
def test_one_big_row_group_is_split_across_tasks_and_stays_exact(one_row_group, native, monkeypatch):
    path, by_model, overall = one_row_group
    monkeypatch.setenv("L1STREAM_NATIVE", native)
    found = discover(str(path))
    plan = plan_tasks(found, bind_filters([], found.partition_types, None), target_bytes=400_000)
    assert len(plan.tasks) >= 4  # the planner asks for pieces; the scan gives each a share of the rows
    for scheduler in ("threads", "synchronous", "processes"):
        result = l1stream.evaluate(str(path), nan_policy="omit", task_bytes=400_000, scheduler=scheduler)
        assert_exact(result, overall)
        report = result.file_reports[str(path)]
        assert report.rows_read == ROWS and report.row_groups == 1
    # by a data column: the first piece reads the row group whole (pyarrow decodes that column)
    assert_exact(l1stream.evaluate(str(path), nan_policy="omit", task_bytes=400_000, by="model"), by_model)


def test_a_split_row_group_with_a_row_filter_and_the_store(one_row_group, tmp_path):
    path, _, _ = one_row_group
    table = pq.read_table(str(path))
    a = table["actual"].to_numpy(zero_copy_only=False)
    p = table["prediction"].to_numpy()
    keep = ~np.isnan(a) & (p > 3000)
    want = Oracle({(): [(a[keep], p[keep])]})
    store = str(tmp_path / "store")
    first = l1stream.evaluate(str(path), nan_policy="omit", task_bytes=400_000, filters="prediction>3000",
                              store=store)
    again = l1stream.evaluate(str(path), nan_policy="omit", task_bytes=400_000, filters="prediction>3000",
                              store=store)
    assert_exact(first, want)
    assert_exact(again, want)
    assert again.fragments["read"] == 0 and again.fragments["reused"] == first.fragments["read"] >= 4
