"""The one-pass grouped kernel (rows regrouped by slice code in C, then summed exactly) against an
exact oracle per slice, on the shapes it takes: one and several keys, nulls in keys, dictionary
columns (from Parquet, from pandas categories, with a value twice), many slices, non-finite values
(where it steps aside); and its own answers against the general path's on the same chunk."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import l1stream
from l1stream.engine import slicing
from l1stream.exact.state import chunk_state, grouped_chunk_states
from l1stream.parquet.pages import native_decoder_enabled


def exact_slices(keys: list, actual, prediction) -> dict:
    sums, counts = {}, {}
    for key, a, p in zip(keys, actual, prediction):
        sums[key] = sums.get(key, Fraction(0)) + abs(Fraction(a) - Fraction(p))
        counts[key] = counts.get(key, 0) + 1
    return {k: (float(sums[k] / counts[k]), counts[k]) for k in sums}


def slices_of(result) -> dict:
    return {tuple(k): (v["mae"], v["count"]) for k, v in result.slice_numbers().items()}


@pytest.fixture
def fast_path_only(monkeypatch):
    """Fail if a chunk falls back to the sort-and-take split: the test is about the one-pass kernel."""
    from l1stream.exact.summation import native_enabled

    if not native_enabled():  # L1STREAM_NATIVE=0: the general path is what runs, and is checked
        return

    def refuse(*args, **kwargs):
        raise AssertionError("the general split ran: the grouped kernel did not take this chunk")

    monkeypatch.setattr(slicing, "split_rows", refuse)


def test_the_native_kernel_is_there():
    from l1stream.exact import summation

    assert summation._compiled_abs_diff_units_by is not None or not native_decoder_enabled()


@pytest.mark.parametrize("keys", [("model",), ("model", "region"), ("region", "model", "day")])
def test_keys_nulls_and_dictionaries_from_parquet(tmp_path, fast_path_only, keys):
    rng = np.random.default_rng(len(keys))
    n = 30_000
    data = {"actual": rng.lognormal(5, 2, n), "prediction": rng.lognormal(5, 2, n),
            "model": pa.array(rng.choice(np.array(["v1", "v2", "v3", None], dtype=object), n).tolist()),
            "region": pa.array(rng.choice(np.array(["n", "s", None], dtype=object), n).tolist()),
            "day": pa.array(rng.integers(0, 40, n))}
    pq.write_table(pa.table(data), tmp_path / "a.parquet", row_group_size=7_000)
    result = l1stream.evaluate(str(tmp_path / "a.parquet"), by=list(keys), chunk_rows=4_000)
    rows = list(zip(*[data[k].to_pylist() if isinstance(data[k], pa.Array) else data[k].tolist() for k in keys]))
    assert slices_of(result) == exact_slices(rows, data["actual"], data["prediction"])


def test_a_category_with_a_value_twice_is_one_slice(fast_path_only):
    dictionary = pa.array(["north", "south", "north"])  # two entries of one value
    column = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 2, 0, None], pa.int32()), dictionary)
    table = pa.table({"actual": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "prediction": [0.0] * 6, "region": column})
    result = l1stream.evaluate(table, by="region")
    assert slices_of(result) == {("north",): (3.25, 4), ("south",): (2.0, 1), (None,): (6.0, 1)}


def test_many_slices(fast_path_only):
    rng = np.random.default_rng(9)
    n = 50_000
    key = rng.integers(0, 3000, n)
    a, p = rng.normal(0, 1e6, n), rng.normal(0, 1e-6, n)  # wide exponent spans inside a slice
    result = l1stream.evaluate(pa.table({"actual": a, "prediction": p, "k": pa.array(key.astype(str))}), by="k")
    got = {k[0]: v for k, v in slices_of(result).items()}
    assert got == {k[0]: v for k, v in exact_slices([(str(x),) for x in key], a, p).items()}


def test_non_finite_values_step_aside_to_the_general_path(tmp_path):
    a = np.array([1.0, np.nan, 3.0, np.inf, 5.0])
    table = pa.table({"actual": a, "prediction": np.zeros(5), "g": ["x", "y", "x", "x", "y"]})
    result = l1stream.evaluate(table, by="g", nan_policy="omit")
    assert slices_of(result) == {("x",): (2.0, 2), ("y",): (5.0, 1)}
    assert result.left_out == {"null": 0, "nan": 1, "inf": 1}


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(allow_nan=False, allow_infinity=False, width=64),
                          st.floats(allow_nan=False, allow_infinity=False, width=64)), min_size=1, max_size=300))
def test_kernel_equals_chunk_state_per_group(rows):
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    a, p = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    grouped = grouped_chunk_states(a, p, codes, 6)
    if grouped is None:  # no compiled kernel (L1STREAM_NATIVE=0), or |a - p| overflows: not taken
        assert not native_decoder_enabled() or any(math.isinf(x - y) for x, y in zip(a, p))
        return
    present, states = grouped
    assert present == sorted(set(codes.tolist()))
    for code, state in zip(present, states):
        expected = chunk_state(a[codes == code], p[codes == code])
        assert (state.abs_error_sum, state.weight_sum, state.count) == (
            expected.abs_error_sum, expected.weight_sum, expected.count)
