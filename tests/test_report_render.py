"""The report as people see it: HTML page, notebook view, matplotlib, CLI, config, a real browser."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import write_parquet
from services import need

import l1stream
from l1stream.cli.commands import main


@pytest.fixture
def dated_log(tmp_path, rng):
    root = tmp_path / "logs"
    for d in ("2026-11-01", "2026-11-02", "2026-11-03"):
        for m, spread in (("v1", 0.25), ("v2", 0.1)):
            a = np.round(rng.lognormal(11, 0.5, 1200), 2)
            p = np.round(a * rng.normal(1, spread, 1200), 2)
            write_parquet(root / f"date={d}" / f"model={m}" / "part-0.parquet", 300, actual=a, prediction=p)
    return root


def test_html_is_self_contained_and_complete(dated_log):
    report = l1stream.evaluate_report(str(dated_log), by="model")
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    # nothing fetched: the only URL is the SVG namespace
    assert set(re.findall(r"https?://[^'\" ]+", page)) == {"http://www.w3.org/2000/svg"}
    assert page.count("<svg") == 3  # histogram, slices, MAE over time
    assert repr(report.result.mae) in page
    for s in report.slices():
        assert repr(s["mae"]) in page
    assert page.count("class='interval'") == 2
    assert page.count("<circle") == 3  # one point per date
    assert "no quality gates were configured" in page


def test_notebook_views(dated_log):
    report = l1stream.evaluate_report(str(dated_log), by="model")
    view = report._repr_html_()
    assert "<svg" in view and repr(report.result.mae) in view
    result_view = report.result._repr_html_()
    assert result_view.count("class='bar'") == 2 and repr(report.result.mae) in result_view


def test_matplotlib_plot(dated_log):
    import matplotlib

    matplotlib.use("Agg")
    report = l1stream.evaluate_report(str(dated_log), by="model")
    fig = report.plot()
    histogram, slices, over_time = fig.axes
    assert len(histogram.patches) == len([b for b in report.overall.log_histogram(4) if b[0] > 0])
    assert sorted(p.get_width() for p in slices.patches) == sorted(s["mae"] for s in report.slices())
    assert list(over_time.lines[0].get_ydata()) == [m for _, m, _ in report.time_series()]


def test_cli_report_writes_html_json_and_gates(dated_log, tmp_path, capsys):
    html = tmp_path / "out" / "report.html"
    history = tmp_path / "history"
    code = main(["report", str(dated_log), "--by", "model", "--html", str(html), "--history", str(history),
                 "--max-mae", "1e9", "--json"])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["report"]["quantiles"]["median"] > 0
    assert [g["status"] for g in document["gates"]] == ["passed"]
    page = html.read_text()
    assert "MAE of past runs" not in page and "passed" in page  # the history is appended after the report
    assert main(["report", str(dated_log), "--by", "model", "--html", str(html), "--history", str(history),
                 "--max-mae", "1e9", "--quiet"]) == 0
    assert "MAE of past runs" in html.read_text()  # the first run, now in the history
    # a failing gate: exit 4, and the report still says which gate failed
    code = main(["report", str(dated_log), "--by", "model", "--html", str(html), "--max-mae", "1", "--gate-slices",
                 "--quiet"])
    assert code == 4
    assert html.read_text().count("FAILED") == 3


def test_cli_report_usage_errors(dated_log, tmp_path, capsys):
    assert main(["report", str(dated_log), "--bins", "1,x", "--html", str(tmp_path / "r.html")]) == 2
    assert "--bins expects comma-separated numbers" in capsys.readouterr().err
    assert main(["report", str(dated_log), "--time-key", "hour", "--html", str(tmp_path / "r.html")]) == 2
    assert "--time-key 'hour' is neither a partition key nor a column" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_config_output_report(dated_log, tmp_path, capsys):
    config = tmp_path / "job.yaml"
    target = tmp_path / "results" / "report.html"
    config.write_text(f"sources: [{dated_log}]\nby: [model]\noutput: {{report: {target}}}\n"
                      f"report: {{title: Nightly house prices, quantiles: [0.5, 0.95]}}\n")
    assert main(["run", str(config), "--quiet"]) == 0
    page = target.read_text()
    assert "Nightly house prices" in page and "p95 |error|" in page
    config.write_text(f"sources: [{dated_log}]\nreport: {{colour: red}}\n")
    assert main(["run", str(config)]) == 2
    assert "report.colour: unknown key" in capsys.readouterr().err


def test_report_renders_in_headless_chromium(dated_log, tmp_path):
    """Laid out by a real browser: three charts, each bar, point and label inside its chart's box
    (measured in the DOM, whatever the fonts), the figures on the page those of the JSON; a
    screenshot as a smoke check that something was painted."""
    import browser

    need(browser.CHROMIUM is not None, "chromium is not installed (apt-get install chromium)")
    from PIL import Image

    report = l1stream.evaluate_report(str(dated_log), by="model")
    page = tmp_path / "report.html"
    report.write_html(str(page))
    measured = browser.measure(page.read_text(), tmp_path)
    charts = measured["charts"]
    assert [c["label"].split(" (")[0] for c in charts] == ["histogram of per-row L1 loss", "MAE per slice",
                                                           "MAE over time"], [c["label"] for c in charts]
    for chart in charts:
        assert [i for i in chart["items"] if i["tag"] != "text"], f"{chart['label']}: nothing drawn"
        assert not browser.outside(chart), (chart["label"], browser.outside(chart)[:5])
    bars = [i for i in charts[0]["items"] if i["cls"] == "bar" and i["height"] > 0]
    assert len(bars) >= len(report.overall.log_histogram(4))
    doc = report.to_dict()
    assert repr(doc["mae"]) in measured["text"]
    for group in doc["groups"]:
        assert group["key"]["model"] in measured["text"]
    shot = browser.screenshot(page, tmp_path)
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert (np.abs(image - 255).sum(axis=2) > 30).sum() > 10_000, "the screenshot is blank"


@pytest.mark.skipif(sys.platform != "linux", reason="the CLI entry point is tested on Linux")
def test_report_command_in_a_fresh_process(dated_log, tmp_path):
    html = tmp_path / "r.html"
    run = subprocess.run([sys.executable, "-m", "l1stream", "report", str(dated_log), "--html", str(html), "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert html.read_text().count("<svg") == 2  # histogram and MAE over time (no slices asked for)
