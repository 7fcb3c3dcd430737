"""The report in two passes, per-slice quantiles, and the paired model comparison.

Ground truth from outside l1stream: Fractions for every exact sum, numpy's ``median`` and
``quantile`` for the quantiles (bit for bit), a jackknife written out here by hand, scipy's t
distribution, and a simulation with a known difference for the interval's coverage.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import exact_mae
from services import need_native_decoder

import l1stream
from l1stream.report.intervals import holm, paired_difference

UNITS = 1 << 1074


def kinds(rng, n: int) -> dict:
    big = rng.lognormal(30, 2, n)
    return {
        "prices": (np.round(rng.lognormal(12, 0.5, n), 2), np.round(rng.lognormal(12, 0.5, n), 2)),
        "inexact differences": (big, rng.normal(size=n)),  # a - p rounds: the two-sum corrections
        "mixed signs": (rng.normal(size=n), rng.normal(size=n) * 1e-6),
        "integers and ties": (rng.integers(0, 9, n).astype(float), rng.integers(0, 9, n).astype(float)),
        "small": (rng.normal(size=n) * 1e-100, rng.normal(size=n) * 1e-100),  # two-sum errors ~1e-116: in range
    }


@pytest.mark.parametrize("kind", ["prices", "inexact differences", "mixed signs", "integers and ties", "small"])
@pytest.mark.parametrize("n", [1, 7, 4097, 9000])
def test_the_profile_consumer_is_exact_at_every_width(kind, n):
    need_native_decoder()
    from l1stream.exact._kernel import ProfileSum, folds

    a, p = kinds(np.random.default_rng(n), n)[kind]
    losses = np.abs(a - p)
    expected = {
        "l1": sum((abs(Fraction(x) - Fraction(y)) for x, y in zip(a.tolist(), p.tolist())), Fraction(0)),
        "loss": sum((Fraction(v) for v in losses.tolist()), Fraction(0)),
        "squares": sum(((Fraction(x) - Fraction(y)) ** 2 for x, y in zip(a.tolist(), p.tolist())), Fraction(0)),
    }
    digits = np.bincount((losses.view(np.uint64) >> np.uint64(48)).astype(np.intp), minlength=65536)
    for fold in folds():
        total = ProfileSum(fold)
        half = n // 2
        assert total.add(a[:half], p[:half]) and total.add(a[half:], p[half:])
        units, rows = total.cut()
        totals = total.totals()
        assert rows == totals["rows"] == n
        assert Fraction(units, UNITS) == expected["l1"], fold
        assert Fraction(totals["loss_units"], UNITS) == expected["loss"], fold
        assert Fraction(totals["squares_units"], UNITS) == expected["squares"], fold
        assert totals["digits"] == {int(d): int(digits[d]) for d in np.flatnonzero(digits)}
        assert totals["fractional"] == int(np.count_nonzero(losses != np.floor(losses)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, 2.0 ** 600, 1.0 + 2.0 ** -52])
def test_the_profile_consumer_declines_what_tables_must_take(bad):
    """Not finite, or beyond the exact squares' range: declined (the rows are read as tables then);
    1 against 1 + ulp is the control, taken."""
    need_native_decoder()
    from l1stream.exact._kernel import ProfileSum

    a, p = np.ones(100), np.ones(100)
    p[57] = bad
    total = ProfileSum()
    taken = total.add(a, p)
    assert taken == (bad == 1.0 + 2.0 ** -52)
    assert (total.totals() is None) == (not taken)


def test_the_profile_consumer_declines_a_difference_below_its_exact_range():
    need_native_decoder()
    from l1stream.exact._kernel import ProfileSum

    a, p = np.ones(10), np.ones(10)
    a[3] = 2.0 ** -500
    p[3] = np.nextafter(a[3], 1.0)  # a difference of 2**-552: its square's Dekker terms would underflow
    assert not ProfileSum().add(a, p)


def test_the_select_consumer_collects_and_counts_as_numpy():
    need_native_decoder()
    from l1stream.exact._kernel import SelectPass

    rng = np.random.default_rng(2)
    a, p = rng.lognormal(5, 2, 20_000), rng.lognormal(5, 2, 20_000)
    bits = np.abs(a - p).view(np.uint64)
    top = int(np.bincount((bits >> np.uint64(48)).astype(np.intp)).argmax())
    second = int(np.bincount(((bits[(bits >> np.uint64(48)) == top]) >> np.uint64(32)).astype(np.intp) & 0xFFFF)
                 .argmax())
    threshold = int(np.quantile(bits, 0.97))
    buckets = [(0, 0, False), (top, 16, True), (top, 16, False), ((top << 16) | second, 32, True)]
    select = SelectPass(buckets, threshold)
    assert select.add(a[:777], p[:777]) and select.add(a[777:], p[777:])
    found, (tail_rows, tail_units) = select.results()
    counts = np.frombuffer(found[0], dtype=np.int64)
    assert np.array_equal(counts, np.bincount((bits >> np.uint64(48)).astype(np.intp), minlength=65536))
    chosen = bits[(bits >> np.uint64(48)) == top]
    assert sorted(np.frombuffer(found[1], dtype=np.uint64).tolist()) == sorted(chosen.tolist())
    assert np.array_equal(np.frombuffer(found[2], dtype=np.int64),
                          np.bincount(((chosen >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.intp), minlength=65536))
    deeper = bits[(bits >> np.uint64(32)) == ((top << 16) | second)]
    assert sorted(np.frombuffer(found[3], dtype=np.uint64).tolist()) == sorted(deeper.tolist())
    above = bits[bits > np.uint64(threshold)].view(np.float64)
    assert tail_rows == len(above) and Fraction(tail_units, UNITS) == sum(map(Fraction, above.tolist()))


def test_the_select_consumer_without_a_whole_histogram_bucket():
    """Buckets named by their digit alone (collected straight) beside buckets sharing a digit
    (a 16-bit collection and a 32-bit one under it; a count and a collection of one digit),
    fed in runs of odd lengths: every bucket as numpy selects it."""
    need_native_decoder()
    from l1stream.exact._kernel import SelectPass

    rng = np.random.default_rng(4)
    a, p = rng.lognormal(5, 2, 30_001), rng.lognormal(5, 2, 30_001)
    bits = np.abs(a - p).view(np.uint64)
    digits = bits >> np.uint64(48)
    common = np.argsort(np.bincount(digits.astype(np.intp)))[::-1][:4].tolist()
    under = int(np.bincount(((bits[digits == common[2]] >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.intp))
                .argmax())
    buckets = [(common[0], 16, True), (common[1], 16, True), (common[2], 16, True),
               ((common[2] << 16) | under, 32, True), (common[3], 16, False), (common[3], 16, True)]
    select = SelectPass(buckets)
    for start in range(0, len(a), 997):
        assert select.add(a[start:start + 997], p[start:start + 997])
    found, (tail_rows, tail_units) = select.results()
    assert (tail_rows, tail_units) == (0, 0)
    for (prefix, width, collect), raw in zip(buckets, found):
        chosen = bits[(bits >> np.uint64(64 - width)) == np.uint64(prefix)]
        if collect:
            assert np.array_equal(np.frombuffer(raw, dtype=np.uint64), chosen)  # in row order
        else:
            assert np.array_equal(np.frombuffer(raw, dtype=np.int64), np.bincount(
                ((chosen >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.intp), minlength=65536))
    with pytest.raises(ValueError, match="below 2"):
        SelectPass([(1 << 16, 16, True)])


def test_feed_by_hands_each_slice_its_rows_in_order():
    need_native_decoder()
    from l1stream.exact._kernel import AbsDiffSum, ProfileSum, feed_by

    rng = np.random.default_rng(6)
    a, p, codes = rng.normal(size=50_001), rng.normal(size=50_001), rng.integers(0, 4, 50_001)
    sums = [ProfileSum(), None, ProfileSum(), ProfileSum()]
    assert feed_by([s and s.consumer() for s in sums], a, p, codes) == []
    for code, total in enumerate(sums):
        if total is not None:
            units, rows = total.cut()
            mine = codes == code
            assert rows == mine.sum()
            assert Fraction(units, UNITS) == sum(abs(Fraction(x) - Fraction(y))
                                                 for x, y in zip(a[mine].tolist(), p[mine].tolist()))
    a[7] = np.inf
    assert feed_by([ProfileSum().consumer() for _ in range(4)], a, p, codes) == [int(codes[7])]
    with pytest.raises(ValueError, match="outside"):
        feed_by([AbsDiffSum().consumer()], a, p, codes)
    with pytest.raises(ValueError, match="same length"):
        feed_by([None] * 4, a, p[:-1], codes)


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    """Three models over five days (partition keys), row groups of 3,000 rows; the candidate v3 errs
    15% more than its baseline on region "west" only."""
    root = tmp_path_factory.mktemp("report-passes")
    rng = np.random.default_rng(11)
    rows = {}
    for day in range(5):
        for model in ("v1", "v2", "v3"):
            n = 9_000
            actual = np.round(rng.lognormal(11, 0.4, n), 2)
            region = rng.choice(["east", "west", "north"], n)
            baseline = actual * rng.lognormal(0, 0.08, n)
            spread = np.where((region == "west") & (model == "v3"), 0.092, 0.08)
            prediction = actual * rng.lognormal(0, spread)
            path = root / f"date=2026-11-0{day + 1}" / f"model={model}" / "part-0.parquet"
            path.parent.mkdir(parents=True)
            pq.write_table(pa.table({"actual": actual, "prediction": prediction, "baseline": baseline,
                                     "region": region}), path, row_group_size=3_000)
            rows[(day, model)] = (actual, prediction, baseline, region)
    return root, rows


@pytest.mark.parametrize("sampled", [True, False])
@pytest.mark.parametrize("by", ["model", "region"])  # a partition key (C consumers), a column (tables)
def test_quantiles_per_slice_equal_numpy_bit_for_bit(log, by, sampled, monkeypatch):
    """With a sample read first, the quantiles are selected during the first pass (one read);
    without, in a pass of their own: numpy's figures either way."""
    from l1stream.report import sampled as sampling

    if not sampled:
        monkeypatch.setattr(sampling, "SAMPLE_EVERY", 0)
    root, rows = log
    report = l1stream.evaluate_report(str(root), by=by, quantiles=(0.5, 0.9, 0.99))
    per: dict = {}
    for (_day, model), (a, p, _, region) in rows.items():
        losses = np.abs(a - p)
        if by == "model":
            per.setdefault((model,), []).append(losses)
        else:
            for name in ("east", "west", "north"):
                per.setdefault((name,), []).append(losses[region == name])
    assert set(report.slice_quantiles) == set(per)
    for key, parts in per.items():
        values = np.concatenate(parts)
        got = report.slice_quantiles[key]
        assert got["median"] == np.median(values)
        for q in (0.5, 0.9, 0.99):
            assert got[q] == np.quantile(values, q), (key, q)
    everything = np.concatenate([v for parts in per.values() for v in parts])
    assert report.quantiles.median == np.median(everything)
    # one read for the evaluation, the profile and (planned from the sample) the quantiles; or one more
    assert report.passes == (1 if sampled else 2)
    doc = report.to_dict()["report"]
    assert all(s["quantiles"]["median"] == report.slice_quantiles[tuple(s["key"].values())]["median"]
               for s in doc["slices"])


def test_buckets_too_large_to_collect_are_refined_per_slice(log, monkeypatch):
    from l1stream.engine import quantiles

    root, rows = log
    monkeypatch.setattr(quantiles, "COLLECT_LIMIT", 50)
    report = l1stream.evaluate_report(str(root), by="model")
    for model in ("v1", "v2", "v3"):
        values = np.concatenate([np.abs(a - p) for (d, m), (a, p, _, _) in rows.items() if m == model])
        assert report.slice_quantiles[(model,)][0.99] == np.quantile(values, 0.99)
    assert report.passes > 2


@pytest.mark.parametrize("by", ["model", "region", ["model", "region"]])
def test_one_read_gives_the_report_of_the_ordinary_passes(log, monkeypatch, by):
    """The C consumers (fed as pages decode for a partition key, regrouped by slice for a column)
    against the same report with the C parts off (numpy): every figure of the JSON the same."""
    need_native_decoder()
    root, _ = log
    native = l1stream.evaluate_report(str(root), by=by, baseline_prediction="baseline").to_dict()
    monkeypatch.setenv("L1STREAM_NATIVE", "0")
    tables = l1stream.evaluate_report(str(root), by=by, baseline_prediction="baseline").to_dict()
    assert native["report"] == tables["report"]
    assert native["mae"] == tables["mae"]
    assert native["report"]["passes"] == 1


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    """Slices in a column, and chunks the C consumers must leave to numpy: a NaN (policy omit), a
    value beyond 2**480 (its piece read again), many slices in one file."""
    root = tmp_path_factory.mktemp("report-awkward")
    rng = np.random.default_rng(8)
    kept_a, kept_p, kept_s = [], [], []
    for i in range(4):
        n = 6_000
        a, p = rng.lognormal(3, 1, n), rng.lognormal(3, 1, n)
        slices = rng.choice(["a", "b", "c"], n) if i != 3 else np.array([f"s{k % 40}" for k in range(n)])
        if i == 1:
            a[2_500] = np.nan  # row group 1 of 3
        if i == 2:
            a[4_500], p[4_500] = 2.0 ** 500, 2.0 ** 499  # finite, beyond the consumer's exact range
        pq.write_table(pa.table({"actual": a, "prediction": p, "segment": slices}),
                       root / f"part-{i}.parquet", row_group_size=2_000)
        keep = ~np.isnan(a)
        kept_a.append(a[keep]), kept_p.append(p[keep]), kept_s.append(slices[keep])
    return root, np.concatenate(kept_a), np.concatenate(kept_p), np.concatenate(kept_s)


@pytest.mark.parametrize("limits", ["defaults", "small"])
def test_slices_in_a_column_through_every_fallback(awkward, monkeypatch, limits):
    from l1stream.report import first_pass, grouped

    root, a, p, segment = awkward
    if limits == "small":  # chunks of more slices go numpy; the first pass gives its profile up
        monkeypatch.setattr(grouped, "GROUPED_LIMIT", 3)
        monkeypatch.setattr(first_pass, "ONE_READ_SLICES", 10)
    report = l1stream.evaluate_report(str(root), by="segment", nan_policy="omit", quantiles=(0.5, 0.9))
    assert report.result.mae == exact_mae(a, p)
    losses = np.abs(a - p)
    assert report.quantiles.median == np.median(losses[np.isfinite(losses)])
    for name in np.unique(segment):
        mine = losses[segment == name]
        got = report.slice_quantiles.get((name,))
        if got is not None:  # the largest slices are profiled one by one
            assert got[0.9] == np.quantile(mine, 0.9), name
        assert report.result.slice_numbers()[(name,)]["mae"] == exact_mae(a[segment == name], p[segment == name])
    assert report.passes == (2 if limits == "defaults" else 3)
    monkeypatch.setenv("L1STREAM_NATIVE", "0")
    numpy_report = l1stream.evaluate_report(str(root), by="segment", nan_policy="omit", quantiles=(0.5, 0.9))
    assert report.to_dict()["report"] == numpy_report.to_dict()["report"] | {"passes": report.passes}


def hand_jackknife(blocks):
    """The paired delete-a-group jackknife, written out from its definition."""
    d = [Fraction(m) - Fraction(b) for m, b, _ in blocks]
    w = [Fraction(n) for _, _, n in blocks]
    total_d, total_w, count = sum(d), sum(w), len(blocks)
    leave = [float((total_d - d[i]) / (total_w - w[i])) for i in range(count)]
    centre = sum(leave) / count
    se = math.sqrt((count - 1) / count * sum((x - centre) ** 2 for x in leave))
    return float(total_d / total_w), se


def test_the_paired_difference_per_slice_is_the_hand_written_jackknife(log):
    from scipy import stats

    root, rows = log
    report = l1stream.evaluate_report(str(root), by="model", baseline_prediction="baseline")
    for row in report.slices():
        model = row["key"][0]
        blocks = []
        for (_day, m), (a, p, base, _) in sorted(rows.items()):
            if m != model:
                continue
            for start in range(0, len(a), 3_000):  # the row groups: the jackknife's blocks
                sl = slice(start, start + 3_000)
                blocks.append((sum(abs(Fraction(x) - Fraction(y)) for x, y in zip(a[sl].tolist(), p[sl].tolist())),
                               sum(abs(Fraction(x) - Fraction(y)) for x, y in zip(a[sl].tolist(), base[sl].tolist())),
                               3_000))
        estimate, se = hand_jackknife(blocks)
        diff = row["difference"]
        assert diff.estimate == estimate and diff.blocks == len(blocks)
        assert diff.standard_error == pytest.approx(se, rel=1e-12)
        assert diff.p_value == pytest.approx(2 * stats.t.sf(abs(estimate / se), len(blocks) - 1), rel=1e-9)
        assert row["mae"] - row["baseline_mae"] == pytest.approx(estimate, rel=1e-12)


def test_holm_flags_the_slice_that_is_worse_and_only_it(log):
    root, rows = log
    report = l1stream.evaluate_report(str(root), by=["model", "region"], baseline_prediction="baseline")
    comparison = report.comparison()
    assert comparison["formula"] == "difference = MAE(prediction) - MAE(baseline_prediction), over the same rows"
    assert comparison["worse_slices"] == [("v3", "west")]
    assert comparison["verdict"].startswith("candidate worse on 1 of 9 slices")
    rows_out = report.slices()
    raw = [r["difference"].p_value for r in rows_out]
    assert [r["adjusted_p"] for r in rows_out] == holm(raw)
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["report"]["comparison"]["worse_slices"] == [{"model": "v3", "region": "west"}]
    assert "candidate worse on 1 of 9 slices" in report.to_html()


def test_holm_by_hand():
    assert holm([0.2, 0.01, 0.04]) == [0.2, 0.03, 0.08]
    assert holm([0.5, 0.5]) == [1.0, 1.0]


def test_the_paired_interval_covers_a_known_difference_about_as_often_as_it_says():
    """400 simulated comparisons of 30 blocks with a true difference of 0.3: the 95% intervals
    cover it in 91-99% of them (binomial spread at n = 400: +-2.2 points)."""
    rng = np.random.default_rng(5)
    covered = 0
    for _ in range(400):
        rows = rng.integers(80, 120, 30)
        baseline = np.array([rng.gamma(4.0, 0.5, n).sum() for n in rows])
        model = baseline + np.array([rng.normal(0.3 * n, 0.5 * math.sqrt(n)) for n in rows])
        diff = paired_difference(zip(model.tolist(), baseline.tolist(), rows.tolist()))
        covered += diff.lower <= 0.3 <= diff.upper
    assert 0.91 <= covered / 400 <= 0.99, covered


def test_a_significant_gate_fails_only_on_a_significant_increase(log, tmp_path, capsys):
    from l1stream.cli.commands import main

    root, _ = log
    common = ["report", str(root), "--by", "model", "--baseline-prediction", "baseline", "--html",
              str(tmp_path / "r.html"), "--max-increase", "0", "--gate-baseline", "baseline_prediction",
              "--gate-slices", "--quiet"]
    assert main(common) == 4  # every model's MAE rose a little: plain max_increase 0 fails on each
    failed = capsys.readouterr().err
    assert all(f'{{"model": "{m}"}}' in failed for m in ("v1", "v2", "v3"))
    assert main(common + ["--gate-significant"]) == 4  # v3 (its "west" third), and so overall
    failed = capsys.readouterr().err
    assert '{"model": "v3"}' in failed and "v1" not in failed and "v2" not in failed
    by_region = common[:4] + ["--by", "region"] + common[4:]
    assert main(by_region + ["--gate-significant"]) == 4
    failed = capsys.readouterr().err
    assert '"region": "west"' in failed and failed.count("for slice") == 1  # ("v3", "west") only


def test_a_significant_gate_needs_the_report():
    from l1stream.errors import UsageError
    from l1stream.scheduled.gates import validate_gates

    gates = validate_gates([{"max_increase": 0, "baseline": "baseline_prediction", "significant": True}])
    assert gates[0]["significant"] is True
    with pytest.raises(UsageError, match="significant"):
        validate_gates([{"max_mae": 3, "significant": True}])


def test_exact_mae_figures_stay_the_evaluation_s(log):
    root, rows = log
    report = l1stream.evaluate_report(str(root))
    a = np.concatenate([r[0] for r in rows.values()])
    p = np.concatenate([r[1] for r in rows.values()])
    assert report.result.mae == exact_mae(a, p)


def test_a_significant_gate_in_a_config_is_checked_with_the_written_report(log, tmp_path):
    root, _ = log
    gate = {"max_increase": 0, "baseline": "baseline_prediction", "slices": True, "significant": True}
    config = {"sources": [str(root)], "by": ["model", "region"],
              "columns": {"baseline_prediction": "baseline"}, "gates": [gate],
              "output": {"json": str(tmp_path / "mae.json"), "report": str(tmp_path / "r.html")}}
    with pytest.raises(l1stream.GateFailedError) as caught:
        l1stream.run(config)
    failed = [c["slice"] for c in caught.value.checks]
    assert failed == [None, {"model": "v3", "region": "west"}]  # overall, and the one slice that rose
    assert (tmp_path / "r.html").exists() and json.loads((tmp_path / "mae.json").read_text())["gates"]
    statuses = [c["status"] for c in caught.value.result.gates]
    assert statuses.count("not_significant") >= 3  # MAEs that rose by chance pass as not significant
    no_report = dict(config, output={"json": str(tmp_path / "mae2.json")})
    with pytest.raises(l1stream.ConfigError, match="output.report"):
        l1stream.run(no_report)
