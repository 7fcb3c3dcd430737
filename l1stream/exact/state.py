"""The exact core: a mergeable partial state for the (weighted) mean absolute error.

:class:`L1State` holds exact sufficient statistics; :func:`chunk_state` turns a
chunk of arrays into one.  States form a commutative monoid under
:meth:`L1State.merge` with :meth:`L1State.empty` as identity, so any split of
the rows into files, row groups, chunks, threads or workers, merged in any
order, gives the same state and the same bits.  Nothing here knows of Dask.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from l1stream.errors import NonFiniteError, UsageError
from l1stream.exact.columns import FLOAT, INT64, NumericColumn, as_numeric
from l1stream.exact.l1state import (  # noqa: F401 - the state's names, importable from here as ever
    LEFT_OUT_REASONS,
    NAN_POLICIES,
    UNITS_PER_ONE,
    L1State,
    check_nan_policy,
    correctly_rounded,
    state_of_units,
)
from l1stream.exact.summation import ExactSum, NonFiniteInput

_REASON_CODES = {"null": 1, "nan": 2, "inf": 3}
_MAX_PRODUCT_EXPONENT = 995  # Veltkamp splitting and w * x stay finite below 2**995 each
_MIN_PRODUCT = 2.0**-969  # a product error term stays a normal number above this


def chunk_state(actual, prediction, weight=None, *, nan_policy: str = "raise",
                names: tuple = ("actual", "prediction", "weight")) -> L1State:
    """Compute the exact state of one chunk of rows.

    Parameters
    ----------
    actual, prediction : array-like of shape (n,)
        numpy, pyarrow (Array or ChunkedArray), pandas or list; float, integer or decimal.
    weight : array-like of shape (n,), optional
        Non-negative finite sample weights.
    nan_policy : {"raise", "omit", "propagate"}, default "raise"
        What to do with rows whose actual or prediction is null, NaN or infinite.
    names : tuple of str
        Column names used in error messages.

    Returns
    -------
    L1State

    Raises
    ------
    NonFiniteError
        A non-finite value under ``raise``; a null, NaN, infinite or negative weight.
    SchemaError
        A column that is not numeric.
    """
    check_nan_policy(nan_policy)
    a = as_numeric(actual, names[0])
    p = as_numeric(prediction, names[1])
    w = as_numeric(weight, names[2]) if weight is not None else None
    n = len(a)
    lengths = [len(a), len(p)] + ([len(w)] if w is not None else [])
    if len(set(lengths)) != 1:
        got = " and ".join(str(x) for x in lengths)
        raise UsageError(f"{', '.join(names[:len(lengths)])} are expected to have the same length, but got {got}")
    if w is not None:
        _check_weights(w, names[2])
    if w is None and a.kind == p.kind == FLOAT and a.null is None and p.null is None:
        acc = ExactSum()
        try:
            acc.add_abs_diff(a.values, p.values)
        except NonFiniteInput:
            pass  # fall through to the masked path
        else:
            return L1State(Fraction(acc.units, UNITS_PER_ONE), Fraction(n), n)
    reasons = _row_reasons(a, p)
    left_out = {k: int(np.count_nonzero(reasons == code)) for k, code in _REASON_CODES.items()}
    propagated = None
    if any(left_out.values()):
        if nan_policy == "raise":
            raise NonFiniteError(_non_finite_message(a, p, names))
        if nan_policy == "propagate":
            propagated = math.nan if left_out["null"] or left_out["nan"] or _inf_is_nan(a, p, reasons) else math.inf
        keep = reasons == 0
        a, p = _take(a, keep), _take(p, keep)
        w = _take(w, keep) if w is not None else None
    total, weight_sum = _exact_sums(a, p, w)
    return L1State(total, weight_sum, len(a), left_out, propagated)


def grouped_chunk_states(actual, prediction, codes: np.ndarray, distinct: int,
                         names: tuple = ("actual", "prediction")) -> tuple | None:
    """The exact states of the groups of rows with one code (row ``i`` has ``codes[i]`` in
    ``[0, distinct)``), in one pass, for float64 columns without nulls: ``(codes present, states)``.
    None where that does not apply (other types, nulls, a non-finite value, no compiled kernel, a
    code space too large): use :func:`chunk_state` per group then.

    Examples
    --------
    >>> out = grouped_chunk_states([1.0, 2.0, 4.0], [1.5, 2.0, 1.0], np.array([0, 2, 0]), 3)
    >>> out is None or (out[0], [(s.mae, s.count) for s in out[1]]) == ([0, 2], [(1.75, 2), (0.0, 1)])
    True
    """
    from l1stream.exact.summation import grouped_abs_diff_units

    a, p = as_numeric(actual, names[0]), as_numeric(prediction, names[1])
    if not (a.kind == p.kind == FLOAT and a.null is None and p.null is None and len(a) == len(p) == len(codes)):
        return None
    sums = grouped_abs_diff_units(a.values, p.values, codes, distinct)
    if sums is None:
        return None
    present, units, counts = sums
    return present, [L1State(Fraction(u, UNITS_PER_ONE), Fraction(c), c) for u, c in zip(units, counts)]


def paired_chunk_states(actual, prediction, baseline, weight=None, *, nan_policy: str = "raise",
                        names: tuple = ("actual", "prediction", "baseline", "weight")) -> tuple:
    """States of two models on exactly the same rows: ``(state(prediction), state(baseline))``.

    A row left out for either model (null, NaN or inf in actual, prediction or baseline) is
    left out for both and counted once, so the two MAEs and their difference are paired.

    Examples
    --------
    >>> m, b = paired_chunk_states([1.0, 2.0, 3.0], [1.5, float("nan"), 3.0], [1.0, 2.0, 5.0],
    ...                            nan_policy="omit")
    >>> (m.mae, b.mae, m.count, b.left_out["nan"])
    (0.25, 1.0, 2, 1)
    """
    check_nan_policy(nan_policy)
    model_names, base_names = (names[0], names[1], names[3]), (names[0], names[2], names[3])
    if nan_policy != "omit":
        return (chunk_state(actual, prediction, weight, nan_policy=nan_policy, names=model_names),
                chunk_state(actual, baseline, weight, nan_policy=nan_policy, names=base_names))
    a, p, b = (as_numeric(x, n) for x, n in zip((actual, prediction, baseline), names))
    first = _row_reasons(a, p)
    second = _row_reasons(a, b)
    reasons = np.where((first == 0) | ((second != 0) & (second < first)), second, first)
    keep = reasons == 0
    left_out = {k: int(np.count_nonzero(reasons == code)) for k, code in _REASON_CODES.items()}
    a, p, b = (_take(x, keep) for x in (a, p, b))  # converted once; chunk_state takes them as they are
    w = _take(as_numeric(weight, names[3]), keep) if weight is not None else None
    model = chunk_state(a, p, w, nan_policy="raise", names=model_names)
    base = chunk_state(a, b, w, nan_policy="raise", names=base_names)
    return _with_left_out(model, left_out), _with_left_out(base, left_out)


def _with_left_out(state: L1State, left_out: dict) -> L1State:
    from dataclasses import replace

    return replace(state, left_out=dict(left_out))


def absolute_errors(a: NumericColumn, p: NumericColumn) -> np.ndarray:
    """Per-row ``|a - p|``, each correctly rounded to float64 (finite or null-free inputs assumed
    where it matters: NaN in gives NaN out, overflow gives inf, as IEEE arithmetic says)."""
    if a.kind == p.kind == FLOAT:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.subtract(np.maximum(a.values, p.values), np.minimum(a.values, p.values))
    return np.array([float(abs(x - y)) if _finite(x) and _finite(y) else abs(float(x) - float(y))
                     for x, y in zip(a.as_objects().tolist(), p.as_objects().tolist())], dtype=np.float64)


def finite_losses(a: NumericColumn, p: NumericColumn) -> np.ndarray | None:
    """``absolute_errors(a, p)`` when no row needs leaving out (no null, NaN or infinity), else ``None``.

    The fast path for clean float data: NaN and infinite inputs always give a non-finite loss,
    so one ``max`` of the losses replaces the per-row checks (a finite pair whose difference
    overflows also returns ``None``: the caller's full check sorts it out).
    """
    if not (a.kind == p.kind == FLOAT and a.null is None and p.null is None):
        return None
    losses = absolute_errors(a, p)
    if losses.shape[0] and not math.isfinite(float(losses.max())):
        return None
    return losses


def _finite(value) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _row_reasons(a: NumericColumn, p: NumericColumn) -> np.ndarray:
    """Per row: 0 usable, 1 null, 2 NaN, 3 infinite (in actual or prediction)."""
    reasons = np.zeros(len(a), dtype=np.int8)
    for code, test in ((3, _is_inf), (2, _is_nan), (1, lambda c: c.null)):
        for col in (a, p):
            mask = test(col)
            if mask is not None:
                reasons[mask] = code
    return reasons


def _float_mask(col: NumericColumn, array_test, scalar_test):
    """Rows where a float value passes a test (None for integer columns, which hold no NaN/inf)."""
    if col.kind == FLOAT:
        return array_test(col.values)
    if col.kind == INT64:
        return None
    return np.array([isinstance(v, float) and scalar_test(v) for v in col.values.tolist()], dtype=bool)


def _is_nan(col: NumericColumn):
    return _float_mask(col, np.isnan, math.isnan)


def _is_inf(col: NumericColumn):
    return _float_mask(col, np.isinf, math.isinf)


def _inf_is_nan(a: NumericColumn, p: NumericColumn, reasons: np.ndarray) -> bool:
    """inf - inf of one sign is NaN: true if some row has the same infinity on both sides."""
    rows = reasons == 3
    av, pv = a.as_objects()[rows].tolist(), p.as_objects()[rows].tolist()
    return any(isinstance(x, float) and x == y for x, y in zip(av, pv))


def _non_finite_message(a: NumericColumn, p: NumericColumn, names) -> str:
    parts = []
    for col, name in ((a, names[0]), (p, names[1])):
        for label, mask in (("null", col.null), ("NaN", _is_nan(col)), ("infinite", _is_inf(col))):
            if mask is not None and mask.any():
                first = int(np.flatnonzero(mask)[0])
                parts.append(f"column {name!r} has {int(mask.sum())} {label} value(s) (first at row {first})")
    return "; ".join(parts) + (". Use nan_policy='omit' to leave such rows out (they are counted and reported), "
                               "or 'propagate' to return NaN")


def _check_weights(w: NumericColumn, name: str) -> None:
    if w.null is not None and w.null.any():
        raise NonFiniteError(f"weight column {name!r} has {int(w.null.sum())} null value(s) "
                             f"(first at row {int(np.flatnonzero(w.null)[0])}); weights must be finite and >= 0")
    values = w.values
    if w.kind == FLOAT:
        bad = ~np.isfinite(values) | (values < 0)
    else:
        bad = np.array([not (isinstance(v, (int, Fraction)) or math.isfinite(v)) or v < 0 for v in values.tolist()],
                       dtype=bool)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise NonFiniteError(f"weight column {name!r} has {int(bad.sum())} negative, NaN or infinite value(s) "
                             f"(first at row {first}: {values[first]!r}); weights must be finite and >= 0")


def _take(col: NumericColumn, keep: np.ndarray) -> NumericColumn:
    null = col.null[keep] if col.null is not None else None
    return NumericColumn(col.kind, col.values[keep], null if null is not None and null.any() else None)


def _exact_sums(a: NumericColumn, p: NumericColumn, w: NumericColumn | None) -> tuple[Fraction, Fraction]:
    """Exact (sum w|a-p|, sum w) over rows that are all finite and non-null."""
    n = len(a)
    if w is None:
        if a.kind == p.kind == FLOAT:
            acc = ExactSum()
            acc.add_abs_diff(a.values, p.values)
            return Fraction(acc.units, UNITS_PER_ONE), Fraction(n)
        if a.kind == p.kind == INT64:
            upper, lower = np.maximum(a.values, p.values), np.minimum(a.values, p.values)
            return Fraction(_int64_sum(upper) - _int64_sum(lower)), Fraction(n)
        return Fraction(sum(abs(x - y) for x, y in zip(a.as_objects().tolist(), p.as_objects().tolist()))), Fraction(n)
    if a.kind == p.kind == w.kind == FLOAT and _products_are_safe(a.values, p.values, w.values):
        return _weighted_float_sums(a.values, p.values, w.values)
    av, pv, wv = a.as_objects().tolist(), p.as_objects().tolist(), w.as_objects().tolist()
    return (Fraction(sum(wi * abs(x - y) for x, y, wi in zip(av, pv, wv))), Fraction(sum(wv)))


def _int64_sum(values: np.ndarray) -> int:
    """Exact sum of int64 values (int64 arithmetic on 32-bit halves, blocks of 2**30)."""
    total = 0
    for start in range(0, values.shape[0], 1 << 30):
        block = values[start:start + (1 << 30)]
        total += (int((block >> 32).sum()) << 32) + int((block & 0xFFFFFFFF).sum())
    return total


def _products_are_safe(a: np.ndarray, p: np.ndarray, w: np.ndarray) -> bool:
    if a.shape[0] == 0:
        return True
    big = math.ldexp(1.0, _MAX_PRODUCT_EXPONENT)
    x_max = max(float(np.abs(a).max()), float(np.abs(p).max()))
    w_max = float(w.max())
    if x_max >= big or w_max >= big or x_max * w_max >= math.ldexp(1.0, 1020):
        return False
    for x in (a, p):
        product = np.abs(x * w)
        if np.any((product < _MIN_PRODUCT) & (x != 0) & (w != 0)):
            return False
    return True


def _weighted_float_sums(a: np.ndarray, p: np.ndarray, w: np.ndarray) -> tuple[Fraction, Fraction]:
    """sum w*max(a,p) - sum w*min(a,p), each product split exactly as hi + lo (Dekker)."""
    acc = ExactSum()
    w_high, w_low = _veltkamp(w)
    for x, negate in ((np.maximum(a, p), False), (np.minimum(a, p), True)):
        high = x * w
        x_high, x_low = _veltkamp(x)
        low = ((x_high * w_high - high) + x_high * w_low + x_low * w_high) + x_low * w_low
        acc.add_values(high, negate=negate)
        acc.add_values(low, negate=negate)
    weights = ExactSum()
    weights.add_values(w)
    return Fraction(acc.units, UNITS_PER_ONE), Fraction(weights.units, UNITS_PER_ONE)


def _veltkamp(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = x * 134217729.0  # 2**27 + 1
    high = c - (c - x)
    return high, x - high
