"""Which column chunks l1stream's page decoder takes, and where their bytes are: from a footer alone.

Works on pyarrow's ``FileMetaData`` and on l1stream's own :class:`~l1stream.parquet.metadata.
FooterMetadata` alike (the same accessor names), and imports neither numpy nor pyarrow: a plain job
plans and reads through here without them (``engine/direct.py``).
"""

from __future__ import annotations

from l1stream.exact.native import native_enabled

try:
    from l1stream.parquet import _pages
except ImportError:  # built without a C compiler: pyarrow reads everything
    _pages = None

CODECS = {"UNCOMPRESSED": 0, "SNAPPY": 1, "ZSTD": 6}
# BIT_PACKED: parquet-mr (Spark) lists it in every chunk for levels it does not store (repetition levels
# of flat columns); stored definition levels are checked page by page (RLE only)
ENCODINGS = frozenset({"PLAIN", "RLE", "PLAIN_DICTIONARY", "RLE_DICTIONARY", "BYTE_STREAM_SPLIT", "BIT_PACKED"})
# a page of up to this many values decodes whole whatever chunk_rows says (1 MiB of doubles); a larger
# one, larger than chunk_rows too, goes to pyarrow's batch reader
WHOLE_PAGE_VALUES = 1 << 17


def native_decoder_enabled() -> bool:
    """True when the C page decoder is built and not turned off by ``L1STREAM_NATIVE=0``."""
    return _pages is not None and native_enabled()


def flat_doubles(metadata, names) -> dict:
    """``{name: (leaf position, max definition level)}`` for those of ``names`` that are flat DOUBLE
    columns (no repetition, at most one definition level): what the page decoder reads."""
    schema = metadata.schema
    paths = [schema.column(i).path for i in range(len(schema))]
    found = {}
    for name in names:
        if name in paths:
            leaf = schema.column(paths.index(name))
            if leaf.physical_type == "DOUBLE" and leaf.max_repetition_level == 0 and leaf.max_definition_level <= 1:
                found[name] = (paths.index(name), leaf.max_definition_level)
    return found


def decodable(column, rows: int) -> bool:
    """Whether the page decoder takes a flat column's chunk in a row group of ``rows`` rows.  The chunk's
    own type and value count too: a damaged footer may state another type than the schema's, or
    another count than the row group's (pyarrow's reading then decides, refusing or not)."""
    return (column.physical_type == "DOUBLE" and column.num_values == rows and column.compression in CODECS
            and set(column.encodings) <= ENCODINGS and not getattr(column, "external", False))


def splittable(metadata, index: int, columns) -> bool:
    """Whether the page decoder takes every one of ``columns`` in row group ``index``, from the
    file's metadata alone (whether the C parts are built here does not enter: a worker without
    them reads the same rows through pyarrow)."""
    leaves, group = flat_doubles(metadata, columns), metadata.row_group(index)
    return len(leaves) == len(set(columns)) and all(decodable(group.column(position), group.num_rows)
                                                    for position, _ in leaves.values())


def chunk_range(column) -> tuple:
    """``(start, size)`` in the file of a column chunk's pages (dictionary page first)."""
    start = column.data_page_offset
    if column.has_dictionary_page and column.dictionary_page_offset:
        start = min(start, column.dictionary_page_offset)
    return start, column.total_compressed_size


def lane(column, level: int, source) -> tuple:
    """One column's argument to ``_pages.reduce_pair``: its bytes' ``source`` (a file descriptor, or
    a buffer of exactly the chunk), where the chunk lies, its codec and definition level."""
    start, size = chunk_range(column)
    return (source, start, size, CODECS[column.compression], level)


def coalesce(ranges: list, gap: int = 1 << 20, largest: int = 16 << 20) -> list:
    """Sorted ``(start, size)`` ranges merged where at most ``gap`` bytes apart, each merged range at
    most ``largest`` bytes (so a big file is still fetched as several requests in flight).

    Examples
    --------
    >>> coalesce([(0, 10), (12, 5), (100, 5)], gap=4)
    [(0, 17), (100, 5)]
    >>> coalesce([(0, 10), (10, 10), (20, 10)], gap=0, largest=20)
    [(0, 20), (20, 10)]
    """
    out: list = []
    for start, size in ranges:
        if out:
            begin, length = out[-1]
            if start - (begin + length) <= gap and start + size - begin <= largest:
                out[-1] = (begin, max(length, start + size - begin))
                continue
        out.append((start, size))
    return out
