"""Test helpers: independent ground truth (fractions.Fraction) and Parquet writers."""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EXAMPLE_SCALE = {"ci": 1, "release": 20}[os.environ.get("L1STREAM_HYPOTHESIS", "ci")]


def examples(n: int) -> int:
    """A property test's example count under the active profile (tests/conftest.py)."""
    return n * EXAMPLE_SCALE


def _to_float(value: Fraction) -> float:
    """Round to nearest float64; past the largest float by half an ulp or more, IEEE gives infinity."""
    try:
        return value.numerator / value.denominator
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _units(value) -> int:
    """A float or int as an exact integer count of 2**-1074 (Python ints only)."""
    numerator, denominator = value.as_integer_ratio()
    return numerator * ((1 << 1074) // denominator)


def exact_mae(actual, prediction, weight=None) -> float:
    """Ground truth, independent of l1stream: exact rational arithmetic (Python ints / Fractions),
    then one correctly rounded int/int true division."""
    actual = actual.tolist() if hasattr(actual, "tolist") else list(actual)
    prediction = prediction.tolist() if hasattr(prediction, "tolist") else list(prediction)
    plain = (int, float)
    if weight is None and all(isinstance(v, plain) for v in actual + prediction):
        total = sum(abs(_units(a) - _units(p)) for a, p in zip(actual, prediction))
        return _to_float(Fraction(total, len(actual) << 1074))
    weight = [1] * len(actual) if weight is None else list(weight)
    total = sum(Fraction(w) * abs(Fraction(a) - Fraction(p)) for a, p, w in zip(actual, prediction, weight))
    weights = sum(Fraction(w) for w in weight)
    value = total / weights
    return _to_float(value)


def clean_rows(actual, prediction):
    """The rows where both values are finite and not None (for omit-policy ground truth)."""
    keep = [(a, p) for a, p in zip(actual, prediction)
            if a is not None and p is not None and math.isfinite(a) and math.isfinite(p)]
    return [a for a, _ in keep], [p for _, p in keep]


def write_parquet(path, row_group_size=None, **columns) -> str:
    """Write columns (lists, numpy or pyarrow arrays) to one Parquet file, creating directories."""
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    table = pa.table({k: v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(v) for k, v in columns.items()})
    pq.write_table(table, str(path), row_group_size=row_group_size)
    return str(path)


def write_split(directory, actual, prediction, n_files, row_group_size=None, extra=None) -> list:
    """Write the same rows split into n_files files (contiguous slices)."""
    bounds = np.linspace(0, len(actual), n_files + 1).astype(int)
    paths = []
    for i in range(n_files):
        lo, hi = bounds[i], bounds[i + 1]
        cols = {"actual": pa.array(actual[lo:hi]), "prediction": pa.array(prediction[lo:hi])}
        for name, values in (extra or {}).items():
            cols[name] = pa.array(values[lo:hi])
        paths.append(write_parquet(os.path.join(str(directory), f"part-{i:04d}.parquet"), row_group_size, **cols))
    return paths




class Oracle:
    """The exact answer for data held in memory, computed without l1stream: overall and per slice.

    ``slices`` maps a slice key tuple (``("v1",)``; ``()`` without ``by``) to lists of
    ``(actual, prediction)`` array pairs.  Sums are exact integers of 2**-1074 (or Fractions), divided
    once: :func:`exact_mae`.
    """

    def __init__(self, slices: dict):
        self.groups = {}
        everything_a, everything_p = [], []
        for key, parts in slices.items():
            a = [v for x, _ in parts for v in np.asarray(x).tolist()]
            p = [v for _, y in parts for v in np.asarray(y).tolist()]
            self.groups[tuple(key)] = (exact_mae(a, p), len(a))
            everything_a += a
            everything_p += p
        self.mae = exact_mae(everything_a, everything_p)
        self.count = len(everything_a)


def assert_exact(result, oracle: Oracle) -> None:
    """``result`` (an EvaluationResult) equals the oracle: MAE bits, count, and every slice."""
    assert result.mae == oracle.mae, (result.mae, oracle.mae)
    assert result.count == oracle.count
    if result.by:
        got = {tuple(k): (n["mae"], n["count"]) for k, n in result.slice_numbers().items()}
        assert got == oracle.groups


def delete_after_listing(monkeypatch, fs, path: str) -> None:
    """The next job lists ``path`` on ``fs``, which is then deleted before any task reads it."""
    from l1stream.sources import discovery

    real = discovery.discover

    def discover_then_delete(*args, **kwargs):
        found = real(*args, **kwargs)
        fs.rm(path)
        return found

    monkeypatch.setattr("l1stream.engine.job.discover", discover_then_delete)
