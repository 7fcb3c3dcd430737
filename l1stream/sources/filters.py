"""Row and partition filters: ``date>=2026-11-10``, ``model==v2``, ``segment in a,b``.

A filter is parsed once (:func:`parse_filters`), then bound to the dataset's
partition keys and column types (:func:`bind_filters`) before any work is
scheduled: an unknown column or a value of the wrong type fails there.  Filters
on partition keys prune whole files at planning time; filters on data columns
become one pyarrow expression applied to every chunk read.  Nulls never match
(SQL semantics).
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from l1stream.errors import UsageError, did_you_mean
from l1stream.sources.any_of import AnyOf, BoundAnyOf, bind_expression, is_any_of_groups, is_expression, partition_type

if TYPE_CHECKING:
    import pyarrow as pa

OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "in", "not in")
_PATTERN = re.compile(r"^\s*([^\s=!<>]+?)\s*(==|!=|<=|>=|=|<|>|\s+not\s+in\s+|\s+in\s+)\s*(.*?)\s*$", re.S)
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Filter:
    """One comparison ``column op value`` (``value`` is a tuple for ``in``/``not in``)."""

    column: str
    op: str
    value: Any

    def __str__(self) -> str:
        value = ",".join(map(str, self.value)) if self.op in ("in", "not in") else self.value
        sep = " " if self.op in ("in", "not in") else ""
        return f"{self.column}{sep}{self.op}{sep}{value}"


def parse_filters(filters) -> list:
    """Normalise filters given as strings, ``(column, op, value)`` tuples, or a list of them.

    Examples
    --------
    >>> [str(f) for f in parse_filters(["date>=2026-11-10", ("model", "in", ["v1", "v2"])])]
    ['date>=2026-11-10', 'model in v1,v2']
    >>> parse_filters("model ~ v2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    l1stream.errors.UsageError: cannot parse filter 'model ~ v2': expected COLUMN OP VALUE with OP one of ...
    """
    if filters is None:
        return []
    if is_expression(filters):
        return [AnyOf(expression=filters)]
    if is_any_of_groups(filters):  # pyarrow's OR of ANDs: [[f, f], [f]]
        groups = tuple(tuple(_parse_one(f) for f in group) for group in filters)
        return list(groups[0]) if len(groups) == 1 else [AnyOf(groups)]
    if isinstance(filters, (str, Filter, AnyOf)) or (isinstance(filters, tuple) and len(filters) == 3
                                                     and isinstance(filters[1], str)
                                                     and filters[1].strip() in _ALL_OPS):
        filters = [filters]
    return [_parse_one(f) for f in filters]


def filter_columns(filters) -> list | None:
    """Every column or key the filters name; None when one is an expression (known from a schema)."""
    names: list = []
    for f in filters:
        columns = getattr(f, "columns", (f.column,) if isinstance(f, Filter) else None)
        if columns is None:
            return None
        names += columns
    return list(dict.fromkeys(names))


_ALL_OPS = set(OPERATORS) | {"="}


def _parse_one(spec):
    if isinstance(spec, (Filter, AnyOf)):
        return spec
    if is_expression(spec):
        return AnyOf(expression=spec)
    if isinstance(spec, str):
        match = _PATTERN.match(spec)
        if not match or not match.group(3):
            raise UsageError(f"cannot parse filter {spec!r}: expected COLUMN OP VALUE with OP one of "
                             f"{', '.join(OPERATORS)} (e.g. 'date>=2026-11-10', 'model==v2', 'segment in a,b')")
        column, op, value = match.group(1), " ".join(match.group(2).split()), match.group(3)
        if op in ("in", "not in"):
            value = tuple(v.strip() for v in value.split(","))
        return Filter(column, "==" if op == "=" else op, value)
    if isinstance(spec, (tuple, list)) and len(spec) == 3:
        column, op, value = spec
        op = " ".join(str(op).split())
        if op == "=":
            op = "=="
        if op not in OPERATORS:
            raise UsageError(f"filter {tuple(spec)!r}: operator must be one of {', '.join(OPERATORS)}; got {op!r}")
        if op in ("in", "not in"):
            value = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
        return Filter(str(column), op, value)
    raise UsageError(f"a filter is a string like 'model==v2', a (column, op, value) tuple, a list of them (all "
                     f"must hold), a list of such lists (any may hold) or a pyarrow expression; got {spec!r}")


@dataclass(frozen=True)
class BoundFilters:
    """Filters bound to a dataset: typed partition filters and one row expression."""

    partition: tuple  # ((key, op, typed value), ...)
    row_expression: Any  # pyarrow.compute.Expression or None
    row_columns: tuple  # data columns the row expression reads
    text: tuple  # the filters as written, for messages
    row_comparisons: tuple = ()  # ((column, op, typed value), ...): row-group pruning by statistics
    alternatives: tuple = ()  # per OR-of-ANDs filter, each group's typed partition filters (None: no pruning)
    partition_keys: tuple = ()  # (key, arrow type) the row expression reads: added to chunks before filtering

    def keeps_partition(self, values: dict) -> bool:
        """True if a file with these typed partition values may hold matching rows."""
        if not all(_matches(values.get(key), op, value) for key, op, value in self.partition):
            return False
        return all(groups is None or any(all(_matches(values.get(key), op, value) for key, op, value in group)
                                         for group in groups) for groups in self.alternatives)

    @property
    def signature(self) -> str | None:
        """The row expression as text when OR-of-ANDs or expression filters shape it (for the state
        store: row comparisons alone do not describe it)."""
        return str(self.row_expression) if self.alternatives else None


def bind_filters(filters: list[Filter], partition_types: dict, schema: pa.Schema | None,
                 partition_values=None) -> BoundFilters:
    """Type every filter value against its column; raise :class:`UsageError` on a mismatch.

    ``partition_values(key)``, when given, returns the raw values of a partition key: an error
    about a key's type then names the values that made it so.
    """
    partition: list = []
    expressions: list = []
    columns: list = []
    comparisons: list = []
    alternatives: list = []
    keys: list = []
    if filters:
        import pyarrow as pa  # only with filters (a plain job imports no pyarrow)
    for f in filters:
        if isinstance(f, AnyOf):
            bound = _bind_any_of(f, partition_types, schema, partition_values)
            expressions.append(bound.expression)
            columns += bound.columns
            keys += bound.partition_keys
            alternatives.append(bound.groups_partition)
        elif f.column in partition_types:
            kind = partition_types[f.column]
            if kind != "date" and _relative_date(f):
                raise UsageError(_relative_on_non_dates(f, kind, partition_values))
            value = _coerce_many(f, lambda v, kind=kind, f=f: _partition_value(v, kind, f))
            partition.append((f.column, f.op, value))
        elif schema is not None and f.column in schema.names:
            typ = _value_type(schema.field(f.column).type)
            value = _coerce_many(f, lambda v, typ=typ, f=f: _column_value(v, typ, f))
            import pyarrow.compute as pc  # here: 45 ms of start-up that a run without row filters never needs

            field = pc.field(f.column)
            if f.op == "in":
                expr = field.isin(list(value))
            elif f.op == "not in":
                expr = ~field.isin(list(value)) & field.is_valid()
            else:
                expr = _COMPARE[f.op](field, pa.scalar(value, type=typ))
            expressions.append(expr)
            columns.append(f.column)
            comparisons.append((f.column, f.op, value))
        else:
            known = sorted(partition_types) + (list(schema.names) if schema is not None else [])
            raise UsageError(f"filter {str(f)!r} names column {f.column!r}, which is neither a partition key nor "
                             f"a column{did_you_mean(f.column, known)}; available: {', '.join(known) or 'none'}")
    expression = None
    for expr in expressions:
        expression = expr if expression is None else expression & expr
    return BoundFilters(tuple(partition), expression, tuple(dict.fromkeys(columns)), tuple(str(f) for f in filters),
                        tuple(comparisons), tuple(alternatives), tuple(dict.fromkeys(keys)))


def _bind_any_of(any_of: AnyOf, partition_types: dict, schema, partition_values=None) -> BoundAnyOf:
    """Bind an OR of AND groups (each group as :func:`bind_filters` binds an AND list) or an expression."""
    import pyarrow.compute as pc

    if any_of.expression is not None:
        return bind_expression(any_of.expression, partition_types, schema)
    expression = None
    columns: list = []
    key_names: list = []
    partitions: list = []
    for group in any_of.groups:
        bound = bind_filters(list(group), partition_types, schema, partition_values)
        group_expression = pc.scalar(True)
        for key, op, value in bound.partition:
            group_expression = group_expression & partition_expression(key, op, value)
        if bound.row_expression is not None:
            group_expression = group_expression & bound.row_expression
        expression = group_expression if expression is None else expression | group_expression
        columns += bound.row_columns
        key_names += [key for key, _, _ in bound.partition]
        partitions.append(bound.partition)
    keys = tuple((k, partition_type(partition_types[k])) for k in dict.fromkeys(key_names))
    return BoundAnyOf(expression, tuple(dict.fromkeys(columns)), keys, tuple(partitions))


def partition_expression(key: str, op: str, value):
    """A typed partition filter as a pyarrow expression over a column named ``key``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    field = pc.field(key)
    if op == "in":
        return field.isin(list(value))
    if op == "not in":
        return ~field.isin(list(value)) & field.is_valid()
    return _COMPARE[op](field, pa.scalar(value))


def statistics_may_match(minimum, maximum, op: str, value) -> bool:
    """False only when no value in ``[minimum, maximum]`` can satisfy ``op value``.

    Examples
    --------
    >>> statistics_may_match(1, 5, ">", 5), statistics_may_match(1, 5, ">=", 5)
    (False, True)
    >>> statistics_may_match("a", "c", "in", ("x", "b"))
    True
    """
    try:
        if op == "==":
            return minimum <= value <= maximum
        if op == "!=":
            return not (minimum == maximum == value)
        if op == "<":
            return minimum < value
        if op == "<=":
            return minimum <= value
        if op == ">":
            return maximum > value
        if op == ">=":
            return maximum >= value
        if op == "in":
            return any(minimum <= v <= maximum for v in value)
        if op == "not in":
            return not (minimum == maximum and minimum in value)
    except TypeError:  # statistics of a type we cannot compare: keep the row group
        return True
    return True


_RELATIVE_DATE = re.compile(r"^today(?:([+-])(\d+)d)?$")


def date_value(value, today: dt.date | None = None) -> dt.date:
    """A date from ``YYYY-MM-DD``, or relative to today in UTC: ``today``, ``today-90d``, ``today+1d``.

    Relative dates keep a nightly trailing window in a static config: ``date>=today-90d``.
    ``today`` (default: the current UTC date) is what relative dates count from.

    Examples
    --------
    >>> date_value("2026-11-10")
    datetime.date(2026, 11, 10)
    >>> date_value("today-1d", today=dt.date(2026, 12, 1))
    datetime.date(2026, 11, 30)
    >>> date_value("today+31d", today=dt.date(2026, 12, 1))
    datetime.date(2027, 1, 1)
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    match = _RELATIVE_DATE.match(text)
    if match:
        today = today or dt.datetime.now(dt.timezone.utc).date()
        days = int(match.group(2) or 0) * (-1 if match.group(1) == "-" else 1)
        return today + dt.timedelta(days=days)
    return dt.date.fromisoformat(text)


def _coerce_many(f: Filter, convert):
    if f.op in ("in", "not in"):
        return tuple(convert(v) for v in f.value)
    return convert(f.value)


def _matches(actual, op: str, value) -> bool:
    if actual is None:
        return False
    if op == "in":
        return actual in value
    if op == "not in":
        return actual not in value
    return _COMPARE[op](actual, value)


def _relative_date(f: Filter) -> bool:
    values = f.value if f.op in ("in", "not in") else (f.value,)
    return any(isinstance(v, str) and _RELATIVE_DATE.match(v.strip()) for v in values)


def _relative_on_non_dates(f: Filter, kind: str, partition_values) -> str:
    """The message for ``date<=today`` on a key whose values are not all dates."""
    message = (f"filter {str(f)!r}: a relative date (today, today-30d) needs a partition key of dates, but "
               f"{f.column!r} holds {_KIND_TEXT[kind]}")
    if partition_values is not None:
        odd = sorted(v for v in partition_values(f.column) if not _is_iso_date(v))
        if odd:
            shown = ", ".join(repr(v) for v in odd[:5]) + (f" and {len(odd) - 5} more" if len(odd) > 5 else "")
            message += f": these values are not dates (YYYY-MM-DD): {shown}"
    return message + "; move or rename those directories, or filter with an explicit date"


def _is_iso_date(text: str) -> bool:
    try:
        return len(text) == 10 and dt.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _partition_value(value, kind: str, f: Filter):
    try:
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError
            return int(value)
        if kind == "date":
            return date_value(value)
        return str(value)
    except ValueError:
        raise UsageError(f"filter {str(f)!r}: partition key {f.column!r} holds {_KIND_TEXT[kind]}; "
                         f"{value!r} is not one") from None


_KIND_TEXT = {"int": "integers", "date": "dates (YYYY-MM-DD, or today, today-90d)", "string": "strings"}


def _value_type(typ: pa.DataType) -> pa.DataType:
    """The type a filter value is compared as: a dictionary (pandas category) column's value type.

    Examples
    --------
    >>> import pyarrow as pa
    >>> _value_type(pa.dictionary(pa.int32(), pa.string()))
    DataType(string)
    >>> _value_type(pa.float64())
    DataType(double)
    """
    import pyarrow as pa

    return typ.value_type if pa.types.is_dictionary(typ) else typ


def _column_value(value, typ: pa.DataType, f: Filter):
    import pyarrow as pa

    try:
        if pa.types.is_integer(typ):
            if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if pa.types.is_floating(typ):
            return float(value)
        if pa.types.is_decimal(typ):
            return Decimal(str(value))
        if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
            return str(value)
        if pa.types.is_boolean(typ):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
        if pa.types.is_date(typ):
            return date_value(value)
        if pa.types.is_timestamp(typ):
            return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    except (ValueError, TypeError, InvalidOperation):
        raise UsageError(f"filter {str(f)!r}: column {f.column!r} has type {typ}; {value!r} is not a value of "
                         f"that type") from None
    raise UsageError(f"filter {str(f)!r}: cannot filter on column {f.column!r} of type {typ}")
