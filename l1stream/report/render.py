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
    short_label,
    slice_bars_svg,
    svg_open,
)
from l1stream.report.histogram import histogram_model, histogram_note, histogram_svg


def headline_cards(report) -> str:
    result = report.result
    overall = report.overall
    left = sum(result.left_out.values())
    state = "" if result.gates is None else ("failed" if any(g["status"] == "failed" for g in result.gates)
                                             else "passed")
    cards = [card("MAE (exact, correctly rounded)", repr(result.mae), main=True, state=state),
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
        cards.append(card("quality gates", "all passed" if not bad else f"{bad} failed", state=state))
    return "<div class='cards'>" + "".join(cards) + "</div>"


SERIES_COLOURS = ("#dd8452", "#55a868", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def _finite_points(points: list) -> list:
    return [(p[0], p[1], p[2] if len(p) > 2 else i) for i, p in enumerate(points)
            if p[1] is not None and math.isfinite(p[1])]


def line_svg(points: list, *, title: str, width: int = 900, height: int = 240, others=()) -> str:
    """MAE over an ordered axis: ``[(label, value)]`` or ``[(label, value, position)]`` as a line with
    markers; with positions (dates as day numbers, say) the spacing shows the gaps between them.
    ``others``: ``[(name, points)]`` drawn as thinner lines in their own colours, with a legend."""
    points = _finite_points(points)
    others = [(name, _finite_points(series)) for name, series in others]
    others = [(name, series) for name, series in others if series]
    if not points:
        return "<p class='note'>nothing to plot</p>"
    left, right, top, bottom = 70, 50 + (150 if others else 0), 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    every_value = [v for _, v, _ in points] + [v for _, series in others for _, v, _ in series]
    low, high, ticks = value_axis(min(every_value), max(every_value))
    positions = [pos for _, _, pos in points] + [pos for _, series in others for _, _, pos in series]
    first, last = min(positions), max(positions)

    def xy(value, pos):
        x = left + (pos - first) / (last - first) * plot_w if last != first else left + plot_w / 2
        return x, top + plot_h - (value - low) / (high - low) * plot_h

    coords = [xy(v, pos) for _, v, pos in points]
    parts = [svg_open(width, height, title)]
    for tick in ticks:
        y = top + plot_h - (tick - low) / (high - low) * plot_h
        parts.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e5e5e5'/>"
                     f"<text x='{left - 6}' y='{y + 4:.1f}' font-size='11' text-anchor='end'>{esc(short(tick))}</text>")
    for n, (name, series) in enumerate(others):
        colour = SERIES_COLOURS[n % len(SERIES_COLOURS)]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(v, pos) for _, v, pos in series))
        parts.append(f"<polyline class='series slice' points='{line}' fill='none' stroke='{colour}' "
                     f"stroke-width='1.5'><title>{esc(name)}</title></polyline>"
                     f"<text x='{left + plot_w + 12}' y='{top + 12 + 15 * (n + 1)}' font-size='11' fill='{colour}'>"
                     f"{esc(short_label(name, 22))}</text>")
    if others:
        parts.append(f"<text x='{left + plot_w + 12}' y='{top + 12}' font-size='11' fill='{BAR}'>all rows</text>")
    parts.append(f"<polyline class='series' points='{' '.join(f'{x:.1f},{y:.1f}' for x, y in coords)}' fill='none' "
                 f"stroke='{BAR}' stroke-width='2.5'/>")
    every = max(1, math.ceil(len(points) / 8))
    for i, ((label, value, _), (x, y)) in enumerate(zip(points, coords)):
        parts.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.5' fill='{BAR}'><title>{esc(label)}: MAE "
                     f"{value!r}</title></circle>")
        if i % every == 0:
            parts.append(f"<text x='{x:.1f}' y='{top + plot_h + 16}' font-size='11' text-anchor='middle'>"
                         f"{esc(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _position(value, index: int) -> float:
    """Where a time value sits on the axis: dates and times by their distance, anything else in order."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        return value.timestamp() / 86400
    if isinstance(value, dt.date):
        return value.toordinal()
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime().timestamp() / 86400
    return index


def value_axis(lowest: float, highest: float, ticks: int = 5) -> tuple:
    """``(low, high, ticks)``: a nice range that covers ``[lowest, highest]`` with a little room, not
    forced to start at 0 (a day-to-day movement of 1% should be visible), and its tick values.

    Examples
    --------
    >>> value_axis(54_210.0, 55_930.0)
    (54000.0, 56000.0, [54000.0, 54500.0, 55000.0, 55500.0, 56000.0])
    >>> value_axis(3.0, 3.0)
    (2.5, 3.5, [2.5, 2.75, 3.0, 3.25, 3.5])
    """
    if highest == lowest:
        pad = abs(highest) / 6 or 1.0
        lowest, highest = lowest - pad, highest + pad
    raw = (highest - lowest) / (ticks - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    low, high = float(math.floor(lowest / step) * step), float(math.ceil(highest / step) * step)
    count = round((high - low) / step)
    return low, high, [low + i * step for i in range(count + 1)]


def slice_table(report) -> str:
    """The slices' MAE, interval, rows, RMSE and loss quantiles; with a baseline model, the paired
    difference, its interval and its Holm-adjusted p-value."""
    qs = () if report.quantiles is None else tuple(report.quantiles.quantiles)
    compared = bool(report.result.baseline_column)
    rows = []
    for s in sorted(report.slices(), key=lambda s: -(s["mae"] if math.isfinite(s["mae"]) else -1)):
        iv = s["interval"]
        if iv is not None:
            interval = f"[{short(iv.lower)}, {short(iv.upper)}]"
        elif s["profiled"]:
            interval = "n/a (fewer than 2 row groups)"
        else:
            interval = f"n/a (only the {len(report.profile.slices)} largest slices are profiled)"
        quantiles = s["quantiles"] or {}
        cells = "".join(f"<td>{esc(short(quantiles[q])) if q in quantiles else ''}</td>" for q in ("median", *qs))
        if compared:
            cells += _difference_cells(s, report.alpha)
        rows.append(f"<tr><td>{esc(s['label'])}</td><td>{esc(repr(s['mae']))}</td><td>{interval}</td>"
                    f"<td>{s['count']:,}</td><td>{esc(short(s['rmse']))}</td>{cells}</tr>")
    level = f"{report.confidence:.0%}"
    heads = "".join(f"<th>{'median' if q == 'median' else f'p{q * 100:g}'} |error|</th>" for q in ("median", *qs))
    if compared:
        heads += "<th>difference vs baseline</th><th>Holm-adjusted p</th>"
    return (f"<table><tr><th>slice</th><th>MAE</th><th>{level} interval</th><th>rows</th><th>RMSE</th>{heads}</tr>"
            + "".join(rows) + "</table>")


def _difference_cells(row: dict, alpha: float) -> str:
    diff = row["difference"]
    if diff is None:
        return "<td>n/a (fewer than 2 row groups)</td><td></td>"
    mark = ""
    if row["adjusted_p"] < alpha:
        mark = " <span class='fail'>worse</span>" if diff.estimate > 0 else " <span class='pass'>better</span>"
    return (f"<td>{esc(short(diff.estimate))} [{esc(short(diff.lower))}, {esc(short(diff.upper))}]{mark}</td>"
            f"<td>{row['adjusted_p']:.3g}</td>")


def comparison_section(report) -> str:
    """The verdict of the model against the baseline, and how it is made."""
    summary = report.comparison()
    return (f"<h2>Candidate against baseline</h2><p><strong>{esc(summary['verdict'])}</strong></p>"
            f"<p class='note'>difference = MAE(prediction) - MAE(baseline_prediction), over the same rows "
            f"(positive: the candidate errs more); per slice a paired delete-a-group jackknife over the same row "
            f"groups gives its {report.confidence:.0%} interval and a t test; p-values are adjusted across the "
            f"{summary['tested']} tested slices by Holm's method (alpha {summary['alpha']:g}).</p>")


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
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{esc(report.title)}</title>"
            f"<style>{PAGE_STYLE}</style></head><body>\n{report_body(report)}\n</body></html>\n")


def passes_text(report) -> str:
    """How often the report read the data, e.g. "1 pass over the data (and 6% of it twice)".

    >>> class Seen: passes, reread = 1, 0.0625
    >>> passes_text(Seen())
    '1 pass over the data (and 6% of it twice)'
    """
    text = f"{report.passes} pass{'' if report.passes == 1 else 'es'} over the data"
    return text + (f" (and {report.reread:.0%} of it twice)" if report.reread else "")


def report_body(report) -> str:
    """Every section of the report (the page's body, and the notebook view)."""
    from l1stream._version import __version__

    result, overall = report.result, report.overall
    q = report.quantiles
    model = histogram_model(overall)
    sections = [f"<h1>{esc(report.title)}</h1><p class='meta'>{esc(report.source)} &middot; generated "
                f"{esc(report.generated)} &middot; l1stream {esc(__version__)} &middot; {passes_text(report)}</p>",
                headline_cards(report)]
    if result.weighted:
        sections.append("<p class='note'>Weighted MAE; histogram, quantiles and the top-share count rows "
                        "(unweighted); L2 is not computed for weighted runs.</p>")
    sections.append("<h2>Error distribution</h2>" + histogram_svg(model, mae=result.mae, median=q.median if q else None)
                    + f"<p class='note'>{esc(histogram_note(model))}</p>")
    if result.by:
        sections.append(f"<h2>MAE per slice ({esc(', '.join(result.by))})</h2>" + slice_bars_svg(report.slices())
                        + slice_table(report)
                        + f"<p class='note'>Whiskers: {report.confidence:.0%} confidence intervals, delete-a-group "
                          f"jackknife over row groups with Student t (row groups treated as independent).</p>")
    else:
        sections.append("<h2>MAE interval</h2>" + slice_table(report))
    series = report.time_series()
    order = {t: i for i, (t, _, _) in enumerate(series)}  # a slice's point sits where its time value does
    if series:
        sections.append(f"<h2>MAE over time ({esc(report.time_key)})</h2>"
                        + line_svg([(str(_json_value(t)), m, _position(t, i)) for i, (t, m, _) in enumerate(series)],
                                   title="MAE over time", others=[
                                       (", ".join(map(str, key)), [(str(_json_value(t)), m, _position(t, order[t]))
                                                                   for t, m, _ in rows])
                                       for key, rows in report.slice_time_series().items()]))
    runs = report.history_series()
    if runs:
        sections.append("<h2>MAE of past runs (metrics history)</h2>"
                        + line_svg([(t.strftime("%m-%d %H:%M"), m) for t, m, _ in runs], title="MAE per run"))
    if result.baseline_column:
        sections.append(comparison_section(report))
    sections.append("<h2>Quality gates</h2>" + gates_table(result))
    if result.skipped:
        items = "".join(f"<li>{esc(p)}: {esc(r)}</li>" for p, r in result.skipped.items())
        sections.append(f"<h2>Skipped files</h2><ul>{items}</ul>")
    sections.append("<p class='note'>The MAE is the correctly rounded exact mean; MSE/RMSE are exact likewise; "
                    "quantiles match numpy.quantile (linear) bit for bit.</p>")
    return "\n".join(f"<section>{s}</section>" for s in sections)


def summary_html(report) -> str:
    """The notebook view of a report: the page's own sections (cards, histogram, slices with their
    intervals, the time chart, gates), styled within their own container."""
    return (f"<div class='l1stream-report'><style>{scoped_style('.l1stream-report')}</style>{report_body(report)}"
            "</div>")


def plot_report(report, fig=None):
    """A matplotlib figure: histogram, MAE per slice with intervals, MAE over time."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        from l1stream.errors import UsageError

        raise UsageError('report.plot() draws with matplotlib, which is not installed: pip install "l1stream[plot]" '
                         '(the HTML page, report.to_html(), needs nothing)') from None

    series = report.time_series()
    panels = 2 + (1 if series else 0)
    if fig is None:
        fig = plt.figure(figsize=(10, 3.2 * panels))
    axes = fig.subplots(panels, 1)
    model = histogram_model(report.overall)
    bins = model["bins"]
    axes[0].bar([lo for lo, _, _ in bins], [c for _, _, c in bins], width=[hi - lo for lo, hi, _ in bins],
                align="edge", color=BAR)
    if model["scale"] == "log":
        axes[0].set_xscale("log")
        if model["zero"]:
            axes[0].set_title(f"{model['zero']:,} rows with |error| = 0 not on the log axis", loc="right",
                              fontsize=9)
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
