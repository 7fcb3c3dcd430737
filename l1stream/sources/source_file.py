"""What every source yields for the engine: one data file with its partition values and version."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    """One data file: its path on the filesystem, size in bytes and raw partition values."""

    path: str
    size: int
    partition: tuple = ()  # ((key, raw string value or None), ...)
    version: str = ""  # what the store tells a rewritten file by: ETag / generation / mtime + inode
