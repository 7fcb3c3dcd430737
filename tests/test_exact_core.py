"""The exact kernels and L1State against Fraction ground truth, sklearn, and the merge laws."""

from __future__ import annotations

import decimal
import math
import pickle
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest
from helpers import exact_mae, examples
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mean_absolute_error as sklearn_mae

from l1stream import L1State, MeanAbsoluteError, chunk_state, l1_loss, mean_absolute_error
from l1stream.exact.summation import UNITS_PER_ONE, ExactSum, exact_sum_units

TINY = 5e-324
HUGE = 1.7976931348623157e308


def wide_range(rng, n):
    """Values spanning the whole float64 range: subnormals, zeros, mixed signs, near-overflow."""
    mantissa = rng.normal(size=n)
    exponent = rng.integers(-1074, 1020, n)
    values = np.ldexp(mantissa, exponent)
    values[rng.random(n) < 0.05] = 0.0
    values[rng.random(n) < 0.02] = TINY
    values[rng.random(n) < 0.02] = -HUGE
    values[rng.random(n) < 0.02] = HUGE
    return values


def test_seed_example():
    actual, prediction = [10, 11, 12, 13], [10, 12, 14, 11]
    assert l1_loss(actual, prediction).tolist() == [0, 1, 2, 2]
    assert mean_absolute_error(actual, prediction) == 1.25


@pytest.mark.parametrize("n", [1, 7, 32767, 32768, 32769, 100_003])
def test_wide_dynamic_range_is_exact(rng, n):
    a, p = wide_range(rng, n), wide_range(rng, n)
    if n > 5000:  # Fraction ground truth on a sample that still spans several blocks
        a, p = a[:70_000], p[:70_000]
    assert mean_absolute_error(a, p) == exact_mae(a, p)


def test_difference_overflowing_float64_is_exact():
    a = np.array([HUGE, -HUGE, HUGE, 0.0, 0.0, 0.0, 0.0])
    p = np.array([-HUGE, HUGE, HUGE / 2, 0.0, 0.0, 0.0, 1.0])
    with np.errstate(over="ignore"):
        assert np.isinf(np.abs(a - p).sum())  # what a naive kernel gets
    assert mean_absolute_error(a, p) == exact_mae(a, p)
    assert math.isfinite(mean_absolute_error(a, p))
    assert l1_loss(a, p)[0] == math.inf  # the per-row loss rounds to inf, correctly


def test_subnormals_and_zeros():
    a = np.array([TINY, 0.0, -TINY, 3 * TINY, 0.0])
    p = np.array([0.0, TINY, TINY, -TINY, 0.0])
    assert mean_absolute_error(a, p) == exact_mae(a, p)


def test_cancellation_that_naive_sums_get_wrong():
    a = np.array([1e16, 1.0, -1e16, 1.0] * 1000)
    p = np.zeros_like(a)
    assert mean_absolute_error(a, p) == exact_mae(a, p)


def test_ordinary_data_matches_sklearn(house_prices, rng):
    a, p = house_prices
    w = rng.random(len(a))
    assert mean_absolute_error(a, p) == pytest.approx(sklearn_mae(a, p), rel=1e-13)
    assert mean_absolute_error(a, p, sample_weight=w) == pytest.approx(sklearn_mae(a, p, sample_weight=w), rel=1e-13)
    assert mean_absolute_error(a, p) == exact_mae(a, p)
    assert mean_absolute_error(a, p, sample_weight=w) == exact_mae(a, p, w)


def test_weighted_wide_range_falls_back_exactly(rng):
    a, p = wide_range(rng, 3000), wide_range(rng, 3000)
    w = np.abs(wide_range(rng, 3000))
    w[0] = 1.0
    assert mean_absolute_error(a, p, sample_weight=w) == exact_mae(a, p, w)


def test_float32_inputs_are_exact(rng):
    a = rng.normal(size=5000).astype(np.float32) * np.float32(1e30)
    p = rng.normal(size=5000).astype(np.float32)
    expected = exact_mae([float(x) for x in a], [float(x) for x in p])
    assert mean_absolute_error(a, p) == expected
    assert chunk_state(pa.array(a), pa.array(p)).mae == expected


def test_int64_whose_difference_overflows_int64():
    big = np.iinfo(np.int64).max
    a = np.array([big, -big - 1, 5, 2**60], dtype=np.int64)
    p = np.array([-big - 1, big, -5, -(2**60)], dtype=np.int64)
    assert mean_absolute_error(a, p) == exact_mae(a.tolist(), p.tolist())


def test_uint64_beyond_int64():
    a = pa.array([2**64 - 1, 0], pa.uint64())
    p = pa.array([0, 2**64 - 1], pa.uint64())
    assert chunk_state(a, p).abs_error_sum == 2 * (2**64 - 1)


def test_decimal128_full_precision_and_mixed_scales():
    ctx = decimal.Context(prec=40)
    a = [ctx.create_decimal("12345678901234567890123456.789012345678"), decimal.Decimal("0.000000000001")]
    p = [ctx.create_decimal("-12345678901234567890123456.789012345677"), decimal.Decimal("0")]
    da, dp = pa.array(a, pa.decimal128(38, 12)), pa.array(p, pa.decimal128(38, 12))
    assert chunk_state(da, dp).abs_error_sum == sum(abs(Fraction(x) - Fraction(y)) for x, y in zip(a, p))
    s1 = chunk_state(pa.array([decimal.Decimal("1.5")], pa.decimal128(5, 1)), [1.25])
    s2 = chunk_state(pa.array([decimal.Decimal("1.125")], pa.decimal128(6, 3)), [1.0])
    assert s1.merge(s2).abs_error_sum == Fraction(1, 4) + Fraction(1, 8)


def test_integers_and_floats_mixed():
    a = np.array([2**60 + 1, 3], dtype=np.int64)
    p = np.array([0.5, 2.25])
    assert mean_absolute_error(a, p) == exact_mae([2**60 + 1, 3], [0.5, 2.25])


def test_state_is_small_and_picklable(house_prices):
    state = chunk_state(*house_prices)
    blob = pickle.dumps(state)
    assert len(blob) < 2000
    assert pickle.loads(blob) == state


def test_accumulator_streams_and_merges(house_prices):
    a, p = house_prices
    left, right = MeanAbsoluteError(), MeanAbsoluteError()
    for start in range(0, len(a) // 2, 777):
        left.update(a[start:min(start + 777, len(a) // 2)], p[start:min(start + 777, len(a) // 2)])
    right.update(pa.array(a[len(a) // 2:]), pa.array(p[len(a) // 2:]))
    assert left.merge(right).mae == exact_mae(a, p)
    assert pickle.loads(pickle.dumps(left)).mae == left.mae


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=60), st.data())
def test_any_split_gives_the_same_bits(rows, data):
    a = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=6)))
    bounds = [0, *cuts, len(rows)]
    states = [chunk_state(a[lo:hi], p[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]
    order = data.draw(st.permutations(range(len(states))))
    merged = L1State.empty()
    for i in order:
        merged = merged.merge(states[i])
    assert merged == chunk_state(a, p)
    assert merged.mae == exact_mae(a, p)


states_strategy = st.lists(st.tuples(finite, finite), max_size=8).map(
    lambda rows: chunk_state(np.array([r[0] for r in rows], dtype=float), np.array([r[1] for r in rows], dtype=float)))


@settings(max_examples=examples(100), deadline=None)
@given(states_strategy, states_strategy, states_strategy)
def test_merge_laws(x, y, z):
    assert x.merge(y) == y.merge(x)
    assert x.merge(y).merge(z) == x.merge(y.merge(z))
    assert x.merge(L1State.empty()) == x == L1State.empty().merge(x)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(finite, min_size=1, max_size=300))
def test_exact_sum_kernel(values):
    x = np.array(values)
    assert exact_sum_units(x) == sum(Fraction(v) for v in values) * UNITS_PER_ONE


def test_exact_sum_blocks_and_bins_agree(rng):
    x = wide_range(rng, 200_000)
    acc = ExactSum()
    acc.add_values(x[:123_456])
    acc.add_values(x[123_456:])
    assert acc.units == exact_sum_units(x[::-1].copy())


def test_a_mean_beyond_the_largest_float_rounds_to_infinity():
    # |a - p| exceeds the largest float64 by more than half an ulp: the correctly rounded mean is inf
    a, p = [1.7976931348623155e308], [-2.9937604643020797e292]
    assert mean_absolute_error(a, p) == math.inf == exact_mae(a, p)
    # ... and just below that bound it is the largest float
    assert mean_absolute_error([1.7976931348623157e308], [0.0]) == 1.7976931348623157e308


@pytest.mark.parametrize("negate", [False, True])
def test_exact_sum_of_values_with_residuals_in_the_bins(rng, negate):
    # values whose residuals survive both folds go to the superaccumulator; negation must follow them
    x = np.ldexp(rng.normal(size=5000), rng.integers(-60, 60, 5000))
    acc = ExactSum()
    acc.add_values(x, negate=negate)
    expected = sum(Fraction(v) for v in x)
    assert acc.units == (-expected if negate else expected) * UNITS_PER_ONE


def test_weighted_with_weights_spanning_many_binades(rng):
    # found by fuzzing: near-equal actual/prediction, weights x 10**k
    for k in (-100, -7, 27, 99):
        a = rng.lognormal(10, 3, 300)
        p = a * rng.lognormal(0, 1e-8, 300)
        w = np.abs(rng.normal(size=300)) * 10.0**k
        assert mean_absolute_error(a, p, sample_weight=w) == exact_mae(a, p, w)


@settings(max_examples=examples(80), deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False, width=64),
                min_size=1, max_size=200), st.booleans())
def test_add_values_of_non_negative_values_is_exact_on_both_paths(values, negate):
    """Non-negative values (losses) go through the compiled kernel; the numpy fold must agree."""
    import os
    from fractions import Fraction

    from l1stream.exact.summation import UNITS_PER_ONE, ExactSum

    exact = sum(Fraction(v) for v in values) * (-1 if negate else 1)
    before = os.environ.get("L1STREAM_NATIVE")
    for native in ("1", "0"):
        os.environ["L1STREAM_NATIVE"] = native
        try:
            acc = ExactSum()
            acc.add_values(np.array(values), negate=negate)
        finally:
            if before is None:
                os.environ.pop("L1STREAM_NATIVE", None)
            else:
                os.environ["L1STREAM_NATIVE"] = before
        assert Fraction(acc.units, UNITS_PER_ONE) == exact
