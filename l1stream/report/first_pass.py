"""The report's first pass: the evaluation and the error profile from one read of every row.

A report used to read the data for the evaluation, then again for the profile (histograms,
squares, jackknife blocks, time series), then for the quantiles.  Here one task function gathers
the evaluation's :class:`~l1stream.engine.scan_state.ScanState` and the
:class:`~l1stream.report.profile.Profile` together, piece by piece:

- summed as the pages decode (``engine/direct.py`` with the C ``ProfileSum`` consumer) for a plain
  spec: two DOUBLE columns, no filter, weight or baseline, slices and the time key partition keys
  at most, no fixed bins; a piece the page decoder declines (nulls, a value that is not finite) is
  read as below, whole;
- as tables otherwise, each chunk reduced as :func:`~l1stream.engine.tasks.scan_pieces` reduces it
  and profiled as :func:`~l1stream.report.grouped.profile_pieces` profiles it.

Every slice is profiled, up to :data:`ONE_READ_SLICES` of them; the largest are kept one by one
afterwards (:meth:`Profile.keep`).  Slices that are columns in the files are regrouped in C for
the same consumer (:class:`~l1stream.report.grouped.GroupedProfile`).
"""

from __future__ import annotations

from dataclasses import dataclass

from l1stream.engine.direct import feed_piece
from l1stream.engine.pieces import FramePart, ScanSpec
from l1stream.engine.quantiles import COLLECT_LIMIT
from l1stream.engine.remote import prefetch_small_files
from l1stream.engine.scan_state import FileReport, ScanState
from l1stream.engine.tasks import scan_one, skipped_reason
from l1stream.errors import BadFileError, SchemaError
from l1stream.exact.l1state import L1State, state_of_units
from l1stream.exact.native import compiled_profile_sum, tee
from l1stream.report.grouped import ConsumerDeclined, GroupedProfile
from l1stream.report.intervals import block_of
from l1stream.report.profile import Profile, ProfileSpec, profile_chunk, summed_slice_profile
from l1stream.report.quantile_passes import PieceSelect, TableSelect, drop_over, merge_select
from l1stream.report.selection import PASS_BUDGET

SELECTED_LIMIT = 4 * COLLECT_LIMIT
"""Values one bucket of a selection made in the first pass may collect (its size was guessed from a
sample): beyond, its values are dropped, and the ranks in it are found by the ordinary passes; and
all its buckets together hold at most ``selection.PASS_BUDGET`` (the largest dropped first)."""

ONE_READ_SLICES = 10_000
"""Slices the first pass profiles at most; with more (slice columns of many values) it gives the
profile up and the job runs a profile pass for the largest slices once their sizes are known."""


@dataclass
class FirstPass:
    """The evaluation's scan state and the profile of the same rows (a commutative monoid, exact);
    ``profiled`` False once the slices outnumbered :data:`ONE_READ_SLICES` (the profile is then
    empty)."""

    scan: ScanState
    profile: Profile
    profiled: bool = True
    selected: dict | None = None
    """With ``select``: the quantile pass's result (:func:`~l1stream.report.quantile_passes.merge_select`)
    over the pieces selected as they were read."""
    unselected: tuple = ()
    """With ``select``: the pieces read without it (too many slices), whose part comes later."""

    @classmethod
    def empty(cls, selecting: bool = False) -> "FirstPass":
        return cls(ScanState.empty(), Profile(), selected={"tail": (0, 0)} if selecting else None)

    def merge(self, other: "FirstPass") -> "FirstPass":
        profiled = self.profiled and other.profiled
        profile = self.profile.merge(other.profile) if profiled else Profile()
        if len(profile.slices) > ONE_READ_SLICES:
            profile, profiled = Profile(), False
        selected = [part for part in (self.selected, other.selected) if part is not None]
        return FirstPass(self.scan.merge(other.scan), profile, profiled,
                         drop_over(merge_select(selected), SELECTED_LIMIT, PASS_BUDGET) if selected else None,
                         self.unselected + other.unselected)


def merge_first_passes(parts) -> FirstPass:
    total = FirstPass.empty()
    for part in parts:
        total = total.merge(part)
    return total


def first_pass_pieces(pieces, spec: ScanSpec, filesystem, wanted: ProfileSpec,
                      select: tuple | None = None) -> FirstPass:
    """The first pass over some pieces (the task function); a bad file raises or, under
    ``on_bad_file="skip"``, is recorded as skipped and left out of every part.

    ``select``: ``(requests, tail_above)`` of a quantile pass
    (:func:`~l1stream.report.quantile_passes.select_pass_pieces`) made in the same read; its result
    is :attr:`FirstPass.selected`, and the pieces it could not be made for are listed in
    :attr:`FirstPass.unselected`."""
    out = FirstPass.empty(select is not None)
    fetched = prefetch_small_files([p for p in pieces if not isinstance(p, FramePart)], filesystem)
    for piece in pieces:
        data = fetched.pop(piece.path, None)
        try:
            if not out.profiled:  # too many slices: the evaluation alone
                out.scan = out.scan.merge(scan_one(piece, spec, filesystem, data))
                out.scan.fragments_read += 1
                out.unselected += (piece,) if select is not None else ()
                continue
            part = summed_first_pass(piece, spec, filesystem, data, wanted, select)
            if part is None:
                part = _table_first_pass(piece, spec, filesystem, data, wanted, select)
        except (BadFileError, SchemaError) as exc:
            if spec.on_bad_file != "skip":
                raise
            out.scan.skipped[piece.path] = skipped_reason(getattr(exc, "problem", exc.message), piece.path)
            continue
        part.scan.fragments_read += 1
        out = out.merge(part)
    return out


def summed_first_pass(piece, spec: ScanSpec, filesystem, data, wanted: ProfileSpec,
                      select: tuple | None = None) -> FirstPass | None:
    """A piece's first pass summed as its pages decode, or None (read it as tables)."""
    if wanted.edges is not None or (wanted.time_key and not wanted.time_is_partition) or spec.baseline:
        return None
    total = compiled_profile_sum()
    if total is None:
        return None
    chooser = PieceSelect.of(piece, spec, *select) if select is not None else None
    if select is not None and chooser is None:
        return None
    blocks: dict = {}

    def consumer(index: int, start: int, stop: int):
        if chooser is None:
            return total.consumer(), total.cut
        return tee(total.consumer(), chooser.consumer.consumer()), total.cut

    def taken(index: int, start: int, stop: int, cut) -> None:
        state = state_of_units(*cut)
        block = block_of(piece.path, index)
        blocks[block] = blocks[block].merge(state) if block in blocks else state

    fed = feed_piece(piece, spec, filesystem, data, consumer, taken)
    if fed is None:
        return None
    key = tuple(piece.partition.get(k) for k in spec.by)
    state = L1State.empty()
    for block in sorted(blocks, key=repr):
        state = state.merge(blocks[block])
    out = FirstPass.empty()
    out.selected = chooser.results() if chooser is not None else None
    report = FileReport(rows_scanned=fed[1], row_groups=fed[0])
    report.add_state(state)
    out.scan.files[piece.path] = report
    if not state.count:
        return out  # slices appear only when they have rows
    out.scan.add_group_state(key, state)
    profiled = summed_slice_profile(total, blocks, wanted.squares)
    if wanted.slices is not None and key not in wanted.slices:
        out.profile.rest = profiled
    else:
        out.profile.slices[key] = profiled
    if wanted.time_key:
        when = piece.partition.get(wanted.time_key)
        out.profile.times[when] = state
        if wanted.time_slices is None or key in wanted.time_slices:
            out.profile.slice_times[(key, when)] = state
    return out


def _table_first_pass(piece, spec: ScanSpec, filesystem, data, wanted: ProfileSpec,
                      select: tuple | None = None) -> FirstPass:
    try:
        return _tables(piece, spec, filesystem, data, wanted, GroupedProfile.of(piece, spec, wanted), select)
    except ConsumerDeclined:  # finite rows beyond the C consumer's exact range: all the numpy way
        return _tables(piece, spec, filesystem, data, wanted, None, select)


def _tables(piece, spec: ScanSpec, filesystem, data, wanted: ProfileSpec, grouped, select) -> FirstPass:
    from l1stream.engine.scan import iter_piece_chunks, reduce_chunk

    out = FirstPass.empty()
    report = FileReport()
    policy = "raise" if spec.nan_policy == "raise" else "omit"
    chooser = TableSelect(piece, spec, *select) if select is not None else None
    fused = chooser.grouped if chooser is not None else None  # one regrouping feeds both
    # each chunk is reduced, profiled and selected from before the next is read, and nothing
    # keeps its arrays
    for index, offset, table in iter_piece_chunks(piece, spec, filesystem, report, recycle=True,
                                                  dictionary_keys=True, data=data):
        summed = grouped.take(table, index, fused) if grouped and table.num_rows else None
        if chooser is not None and (summed is None or fused is None):
            chooser.take(table, index)
        if summed is not None:  # the slices' exact states from the same consumers
            for key, state in summed:
                out.scan.add_group_state(key, state)
                report.add_state(state)
            continue
        reduce_chunk(table, piece, spec, out.scan, report, index, offset)
        profile_chunk(out.profile, table, piece, index, spec, wanted, policy)
    out.scan.files[piece.path] = report
    if grouped:
        out.profile = grouped.finish(out.profile)
    out.selected = chooser.results() if chooser is not None else None
    return out
