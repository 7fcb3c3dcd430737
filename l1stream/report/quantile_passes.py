"""Exact quantiles of the loss, overall and per slice, in the same passes after the first.

The first pass left, per slice and overall, the counts of the losses' top 16 bits
(:attr:`~l1stream.report.profile.SliceProfile.log_counts`).  For every rank wanted (the median's
middle values, numpy's linear-quantile neighbours, the top-1% threshold) that histogram names the
bucket holding it; one more pass collects the values of every such bucket at once, for every
slice, and they are sorted here: usually one pass for all the quantiles of all the slices.  A
bucket too large to collect (over ``COLLECT_LIMIT`` values, or over the pass's budget) is
counted by its next 16 bits instead and collected in a later pass (:mod:`l1stream.engine.quantiles`'
radix selection, per slice).  The same pass counts and sums, exactly, the losses above the
top-1% threshold's bucket (the top-1% share).

A pass reads a plain spec's pieces as their pages decode (the C ``SelectPass`` consumer), others
as tables.  Results equal numpy's ``median`` and ``quantile(method="linear")`` bit for bit.
"""

from __future__ import annotations

import numpy as np

from l1stream.engine import quantiles
from l1stream.engine.direct import feed_piece
from l1stream.engine.pieces import ScanSpec
from l1stream.engine.quantiles import DIGIT_BITS, Bucket, loss_patterns
from l1stream.errors import NonFiniteError
from l1stream.exact.native import compiled_select_pass
from l1stream.exact.summation import ExactSum
from l1stream.report.grouped import summed_grouped_select

PASS_BUDGET = 1 << 25
"""Values collected by one pass at most, over every target (256 MiB of bit patterns)."""


def select_pass_pieces(pieces, spec: ScanSpec, filesystem, requests: dict, tail_above: int | None = None) -> dict:
    """One pass over some pieces: ``{(target, bucket): values or next-16-bit counts}``, plus
    ``"tail"``: ``(rows, exact units)`` of the finite losses above ``tail_above``.  A target is
    ``None`` (every row) or a slice key (the rows of that slice); ``requests`` maps targets to
    their buckets."""
    out: dict = {}
    tail = [0, 0]
    for piece in pieces:
        key = tuple(piece.partition.get(k) for k in spec.by)
        mine = [(target, bucket) for target, buckets in requests.items() if target is None or target == key
                for bucket in buckets]
        found = None if spec.data_by else _summed_select(piece, spec, filesystem, mine, tail_above)
        if found is None:
            found = _table_select(piece, spec, filesystem, requests, tail_above)
        for name, value in found.items():
            if name == "tail":
                tail[0] += value[0]
                tail[1] += value[1]
            else:
                _add(out, name, value)
    out["tail"] = tuple(tail)
    return out


def _add(out: dict, name, value) -> None:
    if name not in out:
        out[name] = value
    elif name[1].collect:
        out[name] = np.concatenate([out[name], value])
    else:
        out[name] = out[name] + value


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
    consumer = compiled_select_pass([(b.prefix, b.bits, b.collect) for _, b in wanted], tail_above)
    if consumer is None:
        return None
    fed = feed_piece(piece, spec, filesystem, None, lambda *range_: (consumer.consumer(), lambda: None),
                     lambda *taken: None)
    if fed is None:
        return None
    results, (tail_rows, tail_units) = consumer.results()
    out: dict = {"tail": (tail_rows, tail_units)}
    for (target, bucket), raw in zip(wanted, results):
        out[(target, bucket)] = np.frombuffer(raw, dtype=np.uint64 if bucket.collect else np.int64).copy()
    return out


def _table_select(piece, spec: ScanSpec, filesystem, requests: dict, tail_above) -> dict:
    from l1stream.engine.scan import iter_piece_chunks
    from l1stream.engine.slicing import slice_groups

    out: dict = {}
    tail_rows, tail, summed_tail = 0, ExactSum(), 0
    for index, _, table in iter_piece_chunks(piece, spec, filesystem):
        if not table.num_rows:
            continue
        summed = summed_grouped_select(table, piece, spec, requests, tail_above)
        if summed is not None:
            for name, value in summed.items():
                if name == "tail":
                    tail_rows += value[0]
                    summed_tail += value[1]
                else:
                    _add(out, name, value)
            continue
        try:
            for key, part in slice_groups(table, piece, spec):
                patterns, _ = loss_patterns(part[spec.actual], part[spec.prediction], spec)
                if tail_above is not None:
                    above = patterns[patterns > np.uint64(tail_above)].view(np.float64)
                    above = above[np.isfinite(above)]
                    tail_rows += int(above.shape[0])
                    tail.add_values(above)
                for target, buckets in requests.items():
                    if target is not None and target != key:
                        continue
                    for bucket in buckets:
                        _add(out, (target, bucket), _select(bucket, patterns))
        except NonFiniteError as exc:
            raise NonFiniteError(f"{piece.path}: row group {index}: {exc.message}", path=piece.path) from exc
    out["tail"] = (tail_rows, tail.units + summed_tail)
    return out


def _select(bucket: Bucket, patterns: np.ndarray) -> np.ndarray:
    chosen = bucket.select(patterns)
    if bucket.collect:
        return chosen
    shift = np.uint64(64 - bucket.bits - DIGIT_BITS)
    return np.bincount(((chosen >> shift) & np.uint64(0xFFFF)).astype(np.intp), minlength=1 << DIGIT_BITS)


def select_ranks_by_target(run_pass, targets: dict) -> tuple[dict, int]:
    """The loss bit patterns at 0-based ranks, for many targets in the same passes.

    ``targets`` maps each target to ``(histogram, ranks)``: its top-16-bit counts (65,536, from the
    first pass) and the ranks wanted.  ``run_pass(requests)`` scans the data once for
    ``{target: buckets}``.  Returns ``({target: {rank: pattern}}, passes run)``.
    """
    root = Bucket(0, 0)
    found: dict = {target: {} for target in targets}
    state: dict = {}  # (target, rank) -> (bucket, rank within it, its size)
    for target, (histogram, ranks) in targets.items():
        for rank in ranks:
            state[(target, rank)] = _descend(root, histogram, rank)
    passes = 0
    while state:
        sizes: dict = {}
        for (target, _), (bucket, _, size) in state.items():
            sizes[(target, bucket)] = size
        budget, collect = PASS_BUDGET, set()
        for name, size in sorted(sizes.items(), key=lambda item: (item[1], repr(item[0]))):
            if size <= quantiles.COLLECT_LIMIT and size <= budget and name[1].bits < 64:
                collect.add(name)
                budget -= size
        requests: dict = {}
        for (target, bucket) in sizes:
            if bucket.bits == 64:
                continue
            requests.setdefault(target, set()).add(Bucket(bucket.prefix, bucket.bits, (target, bucket) in collect))
        for (target, rank), (bucket, _, _) in list(state.items()):
            if bucket.bits == 64:  # every bit known: the rank's value is the prefix itself
                found[target][rank] = bucket.prefix
                del state[(target, rank)]
        if not requests:
            break
        result = run_pass({target: tuple(sorted(buckets, key=repr)) for target, buckets in requests.items()})
        passes += 1
        next_state: dict = {}
        wanted_within: dict = {}
        for (target, rank), (bucket, within, _) in state.items():
            asked = Bucket(bucket.prefix, bucket.bits, (target, bucket) in collect)
            if asked.collect:
                wanted_within.setdefault((target, asked), {})[rank] = within
            else:
                next_state[(target, rank)] = _descend(bucket, result[(target, asked)], within)
        for (target, asked), ranks in wanted_within.items():  # every rank of a bucket in one partition
            values = result.get((target, asked), np.empty(0, np.uint64))
            kth = sorted(set(ranks.values()))
            values = np.partition(values, kth) if len(values) else values
            for rank, within in ranks.items():
                found[target][rank] = int(values[within])
        state = next_state
    return found, passes


def _descend(bucket: Bucket, histogram: np.ndarray, within: int):
    """The sub-bucket holding the ``within``-th value, the rank inside it, and its size."""
    cumulative = np.cumsum(histogram)
    digit = int(np.searchsorted(cumulative, within, side="right"))
    below = int(cumulative[digit - 1]) if digit else 0
    child = Bucket((bucket.prefix << DIGIT_BITS) | digit, bucket.bits + DIGIT_BITS)
    return child, within - below, int(histogram[digit])
