"""The Dask layer: validate, discover, plan, scan in parallel, tree-reduce exact states.

Nothing here computes a number: tasks call :func:`l1stream.engine.tasks.scan_pieces`
(or :func:`l1stream.exact.state.chunk_state` for a user's Dask DataFrame) and the
reduction calls ``merge``.  Per-partition means are never averaged.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from l1stream.engine.pieces import Piece, ScanSpec
from l1stream.engine.planning import DEFAULT_TASK_BYTES, Plan, plan_tasks
from l1stream.engine.result import EvaluationResult
from l1stream.engine.scan_state import ScanState, merge_all
from l1stream.engine.schedulers import run_graph, scheduler_from_file, scheduler_label, tree_graph, validate_scheduler
from l1stream.engine.tasks import scan_pieces
from l1stream.errors import NoRowsError, SchemaError, UsageError, did_you_mean
from l1stream.exact.l1state import check_nan_policy
from l1stream.sources.discovery import Discovery, check_outputs_outside_sources, discover
from l1stream.sources.filters import BoundFilters, bind_filters, parse_filters
from l1stream.sources.tables import validate_format

log = logging.getLogger("l1stream")

BAD_FILE_POLICIES = ("raise", "skip")
SPLIT_EVERY = 16


@dataclass(frozen=True)
class Options:
    """Validated evaluation options (built once by :func:`validate_options`)."""

    actual: str
    prediction: str
    weight: str | None
    by: tuple
    filters: list
    nan_policy: str
    on_bad_file: str
    scheduler: Any  # a name, an address, a Client, an Executor or a get function
    num_workers: int | None
    chunk_rows: int
    task_bytes: int
    store: str | None = None
    full: bool = False
    baseline: str | None = None
    source_format: str = "auto"  # auto | parquet | delta | iceberg
    table_version: int | None = None
    catalog: dict | None = None  # Iceberg catalog properties: sources are table identifiers

    @property
    def result_columns(self) -> dict:
        """The columns as a result reports them (``result.columns``, JSON ``columns``)."""
        return {"actual": self.actual, "prediction": self.prediction, "weight": self.weight,
                "baseline_prediction": self.baseline}


def validate_options(*, actual="actual", prediction="prediction", weight=None, by=None, filters=None,
                     nan_policy="raise", on_bad_file="raise", scheduler=None, num_workers=None,
                     chunk_rows=1 << 20, task_bytes=DEFAULT_TASK_BYTES, store=None, full=False,
                     baseline_prediction=None, format=None, table_version=None, catalog=None,
                     scheduler_file=None) -> Options:
    """Check every option up front; raise :class:`UsageError` saying what was expected."""
    if scheduler_file is not None:
        if scheduler is not None:
            raise UsageError("give either scheduler or scheduler_file, not both")
        scheduler = scheduler_from_file(scheduler_file)
    for name, value in (("actual", actual), ("prediction", prediction)):
        if not isinstance(value, str) or not value:
            raise UsageError(f"{name} must be a column name (a non-empty string); got {value!r}")
    if weight is not None and (not isinstance(weight, str) or not weight):
        raise UsageError(f"weight must be a column name or None; got {weight!r}")
    if actual == prediction:
        raise UsageError(f"actual and prediction name the same column {actual!r}")
    if baseline_prediction is not None and (not isinstance(baseline_prediction, str) or not baseline_prediction
                                            or baseline_prediction in (actual, prediction)):
        raise UsageError(f"baseline_prediction must name a third column (another model's predictions); "
                         f"got {baseline_prediction!r}")
    if by is None:
        by = ()
    elif isinstance(by, str):
        by = (by,)
    else:
        by = tuple(by)
    if not all(isinstance(k, str) and k for k in by):
        raise UsageError(f"by must be a column name or a list of column names; got {by!r}")
    if len(set(by)) != len(by):
        raise UsageError(f"by names a column twice: {list(by)}")
    check_nan_policy(nan_policy)
    if on_bad_file not in BAD_FILE_POLICIES:
        raise UsageError(f"on_bad_file must be one of {', '.join(map(repr, BAD_FILE_POLICIES))}; got {on_bad_file!r}")
    for name, value in (("chunk_rows", chunk_rows), ("task_bytes", task_bytes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{name} must be a positive integer; got {value!r}")
    if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 1):
        raise UsageError(f"num_workers must be a positive integer or None; got {num_workers!r}")
    validate_scheduler(scheduler)
    if store is not None and not isinstance(store, (str, os.PathLike)):
        raise UsageError(f"store must be a directory path or URL; got {store!r}")
    if not isinstance(full, bool):
        raise UsageError(f"full must be true or false; got {full!r}")
    source_format = validate_format(format)
    if table_version is not None and (isinstance(table_version, bool) or not isinstance(table_version, int)
                                      or table_version < 0):
        raise UsageError(f"table_version must be a non-negative integer (a Delta version or an Iceberg snapshot id); "
                         f"got {table_version!r}")
    if catalog is not None:
        if not isinstance(catalog, dict) or not catalog:
            raise UsageError(f"catalog must be a mapping of Iceberg catalog properties (type, uri, warehouse, ...); "
                             f"got {catalog!r}")
        if source_format not in ("auto", "iceberg"):
            raise UsageError(f"a catalog names Iceberg tables; format={source_format!r} does not fit it")
        source_format = "iceberg"
    if table_version is not None and source_format == "parquet":
        raise UsageError("table_version applies to Delta and Iceberg tables, not to format='parquet'")
    return Options(actual, prediction, weight, by, parse_filters(filters), nan_policy, on_bad_file, scheduler,
                   num_workers, chunk_rows, task_bytes, os.fspath(store) if store is not None else None, full,
                   baseline_prediction, source_format, table_version, catalog)


def evaluate_paths(source, options: Options, *, storage_options=None, filesystem=None,
                   progress: bool = False, cluster: dict | None = None, compute: bool = True):
    """Evaluate Parquet files (see :func:`l1stream.evaluate`); with ``compute=False``, return the
    evaluation as a ``dask.delayed`` object.

    Everything that can fail on the client (paths, names, filters) is checked before a
    ``cluster`` is started, so a typo never costs a batch-queue wait.
    """
    if not compute:
        if cluster is not None:
            raise UsageError("compute=False returns a graph to compute later, and a cluster is started for one "
                             "run only: start the cluster yourself (a distributed.Client) and compute on it")
        return delayed_evaluation(prepare(source, options, storage_options, filesystem), options)
    if cluster is not None:
        from dataclasses import replace

        from l1stream.engine.clusters import cluster_client

        prepared = prepare(source, options, storage_options, filesystem)
        with cluster_client(cluster) as client:
            return _execute(prepared, replace(options, scheduler=client), progress)
    return _execute(prepare(source, options, storage_options, filesystem), options, progress)


class Prepared(NamedTuple):
    """What :func:`prepare` checked and planned on the client."""

    started: float
    found: Discovery
    schema: Any  # pyarrow.Schema of the first readable file (None if none could be read)
    bound: BoundFilters
    spec: ScanSpec
    plan: Plan
    store: Any  # store.StateStore or None


def prepare(source, options: Options, storage_options=None, filesystem=None) -> Prepared:
    """Discover, check names, bind filters and plan: everything before any task runs."""
    started = time.perf_counter()
    if options.store is not None:
        check_outputs_outside_sources(source, {"store": options.store}, storage_options)
    found = discover(source, storage_options=storage_options, filesystem=filesystem,
                     source_format=options.source_format, table_version=options.table_version,
                     catalog=options.catalog, partition_filters=options.filters)
    if found.duplicates:
        log.warning("%d file(s) reached more than once by the sources; each is counted once", len(found.duplicates))
    schema = _first_schema(found, options)
    _check_names(options, found.partition_types, schema)
    bound = bind_filters(options.filters, found.partition_types, schema, found.raw_partition_values)
    spec = ScanSpec(options.actual, options.prediction, options.weight, options.by,
                    tuple(k for k in options.by if k in found.partition_types), bound.row_expression,
                    bound.row_columns, options.nan_policy, options.on_bad_file, options.chunk_rows,
                    bound.row_comparisons, options.baseline, filter_partition_keys=bound.partition_keys)
    plan = plan_tasks(found, bound, target_bytes=options.task_bytes)
    store = _open_store(options, spec, found, storage_options, bound)
    return Prepared(started, found, schema, bound, spec, plan, store)


def _open_store(options: Options, spec: ScanSpec, found, storage_options, bound):
    if options.store is None:
        return None
    from l1stream.engine.store import StateStore

    signature = {"actual": spec.actual, "prediction": spec.prediction, "weight": spec.weight, "by": list(spec.by),
                 "by_types": {k: found.partition_types.get(k, "column") for k in spec.by},
                 "row_filters": [list(c) for c in spec.row_comparisons], "nan_policy": spec.nan_policy,
                 "baseline": spec.baseline}
    if bound.signature is not None:  # OR-of-ANDs or expression filters: the comparisons alone do not say
        signature["row_expression"] = bound.signature
    return StateStore(options.store, signature, storage_options)


def _execute(prepared: Prepared, options: Options, progress: bool) -> EvaluationResult:
    _use_store(prepared, options)
    scan = _run(prepared.plan.tasks, prepared.spec, prepared.found.filesystem, options, progress, prepared.store)
    return _finish(scan, prepared, options)


def delayed_evaluation(prepared: Prepared, options: Options):
    """The evaluation as a ``dask.delayed`` object, for ``dask.compute`` together with other work."""
    import dask
    from dask.delayed import Delayed

    _use_store(prepared, options)
    tasks = prepared.plan.tasks
    if tasks:
        shared = (prepared.spec, prepared.found.filesystem) + ((prepared.store,) if prepared.store else ())
        key_graph = tree_graph("l1stream-scan", scan_pieces, tasks, shared, merge_all, SPLIT_EVERY)
        scan = Delayed(key_graph[1], key_graph[0])
    else:
        scan = dask.delayed(ScanState.empty)()
    return dask.delayed(_finish, pure=False)(scan, prepared, options)


def _use_store(prepared: Prepared, options: Options) -> None:
    """Regroup the plan's tasks around the fragments the state store already holds."""
    store, plan = prepared.store, prepared.plan
    if store is not None:
        from l1stream.engine.planning import regroup_with_store

        existing = set() if options.full else store.existing()
        plan.tasks = regroup_with_store(plan.tasks, existing, lambda piece: store.key(piece.identity))


def _finish(scan: ScanState, prepared: Prepared, options: Options) -> EvaluationResult:
    """From the merged scan to the result: a rescan without files that failed part-way, the row
    checks, the store's clean-up."""
    started, found, _, bound, spec, plan, store = prepared
    progress = False
    partial = set(scan.skipped) & set(scan.files)
    if partial:
        # A split file failed in one piece after another piece was counted: rescan without it.
        log.warning("%d file(s) failed part-way and are skipped whole; rescanning without them", len(partial))
        skipped = dict(scan.skipped)
        plan = plan_tasks(found, bound, target_bytes=options.task_bytes, exclude=frozenset(skipped))
        scan = _run(plan.tasks, spec, found.filesystem, options, progress, store)
        scan.skipped.update(skipped)
        plan.files_selected += len(skipped)
    _check_rows(scan, plan, bound, options)
    if store is not None:
        _clean_store(store, found, options)
    result = EvaluationResult(
        scan, by=options.by, weighted=options.weight is not None, nan_policy=options.nan_policy,
        filters=bound.text, files_selected=plan.files_selected, files_pruned=plan.files_pruned,
        directories_not_listed=len(found.pruned.directories), duplicates=found.duplicates,
        ignored=len(found.ignored), columns=options.result_columns, elapsed=time.perf_counter() - started,
        scheduler=scheduler_label(options.scheduler))
    result.inputs_fingerprint = _fingerprint(plan.tasks)
    result.source = found.source_summary()
    return result


def _fingerprint(tasks) -> str:
    """A hash of the exact inputs: every selected piece's path, size, version and split."""
    import hashlib

    pieces = sorted((p.path, p.size, p.version, p.split, p.splits) for task in tasks for p in task)
    return hashlib.sha256(repr(pieces).encode()).hexdigest()[:16]


def _first_schema(found, options: Options):
    """The schema of the first readable file, to validate names before scheduling anything: its
    top-level names from l1stream's own footer reading for a job without filters on local disk or a
    small remote file (no pyarrow needed), else pyarrow's schema (filters are typed against it)."""
    from l1stream.storage import is_local

    if not options.filters and found.files and found.filesystem is not None:
        from l1stream.engine.direct import local_footer, remote_footer

        first = found.files[0]
        meta = local_footer(first.path) if is_local(found.filesystem) else remote_footer(first, found.filesystem)
        if meta is not None:
            return meta.schema
    last_error: Exception | None = None
    from l1stream.engine.scan import open_parquet

    for file in found.files[:20]:
        try:
            parquet = open_parquet(file.path, found.filesystem)
        except Exception as exc:  # reported properly by the task that reads this file
            last_error = exc
            continue
        try:
            return parquet.schema_arrow
        finally:
            parquet.close()
    if options.on_bad_file == "skip" or last_error is None:
        return None
    raise last_error


def _check_names(options: Options, partition_types: dict, schema) -> None:
    if schema is None:
        return
    available = list(partition_types) + [n for n in schema.names if n not in partition_types]
    for role, name in (("actual", options.actual), ("prediction", options.prediction), ("weight", options.weight),
                       ("baseline_prediction", options.baseline)):
        if name is not None and name not in schema.names:
            raise SchemaError(f"{role} column {name!r} is not in the data{did_you_mean(name, schema.names)}; "
                              f"columns: {', '.join(schema.names)}")
    for key in options.by:
        if key not in available:
            raise UsageError(f"by key {key!r} is neither a partition key nor a column{did_you_mean(key, available)}; "
                             f"available: {', '.join(available)}")


def _clean_store(store, found, options: Options) -> None:
    """Drop entries of files that are gone or rewritten (entries of filtered-out files stay)."""
    from l1stream.engine.planning import piece_splits

    keep: set = set()
    for f in found.files:
        splits = piece_splits(f.size, options.task_bytes)
        keep.update(store.key(Piece(f.path, split=s, splits=splits, size=f.size, version=f.version).identity)
                    for s in range(splits))
    removed = store.clean(keep)
    if removed:
        log.info("state store: removed %d stale entr%s", removed, "y" if removed == 1 else "ies")


def _run(tasks, spec: ScanSpec, filesystem, options: Options, progress: bool, store=None) -> ScanState:
    if not tasks:
        return ScanState.empty()
    shared = (spec, filesystem) if store is None else (spec, filesystem, store)
    graph = tree_graph("l1stream-scan", scan_pieces, tasks, shared, merge_all, SPLIT_EVERY)
    return run_graph(graph, options.scheduler, options.num_workers, progress)


def _check_rows(scan: ScanState, plan, bound, options: Options) -> None:
    overall = scan.overall()
    if overall.propagated is not None or overall.count:
        if overall.count and overall.weight_sum == 0 and overall.propagated is None:
            raise NoRowsError(f"all weights in column {options.weight!r} are zero over the {overall.count:,} rows "
                              f"used: the weighted MAE is undefined")
        return
    reports = scan.files.values()
    scanned = sum(r.rows_scanned for r in reports)
    filtered = sum(r.rows_filtered for r in reports)
    filters = ", ".join(bound.text)
    if plan.files_selected == 0:
        reason = f"the partition filters [{filters}] removed all {plan.files_pruned} file(s)"
    elif scan.skipped and len(scan.skipped) >= plan.files_selected:
        reason = f"every selected file was skipped as unreadable ({len(scan.skipped)})"
    elif scanned == 0:
        reason = f"the {plan.files_selected} selected file(s) hold no rows"
    elif filtered == scanned:
        reason = f"the row filters [{filters}] removed all {scanned:,} rows read"
    else:
        parts = ", ".join(f"{v:,} {k}" for k, v in overall.left_out.items() if v)
        reason = f"all {overall.rows:,} rows were left out under nan_policy={options.nan_policy!r} ({parts})"
    raise NoRowsError(f"no rows to evaluate: {reason}; the MAE is undefined")
