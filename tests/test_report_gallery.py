"""The report on every data shape, laid out by headless Chromium: zero errors, integer errors, one
distinct value, one row, errors from 1e-300 to 1e300, one slice, 300 slices, weights, a time key
with gaps, NaNs left out.  Every bar, point and label must lie inside its chart (boxes measured in
the DOM), the page must show the JSON's figures, and each shape must get the chart it calls for."""

from __future__ import annotations

import math

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from services import need

import l1stream
from l1stream.report.histogram import histogram_model
from l1stream.report.render import report_body


def shapes() -> dict:
    """The same data on every call (the tests compare the charts with it)."""
    RNG = np.random.default_rng(8)  # noqa: N806
    n = 2_000
    actual = RNG.lognormal(10, 1, n)
    integers = RNG.integers(0, 12, n).astype(float)
    days = pd.to_datetime("2026-11-01") + pd.to_timedelta(RNG.choice([0, 1, 2, 5, 6, 9], n), unit="D")
    with_zeros = actual * RNG.lognormal(0, 0.1, n)
    with_zeros[::7] = actual[::7]  # one row in seven has no error at all
    wide = np.where(np.arange(n) % 2 == 0, 10.0 ** RNG.uniform(-300, 0, n), 10.0 ** RNG.uniform(0, 300, n))
    nan_prediction = actual * RNG.lognormal(0, 0.1, n)
    nan_prediction[::10] = np.nan
    return {
        "zero errors": (pd.DataFrame({"actual": actual, "prediction": with_zeros}), {}),
        "integer errors": (pd.DataFrame({"actual": integers, "prediction": np.round(integers * 0.8)}), {}),
        "one distinct value": (pd.DataFrame({"actual": np.full(50, 3.0), "prediction": np.full(50, 1.0)}), {}),
        "one row": (pd.DataFrame({"actual": [1.5], "prediction": [1.0]}), {}),
        "1e-300 to 1e300": (pd.DataFrame({"actual": wide, "prediction": np.zeros(n)}), {}),
        "one slice": (pd.DataFrame({"actual": actual, "prediction": actual * 1.1, "model": "v1"}), {"by": "model"}),
        "300 slices": (pd.DataFrame({"actual": actual, "prediction": actual * RNG.lognormal(0, 0.2, n),
                                     "shop": RNG.integers(0, 300, n).astype(str)}), {"by": "shop"}),
        "weighted": (pd.DataFrame({"actual": actual, "prediction": actual * 1.05, "w": RNG.random(n)}),
                     {"weight": "w"}),
        "time key with gaps": (pd.DataFrame({"actual": actual, "prediction": actual * RNG.lognormal(0, 0.1, n),
                                             "day": days.date}), {"time_key": "day"}),
        "NaNs omitted": (pd.DataFrame({"actual": actual, "prediction": nan_prediction}), {"nan_policy": "omit"}),
        "slices with intervals": (dd.from_pandas(pd.DataFrame({
            "actual": actual, "prediction": actual * RNG.lognormal(0, 0.05, n),
            "model": RNG.choice(["a-very-long-model-name-v1", "v2"], n)}), npartitions=8), {"by": "model"}),
        "slices over time": (pd.DataFrame({"actual": actual, "prediction": actual * RNG.lognormal(0, 0.1, n),
                                           "day": days.date, "model": RNG.choice(["v1", "v2", "v3"], n)}),
                             {"time_key": "day", "by": "model"}),
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    import browser

    need(browser.CHROMIUM is not None, "chromium is not installed (apt-get install chromium)")
    reports = {name: l1stream.evaluate_report(frame, **options) for name, (frame, options) in shapes().items()}
    bodies = {name: report_body(report) for name, report in reports.items()}
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
            + "".join(f"<div class='shape'>{body}</div>" for body in bodies.values()) + "</body></html>")
    measured = browser.measure(page, tmp_path_factory.mktemp("gallery"))
    charts, out = measured["charts"], {}
    for name, body in bodies.items():
        count = body.count("<svg")
        out[name], charts = (reports[name], charts[:count]), charts[count:]
    assert not charts
    return out, measured["text"]


@pytest.mark.parametrize("name", list(shapes()))
def test_every_element_inside_its_chart(rendered, name):
    import browser

    _, charts = rendered[0][name]
    assert charts, f"{name}: no chart"
    for chart in charts:
        drawn = [i for i in chart["items"] if i["tag"] != "text"]
        assert drawn, f"{name}: {chart['label']}: nothing drawn"
        assert not browser.outside(chart), (name, chart["label"], browser.outside(chart)[:3])
        texts = [i for i in chart["items"] if i["tag"] == "text" and i["text"].strip()]
        boxes = [(t["left"], t["right"], round(t["top"])) for t in texts]
        for i, (l1, r1, y1) in enumerate(boxes):  # tick labels on one line never overlap
            for l2, r2, y2 in boxes[i + 1:]:
                assert y1 != y2 or r1 <= l2 + 0.5 or r2 <= l1 + 0.5, (name, chart["label"], texts[i]["text"])


@pytest.mark.parametrize("name", list(shapes()))
def test_the_page_shows_the_json(rendered, name):
    report, _ = rendered[0][name]
    text = rendered[1]
    doc = report.to_dict()
    assert repr(doc["mae"]) in text
    assert f"{doc['count']:,}" in text


def test_each_shape_gets_its_chart(rendered):
    reports = {name: report for name, (report, _) in rendered[0].items()}
    zero = histogram_model(reports["zero errors"].overall)
    assert zero["scale"] == "log" and zero["zero"] == len(range(0, 2_000, 7))  # the no-error rows, apart
    integer = histogram_model(reports["integer errors"].overall)
    assert integer["scale"] == "integer" and [lo for lo, _, _ in integer["bins"]] == list(
        range(len(integer["bins"])))
    frame = shapes()["integer errors"][0]
    errors = (frame.actual - frame.prediction).abs().astype(int)
    assert [c for _, _, c in integer["bins"]] == [int((errors == k).sum()) for k in range(len(integer["bins"]))]
    assert histogram_model(reports["one distinct value"].overall)["bins"] == [(0, 1, 0), (1, 2, 0), (2, 3, 50)]
    wide = histogram_model(reports["1e-300 to 1e300"].overall)
    assert wide["scale"] == "log" and wide["bins"][0][0] < 1e-299 and wide["bins"][-1][1] > 1e299
    assert sum(c for _, _, c in wide["bins"]) == 2_000


def test_headline_colour_means_a_gate(rendered):
    report = rendered[0]["one row"][0]
    assert "class='card main'" in report.to_html()  # no gate: neutral, not red
    from l1stream.scheduled.gates import check_gates, validate_gates

    report.result.gates = check_gates(report.result, validate_gates([{"max_mae": 0.1}]))
    assert "class='card main failed'" in report.to_html()
    report.result.gates = check_gates(report.result, validate_gates([{"max_mae": 1.0}]))
    assert "class='card main passed'" in report.to_html()


def test_time_axis_covers_the_line(rendered):
    report, charts = rendered[0]["time key with gaps"]
    line = next(c for c in charts if c["label"].startswith("MAE over"))
    ticks = sorted(float(t["text"].replace(",", "")) for t in line["items"]
                   if t["tag"] == "text" and t["cls"] == "" and t["text"].replace(",", "").replace(".", "").isdigit()
                   and t["left"] < line["left"] + 80)
    values = [m for _, m, _ in report.time_series()]
    assert ticks[0] <= min(values) and ticks[-1] >= max(values)
    assert ticks[0] > 0  # not forced to start at 0: the day-to-day movement shows
    assert len(values) == 6  # six days with rows, gaps left out, not zero-filled
    assert all(math.isfinite(v) for v in values)


def test_slices_over_time_are_exact_and_drawn(rendered):
    from fractions import Fraction

    report, charts = rendered[0]["slices over time"]
    frame = shapes()["slices over time"][0]
    for (model,), rows in report.slice_time_series().items():
        for day, mae, count in rows:
            part = frame[(frame.model == model) & (frame.day == day)]
            exact = sum(abs(Fraction(a) - Fraction(p)) for a, p in zip(part.actual, part.prediction)) / len(part)
            assert (mae, count) == (exact.numerator / exact.denominator, len(part))
    assert sorted(k[0] for k in report.slice_time_series()) == ["v1", "v2", "v3"]
    line = next(c for c in charts if c["label"].startswith("MAE over"))
    assert len([i for i in line["items"] if i["cls"] == "series slice"]) == 3
    legend = [i["text"] for i in line["items"] if i["tag"] == "text" and i["text"] in ("v1", "v2", "v3", "all rows")]
    assert sorted(legend) == ["all rows", "v1", "v2", "v3"]


def test_interval_whiskers_are_visible(rendered):
    report, charts = rendered[0]["slices with intervals"]
    bars = next(c for c in charts if c["label"] == "MAE per slice")
    whiskers = [i for i in bars["items"] if i["cls"] == "interval"]
    assert len(whiskers) == 2 and all(w["width"] >= 6 and w["height"] >= 10 for w in whiskers)
    for row in report.slices():
        half = (row["interval"].upper - row["interval"].lower) / 2
        assert row["interval"].lower < row["mae"] < row["interval"].upper and half > 0


def test_short_repr_and_the_notebook_view(rendered):
    report = rendered[0]["300 slices"][0]
    assert len(repr(report)) < 400 and repr(report).startswith("Report(mae=")
    view = report._repr_html_()
    for section in ("Error distribution", "MAE per slice", "Quality gates"):
        assert section in view
    worst = max(report.slices(), key=lambda row: row["mae"])
    assert worst["label"] in view and repr(worst["mae"]) in view  # the slice table is there too
    assert view == f"<div class='l1stream-report'>{view.split('>', 1)[1]}"  # one container, scoped style


def test_plot_without_matplotlib_names_the_extra(rendered, monkeypatch):
    import sys

    report = rendered[0]["one row"][0]
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(l1stream.UsageError, match=r'pip install "l1stream\[plot\]"'):
        report.plot()
