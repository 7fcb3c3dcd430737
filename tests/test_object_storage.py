"""Object storage at network speed, on moto's S3 server: one request per small file (counted from the
server's own request log), the same bits as the local files, and every fault still located."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import Oracle, assert_exact, delete_after_listing
from services import need_module, start_moto, stop

import l1stream
from l1stream.errors import BadFileError


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    need_module("s3fs")
    import s3fs

    base = tmp_path_factory.mktemp("moto")
    log = base / "moto.log"
    proc, endpoint = start_moto(log)
    try:
        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("small")
        rng = np.random.default_rng(21)
        local = base / "local"
        slices = {}
        for i in range(120):
            a, p = rng.lognormal(8, 1, 500), rng.lognormal(8, 1, 500)
            day = f"2026-11-{i % 12 + 1:02d}"
            path = local / f"date={day}" / f"part-{i:03d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"actual": a, "prediction": p}), path, row_group_size=200)
            fs.put_file(str(path), f"small/date={day}/part-{i:03d}.parquet")
            slices.setdefault((dt.date.fromisoformat(day),), []).append((a, p))  # a date-typed key
        yield fs, options, log, local, Oracle(slices)
    finally:
        stop(proc)


def object_gets(log, since: int) -> list:
    lines = log.read_text().splitlines()[since:]
    return [line for line in lines if re.search(r'"GET /small/\S+\.parquet', line)]


def listing_requests(log, since: int) -> tuple:
    """``(table-marker probes, other listings)`` the server saw since line ``since`` of its log."""
    lines = [line for line in log.read_text().splitlines()[since:] if "list-type=2" in line]
    probes = [line for line in lines if re.search(r"prefix=[^&]*(_delta_log|metadata)&", line)]
    return probes, [line for line in lines if line not in probes]


def test_one_request_per_small_file_and_the_same_bits(bucket):
    fs, options, log, local, oracle = bucket
    since = len(log.read_text().splitlines())
    remote = l1stream.evaluate("s3://small/", by="date", storage_options=options)
    assert_exact(remote, oracle)
    gets = object_gets(log, since)
    whole = [line for line in gets if '" 200 ' in line]
    ranged = [line for line in gets if '" 206 ' in line]
    # one GET per file: the whole file, footer and pages parsed from memory; the first file's GET
    # gives the planner its schema too, and is not made again by the scan on this machine
    assert len(whole) == 120
    assert ranged == []
    assert len(gets) / 120 <= 1.5
    probes, listings = listing_requests(log, since)
    assert len(listings) == 1 and "delimiter=&" in listings[0], listings  # one recursive listing of the source
    assert len(probes) == 2, probes  # is it a Delta or an Iceberg table: what starts with _delta_log, metadata
    local_result = l1stream.evaluate(str(local), by="date")
    assert remote.mae == local_result.mae and remote.slice_numbers() == local_result.slice_numbers()


def test_a_file_deleted_after_listing_is_still_a_located_error(bucket, monkeypatch):
    fs, options, *_ = bucket
    fs.pipe("small/date=2026-11-30/x.parquet", b"PAR1 written, then deleted before the scan PAR1")
    delete_after_listing(monkeypatch, fs, "small/date=2026-11-30/x.parquet")
    with pytest.raises(BadFileError, match=r"small/date=2026-11-30/x.parquet"):
        l1stream.evaluate("s3://small/", storage_options=options)


def test_a_file_that_is_not_parquet_is_named_as_such_from_memory(bucket):
    fs, options, *_ = bucket
    fs.pipe("small/date=2026-11-29/notes.parquet", b"actual,prediction\n1,2\n")
    try:
        with pytest.raises(BadFileError, match=r"notes.parquet: not a Parquet file: it looks like a CSV file"):
            l1stream.evaluate("s3://small/", storage_options=options)
        result = l1stream.evaluate("s3://small/", storage_options=options, on_bad_file="skip")
        assert list(result.skipped) == ["small/date=2026-11-29/notes.parquet"]
    finally:
        fs.rm("small/date=2026-11-29/notes.parquet")


def test_a_large_file_is_read_in_a_few_coalesced_requests(bucket, tmp_path):
    """Footer with one tail read; the column chunks of all its row groups coalesced into ranges of at
    most 16 MiB, fetched together: a handful of requests, not one per column chunk."""
    fs, options, log, *_ = bucket
    rng = np.random.default_rng(5)
    a, p = rng.normal(size=1_200_000), rng.normal(size=1_200_000)  # 19 MB: above the small-file size
    path = tmp_path / "large.parquet"
    pq.write_table(pa.table({"actual": a, "prediction": p}), path, row_group_size=200_000)  # 6 x 2 chunks
    fs.mkdir("large")
    fs.put_file(str(path), "large/part-0.parquet")
    since = len(log.read_text().splitlines())
    remote = l1stream.evaluate("s3://large/", storage_options=options, task_bytes=1 << 30)
    assert_exact(remote, Oracle({(): [(a, p)]}))
    gets = [line for line in log.read_text().splitlines()[since:] if '"GET /large/part-0.parquet' in line]
    # the planner's footer read (the task on this machine reuses it), two coalesced data ranges
    assert len(gets) == 3, gets


def test_s3_jobs_keep_many_connections_unless_told_otherwise():
    """botocore keeps 10 connections by default: ten requests in flight for a whole job, so 1,000
    small files cost 100 round trips.  l1stream asks for storage.S3_CONNECTIONS; an explicit
    setting wins; other filesystems are left alone."""
    need_module("s3fs")
    from l1stream.storage import S3_CONNECTIONS, split_url

    fs, _ = split_url("s3://logs/date=2026-11-01/", {"endpoint_url": "http://127.0.0.1:9", "anon": True})
    assert fs.config_kwargs["max_pool_connections"] == S3_CONNECTIONS > 10
    mine = {"endpoint_url": "http://127.0.0.1:9", "anon": True, "config_kwargs": {"max_pool_connections": 5,
                                                                                   "read_timeout": 7}}
    fs, _ = split_url("s3://logs/", mine)
    assert fs.config_kwargs == {"max_pool_connections": 5, "read_timeout": 7}
    assert mine["config_kwargs"] == {"max_pool_connections": 5, "read_timeout": 7}  # not modified


def test_a_partition_is_listed_once_and_its_parents_only_probed(bucket):
    """A source below the bucket's top: one recursive listing of it; whether it or a directory above
    it is a table is asked with key-prefix listings (a few keys each, all in flight together), never
    by listing the directories above (a bucket's top level can hold 100,000 entries)."""
    fs, options, log, local, oracle = bucket
    since = len(log.read_text().splitlines())
    result = l1stream.evaluate("s3://small/date=2026-11-03/", storage_options=options)
    assert result.count == 10 * 500
    probes, listings = listing_requests(log, since)
    assert len(listings) == 1 and "prefix=date%3D2026-11-03/&delimiter=&" in listings[0], listings
    assert len(probes) == 4, probes  # _delta_log and metadata, for the partition and for the bucket's top


def test_a_rewritten_file_is_not_read_with_its_old_footer(bucket, tmp_path):
    """Footers are kept between the planner and the scan by path, size and version (ETag): a file
    rewritten between two runs in one process (other row groups) is read with its new footer."""
    fs, options, *_ = bucket
    rng = np.random.default_rng(6)
    fs.mkdir("rewritten")
    for run in range(2):
        a, p = rng.normal(size=1_200_000), rng.normal(size=1_200_000)
        path = tmp_path / f"run-{run}.parquet"
        pq.write_table(pa.table({"actual": a, "prediction": p}), path, row_group_size=300_000 * (run + 1))
        fs.put_file(str(path), "rewritten/part-0.parquet")
        result = l1stream.evaluate("s3://rewritten/", storage_options=options, task_bytes=1 << 30)
        assert_exact(result, Oracle({(): [(a, p)]}))
        assert result.file_reports[next(iter(result.file_reports))].row_groups == 4 // (run + 1)


def local_values(local, keep) -> Oracle:
    """The oracle of the local copies whose ``date=`` directory ``keep`` accepts, read by pyarrow."""
    slices: dict = {}
    for path in sorted(local.glob("date=*/*.parquet")):
        day = dt.date.fromisoformat(path.parent.name.split("=")[1])
        if keep(day):
            table = pq.read_table(path)
            slices.setdefault((day,), []).append((table["actual"].to_numpy(), table["prediction"].to_numpy()))
    return Oracle(slices)


def test_partition_filters_list_only_the_partitions_they_keep(bucket):
    """``date>=2026-11-10`` lists the source's top level, then only ``date=2026-11-1{0,1,2}/``, each
    recursively and all at once; the nine other dates are never listed."""
    fs, options, log, local, oracle = bucket
    since = len(log.read_text().splitlines())
    result = l1stream.evaluate("s3://small/", by="date", filters="date>=2026-11-10", storage_options=options)
    assert_exact(result, local_values(local, lambda day: day >= dt.date(2026, 11, 10)))
    probes, listings = listing_requests(log, since)
    top = [line for line in listings if "prefix=&delimiter=/&" in line or "prefix=&delimiter=%2F" in line]
    deep = sorted(re.search(r"prefix=date%3D([\d-]+)/&delimiter=&", line).group(1) for line in listings
                  if "delimiter=&" in line)
    assert len(top) == 1 and deep == ["2026-11-10", "2026-11-11", "2026-11-12"], listings
    assert len(listings) == 4
    assert result.directories_not_listed == 9 and result.to_dict()["files"]["directories_not_listed"] == 9
    assert "(9 partition directories not listed)" in result.summary()
    local_result = l1stream.evaluate(str(local), by="date", filters="date>=2026-11-10")
    assert local_result.mae == result.mae and local_result.directories_not_listed == 0


def test_a_filter_that_keeps_no_partition_says_so_as_the_planner_does(bucket):
    fs, options, log, local, oracle = bucket
    from l1stream.errors import NoRowsError

    with pytest.raises(NoRowsError, match=r"the partition filters \[date>=2027-01-01\] removed all 120 file"):
        l1stream.evaluate("s3://small/", filters="date>=2027-01-01", storage_options=options)


def test_a_key_typed_by_its_files_is_listed_whole_when_pruning_could_type_it_otherwise(bucket, tmp_path):
    """``region=1``, ``region=2`` and ``region=eu`` holding only ``_SUCCESS``: over its files the key is
    an integer; pruning ``region==1`` by the level's names would type it a string.  The source is
    listed whole instead, and the slices keep integer keys, as on a local disk."""
    fs, options, log, *_ = bucket
    rng = np.random.default_rng(8)
    fs.mkdir("typed")
    values = {}
    for region in ("1", "2"):
        a, p = rng.normal(size=100), rng.normal(size=100)
        values[(int(region),)] = [(a, p)]
        path = tmp_path / f"region={region}" / "part-0.parquet"
        path.parent.mkdir()
        pq.write_table(pa.table({"actual": a, "prediction": p}), path)
        fs.put_file(str(path), f"typed/region={region}/part-0.parquet")
    fs.pipe("typed/region=eu/_SUCCESS", b"")
    (tmp_path / "region=eu").mkdir()
    (tmp_path / "region=eu" / "_SUCCESS").write_bytes(b"")
    result = l1stream.evaluate("s3://typed/", by="region", filters="region==1", storage_options=options)
    assert result.slice_numbers() == l1stream.evaluate(str(tmp_path), by="region", filters="region==1").slice_numbers()
    assert list(result.slice_numbers()) == [(1,)]
    assert_exact(result, Oracle({(1,): values[(1,)]}))
    assert result.directories_not_listed == 0


def test_a_filter_on_a_deeper_key_lists_level_by_level(bucket, tmp_path):
    """``model=*/date=*``, filtered on ``date``: the top level, then each model's dates (all at once),
    then only the kept dates, recursively."""
    fs, options, log, *_ = bucket
    rng = np.random.default_rng(9)
    fs.mkdir("levels")
    kept = []
    for model in ("a", "b"):
        for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
            a, p = rng.normal(size=50), rng.normal(size=50)
            if day == "2026-11-02":
                kept.append((a, p))
            path = tmp_path / f"model={model}" / f"date={day}" / "part-0.parquet"
            path.parent.mkdir(parents=True)
            pq.write_table(pa.table({"actual": a, "prediction": p}), path)
            fs.put_file(str(path), f"levels/model={model}/date={day}/part-0.parquet")
    since = len(log.read_text().splitlines())
    result = l1stream.evaluate("s3://levels/", filters="date==2026-11-02", storage_options=options)
    assert_exact(result, Oracle({(): kept}))
    assert result.directories_not_listed == 4
    _, listings = listing_requests(log, since)
    deep = [line for line in listings if "delimiter=&" in line]
    assert len(deep) == 2 and all("date%3D2026-11-02" in line for line in deep), listings


def test_a_plain_job_on_small_remote_files_imports_no_pyarrow(bucket):
    """The planner takes the schema from the first file's own footer (fetched whole, and kept for the
    scan), the scan sums the pages from memory: pyarrow's import (~0.1 s) is not paid."""
    import json
    import subprocess
    import sys

    fs, options, log, local, oracle = bucket
    script = ("import json, sys, l1stream\n"
              f"r = l1stream.evaluate('s3://small/', storage_options={options!r})\n"
              "print(json.dumps({'mae': r.mae.hex(), 'pyarrow': 'pyarrow' in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert float.fromhex(out["mae"]) == oracle.mae
    assert out["pyarrow"] is False


def test_the_pure_python_path_reads_the_fetched_bytes_to_the_same_bits(bucket, monkeypatch):
    """``L1STREAM_NATIVE=0``: the whole files fetched by the lean GETs (and the planner's) go through
    pyarrow instead of the C page decoder, with the same answer, overall and per slice."""
    fs, options, log, local, oracle = bucket
    native = l1stream.evaluate("s3://small/", by="date", storage_options=options)
    monkeypatch.setenv("L1STREAM_NATIVE", "0")
    general = l1stream.evaluate("s3://small/", by="date", storage_options=options)
    assert_exact(general, oracle)
    assert general.mae == native.mae and general.slice_numbers() == native.slice_numbers()
