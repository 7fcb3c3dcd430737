"""Exact sums of squared errors (L2 beside L1), and a correctly rounded square root.

``(a - p)**2`` is not a float64 in general, but it is an exact sum of a few:
``a - p = s + e`` exactly (Knuth's two-sum), so ``(a - p)**2 = s*s + 2*s*e + e*e``, and
each product ``x*y`` is exactly ``hi + lo`` (Dekker, with Veltkamp splitting).  The terms
(two when every ``e`` of a block is zero, as for most data; six otherwise) go into the exact
superaccumulator of :mod:`l1stream.exact.summation`, block by block.  This holds while
the products neither overflow nor lose bits to underflow; blocks outside that range
(values beyond ``2**480`` or differences below ``2**-480``) take an exact Python path.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from l1stream.exact.columns import FLOAT, NumericColumn
from l1stream.exact.summation import BLOCK_ROWS, UNITS_PER_ONE, ExactSum

_SAFE_HIGH = 2.0**480  # products of two such values stay below 2**960: finite, splittable
_SAFE_LOW = 2.0**-480  # and above 2**-960: their Dekker error terms stay exact (normal)


def exact_square_sum(a: NumericColumn, p: NumericColumn) -> Fraction:
    """Exact ``sum((a - p)**2)`` over rows without nulls or non-finite values.

    Examples
    --------
    >>> from l1stream.exact.columns import as_numeric
    >>> exact_square_sum(as_numeric([0.1, 2.0], "a"), as_numeric([0.3, -1.0], "p")) == (
    ...     (Fraction(0.1) - Fraction(0.3))**2 + 9)
    True
    """
    if a.kind == p.kind == FLOAT and _in_safe_range(a.values, p.values):
        acc = ExactSum()
        n = len(a)
        for start in range(0, n, BLOCK_ROWS):  # cache-sized blocks: the temporaries stay in L2
            if not _add_block_squares(acc, a.values[start:start + BLOCK_ROWS], p.values[start:start + BLOCK_ROWS]):
                break
        else:
            return Fraction(acc.units, UNITS_PER_ONE)
    return sum(((x - y) ** 2 for x, y in zip(a.as_objects().tolist(), p.as_objects().tolist())), Fraction(0))


def _add_block_squares(acc: ExactSum, a: np.ndarray, p: np.ndarray) -> bool:
    """Add the block's exact squared differences; False (nothing added) when out of the safe range."""
    s = a - p
    back = s - a
    e = (a - (s - back)) + (-p - back)  # two-sum: a - p == s + e exactly
    if _has_tiny(s) or _has_tiny(e):
        return False
    s_high, s_low = _split(s)
    square = s * s
    terms = [square, ((s_high * s_high - square) + 2.0 * s_high * s_low) + s_low * s_low]  # s*s, Dekker
    if e.any():  # usually not: a - p is exact for most data
        e_high, e_low = _split(e)
        cross = s * e
        terms += [2.0 * cross, 2.0 * (((s_high * e_high - cross) + s_high * e_low + s_low * e_high) + s_low * e_low)]
        e_square = e * e
        terms += [e_square, ((e_high * e_high - e_square) + 2.0 * e_high * e_low) + e_low * e_low]
    for term in terms:
        acc.add_values(term)
    return True


def _in_safe_range(a: np.ndarray, p: np.ndarray) -> bool:
    if a.shape[0] == 0:
        return True
    return max(float(np.abs(a).max()), float(np.abs(p).max())) < _SAFE_HIGH


def _has_tiny(x: np.ndarray) -> bool:
    magnitude = np.abs(x)
    return bool(np.any((magnitude < _SAFE_LOW) & (magnitude != 0)))


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = x * 134217729.0  # 2**27 + 1
    high = c - (c - x)
    return high, x - high


def correctly_rounded_sqrt(value: Fraction) -> float:
    """The float64 nearest to ``sqrt(value)`` (ties to even), for a non-negative Fraction.

    Examples
    --------
    >>> correctly_rounded_sqrt(Fraction(9, 4))
    1.5
    >>> correctly_rounded_sqrt(Fraction(2)) == 2 ** 0.5
    True
    """
    if value < 0:
        raise ValueError(f"square root of a negative value {value}")
    if value == 0:
        return 0.0
    num, den = value.numerator, value.denominator
    # choose k so that floor(sqrt(value) * 2**k) has at least 60 significant bits
    k = max(0, 60 - (num.bit_length() - den.bit_length()) // 2 + 2)
    scaled_num = num << (2 * k)
    quotient, remainder = divmod(scaled_num, den)
    root = math.isqrt(quotient)
    exact = remainder == 0 and root * root == quotient
    # sqrt lies in [root, root + 1) * 2**-k; a value strictly inside rounds like the truth,
    # since float64 rounding boundaries at this scale fall on integers
    return float(Fraction(2 * root + (0 if exact else 1), 1 << (k + 1)))
