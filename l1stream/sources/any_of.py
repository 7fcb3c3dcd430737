"""Filters beyond one AND list: pyarrow's OR-of-ANDs form and pyarrow ``Expression`` objects.

``[[("model", "==", "v1"), ("date", ">=", "2026-11-01")], [("model", "==", "v2")]]`` keeps the
rows of any group whose filters all hold (pyarrow's and pandas' "disjunctive normal form"); a
``pyarrow.compute.Expression`` keeps the rows it is true for.  Either may name partition keys:
those are then added to each chunk as constant columns before the expression is applied, so the
answer is the same as on a table that holds them.  Pruning stays exact: a file is skipped only
when no group's partition filters can match it (an Expression prunes nothing), and row-group
statistics are not used for these filters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from l1stream.errors import UsageError, first_line

if TYPE_CHECKING:
    import pyarrow as pa

def partition_type(kind: str):
    """The Arrow type of a partition key of ``kind`` (``int``, ``date``, ``string``).

    >>> str(partition_type("date"))
    'date32[day]'
    """
    import pyarrow as pa  # only with filters (a plain job imports no pyarrow)

    return {"int": pa.int64(), "date": pa.date32(), "string": pa.string()}[kind]


@dataclass(frozen=True)
class AnyOf:
    """Rows matching any group of filters (every filter of a group), or a pyarrow expression."""

    groups: tuple = ()  # tuples of l1stream.sources.filters.Filter
    expression: Any = None  # pyarrow.compute.Expression

    def __str__(self) -> str:
        if self.expression is not None:
            return str(self.expression)
        return " or ".join("(" + " and ".join(map(str, group)) + ")" for group in self.groups)

    @property
    def columns(self) -> tuple | None:
        """The columns the groups name; None for an expression (known only against a schema)."""
        if self.expression is not None:
            return None
        return tuple(dict.fromkeys(f.column for group in self.groups for f in group))


def is_expression(value) -> bool:
    return type(value).__name__ == "Expression" and type(value).__module__.startswith("pyarrow")


def is_any_of_groups(filters) -> bool:
    """True for pyarrow's OR-of-ANDs list: a list of lists, none of them one (column, op, value) filter."""
    if not isinstance(filters, list) or not filters or not all(isinstance(g, list) and g for g in filters):
        return False
    return not any(len(g) == 3 and isinstance(g[1], str) and isinstance(g[0], str) and " " not in g[0].strip()
                   and g[1].strip() in ("==", "=", "!=", "<", "<=", ">", ">=", "in", "not in") for g in filters)


@dataclass(frozen=True)
class BoundAnyOf:
    """An :class:`AnyOf` bound to a dataset."""

    expression: Any  # one pyarrow expression over data columns and partition keys
    columns: tuple  # data columns it reads
    partition_keys: tuple  # (key, arrow type): added to each chunk before filtering
    groups_partition: tuple | None  # per group, its typed partition filters (None: no pruning)


def bind_expression(expression, partition_types: dict, schema: pa.Schema | None) -> BoundAnyOf:
    """Check a pyarrow expression against the columns and partition keys and find what it reads
    (each name left out in turn from an empty table: the expression fails without the ones it uses)."""
    import pyarrow as pa

    fields = {name: partition_type(kind) for name, kind in partition_types.items()}
    if schema is not None:
        fields.update({f.name: f.type for f in schema if f.name not in fields})
    empty = pa.table({name: pa.array([], type=typ) for name, typ in fields.items()})
    try:
        empty.filter(expression)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise UsageError(f"filter expression {str(expression)!r} does not apply to this data ({first_line(exc)}); "
                         f"its columns "
                         f"and partition keys: {', '.join(fields) or 'none'}") from None
    used = [name for name in fields if not _applies(expression, empty.drop_columns([name]))]
    return BoundAnyOf(expression, tuple(n for n in used if n not in partition_types),
                      tuple((n, fields[n]) for n in used if n in partition_types), None)


def _applies(expression, table: pa.Table) -> bool:
    import pyarrow as pa

    try:
        table.filter(expression)
    except (pa.ArrowException, TypeError, ValueError):
        return False
    return True


def add_partition_columns(table: pa.Table, partition: dict, keys: tuple) -> pa.Table:
    """``table`` with each partition key of ``keys`` as a constant column (null where the file has none).

    Examples
    --------
    >>> import datetime as dt
    >>> import pyarrow as pa
    >>> t = add_partition_columns(pa.table({"x": [1.0, 2.0]}), {"date": dt.date(2026, 11, 2)},
    ...                           (("date", pa.date32()),))
    >>> t.column("date").to_pylist()
    [datetime.date(2026, 11, 2), datetime.date(2026, 11, 2)]
    """
    import pyarrow as pa

    for key, typ in keys:
        table = table.append_column(key, pa.array([partition.get(key)] * table.num_rows, type=typ))
    return table

