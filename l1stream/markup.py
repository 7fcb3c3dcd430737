"""HTML and inline-SVG building blocks shared by every view: the page style, escaping, number
labels, headline cards, and the MAE-per-slice bar chart.

A leaf module (standard library only): the result's notebook view (engine) and the report's
page (report) both draw with it.
"""

from __future__ import annotations

import html
import math

BAR, INTERVAL, MAE_LINE, MEDIAN_LINE, GRID = "#4c72b0", "#222222", "#c44e52", "#55a868", "#dddddd"
MAX_SLICE_BARS = 40

PAGE_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222;
padding:0 16px}h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:28px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:4px}.meta,.note{color:#666;font-size:.85em}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:120px}.card b{display:block;font-size:1.25em}
.card span{color:#666;font-size:.8em}.card.main b{font-size:1.7em;color:#222}.card.failed b{color:#c44e52}
.card.passed b{color:#2e7d32}table{border-collapse:collapse;
font-size:.85em}td,th{border-bottom:1px solid #eee;padding:3px 10px;text-align:right}th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left}.pass{color:#2e7d32;font-weight:600}.fail{color:#c62828;font-weight:600}
svg text{font-family:inherit}
"""


def scoped_style(scope: str) -> str:
    """The page style limited to elements inside ``scope`` (a notebook must keep its own look)."""
    rules = []
    for rule in PAGE_STYLE.replace("\n", "").split("}"):
        if "{" not in rule:
            continue
        selectors, body = rule.split("{", 1)
        if selectors.strip() == "body":
            continue
        scoped = ",".join(f"{scope} {sel.strip()}" for sel in selectors.split(","))
        rules.append(f"{scoped}{{{body}}}")
    return "".join(rules)


def esc(value) -> str:
    return html.escape(str(value))


def short(value: float) -> str:
    """A compact label for a chart axis (3 significant digits)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == 0:
        return "0"
    if math.isinf(value):
        return "inf"
    magnitude = abs(value)
    if 1000 <= magnitude < 1e7:
        text = f"{value:,.0f}"
    elif 1e-3 <= magnitude < 1000:
        text = f"{value:.3g}"
    else:
        text = f"{value:.2e}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
    return text


def card(label: str, value: str, main: bool = False, state: str = "") -> str:
    """A headline figure; ``state`` "failed" (red) or "passed" (green) colours it: only gates do."""
    classes = "card" + (" main" if main else "") + (f" {state}" if state else "")
    return f"<div class='{classes}'><span>{esc(label)}</span><b>{esc(value)}</b></div>"


def slice_bars_svg(slices: list, *, width: int = 900) -> str:
    """Horizontal bars of MAE per slice, largest first, with interval whiskers where known."""
    rows = sorted((s for s in slices if s["mae"] is not None and math.isfinite(s["mae"])),
                  key=lambda s: -s["mae"])[:MAX_SLICE_BARS]
    if not rows:
        return "<p class='note'>no slices with rows</p>"
    label_w, right, top, row_h = 220, 150, 10, 24
    plot_w = width - label_w - right
    height = top + row_h * len(rows) + 30
    highest = max(max(s["mae"], s["interval"].upper if s.get("interval") else 0) for s in rows) or 1.0
    parts = [svg_open(width, height, "MAE per slice")]
    for tick in nice_ticks(highest):
        x = label_w + tick / highest * plot_w
        parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{height - 26}' stroke='{GRID}'/>"
                     f"<text x='{x:.1f}' y='{height - 10}' font-size='11' text-anchor='middle'>{short(tick)}</text>")
    for i, s in enumerate(rows):
        y = top + i * row_h
        w = s["mae"] / highest * plot_w
        parts.append(f"<text x='{label_w - 8}' y='{y + 16}' font-size='12' text-anchor='end'>"
                     f"{esc(short_label(s['label'], 30))}<title>{esc(s['label'])}</title></text>"
                     f"<rect class='bar' x='{label_w}' y='{y + 4}' width='{max(w, 1):.1f}' height='{row_h - 8}' "
                     f"fill='{BAR}'><title>{esc(s['label'])}: MAE {s['mae']!r}, {s['count']:,} rows</title></rect>")
        interval = s.get("interval")
        spread = ""
        if interval is not None:
            x0, x1 = (label_w + v / highest * plot_w for v in (interval.lower, interval.upper))
            centre = label_w + w
            x0, x1 = min(x0, centre - 3), max(x1, centre + 3)  # a narrow interval stays visible: 6 px at least
            mid = y + row_h / 2
            parts.append(f"<path class='interval' d='M{x0:.1f},{mid:.1f}H{x1:.1f}M{x0:.1f},{mid - 6:.1f}V{mid + 6:.1f}"
                         f"M{x1:.1f},{mid - 6:.1f}V{mid + 6:.1f}' stroke='{INTERVAL}' stroke-width='2' fill='none'>"
                         f"<title>{esc(s['label'])}: [{interval.lower!r}, {interval.upper!r}]</title></path>")
            spread = f" \u00b1{short((interval.upper - interval.lower) / 2)}"
        parts.append(f"<text x='{width - right + 6}' y='{y + 16}' font-size='11'>{short(s['mae'])}{spread} "
                     f"(n={count_label(s['count'])})</text>")
    parts.append("</svg>")
    return "".join(parts)


def short_label(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut; the full text goes in a tooltip).

    >>> short_label("model=v2, region=north-east", 12)
    'model=v2, r…'
    """
    return text if len(text) <= limit else text[:limit - 1] + "…"


def svg_open(width: int, height: int, label: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' role='img' aria-label='{esc(label)}' width='{width}' "
            f"height='{height}' viewBox='0 0 {width} {height}'>")


def y_grid(peak: float, left: int, top: int, plot_w: int, plot_h: int, label=None) -> list:
    out = []
    for tick in nice_ticks(peak):
        y = top + plot_h - tick / peak * plot_h
        text = label(tick) if label else count_label(tick)
        out.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y:.1f}' y2='{y:.1f}' stroke='{GRID}'/>"
                   f"<text x='{left - 6}' y='{y + 4:.1f}' font-size='11' text-anchor='end'>{text}</text>")
    return out


def nice_ticks(peak: float) -> list:
    if peak <= 0:
        return [0.0]
    step = 10 ** math.floor(math.log10(peak / 4))
    for factor in (1, 2, 5, 10):
        if peak / (step * factor) <= 5:
            step *= factor
            break
    return [i * step for i in range(int(peak / step) + 1)]


def count_label(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}" if value == int(value) else f"{value:.3g}"
