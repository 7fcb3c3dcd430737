"""The metrics history: one Parquet file per run, one record per (overall, slice).

``HISTORY/run-<UTC time>-<run id>.parquet`` (a local directory or an fsspec URL).
Appending is writing one new file: atomic (temporary name + rename locally, one PUT
on object stores), so a failed or interrupted run appends nothing and readers never
see half a run.  Read the whole history with any Parquet reader, or ``l1stream history``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from l1stream.engine.result import EvaluationResult, slice_json
from l1stream.errors import DataError, SourceError, first_line

SCHEMA = pa.schema([
    ("run_id", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")), ("l1stream_version", pa.string()),
    ("config_hash", pa.string()), ("inputs_fingerprint", pa.string()), ("window", pa.string()),
    ("slice", pa.string()), ("mae", pa.float64()), ("count", pa.int64()), ("rows_read", pa.int64()),
    ("left_out_null", pa.int64()), ("left_out_nan", pa.int64()), ("left_out_inf", pa.int64()),
    ("weight_sum", pa.float64()), ("baseline_mae", pa.float64()), ("gates_passed", pa.bool_()),
    ("table_version", pa.int64()),  # the Delta version / Iceberg snapshot evaluated (null for plain Parquet)
])
OVERALL = ""  # the slice value of the overall record


def config_hash(definition: dict) -> str:
    """A stable hash of what defines the metric (sources, columns, by, filters, policies)."""
    from l1stream.engine.store import json_digest

    return json_digest(definition)[:16]


def slice_label(by: tuple, key: tuple) -> str:
    """The history's ``slice`` value: ``""`` overall, else a JSON object of the key."""
    if not by:
        return OVERALL
    return json.dumps(slice_json(by, key), sort_keys=True)


def records(result: EvaluationResult, *, run_id: str, config: str, gates_passed: bool | None,
            now: dt.datetime | None = None) -> list:
    from l1stream._version import __version__

    now = now or dt.datetime.now(dt.timezone.utc)
    common = {"run_id": run_id, "timestamp": now, "l1stream_version": __version__, "config_hash": config,
              "inputs_fingerprint": result.inputs_fingerprint, "window": "; ".join(result.filters),
              "gates_passed": gates_passed, "table_version": result.source.get("table_version")}
    rows = [{**common, "slice": OVERALL, "mae": result.mae, "count": result.count, "rows_read": result.rows_read,
             **{f"left_out_{k}": v for k, v in result.left_out.items()}, "weight_sum": result.weight_sum,
             "baseline_mae": result.baseline_mae}]
    if result.by:
        for key, numbers in result.slice_numbers().items():
            rows.append({**common, "slice": slice_label(result.by, key), "mae": numbers["mae"],
                         "count": numbers["count"], "rows_read": numbers["rows_read"],
                         **{k: numbers[k] for k in ("left_out_null", "left_out_nan", "left_out_inf")},
                         "weight_sum": None, "baseline_mae": numbers.get("baseline_mae")})
    return rows


def append(url: str, rows: list, storage_options: dict | None = None) -> str:
    """Write one run's records as one new file; returns its path."""
    from l1stream.storage import url_filesystem, write_bytes

    fs, root = url_filesystem(url, storage_options)
    stamp = rows[0]["timestamp"].strftime("%Y%m%dT%H%M%S%fZ")
    path = f"{root.rstrip('/')}/run-{stamp}-{rows[0]['run_id']}.parquet"
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), sink)
    write_bytes(fs, path, sink.getvalue().to_pybytes())
    return path


def read(url: str, storage_options: dict | None = None, *, must_exist: bool = False) -> list:
    """All records, oldest first (an empty list when there is no history yet).

    With ``must_exist``, a missing directory, or one that holds files but no history record, is a
    :class:`~l1stream.errors.SourceError` (``l1stream history`` on the wrong directory).  A damaged
    record file is always a :class:`~l1stream.errors.DataError` naming it.
    """
    from l1stream.storage import url_filesystem

    fs, root = url_filesystem(url, storage_options)
    try:
        listing = fs.ls(root, detail=False)
    except FileNotFoundError:
        if must_exist:
            raise SourceError(f"{url}: no such metrics history (the directory does not exist)", path=url) from None
        return []
    names = sorted(n for n in listing if n.rsplit("/", 1)[-1].startswith("run-") and n.endswith(".parquet"))
    if must_exist and not names:
        raise SourceError(f"{url} is not a metrics history: it holds no run-*.parquet records (written by "
                          f"--history DIR or history: in a config)", path=url)
    out = []
    for name in names:
        # ParquetFile.read on one thread, not pq.read_table: pyarrow 26's thread pool, once used on
        # an in-memory source, intermittently aborts the interpreter at exit (std::terminate; seen
        # once in CI with ParquetFile.read's default threads too); a record is a few rows
        try:
            table = pq.ParquetFile(pa.BufferReader(fs.cat_file(name))).read(use_threads=False)
            for field in SCHEMA:  # records written before a column existed: null there
                if field.name not in table.column_names:
                    table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
            table = table.select(SCHEMA.names).cast(SCHEMA)
        except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
            raise DataError(f"metrics history record {name} is damaged ({first_line(exc)}); move it out of {url} "
                            f"to keep the history usable", path=name) from None
        out.extend(table.to_pylist())
    out.sort(key=lambda r: (r["timestamp"], r["run_id"], r["slice"]))
    return out


def previous_values(url: str, config: str, storage_options: dict | None = None) -> dict:
    """Slice -> MAE of the latest earlier run with this config hash whose gates passed."""
    runs: dict = {}
    for r in read(url, storage_options):
        if r["config_hash"] == config and r["gates_passed"] is not False:
            runs.setdefault((r["timestamp"], r["run_id"]), {})[r["slice"]] = r["mae"]
    if not runs:
        return {}
    return runs[max(runs)]


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def format_table(rows: list) -> str:
    """A readable table of history records (what ``l1stream history`` prints)."""
    header = ["timestamp", "run_id", "slice", "mae", "count", "left_out", "gates"]
    lines = []
    for r in rows:
        left = (r["left_out_null"] or 0) + (r["left_out_nan"] or 0) + (r["left_out_inf"] or 0)
        mae = "nan" if r["mae"] is None or (isinstance(r["mae"], float) and math.isnan(r["mae"])) else repr(r["mae"])
        gates = {True: "passed", False: "FAILED", None: "-"}[r["gates_passed"]]
        lines.append([r["timestamp"].strftime("%Y-%m-%d %H:%M:%S"), r["run_id"], r["slice"] or "(overall)", mae,
                      f"{r['count']:,}", f"{left:,}", gates])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*line) for line in lines])
