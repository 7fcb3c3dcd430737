"""The error report: the MAE plus what it hides, from a bounded number of passes over the data.

:func:`evaluate_report` runs

1. the evaluation itself (the exact MAE, slices, row accounting; :func:`l1stream.evaluate`);
2. one profile pass (:mod:`l1stream.report.profile`): per-slice log histograms, exact L2, jackknife
   blocks, the MAE per time value;
3. the exact quantile passes of :mod:`l1stream.engine.quantiles` (median, p90, p99 and the threshold
   of the top 1% of losses; the profile's histogram is their first pass, so one to three more);
4. one tail pass: the exact sum of the losses above that threshold (the top-1% share).

Files skipped by the evaluation (``on_bad_file='skip'``) are left out of every later pass.
The result, a :class:`Report`, renders as a self-contained HTML page (:meth:`Report.to_html`,
no network), as a notebook summary (``_repr_html_``) and with matplotlib (:meth:`Report.plot`).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np

from l1stream.engine.quantiles import (
    Bucket,
    QuantileResult,
    as_float,
    exact_quantiles,
    merge_counts,
    pass_counts,
    validate_qs,
)
from l1stream.engine.result import EvaluationResult, _json_float, _json_value, slice_json, slice_text
from l1stream.errors import UsageError, did_you_mean
from l1stream.exact.state import correctly_rounded
from l1stream.exact.summation import UNITS_PER_ONE, ExactSum
from l1stream.report.profile import Profile, ProfileSpec, SliceProfile, merge_profiles, profile_pieces

TIME_KEY_NAMES = ("date", "day", "dt", "ds")
MAX_PROFILED_SLICES = 200
TIME_LINES = 6  # slices drawn over time beside the overall line (the largest)
"""Beyond this many slices, only the largest are profiled one by one (intervals, L2, histograms):
the profile's memory stays bounded whatever the cardinality of ``by``."""


@dataclass
class Report:
    """An evaluation with its error profile (see the module doc)."""

    result: EvaluationResult
    profile: Profile
    quantiles: QuantileResult | None
    top_share: float  # share of the total L1 loss carried by the top ``top_fraction`` of rows
    top_fraction: float = 0.01
    time_key: str | None = None
    history: list = field(default_factory=list)  # metrics-history records (l1stream.outputs.history.read)
    confidence: float = 0.95
    title: str = "l1stream error report"
    source: str = ""
    generated: str = ""
    passes: int = 0
    edges: tuple | None = None  # fixed histogram edges, if asked for

    @cached_property
    def overall(self) -> SliceProfile:
        """The profile of all rows (the slices merged)."""
        return self.profile.overall()

    def slices(self) -> list:
        """Per slice: key, label, mae, count, interval, mse, rmse (in the result's slice order)."""
        return [dict(row) for row in self._slice_rows]

    @cached_property
    def _slice_rows(self) -> list:  # the intervals are computed once, however often the page asks
        out = []
        numbers = self.result.slice_numbers() if self.result.by else {(): _overall_numbers(self.result)}
        for key, values in numbers.items():
            prof = self.profile.slices.get(key, SliceProfile())
            out.append({"key": key, "label": slice_text(self.result.by, key), "mae": values["mae"],
                        "count": values["count"],
                        "interval": prof.interval(self.confidence), "mse": prof.mse, "rmse": prof.rmse,
                        "profiled": key in self.profile.slices or not self.result.by})
        return out

    def time_series(self) -> list:
        """``[(time value, mae, rows)]`` sorted by time, from the time key's values."""
        rows = []
        for when in sorted((k for k in self.profile.times if k is not None), key=lambda v: (str(type(v)), v)):
            state = self.profile.times[when]
            if state.count and state.weight_sum:
                rows.append((when, state.mae, state.count))
        return rows

    def slice_time_series(self) -> dict:
        """``{slice key: [(time value, mae, rows)]}`` for the largest slices (at most six), by time."""
        out: dict = {}
        for (key, when), state in self.profile.slice_times.items():
            if when is not None and state.count and state.weight_sum:
                out.setdefault(key, []).append((when, state.mae, state.count))
        return {key: sorted(rows, key=lambda r: (str(type(r[0])), r[0])) for key, rows in sorted(
            out.items(), key=lambda item: repr(item[0]))}

    def history_series(self) -> list:
        """``[(timestamp, mae, passed)]`` of the overall records in the metrics history."""
        return [(r["timestamp"], r["mae"], r["gates_passed"]) for r in self.history if r["slice"] == ""]

    def to_dict(self) -> dict:
        """A JSON-ready dict: the result's, plus ``report`` (profile, quantiles, intervals)."""
        overall = self.overall
        out = self.result.to_dict()
        out["report"] = {
            "mse": _json_float(overall.mse), "rmse": _json_float(overall.rmse),
            "top_share": {"fraction": self.top_fraction, "share": _json_float(self.top_share)},
            "quantiles": None if self.quantiles is None else self.quantiles.to_dict(),
            "histogram": [[lo, hi, c] for lo, hi, c in overall.log_histogram(16)],
            "slices": [{"key": slice_json(self.result.by, s["key"]),
                        "mae": _json_float(s["mae"]), "count": s["count"], "mse": _json_float(s["mse"]),
                        "rmse": _json_float(s["rmse"]),
                        "interval": None if s["interval"] is None else s["interval"].to_dict(),
                        "profiled": s["profiled"],
                        "histogram": [[lo, hi, c] for lo, hi, c in
                                      self.profile.slices.get(s["key"], SliceProfile()).log_histogram(16)]}
                       for s in self.slices()],
            "time_key": self.time_key,
            "time_series": [{"time": _json_value(t), "mae": _json_float(m), "count": c}
                            for t, m, c in self.time_series()],
            "passes": self.passes,
        }
        if self.edges is not None:
            out["report"]["fixed_bins"] = {"edges": list(self.edges), "counts": overall.bin_counts,
                                           "note": "counts[0]: below the first edge; counts[-1]: at or above "
                                                   "the last; counts[i]: [edges[i-1], edges[i])"}
        return out

    def to_html(self) -> str:
        """The self-contained HTML report (inline SVG charts, no scripts, no network)."""
        from l1stream.report.render import report_html

        return report_html(self)

    def write_html(self, path: str, storage_options: dict | None = None) -> str:
        """Write :meth:`to_html` to a local path or URL, atomically; returns the path."""
        from l1stream.storage import write_text

        write_text(path, self.to_html(), storage_options)
        return path

    def __repr__(self) -> str:
        q = self.quantiles
        quantiles = "" if q is None else ", median=" + repr(q.median) + "".join(
            f", p{level * 100:g}={value!r}" for level, value in q.quantiles.items())
        slices = f", slices={len(self.slices())}" if self.result.by else ""
        return (f"Report(mae={self.result.mae!r}, count={self.result.count:,}{quantiles}, "
                f"rmse={self.overall.rmse!r}{slices}, passes={self.passes})")

    def _repr_html_(self) -> str:
        from l1stream.report.render import summary_html

        return summary_html(self)

    def plot(self, fig=None):
        """Draw the histogram, the per-slice MAE with intervals and the MAE over time (matplotlib)."""
        from l1stream.report.render import plot_report

        return plot_report(self, fig)


def _overall_numbers(result: EvaluationResult) -> dict:
    return {"mae": result.mae, "count": result.count}


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
        """The evaluation (what :func:`l1stream.evaluate` returns for the same options)."""
        from l1stream.engine.frames import evaluate_frame
        from l1stream.engine.job import _execute

        if self.frame is not None:
            kind = "dask" if hasattr(self.frame, "to_delayed") else "pandas"
            return evaluate_frame(self.frame, kind, self.options, progress=progress)
        return _execute(self.prepared, self.options, progress)

    def profile(self, result: EvaluationResult, history: str | None = None) -> Report:
        """The extra passes over the files that ``result`` read (skipped files stay out)."""
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
        if self.time_key and not self.time_is_partition:
            spec = replace(spec, extra_columns=(self.time_key,))
        lines = largest_slices(result, TIME_LINES) or frozenset(result.group_states) if result.by else frozenset()
        wanted = ProfileSpec(self.edges, self.time_key, self.time_is_partition, squares=options.weight is None,
                             slices=largest_slices(result, MAX_PROFILED_SLICES), time_slices=lines)
        passes = Passes(items, spec, filesystem, options, frame=self.frame)
        profile = passes.run(profile_pieces, (wanted,), merge_profiles, Profile())
        quantile_result, share = self._quantiles(passes, profile.overall(), result)
        rows = []
        if history:
            from l1stream.outputs.history import read

            rows = read(history, self.storage_options)
        return Report(result, profile, quantile_result, share, self.top_fraction, self.time_key, rows,
                      self.confidence, self.title, self.source,
                      dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), passes.count + 1, self.edges)

    def _quantiles(self, passes: "Passes", overall: SliceProfile, result: EvaluationResult):
        n = overall.count
        if not n:
            return None, math.nan
        k = max(1, math.ceil(self.top_fraction * n))
        spec = passes.spec
        policy = self.options.nan_policy
        root = (Bucket(0, 0),)
        histogram = overall.dense_log_counts()
        # the top-16-bit bin of the threshold (rank n - k): losses above that bin are summed in the
        # quantile passes themselves; those inside it are the bin's collected values
        digit = int(np.searchsorted(np.cumsum(histogram), n - k, side="right"))
        tail_above = ((digit + 1) << 48) - 1
        seen: dict = {}

        def run_pass(buckets):
            if tuple(buckets) == root:  # the first pass's histogram is the profile's: no need to read again
                return {root[0]: histogram, "left_out": sum(result.left_out.values())}
            found = passes.run(pass_counts, (list(buckets), tail_above), merge_counts,
                               pass_counts([], spec, None, buckets, tail_above))
            seen.setdefault("tail", found.get("tail", (0, 0)))
            for bucket in buckets:
                if bucket.collect and bucket.bits == 16 and bucket.prefix == digit:
                    seen["bin"] = found[bucket]
            return found

        quantile_result = exact_quantiles(
            run_pass, self.qs, "omit" if policy == "propagate" else policy, extra_ranks=lambda count: [count - k])
        threshold = quantile_result.order_statistics[n - k]
        share = math.nan
        if not overall.infinite_losses and overall.loss_sum:  # else the share is undefined
            if "bin" in seen:  # no tail pass: the quantile pass counted what lies above the threshold
                inside = seen["bin"][seen["bin"] > np.uint64(threshold)].view(np.float64)
                acc = ExactSum()
                acc.add_values(inside)
                above, units = seen["tail"][0] + int(inside.shape[0]), seen["tail"][1] + acc.units
            else:
                above, units = passes.run(tail_counts, (threshold,), merge_tails, (0, 0))
            top = Fraction(units, UNITS_PER_ONE) + (k - above) * Fraction(float(as_float(threshold)))
            share = correctly_rounded(top / Fraction(overall.loss_sum, UNITS_PER_ONE))
        if policy == "propagate" and any(result.left_out.values()):
            quantile_result.median = math.nan
            quantile_result.quantiles = {q: math.nan for q in quantile_result.quantiles}
        return quantile_result, share


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
