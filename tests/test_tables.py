"""Delta Lake and Iceberg tables, written by the table libraries themselves, read as one snapshot.

Oracle: the table library's own read of the same snapshot (``DeltaTable.to_pyarrow_table``,
pyiceberg's ``scan().to_arrow()``), then exact Fraction arithmetic (tests/helpers.py) overall and
per slice.  A table directory also holds the files of removed data: reading it as plain Parquet
would count them (the defect these tests pin).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import exact_mae
from services import need_module

import l1stream
from l1stream.errors import SourceError

deltalake = need_module("deltalake")


def batch(rng, rows, models=("v1", "v2"), scale=1.0):
    actual = np.round(rng.lognormal(10, 0.5, rows), 2)
    return pa.table({"actual": actual, "prediction": np.round(actual * rng.lognormal(0, 0.1 * scale, rows), 2),
                     "model": rng.choice(list(models), rows)})


def assert_exact(result, table: pa.Table, by=None):
    actual, prediction = table["actual"].to_pylist(), table["prediction"].to_pylist()
    assert result.count == len(actual)
    assert result.mae == exact_mae(actual, prediction)
    if by:
        keys = table[by].to_pylist()
        groups = {}
        for k, a, p in zip(keys, actual, prediction):
            groups.setdefault(k, ([], []))
            groups[k][0].append(a)
            groups[k][1].append(p)
        got = {row[by]: (row["mae"], row["count"]) for row in result.groups.to_dict("records")}
        assert got == {k: (exact_mae(a, p), len(a)) for k, (a, p) in groups.items()}


# -- Delta ----------------------------------------------------------------------------------------

@pytest.fixture
def delta_table(tmp_path, rng):
    from deltalake import write_deltalake

    path = str(tmp_path / "delta")
    write_deltalake(path, batch(rng, 500), partition_by=["model"])                      # version 0
    write_deltalake(path, batch(rng, 300), partition_by=["model"], mode="append")       # 1
    write_deltalake(path, batch(rng, 400), partition_by=["model"], mode="overwrite")    # 2: whole overwrite
    write_deltalake(path, batch(rng, 200), partition_by=["model"], mode="append")       # 3
    return path


def test_delta_reads_the_current_snapshot_only(delta_table):
    from deltalake import DeltaTable

    truth = DeltaTable(delta_table).to_pyarrow_table()
    assert truth.num_rows == 600
    parquet_files = [os.path.join(d, f) for d, _, fs in os.walk(delta_table) for f in fs if f.endswith(".parquet")]
    assert len(parquet_files) > len(DeltaTable(delta_table).file_uris())  # removed files are still there
    result = l1stream.evaluate(delta_table, by="model")
    assert_exact(result, truth, by="model")
    assert result.source["format"] == "delta" and result.source["table_version"] == 3
    assert result.to_dict()["source"]["table_version"] == 3


def test_delta_time_travel(delta_table):
    from deltalake import DeltaTable

    for version in (0, 1, 2):
        truth = DeltaTable(delta_table, version=version).to_pyarrow_table()
        result = l1stream.evaluate(delta_table, table_version=version, by="model")
        assert_exact(result, truth, by="model")
        assert result.source["table_version"] == version


def test_delta_overwrite_by_predicate_and_delete(tmp_path, rng):
    from deltalake import DeltaTable, write_deltalake

    path = str(tmp_path / "delta")
    write_deltalake(path, batch(rng, 600), partition_by=["model"])
    write_deltalake(path, batch(rng, 100, models=("v1",)), partition_by=["model"], mode="overwrite",
                    predicate="model = 'v1'")
    DeltaTable(path).delete("actual > 30000")
    truth = DeltaTable(path).to_pyarrow_table()
    assert_exact(l1stream.evaluate(path, by="model"), truth, by="model")


def test_delta_partition_filters_prune_and_by_uses_log_values(delta_table):
    from deltalake import DeltaTable

    truth = DeltaTable(delta_table).to_pyarrow_table()
    v2 = truth.filter(pa.compute.equal(truth["model"], "v2"))
    result = l1stream.evaluate(delta_table, filters="model==v2")
    assert_exact(result, v2)
    assert result.files_pruned > 0


def test_a_path_inside_a_delta_table_is_refused_naming_the_root(delta_table, capsys):
    from l1stream.cli import main

    with pytest.raises(SourceError, match="inside the delta table") as info:
        l1stream.evaluate(os.path.join(delta_table, "model=v1"))
    assert delta_table in str(info.value) and "--filter" in str(info.value)
    assert main(["mae", os.path.join(delta_table, "model=v1")]) == 3
    # the explicit override reads the pile of files, as asked
    assert main(["mae", os.path.join(delta_table, "model=v1"), "--format", "parquet", "--json"]) == 0


def test_a_directory_holding_a_delta_table_is_refused(delta_table, tmp_path):
    with pytest.raises(SourceError, match="is a Delta table"):
        l1stream.evaluate(str(tmp_path))


def test_the_store_reuses_files_that_stay_live_across_versions(tmp_path, rng):
    from deltalake import DeltaTable, write_deltalake

    path, store = str(tmp_path / "delta"), str(tmp_path / "store")
    write_deltalake(path, batch(rng, 500), partition_by=["model"])
    first = l1stream.evaluate(path, store=store)
    live = len(DeltaTable(path).file_uris())
    assert first.fragments["read"] == live
    write_deltalake(path, batch(rng, 300), partition_by=["model"], mode="append")
    second = l1stream.evaluate(path, store=store)
    assert second.fragments["reused"] == live and second.fragments["read"] == len(DeltaTable(path).file_uris()) - live
    assert_exact(second, DeltaTable(path).to_pyarrow_table())
    write_deltalake(path, batch(rng, 50), partition_by=["model"], mode="overwrite")
    third = l1stream.evaluate(path, store=store)
    assert third.fragments["reused"] == 0
    assert_exact(third, DeltaTable(path).to_pyarrow_table())


def test_delta_bad_tables_are_located_errors(delta_table, capsys):
    from l1stream.cli import main

    assert main(["mae", delta_table, "--table-version", "99"]) == 3
    assert "99" in capsys.readouterr().err
    from deltalake import DeltaTable

    victim = DeltaTable(delta_table).file_uris()[0]
    os.remove(victim)
    with pytest.raises(SourceError, match="do not exist"):
        l1stream.evaluate(delta_table)


def delta_with_first_commit(tmp_path, rng, edit) -> str:
    """A one-commit Delta table written by deltalake, whose commit's actions ``edit`` rewrites
    (to declare protocol features delta-rs cannot write)."""
    from deltalake import write_deltalake

    path = str(tmp_path / "delta")
    write_deltalake(path, batch(rng, 100))
    log = os.path.join(path, "_delta_log", "00000000000000000000.json")
    actions = [json.loads(line) for line in open(log)]
    for action in actions:
        edit(action)
    with open(log, "w") as handle:
        handle.write("\n".join(json.dumps(a) for a in actions) + "\n")
    return path


def test_delta_reader_features_it_does_not_apply_are_refused_by_name(tmp_path, rng):
    def deletion_vectors(action):
        if "protocol" in action:
            action["protocol"] = {"minReaderVersion": 3, "minWriterVersion": 7,
                                  "readerFeatures": ["deletionVectors"], "writerFeatures": ["deletionVectors"]}

    with pytest.raises(SourceError, match="deletion vectors"):
        l1stream.evaluate(delta_with_first_commit(tmp_path, rng, deletion_vectors))


# -- Iceberg --------------------------------------------------------------------------------------

@pytest.fixture
def iceberg(tmp_path):
    need_module("pyiceberg")
    from pyiceberg.catalog.sql import SqlCatalog

    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{warehouse}")
    catalog.create_namespace("logs")
    return catalog


def _iceberg_table(catalog, rng, partitioned: bool):
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import DoubleType, NestedField, StringType

    schema = Schema(NestedField(1, "actual", DoubleType(), required=False),
                    NestedField(2, "prediction", DoubleType(), required=False),
                    NestedField(3, "model", StringType(), required=False))
    spec = PartitionSpec(PartitionField(3, 1000, IdentityTransform(), "model")) if partitioned else PartitionSpec()
    table = catalog.create_table("logs.preds", schema=schema, partition_spec=spec)
    table.append(batch(rng, 400))
    table.append(batch(rng, 300))
    first_two = table.current_snapshot().snapshot_id
    table.overwrite(batch(rng, 250))
    table.append(batch(rng, 150))
    return table, first_two


@pytest.mark.parametrize("partitioned", [False, True])
def test_iceberg_reads_the_current_snapshot_only(iceberg, rng, partitioned):
    table, _ = _iceberg_table(iceberg, rng, partitioned)
    root = table.location().removeprefix("file://")
    truth = table.scan().to_arrow()
    assert truth.num_rows == 400
    result = l1stream.evaluate(root, by="model")
    assert_exact(result, truth, by="model")
    assert result.source["format"] == "iceberg"
    assert result.source["table_version"] == table.current_snapshot().snapshot_id
    # the metadata file itself is a source too
    metadata = table.metadata_location.removeprefix("file://")
    assert_exact(l1stream.evaluate(metadata), truth)


def test_iceberg_time_travel_and_a_missing_snapshot(iceberg, rng):
    table, first_two = _iceberg_table(iceberg, rng, partitioned=True)
    root = table.location().removeprefix("file://")
    truth = table.scan(snapshot_id=first_two).to_arrow()
    assert truth.num_rows == 700
    assert_exact(l1stream.evaluate(root, table_version=first_two, by="model"), truth, by="model")
    with pytest.raises(SourceError, match="no snapshot 12345"):
        l1stream.evaluate(root, table_version=12345)


def test_iceberg_deletes_are_applied_exactly(iceberg, rng):
    """pyiceberg deletes copy-on-write (rewritten files, no delete files): the new snapshot's
    files hold exactly the remaining rows.  Delete files (merge-on-read) would be refused by name."""
    table, _ = _iceberg_table(iceberg, rng, partitioned=True)
    before = table.scan().to_arrow().num_rows
    table.delete("actual > 30000")  # rows inside files, not whole files
    table.delete("model == 'v1'")   # a whole partition
    truth = table.scan().to_arrow()
    assert 0 < truth.num_rows < before
    assert_exact(l1stream.evaluate(table.location().removeprefix("file://"), by="model"), truth, by="model")


def test_a_path_inside_an_iceberg_table_is_refused(iceberg, rng):
    table, _ = _iceberg_table(iceberg, rng, partitioned=False)
    data = os.path.join(table.location().removeprefix("file://"), "data")
    with pytest.raises(SourceError, match="inside the iceberg table"):
        l1stream.evaluate(data)


def test_an_iceberg_data_file_that_is_missing_is_a_located_error(iceberg, rng):
    table, _ = _iceberg_table(iceberg, rng, partitioned=False)
    victim = next(iter(table.scan().plan_files())).file.file_path.removeprefix("file://")
    os.remove(victim)
    with pytest.raises(SourceError, match="does not exist"):
        l1stream.evaluate(table.location().removeprefix("file://"))


def test_plain_parquet_is_unchanged(tmp_path, rng):
    t = batch(rng, 100)
    pq.write_table(t, str(tmp_path / "x.parquet"))
    result = l1stream.evaluate(str(tmp_path))
    assert_exact(result, t)
    assert result.source == {"format": "parquet", "table_version": None, "tables": []}


def test_delta_on_object_storage(tmp_path, rng):
    """A Delta table on moto's S3 server (loopback), written by deltalake, read through s3fs."""
    from deltalake import DeltaTable, write_deltalake
    from services import start_moto, stop

    need_module("s3fs")
    proc, endpoint = start_moto(tmp_path / "moto.log")
    try:
        import s3fs

        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        s3fs.S3FileSystem(**options).mkdir("tables")
        delta_options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
                         "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                         "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
        url = "s3://tables/preds"
        write_deltalake(url, batch(rng, 300), partition_by=["model"], storage_options=delta_options)
        write_deltalake(url, batch(rng, 200), partition_by=["model"], mode="overwrite", storage_options=delta_options)
        truth = DeltaTable(url, storage_options=delta_options).to_pyarrow_table()
        since = len((tmp_path / "moto.log").read_text().splitlines())
        result = l1stream.evaluate(url, by="model", storage_options=options)
        assert_exact(result, truth, by="model")
        listed = [line for line in (tmp_path / "moto.log").read_text().splitlines()[since:] if "list-type=2" in line]
        assert not [line for line in listed if "prefix=&" in line], listed  # the bucket's top level: probed only
        assert result.source["table_version"] == 1
        old = l1stream.evaluate(url, storage_options=options, table_version=0)
        assert_exact(old, DeltaTable(url, version=0, storage_options=delta_options).to_pyarrow_table())
        # a partition of the table is refused (its directory keeps removed files), found by probing
        # the directories above it for _delta_log, not by listing them
        partition = next(p for p in s3fs.S3FileSystem(**options).ls("tables/preds") if "model=" in p)
        with pytest.raises(SourceError, match="is inside the delta table 'tables/preds'"):
            l1stream.evaluate(f"s3://{partition}/", storage_options=options)
        assert l1stream.evaluate(f"s3://{partition}/", storage_options=options, format="parquet").count > 0
        # an output bucket that does not exist is known before the scan
        from l1stream.cli import main

        args = ["mae", url, "--output", "s3://no-such-bucket/mae.json"]
        args += [f"--storage-option={k}={v}" for k, v in options.items()]
        assert main(args) == 7
    finally:
        stop(proc)


def test_the_history_records_the_table_version(delta_table, tmp_path, capsys):
    from l1stream.cli import main
    from l1stream.outputs.history import read

    history = tmp_path / "history"
    assert main(["mae", delta_table, "--history", str(history), "--quiet"]) == 0
    assert main(["mae", delta_table, "--table-version", "1", "--history", str(history), "--quiet"]) == 0
    versions = [r["table_version"] for r in read(str(history)) if r["slice"] == ""]
    assert versions == [3, 1]


def test_iceberg_from_a_catalog_by_name_in_python_and_in_a_config(iceberg, rng, tmp_path, capsys):
    from l1stream.cli import main

    table, _ = _iceberg_table(iceberg, rng, partitioned=True)
    properties = {"name": "t", "type": "sql", "uri": iceberg.properties["uri"],
                  "warehouse": iceberg.properties["warehouse"]}
    truth = table.scan().to_arrow()
    assert_exact(l1stream.evaluate("logs.preds", catalog=properties, by="model"), truth, by="model")
    config = tmp_path / "job.yaml"
    config.write_text("sources:\n  - path: logs.preds\n    format: iceberg\n    catalog: " + json.dumps(properties)
                      + "\n")
    code, out, _ = cli_json(capsys, main, "run", str(config), "--json")
    assert code == 0 and out["mae"] == exact_mae(truth["actual"].to_pylist(), truth["prediction"].to_pylist())
    assert out["source"]["format"] == "iceberg"
    with pytest.raises(SourceError, match="cannot be loaded"):
        l1stream.evaluate("logs.missing", catalog=properties)


def cli_json(capsys, main, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_delta_partitions_of_int_and_date_type_act_as_hive_keys(tmp_path, rng):
    import datetime as dt

    from deltalake import DeltaTable, write_deltalake

    path = str(tmp_path / "delta")
    t = batch(rng, 600)
    t = t.append_column("shard", pa.array(np.arange(600) % 3, pa.int32()))
    t = t.append_column("day", pa.array([dt.date(2026, 11, 1 + i % 4) for i in range(600)]))
    write_deltalake(path, t, partition_by=["shard", "day"])
    truth = DeltaTable(path).to_pyarrow_table()
    assert_exact(l1stream.evaluate(path, by="shard"), truth, by="shard")
    recent = truth.filter(pa.compute.greater_equal(truth["day"], pa.scalar(dt.date(2026, 11, 3))))
    result = l1stream.evaluate(path, filters=["day>=2026-11-03", "shard>=0"])
    assert_exact(result, recent)
    assert result.files_pruned == 6


def test_delta_column_mapping_is_refused_by_name(tmp_path, rng):
    def column_mapping(action):
        if "protocol" in action:
            action["protocol"] = {"minReaderVersion": 2, "minWriterVersion": 5}
        if "metaData" in action:
            action["metaData"]["configuration"] = {"delta.columnMapping.mode": "name",
                                                   "delta.columnMapping.maxColumnId": "3"}
            schema = json.loads(action["metaData"]["schemaString"])
            for i, field in enumerate(schema["fields"], start=1):
                field["metadata"] = {"delta.columnMapping.id": i, "delta.columnMapping.physicalName": field["name"]}
            action["metaData"]["schemaString"] = json.dumps(schema)

    with pytest.raises(SourceError, match="column mapping"):
        l1stream.evaluate(delta_with_first_commit(tmp_path, rng, column_mapping))


def test_iceberg_overwrite_by_predicate(iceberg, rng):
    table, _ = _iceberg_table(iceberg, rng, partitioned=True)
    table.overwrite(batch(rng, 120, models=("v1",)), overwrite_filter="model == 'v1'")
    root = table.location().removeprefix("file://")
    try:
        result = l1stream.evaluate(root, by="model")
    except SourceError as exc:  # a partial rewrite may leave delete files: then refused by name
        assert "delete files" in str(exc)
    else:
        assert_exact(result, table.scan().to_arrow(), by="model")


def test_a_corrupt_delta_log_entry_is_a_located_error(delta_table, capsys):
    from l1stream.cli import main

    entry = os.path.join(delta_table, "_delta_log", "00000000000000000003.json")
    with open(entry, "w") as handle:
        handle.write("{not json\n")
    assert main(["mae", delta_table]) == 3
    err = capsys.readouterr().err
    assert "Delta table" in err and delta_table in err and "internal error" not in err


def test_delta_partition_keys_are_typed_from_the_schema_not_guessed_from_values(tmp_path, rng):
    """A string partition column holding digits stays a string: '01234' keeps its leading zero."""
    from deltalake import DeltaTable, write_deltalake

    path = str(tmp_path / "delta")
    t = batch(rng, 300)
    t = t.append_column("zip", pa.array(["01234", "00999", "10000"] * 100))
    write_deltalake(path, t, partition_by=["zip"])
    truth = DeltaTable(path).to_pyarrow_table()
    result = l1stream.evaluate(path, by="zip")
    assert sorted(result.groups["zip"]) == ["00999", "01234", "10000"]
    assert_exact(result, truth, by="zip")
    only = truth.filter(pa.compute.equal(truth["zip"], "01234"))
    assert_exact(l1stream.evaluate(path, filters="zip==01234"), only)


def test_delta_add_actions_read_without_pyarrow_are_pyarrows_rows(tmp_path):
    """The add actions converted column by column from deltalake's own Arrow table are the rows
    pyarrow reads from the same stream, value for value and type for type."""
    need_module("deltalake")
    import datetime as dt

    import deltalake
    import pyarrow as pa

    from l1stream.sources.tables import _add_actions

    table = pa.table({"a": [1.0, 2.0, 3.0], "day": pa.array([dt.date(2026, 11, 1), None, dt.date(2026, 11, 2)]),
                      "n": [3, 4, 4], "s": ["x", None, "y"], "b": [True, False, True],
                      "ts": pa.array([dt.datetime(2026, 1, 1, 1, 2, 3)] * 3, pa.timestamp("us"))})
    deltalake.write_deltalake(str(tmp_path), table, partition_by=["day", "n", "s", "b"])
    delta = deltalake.DeltaTable(str(tmp_path))
    ours = _add_actions(delta)
    theirs = pa.RecordBatchReader.from_stream(delta.get_add_actions(flatten=True)).read_all().to_pylist()
    assert len(ours) == 3 and ours == theirs
    assert [[type(v) for v in row.values()] for row in ours] == [[type(v) for v in row.values()] for row in theirs]
