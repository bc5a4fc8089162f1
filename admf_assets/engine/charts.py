"""Small hand-written inline SVG charts for the HTML report (no matplotlib/plotly, no JS).

Every function returns a self-contained ``<svg>`` string. Output is deterministic (same
input -> same bytes): coordinates are rounded to 0.1 px, there are no random ids and no
timestamps. All text that comes from data (titles, labels, legend entries) is escaped, so
the SVG can be inserted into an HTML page as trusted markup.

Long series are thinned per pixel column (keeping each column's minimum and maximum), so a
chart stays a few tens of KB whatever the number of bars.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

__all__ = ["line_chart_svg", "area_chart_svg", "heatmap_svg", "bar_chart_svg", "sparkline", "PALETTE"]

# Okabe-Ito colour-blind-safe palette
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
_AXIS = "#444444"
_GRID = "#e3e3e3"
_FONT = 'font-family="Helvetica,Arial,sans-serif"'


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _f(v: float) -> str:
    """Coordinate formatting: 0.1 px, no '-0.0'."""
    s = f"{v:.1f}"
    return "0.0" if s == "-0.0" else s


def _fmt(fmt: str, v) -> str:
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def _svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {int(width)} {int(height)}" '
        f'width="{int(width)}" height="{int(height)}" role="img" {_FONT} font-size="11" class="chart">',
        f"<title>{_esc(title)}</title>",
        f'<rect x="0" y="0" width="{int(width)}" height="{int(height)}" fill="#ffffff"/>',
        f'<text x="{_f(width / 2)}" y="16" text-anchor="middle" font-size="13" font-weight="bold" '
        f'fill="#222222">{_esc(title)}</text>',
    ]


def _no_data(title: str, width: int, height: int) -> str:
    parts = _svg_open(width, height, title)
    parts.append(
        f'<text x="{_f(width / 2)}" y="{_f(height / 2)}" text-anchor="middle" fill="#888888">no data</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------
# scales and ticks
# ---------------------------------------------------------------------------------------
def _nice_step(span: float, n: int) -> float:
    raw = span / max(n, 1)
    if raw <= 0 or not np.isfinite(raw):
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _nice_ticks(lo: float, hi: float, n: int = 5) -> tuple[float, float, list[float]]:
    """Extended range and 'nice' tick values (1/2/2.5/5 x 10^k) covering [lo, hi]."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo, n)
    lo2 = math.floor(lo / step + 1e-9) * step
    hi2 = math.ceil(hi / step - 1e-9) * step
    k = int(round((hi2 - lo2) / step))
    ticks = [lo2 + i * step for i in range(k + 1)]
    ticks = [0.0 if abs(t) < step * 1e-9 else t for t in ticks]
    return lo2, hi2, ticks


_DATE_STEPS = [  # (base pandas freq, keep-filter, nominal seconds, label format)
    ("min", None, 60, "%H:%M"),
    ("15min", None, 900, "%H:%M"),
    ("h", None, 3600, "%m-%d %H:%M"),
    ("6h", None, 21600, "%m-%d %H:%M"),
    ("D", None, 86400, "%Y-%m-%d"),
    ("W-MON", None, 7 * 86400, "%Y-%m-%d"),
    ("MS", None, 30.4 * 86400, "%Y-%m"),
    ("QS", None, 91.3 * 86400, "%Y-%m"),
    ("QS", lambda t: t.month in (1, 7), 182.6 * 86400, "%Y-%m"),
    ("YS", None, 365.25 * 86400, "%Y"),
    ("YS", lambda t: t.year % 2 == 0, 2 * 365.25 * 86400, "%Y"),
    ("YS", lambda t: t.year % 5 == 0, 5 * 365.25 * 86400, "%Y"),
    ("YS", lambda t: t.year % 10 == 0, 10 * 365.25 * 86400, "%Y"),
    ("YS", lambda t: t.year % 25 == 0, 25 * 365.25 * 86400, "%Y"),
]


def _date_ticks(t0: pd.Timestamp, t1: pd.Timestamp, max_ticks: int = 7) -> list[tuple[pd.Timestamp, str]]:
    """Calendar-aligned ticks (month/quarter/year starts, ...) inside [t0, t1]."""
    span = (t1 - t0).total_seconds()
    if span <= 0:
        return [(t0, t0.strftime("%Y-%m-%d"))]
    for freq, keep, secs, fmt in _DATE_STEPS:
        if span / secs <= max_ticks:
            break
    ticks = [t for t in pd.date_range(t0.ceil("min"), t1, freq=freq) if keep is None or keep(t)]
    if not ticks:
        return [(t0, t0.strftime(fmt))]
    return [(t, t.strftime(fmt)) for t in ticks]


class _XAxis:
    """Maps index labels to numbers: datetimes -> ns, numbers -> themselves, else order."""

    def __init__(self, indexes: list[pd.Index]):
        idx = [self._norm(i) for i in indexes]
        self.kind = "datetime" if all(isinstance(i, pd.DatetimeIndex) for i in idx) else None
        if self.kind is None and all(pd.api.types.is_numeric_dtype(i.dtype) for i in idx):
            self.kind = "numeric"
        if self.kind is None:
            self.kind = "category"
            union = pd.Index([])
            for i in idx:
                union = union.append(pd.Index(i.astype(str)))
            self.categories = pd.Index(pd.unique(union))

    @staticmethod
    def _norm(i: pd.Index) -> pd.Index:
        if isinstance(i, pd.DatetimeIndex) and i.tz is not None:
            return i.tz_localize(None)  # wall-clock time of the series' own zone
        return i

    def values(self, index: pd.Index) -> np.ndarray:
        index = self._norm(index)
        if self.kind == "datetime":
            return index.asi8.astype(np.float64)
        if self.kind == "numeric":
            return np.asarray(index, dtype=np.float64)
        return self.categories.get_indexer(pd.Index(index.astype(str))).astype(np.float64)

    def ticks(self, lo: float, hi: float) -> list[tuple[float, str]]:
        if self.kind == "datetime":
            return [(float(t.value), lab) for t, lab in _date_ticks(pd.Timestamp(int(lo)), pd.Timestamp(int(hi)))]
        if self.kind == "numeric":
            _, _, ts = _nice_ticks(lo, hi, 6)
            return [(t, f"{t:g}") for t in ts if lo - 1e-9 <= t <= hi + 1e-9]
        n = len(self.categories)
        step = max(1, math.ceil(n / 8))
        return [(float(i), str(self.categories[i])[:16]) for i in range(0, n, step)]


def _thin(x: np.ndarray, y: np.ndarray, n_buckets: int) -> np.ndarray:
    """Positions to draw: per x-bucket the min and max, the bucket ends, and NaN borders."""
    n = x.size
    if n <= 2 * n_buckets:
        return np.arange(n)
    finite = np.isfinite(y)
    lo, hi = np.nanmin(x), np.nanmax(x)
    width = (hi - lo) or 1.0
    bucket = np.minimum(((x - lo) / width * n_buckets).astype(np.int64), n_buckets - 1)
    pos = np.arange(n)
    keep = [pos[[0, -1]]]
    if finite.any():
        s = pd.Series(y[finite], index=pos[finite])
        g = s.groupby(bucket[finite], sort=False)
        keep += [g.idxmin().to_numpy(), g.idxmax().to_numpy()]
        fp = pd.Series(pos[finite]).groupby(bucket[finite], sort=False)
        keep += [fp.first().to_numpy(), fp.last().to_numpy()]
    if not finite.all():
        edge = finite != np.concatenate(([finite[0]], finite[:-1]))
        edge |= finite != np.concatenate((finite[1:], [finite[-1]]))
        keep.append(pos[edge])
    return np.unique(np.concatenate(keep))


def _path(px: np.ndarray, py: np.ndarray) -> str:
    """SVG path data; NaN y values break the line."""
    out = []
    pen = False
    for xv, yv in zip(px, py):
        if not np.isfinite(yv):
            pen = False
            continue
        out.append(("L" if pen else "M") + _f(xv) + "," + _f(yv))
        pen = True
    return "".join(out)


def _frame_axes(
    parts, left, top, pw, ph, y_lo, y_hi, yticks, y_format, x_ticks, x_lo, x_hi, rotate_x=False
) -> None:
    def sy(v):
        return top + ph - (v - y_lo) / (y_hi - y_lo) * ph

    for t in yticks:
        yy = sy(t)
        parts.append(f'<line x1="{_f(left)}" y1="{_f(yy)}" x2="{_f(left + pw)}" y2="{_f(yy)}" stroke="{_GRID}"/>')
        parts.append(
            f'<text x="{_f(left - 6)}" y="{_f(yy + 4)}" text-anchor="end" fill="{_AXIS}">{_esc(_fmt(y_format, t))}</text>'
        )
    if x_ticks is not None:
        span = (x_hi - x_lo) or 1.0
        for xv, lab in x_ticks:
            xx = left + (xv - x_lo) / span * pw
            if xx < left - 0.5 or xx > left + pw + 0.5:
                continue
            parts.append(f'<line x1="{_f(xx)}" y1="{_f(top + ph)}" x2="{_f(xx)}" y2="{_f(top + ph + 4)}" stroke="{_AXIS}"/>')
            if rotate_x:
                parts.append(
                    f'<text x="{_f(xx)}" y="{_f(top + ph + 14)}" text-anchor="end" fill="{_AXIS}" '
                    f'transform="rotate(-35 {_f(xx)} {_f(top + ph + 14)})">{_esc(lab)}</text>'
                )
            else:
                parts.append(f'<text x="{_f(xx)}" y="{_f(top + ph + 16)}" text-anchor="middle" fill="{_AXIS}">{_esc(lab)}</text>')
    parts.append(
        f'<rect x="{_f(left)}" y="{_f(top)}" width="{_f(pw)}" height="{_f(ph)}" fill="none" stroke="{_AXIS}" stroke-width="0.8"/>'
    )


def _legend(parts, names: list[str], colors: list[str], width: int, y: float) -> None:
    # right-aligned single row; long names truncated
    items = [(n if len(n) <= 28 else n[:27] + "\u2026", c) for n, c in zip(names, colors)]
    widths = [22 + 6.5 * len(n) + 12 for n, _ in items]
    x = max(8.0, width - 12 - sum(widths))
    for (n, c), w in zip(items, widths):
        parts.append(f'<rect x="{_f(x)}" y="{_f(y - 5)}" width="14" height="4" fill="{c}"/>')
        parts.append(f'<text x="{_f(x + 18)}" y="{_f(y)}" fill="#222222">{_esc(n)}</text>')
        x += w


def _as_dict(series) -> dict[str, pd.Series]:
    if isinstance(series, pd.Series):
        return {str(series.name) if series.name is not None else "series": series}
    if isinstance(series, pd.DataFrame):
        return {str(c): series[c] for c in series.columns}
    return {str(k): v for k, v in series.items()}


# ---------------------------------------------------------------------------------------
# charts
# ---------------------------------------------------------------------------------------
def line_chart_svg(
    series: dict[str, pd.Series] | pd.Series,
    title: str,
    width: int = 720,
    height: int = 260,
    y_format: str = "{:.2f}",
    colors: list[str] | None = None,
    baseline: float | None = None,
) -> str:
    """Line chart: one path per series (NaN breaks a line), y grid with nice ticks, x ticks
    with date labels for a DatetimeIndex, legend when there are several series.
    ``baseline`` draws a dashed horizontal reference line (e.g. 1.0 for equity)."""
    data = {k: v.astype(float) for k, v in _as_dict(series).items() if v is not None and len(v)}
    if not data or all(v.notna().sum() == 0 for v in data.values()):
        return _no_data(title, width, height)
    colors = colors or PALETTE
    xa = _XAxis([v.index for v in data.values()])
    xs = {k: xa.values(v.index) for k, v in data.items()}
    x_lo = min(float(np.nanmin(x)) for x in xs.values())
    x_hi = max(float(np.nanmax(x)) for x in xs.values())
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1.0, x_hi + 1.0
    yv = np.concatenate([v.to_numpy()[np.isfinite(v.to_numpy())] for v in data.values()])
    y_min, y_max = float(yv.min()), float(yv.max())
    if baseline is not None:
        y_min, y_max = min(y_min, baseline), max(y_max, baseline)
    y_lo, y_hi, yticks = _nice_ticks(y_min, y_max, 5)

    legend = len(data) > 1
    left, right = 64, 16
    top = 44 if legend else 28
    bottom = 28
    pw, ph = width - left - right, height - top - bottom
    parts = _svg_open(width, height, title)
    _frame_axes(parts, left, top, pw, ph, y_lo, y_hi, yticks, y_format, xa.ticks(x_lo, x_hi), x_lo, x_hi)
    if baseline is not None:
        yy = top + ph - (baseline - y_lo) / (y_hi - y_lo) * ph
        parts.append(
            f'<line x1="{_f(left)}" y1="{_f(yy)}" x2="{_f(left + pw)}" y2="{_f(yy)}" stroke="#999999" stroke-dasharray="4 3"/>'
        )
    for i, (name, s) in enumerate(data.items()):
        x, y = xs[name], s.to_numpy()
        order = np.argsort(x, kind="mergesort")
        x, y = x[order], y[order]
        keep = _thin(x, y, int(pw))
        px = left + (x[keep] - x_lo) / (x_hi - x_lo) * pw
        py = top + ph - (y[keep] - y_lo) / (y_hi - y_lo) * ph
        d = _path(px, py)
        if d:
            parts.append(
                f'<path d="{d}" fill="none" stroke="{colors[i % len(colors)]}" stroke-width="1.5" '
                f'stroke-linejoin="round"><title>{_esc(name)}</title></path>'
            )
    if legend:
        _legend(parts, list(data), [colors[i % len(colors)] for i in range(len(data))], width, 34)
    parts.append("</svg>")
    return "\n".join(parts)


def area_chart_svg(
    series: pd.Series,
    title: str,
    width: int = 720,
    height: int = 200,
    y_format: str = "{:.0%}",
    color: str = "#C0392B",
) -> str:
    """Filled area between 0 and the series (meant for underwater/drawdown curves)."""
    s = series.astype(float) if series is not None else pd.Series(dtype=float)
    if len(s) == 0 or s.notna().sum() == 0:
        return _no_data(title, width, height)
    xa = _XAxis([s.index])
    x = xa.values(s.index)
    y = s.to_numpy()
    order = np.argsort(x, kind="mergesort")
    x, y = x[order], y[order]
    x_lo, x_hi = float(np.nanmin(x)), float(np.nanmax(x))
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1.0, x_hi + 1.0
    fy = y[np.isfinite(y)]
    y_lo, y_hi, yticks = _nice_ticks(min(0.0, float(fy.min())), max(0.0, float(fy.max())), 4)
    left, right, top, bottom = 64, 16, 28, 28
    pw, ph = width - left - right, height - top - bottom
    parts = _svg_open(width, height, title)
    _frame_axes(parts, left, top, pw, ph, y_lo, y_hi, yticks, y_format, xa.ticks(x_lo, x_hi), x_lo, x_hi)
    keep = _thin(x, y, int(pw))
    px = left + (x[keep] - x_lo) / (x_hi - x_lo) * pw
    yk = y[keep]
    py = top + ph - (yk - y_lo) / (y_hi - y_lo) * ph
    base = top + ph - (0.0 - y_lo) / (y_hi - y_lo) * ph
    # one closed polygon per finite run
    finite = np.isfinite(yk)
    runs = np.flatnonzero(np.diff(np.concatenate(([0], finite.astype(np.int8), [0]))))
    for a, b in zip(runs[0::2], runs[1::2]):
        seg = "".join("L" + _f(px[i]) + "," + _f(py[i]) for i in range(a, b))
        parts.append(
            f'<path d="M{_f(px[a])},{_f(base)}{seg}L{_f(px[b - 1])},{_f(base)}Z" fill="{color}" '
            f'fill-opacity="0.35" stroke="none"/>'
        )
    d = _path(px, py)
    if d:
        parts.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.2"/>')
    parts.append(f'<line x1="{_f(left)}" y1="{_f(base)}" x2="{_f(left + pw)}" y2="{_f(base)}" stroke="{_AXIS}" stroke-width="0.8"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def _lerp_color(c0: tuple[int, int, int], c1: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(round(a + (b - a) * t)) for a, b in zip(c0, c1))


_NEG = (178, 24, 43)  # red
_MID = (247, 247, 247)
_POS = (33, 102, 172)  # blue


def _diverging(t: float) -> str:
    """t in [-1, 1] -> colour (red .. white .. blue)."""
    t = max(-1.0, min(1.0, t))
    rgb = _lerp_color(_MID, _POS, t) if t >= 0 else _lerp_color(_MID, _NEG, -t)
    return "#%02x%02x%02x" % rgb


def heatmap_svg(
    table: pd.DataFrame,
    title: str,
    fmt: str = "{:.2f}",
    center: float = 0.0,
    vmin: float | None = None,
    vmax: float | None = None,
    max_width: int = 720,
) -> str:
    """Heatmap of a 2-D table (rows = index, columns = columns), diverging colours around
    ``center`` (blue above, red below), each cell labelled with ``fmt``; NaN cells grey.
    Axis titles come from ``table.index.name`` and ``table.columns.name``."""
    if table is None or table.size == 0:
        return _no_data(title, max_width, 120)
    vals = table.to_numpy(dtype=float)
    nr, nc = vals.shape
    row_labels = [str(v)[:24] for v in table.index]
    col_labels = [str(v)[:12] for v in table.columns]
    left = int(max(40, 7 * max(len(s) for s in row_labels) + 24))
    if table.index.name is not None:
        left += 18
    cell_w = max(28.0, min(84.0, (max_width - left - 16) / nc))
    cell_h = 24.0 if nr <= 30 else max(10.0, 720.0 / nr)
    top = 54 if table.columns.name is not None else 34
    width = int(left + cell_w * nc + 16)
    height = int(top + cell_h * nr + 30)
    fin = vals[np.isfinite(vals)]
    lo = float(fin.min()) if vmin is None and fin.size else (vmin if vmin is not None else center - 1)
    hi = float(fin.max()) if vmax is None and fin.size else (vmax if vmax is not None else center + 1)
    scale = max(abs(hi - center), abs(lo - center)) or 1.0
    parts = _svg_open(width, height, title)
    if table.columns.name is not None:
        parts.append(
            f'<text x="{_f(left + cell_w * nc / 2)}" y="34" text-anchor="middle" fill="{_AXIS}" font-style="italic">'
            f"{_esc(table.columns.name)}</text>"
        )
    if table.index.name is not None:
        cy = top + cell_h * nr / 2
        parts.append(
            f'<text x="12" y="{_f(cy)}" text-anchor="middle" fill="{_AXIS}" font-style="italic" '
            f'transform="rotate(-90 12 {_f(cy)})">{_esc(table.index.name)}</text>'
        )
    show_text = cell_h >= 14 and cell_w >= 28
    for j, lab in enumerate(col_labels):
        parts.append(
            f'<text x="{_f(left + (j + 0.5) * cell_w)}" y="{_f(top - 5)}" text-anchor="middle" fill="{_AXIS}">{_esc(lab)}</text>'
        )
    for i, lab in enumerate(row_labels):
        y0 = top + i * cell_h
        parts.append(
            f'<text x="{_f(left - 6)}" y="{_f(y0 + cell_h / 2 + 4)}" text-anchor="end" fill="{_AXIS}">{_esc(lab)}</text>'
        )
        for j in range(nc):
            v = vals[i, j]
            x0 = left + j * cell_w
            if np.isfinite(v):
                t = (v - center) / scale
                fill = _diverging(t)
                txt = _fmt(fmt, v)
                ink = "#ffffff" if abs(t) > 0.6 else "#222222"
            else:
                fill, txt, ink = "#d9d9d9", "", "#222222"
            parts.append(
                f'<rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(cell_w)}" height="{_f(cell_h)}" fill="{fill}" '
                f'stroke="#ffffff" stroke-width="1"><title>{_esc(table.index[i])}, {_esc(table.columns[j])}: '
                f"{_esc(txt or 'n/a')}</title></rect>"
            )
            if show_text and txt:
                parts.append(
                    f'<text x="{_f(x0 + cell_w / 2)}" y="{_f(y0 + cell_h / 2 + 4)}" text-anchor="middle" '
                    f'fill="{ink}" font-size="10">{_esc(txt)}</text>'
                )
    # colour key
    ky = top + cell_h * nr + 12
    parts.append(
        f'<text x="{_f(left)}" y="{_f(ky + 8)}" fill="{_AXIS}" font-size="10">'
        f"{_esc(_fmt(fmt, center - scale))}</text>"
    )
    for k in range(21):
        t = -1.0 + k / 10.0
        parts.append(
            f'<rect x="{_f(left + 44 + k * 6)}" y="{_f(ky)}" width="6" height="10" fill="{_diverging(t)}"/>'
        )
    parts.append(
        f'<text x="{_f(left + 44 + 21 * 6 + 6)}" y="{_f(ky + 8)}" fill="{_AXIS}" font-size="10">'
        f"{_esc(_fmt(fmt, center + scale))}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart_svg(
    values: pd.Series,
    title: str,
    width: int = 720,
    height: int = 260,
    y_format: str = "{:.2f}",
    color: str = "#0072B2",
    negative_color: str = "#D55E00",
    show_values: bool | None = None,
) -> str:
    """Vertical bar chart of a Series (one bar per index label, zero baseline; negative
    bars in ``negative_color``). Labels rotate when there are many bars."""
    if values is None or len(values) == 0:
        return _no_data(title, width, height)
    v = pd.to_numeric(values, errors="coerce").astype(float)
    arr = v.to_numpy()
    fin = arr[np.isfinite(arr)]
    if fin.size == 0:
        return _no_data(title, width, height)
    n = arr.size
    labels = [str(x) for x in v.index]
    rotate = n > 10 or max(len(s) for s in labels) * 6.5 > (width - 80) / n
    labels = [s if len(s) <= 18 else s[:17] + "\u2026" for s in labels]
    if show_values is None:
        show_values = n <= 20
    y_lo, y_hi, yticks = _nice_ticks(min(0.0, float(fin.min())), max(0.0, float(fin.max())), 5)
    left, right, top = 64, 16, 28
    bottom = int(16 + (6 * max(len(s) for s in labels) if rotate else 12))
    pw, ph = width - left - right, height - top - bottom
    parts = _svg_open(width, height, title)
    slot = pw / n
    x_ticks = [(i + 0.5, lab) for i, lab in enumerate(labels)]
    _frame_axes(parts, left, top, pw, ph, y_lo, y_hi, yticks, y_format, x_ticks, 0.0, float(n), rotate_x=rotate)

    def sy(val):
        return top + ph - (val - y_lo) / (y_hi - y_lo) * ph

    base = sy(0.0)
    bw = max(1.0, slot * 0.7)
    for i, val in enumerate(arr):
        if not np.isfinite(val):
            continue
        x0 = left + i * slot + (slot - bw) / 2
        y1 = sy(val)
        top_y, h = min(y1, base), abs(base - y1)
        c = color if val >= 0 else negative_color
        parts.append(
            f'<rect x="{_f(x0)}" y="{_f(top_y)}" width="{_f(bw)}" height="{_f(h)}" fill="{c}">'
            f"<title>{_esc(v.index[i])}: {_esc(_fmt(y_format, val))}</title></rect>"
        )
        if show_values:
            ty = y1 - 4 if val >= 0 else y1 + 12
            parts.append(
                f'<text x="{_f(x0 + bw / 2)}" y="{_f(ty)}" text-anchor="middle" fill="#222222" font-size="10">'
                f"{_esc(_fmt(y_format, val))}</text>"
            )
    parts.append(f'<line x1="{_f(left)}" y1="{_f(base)}" x2="{_f(left + pw)}" y2="{_f(base)}" stroke="{_AXIS}"/>')
    parts.append("</svg>")
    return "\n".join(parts)


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values, width: int = 60) -> str:
    """A one-line text picture of a series (for places that show text only, such as
    Dagster metadata): the series is split into ``width`` buckets, each drawn by the level
    of its last value."""
    v = np.asarray(pd.Series(values).dropna(), dtype=float)
    if v.size == 0:
        return ""
    idx = np.linspace(0, v.size - 1, min(width, v.size)).round().astype(int)
    pts = v[idx]
    lo, hi = pts.min(), pts.max()
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return _SPARK[0] * len(pts)
    levels = np.minimum(((pts - lo) / (hi - lo) * len(_SPARK)).astype(int), len(_SPARK) - 1)
    return "".join(_SPARK[i] for i in levels)
