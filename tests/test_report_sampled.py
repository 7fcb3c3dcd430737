"""The quantile pass made during the report's first pass, planned from a sample (report/sampled.py).

Whatever the sample says, the answers are numpy's and the Fraction-computed top-1% share: a sample
like the rest makes the report one read; one unlike it, or buckets that collect more than guessed,
cost passes, never bits.  Plus the C ``tee`` that feeds one decoded run to two consumers.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from services import need_native_decoder

import l1stream
from l1stream.engine.pieces import Piece


def _expected_share(losses: np.ndarray, fraction: float = 0.01) -> float:
    k = math.ceil(fraction * len(losses))
    top = sorted(losses.tolist(), reverse=True)[:k]
    return float(sum(map(Fraction, top)) / sum(map(Fraction, losses.tolist())))


def _write(root, parts: list) -> np.ndarray:
    """One file per part (actual, prediction) under model=.../, the losses as the files hold them."""
    losses = []
    for i, (model, a, p) in enumerate(parts):
        path = root / f"model={model}" / f"part-{i:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"actual": a, "prediction": p}), path, row_group_size=2_000)
        losses.append(np.abs(a - p))
    return np.concatenate(losses)


def _check(report, losses: np.ndarray, qs=(0.9, 0.99)) -> None:
    assert report.quantiles.median == np.median(losses)
    for q in qs:
        assert report.quantiles.quantiles[q] == np.quantile(losses, q)
    assert report.top_share == _expected_share(losses)


@pytest.mark.parametrize("native", ["1", "0"])
def test_a_sample_like_the_rest_makes_the_report_one_read(tmp_path, monkeypatch, native):
    monkeypatch.setenv("L1STREAM_NATIVE", native)
    rng = np.random.default_rng(21)
    parts = []
    for i in range(24):
        a = np.round(rng.lognormal(8, 0.5, 5_000), 2)
        parts.append(("v1" if i % 2 else "v2", a, np.round(a * rng.lognormal(0, 0.1, 5_000), 2)))
    losses = _write(tmp_path, parts)
    report = l1stream.evaluate_report(str(tmp_path), by="model")
    _check(report, losses)
    for model in ("v1", "v2"):  # every model in the sample (strata), whatever the files' order
        mine = np.concatenate([np.abs(a - p) for m, a, p in parts if m == model])
        assert report.slice_quantiles[(model,)][0.99] == np.quantile(mine, 0.99)
    assert report.passes == 1


@pytest.mark.parametrize("native", ["1", "0"])
def test_a_sample_unlike_the_rest_costs_passes_not_bits(tmp_path, monkeypatch, native):
    """Each file's losses ten times the last's: the sample (one middle file) says nothing of where
    the quantiles of the whole are, so the ordinary passes find them."""
    monkeypatch.setenv("L1STREAM_NATIVE", native)
    rng = np.random.default_rng(22)
    parts = []
    for i in range(20):
        a = rng.lognormal(3, 1, 3_000)
        parts.append(("v1", a, a + rng.normal(0, 1, 3_000) * 10.0 ** (i - 10)))
    losses = _write(tmp_path, parts)
    report = l1stream.evaluate_report(str(tmp_path))
    _check(report, losses)
    assert report.passes > 1


@pytest.mark.parametrize("limit", ["SELECTED_LIMIT", "PASS_BUDGET"])  # per bucket, all buckets together
def test_buckets_that_collect_more_than_guessed_are_dropped_and_found_later(tmp_path, monkeypatch, limit):
    from l1stream.report import first_pass

    monkeypatch.setattr(first_pass, limit, 10)  # every collected bucket over it
    rng = np.random.default_rng(23)
    parts = [("v1", a, a * rng.lognormal(0, 0.1, 4_000)) for a in rng.lognormal(5, 1, (18, 4_000))]
    losses = _write(tmp_path, parts)
    report = l1stream.evaluate_report(str(tmp_path), by="model")
    _check(report, losses)
    assert report.passes > 1


def test_the_sample_covers_every_stratum_and_the_pieces_once():
    from l1stream.report.sampled import split_sample

    pieces = [Piece(f"date={d}/model={m}/part.parquet", partition={"date": d, "model": m}, size=100 + d)
              for d in range(40) for m in ("v1", "v2", "v3")]
    tasks = [pieces[i:i + 5] for i in range(0, len(pieces), 5)]
    sample, rest, scale = split_sample(tasks, ("model",))
    chosen = [task[0] for task in sample]
    assert all(len(task) == 1 for task in sample)
    assert {p.partition["model"] for p in chosen} == {"v1", "v2", "v3"}  # the files' order alternates models
    assert sorted(p.path for p in chosen + [p for task in rest for p in task]) == sorted(p.path for p in pieces)
    assert scale == pytest.approx(sum(p.size for p in pieces) / sum(p.size for p in chosen))
    # one stratum per piece would sample too much: one in 16 of all, spread over the plan
    sample, _, _ = split_sample(tasks, ("date", "model"))
    assert len(sample) == math.ceil((len(pieces) - 8) / 16)
    assert split_sample([[pieces[0]]], ("model",)) == ([], [[pieces[0]]], 1.0)


def test_tee_feeds_both_consumers_and_declines_with_either():
    need_native_decoder()
    from l1stream.exact._kernel import AbsDiffSum, ProfileSum

    from l1stream.exact import native

    rng = np.random.default_rng(24)
    a, p = rng.lognormal(0, 3, 10_001), rng.lognormal(0, 3, 10_001)
    codes = np.zeros(len(a), np.int64)
    first, second = AbsDiffSum(), ProfileSum()
    assert native.feed_by([native.tee(first.consumer(), second.consumer())], a, p, codes) == []
    exact = sum(abs(Fraction(x) - Fraction(y)) for x, y in zip(a.tolist(), p.tolist()))
    assert Fraction(first.units(), 2 ** 1074) == exact
    units, rows = second.cut()
    assert (Fraction(units, 2 ** 1074), rows) == (exact, len(a))
    a[5_000] = np.nan
    assert native.feed_by([native.tee(AbsDiffSum().consumer(), ProfileSum().consumer())], a, p, codes) == [0]


def test_feed_by_takes_zero_rows_as_the_first_call_of_a_thread():
    """Found by fuzz/fuzz_consumers.py: a thread's first regrouping, of no rows, had no buffer yet
    and reported MemoryError (kept in tests/data/fuzz-regressions/consumers/)."""
    import threading

    need_native_decoder()
    from l1stream.exact._kernel import ProfileSum

    from l1stream.exact import native

    got: list = []
    empty = np.zeros(0)
    worker = threading.Thread(target=lambda: got.append(native.feed_by([ProfileSum().consumer()], empty, empty,
                                                                        np.zeros(0, np.int64))))
    worker.start()
    worker.join()
    assert got == [[]]


@pytest.mark.parametrize("damaged", [(3,), (3, 8)])  # 8: the sample (the middle of the first 16)
@pytest.mark.parametrize("native", ["1", "0"])
def test_a_damaged_file_is_skipped_from_every_pass(tmp_path, monkeypatch, native, damaged):
    """Under on_bad_file="skip", files whose page checksum fails (one read with the first pass's
    selection, or the sample's too): left out of the evaluation, the profile and the quantiles
    alike (the figures are the other files')."""
    monkeypatch.setenv("L1STREAM_NATIVE", native)
    rng = np.random.default_rng(25)
    kept = []
    for i in range(20):
        a = rng.lognormal(5, 1, 3000)
        p = a * rng.lognormal(0, 0.2, 3000)
        path = tmp_path / f"part-{i:02d}.parquet"
        pq.write_table(pa.table({"actual": a, "prediction": p}), path, row_group_size=1000, write_page_checksum=True)
        if i in damaged:
            content = bytearray(path.read_bytes())
            content[300:360] = bytes(60)  # inside the first page: its checksum fails
            path.write_bytes(bytes(content))
        else:
            kept.append(np.abs(a - p))
    report = l1stream.evaluate_report(str(tmp_path), on_bad_file="skip")
    assert sorted(p.rsplit("/", 1)[-1] for p in report.result.skipped) == [f"part-{i:02d}.parquet" for i in damaged]
    _check(report, np.concatenate(kept))
    assert report.passes == (1 if damaged == (3,) else 2)  # the sample read: the selection made in the first pass
