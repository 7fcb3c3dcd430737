"""The error report's numbers: L2, histograms, intervals, quantiles, top share, time series.

Ground truth is computed here independently: Fractions, numpy on the rows in memory,
``math.frexp`` for log bins, a plain loop for fixed bins, the jackknife formula by hand.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import write_parquet, write_split

import l1stream
from l1stream.exact.columns import as_numeric
from l1stream.exact.squares import correctly_rounded_sqrt, exact_square_sum
from l1stream.report.intervals import jackknife_interval, student_t_quantile


def fraction_squares(a, p) -> Fraction:
    return sum(((Fraction(x) - Fraction(y)) ** 2 for x, y in zip(a.tolist(), p.tolist())), Fraction(0))


def is_nearest_sqrt(value: Fraction, root: float) -> bool:
    """``root`` is the float nearest sqrt(value): value lies between the squared midpoints."""
    below, above = np.nextafter(root, 0.0), np.nextafter(root, math.inf)
    low = (Fraction(float(below)) + Fraction(root)) / 2
    high = (Fraction(root) + Fraction(float(above))) / 2
    return low * low <= value <= high * high


@pytest.mark.parametrize("kind", ["ordinary", "wide", "close", "huge", "tiny-difference"])
def test_square_sum_is_exact(rng, kind):
    n = 300
    if kind == "ordinary":
        a = np.round(rng.lognormal(12, 0.5, n), 2)
        p = a * rng.normal(1, 0.1, n)
    elif kind == "wide":
        a = np.ldexp(rng.normal(size=n), rng.integers(-700, 700, n))
        p = np.ldexp(rng.normal(size=n), rng.integers(-700, 700, n))
    elif kind == "close":
        a = rng.normal(size=n)
        p = a + np.ldexp(rng.normal(size=n), -60)
    elif kind == "huge":  # beyond the float path's safe range: the exact Python path
        a = np.ldexp(rng.normal(size=n), 1000)
        p = -a
    else:
        a = np.ldexp(rng.normal(size=n), -1000)
        p = a * (1 + 2.0**-52)
    assert exact_square_sum(as_numeric(a, "a"), as_numeric(p, "p")) == fraction_squares(a, p)


def test_square_sum_over_several_blocks_with_a_late_fallback(rng):
    n = 70_000  # three kernel blocks; the last one holds a difference too small for the float path
    a = np.round(rng.lognormal(8, 1, n), 2)
    p = a * rng.normal(1, 0.1, n)
    p[::7] = np.round(p[::7], 2)  # some rows with exact differences (e == 0), others not
    a[-1], p[-1] = 3 * 2.0**-600, 2.0**-600  # a difference of 2**-599: below the safe range
    assert exact_square_sum(as_numeric(a, "a"), as_numeric(p, "p")) == fraction_squares(a, p)
    assert exact_square_sum(as_numeric(a[:-1], "a"), as_numeric(p[:-1], "p")) == fraction_squares(a[:-1], p[:-1])


def test_sqrt_is_correctly_rounded(rng):
    for _ in range(500):
        value = Fraction(int(rng.integers(1, 2**62)), int(rng.integers(1, 2**62))) * Fraction(2) ** int(
            rng.integers(-900, 900))
        assert is_nearest_sqrt(value, correctly_rounded_sqrt(value))
    assert correctly_rounded_sqrt(Fraction(0)) == 0.0
    assert correctly_rounded_sqrt(Fraction(1, 4)) == 0.5


def test_t_quantiles_match_tables():
    # two-sided 95% critical values from any t table
    for df, value in ((1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042), (120, 1.980)):
        assert round(student_t_quantile(0.975, df), 3) == value


def jackknife_by_hand(sums, weights):
    b = len(sums)
    total_s, total_w = sum(sums), sum(weights)
    loo = np.array([(total_s - s) / (total_w - w) for s, w in zip(sums, weights)])
    return math.sqrt((b - 1) / b * np.sum((loo - loo.mean()) ** 2))


def test_jackknife_interval_coverage_on_known_mean():
    """95% intervals from 20 blocks of iid exponential losses (true MAE 1) cover 1 in ~95% of 2000 trials."""
    rng = np.random.default_rng(7)
    covered = 0
    trials = 2000
    for _ in range(trials):
        sizes = rng.integers(30, 80, 20)
        blocks = [rng.exponential(1.0, size) for size in sizes]
        interval = jackknife_interval([(Fraction(float(b.sum())), len(b)) for b in blocks], 0.95)
        covered += interval.lower <= 1.0 <= interval.upper
    assert 0.93 <= covered / trials <= 0.97, covered / trials


def test_jackknife_formula_and_degenerate_cases():
    sums, weights = [3.0, 5.0, 4.5, 9.0], [2, 3, 3, 4]
    interval = jackknife_interval(list(zip(sums, weights)))
    assert interval.standard_error == pytest.approx(jackknife_by_hand(sums, weights), rel=1e-12)
    assert interval.blocks == 4
    assert jackknife_interval([(1, 1)]) is None
    assert jackknife_interval([]) is None


@pytest.fixture
def sliced_log(tmp_path, rng):
    """Two models over four dates, several row groups per file; returns (root, rows per (date, model))."""
    root = tmp_path / "logs"
    rows = {}
    for d in ("2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"):
        for m, spread in (("v1", 0.2), ("v2", 0.1)):
            n = 900 + 13 * len(rows)
            a = np.round(rng.lognormal(10, 0.5, n), 2)
            p = np.round(a * rng.normal(1, spread, n), 2)
            write_parquet(root / f"date={d}" / f"model={m}" / "part-0.parquet", 250, actual=a, prediction=p)
            rows[(d, m)] = (a, p)
    return root, rows


def test_report_numbers_match_independent_computation(sliced_log):
    root, rows = sliced_log
    report = l1stream.evaluate_report(str(root), by="model", quantiles=(0.9, 0.99), bins=[0, 100, 1000, 5000])
    a = np.concatenate([r[0] for r in rows.values()])
    p = np.concatenate([r[1] for r in rows.values()])
    losses = np.abs(a - p)
    n = len(a)

    squares = fraction_squares(a, p)
    assert report.overall.mse == float(squares / n)
    assert is_nearest_sqrt(squares / n, report.overall.rmse)
    assert report.quantiles.median == np.median(losses)
    assert report.quantiles.quantiles[0.99] == np.quantile(losses, 0.99)

    k = math.ceil(0.01 * n)
    top = sorted(losses.tolist(), reverse=True)[:k]
    share = sum(map(Fraction, top)) / sum(map(Fraction, losses.tolist()))
    assert report.top_share == float(share)

    expected_bins: dict = {}
    for value in losses.tolist():
        if value == 0:
            lower = 0.0
        else:
            mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, mantissa in [0.5, 1)
            step = math.floor((mantissa * 2 - 1) * 16)
            lower = math.ldexp(1 + step / 16, exponent - 1)
        expected_bins[lower] = expected_bins.get(lower, 0) + 1
    assert {lo: c for lo, _, c in report.overall.log_histogram(16)} == expected_bins

    edges = [0, 100, 1000, 5000]
    fixed = [0] * (len(edges) + 1)
    for value in losses.tolist():
        fixed[sum(1 for e in edges if value >= e)] += 1
    assert report.overall.bin_counts == fixed == report.to_dict()["report"]["fixed_bins"]["counts"]

    by_model = {s["key"][0]: s for s in report.slices()}
    for model in ("v1", "v2"):
        am = np.concatenate([r[0] for (d, m), r in rows.items() if m == model])
        pm = np.concatenate([r[1] for (d, m), r in rows.items() if m == model])
        assert by_model[model]["rmse"] == correctly_rounded_sqrt(fraction_squares(am, pm) / len(am))
        # the interval: jackknife over the model's row groups (250 rows each)
        sums, counts = [], []
        for (_day, m), (ra, rp) in rows.items():
            if m == model:
                for start in range(0, len(ra), 250):
                    chunk = np.abs(ra[start:start + 250] - rp[start:start + 250])
                    sums.append(float(sum(map(Fraction, chunk.tolist()))))
                    counts.append(len(chunk))
        interval = by_model[model]["interval"]
        assert interval.blocks == len(sums)
        assert interval.standard_error == pytest.approx(jackknife_by_hand(sums, counts), rel=1e-9)
        half = student_t_quantile(0.975, len(sums) - 1) * interval.standard_error
        assert interval.upper == pytest.approx(by_model[model]["mae"] + half, rel=1e-12)

    series = report.time_series()
    assert [str(t) for t, _, _ in series] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    for when, mae, count in series:
        day = [r for (d, _), r in rows.items() if d == str(when)]
        assert mae == float(sum(fraction_abs(ra, rp) for ra, rp in day) / sum(len(ra) for ra, _ in day))
        assert count == sum(len(ra) for ra, _ in day)


def fraction_abs(a, p) -> Fraction:
    return sum((abs(Fraction(x) - Fraction(y)) for x, y in zip(a.tolist(), p.tolist())), Fraction(0))


def test_report_is_identical_on_any_partitioning(tmp_path, rng):
    n = 6000
    a = np.ldexp(rng.normal(size=n), rng.integers(-40, 40, n))
    p = a + np.ldexp(rng.normal(size=n), rng.integers(-60, 30, n))
    write_split(tmp_path / "one", a, p, 1, row_group_size=500)
    write_split(tmp_path / "many", a, p, 6, row_group_size=500)
    def figures(source, **options) -> dict:  # every figure; not how often the data was read
        doc = l1stream.evaluate_report(source, time_key=None, **options).to_dict()["report"]
        return {key: value for key, value in doc.items() if key not in ("passes", "reread")}

    first = figures(str(tmp_path / "one"))
    variants = [
        dict(source=str(tmp_path / "one"), chunk_rows=128, scheduler="synchronous"),
        dict(source=str(tmp_path / "one"), task_bytes=1, scheduler="processes", num_workers=2),
    ]
    for v in variants:
        source = v.pop("source")
        assert figures(source, **v) == first
    # other files, same rows: the same numbers except the intervals (other row groups, other blocks)
    other = figures(str(tmp_path / "many"))
    for key in ("mse", "rmse", "top_share", "quantiles", "histogram"):
        assert other[key] == first[key]


def test_time_key_column_and_validation(tmp_path, rng):
    n = 400
    a, p = rng.normal(size=n), rng.normal(size=n)
    day = np.array(["d1", "d2"])[rng.integers(0, 2, n)]
    write_parquet(tmp_path / "x.parquet", 100, actual=a, prediction=p, day=day)
    report = l1stream.evaluate_report(str(tmp_path / "x.parquet"), time_key="day")
    got = {t: (m, c) for t, m, c in report.time_series()}
    for d in ("d1", "d2"):
        keep = day == d
        assert got[d] == (float(fraction_abs(a[keep], p[keep]) / int(keep.sum())), int(keep.sum()))
    stamps = (np.datetime64("2026-11-01T00:00", "s") + rng.integers(0, 3 * 24 * 3600, n).astype("timedelta64[s]"))
    write_parquet(tmp_path / "t.parquet", 100, actual=a, prediction=p, at=stamps)
    daily = l1stream.evaluate_report(str(tmp_path / "t.parquet"), time_key="at").time_series()
    days = stamps.astype("datetime64[D]")
    assert [(str(t), c) for t, _, c in daily] == [(str(d), int((days == d).sum())) for d in np.unique(days)]
    with pytest.raises(l1stream.UsageError, match="time_key 'nope' is neither a partition key nor a column"):
        l1stream.evaluate_report(str(tmp_path / "x.parquet"), time_key="nope")
    with pytest.raises(l1stream.UsageError, match="bins must be an increasing list"):
        l1stream.evaluate_report(str(tmp_path / "x.parquet"), bins=[3, 1])
    with pytest.raises(l1stream.UsageError, match="confidence must be"):
        l1stream.evaluate_report(str(tmp_path / "x.parquet"), confidence=95)


def test_bad_rows_and_files_are_accounted(tmp_path, rng):
    a = rng.normal(size=300)
    p = a + rng.normal(size=300)
    p[[3, 50]] = np.nan
    write_parquet(tmp_path / "d" / "good.parquet", 100, actual=a, prediction=p)
    (tmp_path / "d" / "bad.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    report = l1stream.evaluate_report(str(tmp_path / "d"), nan_policy="omit", on_bad_file="skip")
    keep = ~np.isnan(p)
    assert report.result.left_out["nan"] == 2
    assert report.overall.count == int(keep.sum()) == report.quantiles.count
    assert report.quantiles.median == np.median(np.abs(a[keep] - p[keep]))
    page = report.to_html()
    assert "bad.parquet" in page and "Skipped files" in page
    with pytest.raises(l1stream.NonFiniteError, match="good.parquet"):
        l1stream.evaluate_report(str(tmp_path / "d" / "good.parquet"))
    propagated = l1stream.evaluate_report(str(tmp_path / "d" / "good.parquet"), nan_policy="propagate")
    assert math.isnan(propagated.result.mae) and math.isnan(propagated.quantiles.median)


def test_weighted_report_intervals_use_weights(tmp_path, rng):
    n = 1000
    a, p, w = rng.normal(size=n), rng.normal(size=n), rng.uniform(0, 3, n)
    write_parquet(tmp_path / "w.parquet", 100, actual=a, prediction=p, w=w)
    report = l1stream.evaluate_report(str(tmp_path / "w.parquet"), weight="w")
    sums = [float(sum(Fraction(wi) * abs(Fraction(x) - Fraction(y)) for x, y, wi in
                      zip(a[s:s + 100].tolist(), p[s:s + 100].tolist(), w[s:s + 100].tolist())))
            for s in range(0, n, 100)]
    weights = [float(sum(map(Fraction, w[s:s + 100].tolist()))) for s in range(0, n, 100)]
    interval = report.slices()[0]["interval"]
    assert interval.standard_error == pytest.approx(jackknife_by_hand(sums, weights), rel=1e-9)
    assert math.isnan(report.overall.mse)  # L2 is not computed for weighted runs: said, not guessed
    assert "L2 is not computed for weighted runs" in report.to_html()


def test_rows_per_row_group_match_metadata(sliced_log):
    """Blocks are row groups: one block per row group of each slice."""
    root, _ = sliced_log
    report = l1stream.evaluate_report(str(root), by="model")
    groups = sum(pq.ParquetFile(f).metadata.num_row_groups for f in sorted(root.rglob("*.parquet")))
    assert sum(s["interval"].blocks for s in report.slices()) == groups


def test_dataframe_sources_pandas_and_dask(rng):
    """A DataFrame the user already has: the same report, jackknife over its partitions."""
    import dask.dataframe as dd
    import pandas as pd

    n = 4000
    a = np.round(rng.lognormal(10, 0.5, n), 2)
    p = np.round(a * rng.normal(1, 0.2, n), 2)
    frame = pd.DataFrame({"actual": a, "prediction": p, "model": rng.choice(["v1", "v2"], n),
                          "date": np.repeat(["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"], n // 4)})
    losses = np.abs(a - p)
    for source in (frame, dd.from_pandas(frame, npartitions=8)):
        report = l1stream.evaluate_report(source, by="model")
        assert report.result.mae == float(fraction_abs(a, p) / n)
        assert report.quantiles.median == np.median(losses)
        assert report.overall.mse == float(fraction_squares(a, p) / n)
        assert [str(t) for t, _, _ in report.time_series()] == ["2026-11-01", "2026-11-02", "2026-11-03",
                                                                "2026-11-04"]
        blocks = [s["interval"] for s in report.slices()]
        if isinstance(source, pd.DataFrame):
            assert blocks == [None, None]  # one partition: no spread to measure
        else:
            assert [b.blocks for b in blocks] == [8, 8]
        assert "a DataFrame" in report.to_html()
    with pytest.raises(l1stream.UsageError, match="filter the DataFrame before the report"):
        l1stream.evaluate_report(frame, filters="model==v1")


def test_interval_coverage_end_to_end_through_parquet(tmp_path):
    """The whole path (files, row groups, profile pass, jackknife): 95% intervals on data with a known
    MAE (|Laplace(0, 1)| errors: mean 1) cover it in about 95% of 150 datasets."""
    rng = np.random.default_rng(2026)
    covered = 0
    trials = 150
    for trial in range(trials):
        a = rng.normal(100, 10, 1200)
        p = a + rng.laplace(0.0, 1.0, 1200)
        path = write_parquet(tmp_path / f"t{trial}.parquet", 60, actual=a, prediction=p)  # 20 row groups
        interval = l1stream.evaluate_report(path, scheduler="synchronous", time_key=None).slices()[0]["interval"]
        assert interval.blocks == 20
        covered += interval.lower <= 1.0 <= interval.upper
    assert 0.88 <= covered / trials <= 0.99, covered / trials


def test_many_row_groups_fold_into_hash_buckets_the_same_way_on_any_merge_order():
    from l1stream.exact.state import L1State
    from l1stream.report.intervals import FOLD_AT, MAX_BLOCKS, block_of, fold_blocks
    from l1stream.report.profile import SliceProfile

    def one(i):
        return SliceProfile(1, 0, 0, Fraction(0), {}, None, {block_of("f.parquet", i): L1State(Fraction(i), 1, 1)})

    rows = [one(i) for i in range(FOLD_AT + 10)]
    left = SliceProfile()
    for prof in rows:  # folds early, once the partial passes FOLD_AT
        left = left.merge(prof)
    halves = [SliceProfile(), SliceProfile()]
    for i, prof in enumerate(rows):  # two partials below FOLD_AT, merged at the end
        halves[i % 2] = halves[i % 2].merge(prof)
    right = halves[1].merge(halves[0])
    assert fold_blocks(left.blocks, L1State.merge) == fold_blocks(right.blocks, L1State.merge)
    assert left.interval() == right.interval()
    assert left.interval().blocks <= MAX_BLOCKS
    few = SliceProfile()
    for prof in rows[:50]:
        few = few.merge(prof)
    assert few.interval().blocks == 50  # few row groups: one block each, no hashing


def test_only_the_largest_slices_are_profiled_one_by_one(tmp_path, rng, monkeypatch):
    """High-cardinality ``by``: per-slice details for the largest slices only; the overall numbers
    still cover every row (memory stays bounded)."""
    from l1stream.report import job as report_module
    monkeypatch.setattr(report_module, "MAX_PROFILED_SLICES", 3)
    sizes = {f"s{i}": 100 + 40 * i for i in range(8)}  # s7, s6, s5 are the largest
    segment = np.concatenate([[name] * size for name, size in sizes.items()])
    a = rng.normal(size=len(segment))
    p = a + rng.normal(size=len(segment))
    write_parquet(tmp_path / "x.parquet", 200, actual=a, prediction=p, segment=segment)
    report = l1stream.evaluate_report(str(tmp_path / "x.parquet"), by="segment", time_key=None)
    profiled = {s["key"][0] for s in report.slices() if s["profiled"]}
    assert profiled == {"s7", "s6", "s5"} == {k[0] for k in report.profile.slices}
    assert report.overall.count == len(a)
    assert report.overall.mse == float(fraction_squares(a, p) / len(a))
    assert report.quantiles.median == np.median(np.abs(a - p))
    assert all(s["interval"] is None and math.isnan(s["rmse"]) for s in report.slices() if not s["profiled"])
    assert "only the 3 largest slices are profiled" in report.to_html()


@pytest.mark.parametrize("collect_limit, windows", [(1 << 20, True), (4, True), (4, False)])
def test_top_share_with_and_without_a_tail_pass(sliced_log, monkeypatch, collect_limit, windows):
    """The quantile pass sums the losses above the threshold's bin and collects the bin itself, so no
    tail pass is needed; when the bin is too large to collect, a window of it (when it holds the
    threshold; else a tail pass), and without windows a tail pass. Same exact figure."""
    from l1stream.engine import quantiles
    from l1stream.report import job as report_module
    from l1stream.report import selection

    root, rows = sliced_log
    monkeypatch.setattr(quantiles, "COLLECT_LIMIT", collect_limit)
    if not windows:
        monkeypatch.setattr(selection, "windows_for", lambda *args: [])
    ran = []
    real_tail = report_module.tail_counts
    monkeypatch.setattr(report_module, "tail_counts", lambda *a: ran.append(1) or real_tail(*a))
    report = l1stream.evaluate_report(str(root), by="model", scheduler="synchronous")
    losses = np.abs(np.concatenate([r[0] for r in rows.values()]) - np.concatenate([r[1] for r in rows.values()]))
    k = math.ceil(0.01 * len(losses))
    top = sorted(losses.tolist(), reverse=True)[:k]
    assert report.top_share == float(sum(map(Fraction, top)) / sum(map(Fraction, losses.tolist())))
    if collect_limit > 4:
        assert not ran  # the threshold's bin was collected
    if not windows:
        assert ran  # nothing collected holds the threshold's neighbours
