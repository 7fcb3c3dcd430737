"""The quantile passes over the data: per piece, the buckets each target asks for.

A target is None (every row) or a slice key.  A plain spec's pieces are read as their pages decode
(the C ``SelectPass`` consumer), pieces sliced by a column through :class:`~l1stream.report.
grouped.GroupedSelect`, anything else as tables with numpy; the same pass counts and sums, exactly,
the losses above a pattern (the top-1% share).  Which buckets to ask for, and the ranks' values from
the answers: :mod:`l1stream.report.selection`.
"""

from __future__ import annotations

import numpy as np

from l1stream.engine.direct import feed_piece
from l1stream.engine.pieces import ScanSpec
from l1stream.engine.quantiles import DIGIT_BITS, Bucket, finite_above, loss_patterns
from l1stream.errors import NonFiniteError
from l1stream.exact.native import compiled_select_pass
from l1stream.exact.summation import ExactSum
from l1stream.report.grouped import MAX_BUCKETS, GroupedSelect


def select_pass_pieces(pieces, spec: ScanSpec, filesystem, requests: dict, tail_above: int | None = None) -> dict:
    """One pass over some pieces: ``{(target, bucket): values or next-16-bit counts}``, plus
    ``"tail"``: ``(rows, exact units)`` of the finite losses above ``tail_above``.  A target is
    ``None`` (every row) or a slice key (the rows of that slice); ``requests`` maps targets to
    their buckets."""
    return merge_select(_piece_select(piece, spec, filesystem, requests, tail_above) for piece in pieces)


def _piece_select(piece, spec: ScanSpec, filesystem, requests: dict, tail_above) -> dict:
    found = None if spec.data_by else _summed_select(piece, spec, filesystem, requests, tail_above)
    return _table_select(piece, spec, filesystem, requests, tail_above) if found is None else found


def _add(out: dict, name, value) -> None:
    """Add a piece's (or a part's) result for a bucket: collected values are kept as a list of
    arrays, joined once by :func:`finish_select` (joining piece by piece would copy them again
    for every piece); counts are summed."""
    if name[1].collect:
        if value is None or out.get(name, ()) is None:  # dropped (over a limit): stays dropped
            out[name] = None
        else:
            out.setdefault(name, []).extend(value if isinstance(value, list) else [value])
    elif name not in out:
        out[name] = value
    else:
        out[name] = out[name] + value


def finish_select(found: dict) -> dict:
    """A pass's merged result with every bucket's collected values in one array (None: dropped,
    :func:`drop_over`)."""
    return {name: (np.concatenate(value) if value else np.empty(0, np.uint64)) if isinstance(value, list) else value
            for name, value in found.items()}


def drop_over(found: dict, limit: int, total: int) -> dict:
    """A merged result without the values of any bucket that collected more than ``limit``, nor of
    the largest buckets while all of them hold more than ``total`` (None in their place): a pass
    planned from a sample asks for buckets whose sizes it guessed.

    Examples
    --------
    >>> collected = [np.zeros(n, np.uint64) for n in (3, 5, 2)]
    >>> found = {("t", Bucket(i, 16, True)): [values] for i, values in enumerate(collected)}
    >>> [v is None for v in drop_over(found, 4, 10).values()]
    [False, True, False]
    >>> [v is None for v in drop_over(found, 4, 4).values()]
    [True, True, False]
    """
    sizes = {name: sum(len(part) for part in value) for name, value in found.items() if isinstance(value, list)}
    held = 0
    for name, size in sorted(sizes.items(), key=lambda item: item[1]):  # smallest kept first
        if size > limit or held + size > total:
            found[name] = None
        else:
            held += size
    return found


def merge_select(parts) -> dict:
    total: dict = {}
    tail = [0, 0]
    for part in parts:
        for name, value in part.items():
            if name == "tail":
                tail[0] += value[0]
                tail[1] += value[1]
            else:
                _add(total, name, value)
    total["tail"] = tuple(tail)
    return total


class PieceSelect:
    """A piece's part of a quantile pass fed as its pages decode: one ``SelectPass`` over the piece's
    row ranges (its slice is its partition keys), for the buckets of target None and of the
    piece's slice.  :meth:`of` gives None where the C consumer does not apply."""

    def __init__(self, consumer, wanted: list):
        self.consumer, self.wanted = consumer, wanted

    @classmethod
    def of(cls, piece, spec: ScanSpec, requests: dict, tail_above) -> "PieceSelect | None":
        key = tuple(piece.partition.get(k) for k in spec.by)
        wanted = [(target, bucket) for target, buckets in requests.items() if target is None or target == key
                  for bucket in buckets]
        if spec.data_by or len(wanted) > MAX_BUCKETS:  # slice columns, or over the consumer's limit: tables
            return None
        consumer = compiled_select_pass([b.selection for _, b in wanted], tail_above)
        return None if consumer is None else cls(consumer, wanted)

    def results(self) -> dict:
        found = self.consumer.results()
        if found is None:
            raise MemoryError("a quantile pass could not keep the values it collects")
        results, (tail_rows, tail_units) = found
        out: dict = {"tail": (tail_rows, tail_units)}
        for (target, bucket), raw in zip(self.wanted, results):
            out[(target, bucket)] = np.frombuffer(raw, dtype=np.uint64 if bucket.collect else np.int64)
        return out


def _summed_select(piece, spec: ScanSpec, filesystem, requests: dict, tail_above) -> dict | None:
    """A piece's part of the pass, read as its pages decode (slices are partition keys here)."""
    chooser = PieceSelect.of(piece, spec, requests, tail_above)
    if chooser is None:
        return None
    fed = feed_piece(piece, spec, filesystem, None, lambda *range_: (chooser.consumer.consumer(), lambda: None),
                     lambda *taken: None)
    return None if fed is None else chooser.results()


def _table_select(piece, spec: ScanSpec, filesystem, requests: dict, tail_above) -> dict:
    from l1stream.engine.scan import iter_piece_chunks

    chooser = TableSelect(piece, spec, requests, tail_above)
    for index, _, table in iter_piece_chunks(piece, spec, filesystem, recycle=True, dictionary_keys=True):
        chooser.take(table, index)
    return chooser.results()


class TableSelect:
    """A piece's part of a quantile pass from its chunks as tables (:meth:`take` each, then
    :meth:`results`): through :class:`~l1stream.report.grouped.GroupedSelect` where it takes the
    chunk, else with numpy."""

    def __init__(self, piece, spec: ScanSpec, requests: dict, tail_above):
        self.piece, self.spec, self.requests, self.tail_above = piece, spec, requests, tail_above
        self.out: dict = {}
        self.tail_rows, self.tail = 0, ExactSum()
        self.grouped = GroupedSelect.of(piece, spec, requests, tail_above)

    def take(self, table, index: int) -> None:
        from l1stream.engine.slicing import slice_groups

        if not table.num_rows or (self.grouped is not None and self.grouped.take(table)):
            return
        spec = self.spec
        try:
            for key, part in slice_groups(table, self.piece, spec):
                patterns, _ = loss_patterns(part[spec.actual], part[spec.prediction], spec)
                if self.tail_above is not None:
                    above = finite_above(patterns, self.tail_above)
                    self.tail_rows += int(above.shape[0])
                    self.tail.add_values(above)
                for target, buckets in self.requests.items():
                    if target is not None and target != key:
                        continue
                    for bucket in buckets:
                        _add(self.out, (target, bucket), _select(bucket, patterns))
        except NonFiniteError as exc:
            raise NonFiniteError(f"{self.piece.path}: row group {index}: {exc.message}", path=self.piece.path) from exc

    def results(self) -> dict:
        out = dict(self.out)
        summed_rows, summed_units = 0, 0
        if self.grouped is not None:
            for name, value in self.grouped.results().items():
                if name == "tail":
                    summed_rows, summed_units = value
                else:
                    _add(out, name, value)
        out["tail"] = (self.tail_rows + summed_rows, self.tail.units + summed_units)
        return out


def _select(bucket: Bucket, patterns: np.ndarray) -> np.ndarray:
    chosen = bucket.select(patterns)
    if bucket.collect:
        return chosen
    shift = np.uint64(64 - bucket.bits - DIGIT_BITS)
    digits = ((chosen >> shift) & np.uint64(0xFFFF)) >> np.uint64(bucket.shift)
    return np.bincount(digits.astype(np.intp), minlength=(1 << DIGIT_BITS) >> bucket.shift)
