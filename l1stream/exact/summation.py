"""Exact summation kernels for float64 arrays (numpy only).

Every finite float64 is an integer multiple of ``2**-1074``.  The kernels here
keep sums as Python ``int`` counts of that unit, so a sum is exact whatever the
order, the blocking or the number of terms.

How a block of |actual - prediction| is summed:

* ``sum |a - p| = sum max(a, p) - sum min(a, p)``: exact, and free of the
  overflow that ``a - p`` can hit near ``1.8e308``.
* One Rump-Ogita-Oishi extraction fold splits every value ``x`` against a power
  of two ``sigma``: ``q = (sigma + x) - sigma`` and ``r = x - q`` are exact, and
  the ``q`` of one block sum exactly in float64 in any order.
* When every value of the block lies within ``2**20`` of the largest (ordinary
  data), the residuals ``r`` also sum exactly in float64: two folds' worth of
  work is saved.  Otherwise a second fold runs, and a block whose residuals are
  still not zero (values spanning more than ~70 binades, or near the overflow
  threshold) goes to an exponent-bucketed integer superaccumulator that is
  exact for any finite input.
"""

from __future__ import annotations

import math

import numpy as np

from l1stream.exact.l1state import UNITS_PER_ONE
from l1stream.exact.native import native_enabled

try:  # the compiled twin of add_abs_diff (l1stream/_kernel.c); optional
    from l1stream.exact._kernel import abs_diff_units as _compiled_abs_diff_units
    from l1stream.exact._kernel import abs_diff_units_by as _compiled_abs_diff_units_by
except ImportError:  # built without a C compiler
    _compiled_abs_diff_units = _compiled_abs_diff_units_by = None

_ZEROS = np.zeros(0)


def _zeros(n: int) -> np.ndarray:
    """``n`` zeros, from one shared read-only array grown as needed."""
    global _ZEROS
    if _ZEROS.shape[0] < n:
        _ZEROS = np.zeros(max(n, 1 << 16))
        _ZEROS.flags.writeable = False
    return _ZEROS[:n]


MAX_CODES = 1 << 22
"""Largest code space :func:`grouped_abs_diff_units` counts in (one 8-byte counter per code)."""


def grouped_abs_diff_units(actual: np.ndarray, prediction: np.ndarray, codes: np.ndarray, distinct: int):
    """Exact ``sum(|actual - prediction|)`` per code, in 2**-1074 units, in one regrouping pass (row
    ``i`` has code ``codes[i]`` in ``[0, distinct)``): ``(codes present, sums, row counts)``.  None
    when the compiled kernel is not there (or is turned off), ``distinct`` exceeds
    :data:`MAX_CODES`, or a value is not finite: the caller then takes the general path.

    Examples
    --------
    >>> out = grouped_abs_diff_units(np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 1.0]),
    ...                              np.array([3, 1, 3]), 4)
    >>> out is None or (out[0], [u / UNITS_PER_ONE for u in out[1]], out[2]) == ([1, 3], [0.0, 3.5], [1, 2])
    True
    """
    if (_compiled_abs_diff_units_by is None or not native_enabled() or not 0 < distinct <= MAX_CODES
            or not actual.flags.c_contiguous or not prediction.flags.c_contiguous):
        return None
    return _compiled_abs_diff_units_by(actual, prediction, np.ascontiguousarray(codes, dtype=np.int64), distinct)


BLOCK_ROWS = 32768
"""Rows per kernel block: small enough to stay in L2, large enough to amortise calls."""

_FOLD_MARGIN = 17  # 2**17 >= 2 * BLOCK_ROWS + 2: room for the q-sums of one block
_MAX_FOLD_EXPONENT = 1023 - _FOLD_MARGIN - 1  # sigma must stay finite
_MIN_SIGMA_EXPONENT = -1021  # eps * sigma >= 2**-1074: q then holds every remaining bit
_RESIDUAL_SUM_SPAN = 37  # sigma exponent - smallest value exponent allowing a plain residual sum
_SPLIT_SIGMA = 2.0**27  # (m + 2**27) - 2**27 rounds a mantissa in (-1, 1) to a multiple of 2**-26
_EXPONENT_OFFSET = 1074  # frexp exponents run from -1073 (smallest subnormal) to 1024
_BINS = 2100
_FLUSH_ROWS = 1 << 25  # float64 bin sums of 27-bit parts stay exact below 2**26 terms


class NonFiniteInput(ArithmeticError):
    """Raised by a kernel that met NaN or an infinity; the caller masks and retries."""


def float_to_units(value: float) -> int:
    """Return the exact value of a finite float as a count of ``2**-1074``.

    Examples
    --------
    >>> float_to_units(2.0 ** -1074)
    1
    >>> float_to_units(-1.5) == -3 << 1073
    True
    """
    numerator, denominator = float(value).as_integer_ratio()
    return numerator * (UNITS_PER_ONE // denominator)


class ExactSum:
    """A running exact sum of float64 values, held in ``2**-1074`` units.

    Not thread-safe: use one per task.  ``units`` is the exact sum so far.

    Examples
    --------
    >>> import numpy as np
    >>> acc = ExactSum()
    >>> acc.add_abs_diff(np.array([10.0, 11, 12, 13]), np.array([10.0, 12, 14, 11]))
    >>> acc.add_values(np.array([1e308, 1.0, -1e308]))
    >>> acc.units == 6 * UNITS_PER_ONE
    True
    """

    __slots__ = ("_units", "_bins_high", "_bins_low", "_pending", "_both", "_scratch")

    def __init__(self) -> None:
        self._units = 0
        self._bins_high = np.zeros(_BINS)
        self._bins_low = np.zeros(_BINS)
        self._pending = 0
        self._both = np.empty(2 * BLOCK_ROWS)
        self._scratch = np.empty(2 * BLOCK_ROWS)

    @property
    def units(self) -> int:
        """The exact sum so far, as a count of ``2**-1074``."""
        self._flush_bins()
        return self._units

    def add_abs_diff(self, actual: np.ndarray, prediction: np.ndarray) -> None:
        """Add ``sum(|actual - prediction|)`` of two float64 arrays of one length.

        Raises :class:`NonFiniteInput` if a value is NaN or infinite.  The
        accumulator is then in an unspecified state: discard it, mask the rows
        and start again with a new one (one accumulator per chunk).
        """
        if (_compiled_abs_diff_units is not None and actual.flags.c_contiguous and prediction.flags.c_contiguous
                and native_enabled()):
            units = _compiled_abs_diff_units(actual, prediction)
            if units is None:
                raise NonFiniteInput
            self._units += units
            return
        n = actual.shape[0]
        for start in range(0, n, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, n)
            self._block_abs_diff(actual[start:stop], prediction[start:stop])

    def add_values(self, values: np.ndarray, negate: bool = False) -> None:
        """Add (or subtract, with ``negate``) the exact sum of finite float64 values."""
        n = values.shape[0]
        if (n and _compiled_abs_diff_units is not None and native_enabled() and values.dtype == np.float64
                and values.flags.c_contiguous and float(values.min()) >= 0.0):
            # non-negative values (losses): sum |v - 0| with the compiled kernel, exact as the fold below
            units = _compiled_abs_diff_units(values, _zeros(n))
            if units is not None:
                self._units += -units if negate else units
                return

        for start in range(0, n, BLOCK_ROWS):
            block = values[start:start + BLOCK_ROWS]
            m = block.shape[0]
            both = self._both[:m]
            np.copyto(both, block)
            # negated values are the "minus" part, so that what goes to the bins is negated too
            plus, minus = (0, m) if negate else (m, 0)
            self._units += self._fold_sum(both, plus, minus, float(block.max()), float(block.min()))

    # -- internals ---------------------------------------------------------------

    def _block_abs_diff(self, a: np.ndarray, p: np.ndarray) -> None:
        m = a.shape[0]
        both = self._both[: 2 * m]
        np.maximum(a, p, out=both[:m])
        np.minimum(a, p, out=both[m:])
        top, bottom = float(both[:m].max()), float(both[m:].min())
        if not (math.isfinite(top) and math.isfinite(bottom)):
            raise NonFiniteInput
        self._units += self._fold_sum(both, m, m, top, bottom)

    def _fold_sum(self, both: np.ndarray, m_plus: int, m_minus: int, top: float, bottom: float) -> int:
        """Exact sum(both[:m_plus]) - sum(both[m_plus:]); ``top``/``bottom`` bound all values.

        ``both`` is overwritten.  Values still unresolved after the folds go to
        the superaccumulator bins, so the returned int may be partial: the bins
        hold the rest.
        """
        if bottom > 0.0:
            smallest = bottom  # every value positive: the smallest magnitude is free
        elif top < 0.0:
            smallest = -top
        else:
            smallest = 0.0
        bound = max(top, -bottom)
        if bound == 0.0:
            return 0
        exponent = math.frexp(bound)[1]  # bound < 2**exponent
        if exponent > _MAX_FOLD_EXPONENT:
            self._to_bins(both, m_plus)
            return 0
        m = m_plus + m_minus
        scratch = self._scratch[:m]
        total = 0
        for fold in range(2):
            sigma_exponent = max(exponent + _FOLD_MARGIN, _MIN_SIGMA_EXPONENT)
            sigma = math.ldexp(1.0, sigma_exponent)
            np.add(both, sigma, out=scratch)
            np.subtract(scratch, sigma, out=scratch)
            # Each part sums exactly: multiples of 2**(sigma_exponent - 53) below sigma / 4.
            high = _signed_sum(scratch, m_plus)
            if high:
                total += float_to_units(high)
            np.subtract(both, scratch, out=both)  # exact residuals, |r| <= 2**(sigma_exponent - 53)
            if fold == 0 and smallest > 0.0 and sigma_exponent - math.frexp(smallest)[1] <= _RESIDUAL_SUM_SPAN:
                # All residuals are multiples of the smallest value's ulp and span at most
                # 37 + 16 bits including the carry of 2**16 terms: a float64 sum is exact.
                low = _signed_sum(both, m_plus)
                return total + (float_to_units(low) if low else 0)
            if not both.any():
                return total
            exponent = sigma_exponent - 53
        # Few residuals are left (tiny values beside large ones): bin just those.
        nonzero = np.flatnonzero(both)
        plus = int(np.searchsorted(nonzero, m_plus))
        self._to_bins(both[nonzero], plus)
        return total

    def _to_bins(self, both: np.ndarray, m_plus: int) -> None:
        """Add both[:m_plus] - both[m_plus:] into the exponent bins."""
        if m_plus < both.shape[0]:
            np.negative(both[m_plus:], out=both[m_plus:])
        if self._pending + both.shape[0] > _FLUSH_ROWS:
            self._flush_bins()
        mantissa, exponent = np.frexp(both)  # value = mantissa * 2**exponent, 0.5 <= |mantissa| < 1
        high = mantissa + _SPLIT_SIGMA
        high -= _SPLIT_SIGMA  # a multiple of 2**-26: 27 significant bits
        mantissa -= high  # the rest: a multiple of 2**-53, |rest| <= 2**-27
        exponent += _EXPONENT_OFFSET
        self._bins_high += np.bincount(exponent, weights=high, minlength=_BINS)
        self._bins_low += np.bincount(exponent, weights=mantissa, minlength=_BINS)
        self._pending += both.shape[0]

    def _flush_bins(self) -> None:
        if not self._pending:
            return
        high_sums, low_sums = self._bins_high, self._bins_low
        total = 0
        for index in np.flatnonzero((high_sums != 0) | (low_sums != 0)).tolist():
            exponent = index - _EXPONENT_OFFSET
            total += _scaled(int(high_sums[index] * 2.0**26), exponent - 26)
            total += _scaled(int(low_sums[index] * 2.0**53), exponent - 53)
        self._units += total
        high_sums[:] = 0.0
        low_sums[:] = 0.0
        self._pending = 0


def _scaled(integer: int, exponent: int) -> int:
    """integer * 2**exponent in 2**-1074 units (exact: callers pass multiples of the unit)."""
    shift = exponent + 1074
    return integer << shift if shift >= 0 else integer >> -shift


def _signed_sum(values: np.ndarray, m_plus: int) -> float:
    plus = float(values[:m_plus].sum())
    if m_plus == values.shape[0]:
        return plus
    return plus - float(values[m_plus:].sum())


def exact_sum_units(values: np.ndarray) -> int:
    """Exact sum of finite float64 values, in ``2**-1074`` units.

    Examples
    --------
    >>> import numpy as np
    >>> exact_sum_units(np.array([1e308, 1.0, -1e308, 2.0 ** -1074])) == UNITS_PER_ONE + 1
    True
    """
    acc = ExactSum()
    acc.add_values(np.ascontiguousarray(values, dtype=np.float64))
    return acc.units
