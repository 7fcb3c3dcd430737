"""Pieces summed straight from their pages: a plain job's scan, without numpy or pyarrow.

For a plain spec (actual and prediction only, no row filter, slices by partition keys at most) on
a local file, or one fetched whole already, the footer is read by l1stream's own walk
(:mod:`l1stream.parquet.metadata`) and each row range the piece owns goes through the page
decoder into an exact sum as its pages decode (``_pages.reduce_pair``).  Whatever is not so (a
column that is not a flat DOUBLE one, a chunk the decoder does not take, a page with nulls, a
value that is not finite, a footer the walk cannot read, a file that cannot be opened) makes
:func:`summed_piece` return None, and the piece is scanned the ordinary way
(:func:`l1stream.engine.scan.scan_piece`, with pyarrow), where every policy, message and fallback
lives.  A piece is summed whole or not at all: no row is counted twice.
"""

from __future__ import annotations

import logging
import os

from l1stream.engine.pieces import FramePart, Piece, ScanSpec, my_row_ranges
from l1stream.engine.scan_state import FileReport, ScanState
from l1stream.exact.l1state import state_of_units
from l1stream.exact.native import compiled_abs_diff_sum, native_enabled
from l1stream.parquet.chunks import WHOLE_PAGE_VALUES, chunk_range, decodable, flat_doubles, lane
from l1stream.parquet.footer import TAIL_BYTES, check_footer
from l1stream.parquet.metadata import read_footer
from l1stream.storage import is_local

try:
    from l1stream.parquet import _pages
except ImportError:  # built without a C compiler
    _pages = None

log = logging.getLogger("l1stream")


def summed_piece(piece, spec: ScanSpec, filesystem, data: bytes | None = None) -> ScanState | None:
    """The piece's :class:`ScanState`, summed as its pages decode, or None (scan it the ordinary way).

    Raises :class:`~l1stream.errors.BadFileError` for a footer pyarrow would abort on (as opening
    the file the ordinary way would)."""
    state, report = ScanState.empty(), FileReport()
    key = tuple(piece.partition.get(k) for k in spec.by)

    def consumer(index: int, start: int, stop: int):
        total = compiled_abs_diff_sum()
        return total.consumer(), lambda: total

    def taken(index: int, start: int, stop: int, total) -> None:
        chunk = state_of_units(total.units(), total.rows)
        state.add_group_state(key, chunk)
        report.add_state(chunk)

    fed = feed_piece(piece, spec, filesystem, data, consumer, taken)
    if fed is None:
        return None
    report.row_groups, report.rows_scanned = fed
    state.files[piece.path] = report
    return state


def feed_piece(piece, spec: ScanSpec, filesystem, data, consumer, taken) -> tuple | None:
    """Hand each row range the piece owns to a consumer through the page decoder.

    ``consumer(index, start, stop)`` returns ``(capsule, result)`` for a range (a fresh consumer,
    or one that goes on across ranges); once all its rows went, ``taken(index, start, stop,
    result())`` is called.  Returns ``(row groups, rows)`` of the piece, or None when anything is
    not for the page decoder (see the module doc): the caller discards what its consumers took.
    """
    if (isinstance(piece, FramePart) or not spec.plain_pair or _pages is None or not native_enabled()
            or compiled_abs_diff_sum() is None or (data is None and not is_local(filesystem))):
        return None
    if data is not None:
        return _feed(piece, spec, memoryview(data), len(data), consumer, taken)
    try:
        fd = os.open(piece.path, os.O_RDONLY)
    except OSError:
        return None  # the ordinary path says why (a missing file, a dangling link, permissions)
    try:
        return _feed(piece, spec, fd, os.fstat(fd).st_size, consumer, taken)
    except OSError:
        return None
    finally:
        os.close(fd)


def local_footer(path: str):
    """A local file's footer as :class:`~l1stream.parquet.metadata.FooterMetadata`, or None (not
    readable here, or a footer pyarrow would abort on: the ordinary path says which)."""
    from l1stream.errors import BadFileError

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _footer(path, fd, os.fstat(fd).st_size)
    except (OSError, BadFileError):
        return None
    finally:
        os.close(fd)


def remote_footer(file, filesystem):
    """The footer of a small remote file (:data:`~l1stream.engine.remote.SMALL_FILE_BYTES` at most),
    fetched whole in one GET, as :func:`local_footer` gives it; None for a larger file, or one not
    readable here (the ordinary path says why)."""
    from l1stream.engine.remote import fetch_for_planning
    from l1stream.errors import BadFileError

    data = fetch_for_planning(file, filesystem)
    if data is None:
        return None
    try:
        return _footer(file.path, memoryview(data), file.size)
    except BadFileError:
        return None


def _footer(path: str, source, size: int):
    """The footer of ``source`` (a file descriptor, or the whole file in memory), checked as the
    ordinary path checks it (:func:`~l1stream.parquet.footer.check_footer`), or None."""
    def tail(n: int) -> bytes:
        n = min(size, n)
        return bytes(source[size - n:]) if isinstance(source, memoryview) else os.pread(source, n, size - n)

    end = tail(TAIL_BYTES)
    check_footer(end, path, tail)
    if len(end) < 12 or end[-4:] != b"PAR1":
        return None
    length = int.from_bytes(end[-8:-4], "little")
    if length <= 0 or length + 8 > size:
        return None
    return read_footer(end[-8 - length:-8] if length + 8 <= len(end) else tail(length + 8)[:length])


def _feed(piece: Piece, spec: ScanSpec, source, size: int, consumer, taken) -> tuple | None:
    meta = _footer(piece.path, source, size)
    if meta is None:
        return None
    names = (spec.actual, spec.prediction)
    leaves = flat_doubles(meta, names)
    if len(leaves) != 2:
        return None  # missing or not flat DOUBLE: the ordinary path reads (or refuses) them
    row_groups = rows = 0
    for index, start, stop in my_row_ranges(meta, piece, spec.columns):
        group = meta.row_group(index)
        row_groups += start == 0
        if stop == start:
            continue
        lanes = []
        for name in names:
            position, level = leaves[name]
            column = group.column(position)
            begin, length = chunk_range(column)
            if not decodable(column, group.num_rows) or begin < 0 or length < 0 or begin + length > size:
                return None
            lanes.append(lane(column, level, source[begin:begin + length] if isinstance(source, memoryview)
                              else source))
        capsule, result = consumer(index, start, stop)
        why = _pages.reduce_pair(lanes, group.num_rows, start, stop, max(spec.chunk_rows, WHOLE_PAGE_VALUES), capsule)
        if why is not None:
            log.debug("%s: row group %d: read the ordinary way (%s)", piece.path, index, why)
            return None
        taken(index, start, stop, result())
        rows += stop - start
    return row_groups, rows
