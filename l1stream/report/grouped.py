"""The report's passes over slices that are columns in the files, through the C consumers.

A piece sliced by partition keys alone is one slice: its pages go to one consumer as they decode
(:func:`~l1stream.report.first_pass.summed_first_pass`).  With a slice column (``by="region"``)
the piece is read as tables, and each chunk's rows are regrouped by slice in one counting sort
(``feed_by``, ``l1stream/exact/_kernel.c``), every slice's rows to its own consumer: a
``ProfileSum`` per slice and piece in the first pass (:class:`GroupedProfile`), a ``SelectPass``
per slice and piece in the quantile passes (:class:`GroupedSelect`).  A chunk they do not
take goes the numpy way (:func:`~l1stream.report.profile.profile_chunk`), chunk by chunk, so
nothing is read twice: float columns with nulls or values that are not finite, more than
:data:`GROUPED_LIMIT` slices in the chunk (or, for the first pass, in the piece).  A weight, a
baseline, fixed bins or a time key that is a column send every chunk that way.  Results are the
numpy path's, bit for bit (``tests/test_report_passes.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from l1stream.engine.pieces import ScanSpec
from l1stream.engine.slicing import dense_slice_codes
from l1stream.exact.columns import FLOAT, as_numeric
from l1stream.exact.l1state import state_of_units
from l1stream.exact.native import compiled_profile_sum, compiled_select_pass, feed_by, kernel_runs, tee
from l1stream.report.intervals import block_of
from l1stream.report.profile import Profile, ProfileSpec, profile_chunk, summed_slice_profile

GROUPED_LIMIT = 256
"""Slices of one chunk regrouped for the C consumers at most (more: numpy)."""

MAX_BUCKETS = 64
"""Buckets one ``SelectPass`` takes at most (``_profile.h``)."""


class ConsumerDeclined(Exception):
    """A slice's ``ProfileSum`` declined rows that are finite (beyond its exact range: magnitudes
    over 2**480, differences under 2**-480): the piece is read again the numpy way."""


class GroupedProfile:
    """The first pass's profile of one piece sliced by columns: one ``ProfileSum`` per slice over
    the piece's chunks (cut into a jackknife block per row group), turned into
    :class:`~l1stream.report.profile.SliceProfile` objects once, by :meth:`finish`.

    Made only where it applies (:meth:`of`); :meth:`take` then returns None for a chunk it
    does not take, which the caller profiles with numpy.
    """

    def __init__(self, piece, spec: ScanSpec, wanted: ProfileSpec):
        self.piece, self.spec, self.wanted = piece, spec, wanted
        self.base_key = tuple(piece.partition.get(k) for k in spec.by)
        self.sums: dict = {}  # slice key -> ProfileSum
        self.blocks: dict = {}  # slice key -> {block: L1State}
        self.times = Profile()  # the MAE over time of the chunks taken (a partition time key)

    @classmethod
    def of(cls, piece, spec: ScanSpec, wanted: ProfileSpec) -> "GroupedProfile | None":
        """One for ``piece``, or None where the C consumers do not apply to any chunk of it."""
        if not spec.data_by or spec.weight or spec.baseline or wanted.edges is not None or (
                wanted.time_key and not wanted.time_is_partition) or not kernel_runs():
            return None
        return cls(piece, spec, wanted)

    def take(self, table, index: int, select: "GroupedSelect | None" = None) -> list | None:
        """Feed the chunk of row group ``index``; each slice's ``(key, exact L1 state)`` of it (the
        evaluation's part), or None when not taken (nothing added).  ``select``: a quantile pass's
        consumers fed the same regrouped rows (when the chunk is taken).  Raises
        :class:`ConsumerDeclined` when a consumer declined finite rows."""
        taken = finite_slices(table, self.spec, self.base_key)
        if taken is None:
            return None
        pair, (codes, keys) = taken
        if len(self.sums.keys() | set(keys)) > GROUPED_LIMIT:  # bounded memory: numpy for the others
            return None
        sums = [self.sums.get(key) or self.sums.setdefault(key, compiled_profile_sum()) for key in keys]
        consumers = [total.consumer() for total in sums]
        if select is not None:
            consumers = select.joined(consumers, pair, keys)
        if feed_by(consumers, pair[0], pair[1], codes):
            raise ConsumerDeclined(self.piece.path)
        block = block_of(self.piece.path, index)
        wanted, when = self.wanted, self.piece.partition.get(self.wanted.time_key) if self.wanted.time_key else None
        states = []
        for key, total in zip(keys, sums):
            state = state_of_units(*total.cut())
            states.append((key, state))
            blocks = self.blocks.setdefault(key, {})
            blocks[block] = blocks[block].merge(state) if block in blocks else state
            if wanted.time_key:
                _merge_into(self.times.times, when, state)
                if wanted.time_slices is None or key in wanted.time_slices:
                    _merge_into(self.times.slice_times, (key, when), state)
        return states

    def finish(self, out: Profile) -> Profile:
        """``out`` plus the profile of every chunk taken."""
        part = self.times
        for key in sorted(self.sums, key=repr):
            prof = summed_slice_profile(self.sums[key], self.blocks[key], self.wanted.squares)
            if self.wanted.slices is not None and key not in self.wanted.slices:
                part.rest = part.rest.merge(prof)
            else:
                part.slices[key] = prof
        return out.merge(part)


def _merge_into(states: dict, key, state) -> None:
    states[key] = states[key].merge(state) if key in states else state


def profile_pieces(pieces, spec: ScanSpec, filesystem, wanted: ProfileSpec) -> Profile:
    """The profile of some pieces' rows (the task function of the profile pass)."""
    from l1stream.engine.scan import iter_piece_chunks

    out = Profile()
    policy = "raise" if spec.nan_policy == "raise" else "omit"
    for piece in pieces:
        grouped = GroupedProfile.of(piece, spec, wanted)
        part = Profile()
        try:
            for index, _, table in iter_piece_chunks(piece, spec, filesystem, recycle=True, dictionary_keys=True):
                if not table.num_rows or (grouped and grouped.take(table, index) is not None):
                    continue
                profile_chunk(part, table, piece, index, spec, wanted, policy)
        except ConsumerDeclined:
            part, grouped = Profile(), None
            for index, _, table in iter_piece_chunks(piece, spec, filesystem, recycle=True, dictionary_keys=True):
                profile_chunk(part, table, piece, index, spec, wanted, policy)
        out = out.merge(grouped.finish(part) if grouped else part)
    return out


def float_pair(table, spec: ScanSpec) -> tuple | None:
    """The actual and prediction columns as float64 arrays, or None when either has nulls or is
    not a float column."""
    a, p = as_numeric(table[spec.actual], spec.names[0]), as_numeric(table[spec.prediction], spec.names[1])
    if a.kind != FLOAT or p.kind != FLOAT or a.null is not None or p.null is not None:
        return None
    return np.ascontiguousarray(a.values, dtype=np.float64), np.ascontiguousarray(p.values, dtype=np.float64)


def finite_slices(table, spec: ScanSpec, base_key: tuple) -> tuple | None:
    """What the C consumers take of a chunk: ``((actual, prediction), (codes, keys))``, both float64
    arrays finite throughout and at most :data:`GROUPED_LIMIT` slices; None for a chunk left to numpy."""
    pair = float_pair(table, spec)
    if pair is None or not (np.isfinite(pair[0]).all() and np.isfinite(pair[1]).all()):
        return None
    grouped = dense_slice_codes(table, spec, base_key, GROUPED_LIMIT)
    return None if grouped is None else (pair, grouped)


class GroupedSelect:
    """A piece's part of a quantile pass by slice columns, through the C consumers: every row to
    the overall ``SelectPass`` (buckets of target None, and the tail), each requested slice's rows
    regrouped to its own, one consumer per slice over all the piece's chunks.

    Made only where it applies (:meth:`of`); :meth:`take` returns False for a chunk it does not
    take (nothing added; the caller reads it with numpy): float columns with nulls or values that
    are not finite, more than :data:`GROUPED_LIMIT` slices.  :meth:`results` gives what
    :func:`~l1stream.report.quantile_passes.select_pass_pieces` gives for the chunks taken.
    """

    def __init__(self, piece, spec: ScanSpec, requests: dict, tail_above):
        self.spec, self.requests, self.tail_above = spec, requests, tail_above
        self.base_key = tuple(piece.partition.get(k) for k in spec.by)
        self.overall: Any = None  # the SelectPass of every row, made with the first chunk taken
        self.per_slice: dict = {}  # slice key -> SelectPass (requested slices only)

    @classmethod
    def of(cls, piece, spec: ScanSpec, requests: dict, tail_above) -> "GroupedSelect | None":
        if not spec.data_by or any(len(buckets) > MAX_BUCKETS for buckets in requests.values()) \
                or not kernel_runs():
            return None
        return cls(piece, spec, requests, tail_above)

    def take(self, table) -> bool:
        taken = finite_slices(table, self.spec, self.base_key)
        if taken is None:
            return False
        (a, p), (codes, keys) = taken
        mine = self._every_row(a, p, keys)
        if feed_by([c and c.consumer() for c in mine], a, p, codes):
            raise MemoryError("a quantile pass could not keep the values it collects")
        return True

    def joined(self, consumers: list, pair: tuple, keys: list) -> list:
        """Take a chunk another pass regroups (:meth:`GroupedProfile.take`): every row to the
        overall consumer here, and each slice's consumer of ``consumers`` (in ``keys`` order) joined
        with this pass's for the slice (``tee``), to be fed by the caller."""
        mine = self._every_row(pair[0], pair[1], keys)
        return [tee(c, m.consumer()) if m is not None else c for c, m in zip(consumers, mine)]

    def _every_row(self, a, p, keys: list) -> list:
        """Every row of a chunk to the overall consumer; the slices' consumers, in ``keys`` order
        (None for a slice not asked for).  Finite values: a consumer declines nothing but for want
        of memory."""
        if self.overall is None:
            self.overall = compiled_select_pass([b.selection for b in self.requests.get(None, ())], self.tail_above)
        if not self.overall.add(a, p):
            raise MemoryError("a quantile pass could not keep the values it collects")
        return [self._consumer(key) for key in keys]

    def _consumer(self, key):
        if key not in self.requests:
            return None
        if key not in self.per_slice:
            self.per_slice[key] = compiled_select_pass([b.selection for b in self.requests[key]])
        return self.per_slice[key]

    def results(self) -> dict:
        out: dict = {"tail": (0, 0)}
        consumers = ([(None, self.overall)] if self.overall is not None else []) + list(self.per_slice.items())
        for target, consumer in consumers:
            found = consumer.results()
            if found is None:
                raise MemoryError("a quantile pass could not keep the values it collects")
            if target is None:
                out["tail"] = found[1]
            for bucket, raw in zip(self.requests.get(target, ()), found[0]):
                out[(target, bucket)] = np.frombuffer(raw, dtype=np.uint64 if bucket.collect else np.int64)
        return out
