"""Which buckets each quantile pass asks for, and the ranks' values from what it returns.

Pure logic, no I/O: ``run_pass`` (given by the caller) scans the data once for a set of buckets
(:class:`~l1stream.engine.quantiles.Bucket`) per target (None: every row; a slice key: its rows).

Every rank starts in a top-16-bit bucket named by the first pass's histogram.  A pass then
collects the values of every bucket small enough (``COLLECT_LIMIT``, within ``PASS_BUDGET`` for
the pass), and the ranks' values are found by one ``np.partition`` per bucket.  A bucket too large
to collect is counted instead, and beside the counts a *window* of it is collected where its ranks
would fall if its values were spread evenly (:func:`windows_for`).  Then:

- the counts are coarse (the next 8 bits, 256 counts: they stay in the cache where 65,536 did not),
  and the windows cover whole coarse bins; when the counts put a rank in a bin a window holds, the
  rank's value is among the window's values: no further pass;
- otherwise the rank's coarse bin (256 prefixes one level down) is collected in the next pass, or,
  if even that is too large (ties, or more than 256 x ``COLLECT_LIMIT`` values in one bucket), the
  bucket is counted again, finely (65,536 counts), and the descent goes on 16 bits at a time.

Results are numpy's order statistics bit for bit; only the number of passes depends on the data.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from l1stream.engine import quantiles
from l1stream.engine.quantiles import DIGIT_BITS, Bucket, descend

PASS_BUDGET = 1 << 25
"""Values collected by one pass at most, over every target (256 MiB of bit patterns)."""

COARSE = 8
"""A windowed bucket's counts drop this many low bits of the next 16: 256 counts."""


class Place(NamedTuple):
    """Where a rank is known to be: in ``bucket``, ``within`` values from its start, among ``size``;
    ``parent``: the (bucket, within, size) to count finely again if ``bucket`` (a coarse bin) turns
    out too large to collect; ``fine``: count finely (no window) this time."""

    bucket: Bucket
    within: int
    size: int
    parent: tuple | None = None
    fine: bool = False


def select_ranks_by_target(run_pass, targets: dict, prefetched: tuple | None = None) -> tuple[dict, int]:
    """The loss bit patterns at 0-based ranks, for many targets in the same passes.

    ``targets`` maps each target to ``(histogram, ranks)``: its top-16-bit counts (65,536, from the
    first pass) and the ranks wanted.  ``run_pass(requests)`` scans the data once for
    ``{target: buckets}``.  ``prefetched``: ``(requests, result)`` of a pass made already (the
    first pass's, planned from a sample: :func:`sampled_requests`): every rank whose top-16-bit
    bucket it asked for is taken from it first.  Returns ``({target: {rank: pattern}}, passes run)``.
    """
    root = Bucket(0, 0)
    found: dict = {target: {} for target in targets}
    state: dict = {}  # (target, rank) -> Place
    for target, (histogram, ranks) in targets.items():
        for rank in ranks:
            state[(target, rank)] = Place(*descend(root, histogram, rank))
    if prefetched is not None:
        asked, windows = _prefetched_plan(state, *prefetched)
        covered = {name: place for name, place in state.items() if (name[0], place.bucket) in asked}
        state = {name: place for name, place in state.items() if name not in covered}
        state.update(_after_pass(covered, asked, windows, prefetched[1], found))
    passes = 0
    while state:
        for (target, rank), place in list(state.items()):
            if place.bucket.bits == 64:  # every bit known: the rank's value is the prefix itself
                found[target][rank] = place.bucket.prefix
                del state[(target, rank)]
            elif place.bucket.span > 1 and place.size > quantiles.COLLECT_LIMIT and place.parent:
                parent, within, size = place.parent  # a coarse bin too large: its bucket counted finely
                state[(target, rank)] = Place(parent, within, size, fine=True)
        if not state:
            break
        asked, windows = _plan(state)
        result = run_pass(_requests(asked, windows))
        passes += 1
        state = _after_pass(state, asked, windows, result, found)
    return found, passes


def _after_pass(state: dict, asked: dict, windows: dict, result: dict, found: dict) -> dict:
    """Each rank's value where the pass gave it (into ``found``); the places of the others."""
    next_state: dict = {}
    wanted: dict = {}  # (target, values' bucket, the bucket collected) -> ({rank: within}, expected count)
    for (target, rank), place in state.items():
        bucket = asked.get((target, place.bucket))
        if bucket is None:  # not asked this pass (over its budget): next time
            next_state[(target, rank)] = place
            continue
        if bucket.collect:
            wanted.setdefault((target, bucket, bucket), ({}, None))[0][rank] = place.within
            continue
        counts = result[(target, bucket)]
        child, within, size = descend(place.bucket, counts, place.within)
        if bucket.shift:  # a coarse bin: 2**shift prefixes one level down
            first = (child.prefix & ((1 << DIGIT_BITS) - 1)) << bucket.shift
            child = Bucket((place.bucket.prefix << DIGIT_BITS) | first, child.bits, span=1 << bucket.shift)
        holder = next((w for w in windows.get((target, place.bucket), ())
                       if 0 <= child.prefix - w.prefix and child.prefix + child.span <= w.prefix + w.span), None)
        if holder is not None:
            wanted.setdefault((target, child, holder), ({}, size))[0][rank] = within
        else:
            next_state[(target, rank)] = Place(child, within, size, (place.bucket, place.within, place.size))
    for (target, values_bucket, collected), (ranks, expected) in wanted.items():  # one partition per bucket
        values = result.get((target, collected), np.empty(0, np.uint64))
        if values_bucket is not collected:
            values = values_bucket.select(values)
            if len(values) != expected:  # the same pass counted them: never
                raise RuntimeError(f"l1stream bug: a quantile window holds {len(values)} values of a bucket "
                                   f"the same pass counted {expected} of")
        kth = sorted(set(ranks.values()))
        values = np.partition(values, kth) if len(values) else values
        for rank, within in ranks.items():
            found[target][rank] = int(values[within])
    return next_state


def _prefetched_plan(state: dict, requests: dict, result: dict) -> tuple[dict, dict]:
    """What a pass made with ``requests`` answers of each place (the ``_plan`` of that pass): a
    place's top-16-bit bucket collected, or counted beside windows of it (buckets whose values
    were dropped, None in ``result``, answer nothing)."""
    asked: dict = {}
    windows: dict = {}
    for (target, _), place in state.items():
        for bucket in requests.get(target, ()):
            if result.get((target, bucket)) is None:
                continue
            if bucket.bits == place.bucket.bits and bucket.prefix == place.bucket.prefix and bucket.span == 1:
                asked[(target, place.bucket)] = bucket
            elif bucket.collect and bucket.bits == place.bucket.bits + DIGIT_BITS \
                    and bucket.prefix >> DIGIT_BITS == place.bucket.prefix:
                windows.setdefault((target, place.bucket), set()).add(bucket)
    return asked, {name: sorted(chosen, key=repr) for name, chosen in windows.items() if name in asked}


def sampled_requests(targets: dict, scale: float, qs: tuple, tail_rank=None) -> tuple[dict, Bucket | None]:
    """The requests of a quantile pass planned from a sample of the data, to be made during the
    first pass itself (which then needs no quantile pass when the sample was right).

    ``targets`` maps each target to its sample's top-16-bit counts; ``scale`` is how many times
    the sample the whole data is (about); ``tail_rank(n)``: the rank whose neighbours above it the
    pass should collect (the top-1% share), for target None: the bins it may fall in, as one bucket
    (or as :func:`tail_bucket` would, when they hold too many values).  Each rank is placed as
    :func:`select_ranks_by_target` would place it in data ``scale`` times the sample, and
    planned as its first pass would be (:func:`_plan`), with a margin on either side of it (four
    standard deviations of a sampled rank, plus 0.1% of the rows): every bucket the sample has
    between the margin's ends is asked for.  Returns ``({target: buckets}, tail bucket
    or None)``: the tail bucket (in the requests) is collected; losses above it are summed.

    Examples
    --------
    >>> counts = np.zeros(1 << 16, np.int64); counts[0x3FF0] = 1000; counts[0x4000] = 1000
    >>> requests, inside = sampled_requests({None: counts}, 10.0, (0.9,), lambda n: n - 200)
    >>> sorted(hex(b.prefix) for b in requests[None]), hex(inside.prefix)
    (['0x3ff0', '0x4000'], '0x4000')
    """
    state: dict = {}
    tail = None
    for target, sample in targets.items():
        sampled = int(sample.sum())
        if not sampled:
            continue
        histogram = np.rint(sample * scale).astype(np.int64)
        n = int(histogram.sum())
        cumulative = np.cumsum(histogram)
        ranks = set(quantiles.ranks_for(n, qs))
        threshold = tail_rank(n) if target is None and tail_rank is not None else None
        if threshold is not None:
            ranks.add(threshold)
        for rank in ranks:
            spread = 4 * scale * float(np.sqrt(rank / n * (1 - rank / n) * sampled)) + n / 1000
            low, high = (int(np.searchsorted(cumulative, min(n - 1, max(0, int(rank + side * spread))), side="right"))
                         for side in (-1, 1))
            for digit in range(low, high + 1):  # every bin the rank may fall in (that the sample has)
                below = int(cumulative[digit - 1]) if digit else 0
                size = int(histogram[digit])
                if not size:
                    continue
                place = Place(Bucket(digit, DIGIT_BITS), min(max(rank - below, 0), max(size - 1, 0)), size)
                state[(target, (rank, digit))] = place
            if rank == threshold:
                # the threshold's neighbours: every bin it may fall in, collected as one, if small enough
                held = int(cumulative[high]) - (int(cumulative[low - 1]) if low else 0)
                tail = (Bucket(low, DIGIT_BITS, True, high - low + 1) if held <= quantiles.COLLECT_LIMIT
                        else tail_bucket(histogram, rank)[0])
    asked, windows = _plan(state)
    return _requests(asked, windows, tail if tail is not None and tail.collect else None), tail


def _requests(asked: dict, windows: dict, also: Bucket | None = None) -> dict:
    """A pass's requests, ``{target: buckets}`` (in a fixed order), from a plan (:func:`_plan`);
    ``also``: one more bucket for target None."""
    requests: dict = {}
    for (target, _), bucket in asked.items():
        requests.setdefault(target, set()).add(bucket)
    for (target, _), chosen in windows.items():
        requests[target].update(chosen)
    if also is not None:
        requests.setdefault(None, set()).add(also)
    return {target: tuple(sorted(buckets, key=repr)) for target, buckets in requests.items()}


def _plan(state: dict) -> tuple[dict, dict]:
    """What this pass asks of each place's bucket, and the windows beside those counted.

    Smallest first, within the pass's budget: ``({(target, bucket): asked}, {(target, bucket): [window]})``;
    a bucket is collected, or counted coarsely beside its windows, or counted finely.
    """
    places: dict = {}
    for (target, _), place in state.items():
        places.setdefault((target, place.bucket), []).append(place)
    budget, asked, windows = PASS_BUDGET, {}, {}
    for name, group in sorted(places.items(), key=lambda item: (item[1][0].size, repr(item[0]))):
        bucket, size = name[1], group[0].size
        if size <= quantiles.COLLECT_LIMIT and size <= budget:
            asked[name] = Bucket(bucket.prefix, bucket.bits, True, bucket.span)
            budget -= size
            continue
        if bucket.span > 1:  # a coarse bin, small enough, over this pass's budget: the next pass's
            continue
        chosen = [] if any(p.fine for p in group) else windows_for(bucket, size, [p.within for p in group])
        chosen = chosen[:budget // quantiles.COLLECT_LIMIT]
        if chosen:
            windows[name] = chosen
            budget -= len(chosen) * quantiles.COLLECT_LIMIT
        asked[name] = Bucket(bucket.prefix, bucket.bits, shift=COARSE if chosen else 0)
    return asked, windows


def windows_for(bucket: Bucket, size: int, withins: list) -> list:
    """Collecting buckets over the next 16 bits of ``bucket`` (``size`` values) where the ranks
    ``withins`` would fall if its values were spread evenly, each wide enough to hold about
    ``COLLECT_LIMIT`` of them if they were and made of whole coarse bins: one per group of nearby
    ranks (none when the bucket's next 16 bits are its last).

    Examples
    --------
    >>> limit = quantiles.COLLECT_LIMIT
    >>> windows_for(Bucket(0x40E0, 16), 4 * limit, [2 * limit, 2 * limit + 1]) == [
    ...     Bucket(0x40E06000, 32, True, 0x4000)]
    True
    >>> [w.prefix & 0xFFFF for w in windows_for(Bucket(0x40E0, 16), 4 * limit, [0, 4 * limit - 1])]
    [0, 49152]
    """
    if bucket.bits > 32:
        return []
    digits, bin_width = 1 << DIGIT_BITS, 1 << COARSE
    width = min(digits, max(bin_width, digits * quantiles.COLLECT_LIMIT // size // bin_width * bin_width))
    estimates = sorted({within * digits // size for within in withins})
    groups: list = []
    for estimate in estimates:
        if groups and estimate - groups[-1][0] <= width // 2:
            groups[-1][1] = estimate
        else:
            groups.append([estimate, estimate])
    chosen = []
    for low, high in groups:
        first = min(max((low + high) // 2 - width // 2, 0), digits - width) // bin_width * bin_width
        chosen.append(Bucket((bucket.prefix << DIGIT_BITS) | first, bucket.bits + DIGIT_BITS, True, width))
    return chosen


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
    chosen = windows_for(bucket, size, [within])
    return (chosen[0], True) if chosen else (bucket, False)
