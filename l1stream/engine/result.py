"""The result of an evaluation: plain Python values, a stable ``to_dict``, readable reprs."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from l1stream.engine.scan_state import ScanState, _sort_key
from l1stream.exact.l1state import LEFT_OUT_REASONS, L1State, correctly_rounded
from l1stream.markup import card, esc, scoped_style, slice_bars_svg

SCHEMA_VERSION = 1


class EvaluationResult:
    """The exact MAE of a dataset, overall and per slice, with full row accounting.

    Attributes
    ----------
    mae : float
        Correctly rounded (weighted) mean absolute error of the rows used.
    count : int
        Rows used.
    rows_read : int
        Rows read after filters: ``rows_read == count + sum(left_out.values())``.
    left_out : dict
        Rows left out by reason (``null``, ``nan``, ``inf``) under ``nan_policy='omit'``/``'propagate'``.
    weight_sum : float or None
        Sum of weights (weighted mode only).
    by : tuple
        Slice keys; ``groups`` has one row per slice.
    skipped : dict
        Files skipped under ``on_bad_file='skip'``: path -> reason.
    duplicates : list
        Paths reached more than once by the sources (each counted once).
    file_reports : dict
        Per-file accounting (path -> :class:`~l1stream.engine.scan_state.FileReport`).
    """

    def __init__(self, scan: ScanState, *, by: tuple = (), weighted: bool = False, nan_policy: str = "raise",
                 filters: tuple = (), files_selected: int = 0, files_pruned: int = 0, directories_not_listed: int = 0,
                 duplicates=(), ignored: int = 0, columns: dict | None = None, elapsed: float = 0.0,
                 scheduler: str = "") -> None:
        self._scan = scan
        self._overall: L1State = scan.overall()
        self.by = tuple(by)
        self.weighted = weighted
        self.nan_policy = nan_policy
        self.filters = tuple(filters)
        self.files_selected = files_selected
        self.files_pruned = files_pruned
        self.directories_not_listed = directories_not_listed
        self.duplicates = list(duplicates)
        self.ignored = ignored
        self.columns = dict(columns or {})
        self.elapsed = elapsed
        self.scheduler = scheduler
        self.mae = self._overall.mae
        self.count = self._overall.count
        self.left_out = dict(self._overall.left_out)
        self.rows_read = self._overall.rows
        total_weight = self._overall.weight_sum
        self.weight_sum = correctly_rounded(total_weight) if weighted else None
        self.skipped = dict(sorted(scan.skipped.items()))
        self.fragments = {"read": scan.fragments_read, "reused": scan.fragments_reused,
                          "rejected": scan.fragments_rejected}
        self.baseline_column = self.columns.get("baseline_prediction")
        self.baseline_mae = self.difference = None
        if self.baseline_column:
            base = scan.overall(baseline=True)
            self.baseline_mae = base.mae
            self.difference = paired_difference(self._overall, base)
        self.gates = None  # set by l1stream.scheduled.gates.check_gates
        self.inputs_fingerprint = ""
        self.source: dict[str, Any] = {"format": "parquet", "table_version": None, "tables": []}
        self.file_reports = dict(sorted(scan.files.items()))

    @property
    def state(self) -> L1State:
        """The exact overall state (for merging with other results)."""
        return self._overall

    @property
    def group_states(self) -> dict:
        """Exact per-slice states, keyed by slice value tuples."""
        return {k: self._scan.groups[k] for k in sorted(self._scan.groups, key=_sort_key)}

    @property
    def baseline_group_states(self) -> dict:
        """Exact per-slice states of the baseline model (same rows as ``group_states``)."""
        return {k: self._scan.baseline[k] for k in sorted(self._scan.baseline, key=_sort_key)}

    def slice_numbers(self) -> dict:
        """Per slice key: mae, count, rows_read, left-out counts (and baseline_mae, difference when paired)."""
        out = {}
        for key, state in self.group_states.items():
            numbers = _group_numbers(state)
            if self.baseline_column:
                base = self._scan.baseline.get(key)
                numbers["baseline_mae"] = _safe_mae(base) if base is not None else math.nan
                numbers["difference"] = paired_difference(state, base) if base is not None else math.nan
            out[key] = numbers
        return out

    @property
    def groups(self):
        """Per-slice results as a pandas DataFrame (key columns, ``mae``, ``count``, left-out counts)."""
        import pandas as pd

        rows = [dict(zip(self.by, key), **numbers) for key, numbers in self.slice_numbers().items()]
        columns = list(self.by) + ["mae", "count", "rows_read"] + [f"left_out_{k}" for k in LEFT_OUT_REASONS]
        if self.baseline_column:
            columns += ["baseline_mae", "difference"]
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self, *, file_reports: bool = False) -> dict:
        """A JSON-ready dict (schema in the README); floats round-trip exactly, NaN becomes None."""
        out = {
            "schema_version": SCHEMA_VERSION,
            "mae": _json_float(self.mae),
            "count": self.count,
            "rows_read": self.rows_read,
            "left_out": dict(self.left_out),
            "weighted": self.weighted,
            "weight_sum": _json_float(self.weight_sum) if self.weighted else None,
            "abs_error_sum": _json_float(self._overall.abs_error_sum_float),
            "nan_policy": self.nan_policy,
            "columns": self.columns,
            "filters": list(self.filters),
            "by": list(self.by),
            "source": {**self.source, "tables": [dict(t) for t in self.source["tables"]]},
            "files": {
                "selected": self.files_selected,
                "pruned_by_partition_filters": self.files_pruned,
                "directories_not_listed": self.directories_not_listed,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped.items()],
                "duplicates": list(self.duplicates),
                "ignored_hidden_or_temporary": self.ignored,
            },
            "fragments": dict(self.fragments),
            "baseline": None if not self.baseline_column else {
                "column": self.baseline_column, "mae": _json_float(self.baseline_mae),
                "difference": _json_float(self.difference)},
            "gates": None if self.gates is None else [dict(g) for g in self.gates],
            "scheduler": self.scheduler,
            "elapsed_seconds": round(self.elapsed, 6),
        }
        if self.by:
            out["groups"] = [
                {"key": slice_json(self.by, key),
                 **{k: _json_float(v) if isinstance(v, float) else v for k, v in numbers.items()}}
                for key, numbers in self.slice_numbers().items()
            ]
        if file_reports:
            out["file_reports"] = {p: r.to_dict() for p, r in self.file_reports.items()}
        return out

    def __repr__(self) -> str:
        left = sum(self.left_out.values())
        text = (f"EvaluationResult(mae={self.mae!r}, count={self.count}, rows_read={self.rows_read}, "
                f"left_out={left}, files={self.files_selected}")
        if self.by:
            text += f", by={list(self.by)}, groups={len(self._scan.groups)}"
        if self.skipped:
            text += f", skipped={len(self.skipped)}"
        return text + ")"

    def summary(self) -> str:
        """A readable multi-line summary (what the CLI prints without ``--json``)."""
        lines = [f"MAE        {self.mae!r}", f"rows used  {self.count:,}", f"rows read  {self.rows_read:,}"]
        if any(self.left_out.values()):
            lines.append("left out   " + ", ".join(f"{k}: {v:,}" for k, v in self.left_out.items() if v))
        if self.weighted:
            lines.append(f"weight sum {self.weight_sum!r}")
        if self.baseline_column:
            lines.append(f"baseline   {self.baseline_mae!r} ({self.baseline_column}); difference {self.difference!r}")
        pruned = [f"{self.files_pruned:,} pruned by filters"] if self.files_pruned else []
        if self.directories_not_listed:
            pruned.append(f"{self.directories_not_listed:,} partition directories not listed")
        lines.append(f"files      {self.files_selected:,}" + (f" ({'; '.join(pruned)})" if pruned else ""))
        for path, reason in self.skipped.items():
            lines.append(f"skipped    {path}: {reason}")
        if self.duplicates:
            lines.append(f"duplicates {len(self.duplicates)} path(s) given more than once, counted once")
        if self.fragments["reused"]:
            read, reused = self.fragments["read"], self.fragments["reused"]
            lines.append(f"fragments  {read:,} read, {reused:,} reused from the store")
        if self.by:
            lines.append("")
            lines.append(_table(self))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return result_html(self)


def _safe_mae(state: L1State) -> float:
    try:
        return state.mae
    except ValueError:
        return math.nan


def paired_difference(model: L1State, baseline: L1State) -> float:
    """MAE(model) - MAE(baseline), computed exactly and rounded once."""
    if model.propagated is not None or baseline.propagated is not None or not model.weight_sum \
            or not baseline.weight_sum:
        return math.nan
    return correctly_rounded(model.abs_error_sum / model.weight_sum - baseline.abs_error_sum / baseline.weight_sum)


def _group_numbers(state: L1State) -> dict:
    mae = _safe_mae(state)
    return {"mae": mae, "count": state.count, "rows_read": state.rows,
            **{f"left_out_{k}": state.left_out[k] for k in LEFT_OUT_REASONS}}


def _table(result: EvaluationResult) -> str:
    header = list(result.by) + ["mae", "count"]
    rows = [[str(_json_value(v)) for v in key] + [repr(_group_numbers(s)["mae"]), f"{s.count:,}"]
            for key, s in result.group_states.items()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*r) for r in rows])


def _json_float(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)


def slice_json(by: tuple, key: tuple) -> dict:
    """A slice key as a JSON-ready mapping: ``{"model": "v1", "date": "2026-11-01"}``."""
    return {k: _json_value(v) for k, v in zip(by, key)}


def slice_text(by: tuple, key: tuple) -> str:
    """A slice key for people: ``model=v1, date=2026-11-01`` (``all rows`` without keys)."""
    return ", ".join(f"{k}={v}" for k, v in slice_json(by, key).items()) or "all rows"


def _json_value(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def combine_results(results: list) -> EvaluationResult:
    """Merge results of disjoint sources evaluated with the same ``by`` (exact: states are merged)."""
    import hashlib

    first = results[0]
    scan = ScanState.empty()
    for r in results:
        scan = scan.merge(r._scan)
    combined = EvaluationResult(
        scan, by=first.by, weighted=first.weighted, nan_policy=first.nan_policy,
        filters=tuple(dict.fromkeys(f for r in results for f in r.filters)),
        files_selected=sum(r.files_selected for r in results), files_pruned=sum(r.files_pruned for r in results),
        directories_not_listed=sum(r.directories_not_listed for r in results),
        duplicates=[d for r in results for d in r.duplicates], ignored=sum(r.ignored for r in results),
        columns=first.columns if all(r.columns == first.columns for r in results) else {"per_source": True},
        elapsed=sum(r.elapsed for r in results), scheduler=first.scheduler)
    parts = "".join(sorted(r.inputs_fingerprint for r in results))
    combined.inputs_fingerprint = hashlib.sha256(parts.encode()).hexdigest()[:16]
    tables = [t for r in results for t in r.source["tables"]]
    formats = {r.source["format"] for r in results}
    versions = {t["table_version"] for t in tables}
    combined.source = {"format": formats.pop() if len(formats) == 1 else "mixed",
                       "table_version": versions.pop() if len(versions) == 1 else None, "tables": tables}
    return combined


def result_html(result) -> str:
    """The notebook view of an :class:`~l1stream.engine.result.EvaluationResult` (no profile needed)."""
    left = sum(result.left_out.values())
    cards = [card("MAE", repr(result.mae), main=True), card("rows used", f"{result.count:,}"),
             card("rows left out", f"{left:,}"), card("files", f"{result.files_selected:,}")]
    parts = [f"<div class='l1stream-result'><style>{scoped_style('.l1stream-result')}</style><div class='cards'>",
             *cards, "</div>"]
    if result.by:
        slices = [{"label": slice_text(result.by, key), "mae": n["mae"],
                   "count": n["count"], "interval": None} for key, n in result.slice_numbers().items()]
        parts.append(slice_bars_svg(slices))
        cells = "".join(f"<th>{esc(c)}</th>" for c in list(result.by) + ["mae", "count"])
        body = "".join("<tr>" + "".join(f"<td>{esc(_json_value(v))}</td>" for v in key)
                       + f"<td>{esc(repr(n['mae']))}</td><td>{n['count']:,}</td></tr>"
                       for key, n in result.slice_numbers().items())
        parts.append(f"<table><tr>{cells}</tr>{body}</table>")
    return "".join(parts) + "</div>"
