"""Shared fixtures, and the hypothesis profiles.

Profiles (``L1STREAM_HYPOTHESIS``): ``ci`` (the default: derandomized, so a commit that passed
passes again, with each test's own example count) and ``release`` (random, 20x the examples:
``L1STREAM_HYPOTHESIS=release python -m pytest -k "hypothesis or property or matches"``, about 30
minutes; run before a release).  Tests size their examples with ``helpers.examples(n)``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import write_parquet
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("release", derandomize=False, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("L1STREAM_HYPOTHESIS", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def house_prices(rng):
    n = 20_000
    actual = np.round(rng.lognormal(12.5, 0.4, n), 2)
    prediction = np.round(actual * rng.lognormal(0, 0.08, n), 2)
    return actual, prediction


@pytest.fixture
def hive_dataset(tmp_path, rng):
    """date=.../model=... partitions with a 'segment' column; returns (root, rows by partition)."""
    root = tmp_path / "logs"
    rows = {}
    for d in ("2026-11-01", "2026-11-02", "2026-11-03"):
        for m in ("v1", "v2"):
            n = 500 + 37 * len(rows)
            a = np.round(rng.lognormal(12, 0.5, n), 2)
            p = np.round(a * rng.normal(1, 0.1, n), 2)
            seg = rng.choice(["a", "b"], n)
            write_parquet(root / f"date={d}" / f"model={m}" / "part-0.parquet", 200,
                          actual=a, prediction=p, segment=seg)
            rows[(d, m)] = (a, p, seg)
    return root, rows
