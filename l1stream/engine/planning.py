"""Plan tasks from discovered files: prune partitions, group small files, split large ones.

Planning needs only the listing (paths, sizes, partition values): no file is
opened on the client besides one footer for the schema, so planning is linear
in the number of files and cheap on object storage.  A large file is split into
``ceil(size / target_bytes)`` pieces; piece ``s`` of ``k`` takes the row groups
``i`` with ``i * k // num_row_groups == s``, so every row group is read by
exactly one task, whatever the file holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from l1stream.engine.pieces import Piece
from l1stream.sources.discovery import Discovery
from l1stream.sources.filters import BoundFilters

DEFAULT_TASK_BYTES = 64 << 20
"""Bytes of Parquet per task: small files are grouped up to this, larger ones split."""
MAX_FILES_PER_TASK = 256
MIN_SPLIT_BYTES = 4096
"""A file is never split into pieces smaller than this (row groups are larger in practice)."""


@dataclass
class Plan:
    """Tasks (each a list of :class:`Piece`) and what planning left out."""

    tasks: list
    files_selected: int
    files_pruned: int


def plan_tasks(discovery: Discovery, filters: BoundFilters, *, target_bytes: int = DEFAULT_TASK_BYTES,
               exclude: frozenset = frozenset()) -> Plan:
    """Group the files that pass the partition filters into tasks of about ``target_bytes``."""
    tasks: list = []
    current: list = []
    current_bytes = 0
    selected = pruned = 0
    for file in discovery.files:
        if file.path in exclude:
            continue
        values = discovery.partition_values(file)
        if not filters.keeps_partition(values):
            pruned += 1
            continue
        selected += 1
        splits = piece_splits(file.size, target_bytes)
        if splits > 1:
            tasks.extend([Piece(file.path, values, s, splits, file.size, file.version)]
                         for s in range(splits))
            continue
        if current and (current_bytes + file.size > target_bytes or len(current) >= MAX_FILES_PER_TASK):
            tasks.append(current)
            current, current_bytes = [], 0
        current.append(Piece(file.path, values, size=file.size, version=file.version))
        current_bytes += file.size
    if current:
        tasks.append(current)
    return Plan(tasks, selected, pruned)


def piece_splits(size: int, task_bytes: int) -> int:
    """How many pieces a file of ``size`` bytes is split into: one per ``task_bytes``, but never
    more than one per :data:`MIN_SPLIT_BYTES` (a tiny ``task_bytes`` must not make a million
    pieces of a small file; pieces beyond its row groups would read nothing).

    Examples
    --------
    >>> piece_splits(100 << 20, 64 << 20), piece_splits(50_000, 1), piece_splits(1000, 1)
    (2, 12, 1)
    """
    if size <= task_bytes:
        return 1
    return max(1, min(math.ceil(size / task_bytes), size // MIN_SPLIT_BYTES))


def regroup_with_store(tasks: list, stored: set, key_of) -> list:
    """Mark pieces whose state is in the store and move them to light tasks of their own.

    Tasks that still read data keep their grouping (by bytes); stored pieces go 32 to a
    task, since loading a state costs one small read.
    """
    from dataclasses import replace

    reading, loading = [], []
    for task in tasks:
        kept = []
        for piece in task:
            if key_of(piece) in stored:
                loading.append(replace(piece, stored=True))
            else:
                kept.append(piece)
        if kept:
            reading.append(kept)
    step = 32  # loads are small reads: spread them over the workers
    return reading + [loading[i:i + step] for i in range(0, len(loading), step)]
