"""The error report: the MAE plus what it hides (made by :mod:`l1stream.report.job`, usually in one read).

A :class:`Report` holds the evaluation, the error profile (per-slice log histograms, exact L2,
jackknife intervals, the MAE over time), the exact quantiles of the loss overall and per slice,
the top-1% share, and, with a baseline model, the paired comparison of the two per slice:
``difference = MAE(prediction) - MAE(baseline_prediction)`` over the same rows, its jackknife
interval and t test over the same row-group blocks, and Holm's adjustment of the p-values across
the slices (:meth:`Report.comparison`).  It renders as a self-contained HTML page
(:meth:`Report.to_html`, no network), as a notebook summary (``_repr_html_``) and with matplotlib
(:meth:`Report.plot`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from l1stream.engine.quantiles import QuantileResult
from l1stream.engine.result import EvaluationResult, _json_float, _json_value, slice_json, slice_text
from l1stream.report.intervals import holm
from l1stream.report.profile import Profile, SliceProfile

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
    reread: float = 0.0  # the share of the data read a second time beside the passes (a sample's)
    edges: tuple | None = None  # fixed histogram edges, if asked for
    slice_quantiles: dict = field(default_factory=dict)  # slice key -> {"median": ..., q: ...} (profiled slices)
    alpha: float = 0.05  # the level of the model comparison's Holm-adjusted tests

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
            quantiles = self.slice_quantiles.get(key) if self.result.by else self._overall_quantiles()
            out.append({"key": key, "label": slice_text(self.result.by, key), "mae": values["mae"],
                        "count": values["count"],
                        "interval": prof.interval(self.confidence), "mse": prof.mse, "rmse": prof.rmse,
                        "profiled": key in self.profile.slices or not self.result.by, "quantiles": quantiles,
                        "baseline_mae": values.get("baseline_mae"),
                        "difference": prof.difference(self.confidence) if self.result.baseline_column else None,
                        "adjusted_p": None})
        tested = [row for row in out if row["difference"] is not None]
        for row, adjusted in zip(tested, holm([row["difference"].p_value for row in tested])):
            row["adjusted_p"] = adjusted
        return out

    def _overall_quantiles(self) -> dict | None:
        if self.quantiles is None:
            return None
        return {"median": self.quantiles.median, **self.quantiles.quantiles}

    def tests(self) -> dict:
        """``{slice key: (difference, p-value)}`` of the paired comparison (Holm-adjusted for slices;
        ``()``: the overall test), for ``significant`` gates."""
        out: dict = {}
        if not self.result.baseline_column:
            return out
        overall = self.overall.difference(self.confidence)
        if overall is not None:
            out[()] = (overall.estimate, overall.p_value)
        if self.result.by:
            for row in self.slices():
                if row["difference"] is not None:
                    out[row["key"]] = (row["difference"].estimate, row["adjusted_p"])
        return out

    def comparison(self) -> dict | None:
        """The model against the baseline, per slice (None without a baseline).

        ``difference = MAE(prediction) - MAE(baseline_prediction)`` over the same rows (a positive
        difference: the candidate errs more); each slice's difference has a paired jackknife
        interval and a t test over the same row-group blocks; the p-values are adjusted across the
        slices by Holm's method, and a slice counts as worse (better) when its adjusted p-value is
        below ``alpha`` and the difference is positive (negative).
        """
        if not self.result.baseline_column:
            return None
        rows = self.slices()
        tested = [row for row in rows if row["difference"] is not None]
        worse = [row for row in tested if row["adjusted_p"] < self.alpha and row["difference"].estimate > 0]
        better = [row for row in tested if row["adjusted_p"] < self.alpha and row["difference"].estimate < 0]
        scope = "slices" if self.result.by else "the data"
        if self.result.by:
            verdict = (f"candidate worse on {len(worse)} of {len(tested)} slices, better on {len(better)} "
                       f"(Holm-adjusted p < {self.alpha:g})")
        else:
            verdict = ("candidate worse" if worse else "candidate better" if better else "no significant difference") \
                + f" (p < {self.alpha:g})" * bool(worse or better)
        return {"formula": "difference = MAE(prediction) - MAE(baseline_prediction), over the same rows",
                "alpha": self.alpha, "adjustment": "Holm", "tested": len(tested), "worse": len(worse),
                "better": len(better), "scope": scope, "verdict": verdict,
                "worse_slices": [row["key"] for row in worse], "better_slices": [row["key"] for row in better]}

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
                        "quantiles": None if s["quantiles"] is None else _quantile_json(s["quantiles"]),
                        "baseline_mae": _json_float(s["baseline_mae"]) if s["baseline_mae"] is not None else None,
                        "difference": None if s["difference"] is None else {**s["difference"].to_dict(),
                                                                             "adjusted_p": s["adjusted_p"]},
                        "histogram": [[lo, hi, c] for lo, hi, c in
                                      self.profile.slices.get(s["key"], SliceProfile()).log_histogram(16)]}
                       for s in self.slices()],
            "comparison": self._comparison_json(),
            "time_key": self.time_key,
            "time_series": [{"time": _json_value(t), "mae": _json_float(m), "count": c}
                            for t, m, c in self.time_series()],
            "passes": self.passes,
            "reread": self.reread,
        }
        if self.edges is not None:
            out["report"]["fixed_bins"] = {"edges": list(self.edges), "counts": overall.bin_counts,
                                           "note": "counts[0]: below the first edge; counts[-1]: at or above "
                                                   "the last; counts[i]: [edges[i-1], edges[i])"}
        return out

    def _comparison_json(self) -> dict | None:
        summary = self.comparison()
        if summary is None:
            return None
        by = self.result.by
        return {**summary, "worse_slices": [slice_json(by, k) for k in summary["worse_slices"]],
                "better_slices": [slice_json(by, k) for k in summary["better_slices"]]}

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
    return {"mae": result.mae, "count": result.count, "baseline_mae": result.baseline_mae}


def _quantile_json(values: dict) -> dict:
    return {("median" if q == "median" else repr(q)): _json_float(v) for q, v in values.items()}
