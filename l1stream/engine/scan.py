"""Read planned pieces of Parquet files and reduce them to a :class:`ScanState`.

This is the code that runs inside a task (on a thread, a process or a Dask
worker).  It reads only the needed columns, one row group (or one bounded
batch of a huge row group) at a time, so memory stays at about
``chunk_rows x columns`` per running task whatever the data size.
"""

from __future__ import annotations

import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq

from l1stream.engine.pieces import FramePart, Piece, ScanSpec, my_row_ranges  # noqa: F401 - importable from here
from l1stream.engine.scan_state import FileReport, ScanState
from l1stream.engine.slicing import grouped_slices, slice_groups
from l1stream.errors import BadFileError, DataError, SchemaError, first_line
from l1stream.exact.native import compiled_abs_diff_sum
from l1stream.exact.state import L1State, chunk_state, paired_chunk_states, state_of_units
from l1stream.parquet.footer import TAIL_BYTES, check_footer, describe_foreign
from l1stream.parquet.pages import NativeRowGroups, batches_between, native_decoder_enabled
from l1stream.sources.any_of import add_partition_columns
from l1stream.sources.filters import statistics_may_match
from l1stream.storage import is_local

log = logging.getLogger("l1stream")

NUMERIC_HINT = "expected float, integer or decimal"


def scan_piece(piece: Piece, spec: ScanSpec, filesystem, data: bytes | None = None) -> ScanState:
    """A piece's state from its rows as tables (row groups the page decoder sums as it decodes
    come summed): the ordinary scan, for every spec and every file."""
    state = ScanState.empty()
    report = FileReport()
    # each chunk is reduced before the next is read, and nothing keeps its arrays: recycle them
    for index, offset, table in iter_piece_chunks(piece, spec, filesystem, report, recycle=True,
                                                  dictionary_keys=True, data=data, sums=True):
        if isinstance(table, L1State):  # summed as it was decoded
            state.add_group_state(tuple(piece.partition.get(k) for k in spec.by), table)
            report.add_state(table)
            continue
        reduce_chunk(table, piece, spec, state, report, index, offset)
    state.files[piece.path] = report
    return state


def iter_piece_chunks(piece: Piece, spec: ScanSpec, filesystem, report: FileReport | None = None,
                      recycle: bool = False, dictionary_keys: bool = False, data: bytes | None = None,
                      sums: bool = False):
    """Yield ``(row_group, offset, table)``: the piece's rows that pass the filters, chunk by chunk
    (a :class:`FramePart` is one chunk, "row group" 0).  With ``recycle``, a table's arrays may be
    reused for a later chunk: only for a caller that keeps nothing of a chunk once it asks for the next.
    With ``dictionary_keys``, string slice columns arrive as dictionary arrays (decoded from the
    file's dictionary pages, not hashed again): for a caller that only splits by them.  ``data``:
    the whole file, already fetched (:func:`~l1stream.engine.remote.prefetch_small_files`).
    With ``sums`` (and a :attr:`ScanSpec.plain_pair` spec), a row range the page decoder can sum as
    it decodes comes as its :class:`~l1stream.exact.state.L1State` in place of a table; one it
    cannot (nulls, a value that is not finite, a page it does not take) comes as tables, as always.

    Row groups whose statistics exclude the filters are skipped; ``report`` (if given)
    counts rows scanned and filtered.  Bad files raise :class:`BadFileError`/:class:`SchemaError`.
    """
    report = report if report is not None else FileReport()
    if isinstance(piece, FramePart):
        report.rows_scanned += piece.table.num_rows
        yield 0, 0, filter_rows(piece.table, piece, spec, report)
        return
    parquet = open_parquet(piece.path, filesystem, spec.data_by if dictionary_keys else (), data)
    native = (NativeRowGroups(parquet, piece.path, filesystem, spec.columns, reuse=recycle,
                              file_size=piece.size, data=data)
              if native_decoder_enabled() else None)
    try:
        _check_schema(parquet.schema_arrow, piece.path, spec)
        mine = my_row_ranges(parquet.metadata, piece, spec.columns)
        report.row_groups = sum(1 for _, start, _ in mine if start == 0)  # a split row group counts once
        if native is not None and data is None:
            native.prefetch([index for index, start, stop in mine
                             if start == 0 and row_group_may_match(parquet, index, spec.row_comparisons)
                             and stop == parquet.metadata.row_group(index).num_rows], spec.chunk_rows)
        summing = sums and native is not None and spec.plain_pair
        for index, start, stop in mine:
            if not row_group_may_match(parquet, index, spec.row_comparisons):
                report.rows_scanned += stop - start
                report.rows_filtered += stop - start
                report.row_groups_pruned += start == 0
                continue
            summed = _summed(native, index, spec, start, stop) if native and summing and stop > start else None
            if summed is not None:
                report.rows_scanned += stop - start
                yield index, start, summed
                continue
            for offset, table in _chunks(parquet, index, spec, piece.path, native, start, stop):
                report.rows_scanned += table.num_rows
                yield index, offset, filter_rows(table, piece, spec, report)
    finally:
        if native is not None:
            native.close()
        parquet.close()


def _summed(native: NativeRowGroups, index: int, spec: ScanSpec, start: int, stop: int) -> L1State | None:
    """Rows ``[start, stop)`` of a row group summed exactly as the page decoder decodes them, or None
    where it declines (the caller then reads them as tables)."""
    total = compiled_abs_diff_sum()
    if total is None:
        return None
    why = native.reduce_pair(index, (spec.actual, spec.prediction), total.consumer(), spec.chunk_rows, start, stop)
    if why is not None:
        log.debug("%s: row group %d: read as tables (%s)", native.path, index, why)
        return None
    return state_of_units(total.units(), total.rows)


def filter_rows(table: pa.Table, piece, spec: ScanSpec, report: FileReport) -> pa.Table:
    """The rows of a chunk that pass the row filters (partition keys the filters read are added as
    constant columns first, and dropped after); counts the rows filtered out."""
    if spec.row_expression is None:
        return table
    before = table.num_rows
    if spec.filter_partition_keys:
        names = table.column_names
        table = add_partition_columns(table, piece.partition, spec.filter_partition_keys)
        table = table.filter(spec.row_expression).select(names)
    else:
        table = table.filter(spec.row_expression)
    report.rows_filtered += before - table.num_rows
    return table


def row_group_may_match(parquet: pq.ParquetFile, index: int, comparisons) -> bool:
    """False when a row group's column statistics prove that no row passes the filters."""
    if not comparisons:
        return True
    meta = parquet.metadata.row_group(index)
    schema = parquet.metadata.schema
    for column, op, value in comparisons:
        if column not in schema.names:
            continue
        stats = meta.column(schema.names.index(column)).statistics
        if stats is None:
            continue
        if stats.has_null_count and stats.null_count == meta.num_rows and meta.num_rows:
            return False  # only nulls: nulls never match
        if stats.has_min_max and not statistics_may_match(stats.min, stats.max, op, value):
            return False
    return True


def open_parquet(path: str, filesystem, dictionary_keys: tuple = (), data: bytes | None = None) -> pq.ParquetFile:
    """Open a Parquet file (buffered reads), as a :class:`BadFileError` on failure; its string and
    binary columns among ``dictionary_keys`` are read as dictionary arrays.  ``data``: the whole
    file, already in memory."""
    try:
        if data is not None:
            footer = check_footer(data[-TAIL_BYTES:], path, lambda n: data[-n:])
            return _reader(pa.BufferReader(data), dictionary_keys, footer, path)
        if is_local(filesystem):
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                footer = check_footer(os.pread(handle.fileno(), min(size, TAIL_BYTES), max(0, size - TAIL_BYTES)),
                                      path, lambda n: os.pread(handle.fileno(), min(size, n), max(0, size - n)))
            return _reader(path, dictionary_keys, footer, path)  # buffered: no file pages in RSS
        handle = filesystem.open(path, "rb")
        key = _footer_key(path, handle)
        known = _FOOTERS.get(key)
        if known is not None:  # this process read the footer already (the planner, for the schema)
            try:
                return _reader(handle, dictionary_keys, None, path, metadata=known)
            except BaseException:
                handle.close()
                raise
        try:
            handle.seek(max(0, handle.size - TAIL_BYTES))

            def more(n: int) -> bytes:
                handle.seek(max(0, handle.size - n))
                return handle.read()

            footer = check_footer(handle.read(), path, more)  # the handle's cache serves pyarrow's footer read
            handle.seek(0)
            parquet = _reader(handle, dictionary_keys, footer, path)
            _remember_footer(key, parquet.metadata)
            return parquet
        except BaseException:
            handle.close()
            raise
    except BadFileError:
        raise  # check_footer's, already located (a ValueError too: not to be wrapped below)
    except FileNotFoundError as exc:
        link = is_local(filesystem) and os.path.islink(path)
        what = (f"a symbolic link to {os.readlink(path)}, which does not exist" if link
                else "the file no longer exists")
        raise BadFileError(path=path, problem=what, remedy="remove it from the dataset") from exc
    except PermissionError as exc:
        raise BadFileError(path=path, problem=f"permission denied ({exc.strerror or exc})",
                           remedy="make the file readable") from exc
    except (pa.ArrowException, OSError, ValueError) as exc:
        foreign = describe_foreign(_head(path, filesystem))
        if foreign is not None:
            problem = (f"not a Parquet file: it looks like {foreign}; l1stream reads Parquet files and Delta "
                       f"and Iceberg tables")
            remedy = "convert it to Parquet (pyarrow.csv or polars.read_csv, then write_parquet) or move it away"
        else:
            problem, remedy = f"not a readable Parquet file ({first_line(exc)})", "remove it from the dataset"
        raise BadFileError(path=path, problem=problem, remedy=remedy) from exc


_FOOTERS: dict = {}
"""Footers of remote files this process read, by path, size and version (ETag, generation): the
planner reads one for the schema and the scan's task on the same machine does not read it again."""
_FOOTERS_KEPT = 64


def _footer_key(path: str, handle) -> tuple:
    from l1stream.sources.discovery import file_version

    details = getattr(handle, "details", None) or {}
    return path, handle.size, file_version(details)


def _remember_footer(key: tuple, metadata) -> None:
    if not key[2]:  # no version to tell a rewritten file by: not kept
        return
    while len(_FOOTERS) >= _FOOTERS_KEPT:
        _FOOTERS.pop(next(iter(_FOOTERS)))
    _FOOTERS[key] = metadata


def _reader(source, dictionary_keys: tuple, footer: bytes | None = None, path: str = "",
            metadata=None) -> pq.ParquetFile:
    try:
        parquet = pq.ParquetFile(source, metadata=metadata, page_checksum_verification=True)
    except (pa.ArrowException, OSError, ValueError):
        parquet = _without_arrow_schema(source, footer, path) if metadata is None else None
        if parquet is None:
            raise
    names = _dictionary_columns(parquet, dictionary_keys) if dictionary_keys else []
    if not names:
        return parquet
    if hasattr(source, "seek"):
        source.seek(0)
    return pq.ParquetFile(source, metadata=parquet.metadata, read_dictionary=names, page_checksum_verification=True)


def _without_arrow_schema(source, footer: bytes | None, path: str) -> pq.ParquetFile | None:
    """A file pyarrow refuses only for its key-value metadata (a damaged ``ARROW:schema``: not base64,
    not a readable schema), opened from its Parquet schema alone, with a warning; else None.

    The values are the Parquet pages' whatever that metadata says (it only tells pyarrow which Arrow
    types to give the columns), and l1stream's own reader never looks at it: both paths give the same
    answer, this one says why it read on."""
    from l1stream.parquet.footer import without_key_values

    stripped = without_key_values(footer) if footer and b"ARROW:schema" in footer else None
    if stripped is None:
        return None
    try:
        meta = pq.ParquetFile(pa.BufferReader(b"PAR1" + stripped + len(stripped).to_bytes(4, "little") + b"PAR1"))
        if hasattr(source, "seek"):
            source.seek(0)
        parquet = pq.ParquetFile(source, metadata=meta.metadata, page_checksum_verification=True)
    except (pa.ArrowException, OSError, ValueError):
        return None
    log.warning("%s: its ARROW:schema metadata is damaged; read from the Parquet schema alone (the values are "
                "the pages'; rewrite the file to silence this)", path)
    return parquet


def _dictionary_columns(parquet: pq.ParquetFile, keys: tuple) -> list:
    """The string and binary columns among ``keys``: read as dictionary arrays, from the file's own
    dictionary pages, they need no hashing to split a chunk by."""
    schema = parquet.schema_arrow
    wanted = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
    return [k for k in keys if k in schema.names and any(test(schema.field(k).type) for test in wanted)]


def _head(path: str, filesystem, size: int = 4096) -> bytes:
    """The first bytes of a file (empty when they cannot be read)."""
    try:
        with (open(path, "rb") if is_local(filesystem) else filesystem.open(path, "rb")) as handle:
            return handle.read(size)
    except (OSError, ValueError):
        return b""


def _check_schema(schema: pa.Schema, path: str, spec: ScanSpec) -> None:
    missing = [c for c in spec.columns if c not in schema.names]
    if missing:
        raise SchemaError(f"{path}: no column {', '.join(map(repr, missing))}; this file has columns "
                          f"{', '.join(schema.names)}", path=path)
    for name in spec.value_columns:
        typ = schema.field(name).type
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        if not (pa.types.is_floating(typ) or pa.types.is_integer(typ) or pa.types.is_decimal(typ)
                or pa.types.is_null(typ)):
            raise SchemaError(f"{path}: column {name!r} has type {typ}; {NUMERIC_HINT}", path=path)


def _chunks(parquet: pq.ParquetFile, index: int, spec: ScanSpec, path: str, native=None, start: int = 0,
            stop: int | None = None):
    """``(offset, table)`` chunks of rows ``[start, stop)`` of a row group, from the page decoder or
    pyarrow; a row group whose columns hold fewer or more rows than its footer states is damaged
    (pyarrow alone would hand over what the pages hold)."""
    rows = parquet.metadata.row_group(index).num_rows
    stop = rows if stop is None else stop
    got = 0
    try:
        for offset, table in _row_group_tables(parquet, index, spec, native, start, stop, rows):
            got += table.num_rows
            yield offset, table
    except DataError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise BadFileError(path=path, problem=f"row group {index} cannot be decoded ({first_line(exc)}); the file "
                                              f"is probably truncated or corrupt", remedy="rewrite it") from exc
    if got != stop - start:
        raise BadFileError(path=path, problem=f"row group {index} holds {start + got:,} rows where the footer states "
                                              f"{rows:,}; the file is damaged", remedy="rewrite it")


def _row_group_tables(parquet: pq.ParquetFile, index: int, spec: ScanSpec, native, start: int, stop: int, rows: int):
    chunks = native.read(index, spec.chunk_rows, start, stop) if native is not None else None
    if chunks is not None:
        yield from chunks
        return
    if start == 0 and stop == rows and rows <= spec.chunk_rows:
        yield 0, parquet.read_row_group(index, columns=spec.columns)
        return
    yield from batches_between(parquet, index, spec.columns, spec.chunk_rows, start, stop)


def reduce_chunk(table: pa.Table, piece: Piece | FramePart, spec: ScanSpec, state: ScanState, report: FileReport,
                  row_group: int, offset: int) -> None:
    if table.num_rows == 0:
        return  # slices appear only when they have rows
    names = spec.names
    try:
        if spec.data_by and not spec.weight and not spec.baseline:
            fast = grouped_slices(table, spec, tuple(piece.partition.get(k) for k in spec.by))
            if fast is not None:
                for key, chunk in fast:
                    state.add_group_state(key, chunk)
                    report.add_state(chunk)
                return
        for key, part in slice_groups(table, piece, spec):
            weight = part[spec.weight] if spec.weight else None
            if spec.baseline:
                chunk, base = paired_chunk_states(part[spec.actual], part[spec.prediction], part[spec.baseline],
                                                  weight, nan_policy=spec.nan_policy,
                                                  names=(names[0], names[1], spec.baseline, names[2]))
                state.add_baseline_state(key, base)
            else:
                chunk = chunk_state(part[spec.actual], part[spec.prediction], weight,
                                    nan_policy=spec.nan_policy, names=names)
            state.add_group_state(key, chunk)
            report.add_state(chunk)
    except DataError as exc:
        where = piece.path if isinstance(piece, FramePart) else f"{piece.path}: row group {row_group}"
        if offset:
            where += f" (batch starting at row {offset})"
        if len(table) and spec.data_by or spec.row_expression is not None:
            where += " (row numbers count rows kept by the filters"
            where += ", within the slice)" if spec.data_by else ")"
        raise type(exc)(f"{where}: {exc.message}", path=piece.path) from exc
