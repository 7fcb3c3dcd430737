"""The error report job: :func:`evaluate_report` and :class:`ReportJob`.

Everything is checked when the job is made, before any data is read.  Then, for Parquet paths:

1. the first pass (:mod:`l1stream.report.first_pass`): the evaluation and the error profile
   (histograms, exact L2, jackknife blocks, the MAE over time) from one read of every row, by
   partition keys and slice columns alike; with more than ``ONE_READ_SLICES`` slices, the
   evaluation, then a profile pass (:func:`~l1stream.report.grouped.profile_pieces`).  With
   more than one piece, a sample of them is read first and the quantile pass below is made during
   this one, the sample read again for it afterwards (:mod:`l1stream.report.sampled`);
2. the quantile passes (:mod:`l1stream.report.quantile_passes`, :mod:`l1stream.report.selection`):
   the exact median and quantiles of the loss, overall and per profiled slice, and the top-1%
   share, usually in one pass, none when the first pass's selection holds every rank;
3. rarely, a tail pass for the share (:func:`tail_counts`), when nothing the quantile pass
   collected holds the threshold's neighbours.

Files skipped by the evaluation (``on_bad_file='skip'``) are left out of every later pass.  A
DataFrame is read once per pass.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np

from l1stream.engine.quantiles import (
    DIGIT_BITS,
    QuantileResult,
    as_float,
    histogram_bins,
    numpy_median,
    numpy_quantile,
    pass_counts,
    ranks_for,
    validate_qs,
)
from l1stream.engine.result import EvaluationResult
from l1stream.errors import UsageError, did_you_mean
from l1stream.exact.state import correctly_rounded
from l1stream.exact.summation import UNITS_PER_ONE, ExactSum
from l1stream.report.first_pass import ONE_READ_SLICES
from l1stream.report.grouped import profile_pieces
from l1stream.report.profile import Profile, ProfileSpec, merge_profiles
from l1stream.report.quantile_passes import finish_select, merge_select, select_pass_pieces
from l1stream.report.report import MAX_PROFILED_SLICES, TIME_KEY_NAMES, TIME_LINES, Report
from l1stream.report.sampled import completed, sampled_first_pass
from l1stream.report.selection import select_ranks_by_target, tail_bucket

"""The first pass profiles every slice: with more partition slices than this, the report evaluates
first and then profiles the largest ones only (memory stays bounded)."""


def resolve_time_key(time_key, partition_types: dict, schema) -> tuple[str | None, bool]:
    """``(key, is_partition)``: ``"auto"`` picks a date partition key (``date``, ``day``, ...), else a
    column of such a name."""
    if time_key is None or time_key is False:
        return None, False
    if time_key == "auto":
        for name, kind in partition_types.items():
            if kind == "date" or name in TIME_KEY_NAMES:
                return name, True
        for name in TIME_KEY_NAMES:  # then a column with such a name
            if schema is not None and name in schema.names:
                return name, False
        return None, False
    if not isinstance(time_key, str):
        raise UsageError(f"time_key must be a partition key or column name, 'auto' or None; got {time_key!r}")
    if time_key in partition_types:
        return time_key, True
    if schema is not None and time_key in schema.names:
        return time_key, False
    names = list(partition_types) + (list(schema.names) if schema is not None else [])
    raise UsageError(f"time_key {time_key!r} is neither a partition key nor a column{did_you_mean(time_key, names)}; "
                     f"available: {', '.join(names)}")


def validate_edges(bins) -> tuple | None:
    """Fixed histogram edges: ``None`` or an increasing list of at least two finite numbers."""
    if bins is None:
        return None
    edges = tuple(float(b) for b in bins) if isinstance(bins, (list, tuple)) else None
    if edges is None or len(edges) < 2 or not all(math.isfinite(e) for e in edges) or \
            any(b <= a for a, b in zip(edges, edges[1:])):
        raise UsageError(f"bins must be an increasing list of at least two finite edges; got {bins!r}")
    return edges


def tail_counts(pieces, spec, filesystem, threshold_pattern: int) -> tuple[int, int]:
    """``(rows, exact sum in units of 2**-1074)`` of the finite losses strictly above a threshold."""
    return pass_counts(pieces, spec, filesystem, (), tail_above=threshold_pattern)["tail"]


def merge_tails(parts) -> tuple[int, int]:
    parts = list(parts)
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def evaluate_report(source, *, history: str | None = None, progress: bool = False, **options) -> Report:
    """Evaluate a Parquet dataset and profile its errors (see the module doc).

    Takes the options of :class:`ReportJob` (those of :func:`l1stream.evaluate` and the report's
    own); ``history`` is a metrics-history directory or URL whose runs are plotted.

    Examples
    --------
    >>> import l1stream, tempfile, pyarrow as pa, pyarrow.parquet as pq
    >>> path = tempfile.mkdtemp() + "/log.parquet"
    >>> pq.write_table(pa.table({"actual": [1.0, 2.0, 3.0, 4.0], "prediction": [1.5, 2.0, 2.0, 8.0]}), path)
    >>> report = l1stream.evaluate_report(path)
    >>> report.result.mae, report.quantiles.median, report.overall.mse
    (1.375, 0.75, 4.3125)
    """
    job = ReportJob(source, **options)
    return job.profile(job.evaluate(progress), history=history)


class ReportJob:
    """A report in two steps: :meth:`evaluate` (the exact MAE), then :meth:`profile` (the extra
    passes).  Everything is checked when the job is made, before any data is read, so a
    scheduled run can record the evaluation (gates, history) before profiling it.

    Parameters
    ----------
    source, actual, prediction, weight, by, filters, nan_policy, on_bad_file, scheduler,
    num_workers, storage_options, filesystem, chunk_rows, task_bytes, store, full, baseline_prediction
        As for :func:`l1stream.evaluate`.  A DataFrame source is read once per pass (persist a
        Dask DataFrame that is costly to compute); its partitions are the jackknife blocks.
    quantiles : sequence of float, default (0.9, 0.99)
        Exact quantiles of the per-row loss (the median always).
    bins : list of float, optional
        Fixed histogram edges, besides the exact log-spaced histogram.
    time_key : str, "auto" or None, default "auto"
        Partition key or column to plot the MAE over; ``"auto"`` takes a date partition key.
    confidence : float, default 0.95
        Level of the per-slice jackknife intervals (:mod:`l1stream.report.intervals`).
    top_fraction : float, default 0.01
        The share of the total L1 loss carried by this fraction of rows with the largest
        losses (at least one row) is reported.
    title : str, optional
        The report's title.
    """

    def __init__(self, source, *, actual: str = "actual", prediction: str = "prediction", weight: str | None = None,
                 by=None, filters=None, nan_policy: str = "raise", on_bad_file: str = "raise", scheduler=None,
                 num_workers: int | None = None, storage_options: dict | None = None, filesystem=None,
                 chunk_rows: int = 1 << 20, task_bytes: int | None = None, store=None, full: bool = False,
                 baseline_prediction: str | None = None, quantiles=(0.9, 0.99), bins=None, time_key="auto",
                 confidence: float = 0.95, top_fraction: float = 0.01, title: str | None = None,
                 format: str | None = None, table_version: int | None = None, catalog: dict | None = None) -> None:
        from l1stream.engine.job import prepare, validate_options
        from l1stream.engine.planning import DEFAULT_TASK_BYTES
        from l1stream.sources.inputs import input_kind

        kind = input_kind(source)
        if kind == "arrow-files":
            source, filesystem = list(source.files), source.filesystem
        elif kind not in ("paths", "pandas", "dask"):
            raise UsageError(f"the report reads paths, tables, pandas and Dask DataFrames, not "
                             f"{kind.replace('-', ' ')} data: pass frame.to_pandas(), or write it to Parquet first")
        self.frame = source if kind in ("pandas", "dask") else None
        if self.frame is not None and (storage_options or filesystem is not None or store is not None or filters):
            raise UsageError("storage_options, filesystem, store and filters apply to Parquet paths, not to a "
                             "DataFrame: filter the DataFrame before the report")
        self.qs = validate_qs(quantiles)
        self.edges = validate_edges(bins)
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
            raise UsageError(f"confidence must be a number between 0 and 1; got {confidence!r}")
        if isinstance(top_fraction, bool) or not isinstance(top_fraction, (int, float)) or not 0 < top_fraction <= 1:
            raise UsageError(f"top_fraction must be a number in (0, 1]; got {top_fraction!r}")
        self.confidence, self.top_fraction = float(confidence), float(top_fraction)
        self.options = validate_options(actual=actual, prediction=prediction, weight=weight, by=by, filters=filters,
                                        nan_policy=nan_policy, on_bad_file=on_bad_file, scheduler=scheduler,
                                        num_workers=num_workers, chunk_rows=chunk_rows,
                                        task_bytes=task_bytes or DEFAULT_TASK_BYTES, store=store, full=full,
                                        baseline_prediction=baseline_prediction, format=format,
                                        table_version=table_version, catalog=catalog)
        self.prepared: Any = None  # engine.job.Prepared, for paths
        if self.frame is None:
            self.prepared = prepare(source, self.options, storage_options, filesystem)
            found, schema = self.prepared.found.partition_types, self.prepared.schema
        else:
            found, schema = {}, _FrameColumns(self.frame.columns)
        self.time_key, self.time_is_partition = resolve_time_key(time_key, found, schema)
        self.storage_options = storage_options
        self.title = title or "l1stream error report"
        self.source = "a DataFrame" if self.frame is not None else _source_label(source)

    def evaluate(self, progress: bool = False) -> EvaluationResult:
        """The evaluation (what :func:`l1stream.evaluate` returns for the same options).

        For Parquet paths sliced by partition keys (or not sliced), without a state store, this is
        the report's first pass (:mod:`l1stream.report.first_pass`): the profile is gathered from the
        same read, and :meth:`profile` of this result reads the data only for the quantiles."""
        from l1stream.engine.frames import evaluate_frame
        from l1stream.engine.job import _execute, _finish

        self._first = None
        if self.frame is not None:
            kind = "dask" if hasattr(self.frame, "to_delayed") else "pandas"
            return evaluate_frame(self.frame, kind, self.options, progress=progress)
        if not self._one_read():
            return _execute(self.prepared, self.options, progress)
        prepared, options = self.prepared, self.options
        wanted = ProfileSpec(self.edges, self.time_key, self.time_is_partition, squares=options.weight is None,
                             slices=None, time_slices=None)
        first, speculation = sampled_first_pass(self._run, prepared.plan.tasks, self._strata(), wanted, self.qs,
                                                self.top_fraction)
        if set(first.scan.skipped) & set(first.scan.files):  # a split file failed part-way: the two-step way
            return _execute(prepared, options, progress)
        result = _finish(first.scan, prepared, options)
        self._first = (result, first.profile, speculation) if first.profiled else None
        return result

    def _strata(self) -> tuple:
        """The partition keys a sample of the pieces should cover every value of: all but the
        time key (a sample spread over the plan covers the dates)."""
        keys = self.prepared.found.partition_types
        return tuple(k for k in keys if not (self.time_is_partition and k == self.time_key))

    def _run(self, func, tasks: list, extra: tuple, merge, empty):
        """One pass of a task function over some of the plan's tasks."""
        return Passes(tasks, self._spec(self.prepared.spec), self.prepared.found.filesystem, self.options).run(
            func, extra, merge, empty)

    def _one_read(self) -> bool:
        """Whether the evaluation and the profile can share a read: no state store stands in for
        reading, and the slices are partition keys, at most :data:`ONE_READ_SLICES` of them (the
        listing knows), or include columns (their number is found as the pass reads: over
        ``ONE_READ_SLICES``, the pass stops profiling and a profile pass follows)."""
        spec = self.prepared.spec
        if self.options.store is not None:
            return False
        if spec.data_by:
            return True
        keys = {tuple(piece.partition.get(k) for k in spec.by) for task in self.prepared.plan.tasks for piece in task}
        return len(keys) <= ONE_READ_SLICES

    def _spec(self, spec):
        return replace(spec, extra_columns=(self.time_key,)) if self.time_key and not self.time_is_partition else spec

    def profile(self, result: EvaluationResult, history: str | None = None) -> Report:
        """The profile and the quantiles of the rows ``result`` counted (skipped files stay out):
        from :meth:`evaluate`'s first pass when it made ``result``, else from a profile pass."""
        from l1stream.engine.planning import plan_tasks
        from l1stream.engine.scan import ScanSpec

        prepared, options = self.prepared, self.options
        if self.frame is None:
            plan = plan_tasks(prepared.found, prepared.bound, target_bytes=options.task_bytes,
                              exclude=frozenset(result.skipped))
            items, spec, filesystem = plan.tasks, prepared.spec, prepared.found.filesystem
        else:
            items, filesystem = None, None
            spec = ScanSpec(options.actual, options.prediction, options.weight, options.by, (),
                            nan_policy=options.nan_policy)
        spec = self._spec(spec)
        lines = largest_slices(result, TIME_LINES) or frozenset(result.group_states) if result.by else frozenset()
        profiled = largest_slices(result, MAX_PROFILED_SLICES)
        passes = Passes(items, spec, filesystem, options, frame=self.frame)
        first = getattr(self, "_first", None)
        speculation = None
        if first is not None and first[0] is result:
            profile, read, speculation = first[1].keep(profiled, lines), 1, first[2]
        else:
            wanted = ProfileSpec(self.edges, self.time_key, self.time_is_partition, squares=options.weight is None,
                                 slices=profiled, time_slices=lines)
            profile, read = passes.run(profile_pieces, (wanted,), merge_profiles, Profile()), 1  # (counted by passes)
        quantile_result, share, per_slice = self._quantiles(passes, profile, result, speculation)
        rows = []
        if history:
            from l1stream.outputs.history import read as read_history

            rows = read_history(history, self.storage_options)
        return Report(result, profile, quantile_result, share, self.top_fraction, self.time_key, rows,
                      self.confidence, self.title, self.source,
                      dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), passes.count + read,
                      edges=self.edges, slice_quantiles=per_slice,
                      reread=speculation.reread_share if speculation is not None else 0.0)

    def _quantiles(self, passes: "Passes", profile: Profile, result: EvaluationResult, speculation=None):
        """The overall quantiles and top-1% share, and every profiled slice's quantiles, in the same
        passes (:mod:`l1stream.report.quantile_passes`), after what the first pass selected
        (``speculation``, :mod:`l1stream.report.sampled`)."""
        overall = profile.overall()
        n = overall.count
        if not n:
            return None, math.nan, {}
        policy = self.options.nan_policy
        if policy == "raise" and any(result.left_out.values()):
            policy = "omit"  # cannot happen: raise stops the evaluation first
        k = max(1, math.ceil(self.top_fraction * n))
        histogram = overall.dense_log_counts()
        # the losses above the threshold (rank n - k) are summed in the quantile pass itself: those
        # above a bucket holding the threshold (its top-16-bit bin, or a window of it) as they pass,
        # those inside from the bucket's values, collected in that pass too
        seen: dict = {}
        prefetched = None
        inside, collect = tail_bucket(histogram, n - k)
        tail_above = inside.last
        if speculation is not None:  # the first pass's selection, completed
            prefetched = completed(speculation, self._run, set(result.skipped))
            guess, top = speculation.tail, 64 - DIGIT_BITS
            if guess.first >> top <= inside.first >> top <= guess.last >> top and (
                    not guess.collect or prefetched[1].get((None, guess)) is not None):
                # the threshold's top-16-bit bin is among the sample's: its neighbours above were collected
                inside, collect, tail_above = guess, guess.collect, guess.last
                seen.update(tail=prefetched[1]["tail"],
                            inside=prefetched[1].get((None, guess), np.empty(0, np.uint64)))
        targets = {None: (histogram, sorted(set(ranks_for(n, self.qs)) | {n - k}))}
        by_slice = {key: prof for key, prof in profile.slices.items() if prof.count} if result.by else {}
        for key, prof in by_slice.items():
            targets[key] = (prof.dense_log_counts(), sorted(set(ranks_for(prof.count, self.qs))))

        def run_pass(requests: dict) -> dict:
            if not seen and collect:
                requests = {**requests, None: tuple({*requests.get(None, ()), inside})}
            merged = passes.run(select_pass_pieces, (requests, tail_above), merge_select, {"tail": (0, 0)})
            found = finish_select(merged)
            if not seen:
                seen.update(tail=found.get("tail", (0, 0)), inside=found.get((None, inside), np.empty(0, np.uint64)))
            return found

        found, _ = select_ranks_by_target(run_pass, targets, prefetched)
        left_out = sum(result.left_out.values())
        quantile_result = _numpy_quantiles(found[None], n, self.qs, left_out, histogram_bins(histogram),
                                           count_passes=passes.count, extra=[n - k])
        threshold = found[None][n - k]
        share = math.nan
        if not overall.infinite_losses and overall.loss_sum:  # else the share is undefined
            if collect and seen and len(inside.select(np.array([threshold], np.uint64))):  # counted by a pass
                values = seen["inside"][seen["inside"] > np.uint64(threshold)].view(np.float64)
                acc = ExactSum()
                acc.add_values(values)
                above, units = seen["tail"][0] + int(values.shape[0]), seen["tail"][1] + acc.units
            else:
                above, units = passes.run(tail_counts, (threshold,), merge_tails, (0, 0))
            top = Fraction(units, UNITS_PER_ONE) + (k - above) * Fraction(float(as_float(threshold)))
            share = correctly_rounded(top / Fraction(overall.loss_sum, UNITS_PER_ONE))
        per_slice = {}
        for key, prof in by_slice.items():
            states = result.group_states.get(key)
            nan = policy == "propagate" and states is not None and any(states.left_out.values())
            per_slice[key] = _slice_quantiles(found[key], prof.count, self.qs, nan)
        if policy == "propagate" and left_out:
            quantile_result.median = math.nan
            quantile_result.quantiles = {q: math.nan for q in quantile_result.quantiles}
        return quantile_result, share, per_slice


def _numpy_quantiles(found: dict, n: int, qs: tuple, left_out: int, histogram: list, count_passes: int,
                     extra: list) -> QuantileResult:
    def value_at(rank):
        return as_float(found[rank])

    median = numpy_median(value_at((n - 1) // 2), value_at(n // 2), n % 2 == 1)
    return QuantileResult(median, {q: numpy_quantile(n, q, value_at) for q in qs}, n, left_out, count_passes,
                          histogram, {r: found[r] for r in extra})


def _slice_quantiles(found: dict, n: int, qs: tuple, nan: bool) -> dict:
    """``{"median": ..., q: ...}`` of a slice (numpy's, bit for bit; NaN under propagate with rows left out)."""
    if nan:
        return {"median": math.nan, **{q: math.nan for q in qs}}

    def value_at(rank):
        return as_float(found[rank])

    return {"median": numpy_median(value_at((n - 1) // 2), value_at(n // 2), n % 2 == 1),
            **{q: numpy_quantile(n, q, value_at) for q in qs}}


def largest_slices(result: EvaluationResult, limit: int) -> frozenset | None:
    """The ``limit`` slices with the most rows (ties: in key order), or ``None`` if there are no more."""
    states = result.group_states
    if len(states) <= limit:
        return None
    ordered = sorted(enumerate(states.items()), key=lambda item: (-item[1][1].count, item[0]))
    return frozenset(key for _, (key, _) in ordered[:limit])


def _source_label(source) -> str:
    if isinstance(source, (list, tuple)):
        return ", ".join(str(s) for s in source)
    return str(source)


class Passes:
    """Runs one pass of a task function over the plan's tasks (or a DataFrame's partitions)."""

    def __init__(self, tasks, spec, filesystem, options, frame=None) -> None:
        self.tasks, self.spec, self.filesystem, self.options, self.frame = tasks, spec, filesystem, options, frame
        self.count = 0

    def run(self, func, extra: tuple, merge, empty):
        from l1stream.engine.schedulers import delayed_tree, run_graph, tree_graph

        self.count += 1
        if self.frame is not None:
            if not hasattr(self.frame, "to_delayed"):  # pandas: one partition, here
                return frame_task(self.frame, 0, self.spec, func, *extra)
            graph = delayed_tree(frame_task, self.frame.to_delayed(), (self.spec, func) + tuple(extra), merge)
        elif not self.tasks:
            return empty
        else:
            graph = tree_graph(f"l1stream-report-{func.__name__}", func, self.tasks,
                               (self.spec, self.filesystem) + tuple(extra), merge)
        return run_graph(graph, self.options.scheduler, self.options.num_workers, False)


def frame_task(partition, index: int, spec, func, *extra):
    """Run a pass's task function on one DataFrame partition (as a :class:`~l1stream.engine.scan.FramePart`)."""
    from l1stream.engine.frames import frame_table
    from l1stream.engine.scan import FramePart

    return func([FramePart(frame_table(partition, spec.columns), index)], spec, None, *extra)


class _FrameColumns:
    """What :func:`resolve_time_key` needs of a schema: the column names."""

    def __init__(self, columns) -> None:
        self.names = [str(c) for c in columns]
