"""A Parquet file's footer read by l1stream's own C walk (``_metadata.h``), without pyarrow.

A plain job (two DOUBLE columns, no filter, slices by partition keys at most) needs of a footer
only the schema's leaves and, per row group, its rows and the two column chunks' places, codecs
and encodings: :func:`read_footer` gives those as a :class:`FooterMetadata` whose accessors are
named as pyarrow's (``row_group(i).column(j).data_page_offset``, ``schema.column(i).path``, ...),
so that the page decoder's checks read the same on either.  Anything the walk cannot read, or a
schema tree that does not add up, gives None: the caller then opens the file with pyarrow, whose
reading (or error) decides.  ``tests/test_metadata.py`` checks every field against pyarrow's own
reading on files from many writers and on the public corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

try:
    from l1stream.parquet._pages import file_metadata as _file_metadata
except ImportError:  # the optional C extension is not built: pyarrow reads every footer
    _file_metadata = None

TYPES = {0: "BOOLEAN", 1: "INT32", 2: "INT64", 3: "INT96", 4: "FLOAT", 5: "DOUBLE", 6: "BYTE_ARRAY",
         7: "FIXED_LEN_BYTE_ARRAY"}
# named as pyarrow names them: LZ4_RAW (7) is "LZ4", and the older LZ4 (5, Hadoop's framing) has no name
CODECS = {0: "UNCOMPRESSED", 1: "SNAPPY", 2: "GZIP", 3: "LZO", 4: "BROTLI", 6: "ZSTD", 7: "LZ4"}
ENCODINGS = {0: "PLAIN", 2: "PLAIN_DICTIONARY", 3: "RLE", 4: "BIT_PACKED", 5: "DELTA_BINARY_PACKED",
             6: "DELTA_LENGTH_BYTE_ARRAY", 7: "DELTA_BYTE_ARRAY", 8: "RLE_DICTIONARY", 9: "BYTE_STREAM_SPLIT"}
REQUIRED, OPTIONAL, REPEATED = 0, 1, 2


@dataclass(frozen=True)
class ColumnChunk:
    """A column chunk's metadata, named as pyarrow's ``ColumnChunkMetaData``."""

    physical_type: str
    compression: str
    encodings: tuple
    num_values: int
    data_page_offset: int
    dictionary_page_offset: int | None
    total_compressed_size: int
    external: bool  # its pages are in another file (``file_path``): l1stream's reader does not follow that

    @property
    def has_dictionary_page(self) -> bool:
        return self.dictionary_page_offset is not None


@dataclass(frozen=True)
class RowGroup:
    num_rows: int
    columns: tuple

    @property
    def num_columns(self) -> int:
        return len(self.columns)

    def column(self, index: int) -> ColumnChunk:
        return self.columns[index]


@dataclass(frozen=True)
class Leaf:
    """A leaf column of the schema, named as pyarrow's ``ColumnSchema``."""

    path: str
    physical_type: str
    max_definition_level: int
    max_repetition_level: int


@dataclass(frozen=True)
class Schema:
    leaves: tuple
    names: tuple  # the top-level fields, as pyarrow's ``schema_arrow.names``

    def __len__(self) -> int:
        return len(self.leaves)

    def column(self, index: int) -> Leaf:
        return self.leaves[index]


@dataclass(frozen=True)
class FooterMetadata:
    schema: Schema
    row_groups: tuple

    @property
    def num_row_groups(self) -> int:
        return len(self.row_groups)

    def row_group(self, index: int) -> RowGroup:
        return self.row_groups[index]


def read_footer(metadata: bytes) -> FooterMetadata | None:
    """A serialized FileMetaData (the bytes before a file's last 8) as :class:`FooterMetadata`, or
    None when the C walk is not built, cannot read it, or its schema does not add up."""
    if _file_metadata is None:
        return None
    raw = _file_metadata(metadata)
    if raw is None:
        return None
    schema = _schema(raw["elements"])
    if schema is None:
        return None
    groups = []
    for rows, chunks in raw["row_groups"]:
        if len(chunks) != len(schema.leaves) or any(chunk is None for chunk in chunks):
            return None  # a row group pyarrow reads differently, or encrypted column metadata
        groups.append(RowGroup(rows, tuple(
            ColumnChunk(TYPES.get(kind, "UNKNOWN"), CODECS.get(codec, "UNKNOWN"),
                        tuple(ENCODINGS.get(e, "UNKNOWN") for e in encodings), values, data_page,
                        dictionary_page, compressed, external)
            for kind, codec, encodings, values, data_page, dictionary_page, compressed, external in chunks)))
    return FooterMetadata(schema, tuple(groups))


def _schema(elements: list) -> Schema | None:
    """Leaves (paths, types, maximum levels) and top-level names from the depth-first element list;
    None for a tree that does not add up (more or fewer elements than it claims, no root)."""
    if not elements:
        return None
    try:
        names = [name.decode("utf-8") for name, _, _, _ in elements]
    except UnicodeDecodeError:
        return None
    leaves, top = [], []
    stack = [[elements[0][3], 0, 0, ()]]  # [children left, definition, repetition, path] per open group
    if stack[0][0] < 0:
        return None
    for name, (_, kind, repetition, children) in zip(names[1:], elements[1:]):
        while len(stack) > 1 and stack[-1][0] == 0:
            stack.pop()
        if stack[-1][0] <= 0:
            return None
        stack[-1][0] -= 1
        definition = stack[-1][1] + (repetition in (OPTIONAL, REPEATED))
        repeated = stack[-1][2] + (repetition == REPEATED)
        path = stack[-1][3] + (name,)
        if len(stack) == 1:
            top.append(name)
        if children > 0:
            stack.append([children, definition, repeated, path])
        elif children < 0:
            return None
        else:
            leaves.append(Leaf(".".join(path), TYPES.get(kind, "UNKNOWN"), definition, repeated))
    if any(left != 0 for left, _, _, _ in stack):
        return None
    return Schema(tuple(leaves), tuple(top))
