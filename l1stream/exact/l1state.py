"""The exact core's mergeable state, in pure Python (no numpy): what every layer above merges.

:class:`L1State` holds exact sufficient statistics of the (weighted) mean absolute error; states
form a commutative monoid under :meth:`L1State.merge` with :meth:`L1State.empty` as identity, so
any split of the rows into files, row groups, chunks, threads or workers, merged in any order,
gives the same state and the same bits.  Turning arrays into states is
:mod:`l1stream.exact.state`'s work (numpy); a job whose rows the page decoder sums as it decodes
needs only this module, and so never imports numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from l1stream.errors import NoRowsError, UsageError

UNITS_PER_ONE = 1 << 1074
"""Exact sums are integer counts of ``2**-1074``, the smallest subnormal float64."""

NAN_POLICIES = ("raise", "omit", "propagate")
LEFT_OUT_REASONS = ("null", "nan", "inf")
"""Why a row was left out, in order of precedence: a row with a null and a NaN counts as null."""



@dataclass(frozen=True)
class L1State:
    """Exact sufficient statistics of the (weighted) mean absolute error.

    Attributes
    ----------
    abs_error_sum : Fraction
        Exact ``sum(w_i * |actual_i - prediction_i|)`` over used rows (``w_i = 1`` unweighted).
    weight_sum : Fraction
        Exact ``sum(w_i)`` over used rows (the row count when unweighted).
    count : int
        Rows used.
    left_out : dict
        Rows left out, by reason (``null``, ``nan``, ``inf``).
    propagated : float or None
        Under ``nan_policy='propagate'``: NaN (or inf) once such a row was met.

    Examples
    --------
    >>> s = state_of_units(5 << 1074, 4)  # four rows whose |errors| sum to 5
    >>> s.count, s.mae
    (4, 1.25)
    >>> L1State.empty().merge(s) == s
    True
    """

    abs_error_sum: Fraction = Fraction(0)
    weight_sum: Fraction = Fraction(0)
    count: int = 0
    left_out: dict = field(default_factory=lambda: dict.fromkeys(LEFT_OUT_REASONS, 0))
    propagated: float | None = None

    @classmethod
    def empty(cls) -> "L1State":
        """The identity of :meth:`merge`."""
        return cls()

    def merge(self, other: "L1State") -> "L1State":
        """Add two states (associative and commutative, exact)."""
        return L1State(
            abs_error_sum=self.abs_error_sum + other.abs_error_sum,
            weight_sum=self.weight_sum + other.weight_sum,
            count=self.count + other.count,
            left_out={k: self.left_out[k] + other.left_out[k] for k in LEFT_OUT_REASONS},
            propagated=_merge_propagated(self.propagated, other.propagated),
        )

    @property
    def rows(self) -> int:
        """Rows seen: used plus left out."""
        return self.count + sum(self.left_out.values())

    @property
    def mae(self) -> float:
        """The correctly rounded (weighted) MAE; raises :class:`NoRowsError` when undefined."""
        if self.propagated is not None:
            return self.propagated
        if self.count == 0:
            raise NoRowsError(f"no rows to average: {self.rows} rows seen, {self._left_out_text()}")
        if self.weight_sum == 0:
            raise NoRowsError(f"all {self.count} weights are zero: the weighted MAE is undefined")
        return correctly_rounded(self.abs_error_sum / self.weight_sum)

    @property
    def abs_error_sum_float(self) -> float:
        """``abs_error_sum`` correctly rounded to float64."""
        return correctly_rounded(self.abs_error_sum)

    def _left_out_text(self) -> str:
        parts = [f"{n} {k}" for k, n in self.left_out.items() if n]
        return "all left out (" + ", ".join(parts) + ")" if parts else "none left out"


def correctly_rounded(value: Fraction) -> float:
    """The float64 nearest to an exact rational (ties to even; infinity past the largest float)."""
    try:
        return value.numerator / value.denominator  # CPython int / int is correctly rounded
    except OverflowError:  # beyond the largest float by at least half an ulp: IEEE rounds to infinity
        return math.inf if value > 0 else -math.inf


def _merge_propagated(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if math.isnan(a) or math.isnan(b) or a != b:
        return math.nan
    return a


def state_of_units(units: int, count: int) -> L1State:
    """The state of ``count`` rows, none left out, whose |errors| sum to ``units`` 2**-1074 units
    (what :func:`~l1stream.exact.native.compiled_abs_diff_sum` gathers).

    >>> state_of_units(3 << 1073, 2).mae
    0.75
    """
    return L1State(Fraction(units, UNITS_PER_ONE), Fraction(count), count)


def check_nan_policy(nan_policy: str) -> None:
    """Raise a :class:`UsageError` naming the allowed values unless ``nan_policy`` is one."""
    if nan_policy not in NAN_POLICIES:
        raise UsageError(f"nan_policy must be one of {', '.join(map(repr, NAN_POLICIES))}; got {nan_policy!r}")
