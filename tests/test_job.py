"""The Dask job over real Parquet: partitions, slices, filters, schedulers, splits."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import exact_mae, examples, write_parquet, write_split
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import l1stream


def test_overall_and_by_partition(hive_dataset):
    root, rows = hive_dataset
    result = l1stream.evaluate(str(root), by="model")
    all_a = np.concatenate([v[0] for v in rows.values()])
    all_p = np.concatenate([v[1] for v in rows.values()])
    assert result.mae == exact_mae(all_a, all_p)
    assert result.count == len(all_a) == result.rows_read
    groups = result.groups
    assert list(groups.columns[:3]) == ["model", "mae", "count"]
    for model in ("v1", "v2"):
        a = np.concatenate([v[0] for k, v in rows.items() if k[1] == model])
        p = np.concatenate([v[1] for k, v in rows.items() if k[1] == model])
        row = groups[groups.model == model].iloc[0]
        assert row["mae"] == exact_mae(a, p)
        assert row["count"] == len(a)


def test_by_partition_and_column_with_filters(hive_dataset):
    root, rows = hive_dataset
    result = l1stream.evaluate(str(root), by=["date", "segment"], filters=["date>=2026-11-02", "model==v2"])
    assert result.files_selected == 2 and result.files_pruned == 4
    got = {(k[0], k[1]): s for k, s in result.group_states.items()}
    assert set(got) == {(dt.date(2026, 11, d), s) for d in (2, 3) for s in ("a", "b")}
    for (date, segment), state in got.items():
        a, p, seg = rows[(date.isoformat(), "v2")]
        assert state.mae == exact_mae(a[seg == segment], p[seg == segment])
        assert state.count == int((seg == segment).sum())


def test_row_filter_on_a_data_column(hive_dataset):
    root, rows = hive_dataset
    result = l1stream.evaluate(str(root), filters=[("segment", "in", ["b"]), ("actual", ">", 100000.0)])
    a = np.concatenate([v[0][(v[2] == "b") & (v[0] > 100000.0)] for v in rows.values()])
    p = np.concatenate([v[1][(v[2] == "b") & (v[0] > 100000.0)] for v in rows.values()])
    assert result.mae == exact_mae(a, p)
    assert result.count == len(a)
    total = sum(len(v[0]) for v in rows.values())
    assert sum(r.rows_filtered for r in result.file_reports.values()) == total - len(a)


def test_typed_partition_keys(tmp_path):
    for hour in (3, 12):
        write_parquet(tmp_path / f"hour={hour}" / "p.parquet", actual=[float(hour)], prediction=[0.0])
    result = l1stream.evaluate(str(tmp_path), by="hour", filters="hour>=10")
    assert list(result.group_states) == [(12,)]  # an int: 12 >= 10, not the string "12" < "3"
    assert result.mae == 12.0


@pytest.fixture(scope="module")
def split_datasets(tmp_path_factory):
    """The same 60,000 rows as 1 file, 50 files, and row groups of 1,000 rows."""
    rng = np.random.default_rng(7)
    n = 60_000
    a = rng.normal(size=n) * np.exp(rng.normal(size=n) * 10)
    p = a + rng.normal(size=n) * np.exp(rng.normal(size=n) * 5)
    base = tmp_path_factory.mktemp("splits")
    write_split(base / "one", a, p, 1)
    write_split(base / "fifty", a, p, 50)
    write_split(base / "small_row_groups", a, p, 1, row_group_size=1000)
    return base, exact_mae(a, p)


@pytest.mark.parametrize("scheduler", ["threads", "processes", "synchronous"])
@pytest.mark.parametrize("layout", ["one", "fifty", "small_row_groups"])
def test_bit_identical_across_layouts_and_schedulers(split_datasets, layout, scheduler):
    base, expected = split_datasets
    result = l1stream.evaluate(str(base / layout), scheduler=scheduler, num_workers=2,
                               task_bytes=50_000, chunk_rows=3000)
    assert result.mae == expected
    assert result.count == 60_000


def test_large_file_split_into_pieces_counts_each_row_group_once(split_datasets):
    base, expected = split_datasets
    path = base / "small_row_groups" / "part-0000.parquet"
    result = l1stream.evaluate(str(path), task_bytes=path.stat().st_size // 7)
    assert result.mae == expected and result.count == 60_000
    report = result.file_reports[str(path)]
    assert report.row_groups == 60 and report.rows_read == 60_000


def test_file_order_and_glob(split_datasets):
    base, expected = split_datasets
    files = sorted(str(p) for p in (base / "fifty").iterdir())
    assert l1stream.evaluate(files[::-1]).mae == expected
    assert l1stream.evaluate(str(base / "fifty" / "part-*.parquet")).mae == expected


def test_dask_dataframe_input(house_prices):
    import dask.dataframe as dd  # an install dependency: never skipped
    import pandas as pd

    a, p = house_prices
    frame = pd.DataFrame({"actual": a, "prediction": p, "g": np.arange(len(a)) % 3})
    ddf = dd.from_pandas(frame, npartitions=7)
    result = l1stream.evaluate(ddf, by="g")
    assert result.mae == exact_mae(a, p)
    for g in range(3):
        assert result.group_states[(g,)].mae == exact_mae(a[g::3], p[g::3])
    assert l1stream.evaluate(frame).mae == exact_mae(a, p)


def test_weighted_evaluation(tmp_path, rng):
    a, p, w = rng.normal(size=3000), rng.normal(size=3000), rng.random(3000)
    write_split(tmp_path, a, p, 3, extra={"w": w})
    result = l1stream.evaluate(str(tmp_path), weight="w")
    assert result.mae == exact_mae(a, p, w)
    assert result.to_dict()["weighted"] is True


def test_losses_dataset_round_trip(hive_dataset, tmp_path):
    from l1stream.outputs.losses import write_losses

    root, rows = hive_dataset
    out = tmp_path / "losses"
    summary = write_losses(str(root), str(out), by="segment")
    assert summary["rows"] == sum(len(v[0]) for v in rows.values())
    table = pq.read_table(str(out / "date=2026-11-02" / "model=v1"))
    a, p, seg = rows[("2026-11-02", "v1")]
    assert table["l1_loss"].to_pylist() == np.abs(a - p).tolist()
    assert table["segment"].to_pylist() == seg.tolist()
    assert pq.read_table(str(out)).num_rows == summary["rows"]  # a valid hive dataset as a whole


def test_losses_output_replaced_atomically_on_failure(tmp_path):
    from l1stream.outputs.losses import write_losses

    src = tmp_path / "src"
    write_parquet(src / "a.parquet", actual=[1.0, 2.0], prediction=[1.5, 2.0])
    out = tmp_path / "out"
    write_losses(str(src), str(out))
    before = sorted(os.listdir(out))
    write_parquet(src / "b.parquet", actual=[float("nan")], prediction=[1.0])
    with pytest.raises(l1stream.NonFiniteError):
        write_losses(str(src), str(out))
    assert sorted(os.listdir(out)) == before
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_result_to_dict_round_trips_floats(hive_dataset):
    import json

    root, _ = hive_dataset
    result = l1stream.evaluate(str(root), by=["model"])
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["mae"] == result.mae
    assert [g["key"] for g in doc["groups"]] == [{"model": "v1"}, {"model": "v2"}]
    assert "mae=" in repr(result) and "<table>" in result._repr_html_()


def test_row_groups_pruned_by_statistics(tmp_path):
    n = 10_000
    actual = np.arange(n, dtype=float)
    prediction = actual + np.arange(n) % 7
    seg = np.where(np.arange(n) < 5000, "early", "late")
    path = write_parquet(tmp_path / "sorted.parquet", 1000, actual=actual, prediction=prediction, seg=seg)
    result = l1stream.evaluate(path, filters=["actual>=7500", "seg==late"])
    keep = (actual >= 7500) & (seg == "late")
    assert result.mae == exact_mae(actual[keep], prediction[keep]) and result.count == int(keep.sum())
    report = result.file_reports[path]
    assert report.row_groups_pruned == 7 and report.rows_filtered == n - int(keep.sum())
    assert report.rows_read == result.count
    losses = tmp_path / "losses"
    from l1stream.outputs.losses import write_losses

    assert write_losses(path, str(losses), filters="actual>=7500")["rows"] == 2500


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=300), st.data())
def test_any_split_into_files_and_row_groups_gives_the_same_bits(tmp_path_factory, rows, data):
    """Hypothesis: the same rows, cut into random files with random row-group sizes and read with a
    random chunk size and scheduler, always give the exact MAE."""
    a = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(rows) - 1), max_size=5)) if len(rows) > 1 else []))
    bounds = [0, *cuts, len(rows)]
    root = tmp_path_factory.mktemp("split")
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        size = data.draw(st.integers(1, max(1, hi - lo)))
        write_parquet(root / f"part-{i:03d}.parquet", size, actual=a[lo:hi], prediction=p[lo:hi])
    chunk = data.draw(st.integers(1, 400))
    scheduler = data.draw(st.sampled_from(["threads", "synchronous"]))
    result = l1stream.evaluate(str(root), chunk_rows=chunk, scheduler=scheduler, task_bytes=data.draw(
        st.integers(500, 1 << 20)))
    assert result.mae == exact_mae(a, p) and result.count == len(rows)


def test_local_threads_default_to_one_per_core_or_one_more_without_the_c_decoder(monkeypatch):
    import dask
    from dask.system import CPU_COUNT

    from l1stream.engine.schedulers import default_threads
    from l1stream.parquet.pages import native_decoder_enabled

    assert default_threads() == (CPU_COUNT if native_decoder_enabled() else CPU_COUNT + 1)
    monkeypatch.setenv("L1STREAM_NATIVE", "0")
    assert default_threads() == CPU_COUNT + 1
    with dask.config.set(num_workers=7):
        assert default_threads() is None  # Dask's own setting wins
