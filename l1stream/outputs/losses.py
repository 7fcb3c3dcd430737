"""Write the per-row L1 loss of a dataset as a partitioned Parquet dataset, out of core.

Each input file (or piece of a large file) becomes one output file under the
same hive partition directories, holding ``l1_loss`` (float64, each value the
correctly rounded ``|actual - prediction|``) plus the ``by`` and ``keep``
columns, in input row order.  Rows left out under ``nan_policy='omit'`` have a
null loss, so the output has exactly the rows read.  The output directory
appears only when complete (see :mod:`l1stream.storage`).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq

from l1stream.engine.job import prepare, validate_options
from l1stream.engine.scan import ScanSpec, iter_piece_chunks
from l1stream.engine.schedulers import run_graph, tree_graph
from l1stream.errors import NonFiniteError, UsageError, did_you_mean
from l1stream.exact.columns import as_numeric
from l1stream.exact.metric import l1_loss
from l1stream.exact.state import _row_reasons
from l1stream.sources.discovery import _GLOB_CHARS, _glob_root, check_outputs_outside_sources
from l1stream.storage import is_local, output_error, staged_directory, staging_alive


def write_losses(source, output: str, *, actual="actual", prediction="prediction", by=None, keep=(),
                 filters=None, nan_policy="raise", scheduler=None, num_workers=None, storage_options=None,
                 chunk_rows: int = 1 << 20, cluster=None) -> dict:
    """Write ``l1_loss`` for every row read to ``output`` (a local directory); return a summary dict.

    ``cluster`` (see :mod:`l1stream.engine.clusters`) is started after every check has passed.
    """
    from l1stream.engine.clusters import cluster_client, validate_cluster

    cluster = validate_cluster(cluster)
    check_outputs_outside_sources(source, {"output": output}, storage_options, directories=("output",))
    keep = (keep,) if isinstance(keep, str) else tuple(keep)
    options = validate_options(actual=actual, prediction=prediction, by=by, filters=filters, nan_policy=nan_policy,
                               scheduler=scheduler, num_workers=num_workers, chunk_rows=chunk_rows)
    prepared = prepare(source, options, storage_options)
    schema = prepared.schema
    for column in keep:
        if schema is not None and column not in schema.names:
            raise UsageError(f"keep column {column!r} is not in the data{did_you_mean(column, schema.names)}; "
                             f"columns: {', '.join(schema.names)}")
    spec = replace(prepared.spec, row_columns=tuple(dict.fromkeys(prepared.spec.row_columns + keep)))
    plan, fs = prepared.plan, prepared.found.filesystem
    roots = _roots(source, prepared.found)
    rows = 0
    with staged_directory(output, storage_options) as (out_fs, staging), \
            (cluster_client(cluster) if cluster else contextlib.nullcontext()) as client:
        if plan.tasks:
            graph = tree_graph("l1stream-losses", _write_pieces, plan.tasks, (spec, fs, out_fs, staging, roots, keep),
                               sum)
            rows = run_graph(graph, client if cluster else options.scheduler, options.num_workers, False)
    return {"output": os.path.abspath(output) if is_local(out_fs) else str(output), "rows": rows,
            "files": plan.files_selected}


def _roots(source, found) -> list:
    """The directory each source's partition paths are relative to."""
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    roots = []
    for s in sources:
        path = found.filesystem._strip_protocol(os.fspath(s)).rstrip("/")
        if _GLOB_CHARS.search(path):
            path = _glob_root(path)
        elif found.filesystem.isfile(path):
            path = posixpath.dirname(path)
        roots.append(path)
    return roots


def _write_pieces(pieces, spec: ScanSpec, filesystem, out_fs, staging: str, roots, keep) -> int:
    written = 0
    for piece in pieces:
        tables = [_loss_table(table, piece, spec, keep)
                  for _, _, table in iter_piece_chunks(piece, spec, filesystem)]
        if not tables:
            continue
        if not staging_alive(staging):
            break  # the run was interrupted or failed: write nothing more
        target = posixpath.join(staging, _relative_dir(piece.path, roots))
        stem = posixpath.splitext(posixpath.basename(piece.path))[0]
        name = posixpath.join(target, f"{stem}-l1-{piece.split}.parquet")
        try:
            out_fs.makedirs(target, exist_ok=True)
            with out_fs.open(name, "wb") as handle:
                with pq.ParquetWriter(handle, tables[0].schema) as writer:
                    for t in tables:
                        writer.write_table(t)
        except OSError as exc:  # disk full, permissions: the staging is removed by the caller
            raise output_error(name, exc) from None
        written += sum(t.num_rows for t in tables)
    return written


def _loss_table(table: pa.Table, piece, spec: ScanSpec, keep) -> pa.Table:
    actual, prediction = table[spec.actual], table[spec.prediction]
    loss = l1_loss(actual, prediction)
    bad = _row_reasons(as_numeric(actual, spec.actual), as_numeric(prediction, spec.prediction)) != 0
    if bad.any():
        if spec.nan_policy == "raise":
            raise NonFiniteError(f"{piece.path}: {int(bad.sum())} row(s) with a null, NaN or infinite actual or "
                                 f"prediction; use nan_policy='omit' to write "
                                 f"null losses for them, or 'propagate' to write NaN")
        if spec.nan_policy == "omit":
            loss_array = pa.array(loss, mask=bad)
        else:
            loss_array = pa.array(loss)
    else:
        loss_array = pa.array(loss)
    columns = {k: table[k] for k in dict.fromkeys(spec.data_by + tuple(keep))}
    columns["l1_loss"] = loss_array
    return pa.table(columns)


def _relative_dir(path: str, roots) -> str:
    for root in roots:
        if path.startswith(root + "/"):
            return posixpath.dirname(path[len(root) + 1:])
    return ""
