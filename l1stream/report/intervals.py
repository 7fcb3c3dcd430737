"""Confidence intervals for a (weighted) MAE: the delete-a-group jackknife over row blocks.

A block is a row group of a file (beyond :data:`MAX_BLOCKS` row groups in a slice, row groups
are hashed into that many blocks).  With ``B`` blocks holding sums ``S_b`` and
weights ``W_b``, each leave-one-block-out estimate is ``theta_b = (S - S_b) / (W - W_b)`` and

    var = (B - 1) / B * sum_b (theta_b - mean(theta))**2

(the delete-a-group jackknife).  The interval is ``mae +/- t(B - 1) * sqrt(var)``, cut at 0.
It treats blocks as independent draws: rows inside a row group may be correlated (same day,
same model), rows of different row groups are assumed not to be.  Nothing here is exact
arithmetic beyond the block sums, but every step is order-independent (blocks are sorted and
floats summed with :func:`math.fsum`), so an interval is the same bits on any partitioning.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction

MAX_BLOCKS = 1024
"""At most this many jackknife blocks per slice: beyond it, row groups are hashed into this many."""
FOLD_AT = 4 * MAX_BLOCKS
"""A partial state holding more row-group blocks than this folds them early (bounded memory)."""


def block_of(path: str, row_group: int) -> tuple:
    """The jackknife block of a row group: the row group itself, ``(path, index)``.

    Examples
    --------
    >>> block_of("logs/date=2026-11-01/part-0.parquet", 3)
    ('logs/date=2026-11-01/part-0.parquet', 3)
    """
    return (path, row_group)


def bucket_of(block) -> int:
    """The bucket a row-group block is folded into (a stable hash: same on every run and machine)."""
    if isinstance(block, int):
        return block
    digest = hashlib.blake2b(f"{block[0]}\0{block[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % MAX_BLOCKS


def fold_blocks(blocks: dict, merge) -> dict:
    """Blocks as they enter the jackknife: the row groups themselves while there are at most
    :data:`MAX_BLOCKS` and none was folded; otherwise every row group in its hash bucket.

    The outcome depends only on the set of row groups, never on how partial states were merged:
    a partial folds early only above :data:`FOLD_AT` > ``MAX_BLOCKS`` blocks, and then the whole
    set holds more than ``MAX_BLOCKS`` as well.
    """
    if len(blocks) <= MAX_BLOCKS and not any(isinstance(k, int) for k in blocks):
        return blocks
    folded: dict = {}
    for key in sorted(blocks, key=lambda k: (isinstance(k, int), repr(k))):
        bucket = bucket_of(key)
        folded[bucket] = merge(folded[bucket], blocks[key]) if bucket in folded else blocks[key]
    return folded


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval for a MAE, and how it was made."""

    lower: float
    upper: float
    standard_error: float
    blocks: int
    confidence: float
    method: str = "delete-a-group jackknife over row groups, Student t"

    def to_dict(self) -> dict:
        return {"lower": self.lower, "upper": self.upper, "standard_error": self.standard_error,
                "blocks": self.blocks, "confidence": self.confidence, "method": self.method}


def jackknife_interval(blocks, confidence: float = 0.95) -> Interval | None:
    """Interval for ``sum(S_b) / sum(W_b)`` from per-block ``(S_b, W_b)`` (Fractions or ints).

    Returns ``None`` with fewer than two blocks (no spread to measure).

    Examples
    --------
    >>> iv = jackknife_interval([(1, 1), (2, 1), (3, 1), (4, 1)])
    >>> round(iv.lower, 5), round(iv.upper, 5), round(iv.standard_error, 6)
    (0.44574, 4.55426, 0.645497)
    """
    blocks = sorted((Fraction(s), Fraction(w)) for s, w in blocks)
    blocks = [(s, w) for s, w in blocks if w != 0]
    count = len(blocks)
    if count < 2:
        return None
    total_s = sum((s for s, _ in blocks), Fraction(0))
    total_w = sum((w for _, w in blocks), Fraction(0))
    estimate = float(total_s / total_w)
    leave_one_out = sorted(float((total_s - s) / (total_w - w)) for s, w in blocks)
    centre = math.fsum(leave_one_out) / count
    variance = (count - 1) / count * math.fsum((x - centre) ** 2 for x in leave_one_out)
    error = math.sqrt(variance)
    half = student_t_quantile(0.5 + confidence / 2, count - 1) * error
    return Interval(max(0.0, estimate - half), estimate + half, error, count, confidence)


@dataclass(frozen=True)
class Difference:
    """``MAE(model) - MAE(baseline)`` over the same rows, with a jackknife interval and a t test."""

    estimate: float
    lower: float
    upper: float
    standard_error: float
    blocks: int
    confidence: float
    t: float
    p_value: float  # two-sided, Student t with blocks - 1 degrees of freedom
    method: str = "paired delete-a-group jackknife over row groups, Student t"

    def to_dict(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {"difference": self.estimate, "lower": self.lower, "upper": self.upper,
                "standard_error": self.standard_error, "blocks": self.blocks, "confidence": self.confidence,
                "t": clean(self.t), "p_value": self.p_value, "method": self.method}


def paired_difference(blocks, confidence: float = 0.95) -> Difference | None:
    """The paired difference of two (weighted) MAEs on the same rows, from per-block
    ``(S_model_b, S_baseline_b, W_b)``: ``D = sum(S_model - S_baseline) / sum(W)``, its delete-a-group
    jackknife variance (as :func:`jackknife_interval`, on ``D``; not cut at 0: a difference may be
    negative), the interval ``D +/- t(B - 1) * se`` and the two-sided p-value of ``D / se`` against
    Student's t with ``B - 1`` degrees of freedom.  ``None`` with fewer than two blocks.

    Examples
    --------
    >>> d = paired_difference([(2, 1, 1), (3, 1, 1), (2, 2, 1), (4, 1, 1)])
    >>> d.estimate, round(d.standard_error, 6), round(d.p_value, 4)
    (1.5, 0.645497, 0.1027)
    """
    rows = sorted((Fraction(m) - Fraction(b), Fraction(w)) for m, b, w in blocks)
    rows = [(d, w) for d, w in rows if w != 0]
    count = len(rows)
    if count < 2:
        return None
    total_d = sum((d for d, _ in rows), Fraction(0))
    total_w = sum((w for _, w in rows), Fraction(0))
    exact = total_d / total_w
    estimate = exact.numerator / exact.denominator
    leave_one_out = sorted(float((total_d - d) / (total_w - w)) for d, w in rows)
    centre = math.fsum(leave_one_out) / count
    error = math.sqrt((count - 1) / count * math.fsum((x - centre) ** 2 for x in leave_one_out))
    half = student_t_quantile(0.5 + confidence / 2, count - 1) * error
    if error > 0:
        t = estimate / error
        p_value = min(1.0, 2 * (1 - _t_cdf(abs(t), count - 1)))
    else:  # every block moved alike: the difference is certain (or nil)
        t = math.copysign(math.inf, estimate) if estimate else 0.0
        p_value = 0.0 if estimate else 1.0
    return Difference(estimate, estimate - half, estimate + half, error, count, confidence, t, p_value)


def holm(p_values: list) -> list:
    """Holm's step-down adjustment of p-values (family-wise error control), in the input's order.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03, 0.005])
    [0.03, 0.06, 0.06, 0.02]
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF).

    Examples
    --------
    >>> round(student_t_quantile(0.975, 1), 3), round(student_t_quantile(0.975, 10), 3)
    (12.706, 2.228)
    """
    if not 0 < p < 1 or df < 1:
        raise ValueError(f"need 0 < p < 1 and df >= 1; got p={p}, df={df}")
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if _t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * high:
            break
    return (low + high) / 2


def _t_cdf(t: float, df: int) -> float:
    """P(T <= t) for t >= 0, via the regularized incomplete beta function."""
    x = df / (df + t * t)
    return 1 - 0.5 * _incomplete_beta(df / 2, 0.5, x)


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) (continued fraction, Numerical Recipes 6.4)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h
