"""What a scan task is given: pieces of files (or frames) and the spec of what to compute from them.

Pure data and the one rule of who reads which rows (:func:`my_row_ranges`); no numpy, no pyarrow:
the light path of a plain job (``engine/direct.py``) plans and reads with these alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from l1stream.parquet.chunks import splittable


@dataclass(frozen=True)
class Piece:
    """Row groups ``i`` of one file with ``i * splits // num_row_groups == split``."""

    path: str
    partition: dict = field(default_factory=dict)  # typed partition values
    split: int = 0
    splits: int = 1
    size: int = 0  # bytes of the whole file (part of the store identity)
    version: str = ""  # the file's version (see sources.file_version): part of the store identity
    stored: bool = False  # a state-store entry exists for this piece: load it instead of reading

    @property
    def identity(self) -> list:
        """What the state store keys this piece by: a rewritten file or a new split gets a new key."""
        return [self.path, self.size, self.version, self.split, self.splits]


@dataclass(frozen=True)
class FramePart:
    """A DataFrame partition standing in for a :class:`Piece`: one chunk, already in memory."""

    table: Any  # pyarrow.Table
    index: int
    partition: dict = field(default_factory=dict)
    name: str = ""  # what messages call it ("a pyarrow Table"); partition-<index> by default

    @property
    def path(self) -> str:
        return self.name or f"partition-{self.index}"


@dataclass(frozen=True)
class ScanSpec:
    """What to compute from each piece (everything a task needs besides the pieces)."""

    actual: str
    prediction: str
    weight: str | None = None
    by: tuple = ()
    partition_keys: tuple = ()
    row_expression: Any = None
    row_columns: tuple = ()
    nan_policy: str = "raise"
    on_bad_file: str = "raise"
    chunk_rows: int = 1 << 20
    row_comparisons: tuple = ()  # typed (column, op, value): row groups whose statistics exclude them are skipped
    baseline: str | None = None  # another model's prediction column, evaluated on the same rows
    extra_columns: tuple = ()  # read as well (a report's time column, say)
    filter_partition_keys: tuple = ()  # (key, arrow type): the row expression reads these partition keys

    @property
    def value_columns(self) -> tuple:
        return ((self.actual, self.prediction) + ((self.weight,) if self.weight else ())
                + ((self.baseline,) if self.baseline else ()))

    @property
    def names(self) -> tuple:
        """``(actual, prediction, weight)`` column names, as :func:`~l1stream.exact.state.chunk_state` reports them."""
        return (self.actual, self.prediction, self.weight or "weight")

    @property
    def data_by(self) -> tuple:
        return tuple(k for k in self.by if k not in self.partition_keys)

    @property
    def plain_pair(self) -> bool:
        """Only actual and prediction are read, every row counts (no filter), and slices are partition
        keys if any: the page decoder may hand rows straight to an exact sum, page by page."""
        return (self.weight is None and self.baseline is None and self.row_expression is None and not self.data_by
                and not self.row_columns and not self.extra_columns and not self.row_comparisons)

    @property
    def columns(self) -> list:
        return list(dict.fromkeys(self.value_columns + self.data_by + tuple(self.row_columns)
                                  + tuple(self.extra_columns)))


def my_row_ranges(meta, piece: Piece, columns) -> list:
    """``(row group, start, stop)``: the rows this piece owns, each row read by exactly one piece
    (``meta``: the file's footer, pyarrow's FileMetaData or l1stream's FooterMetadata).

    With at least as many row groups as pieces, piece ``s`` of ``k`` owns the whole row groups ``i``
    with ``i * k // R == s``.  With more pieces than row groups (a large file of few, huge row
    groups), row group ``r`` goes to the pieces ``s`` with ``s * R // k == r``, and when l1stream's
    page decoder can take all of its columns (decided from the file's metadata alone, so that every
    worker decides alike) they split its rows evenly, so one 10M-row row group uses every core;
    otherwise the first of them reads it whole.
    """
    count, k, s = meta.num_row_groups, piece.splits, piece.split
    if k <= count:
        return [(i, 0, meta.row_group(i).num_rows) for i in range(count) if i * k // count == s]
    r = s * count // k
    owners = [t for t in range(k) if t * count // k == r]
    rows = meta.row_group(r).num_rows
    if not splittable(meta, r, columns):
        return [(r, 0, rows)] if s == owners[0] else []
    j, n = s - owners[0], len(owners)
    start, stop = j * rows // n, (j + 1) * rows // n
    return [(r, start, stop)] if stop > start else []
