"""The mergeable result of scanning part of a dataset: per-slice states plus accounting.

:class:`ScanState` is what every task returns and what the tree reduction adds
up.  Like :class:`~l1stream.exact.state.L1State` it is exact, small (counts and one
state per slice), picklable, and forms a commutative monoid under ``merge``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from l1stream.exact.l1state import LEFT_OUT_REASONS, L1State


@dataclass
class FileReport:
    """Row accounting for one file: ``rows_read == rows_used + sum(left_out)``.

    ``rows_scanned`` counts the rows of the row groups this file contributed;
    ``rows_filtered`` those removed by row filters (including whole row groups
    skipped because their statistics exclude the filters), so
    ``rows_scanned == rows_read + rows_filtered``.
    """

    rows_scanned: int = 0
    rows_filtered: int = 0
    rows_used: int = 0
    left_out: dict = field(default_factory=lambda: dict.fromkeys(LEFT_OUT_REASONS, 0))
    row_groups: int = 0
    row_groups_pruned: int = 0

    @property
    def rows_read(self) -> int:
        return self.rows_scanned - self.rows_filtered

    def add_state(self, state: L1State) -> None:
        self.rows_used += state.count
        for k in LEFT_OUT_REASONS:
            self.left_out[k] += state.left_out[k]

    def merge(self, other: "FileReport") -> "FileReport":
        return FileReport(self.rows_scanned + other.rows_scanned, self.rows_filtered + other.rows_filtered,
                          self.rows_used + other.rows_used,
                          {k: self.left_out[k] + other.left_out[k] for k in LEFT_OUT_REASONS},
                          self.row_groups + other.row_groups, self.row_groups_pruned + other.row_groups_pruned)

    def to_dict(self) -> dict:
        return {"rows_read": self.rows_read, "rows_used": self.rows_used, "left_out": dict(self.left_out),
                "rows_filtered": self.rows_filtered, "row_groups": self.row_groups,
                "row_groups_pruned": self.row_groups_pruned}


@dataclass
class ScanState:
    """Per-slice :class:`L1State` (keyed by a tuple of slice values; ``()`` without ``by``),
    per-file :class:`FileReport` and the files skipped (path -> reason)."""

    groups: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    fragments_read: int = 0  # pieces decoded in this run
    fragments_reused: int = 0  # pieces taken from the state store
    baseline: dict = field(default_factory=dict)  # per-slice L1State of the baseline model (paired rows)
    fragments_rejected: int = 0  # stored entries not used (corrupt, or made for another fragment): recomputed

    @classmethod
    def empty(cls) -> "ScanState":
        return cls()

    def add_group_state(self, key: tuple, state: L1State) -> None:
        current = self.groups.get(key)
        self.groups[key] = state if current is None else current.merge(state)

    def add_baseline_state(self, key: tuple, state: L1State) -> None:
        current = self.baseline.get(key)
        self.baseline[key] = state if current is None else current.merge(state)

    def merge(self, other: "ScanState") -> "ScanState":
        groups = _merge_groups(self.groups, other.groups)
        baseline = _merge_groups(self.baseline, other.baseline)
        files = dict(self.files)
        for path, report in other.files.items():
            files[path] = report if path not in files else files[path].merge(report)
        return ScanState(groups, files, {**self.skipped, **other.skipped}, self.fragments_read + other.fragments_read,
                         self.fragments_reused + other.fragments_reused, baseline,
                         self.fragments_rejected + other.fragments_rejected)

    def overall(self, baseline: bool = False) -> L1State:
        """All slices merged (of the model, or of the baseline model); exact, so order is irrelevant."""
        groups = self.baseline if baseline else self.groups
        total = L1State.empty()
        for key in sorted(groups, key=_sort_key):
            total = total.merge(groups[key])
        return total


def _merge_groups(left: dict, right: dict) -> dict:
    merged = dict(left)
    for key, state in right.items():
        merged[key] = state if key not in merged else merged[key].merge(state)
    return merged


def merge_all(states) -> ScanState:
    """Merge an iterable of :class:`ScanState` (used by the tree reduction)."""
    total = ScanState.empty()
    for state in states:
        total = total.merge(state)
    return total


def _sort_key(key: tuple):
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in key)


# --- serialisation (for the state store): exact, JSON, no pickle -------------------------------

def state_to_json(state: ScanState) -> dict:
    """A JSON-ready dict holding ``state`` exactly (Fractions as ``"numerator/denominator"``)."""
    return {
        "groups": [[_encode_key(k), _l1_to_json(s)] for k, s in state.groups.items()],
        "baseline": [[_encode_key(k), _l1_to_json(s)] for k, s in state.baseline.items()],
        "files": {p: {**vars(r), "left_out": dict(r.left_out)} for p, r in state.files.items()},
        "skipped": dict(state.skipped),
    }


def state_from_json(doc: dict) -> ScanState:
    """Inverse of :func:`state_to_json`; raises ``ValueError``/``KeyError`` on a malformed document."""
    groups = {_decode_key(k): _l1_from_json(s) for k, s in doc["groups"]}
    files = {p: FileReport(**{**r, "left_out": dict(r["left_out"])}) for p, r in doc["files"].items()}
    baseline = {_decode_key(k): _l1_from_json(s) for k, s in doc.get("baseline", [])}
    return ScanState(groups, files, dict(doc["skipped"]), baseline=baseline)


def _l1_to_json(s: L1State) -> dict:
    return {"abs_error_sum": str(s.abs_error_sum), "weight_sum": str(s.weight_sum), "count": s.count,
            "left_out": dict(s.left_out), "propagated": None if s.propagated is None else repr(s.propagated)}


def _l1_from_json(d: dict) -> L1State:
    from fractions import Fraction

    propagated = None if d["propagated"] is None else float(d["propagated"])
    return L1State(Fraction(d["abs_error_sum"]), Fraction(d["weight_sum"]), int(d["count"]),
                   {k: int(d["left_out"][k]) for k in LEFT_OUT_REASONS}, propagated)


def _encode_key(key: tuple) -> list:
    import datetime as dt

    out = []
    for v in key:
        if v is None:
            out.append(["n", ""])
        elif isinstance(v, bool):
            out.append(["b", str(v)])
        elif isinstance(v, int):
            out.append(["i", str(v)])
        elif isinstance(v, float):
            out.append(["f", repr(v)])
        elif isinstance(v, str):
            out.append(["s", v])
        elif isinstance(v, dt.datetime):
            out.append(["t", v.isoformat()])
        elif isinstance(v, dt.date):
            out.append(["d", v.isoformat()])
        else:
            raise TypeError(f"cannot store a slice key of type {type(v).__name__}")
    return out


def _decode_key(items: list) -> tuple:
    import datetime as dt

    decode: dict[str, Any] = {"n": lambda v: None, "b": lambda v: v == "True", "i": int, "f": float, "s": str,
              "t": dt.datetime.fromisoformat, "d": dt.date.fromisoformat}
    return tuple(decode[tag](value) for tag, value in items)
