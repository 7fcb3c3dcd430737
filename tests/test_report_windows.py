"""Quantile windows: a bucket too large to collect is counted, and a window of its next 16 bits
collected beside it where its ranks should fall; a hit saves a pass, a miss costs one, and the
answer is numpy's either way.  Ground truth: numpy's median and quantiles of the same losses, and
bucket membership written out with Python integers."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from services import need_native_decoder

import l1stream


def _members(bits: np.ndarray, prefix: int, width: int, span: int) -> np.ndarray:
    """The patterns whose top ``width`` bits lie in [prefix, prefix + span), row by row."""
    keep = [prefix <= (int(b) >> (64 - width)) < prefix + span for b in bits.tolist()]
    return bits[np.array(keep, dtype=bool)]


def test_the_select_consumer_collects_a_span_of_prefixes():
    need_native_decoder()
    from l1stream.exact._kernel import SelectPass

    rng = np.random.default_rng(5)
    a, p = rng.lognormal(3, 1, 20_000), rng.lognormal(3, 1, 20_000)
    bits = np.abs(a - p).view(np.uint64)
    digits = (bits >> np.uint64(48)).astype(np.intp)
    common = int(np.bincount(digits).argmax())
    buckets = [(common - 1, 16, True, 3),                     # three whole digits
               ((common << 16) | 0x1000, 32, True, 0x3000),  # a window inside one digit
               ((common << 16) | 0xFFF0, 32, True, 0x20),    # a window over two digits' edge
               (common, 16, False),                          # the digit counted, beside its windows
               (common, 16, False, 1, 8),                    # counted coarsely: 256 counts
               (0xFFFF, 16, True, 1)]                        # the last prefix
    select = SelectPass(buckets)
    for start in range(0, len(a), 999):
        assert select.add(a[start:start + 999], p[start:start + 999])
    found, _ = select.results()
    for (prefix, width, collect, *more), raw in zip(buckets, found):
        span, shift = (more + [1, 0][len(more):])[:2]
        chosen = _members(bits, prefix, width, span)
        if collect:
            assert np.array_equal(np.frombuffer(raw, dtype=np.uint64), chosen)  # in row order
        else:
            next_bits = [(int(b) >> (48 - width)) & 0xFFFF for b in chosen.tolist()]
            assert np.frombuffer(raw, dtype=np.int64).tolist() == np.bincount(
                np.array([d >> shift for d in next_bits], dtype=np.intp), minlength=65536 >> shift).tolist()
    assert len(np.frombuffer(found[1], dtype=np.uint64)) > 0


@pytest.mark.parametrize("bucket, message", [
    ((5, 16, True, 0), "span must stay below"), ((0xFFFF, 16, True, 2), "span must stay below"),
    ((0, 0, True, 2), "span must stay below"), (((1 << 32) - 3, 32, True, 4), "span must stay below"),
    ((5, 16, True, 1, 8), "collected one's 0"), ((5, 16, False, 1, 16), "shift must be 0..15")])
def test_a_span_past_its_prefixes_or_a_shift_out_of_range_is_refused(bucket, message):
    need_native_decoder()
    from l1stream.exact._kernel import SelectPass

    with pytest.raises(ValueError, match=message):
        SelectPass([bucket])


def _log(root, losses_by_model: dict) -> None:
    for model, losses in losses_by_model.items():
        path = root / f"model={model}" / "part-0.parquet"
        path.parent.mkdir(parents=True)
        actual = np.full(len(losses), 1000.0)
        pq.write_table(pa.table({"actual": actual, "prediction": actual - losses}), path, row_group_size=2_500)


def _check(root, losses_by_model: dict, qs=(0.5, 0.9, 0.99)):
    report = l1stream.evaluate_report(str(root), by="model", quantiles=qs)
    for model, losses in losses_by_model.items():
        stored = np.abs(np.full(len(losses), 1000.0) - (1000.0 - losses))  # the losses as the files hold them
        got = report.slice_quantiles[(model,)]
        assert got["median"] == np.median(stored)
        for q in qs:
            assert got[q] == np.quantile(stored, q), (model, q)
    everything = np.concatenate([np.abs(1000.0 - (1000.0 - v)) for v in losses_by_model.values()])
    assert report.quantiles.median == np.median(everything)
    for q in qs:
        assert report.quantiles.quantiles[q] == np.quantile(everything, q)
    k = math.ceil(0.01 * len(everything))
    top = sorted(everything.tolist(), reverse=True)[:k]
    assert report.top_share == float(sum(map(Fraction, top)) / sum(map(Fraction, everything.tolist())))
    return report


@pytest.mark.parametrize("native", ["1", "0"])
def test_a_window_finds_the_ranks_of_a_bucket_too_large_to_collect_in_the_same_pass(tmp_path, monkeypatch, native):
    """Losses spread evenly over [1, 1.0625): one top-16-bit bucket of 10,000 values per model, ten
    times what may be collected; the windows hold every quantile and the top-1% threshold, so the
    report takes two passes (no third for the quantiles, no tail pass for the top-1% share)."""
    from l1stream.engine import quantiles

    monkeypatch.setenv("L1STREAM_NATIVE", native)
    monkeypatch.setattr(quantiles, "COLLECT_LIMIT", 1_000)
    rng = np.random.default_rng(8)
    losses = {model: 1.0 + rng.random(10_000) / 16 for model in ("v1", "v2")}
    _log(tmp_path, losses)
    assert _check(tmp_path, losses).passes == 2


@pytest.mark.parametrize("native", ["1", "0"])
@pytest.mark.parametrize("bottom, spread, passes", [(8_000, 2.0 ** -8, 3), (9_000, 2.0 ** -20, 4)])
def test_a_window_that_misses_costs_a_pass_not_the_answer(tmp_path, monkeypatch, native, bottom, spread, passes):
    """Most of the bucket's values at its bottom: evenly spread, the median would sit in the middle,
    so the window misses it.  Eight in ten within 2**-8: the coarse counts name the median's bin
    (about 500 values, under the limit), which the next pass collects (three passes).  Nine in ten
    within 2**-20: one coarse bin of 9,000 values, over the limit, so the bucket is counted again at
    full resolution and the rank's prefix collected (four passes).  The same answer either way."""
    from l1stream.engine import quantiles

    monkeypatch.setenv("L1STREAM_NATIVE", native)
    monkeypatch.setattr(quantiles, "COLLECT_LIMIT", 1_000)
    rng = np.random.default_rng(9)
    low = 1.0 + rng.random(bottom) * spread
    high = 1.06 + rng.random(10_000 - bottom) / 1_000
    losses = {"v1": rng.permutation(np.concatenate([low, high]))}
    _log(tmp_path, losses)
    assert _check(tmp_path, losses, qs=(0.5,)).passes == passes


@pytest.mark.parametrize("native", ["1", "0"])
def test_ties_filling_a_bucket_are_found_exactly(tmp_path, monkeypatch, native):
    """Integer losses: 3,000 rows of each of 1, 2 and 3 (one top-16-bit bucket each, and one value),
    thrice the limit: every pattern bit is found by descent; numpy's answer."""
    from l1stream.engine import quantiles

    monkeypatch.setenv("L1STREAM_NATIVE", native)
    monkeypatch.setattr(quantiles, "COLLECT_LIMIT", 1_000)
    losses = {"v1": np.random.default_rng(3).permutation(np.repeat([1.0, 2.0, 3.0], 3_000))}
    _log(tmp_path, losses)
    _check(tmp_path, losses, qs=(0.5, 0.9))
