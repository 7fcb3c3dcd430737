"""Turn one input column (numpy, pyarrow, pandas, list) into an exact numeric form.

Three forms, chosen per column and per chunk:

``float``   float64 values: float64/32/16 columns, and integers that fit in 53 bits
            (converted exactly).  The fast path.
``int64``   int64 values beyond 2**53 (and uint64 below 2**63): summed as integers.
``object``  Python ints and Fractions: decimals, uint64 beyond 2**63, and any mix
            that no faster form holds exactly.  Correct, but ~1 us per row.

Nulls are returned as a separate mask, never as NaN, so that the left-out
counts can tell null from NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pyarrow as pa

from l1stream.errors import SchemaError, UsageError

FLOAT, INT64, OBJECT = "float", "int64", "object"
_EXACT_INT_LIMIT = 1 << 53
_NUMERIC_HINT = "expected a numeric column (float, integer or decimal)"


@dataclass
class NumericColumn:
    """A column in exact numeric form (see module doc), with its null mask."""

    kind: str
    values: np.ndarray
    null: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def as_objects(self) -> np.ndarray:
        """The values as exact Python numbers (ints or Fractions), nulls as 0."""
        if self.kind == OBJECT:
            return self.values
        if self.kind == INT64:
            return self.values.astype(object)
        out = np.empty(len(self), dtype=object)
        out[:] = [Fraction(v) if np.isfinite(v) else v for v in self.values.tolist()]
        return out


def as_numeric(data, name: str) -> NumericColumn:
    """Convert ``data`` to a :class:`NumericColumn` (one already converted is returned as is),
    or raise a :class:`SchemaError`.

    Examples
    --------
    >>> import pyarrow as pa
    >>> col = as_numeric(pa.array([1, None, 3], pa.int32()), "actual")
    >>> col.kind, col.values.tolist(), col.null.tolist()
    ('float', [1.0, 0.0, 3.0], [False, True, False])
    >>> as_numeric(pa.array(["a"]), "actual")
    Traceback (most recent call last):
    ...
    l1stream.errors.SchemaError: column 'actual' has type string; expected a numeric column (float, integer or decimal)
    """
    if isinstance(data, NumericColumn):
        return data
    if isinstance(data, (pa.Array, pa.ChunkedArray)):
        return _from_arrow(data, name)
    if type(data).__module__.startswith("pandas"):
        return _from_pandas(data, name)
    array = np.asarray(data)
    if array.ndim != 1:
        raise UsageError(f"{name} must be one-dimensional, got an array of shape {array.shape}")
    return _from_numpy(array, name)


def _from_numpy(array: np.ndarray, name: str) -> NumericColumn:
    kind = array.dtype.kind
    if kind == "f" and array.dtype.itemsize <= 8:
        return NumericColumn(FLOAT, np.ascontiguousarray(array, dtype=np.float64))
    if kind in "iu":
        return _from_integers(array, name)
    if kind == "O":
        return _from_objects(array, name)
    raise SchemaError(f"column {name!r} has numpy dtype {array.dtype}; {_NUMERIC_HINT}")


def _from_integers(array: np.ndarray, name: str, null: np.ndarray | None = None) -> NumericColumn:
    if array.size == 0 or array.dtype.itemsize < 8:
        return NumericColumn(FLOAT, array.astype(np.float64), null)
    low, high = int(array.min()), int(array.max())
    if -_EXACT_INT_LIMIT <= low and high <= _EXACT_INT_LIMIT:
        return NumericColumn(FLOAT, array.astype(np.float64), null)
    if high < (1 << 63):
        return NumericColumn(INT64, array.astype(np.int64), null)
    return NumericColumn(OBJECT, array.astype(object), null)


def _from_objects(array: np.ndarray, name: str) -> NumericColumn:
    values = np.empty(array.shape[0], dtype=object)
    null = np.zeros(array.shape[0], dtype=bool)
    for i, v in enumerate(array.tolist()):
        if v is None:
            null[i] = True
            values[i] = 0
        elif isinstance(v, bool) or not isinstance(v, (int, float, Fraction)) and not _is_decimal(v):
            raise SchemaError(f"column {name!r} holds a {type(v).__name__} at row {i}; {_NUMERIC_HINT}")
        elif isinstance(v, float):
            values[i] = Fraction(v) if np.isfinite(v) else v
        else:
            values[i] = v if isinstance(v, (int, Fraction)) else _decimal_to_fraction(v)
    return NumericColumn(OBJECT, values, null if null.any() else None)


def _is_decimal(value) -> bool:
    return type(value).__name__ == "Decimal"


def _decimal_to_fraction(value):
    if not value.is_finite():
        return float(value)  # NaN / inf: classified as non-finite downstream
    return Fraction(value)


def _fixed_width_values(data: pa.Array) -> np.ndarray:
    """The value buffer of a fixed-width numeric array, zero-copy (values under nulls are arbitrary)."""
    dtype = np.dtype(data.type.to_pandas_dtype())
    buffer = data.buffers()[1]
    return np.frombuffer(buffer, dtype=dtype, count=len(data), offset=data.offset * dtype.itemsize)


def _from_pandas(series, name: str) -> NumericColumn:
    dtype = getattr(series, "dtype", None)
    if isinstance(dtype, np.dtype):
        return as_numeric(series.to_numpy(), name)
    return _from_arrow(pa.array(series, from_pandas=False), name)


def _null_mask(data) -> np.ndarray:
    """True where an Arrow array is null, from its validity bitmap (``is_null()`` would import
    pyarrow's compute kernels, and its ``to_numpy`` pandas, in a run that has no other use for them).

    >>> _null_mask(pa.array([1.0, None, 3.0, None])[1:]).tolist()
    [True, False, True]
    """
    bits = np.unpackbits(np.frombuffer(data.buffers()[0], dtype=np.uint8), bitorder="little")
    return bits[data.offset:data.offset + len(data)] == 0


def _from_arrow(data, name: str) -> NumericColumn:
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks() if data.num_chunks != 1 else data.chunk(0)
    typ = data.type
    if pa.types.is_dictionary(typ):
        return _from_arrow(data.dictionary_decode(), name)
    null = _null_mask(data) if data.null_count and not pa.types.is_null(typ) else None
    if pa.types.is_null(typ):
        return NumericColumn(FLOAT, np.zeros(len(data)), np.ones(len(data), dtype=bool))
    if pa.types.is_floating(typ):
        values = _fixed_width_values(data)
        values = np.ascontiguousarray(values, dtype=np.float64)
        if null is not None:
            values = np.where(null, 0.0, values)
        return NumericColumn(FLOAT, values, null)
    if pa.types.is_integer(typ):
        values = _fixed_width_values(data)
        if null is not None:
            values = np.where(null, 0, values)
        return _from_integers(values, name, null)
    if pa.types.is_decimal(typ):
        values = np.empty(len(data), dtype=object)
        values[:] = [0 if v is None else Fraction(v) for v in data.to_pylist()]
        return NumericColumn(OBJECT, values, null)
    raise SchemaError(f"column {name!r} has type {typ}; {_NUMERIC_HINT}")
