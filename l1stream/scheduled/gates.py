"""Quality gates: fail a run (exit code 4) when the MAE is too high or rose too much.

A gate is a small dict (config ``gates:`` list, or CLI flags)::

    {"max_mae": 60000}                                   # the MAE must not exceed this
    {"max_increase_percent": 5, "baseline": "history"}   # vs the previous passing run in the history
    {"max_increase": 500, "baseline": "baseline_prediction"}  # vs the baseline model, same rows
    ... plus "slices": true, "min_slice_size": 1000      # also every slice with >= 1000 rows
    ... plus "significant": true                          # the report's paired test must find the rise

Each check gives ``{"gate", "slice", "value", "baseline", "threshold", "status"}`` with
status ``passed``, ``failed`` or ``no_baseline`` (the first run of a history, or a slice
the baseline never saw: reported, not failed).
"""

from __future__ import annotations

import math

from l1stream.errors import UsageError

KINDS = ("max_mae", "max_increase_percent", "max_increase")
BASELINES = ("history", "baseline_prediction")
ALPHA = 0.05  # the level of a significant gate's test
KEYS = set(KINDS) | {"baseline", "slices", "min_slice_size", "name", "significant"}


def validate_gates(gates) -> list:
    """Normalise a list of gate dicts; raise :class:`UsageError` naming the bad one."""
    if gates is None:
        return []
    if isinstance(gates, dict):
        gates = [gates]
    out = []
    for i, gate in enumerate(gates):
        where = f"gates[{i}]"
        if not isinstance(gate, dict):
            raise UsageError(f"{where}: expected a mapping like {{max_mae: 100}}; got {gate!r}")
        unknown = set(gate) - KEYS
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(KEYS)}")
        kinds = [k for k in KINDS if k in gate]
        if len(kinds) != 1:
            raise UsageError(f"{where}: give exactly one of {', '.join(KINDS)}; got {kinds or 'none'}")
        kind = kinds[0]
        threshold = gate[kind]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
                or threshold < 0:
            hint = " (YAML reads 1.0e9 as text: write 1.0e+9)" if isinstance(threshold, str) else ""
            raise UsageError(f"{where}.{kind}: expected a non-negative number; got {threshold!r}{hint}")
        baseline = gate.get("baseline", "history" if kind != "max_mae" else None)
        if kind != "max_mae" and baseline not in BASELINES:
            raise UsageError(f"{where}.baseline: expected one of {', '.join(BASELINES)}; got {baseline!r}")
        significant = gate.get("significant", False)
        if not isinstance(significant, bool):
            raise UsageError(f"{where}.significant: expected true or false; got {significant!r}")
        if significant and (kind == "max_mae" or baseline != "baseline_prediction"):
            raise UsageError(f"{where}.significant: applies to max_increase and max_increase_percent gates against "
                             f"baseline: baseline_prediction (the paired test compares the two models)")
        size = gate.get("min_slice_size", 1)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise UsageError(f"{where}.min_slice_size: expected a positive integer; got {size!r}")
        out.append({"kind": kind, "threshold": float(threshold), "baseline": baseline,
                    "slices": bool(gate.get("slices", False)), "min_slice_size": size,
                    "name": str(gate.get("name") or kind), "significant": significant})
    return out


def check_gates(result, gates: list, *, history_values: dict | None = None, tests: dict | None = None) -> list:
    """Evaluate gates against ``result``; store the checks on ``result.gates`` and return them.

    ``history_values`` maps history slice labels (see :func:`l1stream.outputs.history.slice_label`)
    to the previous run's MAE.  ``tests`` maps slice keys (``()`` overall) to the report's paired
    ``(difference, p-value)`` (:meth:`l1stream.report.Report.tests`), for ``significant`` gates.
    """
    if any(g.get("significant") for g in gates) and tests is None:
        raise UsageError("a significant gate needs the report's paired test of the two models: run l1stream report "
                         "(or a config that writes output.report), not l1stream mae")
    from l1stream.outputs.history import OVERALL, slice_label

    checks = []
    for gate in gates:
        scopes = [((), OVERALL, result.mae, result.count, result.baseline_mae)]
        if gate["slices"] and result.by:
            for key, numbers in result.slice_numbers().items():
                if numbers["count"] >= gate["min_slice_size"]:
                    scopes.append((key, slice_label(result.by, key), numbers["mae"], numbers["count"],
                                   numbers.get("baseline_mae")))
        for key, label, value, _, paired in scopes:
            baseline = None
            if gate["kind"] != "max_mae":
                baseline = paired if gate["baseline"] == "baseline_prediction" else (history_values or {}).get(label)
                if gate["baseline"] == "baseline_prediction" and not result.baseline_column:
                    raise UsageError(f"gate {gate['name']!r} compares with baseline_prediction, but no "
                                     f"baseline_prediction column was given")
            check = _check(gate, result.by, key, value, baseline)
            if gate.get("significant") and check["status"] == "failed":
                found = (tests or {}).get(key)
                if found is None or not (found[0] > 0 and found[1] < ALPHA):
                    check["status"] = "not_significant"
            checks.append(check)
    result.gates = checks
    return checks


def _check(gate: dict, by: tuple, key: tuple, value: float, baseline) -> dict:
    from l1stream.engine.result import slice_json

    slice_key = slice_json(by, key) if key else None
    out = {"gate": gate["name"], "slice": slice_key, "value": value, "baseline": baseline,
           "threshold": gate["threshold"], "status": "passed"}
    if gate["kind"] == "max_mae":
        failed = not value <= gate["threshold"]  # NaN fails
    elif baseline is None or (isinstance(baseline, float) and math.isnan(baseline)):
        out["status"] = "no_baseline"
        return out
    elif gate["kind"] == "max_increase":
        failed = not value - baseline <= gate["threshold"]
    else:
        failed = not (value - baseline) <= gate["threshold"] / 100 * baseline
    out["status"] = "failed" if failed else "passed"
    return out


def failed(checks) -> list:
    return [c for c in checks or [] if c["status"] == "failed"]
