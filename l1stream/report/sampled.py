"""The quantile pass made during the report's first pass, planned from a sample read just before.

A report reads every row for the evaluation and the profile (:mod:`l1stream.report.first_pass`),
then once more for the exact quantiles, because which buckets of the losses hold the ranks is
known only once the histograms are.  Here a sample of the pieces (one in :data:`SAMPLE_EVERY`,
spread over the plan) is read first; its histograms, scaled up, say where the ranks should fall
(:func:`~l1stream.report.selection.sampled_requests`); the first pass over the other pieces then
collects those buckets as it reads them (the C consumers fed through one ``tee``), and the sample's
pieces (and any piece read without selecting: more slices than the first pass profiles) are read
again for the same buckets afterwards.  Together that is exactly the quantile pass those requests
would have made, and the ranks it covers need nothing more
(:func:`~l1stream.report.selection.select_ranks_by_target` with ``prefetched``); a rank it missed
(the sample was not like the rest) goes on to the ordinary passes.  The answers are the same bits
either way; only the reading differs: the sample read twice instead of everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from l1stream.engine.quantiles import Bucket
from l1stream.report.first_pass import FirstPass, first_pass_pieces, merge_first_passes
from l1stream.report.quantile_passes import finish_select, merge_select, select_pass_pieces
from l1stream.report.selection import sampled_requests

SAMPLE_EVERY = 16
"""One piece in this many (at least one, spread over the plan) makes the sample; 0: no sample (the
quantiles are found by the passes after the first)."""


@dataclass
class Speculation:
    """What the first pass selected, and what is left to read for the same requests."""

    requests: dict  # {target: buckets}, as select_pass_pieces takes them
    tail: Bucket  # the bucket around the top-1% threshold (collected if ``tail.collect``)
    selected: dict  # the select pass's result over the pieces the first pass selected from
    reread: list  # the pieces to read again for the same requests
    reread_share: float = 0.0  # their share of the data's bytes


def split_sample(tasks: list, strata: tuple = ()) -> tuple[list, list, float]:
    """``(sample tasks, other tasks, scale)``: of the pieces of each stratum (their values of the
    partition keys ``strata``: a model, a region, not the date), one in :data:`SAMPLE_EVERY` (the
    middle one of each run of them, and at least one), a task each (over a quarter of all pieces
    that way: one in :data:`SAMPLE_EVERY` of all); the other tasks without them; the pieces'
    bytes over the sample's.  No sample for fewer than two pieces.

    Examples
    --------
    >>> from l1stream.engine.pieces import Piece
    >>> tasks = [[Piece(f"{i}.parquet", size=10) for i in range(j, j + 4)] for j in range(0, 20, 4)]
    >>> sample, rest, scale = split_sample(tasks)
    >>> [[p.path for p in t] for t in sample], [len(t) for t in rest], scale
    ([['8.parquet']], [4, 4, 3, 4, 4], 20.0)
    """
    pieces = [piece for task in tasks for piece in task]
    if len(pieces) < 2 or SAMPLE_EVERY <= 0:
        return [], tasks, 1.0
    groups: dict = {}
    for position, piece in enumerate(pieces):
        groups.setdefault(tuple(getattr(piece, "partition", {}).get(k) for k in strata), []).append(position)
    chosen = {group[i] for group in groups.values()
              for i in range(min(SAMPLE_EVERY, len(group)) // 2, len(group), SAMPLE_EVERY)}
    if len(chosen) * 4 > len(pieces):
        chosen = set(range(min(SAMPLE_EVERY, len(pieces)) // 2, len(pieces), SAMPLE_EVERY))
    sample, rest, position = [], [], 0
    for task in tasks:
        kept = []
        for piece in task:
            (sample.append([piece]) if position in chosen else kept.append(piece))
            position += 1
        if kept:
            rest.append(kept)

    return sample, rest, _bytes(pieces) / _bytes(task[0] for task in sample)


def _bytes(pieces) -> float:
    """The pieces' bytes, about (a file's size over its splits)."""
    return sum(max(getattr(p, "size", 0), 1) / max(getattr(p, "splits", 1), 1) for p in pieces)


def sampled_first_pass(run, tasks: list, strata: tuple, wanted, qs: tuple,
                       top_fraction: float) -> tuple[FirstPass, Speculation | None]:
    """The first pass over ``tasks``, with the quantile pass planned from a sample made in it.

    ``run(func, tasks, extra, merge, empty)`` runs a pass's task function over some tasks; the
    sample is drawn from each stratum of ``strata`` (:func:`split_sample`).  Returns
    the first pass (the same as without a sample) and the :class:`Speculation`, or None when no
    sample was taken or it gave nothing to plan from (the ordinary passes follow then).
    """
    sample_tasks, rest, scale = split_sample(tasks, strata)
    if not sample_tasks:
        return run(first_pass_pieces, tasks, (wanted,), merge_first_passes, FirstPass.empty()), None
    sample = run(first_pass_pieces, sample_tasks, (wanted,), merge_first_passes, FirstPass.empty())
    plan = None
    if sample.profiled and sample.profile.overall().count:
        targets = {None: sample.profile.overall().dense_log_counts()}
        for key, profile in sample.profile.slices.items():
            if key != () and profile.count:
                targets[key] = profile.dense_log_counts()
        plan = sampled_requests(targets, scale, qs, lambda n: n - max(1, math.ceil(top_fraction * n)))
    if plan is None or plan[1] is None:
        return sample.merge(run(first_pass_pieces, rest, (wanted,), merge_first_passes, FirstPass.empty())), None
    speculation = Speculation(plan[0], plan[1], {}, [])
    main = run(first_pass_pieces, rest, (wanted, (speculation.requests, speculation.tail.last)),
               merge_first_passes, FirstPass.empty(selecting=True))
    speculation.selected = main.selected or {"tail": (0, 0)}
    speculation.reread = [task[0] for task in sample_tasks] + list(main.unselected)
    speculation.reread_share = _bytes(speculation.reread) / _bytes(p for task in tasks for p in task)
    main.selected, main.unselected = None, ()
    return sample.merge(main), speculation


def completed(speculation: Speculation, run, skipped) -> tuple[dict, dict]:
    """``(requests, result)``: the select pass of the speculation's requests over every row the
    evaluation counted (files it skipped left out), its values joined."""
    pieces = [piece for piece in speculation.reread if piece.path not in skipped]
    rest = run(select_pass_pieces, [[piece] for piece in pieces], (speculation.requests, speculation.tail.last),
               merge_select, {"tail": (0, 0)})
    return speculation.requests, finish_select(merge_select([speculation.selected, rest]))
