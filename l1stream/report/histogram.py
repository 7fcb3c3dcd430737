"""The loss histogram, drawn as the data's shape asks, decided from the exact histogram.

The profile counts every row's |error| by the top 16 bits of its float64 (16 bins per power of
two, exact).  From those counts alone:

- rows below 2**-1026 (in practice: exactly 0, common with integer or rounded targets) get a bar
  of their own, left of the axis, never a position on a log axis (which would stretch it from 0
  through 1e-300 and squeeze every real error into a sliver);
- when every loss is an integer below 32 (the profile counts the rows that are not), each integer
  is a bar on a linear axis: the 16-per-binade bins hold integers below 32 one per bin, exactly;
- otherwise the positive losses are shown in log bins (4, 2 or 1 per power of two, as the span
  allows), with ticks at powers of ten (or two, for a narrow span).

Every label is placed inside the plot: the MAE and median markers are clamped to its edges.
"""

from __future__ import annotations

import math

from l1stream.markup import BAR, MAE_LINE, MEDIAN_LINE, esc, short, svg_open, y_grid

ZERO_BELOW = 2.0 ** -1026  # the upper end of the lowest 16-bit bin: "0" on the chart


def histogram_model(profile) -> dict:
    """``{"scale": "integer" | "log", "zero": rows, "bins": [(lower, upper, rows)], "infinite": rows}``.

    Examples
    --------
    >>> from l1stream.report.profile import SliceProfile
    >>> counts = {0: 3, 0x3FF0: 2, 0x4000: 1}  # three zeros, two 1.0, one 2.0 (top 16 bits)
    >>> histogram_model(SliceProfile(count=6, log_counts=counts, fractional=0))["bins"]
    [(0, 1, 3), (1, 2, 2), (2, 3, 1)]
    >>> histogram_model(SliceProfile(count=6, log_counts=counts, fractional=1))["zero"]
    3
    """
    from l1stream.engine.quantiles import log_bin

    zero = profile.log_counts.get(0, 0)
    infinite = sum(rows for digit, rows in profile.log_counts.items() if digit >= 0x7FF0)
    positive = {d: r for d, r in profile.log_counts.items() if 0 < d < 0x7FF0}
    largest = max((log_bin(d)[1] for d in positive), default=0.0)
    if profile.fractional == 0 and largest <= 32:
        counts = {0: zero} if zero else {}
        for digit, rows in positive.items():
            value = int(log_bin(digit)[0])  # an integer below 32 is the lower edge of its own bin
            counts[value] = counts.get(value, 0) + rows
        top = max(counts, default=0)
        return {"scale": "integer", "zero": 0, "bins": [(k, k + 1, counts.get(k, 0)) for k in range(top + 1)],
                "infinite": infinite, "per_binade": None}
    for shift in (2, 3, 4):  # 4, 2, then 1 bin per power of two
        merged: dict = {}
        for digit, rows in positive.items():
            merged[digit >> shift] = merged.get(digit >> shift, 0) + rows
        bins = [(*log_bin(coarse, shift), merged[coarse]) for coarse in sorted(merged)]
        if not bins or math.log2(bins[-1][1]) - math.log2(bins[0][0]) <= 80 / 2 ** (4 - shift):
            break
    return {"scale": "log", "zero": zero, "bins": bins, "infinite": infinite, "per_binade": 2 ** (4 - shift)}


def histogram_svg(model: dict, *, mae: float | None = None, median: float | None = None,
                  width: int = 900, height: int = 260) -> str:
    """The SVG of a :func:`histogram_model`, with dashed MAE and median markers."""
    bins, zero = model["bins"], model["zero"]
    if not bins and not zero:
        return "<p class='note'>no finite losses to draw</p>"
    left, right, top, bottom = 60, 20, 18, 44
    gutter = 56 if model["scale"] == "log" and zero else 0  # the zero bar, apart from the log axis
    plot_left, plot_w, plot_h = left + gutter, width - left - right - gutter, height - top - bottom
    peak = max([c for _, _, c in bins] + [zero]) * 1.15  # headroom for the marker labels
    if model["scale"] == "integer":  # bar k centred on k: [k - 0.5, k + 0.5)
        lo_edge, hi_edge = -0.5, bins[-1][1] - 0.5

        def x_of(value):
            return plot_left + (value - lo_edge) / (hi_edge - lo_edge) * plot_w
    else:
        lo_edge, hi_edge = math.log2(bins[0][0]), math.log2(bins[-1][1])
        span = (hi_edge - lo_edge) or 1.0

        def x_of(value):
            return plot_left + (math.log2(value) - lo_edge) / span * plot_w
    parts = [svg_open(width, height, "histogram of per-row L1 loss"), *y_grid(peak, left, top, width - left - right,
                                                                               plot_h)]
    if gutter:
        h = zero / peak * plot_h
        parts.append(f"<rect class='bar zero' x='{left + 8}' y='{top + plot_h - h:.1f}' width='{gutter - 20}' "
                     f"height='{h:.1f}' fill='{BAR}'><title>|error| = 0 (below 1e-309): {zero:,} rows</title></rect>"
                     f"<text x='{left + gutter / 2 - 6:.1f}' y='{top + plot_h + 16}' font-size='11' "
                     f"text-anchor='middle'>0</text>")
    for lo, hi, count in bins:
        x0, x1 = (x_of(lo - 0.5), x_of(hi - 0.5)) if model["scale"] == "integer" else (x_of(lo), x_of(hi))
        h = count / peak * plot_h
        label = f"{lo:g}" if model["scale"] == "integer" else f"[{short(lo)}, {short(hi)})"
        parts.append(f"<rect class='bar' x='{x0:.1f}' y='{top + plot_h - h:.1f}' width='{max(x1 - x0 - 1, 1):.1f}' "
                     f"height='{h:.1f}' fill='{BAR}'><title>{esc(label)}: {count:,} rows</title></rect>")
    parts += _ticks(model, x_of, lo_edge, hi_edge, top + plot_h + 16)
    for row, (value, colour, name) in enumerate(((mae, MAE_LINE, "MAE"), (median, MEDIAN_LINE, "median"))):
        if value is None or not math.isfinite(value):
            continue
        if model["scale"] == "log" and value < bins[0][0]:
            if not gutter:
                continue
            x = left + gutter / 2 - 6  # on the zero bar
        else:
            x = min(max(x_of(value), plot_left), plot_left + plot_w)
        anchor, dx = ("start", 4) if x < plot_left + plot_w - 70 else ("end", -4)
        parts.append(f"<line class='marker' x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{top + plot_h}' "
                     f"stroke='{colour}' stroke-width='2' stroke-dasharray='5,3'/>"
                     f"<text x='{x + dx:.1f}' y='{top + 11 + 13 * row}' font-size='12' fill='{colour}' "
                     f"text-anchor='{anchor}'>{name}</text>")
    axis = "|actual - prediction|" + (" (log scale)" if model["scale"] == "log" else "")
    parts.append(f"<text x='{plot_left + plot_w / 2:.0f}' y='{height - 6}' font-size='12' text-anchor='middle'>"
                 f"{axis}</text></svg>")
    return "".join(parts)


def _ticks(model: dict, x_of, lo_edge: float, hi_edge: float, y: float) -> list:
    if model["scale"] == "integer":
        step = max(1, math.ceil((hi_edge - lo_edge) / 12))
        values = [float(v) for v in range(0, math.floor(hi_edge) + 1, step)]
    elif hi_edge - lo_edge >= 2 * math.log2(10):  # two decades or more: powers of ten, a nice stride apart
        first, last = math.ceil(lo_edge / math.log2(10)), math.floor(hi_edge / math.log2(10))
        stride = next(s for s in (1, 2, 3, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000) if (last - first) / s <= 10)
        first = math.ceil(first / stride) * stride
        values = [10.0 ** e for e in range(first, last + 1, stride)]
    else:
        values = [2.0 ** e for e in range(math.ceil(lo_edge), math.floor(hi_edge) + 1)]
    out = []
    first = x_of(lo_edge if model["scale"] == "integer" else 2.0 ** lo_edge)
    last = x_of(hi_edge if model["scale"] == "integer" else 2.0 ** hi_edge)
    for value in values:
        x = x_of(value)
        if x > last + 0.5 or x < first - 0.5:
            continue
        out.append(f"<text x='{x:.1f}' y='{y:.1f}' font-size='11' text-anchor='middle'>"
                   f"{esc(_tick_label(value))}</text>")
    return out


def histogram_note(model: dict) -> str:
    """The sentence under the chart saying what its bins are."""
    if model["scale"] == "integer":
        text = "Exact row counts of |actual - prediction|, one bar per integer (every loss is an integer)."
    else:
        text = (f"Exact row counts of |actual - prediction| in log-spaced bins ({model['per_binade']} per power of "
                f"two)"
                + (f"; the bar at 0 counts the {model['zero']:,} rows with no error" if model["zero"] else "") + ".")
    if model["infinite"]:
        text += f" {model['infinite']:,} rows with an infinite loss are not drawn."
    return text + " Dashed lines: MAE and median."


def _tick_label(value: float) -> str:
    """A tick's text: ``1e-250`` for a far power of ten, ``short()`` otherwise.

    >>> _tick_label(1e-250), _tick_label(1000.0), _tick_label(0.5)
    ('1e-250', '1,000', '0.5')
    """
    exponent = math.log10(value) if value > 0 else 0.0
    if value > 0 and exponent.is_integer() and abs(exponent) >= 5:
        return f"1e{int(exponent)}"
    return short(value)
