"""Exact quantiles of the per-row L1 loss, out of core, by radix selection on float bit patterns.

A non-negative float64's bit pattern, read as an unsigned integer, orders like the float.
Each pass over the data counts, for every rank still being searched, the losses that share
the bits found so far, by their next 16 bits (a mergeable histogram of 65,536 counts).  Once
a candidate bucket holds at most ``COLLECT_LIMIT`` values, the next pass collects them and
the client sorts them.  So a quantile costs at most four passes (usually two or three), and
no row is ever gathered on the client beyond one small bucket.

The results match numpy bit for bit: the median as ``numpy.median`` (the mean of the two
middle values, as ``np.mean`` computes it; this is ``sklearn.metrics.median_absolute_error``)
and other quantiles as ``numpy.quantile(..., method="linear")``, since the same order
statistics go through the same float operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from l1stream.engine.scan import ScanSpec, iter_piece_chunks
from l1stream.errors import NonFiniteError, NoRowsError, UsageError
from l1stream.exact.columns import as_numeric
from l1stream.exact.state import _non_finite_message, _row_reasons, _take, absolute_errors, finite_losses

DIGIT_BITS = 16
COLLECT_LIMIT = 1 << 20


@dataclass(frozen=True)
class Bucket:
    """Losses whose top ``bits`` bits are ``prefix`` (or up to ``prefix + span - 1``: a window);
    ``collect`` asks for the values themselves, otherwise the counts of their next 16 bits (of
    the first ``16 - shift`` of them).

    Examples
    --------
    >>> import numpy as np
    >>> patterns = np.array([1.0, 1.5, 2.0, 3.0]).view(np.uint64)
    >>> Bucket(0x3FF0, 16).select(patterns).view(np.float64)
    array([1.])
    >>> Bucket(0x3FF0, 16, span=0x11).select(patterns).view(np.float64)
    array([1. , 1.5, 2. ])
    """

    prefix: int
    bits: int
    collect: bool = False
    span: int = 1
    shift: int = 0  # counted: the counts of the next 16 - shift bits (coarser)

    @property
    def first(self) -> int:
        """The smallest loss bit pattern in the bucket."""
        return self.prefix << (64 - self.bits)

    @property
    def last(self) -> int:
        """The largest loss bit pattern in the bucket (a window's last prefix's).

        >>> hex(Bucket(0x3FF0, 16, span=2).last)
        '0x3ff1ffffffffffff'
        """
        return ((self.prefix + self.span) << (64 - self.bits)) - 1

    @property
    def selection(self) -> tuple:
        """``(prefix, bits, collect, span, shift)``: the C ``SelectPass``'s words for the bucket."""
        return (self.prefix, self.bits, self.collect, self.span, self.shift)

    def select(self, patterns: np.ndarray) -> np.ndarray:
        if self.bits == 0:
            return patterns
        top = patterns >> np.uint64(64 - self.bits)
        if self.span == 1:
            return patterns[top == np.uint64(self.prefix)]
        return patterns[(top - np.uint64(self.prefix)) < np.uint64(self.span)]  # unsigned: wraps below prefix


def pass_counts(pieces, spec: ScanSpec, filesystem, buckets: tuple, tail_above: int | None = None) -> dict:
    """One pass over some pieces: per bucket, a digit histogram (or the values, if collecting).

    Also returns ``"left_out"``: the number of rows with a null, NaN or infinite input; and with
    ``tail_above`` (a loss bit pattern), ``"tail"``: ``(rows, exact sum in 2**-1074 units)`` of the
    finite losses above it, so a caller needing both saves a pass.
    """
    from l1stream.exact.summation import ExactSum

    buckets = tuple(buckets)
    out: dict = {b: ([] if b.collect else np.zeros(1 << DIGIT_BITS, dtype=np.int64)) for b in buckets}
    left_out, tail_rows, tail = 0, 0, ExactSum()
    for patterns, dropped in iter_loss_patterns(pieces, spec, filesystem):
        left_out += dropped
        if tail_above is not None:
            above = finite_above(patterns, tail_above)
            tail_rows += int(above.shape[0])
            tail.add_values(above)
        for bucket in buckets:
            chosen = bucket.select(patterns)
            if bucket.collect:
                out[bucket].append(chosen)
            else:
                shift = np.uint64(64 - bucket.bits - DIGIT_BITS)
                digits = ((chosen >> shift) & np.uint64(0xFFFF)).astype(np.intp)
                out[bucket] += np.bincount(digits, minlength=1 << DIGIT_BITS)
    for bucket in buckets:
        if bucket.collect:
            out[bucket] = np.concatenate(out[bucket]) if out[bucket] else np.empty(0, np.uint64)
    out["left_out"] = left_out
    if tail_above is not None:
        out["tail"] = (tail_rows, tail.units)
    return out


def finite_above(patterns: np.ndarray, above: int) -> np.ndarray:
    """The finite losses (float64) whose bit patterns exceed ``above``: a tail's rows.

    >>> finite_above(np.array([1.0, 3.0, np.inf]).view(np.uint64), int(np.array([2.0]).view(np.uint64)[0]))
    array([3.])
    """
    values = patterns[patterns > np.uint64(above)].view(np.float64)
    return values[np.isfinite(values)]


def iter_loss_patterns(pieces, spec: ScanSpec, filesystem):
    """Yield ``(loss bit patterns, rows left out)`` chunk by chunk; errors name the file and row group."""
    for piece in pieces:
        for index, _, table in iter_piece_chunks(piece, spec, filesystem):
            try:
                yield loss_patterns(table[spec.actual], table[spec.prediction], spec)
            except NonFiniteError as exc:
                raise NonFiniteError(f"{piece.path}: row group {index}: {exc.message}", path=piece.path) from exc


def merge_counts(parts) -> dict:
    total: dict = {}
    for part in parts:
        for key, value in part.items():
            if key not in total:
                total[key] = value
            elif key == "left_out":
                total[key] += value
            elif key == "tail":
                total[key] = (total[key][0] + value[0], total[key][1] + value[1])
            elif isinstance(key, Bucket) and key.collect:
                total[key] = np.concatenate([total[key], value])
            else:
                total[key] = total[key] + value
    return total


def select_ranks(run_pass, ranks_of, first_histogram: list | None = None) -> tuple[dict, int, int, int]:
    """Find the loss bit patterns at 0-based ranks; ``run_pass(buckets)`` scans the data once and
    ``ranks_of(n)`` names the ranks wanted once the first pass has counted the ``n`` rows.

    Returns ``({rank: pattern}, n, left_out, passes)``; the first pass's histogram of the top 16
    bits is appended to ``first_histogram`` when given.
    """
    root = Bucket(0, 0)
    first = run_pass((root,))
    histogram = first[root]
    if first_histogram is not None:
        first_histogram.append(histogram)
    n = int(histogram.sum())
    left_out = first["left_out"]
    if n == 0:
        return {}, 0, left_out, 1
    ranks = sorted({min(max(r, 0), n - 1) for r in ranks_of(n)})
    # per rank: (bucket, rank within the bucket)
    state = {r: descend(root, histogram, r) for r in ranks}
    found: dict = {}
    passes = 1
    while state:
        buckets = {}
        for rank, (bucket, _, size) in list(state.items()):
            if bucket.bits == 64:  # every bit known: the rank's value is the prefix itself
                found[rank] = bucket.prefix
                del state[rank]
            else:
                buckets[rank] = Bucket(bucket.prefix, bucket.bits, collect=size <= COLLECT_LIMIT)
        if not buckets:
            break
        result = run_pass(tuple(set(buckets.values())))
        passes += 1
        next_state = {}
        for rank, bucket in buckets.items():
            _, within, _ = state[rank]
            if bucket.collect:
                values = np.sort(result[bucket])
                found[rank] = int(values[within])
            else:
                next_state[rank] = descend(bucket, result[bucket], within)
        state = next_state
    return found, n, left_out, passes


def descend(bucket: Bucket, histogram: np.ndarray, within: int):
    """The sub-bucket holding the ``within``-th value, the rank inside it, and its size."""
    cumulative = np.cumsum(histogram)
    digit = int(np.searchsorted(cumulative, within, side="right"))
    below = int(cumulative[digit - 1]) if digit else 0
    child = Bucket((bucket.prefix << DIGIT_BITS) | digit, bucket.bits + DIGIT_BITS)
    return child, within - below, int(histogram[digit])


def as_float(pattern: int) -> np.float64:
    return np.array([pattern], dtype=np.uint64).view(np.float64)[0]


def numpy_median(lower: np.float64, upper: np.float64, odd: bool) -> float:
    """``numpy.median`` from its middle order statistic(s): ``np.mean`` of them."""
    return float(np.mean(np.array([lower] if odd else [lower, upper], dtype=np.float64)))


def numpy_quantile(n: int, q: float, value_at) -> float:
    """``numpy.quantile(x, q, method="linear")`` given ``value_at(rank)`` of the sorted x."""
    virtual = np.asanyarray((n - 1) * np.asanyarray(q, dtype=np.float64))
    if virtual >= n - 1:
        return float(value_at(n - 1))
    if virtual < 0:
        return float(value_at(0))
    previous = int(np.floor(virtual))
    gamma = np.asanyarray(virtual - np.floor(virtual), dtype=np.float64)
    a, b = value_at(previous), value_at(previous + 1)
    with np.errstate(invalid="ignore", over="ignore"):  # inf bounds interpolate to NaN, as in numpy
        diff = b - a
        result = a + diff * gamma
        if gamma >= 0.5:
            result = b - diff * (1 - gamma)
    return float(result)


def ranks_for(n: int, qs) -> list:
    """The order statistics numpy needs for the median and the linear quantiles ``qs``."""
    ranks = [(n - 1) // 2, n // 2]
    for q in qs:
        virtual = float((n - 1) * np.float64(q))
        lo = max(0, min(n - 1, int(math.floor(virtual))))
        ranks += [lo, min(n - 1, lo + 1)]
    return ranks


def validate_qs(qs) -> tuple:
    if isinstance(qs, (int, float)):
        qs = (qs,)
    qs = tuple(qs)
    for q in qs:
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise UsageError(f"quantiles must be numbers between 0 and 1; got {q!r}")
    return qs


@dataclass
class QuantileResult:
    """Exact quantiles of the per-row L1 loss (numpy semantics, see the module doc)."""

    median: float
    quantiles: dict  # q -> value, numpy.quantile(method="linear")
    count: int
    left_out: int
    passes: int
    histogram: list  # [(lower, upper, count)]: exact counts, 16 log-spaced bins per power of two (inf: [inf, inf])
    order_statistics: dict = field(default_factory=dict)  # 0-based rank -> loss bit pattern (extra ranks asked for)

    def to_dict(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v

        return {"median": clean(self.median), "quantiles": {repr(q): clean(v) for q, v in self.quantiles.items()},
                "count": self.count, "left_out": self.left_out, "passes": self.passes,
                "histogram": [[lo, hi, c] for lo, hi, c in self.histogram]}


def histogram_bins(counts: np.ndarray) -> list:
    """The non-empty bins of a top-16-bit histogram of non-negative float64 bit patterns.

    Bin ``d`` holds the values whose bit pattern starts with ``d``: ``[lower, upper)`` with
    ``lower = float(d << 48)``: 16 log-spaced bins per binade, exact counts, no binning choice.

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.zeros(65536, dtype=np.int64); counts[np.array([1.0]).view(np.uint64)[0] >> 48] = 3
    >>> histogram_bins(counts)
    [(1.0, 1.0625, 3)]
    """
    return [(*log_bin(digit), int(counts[digit])) for digit in np.flatnonzero(counts).tolist()]


def log_bin(digit: int, shift: int = 0) -> tuple[float, float]:
    """``[lower, upper)`` of the losses whose top ``16 - shift`` bits are ``digit`` (``shift`` merges
    ``2**shift`` of the 16-per-binade bins); infinite losses have the bin ``[inf, inf]``.

    Examples
    --------
    >>> log_bin(0x3FF0), log_bin(0x3FF0 >> 4, shift=4)
    ((1.0, 1.0625), (1.0, 2.0))
    """
    first, after = digit << shift, (digit + 1) << shift
    lower = math.inf if first >= 0x7FF0 else float(as_float(first << 48))
    upper = math.inf if after >= 0x7FF0 else float(as_float(after << 48))
    return lower, upper


def exact_quantiles(run_pass, qs: tuple, nan_policy: str, extra_ranks=None) -> QuantileResult:
    """Run the passes and turn the order statistics into numpy's median and quantiles.

    ``extra_ranks(n)`` names more 0-based ranks to find in the same passes; their bit
    patterns are returned in ``order_statistics``.
    """
    first: list = []
    extra: Any = extra_ranks or (lambda n: [])
    found, n, left_out, passes = select_ranks(run_pass, lambda n: ranks_for(n, qs) + list(extra(n)), first)
    histogram = histogram_bins(first[0]) if first else []
    if nan_policy == "propagate" and left_out:
        nan = float("nan")
        return QuantileResult(nan, {q: nan for q in qs}, n, left_out, passes, histogram)
    if n == 0:
        raise NoRowsError(f"no rows to take quantiles of ({left_out:,} left out); the quantiles are undefined")

    def value_at(rank):
        return as_float(found[rank])

    median = numpy_median(value_at((n - 1) // 2), value_at(n // 2), n % 2 == 1)
    wanted = {r: found[r] for r in extra(n) if r in found}
    return QuantileResult(median, {q: numpy_quantile(n, q, value_at) for q in qs}, n, left_out, passes, histogram,
                          wanted)


def loss_patterns(actual, prediction, spec: ScanSpec) -> tuple[np.ndarray, int]:
    """Bit patterns (uint64) of the rows' float64 L1 losses, and how many rows were left out."""
    a, p = as_numeric(actual, spec.actual), as_numeric(prediction, spec.prediction)
    losses = finite_losses(a, p)
    if losses is not None:
        return losses.view(np.uint64), 0
    reasons = _row_reasons(a, p)
    bad = reasons != 0
    dropped = int(bad.sum())
    if dropped:
        if spec.nan_policy == "raise":
            raise NonFiniteError(_non_finite_message(a, p, (spec.actual, spec.prediction)))
        a, p = _take(a, ~bad), _take(p, ~bad)
    return absolute_errors(a, p).view(np.uint64), dropped
