"""Never silently wrong: every bad input gets a clear error (naming what and where) or a reported policy.

Each case runs through the API and/or the CLI (in-process) and asserts the exception
or exit code and the key words of the message; row accounting must add up per file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import clean_rows, exact_mae, examples, write_parquet
from hypothesis import given, settings
from hypothesis import strategies as st

import l1stream
from l1stream.cli.commands import main

NAN, INF = float("nan"), float("inf")


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_accounting(result):
    for path, report in result.file_reports.items():
        assert report.rows_read == report.rows_used + sum(report.left_out.values()), path
    assert result.rows_read == result.count + sum(result.left_out.values())


@pytest.fixture
def nan_file(tmp_path):
    return write_parquet(tmp_path / "d" / "a.parquet", actual=[1.0, 2.0, 3.0, 4.0],
                         prediction=[1.5, NAN, 2.0, NAN])


# --- nan_policy -----------------------------------------------------------------------------

def test_nan_raise_names_column_file_row_group_and_count(nan_file, capsys):
    with pytest.raises(l1stream.NonFiniteError) as info:
        l1stream.evaluate(nan_file)
    message = str(info.value)
    for words in ("a.parquet", "row group 0", "'prediction'", "2 NaN", "first at row 1", "nan_policy='omit'"):
        assert words in message
    code, out, err = cli(capsys, "mae", nan_file)
    assert code == 3 and "2 NaN" in err and out == ""


def test_null_raise_says_null(tmp_path):
    path = write_parquet(tmp_path / "n.parquet", actual=pa.array([1.0, None]), prediction=[1.0, 2.0])
    with pytest.raises(l1stream.NonFiniteError, match=r"column 'actual' has 1 null"):
        l1stream.evaluate(path)


def test_inf_raise_says_infinite(tmp_path):
    path = write_parquet(tmp_path / "i.parquet", actual=[1.0, -INF], prediction=[1.0, 2.0])
    with pytest.raises(l1stream.NonFiniteError, match=r"column 'actual' has 1 infinite"):
        l1stream.evaluate(path)


def test_omit_counts_each_reason_and_adds_up(tmp_path):
    write_parquet(tmp_path / "a.parquet", actual=pa.array([1.0, None, 3.0, INF, 5.0]),
                  prediction=pa.array([2.0, 2.0, NAN, 1.0, None]))
    write_parquet(tmp_path / "b.parquet", actual=[10.0, 20.0], prediction=[11.0, NAN])
    result = l1stream.evaluate(str(tmp_path), nan_policy="omit")
    assert result.left_out == {"null": 2, "nan": 2, "inf": 1}
    assert result.count == 2 and result.mae == exact_mae([1.0, 10.0], [2.0, 11.0])
    assert result.file_reports[str(tmp_path / "a.parquet")].left_out == {"null": 2, "nan": 1, "inf": 1}
    assert_accounting(result)


def test_propagate_returns_nan_and_json_null(nan_file, capsys):
    result = l1stream.evaluate(nan_file, nan_policy="propagate")
    assert math.isnan(result.mae) and result.left_out["nan"] == 2
    code, out, _ = cli(capsys, "mae", nan_file, "--nan-policy", "propagate", "--json")
    assert code == 0 and json.loads(out)["mae"] is None


def test_propagate_inf_only_gives_inf(tmp_path):
    path = write_parquet(tmp_path / "i.parquet", actual=[1.0, INF], prediction=[1.0, 2.0])
    assert l1stream.evaluate(path, nan_policy="propagate").mae == INF


def test_bad_nan_policy_lists_allowed_values(nan_file, capsys):
    with pytest.raises(l1stream.UsageError, match=r"'raise', 'omit', 'propagate'; got 'drop'"):
        l1stream.evaluate(nan_file, nan_policy="drop")
    code, _, err = cli(capsys, "mae", nan_file, "--nan-policy", "drop")
    assert code == 2 and "invalid choice" in err


finite_or_not = st.one_of(st.floats(width=64, allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
                          st.sampled_from([NAN, INF, -INF, None]))


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.tuples(finite_or_not, finite_or_not), min_size=1, max_size=40))
def test_omit_equals_exact_mae_of_clean_rows(rows):
    actual = pa.array([r[0] for r in rows], pa.float64())
    prediction = pa.array([r[1] for r in rows], pa.float64())
    state = l1stream.chunk_state(actual, prediction, nan_policy="omit")
    a, p = clean_rows([r[0] for r in rows], [r[1] for r in rows])
    assert state.count == len(a)
    nulls = sum(1 for x, y in rows if x is None or y is None)
    nans = sum(1 for x, y in rows if x is not None and y is not None and (math.isnan(x) or math.isnan(y)))
    assert state.left_out == {"null": nulls, "nan": nans, "inf": len(rows) - len(a) - nulls - nans}
    if a:
        assert state.mae == exact_mae(a, p)
    else:
        with pytest.raises(l1stream.NoRowsError):
            state.mae


# --- weights ----------------------------------------------------------------------------------

@pytest.mark.parametrize("weights, words", [
    ([1.0, -1.0], "negative, NaN or infinite"),
    ([1.0, NAN], "negative, NaN or infinite"),
    ([INF, 1.0], "negative, NaN or infinite"),
    (pa.array([1.0, None]), "null"),
])
def test_bad_weights_are_errors(tmp_path, weights, words):
    path = write_parquet(tmp_path / "w.parquet", actual=[1.0, 2.0], prediction=[2.0, 2.0], w=weights)
    with pytest.raises(l1stream.NonFiniteError, match=words) as info:
        l1stream.evaluate(path, weight="w", nan_policy="omit")
    assert "w.parquet" in str(info.value) and "'w'" in str(info.value)


def test_all_zero_weights_say_so(tmp_path, capsys):
    path = write_parquet(tmp_path / "w.parquet", actual=[1.0, 2.0], prediction=[2.0, 2.0], w=[0.0, 0.0])
    code, _, err = cli(capsys, "mae", path, "--weight", "w")
    assert code == 3 and "all weights" in err and "zero" in err


# --- schema -----------------------------------------------------------------------------------

def test_missing_column_in_one_file_of_many(tmp_path, capsys):
    for i in range(3):
        write_parquet(tmp_path / f"p{i}.parquet", actual=[1.0], prediction=[2.0])
    write_parquet(tmp_path / "p3.parquet", actual=[1.0], pred=[2.0])
    with pytest.raises(l1stream.SchemaError) as info:
        l1stream.evaluate(str(tmp_path))
    assert "p3.parquet" in str(info.value) and "'prediction'" in str(info.value)
    assert "this file has columns actual, pred" in str(info.value)
    code, _, err = cli(capsys, "mae", tmp_path)
    assert code == 3 and "p3.parquet" in err


def test_missing_column_skipped_and_reported(tmp_path, capsys):
    write_parquet(tmp_path / "good.parquet", actual=[1.0], prediction=[2.0])
    write_parquet(tmp_path / "zbad.parquet", actual=[1.0], pred=[2.0])
    result = l1stream.evaluate(str(tmp_path), on_bad_file="skip")
    assert list(result.skipped) == [str(tmp_path / "zbad.parquet")] and result.mae == 1.0
    code, out, err = cli(capsys, "mae", tmp_path, "--on-bad-file", "skip", "--json")
    assert code == 5 and "--allow-skipped" in err
    assert json.loads(out)["files"]["skipped"][0]["path"].endswith("zbad.parquet")
    code, _, _ = cli(capsys, "mae", tmp_path, "--on-bad-file", "skip", "--allow-skipped")
    assert code == 0


@pytest.mark.parametrize("values, typename", [
    (pa.array(["1.0", "2.0"]), "string"),
    (pa.array([dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)]), "timestamp"),
    (pa.array([[1.0], [2.0]]), "list"),
    (pa.array([True, False]), "bool"),
])
def test_non_numeric_column_names_column_type_and_file(tmp_path, values, typename, capsys):
    path = write_parquet(tmp_path / "t.parquet", actual=values, prediction=[1.0, 2.0])
    with pytest.raises(l1stream.SchemaError) as info:
        l1stream.evaluate(path)
    assert "t.parquet" in str(info.value) and "'actual'" in str(info.value) and typename in str(info.value)
    assert cli(capsys, "mae", path)[0] == 3


def test_compatible_schema_drift_is_exact(tmp_path):
    write_parquet(tmp_path / "a.parquet", actual=pa.array([1.5, 2.25], pa.float32()), prediction=[1.0, 2.0])
    write_parquet(tmp_path / "b.parquet", actual=pa.array([3, 4], pa.int32()), prediction=pa.array([1, 9], pa.int64()))
    write_parquet(tmp_path / "c.parquet", actual=pa.array([decimal.Decimal("1.05")], pa.decimal128(5, 2)),
                  prediction=pa.array([decimal.Decimal("1.0001")], pa.decimal128(9, 4)))
    result = l1stream.evaluate(str(tmp_path))
    expected = exact_mae([1.5, 2.25, 3, 4, decimal.Decimal("1.05")], [1.0, 2.0, 1, 9, decimal.Decimal("1.0001")])
    assert result.mae == expected and result.count == 5


def test_incompatible_drift_names_the_file(tmp_path):
    write_parquet(tmp_path / "a.parquet", actual=[1.0], prediction=[2.0])
    write_parquet(tmp_path / "b.parquet", actual=["oops"], prediction=[2.0])
    with pytest.raises(l1stream.SchemaError, match=r"b\.parquet: column 'actual' has type string"):
        l1stream.evaluate(str(tmp_path))


# --- files ------------------------------------------------------------------------------------

def _truncate(path, keep):
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[:keep])


@pytest.mark.parametrize("make, words", [
    (lambda p: _truncate(p, 100), "not a readable Parquet file"),
    (lambda p: _truncate(p, 0), "size is 0 bytes"),
    (lambda p: open(p, "w").write("actual,prediction\n1,2\n"), "it looks like a CSV file"),
])
def test_unreadable_files_raise_or_skip(tmp_path, make, words, capsys):
    write_parquet(tmp_path / "a.parquet", actual=[1.0, 2.0], prediction=[2.0, 2.0])
    bad = write_parquet(tmp_path / "b.parquet", actual=[1.0], prediction=[5.0])
    make(bad)
    with pytest.raises(l1stream.BadFileError) as info:
        l1stream.evaluate(str(tmp_path))
    assert "b.parquet" in str(info.value) and words in str(info.value) and "on_bad_file='skip'" in str(info.value)
    code, out, err = cli(capsys, "mae", tmp_path, "--json")
    assert code == 3 and json.loads(out)["error"]["type"] == "bad_file"
    assert json.loads(out)["error"]["path"] == bad
    result = l1stream.evaluate(str(tmp_path), on_bad_file="skip")
    assert result.mae == 0.5 and list(result.skipped) == [bad]
    assert_accounting(result)


def test_csv_dropped_into_tree(tmp_path):
    write_parquet(tmp_path / "a.parquet", actual=[1.0], prediction=[2.0])
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(l1stream.BadFileError, match="notes.csv"):
        l1stream.evaluate(str(tmp_path))


@contextlib.contextmanager
def as_nobody():
    """Drop the effective uid when running as root (root reads everything)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_unreadable_permissions(tmp_path_factory, capsys):
    import tempfile

    base = tempfile.mkdtemp(prefix="l1stream-perm-")
    try:
        os.chmod(base, 0o755)
        write_parquet(os.path.join(base, "a.parquet"), actual=[1.0], prediction=[2.0])
        locked = write_parquet(os.path.join(base, "b.parquet"), actual=[1.0], prediction=[2.0])
        os.chmod(os.path.join(base, "a.parquet"), 0o644)
        os.chmod(locked, 0)
        with as_nobody():
            with pytest.raises(l1stream.BadFileError, match="permission denied") as info:
                l1stream.evaluate(base)
            assert "b.parquet" in str(info.value)
            assert l1stream.evaluate(base, on_bad_file="skip").skipped == {locked: info.value.problem}
            assert info.value.problem.startswith("permission denied")
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_path_that_does_not_exist(tmp_path, capsys):
    with pytest.raises(l1stream.SourceError, match="does not exist"):
        l1stream.evaluate(str(tmp_path / "nope"))
    assert cli(capsys, "mae", tmp_path / "nope")[0] == 3


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(l1stream.SourceError, match="matched no files"):
        l1stream.evaluate(str(tmp_path / "*.parquet"))


def test_hidden_and_temporary_files_are_ignored(tmp_path):
    write_parquet(tmp_path / "part-0.parquet", actual=[1.0], prediction=[3.0])
    for name in ("_SUCCESS", "_common_metadata", ".part-0.parquet.crc", ".part-1.parquet.tmp", "part-2.tmp"):
        (tmp_path / name).write_bytes(b"junk")
    (tmp_path / "_temporary").mkdir()
    (tmp_path / "_temporary" / "part-9.parquet").write_bytes(b"junk")
    result = l1stream.evaluate(str(tmp_path))
    assert result.mae == 2.0 and result.ignored == 6


def test_symlinked_partitions_are_followed(tmp_path):
    write_parquet(tmp_path / "real" / "date=2026-11-01" / "p.parquet", actual=[1.0], prediction=[2.0])
    write_parquet(tmp_path / "real" / "f.parquet", actual=[5.0], prediction=[2.0])
    (tmp_path / "view").mkdir()
    os.symlink(tmp_path / "real" / "date=2026-11-01", tmp_path / "view" / "date=2026-11-01")
    os.symlink(tmp_path / "real" / "f.parquet", tmp_path / "view" / "date=2026-11-02")  # odd, but a file
    os.symlink(tmp_path / "view", tmp_path / "view" / "loop")  # a cycle must not hang
    result = l1stream.evaluate(str(tmp_path / "view"), by="date")
    assert result.count == 2 and result.mae == 2.0


def test_local_listing_equals_fsspecs_find(tmp_path):
    """Discovery lists local trees with os.scandir; fsspec's find is the reference, links included."""
    import fsspec

    from l1stream.sources.discovery import _local_find

    write_parquet(tmp_path / "real" / "date=2026-11-01" / "p.parquet", actual=[1.0], prediction=[2.0])
    (tmp_path / "real" / "_SUCCESS").write_bytes(b"")
    (tmp_path / "real" / "empty-dir").mkdir()
    os.symlink(tmp_path / "real" / "date=2026-11-01", tmp_path / "real" / "link-dir")
    os.symlink(tmp_path / "real" / "_SUCCESS", tmp_path / "real" / "link-file")
    os.symlink(tmp_path / "nowhere", tmp_path / "real" / "dangling")
    expected = fsspec.filesystem("file").find(str(tmp_path / "real"), detail=True, withdirs=False)
    assert _local_find(str(tmp_path / "real")) == expected and len(expected) == 5


def test_only_hidden_files_is_a_clear_error(tmp_path):
    (tmp_path / "_SUCCESS").write_bytes(b"")
    with pytest.raises(l1stream.SourceError, match="no data files.*1 hidden or temporary"):
        l1stream.evaluate(str(tmp_path))


def test_empty_files_and_partitions_are_fine(tmp_path):
    empty = pa.array([], pa.float64())
    write_parquet(tmp_path / "m=a" / "p.parquet", actual=empty, prediction=empty)
    write_parquet(tmp_path / "m=b" / "p.parquet", actual=[1.0], prediction=[4.0])
    result = l1stream.evaluate(str(tmp_path), by="m")
    assert result.mae == 3.0 and list(result.group_states) == [("b",)]


def test_zero_rows_overall(tmp_path, capsys):
    write_parquet(tmp_path / "p.parquet", actual=pa.array([], pa.float64()), prediction=pa.array([], pa.float64()))
    with pytest.raises(l1stream.NoRowsError, match="hold no rows"):
        l1stream.evaluate(str(tmp_path))
    code, out, _ = cli(capsys, "mae", tmp_path, "--json")
    assert code == 3 and json.loads(out)["error"]["type"] == "no_rows" and '"mae"' not in out


def test_zero_rows_after_partition_filters_names_them(hive_dataset):
    root, _ = hive_dataset
    with pytest.raises(l1stream.NoRowsError, match=r"partition filters \[date>=2030-01-01\] removed all 6"):
        l1stream.evaluate(str(root), filters="date>=2030-01-01")


def test_zero_rows_after_row_filters_names_them(hive_dataset):
    root, _ = hive_dataset
    with pytest.raises(l1stream.NoRowsError, match=r"row filters \[actual<0.0\] removed all"):
        l1stream.evaluate(str(root), filters="actual<0.0")


def test_every_row_left_out(tmp_path):
    path = write_parquet(tmp_path / "p.parquet", actual=[NAN, NAN], prediction=[1.0, 2.0])
    with pytest.raises(l1stream.NoRowsError, match=r"all 2 rows were left out .*2 nan"):
        l1stream.evaluate(path, nan_policy="omit")


def test_same_file_twice_counted_once(tmp_path):
    path = write_parquet(tmp_path / "d" / "p.parquet", actual=[1.0, 2.0], prediction=[2.0, 4.0])
    result = l1stream.evaluate([path, path, str(tmp_path / "d"), str(tmp_path / "d" / "*.parquet")])
    assert result.count == 2 and result.mae == 1.5
    assert result.duplicates == [path] and result.to_dict()["files"]["duplicates"] == [path]


def test_extreme_values_in_parquet_are_exact(tmp_path):
    big = np.iinfo(np.int64).max
    write_parquet(tmp_path / "i.parquet", actual=pa.array([big, -big - 1], pa.int64()),
                  prediction=pa.array([-big - 1, big], pa.int64()))
    assert l1stream.evaluate(str(tmp_path / "i.parquet")).mae == exact_mae([big, -big - 1], [-big - 1, big])
    huge = 1.7976931348623157e308
    write_parquet(tmp_path / "f.parquet", actual=[huge, 0.0, 0.0], prediction=[-huge, 0.0, 0.0])
    assert l1stream.evaluate(str(tmp_path / "f.parquet")).mae == exact_mae([huge, 0.0, 0.0], [-huge, 0.0, 0.0])
    d = [decimal.Decimal("9" * 38), decimal.Decimal("-" + "9" * 38)]
    write_parquet(tmp_path / "d.parquet", actual=pa.array(d, pa.decimal128(38, 0)),
                  prediction=pa.array(d[::-1], pa.decimal128(38, 0)))
    assert l1stream.evaluate(str(tmp_path / "d.parquet")).mae == exact_mae(d, d[::-1])


def test_corrupt_row_group_in_a_split_file_is_skipped_whole(tmp_path):
    n = 40_000
    path = write_parquet(tmp_path / "big.parquet", 4000, actual=np.arange(n, dtype=float),
                         prediction=np.arange(n, dtype=float) + 1)
    pq.write_table(pq.read_table(path), path, row_group_size=4000, write_page_checksum=True)
    write_parquet(tmp_path / "ok.parquet", actual=[0.0], prediction=[5.0])
    data = bytearray(open(path, "rb").read())
    meta = pq.ParquetFile(path).metadata
    offset = meta.row_group(7).column(0).data_page_offset + 40
    data[offset:offset + 64] = bytes(64)
    open(path, "wb").write(bytes(data))
    with pytest.raises(l1stream.BadFileError, match="row group 7"):
        l1stream.evaluate(str(tmp_path), task_bytes=len(data) // 5)
    result = l1stream.evaluate(str(tmp_path), task_bytes=len(data) // 5, on_bad_file="skip")
    assert result.count == 1 and result.mae == 5.0 and list(result.skipped) == [path]


# --- options, validated before any work is scheduled -------------------------------------------

UNREACHABLE = "tcp://127.0.0.1:9"  # would fail if anything were scheduled


@pytest.mark.parametrize("kwargs, words", [
    ({"filters": "nosuch==1"}, "names column 'nosuch'"),
    ({"by": "nosuch"}, "by key 'nosuch'"),
    ({"filters": "date==yesterday"}, "holds dates"),
    ({"filters": "actual>=cheap"}, "has type double"),
    ({"filters": "model ~ v2"}, "cannot parse filter"),
    ({"actual": "nosuch"}, "actual column 'nosuch' is not in the data"),
    ({"scheduler": "gpu"}, "scheduler must be one of"),
    ({"on_bad_file": "ignore"}, "on_bad_file must be one of"),
    ({"by": ["model", "model"]}, "twice"),
])
def test_bad_options_fail_before_scheduling(hive_dataset, kwargs, words):
    root, _ = hive_dataset
    options = {"scheduler": UNREACHABLE, **kwargs}
    with pytest.raises((l1stream.UsageError, l1stream.SchemaError), match=words):
        l1stream.evaluate(str(root), **options)


def test_cli_usage_errors_exit_2_with_json(hive_dataset, capsys):
    root, _ = hive_dataset
    code, out, err = cli(capsys, "mae", root, "--filter", "nosuch==1", "--json")
    assert code == 2 and json.loads(out)["error"]["type"] == "usage_error" and "nosuch" in err
    code, out, err = cli(capsys, "mae", root, "--bogus-flag", "--json")
    assert code == 2 and "unrecognized arguments: --bogus-flag" in json.loads(out)["error"]["message"]


# --- outputs are never half-written ------------------------------------------------------------

def test_failed_run_keeps_previous_json_output(tmp_path, capsys):
    good = write_parquet(tmp_path / "in" / "a.parquet", actual=[1.0], prediction=[3.0])
    out = tmp_path / "out" / "mae.json"
    assert cli(capsys, "mae", good, "--output", out)[0] == 0
    before = out.read_text()
    assert json.loads(before)["mae"] == 2.0
    write_parquet(tmp_path / "in" / "b.parquet", actual=[NAN], prediction=[1.0])
    assert cli(capsys, "mae", tmp_path / "in", "--output", out)[0] == 3
    assert out.read_text() == before
    assert sorted(os.listdir(out.parent)) == ["mae.json"]
