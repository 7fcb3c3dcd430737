"""Render reports and results: self-contained HTML with inline SVG charts, and matplotlib.

No scripts, fonts or images are fetched: the page is one file that opens offline.
Numbers are printed with ``repr`` where exactness matters (the MAE) and rounded only in
chart labels.
"""

from __future__ import annotations

import math

from l1stream.engine.result import _json_value
from l1stream.markup import (
    BAR,
    MAE_LINE,
    MAX_SLICE_BARS,
    MEDIAN_LINE,
    PAGE_STYLE,
    card,
    esc,
    scoped_style,
    short,
    slice_bars_svg,
    svg_open,
    y_grid,
)


def headline_cards(report) -> str:
    result = report.result
    overall = report.overall
    left = sum(result.left_out.values())
    cards = [card("MAE (exact, correctly rounded)", repr(result.mae), main=True),
             card("rows used", f"{result.count:,}"),
             card("rows left out", f"{left:,}" + (" (" + ", ".join(f"{k} {v:,}" for k, v in result.left_out.items()
                                                                   if v) + ")" if left else ""))]
    q = report.quantiles
    if q is not None:
        cards.append(card("median |error|", short(q.median)))
        for level, value in q.quantiles.items():
            cards.append(card(f"p{level * 100:g} |error|", short(value)))
    if not math.isnan(overall.rmse):
        cards.append(card("RMSE", short(overall.rmse)))
    cards.append(card(f"top {report.top_fraction:.0%} of rows carry", "n/a" if math.isnan(report.top_share)
                      else f"{report.top_share:.1%} of the L1 loss"))
    cards.append(card("files", f"{result.files_selected:,}" + (f" ({len(result.skipped)} skipped)"
                                                               if result.skipped else "")))
    if result.gates is not None:
        bad = sum(1 for g in result.gates if g["status"] == "failed")
        cards.append(card("quality gates", "all passed" if not bad else f"{bad} failed"))
    return "<div class='cards'>" + "".join(cards) + "</div>"


def histogram_svg(bins: list, *, mae: float | None = None, median: float | None = None,
                  width: int = 900, height: int = 260) -> str:
    """Bars of a log-binned histogram ``[(lower, upper, count)]`` (log x axis, linear counts)."""
    if not bins:
        return "<p class='note'>no rows</p>"
    left, right, top, bottom = 60, 20, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    positions = [_log_position(lo) for lo, _, _ in bins] + [_log_position(bins[-1][1])]
    x_min, x_max = min(positions), max(positions)
    span = (x_max - x_min) or 1.0
    peak = max(c for _, _, c in bins) * 1.12  # headroom for the line labels
    parts = [svg_open(width, height, "histogram of per-row L1 loss"),
             *y_grid(peak, left, top, plot_w, plot_h)]
    for lo, hi, count in bins:
        x0 = left + (_log_position(lo) - x_min) / span * plot_w
        x1 = left + (_log_position(hi) - x_min) / span * plot_w
        h = count / peak * plot_h
        parts.append(f"<rect class='bar' x='{x0:.1f}' y='{top + plot_h - h:.1f}' width='{max(x1 - x0 - 1, 1):.1f}' "
                     f"height='{h:.1f}' fill='{BAR}'><title>[{short(lo)}, {short(hi)}): {count:,} rows</title></rect>")
    for row, (value, colour, name) in enumerate(((mae, MAE_LINE, "MAE"), (median, MEDIAN_LINE, "median"))):
        if value is not None and math.isfinite(value) and value > 0:
            x = left + (_log_position(value) - x_min) / span * plot_w
            anchor, dx = ("start", 4) if row == 0 else ("end", -4)
            parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{top + plot_h}' stroke='{colour}' "
                         f"stroke-width='2' stroke-dasharray='5,3'/>"
                         f"<text x='{x + dx:.1f}' y='{top + 10}' font-size='12' fill='{colour}' "
                         f"text-anchor='{anchor}'>{name}</text>")
    for exponent in range(math.ceil(x_min), math.floor(x_max) + 1, max(1, round(span / 10))):
        x = left + (exponent - x_min) / span * plot_w
        if x > width - 40:
            continue  # a label cut by the edge helps nobody
        parts.append(f"<text x='{x:.1f}' y='{top + plot_h + 16}' font-size='11' text-anchor='middle'>"
                     f"{esc(short(2.0 ** exponent))}</text>")
    parts.append(f"<text x='{left + plot_w / 2:.0f}' y='{height - 6}' font-size='12' text-anchor='middle'>"
                 f"|actual - prediction| (log scale)</text></svg>")
    return "".join(parts)


def _log_position(value: float) -> float:
    if value <= 0:
        return -1075.0  # zero sits one step left of the smallest subnormal
    if math.isinf(value):
        return 1025.0
    return math.log2(value)


def line_svg(points: list, *, title: str, width: int = 900, height: int = 240) -> str:
    """MAE over an ordered axis: ``[(label, value)]`` as a line with markers."""
    points = [(label, v) for label, v in points if v is not None and math.isfinite(v)]
    if not points:
        return "<p class='note'>nothing to plot</p>"
    left, right, top, bottom = 60, 50, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = max(v for _, v in points) or 1.0
    step = plot_w / max(len(points) - 1, 1)
    coords = [(left + i * step if len(points) > 1 else left + plot_w / 2, top + plot_h - v / highest * plot_h)
              for i, (_, v) in enumerate(points)]
    parts = [svg_open(width, height, title), *y_grid(highest, left, top, plot_w, plot_h, label=short)]
    parts.append(f"<polyline class='series' points='{' '.join(f'{x:.1f},{y:.1f}' for x, y in coords)}' fill='none' "
                 f"stroke='{BAR}' stroke-width='2'/>")
    every = max(1, math.ceil(len(points) / 8))
    for i, ((label, value), (x, y)) in enumerate(zip(points, coords)):
        parts.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.5' fill='{BAR}'><title>{esc(label)}: MAE "
                     f"{value!r}</title></circle>")
        if i % every == 0:
            parts.append(f"<text x='{x:.1f}' y='{top + plot_h + 16}' font-size='11' text-anchor='middle'>"
                         f"{esc(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _display_bins(overall) -> list:
    for per_binade in (4, 2, 1):
        bins = overall.log_histogram(per_binade)
        if not bins or _log_position(bins[-1][1]) - _log_position(bins[0][0]) <= 80 / per_binade:
            return bins
    return overall.log_histogram(1)


def slice_table(report) -> str:
    rows = []
    for s in sorted(report.slices(), key=lambda s: -(s["mae"] if math.isfinite(s["mae"]) else -1)):
        iv = s["interval"]
        if iv is not None:
            interval = f"[{short(iv.lower)}, {short(iv.upper)}]"
        elif s["profiled"]:
            interval = "n/a (fewer than 2 row groups)"
        else:
            interval = f"n/a (only the {len(report.profile.slices)} largest slices are profiled)"
        rows.append(f"<tr><td>{esc(s['label'])}</td><td>{esc(repr(s['mae']))}</td><td>{interval}</td>"
                    f"<td>{s['count']:,}</td><td>{esc(short(s['rmse']))}</td></tr>")
    level = f"{report.confidence:.0%}"
    return (f"<table><tr><th>slice</th><th>MAE</th><th>{level} interval</th><th>rows</th><th>RMSE</th></tr>"
            + "".join(rows) + "</table>")


def gates_table(result) -> str:
    if result.gates is None:
        return "<p class='note'>no quality gates were configured for this run</p>"
    rows = []
    for g in result.gates:
        where = ", ".join(f"{k}={v}" for k, v in (g["slice"] or {}).items()) or "overall"
        status = {"passed": "<span class='pass'>passed</span>", "failed": "<span class='fail'>FAILED</span>"}.get(
            g["status"], esc(g["status"].replace("_", " ")))
        base = "" if g["baseline"] is None else repr(g["baseline"])
        rows.append(f"<tr><td>{esc(g['gate'])}</td><td>{esc(where)}</td><td>{esc(repr(g['value']))}</td>"
                    f"<td>{esc(base)}</td><td>{esc(repr(g['threshold']))}</td><td>{status}</td></tr>")
    return ("<table><tr><th>gate</th><th>slice</th><th>MAE</th><th>baseline</th><th>threshold</th><th>result</th></tr>"
            + "".join(rows) + "</table>")


def report_html(report) -> str:
    """The whole report page (see :meth:`l1stream.report.Report.to_html`)."""
    from l1stream._version import __version__

    result, overall = report.result, report.overall
    q = report.quantiles
    bins = _display_bins(overall)
    sections = [f"<h1>{esc(report.title)}</h1><p class='meta'>{esc(report.source)} &middot; generated "
                f"{esc(report.generated)} &middot; l1stream {esc(__version__)} &middot; {report.passes} passes over "
                f"the data</p>", headline_cards(report)]
    if result.weighted:
        sections.append("<p class='note'>Weighted MAE; histogram, quantiles and the top-share count rows "
                        "(unweighted); L2 is not computed for weighted runs.</p>")
    sections.append("<h2>Error distribution</h2>" + histogram_svg(
        bins, mae=result.mae, median=q.median if q else None) +
        f"<p class='note'>Exact row counts of |actual - prediction| in log-spaced bins "
        f"({_per_binade(bins)} per power of two); dashed lines: MAE and median.</p>")
    if result.by:
        sections.append(f"<h2>MAE per slice ({esc(', '.join(result.by))})</h2>" + slice_bars_svg(report.slices())
                        + slice_table(report)
                        + f"<p class='note'>Whiskers: {report.confidence:.0%} confidence intervals, delete-a-group "
                          f"jackknife over row groups with Student t (row groups treated as independent).</p>")
    else:
        sections.append("<h2>MAE interval</h2>" + slice_table(report))
    series = report.time_series()
    if series:
        sections.append(f"<h2>MAE over time ({esc(report.time_key)})</h2>"
                        + line_svg([(str(_json_value(t)), m) for t, m, _ in series], title="MAE over time"))
    runs = report.history_series()
    if runs:
        sections.append("<h2>MAE of past runs (metrics history)</h2>"
                        + line_svg([(t.strftime("%m-%d %H:%M"), m) for t, m, _ in runs], title="MAE per run"))
    sections.append("<h2>Quality gates</h2>" + gates_table(result))
    if result.skipped:
        items = "".join(f"<li>{esc(p)}: {esc(r)}</li>" for p, r in result.skipped.items())
        sections.append(f"<h2>Skipped files</h2><ul>{items}</ul>")
    sections.append("<p class='note'>The MAE is the correctly rounded exact mean; MSE/RMSE are exact likewise; "
                    "quantiles match numpy.quantile (linear) bit for bit.</p>")
    body = "\n".join(f"<section>{s}</section>" for s in sections)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{esc(report.title)}</title>"
            f"<style>{PAGE_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _per_binade(bins: list) -> int:
    if not bins or bins[0][0] <= 0 or math.isinf(bins[0][1]):
        return 4
    return max(1, round(1 / (math.log2(bins[0][1]) - math.log2(bins[0][0]))))


def summary_html(report) -> str:
    """The notebook view of a report: cards, histogram and slice bars."""
    parts = [f"<div class='l1stream-report'><style>{scoped_style('.l1stream-report')}</style>", headline_cards(report),
             histogram_svg(_display_bins(report.overall), mae=report.result.mae,
                           median=report.quantiles.median if report.quantiles else None, height=200)]
    if report.result.by:
        parts.append(slice_bars_svg(report.slices()))
    return "".join(parts) + "</div>"


def plot_report(report, fig=None):
    """A matplotlib figure: histogram, MAE per slice with intervals, MAE over time."""
    import matplotlib.pyplot as plt

    series = report.time_series()
    panels = 2 + (1 if series else 0)
    if fig is None:
        fig = plt.figure(figsize=(10, 3.2 * panels))
    axes = fig.subplots(panels, 1)
    bins = [b for b in _display_bins(report.overall) if b[0] > 0 and math.isfinite(b[1])]
    axes[0].bar([lo for lo, _, _ in bins], [c for _, _, c in bins], width=[hi - lo for lo, hi, _ in bins],
                align="edge", color=BAR)
    axes[0].set_xscale("log")
    axes[0].axvline(report.result.mae, color=MAE_LINE, linestyle="--", label="MAE")
    if report.quantiles is not None and report.quantiles.median > 0:
        axes[0].axvline(report.quantiles.median, color=MEDIAN_LINE, linestyle="--", label="median")
    axes[0].set(title="Per-row L1 loss", xlabel="|actual - prediction|", ylabel="rows")
    axes[0].legend()
    slices = sorted(report.slices(), key=lambda s: s["mae"])[-MAX_SLICE_BARS:]
    errors = [[s["mae"] - s["interval"].lower if s["interval"] else 0 for s in slices],
              [s["interval"].upper - s["mae"] if s["interval"] else 0 for s in slices]]
    axes[1].barh([s["label"] for s in slices], [s["mae"] for s in slices], xerr=errors, color=BAR, capsize=3)
    axes[1].set(title=f"MAE per slice ({report.confidence:.0%} jackknife intervals)", xlabel="MAE")
    if series:
        axes[2].plot([str(_json_value(t)) for t, _, _ in series], [m for _, m, _ in series], marker="o", color=BAR)
        axes[2].set(title=f"MAE over {report.time_key}", ylabel="MAE")
        axes[2].tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig
