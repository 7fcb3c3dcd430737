"""The engine's public face: :func:`evaluate` (the MAE of datasets and DataFrames) and
:func:`error_quantiles`."""

from __future__ import annotations

from l1stream.engine.clusters import validate_cluster
from l1stream.engine.job import evaluate_paths, validate_options
from l1stream.engine.planning import DEFAULT_TASK_BYTES
from l1stream.engine.result import EvaluationResult
from l1stream.errors import UsageError
from l1stream.sources.inputs import input_kind


def evaluate(source, *, actual: str = "actual", prediction: str = "prediction", weight: str | None = None,
             by=None, filters=None, nan_policy: str = "raise", on_bad_file: str = "raise", scheduler=None,
             num_workers: int | None = None, storage_options: dict | None = None, filesystem=None,
             chunk_rows: int = 1 << 20, task_bytes: int = DEFAULT_TASK_BYTES,
             progress: bool = False, cluster=None, store=None, full: bool = False,
             baseline_prediction: str | None = None, format: str | None = None,
             table_version: int | None = None, catalog: dict | None = None, scheduler_file=None,
             compute: bool = True) -> EvaluationResult:
    """Evaluate the exact (weighted) MAE of a Parquet dataset, a table or data already in memory.

    Parameters
    ----------
    source : str, os.PathLike, list of them, or a frame
        Parquet files, directories (hive ``key=value`` partitions become columns), Delta and
        Iceberg tables, globs or fsspec URLs (``s3://bucket/logs/``); or data already loaded: a
        pandas, Dask or polars DataFrame, a polars LazyFrame (streamed in batches), a pyarrow
        Table, RecordBatch, RecordBatchReader or ``pyarrow.dataset.Dataset`` (one of Parquet files
        is read as those files).  Anything else raises :class:`UsageError`.
    actual, prediction : str, default "actual", "prediction"
        Column names of the observed and predicted values (float, integer or decimal).
    weight : str, optional
        Column of non-negative sample weights: the MAE becomes ``sum(w|a-p|) / sum(w)``.
    by : str or list of str, optional
        Slice keys (partition keys or columns): ``result.groups`` has one row per slice.
    filters : str, tuple or list, optional
        ``"date>=2026-11-10"``, ``("model", "==", "v2")``, ``"segment in a,b"``: all must hold.
    nan_policy : {"raise", "omit", "propagate"}, default "raise"
        Rows whose actual or prediction is null, NaN or infinite: fail, leave out (and count), or
        return NaN.
    on_bad_file : {"raise", "skip"}, default "raise"
        Unreadable files and files missing a column: fail, or skip and list them in ``result.skipped``.
    scheduler : str, distributed.Client, concurrent.futures.Executor or callable, optional
        ``"threads"`` (in-process), ``"processes"``, ``"synchronous"``, ``"distributed"`` (the
        active client), a ``distributed.Client``, an address ``"tcp://host:port"``, an Executor or
        a Dask ``get`` function.  ``None`` (default) chooses as Dask does:
        ``dask.config.set(scheduler=...)``, else the active client, else local threads.
    scheduler_file : str, optional
        The JSON file ``dask scheduler --scheduler-file`` writes: run on that scheduler.
    compute : bool, default True
        ``False`` returns a ``dask.delayed`` object whose result is the EvaluationResult, to
        compute with other work in one ``dask.compute`` call (nothing is read until then).
    num_workers : int, optional
        Threads or processes for the local schedulers (default: one per core).
    storage_options : dict, optional
        fsspec options for URLs (credentials, ``endpoint_url``, ...).
    filesystem : fsspec.AbstractFileSystem, optional
        Read through this filesystem instead of inferring one from the paths.
    chunk_rows : int, default 1048576
        Rows decoded at once per task (row groups larger than this are read in batches).
    task_bytes : int, default 64 MiB
        Parquet bytes per task: small files are grouped, larger ones split by row group.
    progress : bool, default False
        Show a progress bar on stderr (local schedulers).
    cluster : dict or str, optional
        Start a Dask cluster for this run and close it after: ``{"kind": "local" | "slurm" |
        "kubernetes" | "gateway" | "address", "workers": N, "options": {...}}`` (see
        :mod:`l1stream.engine.clusters`).  Started only after paths, columns and filters are checked.
    store : str, optional
        A state-store directory or URL (see :mod:`l1stream.engine.store`): fragments whose exact state
        is stored are not read again; new or rewritten ones are read and stored.  Same bits as a
        full recompute.  ``result.fragments`` says how many were read and reused.
    full : bool, default False
        Ignore the stored states (read everything) and refresh them.
    baseline_prediction : str, optional
        Another model's prediction column: both MAEs on exactly the same rows, and their exact
        paired difference (``result.baseline_mae``, ``result.difference``).
    format : {"auto", "parquet", "delta", "iceberg"}, optional
        How to read the paths.  By default a directory holding ``_delta_log/`` is read as the
        current snapshot of a Delta table, one holding ``metadata/*.metadata.json`` as an Iceberg
        table (only their live files), and a path inside a table is an error; ``"parquet"`` reads
        every file as plain Parquet.  ``result.source`` says what was read.
    table_version : int, optional
        The Delta table version or Iceberg snapshot id to read (time travel).
    catalog : dict, optional
        Iceberg catalog properties (pyiceberg's ``type``, ``uri``, ``warehouse``, ..., and ``name``):
        ``source`` is then a table identifier such as ``"logs.predictions"``.

    Returns
    -------
    EvaluationResult
        ``.mae``, ``.count``, ``.left_out``, ``.groups``, ``.to_dict()``, ...

    Raises
    ------
    UsageError
        Bad options, filters, or ``by`` keys (before any work is scheduled).
    DataError
        Missing paths, unreadable files, missing columns, non-finite values under ``raise``,
        or no rows to average.
    """
    options = validate_options(actual=actual, prediction=prediction, weight=weight, by=by, filters=filters,
                               nan_policy=nan_policy, on_bad_file=on_bad_file, scheduler=scheduler,
                               num_workers=num_workers, chunk_rows=chunk_rows, task_bytes=task_bytes,
                               store=store, full=full, baseline_prediction=baseline_prediction, format=format,
                               table_version=table_version, catalog=catalog, scheduler_file=scheduler_file)
    cluster = validate_cluster(cluster)
    if not isinstance(compute, bool):
        raise UsageError(f"compute must be True or False; got {compute!r}")
    if cluster is not None and scheduler is not None:
        raise UsageError("give either scheduler (an existing scheduler) or cluster (one to start), not both")
    kind = input_kind(source)
    if kind == "arrow-files":  # a pyarrow dataset of Parquet files: read its files like any others
        if filesystem is not None or storage_options:
            raise UsageError("a pyarrow dataset brings its own filesystem: drop filesystem and storage_options")
        source, filesystem = list(source.files), source.filesystem
    elif kind != "paths":
        if storage_options or filesystem is not None or cluster is not None or options.store is not None:
            from l1stream.engine.frames import LABELS

            raise UsageError(f"storage_options, filesystem, cluster and store apply to paths, not to {LABELS[kind]} "
                             "(a Dask DataFrame runs on the scheduler it was made with)")
        from l1stream.engine.frames import evaluate_frame  # imports pyarrow: only for frames

        return evaluate_frame(source, kind, options, progress=progress, compute=compute)
    return evaluate_paths(source, options, storage_options=storage_options, filesystem=filesystem,
                          progress=progress, cluster=cluster, compute=compute)


def error_quantiles(source, q=(0.9, 0.99), *, actual: str = "actual", prediction: str = "prediction",
                    filters=None, nan_policy: str = "raise", scheduler=None, num_workers: int | None = None,
                    storage_options: dict | None = None, filesystem=None, chunk_rows: int = 1 << 20,
                    task_bytes: int = DEFAULT_TASK_BYTES):
    """Exact median and quantiles of the per-row L1 loss of a Parquet dataset, out of core.

    The median matches ``numpy.median`` / ``sklearn.metrics.median_absolute_error`` and each
    quantile ``numpy.quantile(losses, q)`` bit for bit, on any partitioning, in at most four
    passes over the data (usually two).  See :mod:`l1stream.engine.quantiles`.

    Returns
    -------
    QuantileResult
        ``.median``, ``.quantiles`` (q -> value), ``.count``, ``.left_out``, ``.passes``, ``.to_dict()``.
    """
    from l1stream.engine.job import prepare
    from l1stream.engine.quantiles import exact_quantiles, merge_counts, pass_counts, validate_qs
    from l1stream.engine.schedulers import run_graph, tree_graph

    qs = validate_qs(q)
    options = validate_options(actual=actual, prediction=prediction, filters=filters, nan_policy=nan_policy,
                               scheduler=scheduler, num_workers=num_workers, chunk_rows=chunk_rows,
                               task_bytes=task_bytes)
    prepared = prepare(source, options, storage_options, filesystem)
    tasks, spec, fs = prepared.plan.tasks, prepared.spec, prepared.found.filesystem

    def run_pass(buckets):
        if not tasks:
            return pass_counts([], spec, fs, buckets)
        graph = tree_graph("l1stream-quantiles", pass_counts, tasks, (spec, fs, list(buckets)), merge_counts)
        return run_graph(graph, options.scheduler, options.num_workers, False)

    return exact_quantiles(run_pass, qs, nan_policy)
