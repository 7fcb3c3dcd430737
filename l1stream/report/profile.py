"""The error profile: one extra pass for what a single MAE hides, as mergeable exact states.

Per slice (the ``by`` keys) a :class:`SliceProfile` holds

* an exact log-spaced histogram of the per-row loss: rows counted by the top 16 bits of the
  loss's float64 bit pattern (16 bins per power of two; coarsened exactly for display);
* optional fixed bins (counts between given edges, with under- and overflow);
* the exact sum of squared errors (for MSE and RMSE) and of the per-row float64 losses;
* exact (weighted) L1 states per jackknife block (:mod:`l1stream.report.intervals`).

and per value of a time key (a ``date`` partition, say) an exact :class:`L1State`.  Like
:class:`~l1stream.exact.state.L1State`, every part merges associatively and exactly, so the profile
is the same whatever the partitioning, and nothing here knows of Dask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pyarrow as pa

from l1stream.engine.quantiles import log_bin
from l1stream.engine.scan import ScanSpec
from l1stream.engine.slicing import slice_groups, split_rows
from l1stream.errors import DataError
from l1stream.exact.columns import as_numeric
from l1stream.exact.l1state import UNITS_PER_ONE
from l1stream.exact.squares import correctly_rounded_sqrt, exact_square_sum
from l1stream.exact.state import (
    L1State,
    _row_reasons,
    _take,
    absolute_errors,
    chunk_state,
    correctly_rounded,
    finite_losses,
    paired_chunk_states,
)
from l1stream.exact.summation import ExactSum
from l1stream.report.intervals import FOLD_AT, Interval, block_of, fold_blocks, jackknife_interval, paired_difference

_DIGITS = 1 << 16


@dataclass(frozen=True)
class ProfileSpec:
    """What the profile pass computes besides the always-on parts."""

    edges: tuple | None = None  # fixed histogram bin edges, increasing
    time_key: str | None = None  # partition key or column to track the MAE over
    time_is_partition: bool = False
    squares: bool = True  # sum of squares (unweighted runs)
    slices: frozenset | None = None  # slice keys profiled one by one (None: all); the rest go to Profile.rest
    time_slices: frozenset | None = frozenset()  # slices whose MAE over time is tracked too (None: all)


@dataclass
class SliceProfile:
    """Mergeable exact profile of one slice's per-row losses (see the module doc)."""

    count: int = 0
    loss_sum: int = 0  # exact sum of the finite float64 per-row losses, in units of 2**-1074
    infinite_losses: int = 0  # |a - p| overflowing float64 (finite inputs near +-1.8e308)
    squares: Fraction | None = Fraction(0)
    log_counts: dict = field(default_factory=dict)  # top-16-bit digit -> rows
    bin_counts: list | None = None  # fixed bins: [below first edge, each bin..., at or above last edge]
    blocks: dict = field(default_factory=dict)  # jackknife block (a row group, or a hash bucket) -> L1State
    fractional: int = 0  # finite losses that are not integers (0: every loss is, and the chart says so)
    baseline_blocks: dict = field(default_factory=dict)  # block -> the baseline model's L1State, same rows

    def merge(self, other: "SliceProfile") -> "SliceProfile":
        """Add two profiles (exact, associative, commutative)."""
        counts = dict(self.log_counts)
        for digit, rows in other.log_counts.items():
            counts[digit] = counts.get(digit, 0) + rows
        blocks = _merge_blocks(self.blocks, other.blocks)
        baseline_blocks = _merge_blocks(self.baseline_blocks, other.baseline_blocks)
        squares = None if self.squares is None or other.squares is None else self.squares + other.squares
        bins = self.bin_counts if other.bin_counts is None else (
            other.bin_counts if self.bin_counts is None else [x + y for x, y in zip(self.bin_counts,
                                                                                     other.bin_counts)])
        return SliceProfile(self.count + other.count, self.loss_sum + other.loss_sum,
                            self.infinite_losses + other.infinite_losses, squares, counts, bins, blocks,
                            self.fractional + other.fractional, baseline_blocks)

    @property
    def mse(self) -> float:
        """Correctly rounded mean of the squared errors (NaN without rows or squares)."""
        if self.squares is None or not self.count:
            return math.nan
        return correctly_rounded(self.squares / self.count)

    @property
    def rmse(self) -> float:
        """Correctly rounded square root of the exact MSE."""
        if self.squares is None or not self.count:
            return math.nan
        return correctly_rounded_sqrt(self.squares / self.count)

    def interval(self, confidence: float = 0.95) -> Interval | None:
        """Jackknife interval for the slice's (weighted) MAE (``None`` with fewer than 2 blocks)."""
        blocks = fold_blocks(self.blocks, L1State.merge)
        return jackknife_interval(((s.abs_error_sum, s.weight_sum) for s in blocks.values()), confidence)

    def difference(self, confidence: float = 0.95):
        """The paired difference ``MAE(model) - MAE(baseline)`` with its jackknife interval and test over
        the same blocks (:func:`~l1stream.report.intervals.paired_difference`), or None without a
        baseline or with fewer than 2 blocks."""
        if not self.baseline_blocks:
            return None
        model = fold_blocks(self.blocks, L1State.merge)
        baseline = fold_blocks(self.baseline_blocks, L1State.merge)
        return paired_difference([(model[b].abs_error_sum, baseline[b].abs_error_sum, model[b].weight_sum)
                                  for b in model if b in baseline], confidence)

    def dense_log_counts(self) -> np.ndarray:
        """The log histogram as 65,536 counts indexed by the loss's top 16 bits."""
        counts = np.zeros(_DIGITS, dtype=np.int64)
        if self.log_counts:
            digits = np.fromiter(self.log_counts, dtype=np.int64, count=len(self.log_counts))
            counts[digits] = np.fromiter(self.log_counts.values(), dtype=np.int64, count=len(self.log_counts))
        return counts

    def log_histogram(self, per_binade: int = 16) -> list:
        """``[(lower, upper, rows)]`` of the non-empty log bins, ``per_binade`` in {1, 2, 4, 8, 16}.

        Exact: a coarser bin is the sum of the 16-per-binade bins it covers.
        """
        if per_binade not in (1, 2, 4, 8, 16):
            raise ValueError(f"per_binade must be 1, 2, 4, 8 or 16; got {per_binade}")
        shift = 4 - int(math.log2(per_binade))
        merged: dict = {}
        for digit, rows in self.log_counts.items():
            merged[digit >> shift] = merged.get(digit >> shift, 0) + rows
        return [(*log_bin(coarse, shift), merged[coarse]) for coarse in sorted(merged)]


@dataclass
class Profile:
    """Per-slice :class:`SliceProfile` (``rest``: the slices not profiled one by one, together) and
    the per-time-value exact L1 states."""

    slices: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)
    rest: SliceProfile = field(default_factory=SliceProfile)
    slice_times: dict = field(default_factory=dict)  # (slice key, time value) -> L1State, for time_slices

    def merge(self, other: "Profile") -> "Profile":
        slices = dict(self.slices)
        for key, prof in other.slices.items():
            slices[key] = slices[key].merge(prof) if key in slices else prof
        return Profile(slices, _merge_states(self.times, other.times), self.rest.merge(other.rest),
                       _merge_states(self.slice_times, other.slice_times))

    def overall(self) -> SliceProfile:
        total = self.rest
        for key in sorted(self.slices, key=repr):
            total = total.merge(self.slices[key])
        return total

    def keep(self, slices: frozenset | None, time_slices: frozenset) -> "Profile":
        """This profile with only ``slices`` profiled one by one (the others merged into ``rest``;
        None: all stay) and the time series of ``time_slices`` only: what a pass that profiled
        every slice keeps once the largest are known."""
        kept = self.slices if slices is None else {k: v for k, v in self.slices.items() if k in slices}
        rest = self.rest
        for key in sorted(set(self.slices) - set(kept), key=repr):
            rest = rest.merge(self.slices[key])
        times = {k: v for k, v in self.slice_times.items() if k[0] in time_slices}
        return Profile(kept, self.times, rest, times)


def _merge_blocks(left: dict, right: dict) -> dict:
    blocks = dict(left)
    for block, state in right.items():
        blocks[block] = blocks[block].merge(state) if block in blocks else state
    if len(blocks) > FOLD_AT:
        blocks = fold_blocks(blocks, L1State.merge)
    return blocks


def _merge_states(left: dict, right: dict) -> dict:
    out = dict(left)
    for key, state in right.items():
        out[key] = out[key].merge(state) if key in out else state
    return out


def merge_profiles(parts) -> Profile:
    total = Profile()
    for part in parts:
        total = total.merge(part)
    return total


def profile_chunk(out: Profile, table, piece, index: int, spec: ScanSpec, wanted: ProfileSpec, policy: str) -> None:
    """Add one chunk of a piece's rows (of row group ``index``) to ``out``, with numpy (slices
    that are columns go through :class:`~l1stream.report.grouped.GroupedProfile` first)."""
    if not table.num_rows:
        return
    try:
        for key, part in slice_groups(table, piece, spec):
            prof = slice_profile(part, spec, wanted, block_of(piece.path, index), policy)
            if wanted.slices is not None and key not in wanted.slices:
                out.rest = out.rest.merge(prof)
            else:
                out.slices[key] = out.slices[key].merge(prof) if key in out.slices else prof
            if wanted.time_key and (wanted.time_slices is None or key in wanted.time_slices):
                _add_times(out.slice_times, part, piece, spec, wanted, policy, key)
        if wanted.time_key:
            _add_times(out.times, table, piece, spec, wanted, policy)
    except DataError as exc:
        raise type(exc)(f"{piece.path}: row group {index}: {exc.message}", path=piece.path) from exc


def summed_slice_profile(total, blocks: dict, squares: bool) -> SliceProfile:
    """The profile of the rows a C ``ProfileSum`` took (cut into ``blocks`` already)."""
    totals = total.totals()
    return SliceProfile(totals["rows"], totals["loss_units"], totals["infinite"],
                        Fraction(totals["squares_units"], UNITS_PER_ONE) if squares else None,
                        dict(totals["digits"]), None, blocks, totals["fractional"])


def slice_profile(table, spec: ScanSpec, wanted: ProfileSpec, block, policy: str) -> SliceProfile:
    """The profile of one chunk of one slice's rows."""
    names = spec.names
    a, p = as_numeric(table[spec.actual], names[0]), as_numeric(table[spec.prediction], names[1])
    w = as_numeric(table[spec.weight], names[2]) if spec.weight else None
    baseline_blocks = {}
    if spec.baseline:  # the model's and the baseline's states over the same rows, block by block
        state, base = paired_chunk_states(table[spec.actual], table[spec.prediction], table[spec.baseline],
                                          table[spec.weight] if spec.weight else None, nan_policy=policy,
                                          names=(names[0], names[1], spec.baseline, names[2]))
        baseline_blocks = {block: base}
    else:
        state = chunk_state(a, p, w, nan_policy=policy, names=names)
    losses = finite_losses(a, p)
    if losses is None:
        bad = _row_reasons(a, p) != 0
        if bad.any():
            a, p = _take(a, ~bad), _take(p, ~bad)
        losses = absolute_errors(a, p)
    finite = np.isfinite(losses)
    infinite = int(losses.shape[0] - np.count_nonzero(finite))
    acc = ExactSum()
    acc.add_values(losses[finite] if infinite else losses)
    digits = np.bincount((losses.view(np.uint64) >> np.uint64(48)).astype(np.intp), minlength=_DIGITS)
    nonzero = np.flatnonzero(digits)
    bins = None
    if wanted.edges is not None:
        where = np.searchsorted(np.asarray(wanted.edges, dtype=np.float64), losses, side="right")
        bins = np.bincount(where, minlength=len(wanted.edges) + 1).tolist()
    squares = exact_square_sum(a, p) if wanted.squares and not spec.weight else None
    kept = losses[finite] if infinite else losses
    fractional = int(np.count_nonzero(kept != np.floor(kept)))
    return SliceProfile(len(a), acc.units, infinite, squares,
                        dict(zip(nonzero.tolist(), digits[nonzero].tolist())), bins, {block: state}, fractional,
                        baseline_blocks)


def _add_times(out: dict, table, piece, spec: ScanSpec, wanted: ProfileSpec, policy: str, slice_key=None) -> None:
    """Add the chunk's exact states by time value to ``out`` (keyed ``(slice_key, when)`` for a slice)."""
    names = spec.names
    if wanted.time_is_partition:
        groups = [((piece.partition.get(wanted.time_key),), table)]
    else:
        column = table[wanted.time_key]
        if pa.types.is_timestamp(column.type):  # one point per day, not per distinct instant
            table = table.set_column(table.schema.get_field_index(wanted.time_key), wanted.time_key,
                                     column.cast(pa.date32()))
        groups = split_rows(table, (wanted.time_key,), (wanted.time_key,), (None,))
    for (when,), part in groups:
        weight = part[spec.weight] if spec.weight else None
        state = chunk_state(part[spec.actual], part[spec.prediction], weight, nan_policy=policy, names=names)
        key = when if slice_key is None else (slice_key, when)
        out[key] = out[key].merge(state) if key in out else state
