"""Hive-style partition directories: ``key=value`` names, hidden names, and the type of a key.

A key is ``int`` when every value is an integer, ``date`` when every value is ``YYYY-MM-DD``,
else ``string``; ``__HIVE_DEFAULT_PARTITION__`` is null.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import unquote

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_INT = re.compile(r"[+-]?\d+\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def is_ignored_name(name: str) -> bool:
    """True for names Spark/Hive treat as hidden or temporary.

    Examples
    --------
    >>> [is_ignored_name(n) for n in ["_SUCCESS", ".part-0.crc", "x.tmp", "part-0.parquet"]]
    [True, True, True, False]
    """
    return name.startswith(("_", ".")) or name.endswith((".crc", ".tmp"))


def hive_pair(segment: str):
    """``(key, value)`` of a ``key=value`` directory name, unquoted; the Hive null is None."""
    key, _, value = segment.partition("=")
    value = unquote(value)
    return unquote(key), (None if value == HIVE_NULL else value)


def infer_partition_types(files, more: dict | None = None) -> dict:
    """``{key: 'int' | 'date' | 'string'}`` from the partition values of ``files`` (see the module),
    and the raw values of ``more`` (``{key: values}``: those of directories not listed)."""
    values: dict[str, set] = {key: set(vals) for key, vals in (more or {}).items()}
    for f in files:
        for key, value in f.partition:
            values.setdefault(key, set()).add(value)
    return {key: value_type(vals) for key, vals in values.items()}


def value_type(values) -> str:
    """The type of a partition key holding the raw ``values`` (None, the Hive null, fits any type).

    >>> value_type(["2026-11-01", None]), value_type(["7", "-3"]), value_type(["7", "eu"]), value_type([])
    ('date', 'int', 'string', 'string')
    """
    present = [v for v in values if v is not None]
    if present and all(_INT.match(v) for v in present):
        return "int"
    if present and all(_DATE.match(v) and _is_date(v) for v in present):
        return "date"
    return "string"


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def typed_value(value, kind: str):
    """A raw partition value as the type of its key (None stays None)."""
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    return value
