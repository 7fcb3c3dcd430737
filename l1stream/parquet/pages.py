"""Read a row group's float64 columns with l1stream's own Parquet page decoder.

Decoding is most of the cost of an MAE over Parquet, and pyarrow's general reader spends
about twice the CPU per row of a decoder that does only what is needed.  For the columns
prediction logs are made of (flat ``DOUBLE``, required or optional; ``PLAIN``, dictionary
or ``BYTE_STREAM_SPLIT`` values; Snappy, zstd or no compression; page CRC-32 verified when the
writer stored one), :mod:`l1stream.parquet._pages` (C) decodes the raw column chunk instead.
Every other column, and every row group it cannot take, goes through pyarrow as before:
the table is the same either way (tests check it bit for bit).

A row group of at most ``chunk_rows`` rows is decoded whole; a larger one is streamed page
by page through a bounded window of file bytes per column.  Memory is bounded by what the file
holds, never by what it claims: a column chunk past the end of the file is corrupt, a page stating
more decoded bytes than its values can need is refused before anything is allocated, and a page
of more than ``chunk_rows`` values (and more than ``WHOLE_PAGE_VALUES``; one RLE run can state 2**27
in a few bytes) is not decoded whole: pyarrow, which decodes a page in batches, reads the rest of
that row group from the row where the page begins (the same rows either way, none twice).

A page the decoder finds corrupt is never trusted: the row group is read again with
pyarrow, whose error then names the problem (or whose data is used, with a warning,
should the two disagree).  When a streamed row group fails after chunks went out, the
job fails (naming the file) rather than count rows twice.  ``L1STREAM_NATIVE=0`` turns
the decoder off.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import numpy as np
import pyarrow as pa

from l1stream.errors import BadFileError
from l1stream.parquet import chunks
from l1stream.parquet.chunks import (  # noqa: F401 - native_decoder_enabled, importable from here as ever
    CODECS,
    WHOLE_PAGE_VALUES,
    chunk_range,
    coalesce,
    flat_doubles,
    lane,
    native_decoder_enabled,
)
from l1stream.storage import is_local

try:
    from l1stream.parquet import _pages
except ImportError:  # built without a C compiler: pyarrow reads everything
    _pages = None

log = logging.getLogger("l1stream")

DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3
WINDOW_BYTES = 8 << 20  # file bytes held per column while streaming a large row group
HEADER_BYTES = 64 << 10  # bytes read to parse a page header (DOUBLE statistics keep headers small)
_buffers = threading.local()  # per thread, reused from file to file: fresh ones cost page faults


class _Buffers:
    """Growable work buffers: raw column-chunk bytes, a decompressed page, a dictionary, outputs."""

    def __init__(self):
        self.chunk = bytearray(0)
        self.scratch = bytearray(0)
        self.dictionary = np.empty(0)
        self.values, self.valid = np.empty(0), np.empty(0, dtype=np.uint8)
        self.page_values, self.page_valid = np.empty(0), np.empty(0, dtype=np.uint8)

    @classmethod
    def mine(cls, slot: int, streaming: bool = False) -> "_Buffers":
        """This thread's buffers for the ``slot``-th column of a row group (decoded whole, or streamed)."""
        name = "streaming" if streaming else "slots"
        slots = getattr(_buffers, name, None)
        if slots is None:
            slots = []
            setattr(_buffers, name, slots)
        while len(slots) <= slot:
            slots.append(cls())
        return slots[slot]

    def page_for(self, count: int, max_level: int) -> tuple:
        """Recycled ``(values, valid)`` for one page decoded aside (one that straddles a chunk's end)."""
        if len(self.page_values) < count:
            self.page_values, self.page_valid = np.empty(count), np.empty(count, dtype=np.uint8)
        return self.page_values[:count], self.page_valid[:count] if max_level else None

    def dictionary_for(self, count: int) -> np.ndarray:
        if len(self.dictionary) < count:
            self.dictionary = np.empty(count)
        return self.dictionary[:count]

    def output_for(self, rows: int, max_level: int) -> tuple:
        """Recycled ``(values, valid)`` arrays for a row group's column."""
        if len(self.values) < rows:
            self.values, self.valid = np.empty(rows), np.empty(rows, dtype=np.uint8)
        return self.values[:rows], self.valid[:rows] if max_level else None

    def scratch_for(self, size: int) -> bytearray:
        if len(self.scratch) < size:
            self.scratch = bytearray(max(size, 1 << 20))
        return self.scratch


class NativeRowGroups:
    """Decode the flat DOUBLE columns of one open Parquet file's row groups.

    ``read(index, chunk_rows)`` returns the row group's ``(offset, table)`` chunks of at most
    ``chunk_rows`` rows, or ``None`` when pyarrow should read it.  A row group of at most
    ``chunk_rows`` rows is decoded whole (one list); a larger one is streamed page by page
    through a bounded window, so memory stays at about one chunk whatever the row group size.
    """

    def __init__(self, parquet, path: str, filesystem, columns: list, reuse: bool = False,
                 file_size: int | None = None, data: bytes | None = None):
        self.reuse = reuse  # the caller is done with a chunk before asking for the next: recycle arrays
        self.parquet = parquet
        self.path = path
        self.filesystem = filesystem
        self.columns = list(columns)
        self._size = file_size or None  # bytes in the file: what a column chunk may claim at most
        self._data = memoryview(data) if data is not None else None  # the whole file, fetched already
        self._fetched: dict = {}  # (start, size) -> bytes of column chunks fetched ahead (prefetch)
        if self._data is not None:
            self._size = len(self._data)
        self.leaf = flat_doubles(parquet.metadata, self.columns)
        self._file: Any = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def prefetch(self, row_groups, chunk_rows: int, limit: int = 256 << 20) -> None:
        """On object storage, fetch the column chunks of ``row_groups`` that will be decoded whole,
        all at once (``cat_ranges``: concurrent on s3fs, gcsfs, adlfs), if they total at most
        ``limit`` bytes; :meth:`read` then takes them from memory.  Locally, or over the limit,
        nothing is fetched ahead and each chunk is read when it is decoded."""
        if self._data is not None or is_local(self.filesystem) or not self.leaf:
            return
        ranges = []
        for index in row_groups:
            meta = self.parquet.metadata.row_group(index)
            if meta.num_rows == 0 or meta.num_rows > chunk_rows:
                continue  # streamed through a window: read page by page
            for position, _ in self.leaf.values():
                column = meta.column(position)
                if chunks.decodable(column, meta.num_rows):
                    ranges.append(chunk_range(column))
        ranges = sorted(set(ranges))
        if not ranges or sum(size for _, size in ranges) > limit:
            return
        if any(start < 0 or size < 0 or start + size > self._file_size() for start, size in ranges):
            return  # a claimed range the file cannot hold: _read reports it, chunk by chunk
        merged = coalesce(ranges)
        try:
            blobs = self.filesystem.cat_ranges([self.path] * len(merged), [s for s, _ in merged],
                                               [s + n for s, n in merged])
        except Exception:  # noqa: BLE001 - each chunk is read (and any error located) when decoded
            return
        for (begin, length), blob in zip(merged, blobs):
            if not isinstance(blob, bytes) or len(blob) != length:
                continue
            view = memoryview(blob)
            for start, size in ranges:
                if begin <= start and start + size <= begin + length:
                    self._fetched[(start, size)] = view[start - begin:start - begin + size]

    def read(self, index: int, chunk_rows: int, start: int = 0, stop: int | None = None):
        """Chunks of row group ``index``'s rows ``[start, stop)`` (default: all), or ``None``."""
        meta = self.parquet.metadata.row_group(index)
        native = {name: (position, level) for name, (position, level) in self.leaf.items()
                  if chunks.decodable(meta.column(position), meta.num_rows)}
        stop = meta.num_rows if stop is None else stop
        if not native or meta.num_rows == 0:
            return None
        if meta.num_rows > chunk_rows or (start, stop) != (0, meta.num_rows):
            return self._stream(index, native, chunk_rows, start, stop)
        try:
            arrays = dict(zip(native, self._decode_whole(meta, list(native.values()))))
        except _pages.Unsupported as exc:
            log.debug("%s: row group %d: pyarrow reads it (%s)", self.path, index, exc)
            return None
        except (_pages.Corrupt, ValueError, OSError) as exc:
            return [(0, self._reread(index, exc))]
        rest = [c for c in self.columns if c not in arrays]
        if rest:
            table = self.parquet.read_row_group(index, columns=rest)
            arrays.update((name, table[name]) for name in rest)
        return [(0, _table(arrays, self.columns))]

    def reduce_pair(self, index: int, names: tuple, consumer, chunk_rows: int, start: int = 0,
                    stop: int | None = None) -> str | None:
        """Hand rows ``[start, stop)`` of row group ``index``'s two columns ``names`` to ``consumer``
        (a capsule from :func:`~l1stream.exact.native.compiled_abs_diff_sum`) page by page, as
        they decode, with no row-group-sized arrays (``_lockstep.h``).

        Returns None when every row went, else why not: a page with nulls, a value that is not
        finite, a column or page the decoder does not take, damage.  The consumer has then taken
        some rows: the caller discards it and reads the row group the ordinary way (:meth:`read`),
        where every policy and error message lives.
        """
        meta = self.parquet.metadata.row_group(index)
        stop = meta.num_rows if stop is None else stop
        lanes, fetched = [], []
        for name in names:
            if name not in self.leaf:
                return f"column {name!r} is not a flat DOUBLE column"
            position, level = self.leaf[name]
            column = meta.column(position)
            if not chunks.decodable(column, meta.num_rows):
                return f"column {name!r}: {column.compression} or {column.encodings}"
            begin, size = chunk_range(column)
            if begin < 0 or size < 0 or begin + size > self._file_size():
                return "a column chunk claimed past the end of the file"
            source: Any
            if self._data is not None:  # the whole file, fetched already
                source = self._data[begin:begin + size]
            elif is_local(self.filesystem):  # read through a window, with pread
                if self._file is None:
                    self._file = open(self.path, "rb", buffering=0)
                source = self._file.fileno()
            elif (begin, size) in self._fetched:  # fetched ahead (prefetch); read() takes it if we decline
                source = self._fetched[(begin, size)]
                fetched.append((begin, size))
            else:
                return "a remote column chunk not fetched ahead"
            lanes.append(lane(column, level, source))
        try:
            why = _pages.reduce_pair(lanes, meta.num_rows, start, stop, max(chunk_rows, WHOLE_PAGE_VALUES), consumer)
        except OSError as exc:
            why = str(exc)
        if why is None:
            for key in fetched:
                self._fetched.pop(key, None)
        return why

    # -- internals ---------------------------------------------------------------

    def _decode_whole(self, meta, columns: list) -> list:
        """Whole column chunks in one C call per 8 columns (the first two of each decoded together)."""
        arrays = []
        for first in range(0, len(columns), 8):
            outputs, calls = [], []
            try:
                for slot, (position, level) in enumerate(columns[first:first + 8], start=first):
                    # one slot per column of the row group: a slot per group of 8 would hand the 9th
                    # column the 1st column's recycled output while that one is still in use
                    column, buffers = meta.column(position), _Buffers.mine(slot)
                    start, size = chunk_range(column)
                    output = _Output(meta.num_rows, level, buffers if self.reuse else None)
                    outputs.append(output)
                    calls.append((self._read(start, size, buffers.chunk), CODECS[column.compression], level,
                                  output.values, output.valid))
                nulls = _pages.decode_column_chunks(calls)
            finally:
                for call in calls:
                    call[0].release()
            arrays += [output.array(n) for output, n in zip(outputs, nulls)]
        return arrays

    def _stream(self, index: int, native: dict, chunk_rows: int, start: int, stop: int):
        """Chunks of rows ``[start, stop)`` of a row group: pages decoded one by one (those wholly
        before ``start`` skipped undecoded), re-cut into ``chunk_rows`` rows."""
        meta = self.parquet.metadata.row_group(index)
        rest = [c for c in self.columns if c not in native]
        batches = (batches_between(self.parquet, index, rest, chunk_rows, start, stop, exact=True)
                   if rest else None)
        # each column its own buffers (the columns advance together); recycled per thread when the
        # caller is done with a chunk before asking for the next
        columns = {name: _ColumnPages(self, meta.column(position), level,
                                      _Buffers.mine(slot, streaming=True) if self.reuse else _Buffers(),
                                      window=WINDOW_BYTES)
                   for slot, (name, (position, level)) in enumerate(native.items())}
        cutters = {name: _ChunkCutter(pages, meta.num_rows, max(chunk_rows, WHOLE_PAGE_VALUES), self.reuse)
                   for name, pages in columns.items()}
        offset = start
        try:
            for cutter in cutters.values():
                cutter.skip(start)
            while offset < stop:
                want = min(chunk_rows, stop - offset)
                arrays = {name: cutter.take(want, offset) for name, cutter in cutters.items()}
                if batches is not None:
                    _, batch = next(batches)
                    arrays.update((name, batch.column(name)) for name in rest)
                yield offset, _table(arrays, self.columns)
                offset += want
            if stop == meta.num_rows and any(pages.next_count() is not None for pages in columns.values()):
                raise _pages.Corrupt(f"column chunk holds more than the row group's {meta.num_rows} rows")
            for pages in columns.values():
                pages.close()
        except _HandOver as exc:
            for pages in columns.values():
                pages.close()
            log.debug("%s: row group %d: pyarrow reads it from row %d on (%s)", self.path, index, offset, exc)
            yield from batches_between(self.parquet, index, self.columns, chunk_rows, offset, stop)
        except (_pages.Corrupt, _pages.Unsupported, ValueError, OSError) as exc:
            # Chunks may already be counted: never fall back silently.  pyarrow names the damage
            # if it sees it too; otherwise the two decoders disagree, which the user must hear of.
            self.parquet.read_row_group(index, columns=self.columns)
            raise BadFileError(f"{self.path}: row group {index}: l1stream's page decoder failed ({exc}) where "
                               f"pyarrow reads the row group; set L1STREAM_NATIVE=0 to read it with pyarrow, "
                               f"and please report the file", path=self.path) from exc

    def _file_size(self) -> int:
        if self._size is None:
            self._size = (os.path.getsize(self.path) if is_local(self.filesystem)
                          else int(self.filesystem.size(self.path)))
        return self._size

    def _read(self, start: int, size: int, buffer: bytearray) -> memoryview:
        """File bytes [start, start + size) into ``buffer`` (grown as needed).

        A range the file cannot hold (a damaged or hostile footer claiming gigabytes) is corrupt
        before anything is allocated for it.
        """
        if start < 0 or size < 0 or start + size > self._file_size():
            raise _pages.Corrupt(f"a column chunk claimed at bytes [{start}, {start + size}) of a "
                                 f"{self._file_size()}-byte file")
        if self._data is not None:
            return self._data[start:start + size]
        fetched = self._fetched.pop((start, size), None)
        if fetched is not None:
            return fetched
        if len(buffer) < size:
            buffer.extend(bytearray(size - len(buffer)))
        view = memoryview(buffer)[:size]
        if is_local(self.filesystem):
            if self._file is None:
                self._file = open(self.path, "rb", buffering=0)
            got = os.preadv(self._file.fileno(), [view], start)
        else:
            data = self.filesystem.cat_file(self.path, start=start, end=start + size)
            got = len(data)
            view[:got] = data
        if got != size:
            raise _pages.Corrupt(f"column chunk at byte {start} runs past the end of the file")
        return view

    def _reread(self, index: int, exc: Exception) -> pa.Table:
        """The decoder found the row group corrupt: pyarrow's reading decides (and names the error)."""
        table = self.parquet.read_row_group(index, columns=self.columns)
        log.warning("%s: row group %d: l1stream's page decoder reported %s, but pyarrow reads it; using "
                    "pyarrow's values (please report this file)", self.path, index, exc)
        return table


class _ColumnPages:
    """The pages of one column chunk of a streamed row group, read through a window of file bytes.

    ``next_count()`` moves to the next data page (decoding a dictionary page and skipping
    index pages on the way) and returns its value count, or ``None`` at the end;
    ``decode(values, valid)`` then decodes it and returns its null count.
    """

    def __init__(self, owner: NativeRowGroups, column, max_level: int, buffers: _Buffers, window: int):
        self.owner = owner
        self.codec = CODECS[column.compression]
        self.max_level = max_level
        self.buffers = buffers
        start, size = chunk_range(column)
        self.position, self.end = start, start + size
        self.window_size = window
        self.view, self.view_start = memoryview(b""), start
        self.dictionary = None
        self.page: Any = None  # (kind, count, offset in view, uncompressed size, length) of the page peek found

    def _bytes(self, size: int) -> int:
        """Make file bytes [position, position + size) (clamped to the chunk) readable; their offset in the view."""
        size = min(size, self.end - self.position)
        if self.position + size > self.view_start + len(self.view) or self.position < self.view_start:
            self.close()  # a buffer with a live view cannot grow
            self.view_start = self.position
            self.view = self.owner._read(self.position, min(max(size, self.window_size), self.end - self.position),
                                         self.buffers.chunk)
        return self.position - self.view_start

    def close(self) -> None:
        self.view.release()
        self.view = memoryview(b"")

    def peek(self):
        """``(kind, count)`` of the next dictionary or data page (index pages skipped), or None at the end."""
        while self.page is None and self.position < self.end:
            at = self._bytes(HEADER_BYTES)
            kind, count, header, body, uncompressed = _pages.page_header(self.view, at)
            if kind in (DATA_PAGE, DATA_PAGE_V2, DICTIONARY_PAGE) and not _pages.plausible_page_size(
                    count, uncompressed, body, self.codec):
                raise _HandOver(f"a page stating {uncompressed:,} decoded bytes for {count:,} values")
            at = self._bytes(header + body)
            if kind in (DATA_PAGE, DATA_PAGE_V2, DICTIONARY_PAGE):
                self.page = (kind, count, at, uncompressed, header + body)
            else:
                self.position += header + body
        return self.page[:2] if self.page else None

    def call(self, values, valid) -> tuple:
        """:func:`decode_page`'s arguments for the peeked page (a dictionary page fills the dictionary)."""
        kind, count, at, uncompressed, _ = self.page
        dictionary = self.dictionary
        if kind == DICTIONARY_PAGE:
            if self.dictionary is not None:
                raise _pages.Corrupt("a second dictionary page")  # pyarrow allows one per column chunk
            values, valid, dictionary = self.buffers.dictionary_for(count), None, None
            self.dictionary = values
        return (self.view, at, self.codec, True, self.max_level, dictionary, values, valid,
                self.buffers.scratch_for(uncompressed))

    def done(self, after: int) -> None:
        """The peeked page is decoded; ``after`` is decode_page's next offset."""
        self.position = self.view_start + after
        self.page = None

    def next_count(self):
        """Move to the next data page (decoding a dictionary page on the way); its value count, or None."""
        while (page := self.peek()) is not None:
            if page[0] != DICTIONARY_PAGE:
                return page[1]
            self.done(_pages.decode_page(*self.call(None, None))[1])
        return None

    def skip(self) -> None:
        """Pass over the data page next_count found without decoding it."""
        self.position += self.page[4]
        self.page = None

    def decode(self, values: np.ndarray, valid) -> int:
        """Decode the data page next_count found; its null count."""
        nulls, after = _pages.decode_page(*self.call(values, valid))
        self.done(after)
        return nulls


class _Output:
    """One column's values for a whole row group (in recycled arrays when ``buffers`` are given:
    fresh ones cost page faults, which threads queue for)."""

    def __init__(self, rows: int, max_level: int, buffers: _Buffers | None = None):
        if buffers is None:
            self.values = np.empty(rows)
            self.valid = np.empty(rows, dtype=np.uint8) if max_level else None
        else:
            self.values, self.valid = buffers.output_for(rows, max_level)

    def array(self, nulls: int) -> pa.Array:
        return float64_array(self.values, self.valid if nulls else None)


class _ChunkCutter:
    """Cuts one column's pages into chunks of the rows asked for.

    A page that fits in the chunk is decoded straight into the chunk's array; one that straddles
    the chunk's end is decoded aside, its head copied in and its tail carried to the next chunk.
    Chunk arrays are recycled when ``reuse`` (the buffers are the column's own, per thread).
    """

    def __init__(self, pages: "_ColumnPages", rows: int, largest_page: int, reuse: bool):
        self.pages, self.rows, self.largest_page, self.reuse = pages, rows, largest_page, reuse
        self.carry: Any = None  # (values, valid or None) decoded but not yet handed out

    def skip(self, rows: int) -> None:
        """Pass over the first ``rows`` rows: whole pages undecoded, the page holding row ``rows`` decoded
        and carried from there (a piece that owns the rows of a row group from ``rows`` on)."""
        pages, level = self.pages, self.pages.max_level
        while rows:
            count = pages.next_count()
            if count is None or count > self.rows:
                raise _pages.Corrupt(f"column chunk ends before row {rows} of the row group's {self.rows}")
            if count <= rows:
                pages.skip()
                rows -= count
                continue
            if count > self.largest_page:
                raise _HandOver(f"a page of {count:,} values, above chunk_rows")
            page_values, page_valid = pages.buffers.page_for(count, level)
            pages.decode(page_values, page_valid)
            self.carry = (page_values[rows:], page_valid[rows:] if level else None)
            rows = 0

    def take(self, want: int, offset: int) -> pa.Array:
        pages, level = self.pages, self.pages.max_level
        if self.reuse:
            values, valid = pages.buffers.output_for(want, level)
        else:
            values, valid = np.empty(want), np.empty(want, dtype=np.uint8) if level else None
        filled, nulls = 0, 0
        if self.carry is not None:
            carried, carried_valid = self.carry
            n = min(len(carried), want)
            values[:n] = carried[:n]
            if valid is not None:
                valid[:n] = carried_valid[:n]
                nulls += n - int(np.count_nonzero(carried_valid[:n]))
            self.carry = (carried[n:], carried_valid[n:] if valid is not None else None) if n < len(carried) else None
            filled = n
        while filled < want:
            count = pages.next_count()
            if count is None:
                raise _pages.Corrupt(f"column chunk ends after {offset + filled} values; the row group has "
                                     f"{self.rows} rows")
            if count > self.rows - offset - filled:
                raise _pages.Corrupt(f"a page of {count} values, past the row group's {self.rows} rows")
            if count > self.largest_page:
                raise _HandOver(f"a page of {count:,} values, above chunk_rows")
            if count <= want - filled:
                nulls += pages.decode(values[filled:filled + count],
                                      valid[filled:filled + count] if valid is not None else None)
                filled += count
                continue
            page_values, page_valid = pages.buffers.page_for(count, level)
            nulls += pages.decode(page_values, page_valid)  # counted here, carried tail included
            head = want - filled
            values[filled:] = page_values[:head]
            if valid is not None:
                valid[filled:] = page_valid[:head]
            self.carry = (page_values[head:], page_valid[head:] if valid is not None else None)
            filled = want
        return float64_array(values, valid if nulls else None)  # nulls may count a carried tail's: harmless


def float64_array(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A float64 Arrow array over ``values`` (zero-copy), null where ``valid`` is 0.

    Built from buffers: ``pa.array(numpy)`` would first ask whether the input is a pandas
    object, which imports pandas (0.2 s) in a process that has no other use for it.

    Examples
    --------
    >>> import numpy as np
    >>> float64_array(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 1], dtype=np.uint8)).to_pylist()
    [1.0, None, 3.0]
    """
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid.astype(bool), bitorder="little"))
    return pa.Array.from_buffers(pa.float64(), len(values), [bitmap, pa.py_buffer(values)])


def _table(arrays: dict, names: list) -> pa.Table:
    return pa.Table.from_arrays([arrays[name] for name in names], names=list(names))


def batches_between(parquet, index: int, columns: list, chunk_rows: int, start: int, stop: int,
                    exact: bool = False):
    """``(offset, table)`` chunks of rows ``[start, stop)`` of row group ``index`` through pyarrow's batch
    reader (which decodes the rows before ``start`` too, and drops them here).  With ``exact``, chunks
    are exactly ``chunk_rows`` rows from ``start`` on (the last one shorter), to pair with the decoder's."""

    def batches():
        offset = 0
        for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=[index], columns=columns):
            low, high = max(start - offset, 0), min(stop - offset, batch.num_rows)
            offset += batch.num_rows
            if high > low:
                yield batch.slice(low, high - low)
            if offset >= stop:
                return

    offset = start
    if not exact:
        for batch in batches():
            yield offset, pa.Table.from_batches([batch])
            offset += batch.num_rows
        return
    pending, held = [], 0
    for batch in batches():
        pending.append(batch)
        held += batch.num_rows
        while held >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield offset, table.slice(0, chunk_rows)
            offset, held = offset + chunk_rows, held - chunk_rows
            pending = table.slice(chunk_rows).to_batches() if held else []
    if held:
        yield offset, pa.Table.from_batches(pending)


class _HandOver(Exception):
    """A streamed page the C decoder does not take whole: pyarrow reads on from the row it begins at."""
