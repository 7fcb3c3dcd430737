"""Read a row group's float64 columns with l1stream's own Parquet page decoder.

pyarrow's reader spends most of its time in general machinery that an MAE does not need.
For the columns that prediction logs are made of (flat ``DOUBLE``, required or optional;
``PLAIN``, dictionary or ``BYTE_STREAM_SPLIT`` values; Snappy or no compression; page
CRC-32 verified when the writer stored one), :mod:`l1stream._pages` (C) decodes the raw
column chunk instead.  Every other column, and every row group it cannot take, goes
through pyarrow as before, so the result is the same table either way.

A page the decoder finds corrupt is never trusted: the row group is read again with
pyarrow, whose error then names the problem (or whose data is used, with a warning,
should the two disagree).  ``L1STREAM_NATIVE=0`` turns the decoder off.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np
import pyarrow as pa

from ._exact import native_enabled
from .sources import is_local

try:
    from . import _pages
except ImportError:  # built without a C compiler: pyarrow reads everything
    _pages = None

log = logging.getLogger("l1stream")

DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3
CODECS = {"UNCOMPRESSED": 0, "SNAPPY": 1}
ENCODINGS = frozenset({"PLAIN", "RLE", "PLAIN_DICTIONARY", "RLE_DICTIONARY", "BYTE_STREAM_SPLIT"})
_buffers = threading.local()  # per thread, reused from file to file: fresh ones cost page faults


class _Buffers:
    """Growable work buffers: the raw column chunk, a decompressed page, a dictionary."""

    def __init__(self):
        self.chunk = bytearray(0)
        self.scratch = bytearray(0)
        self.dictionary = np.empty(0)

    @classmethod
    def mine(cls) -> "_Buffers":
        buffers = getattr(_buffers, "value", None)
        if buffers is None:
            buffers = _buffers.value = cls()
        return buffers

    def chunk_view(self, size: int) -> memoryview:
        if len(self.chunk) < size:
            self.chunk = bytearray(size)
        return memoryview(self.chunk)[:size]

    def scratch_for(self, size: int) -> bytearray:
        if len(self.scratch) < size:
            self.scratch = bytearray(max(size, 1 << 20))
        return self.scratch

    def dictionary_for(self, count: int) -> np.ndarray:
        if len(self.dictionary) < count:
            self.dictionary = np.empty(count)
        return self.dictionary[:count]


def native_decoder_enabled() -> bool:
    """True when the C page decoder is built and not turned off by ``L1STREAM_NATIVE=0``."""
    return _pages is not None and native_enabled()


class NativeRowGroups:
    """Decode the flat DOUBLE columns of one open Parquet file's row groups.

    ``read(index, chunk_rows)`` returns the row group as a list of ``(offset, table)``
    chunks of at most ``chunk_rows`` rows, or ``None`` when pyarrow should read it.
    """

    def __init__(self, parquet, path: str, filesystem, columns: list):
        self.parquet = parquet
        self.path = path
        self.filesystem = filesystem
        self.columns = list(columns)
        schema = parquet.metadata.schema
        names = [schema.column(i).path for i in range(len(schema))]
        self.leaf = {}
        for name in self.columns:
            if name in names:
                leaf = schema.column(names.index(name))
                if (leaf.physical_type == "DOUBLE" and leaf.max_repetition_level == 0
                        and leaf.max_definition_level <= 1):
                    self.leaf[name] = (names.index(name), leaf.max_definition_level)
        self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self, index: int, chunk_rows: int):
        meta = self.parquet.metadata.row_group(index)
        native = {name: (position, level) for name, (position, level) in self.leaf.items()
                  if _decodable(meta.column(position))}
        if not native or meta.num_rows > chunk_rows:
            return None  # large row groups keep pyarrow's bounded batches
        try:
            arrays = {name: self._decode_column(meta.column(position), level, meta.num_rows)
                      for name, (position, level) in native.items()}
        except _pages.Unsupported as exc:
            log.debug("%s: row group %d: pyarrow reads it (%s)", self.path, index, exc)
            return None
        except (_pages.Corrupt, ValueError, OSError) as exc:
            return [(0, self._reread(index, exc))]
        rest = [c for c in self.columns if c not in arrays]
        if rest:
            table = self.parquet.read_row_group(index, columns=rest)
            arrays.update((name, table[name]) for name in rest)
        return [(0, pa.table({name: arrays[name] for name in self.columns}))]

    # -- internals ---------------------------------------------------------------

    def _decode_column(self, column, max_level: int, rows: int) -> pa.Array:
        buffers = _Buffers.mine()
        chunk = self._column_bytes(column, buffers)
        codec = CODECS[column.compression]
        values = np.empty(rows)
        valid = np.empty(rows, dtype=np.uint8) if max_level else None
        dictionary, position, offset, nulls = None, 0, 0, 0
        while offset < len(chunk):
            kind, count, _, _, uncompressed = _pages.page_header(chunk, offset)
            scratch = buffers.scratch_for(uncompressed)
            if kind == DICTIONARY_PAGE:
                dictionary = buffers.dictionary_for(count)
                _, offset = _pages.decode_page(chunk, offset, codec, True, max_level, None, dictionary, None, scratch)
                continue
            if kind not in (DATA_PAGE, DATA_PAGE_V2):
                _, offset = _pages.decode_page(chunk, offset, codec, True, max_level, None, values[:0], None,
                                               scratch)  # index pages: skipped
                continue
            if position + count > rows:
                raise _pages.Corrupt(f"column chunk holds more than the row group's {rows} rows")
            page_nulls, offset = _pages.decode_page(
                chunk, offset, codec, True, max_level, dictionary, values[position:position + count],
                valid[position:position + count] if valid is not None else None, scratch)
            nulls += page_nulls
            position += count
        if position != rows:
            raise _pages.Corrupt(f"column chunk holds {position} values; the row group has {rows} rows")
        if nulls:
            return pa.array(values, mask=valid == 0)
        return pa.array(values)

    def _column_bytes(self, column, buffers: _Buffers):
        start = column.data_page_offset
        if column.has_dictionary_page and column.dictionary_page_offset:
            start = min(start, column.dictionary_page_offset)
        size = column.total_compressed_size
        if is_local(self.filesystem):
            if self._file is None:
                self._file = open(self.path, "rb", buffering=0)
            data = buffers.chunk_view(size)
            got = os.preadv(self._file.fileno(), [data], start)
        else:
            data = self.filesystem.cat_file(self.path, start=start, end=start + size)
            got = len(data)
        if got != size:
            raise _pages.Corrupt(f"column chunk at byte {start} runs past the end of the file")
        return data

    def _reread(self, index: int, exc: Exception) -> pa.Table:
        """The decoder found the row group corrupt: pyarrow's reading decides (and names the error)."""
        table = self.parquet.read_row_group(index, columns=self.columns)
        log.warning("%s: row group %d: l1stream's page decoder reported %s, but pyarrow reads it; using "
                    "pyarrow's values (please report this file)", self.path, index, exc)
        return table


def _decodable(column) -> bool:
    return column.compression in CODECS and set(column.encodings) <= ENCODINGS
