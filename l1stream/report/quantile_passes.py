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
from l1stream.report.grouped import GroupedSelect


def select_pass_pieces(pieces, spec: ScanSpec, filesystem, requests: dict, tail_above: int | None = None) -> dict:
    """One pass over some pieces: ``{(target, bucket): values or next-16-bit counts}``, plus
    ``"tail"``: ``(rows, exact units)`` of the finite losses above ``tail_above``.  A target is
    ``None`` (every row) or a slice key (the rows of that slice); ``requests`` maps targets to
    their buckets."""
    return merge_select(_piece_select(piece, spec, filesystem, requests, tail_above) for piece in pieces)


def _piece_select(piece, spec: ScanSpec, filesystem, requests: dict, tail_above) -> dict:
    key = tuple(piece.partition.get(k) for k in spec.by)
    mine = [(target, bucket) for target, buckets in requests.items() if target is None or target == key
            for bucket in buckets]
    found = None if spec.data_by else _summed_select(piece, spec, filesystem, mine, tail_above)
    return _table_select(piece, spec, filesystem, requests, tail_above) if found is None else found


def _add(out: dict, name, value) -> None:
    """Add a piece's (or a part's) result for a bucket: collected values are kept as a list of
    arrays, joined once by :func:`finish_select` (joining piece by piece would copy them again
    for every piece); counts are summed."""
    if name[1].collect:
        out.setdefault(name, []).extend(value if isinstance(value, list) else [value])
    elif name not in out:
        out[name] = value
    else:
        out[name] = out[name] + value


def finish_select(found: dict) -> dict:
    """A pass's merged result with every bucket's collected values in one array."""
    return {name: (np.concatenate(value) if value else np.empty(0, np.uint64)) if isinstance(value, list) else value
            for name, value in found.items()}


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


def _summed_select(piece, spec: ScanSpec, filesystem, wanted: list, tail_above) -> dict | None:
    """A piece's part of the pass, read as its pages decode (slices are partition keys here)."""
    if len(wanted) > 64:  # the consumer's limit: tables then
        return None
    consumer = compiled_select_pass([b.selection for _, b in wanted], tail_above)
    if consumer is None:
        return None
    fed = feed_piece(piece, spec, filesystem, None, lambda *range_: (consumer.consumer(), lambda: None),
                     lambda *taken: None)
    if fed is None:
        return None
    results, (tail_rows, tail_units) = consumer.results()
    out: dict = {"tail": (tail_rows, tail_units)}
    for (target, bucket), raw in zip(wanted, results):
        out[(target, bucket)] = np.frombuffer(raw, dtype=np.uint64 if bucket.collect else np.int64)
    return out


def _table_select(piece, spec: ScanSpec, filesystem, requests: dict, tail_above) -> dict:
    from l1stream.engine.scan import iter_piece_chunks
    from l1stream.engine.slicing import slice_groups

    out: dict = {}
    tail_rows, tail = 0, ExactSum()
    grouped = GroupedSelect.of(piece, spec, requests, tail_above)
    for index, _, table in iter_piece_chunks(piece, spec, filesystem, recycle=True, dictionary_keys=True):
        if not table.num_rows or (grouped is not None and grouped.take(table)):
            continue
        try:
            for key, part in slice_groups(table, piece, spec):
                patterns, _ = loss_patterns(part[spec.actual], part[spec.prediction], spec)
                if tail_above is not None:
                    above = finite_above(patterns, tail_above)
                    tail_rows += int(above.shape[0])
                    tail.add_values(above)
                for target, buckets in requests.items():
                    if target is not None and target != key:
                        continue
                    for bucket in buckets:
                        _add(out, (target, bucket), _select(bucket, patterns))
        except NonFiniteError as exc:
            raise NonFiniteError(f"{piece.path}: row group {index}: {exc.message}", path=piece.path) from exc
    summed_rows, summed_units = 0, 0
    if grouped is not None:
        for name, value in grouped.results().items():
            if name == "tail":
                summed_rows, summed_units = value
            else:
                _add(out, name, value)
    out["tail"] = (tail_rows + summed_rows, tail.units + summed_units)
    return out


def _select(bucket: Bucket, patterns: np.ndarray) -> np.ndarray:
    chosen = bucket.select(patterns)
    if bucket.collect:
        return chosen
    shift = np.uint64(64 - bucket.bits - DIGIT_BITS)
    digits = ((chosen >> shift) & np.uint64(0xFFFF)) >> np.uint64(bucket.shift)
    return np.bincount(digits.astype(np.intp), minlength=(1 << DIGIT_BITS) >> bucket.shift)
