"""Data the caller already holds: Dask, pandas and polars frames, Arrow tables, batches and readers.

Every kind goes through the same exact states as Parquet files (``reduce_chunk``), so the MAE of
a frame equals the MAE of the same values written to Parquet, bit for bit.  Local inputs are
streamed in chunks of ``chunk_rows`` rows (a polars LazyFrame and an Arrow reader are never
collected whole); a Dask DataFrame runs one task per partition on its scheduler.
"""

from __future__ import annotations

import time

from l1stream.engine.job import SPLIT_EVERY
from l1stream.engine.result import EvaluationResult
from l1stream.engine.scan import FramePart, ScanSpec, filter_rows, reduce_chunk
from l1stream.engine.scan_state import FileReport, ScanState, merge_all
from l1stream.engine.schedulers import delayed_tree, run_graph, scheduler_label
from l1stream.errors import NoRowsError, SchemaError, UsageError, did_you_mean

LABELS = {"pandas": "a pandas DataFrame", "dask": "a Dask DataFrame", "polars": "a polars DataFrame",
          "polars-lazy": "a polars LazyFrame", "arrow-table": "a pyarrow Table", "arrow-batch": "a pyarrow RecordBatch",
          "arrow-reader": "a pyarrow RecordBatchReader", "arrow-dataset": "a pyarrow Dataset"}


def evaluate_frame(frame, kind: str, options, *, progress: bool = False, compute: bool = True):
    """Evaluate an in-memory ``frame`` of ``kind`` (see :func:`l1stream.sources.inputs.input_kind`);
    with ``compute=False``, return the evaluation as a ``dask.delayed`` object."""
    started = time.perf_counter()
    label = LABELS[kind]
    columns = frame_columns(frame, kind)
    _check_columns(options, columns, label)
    if kind == "dask":
        if options.filters:
            raise UsageError("filters apply to Parquet sources and local frames; filter the Dask DataFrame "
                             "(frame[frame.region == 'north']) before evaluating it")
        graph = delayed_tree(frame_state, frame.to_delayed(), (frame_spec(options, None),), merge_all, SPLIT_EVERY)
        if not compute:
            import dask

            return dask.delayed(frame_result, pure=False)(graph, label, options, frame.npartitions, started)
        scan = run_graph(graph, options.scheduler, options.num_workers, progress)
        return frame_result(scan, label, options, frame.npartitions, started)
    if not compute:
        import dask

        return dask.delayed(evaluate_frame, pure=False)(frame, kind, options)
    return frame_result(stream_state(local_tables(frame, kind, options), options, label), label, options, 1,
                        started)


def frame_result(scan: ScanState, label: str, options, parts: int, started: float) -> EvaluationResult:
    """The result of a frame's merged scan (or :class:`NoRowsError` when nothing is left to average)."""
    overall = scan.overall()
    if not overall.count and overall.propagated is None:
        read = sum(r.rows_scanned for r in scan.files.values())
        raise NoRowsError(f"no rows to evaluate: {label} with {read:,} rows, {overall.rows:,} after the filters, "
                          f"{sum(overall.left_out.values()):,} left out under nan_policy={options.nan_policy!r}")
    return EvaluationResult(scan, by=options.by, weighted=options.weight is not None, nan_policy=options.nan_policy,
                            filters=tuple(str(f) for f in options.filters), files_selected=parts,
                            columns=options.result_columns,
                            elapsed=time.perf_counter() - started, scheduler=scheduler_label(options.scheduler))


def frame_spec(options, bound) -> ScanSpec:
    """The scan spec of a frame: the options, and the row filters ``bound`` to its schema (if any)."""
    return ScanSpec(options.actual, options.prediction, options.weight, options.by, (),
                    row_expression=None if bound is None else bound.row_expression,
                    row_columns=() if bound is None else bound.row_columns,
                    nan_policy=options.nan_policy, baseline=options.baseline)


def stream_state(tables, options, label: str) -> ScanState:
    """Reduce a stream of Arrow tables (the first one fixes the schema the filters bind to)."""
    from l1stream.sources.filters import bind_filters

    state, report, spec, offset = ScanState.empty(), FileReport(), None, 0
    part = FramePart(None, 0, name=label)
    for table in tables:
        if spec is None:
            bound = bind_filters(options.filters, {}, table.schema) if options.filters else None
            spec = frame_spec(options, bound)
        report.rows_scanned += table.num_rows
        table = filter_rows(table, part, spec, report)
        reduce_chunk(table, part, spec, state, report, 0, offset)
        offset += table.num_rows
    state.files[label] = report
    return state


def frame_columns(frame, kind: str) -> list:
    """Column names of an in-memory input, without reading its rows."""
    if kind == "polars-lazy":
        return list(frame.collect_schema().names())
    if kind in ("arrow-table", "arrow-batch", "arrow-reader", "arrow-dataset"):
        return list(frame.schema.names)
    return [str(c) for c in frame.columns]


def local_tables(frame, kind: str, options):
    """Arrow tables of at most ``options.chunk_rows`` rows holding the columns the job reads."""
    import pyarrow as pa

    from l1stream.sources.filters import filter_columns

    named = filter_columns(options.filters)
    wanted = list(dict.fromkeys(c for c in (options.actual, options.prediction, options.weight, options.baseline,
                                            *options.by, *(named or ())) if c is not None))
    if named is None:  # an expression filter: what it reads is known only from the schema, so keep everything
        wanted = frame_columns(frame, kind)
    rows = options.chunk_rows
    if kind == "pandas":
        for start in range(0, max(len(frame), 1), rows):
            yield frame_table(frame.iloc[start:start + rows], wanted)
    elif kind == "polars":
        yield from _sliced(_polars_arrow(frame.select(wanted)), rows)
    elif kind == "polars-lazy":
        yield from _lazy_batches(frame.select(wanted), rows)
    elif kind == "arrow-table":
        yield from _sliced(frame.select(wanted), rows)
    elif kind == "arrow-batch":
        yield from _sliced(pa.Table.from_batches([frame.select(wanted)]), rows)
    elif kind == "arrow-reader":
        for batch in frame:
            yield from _sliced(pa.Table.from_batches([batch]).select(wanted), rows)
    elif kind == "arrow-dataset":
        for batch in frame.to_batches(columns=wanted, batch_size=rows):
            yield pa.Table.from_batches([batch])


def _sliced(table, rows: int):
    if table.num_rows == 0:
        yield table
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


def _polars_arrow(frame):
    """A polars frame as Arrow with classic string types (no string views, which Arrow compute
    handles in fewer kernels)."""
    import polars as pl

    try:
        return frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    except (AttributeError, TypeError):  # polars before CompatLevel
        return frame.to_arrow()


def _lazy_batches(lazy, rows: int):
    """A LazyFrame's rows in batches, evaluated by polars' streaming engine, never collected whole."""
    collect_batches = getattr(lazy, "collect_batches", None)
    if collect_batches is None:
        raise UsageError("a polars LazyFrame is streamed with LazyFrame.collect_batches (polars >= 1.32); "
                         "upgrade polars, or pass lazy.collect() if it fits in memory")
    for batch in collect_batches(chunk_size=rows):
        yield from _sliced(_polars_arrow(batch), rows)


def frame_state(frame, index: int, spec: ScanSpec) -> ScanState:
    """The :class:`ScanState` of one pandas partition (``partition-<index>`` in file reports)."""
    table = frame_table(frame, spec.columns)
    state, report = ScanState.empty(), FileReport(rows_scanned=table.num_rows)
    reduce_chunk(table, FramePart(table, index), spec, state, report, 0, 0)
    state.files[f"partition-{index}"] = report
    return state


def frame_table(frame, columns):
    """A pandas partition's ``columns`` as an Arrow table (NaN stays NaN, None becomes null)."""
    import pyarrow as pa

    return pa.table({c: _arrow_column(frame[c]) for c in dict.fromkeys(columns)})


def _arrow_column(series):
    """Arrow array of a pandas column, keeping NaN as NaN (``from_pandas`` would make it null)."""
    import numpy as np
    import pyarrow as pa

    if isinstance(series.dtype, np.dtype) and series.dtype.kind != "O":
        return pa.array(series.to_numpy(), from_pandas=False)
    return pa.array(series, from_pandas=True)


def _check_columns(options, columns: list, label: str) -> None:
    from l1stream.sources.filters import filter_columns

    needed = (options.actual, options.prediction, options.weight, options.baseline, *options.by,
              *(filter_columns(options.filters) or ()))
    missing = [c for c in dict.fromkeys(needed) if c is not None and c not in columns]
    if missing:
        hint = did_you_mean(missing[0], columns)
        raise SchemaError(f"{label} has no column {', '.join(map(repr, missing))}{hint}; columns: "
                          f"{', '.join(map(str, columns))}")
