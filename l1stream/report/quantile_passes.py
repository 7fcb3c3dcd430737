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
from l1stream.engine.quantiles import DIGIT_BITS, Bucket, descend, loss_patterns
from l1stream.errors import NonFiniteError
from l1stream.exact.native import compiled_select_pass
from l1stream.exact.summation import ExactSum
from l1stream.report.grouped import GroupedSelect

PASS_BUDGET = 1 << 25
"""Values collected by one pass at most, over every target (256 MiB of bit patterns)."""


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
    return np.bincount(((chosen >> shift) & np.uint64(0xFFFF)).astype(np.intp), minlength=1 << DIGIT_BITS)


def select_ranks_by_target(run_pass, targets: dict) -> tuple[dict, int]:
    """The loss bit patterns at 0-based ranks, for many targets in the same passes.

    ``targets`` maps each target to ``(histogram, ranks)``: its top-16-bit counts (65,536, from the
    first pass) and the ranks wanted.  ``run_pass(requests)`` scans the data once for
    ``{target: buckets}``.  Returns ``({target: {rank: pattern}}, passes run)``.

    A bucket too large to collect is counted by its next 16 bits, and a window of those next 16
    bits is collected beside it, around where its ranks would fall if the bucket's values were
    spread evenly (:func:`_window`): when the counts put a rank inside the window its value is
    there and no further pass is needed; otherwise the next pass looks for it as before.
    """
    root = Bucket(0, 0)
    found: dict = {target: {} for target in targets}
    state: dict = {}  # (target, rank) -> (bucket, rank within it, its size)
    for target, (histogram, ranks) in targets.items():
        for rank in ranks:
            state[(target, rank)] = descend(root, histogram, rank)
    passes = 0
    while state:
        for (target, rank), (bucket, _, _) in list(state.items()):
            if bucket.bits == 64:  # every bit known: the rank's value is the prefix itself
                found[target][rank] = bucket.prefix
                del state[(target, rank)]
        if not state:
            break
        collect, windows = _plan(state)
        requests: dict = {}
        for (target, _), (bucket, _, _) in state.items():
            requests.setdefault(target, set()).add(Bucket(bucket.prefix, bucket.bits, (target, bucket) in collect))
        for (target, _), found_windows in windows.items():
            requests[target].update(found_windows)
        result = run_pass({target: tuple(sorted(buckets, key=repr)) for target, buckets in requests.items()})
        passes += 1
        next_state: dict = {}
        wanted_within: dict = {}  # (target, the values' bucket, the bucket they are taken from) -> {rank: within}
        sizes: dict = {}  # (target, bucket) -> the count of the values a window holds for it
        for (target, rank), (bucket, within, _) in state.items():
            asked = Bucket(bucket.prefix, bucket.bits, (target, bucket) in collect)
            if asked.collect:
                wanted_within.setdefault((target, asked, asked), {})[rank] = within
                continue
            child, child_within, size = descend(bucket, result[(target, asked)], within)
            window = next((w for w in windows.get((target, bucket), ()) if 0 <= child.prefix - w.prefix < w.span), None)
            if window is not None:
                wanted_within.setdefault((target, child, window), {})[rank] = child_within
                sizes[(target, child)] = size
            else:
                next_state[(target, rank)] = (child, child_within, size)
        for (target, values_bucket, taken_from), ranks in wanted_within.items():  # a bucket's ranks: one partition
            values = result.get((target, taken_from), np.empty(0, np.uint64))
            if taken_from is not values_bucket:
                values = values_bucket.select(values)
                if len(values) != sizes[(target, values_bucket)]:  # the same pass counted them: never
                    raise RuntimeError(f"l1stream bug: a quantile window holds {len(values)} values of a bucket "
                                       f"the same pass counted {sizes[(target, values_bucket)]} of")
            kth = sorted(set(ranks.values()))
            values = np.partition(values, kth) if len(values) else values
            for rank, within in ranks.items():
                found[target][rank] = int(values[within])
        state = next_state
    return found, passes


def _plan(state: dict) -> tuple[set, dict]:
    """Which of this pass's buckets to collect, and the windows to collect beside those counted.

    Smallest first, within the pass's budget: ``({(target, bucket)}, {(target, bucket): [window]})``.
    """
    sizes: dict = {}
    ranks: dict = {}
    for (target, _), (bucket, within, size) in state.items():
        sizes[(target, bucket)] = size
        ranks.setdefault((target, bucket), []).append(within)
    budget, collect, windows = PASS_BUDGET, set(), {}
    for name, size in sorted(sizes.items(), key=lambda item: (item[1], repr(item[0]))):
        if size <= quantiles.COLLECT_LIMIT and size <= budget:
            collect.add(name)
            budget -= size
        else:
            found = _windows(name[1], size, ranks[name])[:budget // quantiles.COLLECT_LIMIT]
            if found:
                windows[name] = found
                budget -= len(found) * quantiles.COLLECT_LIMIT
    return collect, windows


def _windows(bucket: Bucket, size: int, withins: list) -> list:
    """Collecting buckets over the next 16 bits of ``bucket`` (``size`` values) where the ranks
    ``withins`` would fall if its values were spread evenly, each wide enough to hold
    ``COLLECT_LIMIT`` of them if they were: one per group of nearby ranks (none when the bucket's
    next 16 bits are its last).

    Examples
    --------
    >>> limit = quantiles.COLLECT_LIMIT
    >>> _windows(Bucket(0x40E0, 16), 4 * limit, [2 * limit, 2 * limit + 1]) == [Bucket(0x40E06000, 32, True, 0x4000)]
    True
    >>> [w.prefix & 0xFFFF for w in _windows(Bucket(0x40E0, 16), 4 * limit, [0, 4 * limit - 1])]
    [0, 49152]
    """
    if bucket.bits > 32:
        return []
    digits = 1 << DIGIT_BITS
    width = min(digits, max(1, digits * quantiles.COLLECT_LIMIT // size))
    estimates = sorted({within * digits // size for within in withins})
    groups: list = []
    for estimate in estimates:
        if groups and estimate - groups[-1][0] <= width // 2:
            groups[-1][1] = estimate
        else:
            groups.append([estimate, estimate])
    windows = []
    for low, high in groups:
        first = min(max((low + high) // 2 - width // 2, 0), digits - width)
        windows.append(Bucket((bucket.prefix << DIGIT_BITS) | first, bucket.bits + DIGIT_BITS, True, width))
    return windows


def tail_bucket(histogram: np.ndarray, rank: int) -> tuple[Bucket, bool]:
    """A bucket holding the ``rank``-th loss's neighbours above it, and whether to collect it: its
    top-16-bit bin when small enough to collect, else a window of the bin where the rank should
    fall, else (not collected) the bin.

    Examples
    --------
    >>> counts = np.zeros(1 << 16, np.int64); counts[0x3FF0] = 10
    >>> tail_bucket(counts, 9) == (Bucket(0x3FF0, 16, True), True)
    True
    """
    bucket, within, size = descend(Bucket(0, 0), histogram, rank)
    if size <= quantiles.COLLECT_LIMIT:
        return Bucket(bucket.prefix, bucket.bits, True), True
    windows = _windows(bucket, size, [within])
    return (windows[0], True) if windows else (bucket, False)
