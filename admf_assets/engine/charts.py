"""Report charts drawn with matplotlib, as inline SVG for the HTML report and PNG for the
Dagster UI's metadata.

Every chart function returns a :class:`Chart`; ``chart.svg()`` is the self-contained
``<svg>`` markup the report inserts (the only unescaped field of a report section) and
``chart.png()`` the PNG bytes a kind puts in its metadata (``kind.Image(chart)``).  The
``*_svg`` functions (``line_chart_svg``, ``heatmap_svg``, ...) are shortcuts for
``chart(...).svg()``.

>>> import pandas as pd
>>> eq = pd.Series([1.0, 1.02, 0.99, 1.05], index=pd.bdate_range("2024-01-01", periods=4))
>>> line_chart_svg({"strategy": eq}, "Equity", baseline=1.0).startswith("<svg")
True

Rules every chart follows:

* matplotlib's Agg canvas is attached to each ``Figure`` directly (``pyplot`` is never
  imported: no display, no global figure registry, nothing to close);
* the same input renders the same bytes: fixed font (DejaVu Sans, shipped with
  matplotlib), a fixed SVG id salt, no date or creator metadata, no mathtext (a ``$`` in a
  strategy name is text);
* tick labels never overlap: after layout the labels are measured, then rotated
  (45, then 90 degrees), shrunk, and finally thinned to every k-th label until they fit;
* long series are thinned per pixel column (each column keeps its first, last, minimum
  and maximum point), so a chart stays small whatever the number of bars;
* text from data is escaped by matplotlib's SVG writer; the chart title is also the SVG's
  ``<title>`` (escaped here).
"""

from __future__ import annotations

import contextlib
import html
import io
import math
import re
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = [
    "Chart",
    "PALETTE",
    "line_chart",
    "area_chart",
    "equity_drawdown",
    "heatmap",
    "bar_chart",
    "regime_price",
    "histogram",
    "fold_timeline",
    "line_chart_svg",
    "area_chart_svg",
    "equity_drawdown_svg",
    "heatmap_svg",
    "bar_chart_svg",
    "regime_price_svg",
    "histogram_svg",
    "fold_timeline_svg",
    "sparkline",
]

# Okabe-Ito colour-blind-safe palette
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
_INK = "#222222"
_AXIS = "#444444"
_GRID = "#e3e3e3"
DPI = 100  #: pixels per inch of the figures (``width``/``height`` arguments are pixels)
PNG_DPI = 80  #: the metadata images: 720 px wide charts become 576 px PNGs
_FONT_STACK = "'DejaVu Sans', Verdana, 'Helvetica Neue', Arial, sans-serif"
_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 9.0,
    "axes.edgecolor": _AXIS,
    "axes.labelcolor": _AXIS,
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": _GRID,
    "grid.linewidth": 0.8,
    "xtick.color": _AXIS,
    "ytick.color": _AXIS,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "text.color": _INK,
    "text.parse_math": False,  # "$SPY" is a name, not TeX
    "svg.fonttype": "none",  # text stays text: small, searchable, escaped
    "svg.hashsalt": "admf-report",  # deterministic clip-path ids
    "svg.image_inline": True,
    "path.simplify": True,
    "figure.facecolor": "#ffffff",
    "savefig.facecolor": "#ffffff",
}


def _mpl():
    """matplotlib, imported on first use (``admf validate`` never pays for it)."""
    import matplotlib

    return matplotlib


@contextlib.contextmanager
def _style():
    with _mpl().rc_context(_RC):
        yield


def _figure(width: int, height: int, *, layout: str | None = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


# ---------------------------------------------------------------------------------------
# the rendered chart
# ---------------------------------------------------------------------------------------
_GROUP_ID = re.compile(r'<(g|image) id="[^"]*"')  # group ids are never referenced
_PATH_D = re.compile(r' d="([^"]*)"')
_FLOAT = re.compile(r"(-?\d+\.\d\d)\d+")


def _compact_path(m: re.Match) -> str:
    d = _FLOAT.sub(r"\1", m.group(1))
    return ' d="' + " ".join(d.split()) + '"'


class Chart:
    """A matplotlib figure with its title; renders to inline SVG (``svg()``) or PNG (``png()``).

    The figure is built under the chart style; ``figure`` gives it to callers that want to
    measure or save it themselves."""

    def __init__(self, figure, title: str):
        self.figure = figure
        self.title = str(title)
        self._svg: str | None = None
        self._png: dict[int, bytes] = {}
        engine = figure.get_layout_engine()
        if engine is not None and hasattr(engine, "execute"):
            if not getattr(figure, "_admf_laid_out", False):  # declutter's last draw laid it out
                with _style():  # lay out once, then keep the positions: each render is one plain draw
                    engine.execute(figure)
            figure.set_layout_engine(None)

    def svg(self) -> str:
        """Inline SVG markup (no XML prolog, no metadata block, ``href`` instead of
        ``xlink:href``, coordinates to 0.01 pt, group ids dropped), the title as ``<title>``."""
        if self._svg is None:
            buf = io.BytesIO()
            with _style():
                self.figure.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None,
                                                                  "Type": None})
            s = buf.getvalue().decode("utf-8")
            s = s[s.index("<svg"):]
            s = re.sub(r"\s*<metadata>.*?</metadata>", "", s, flags=re.S)
            s = s.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "").replace("xlink:href=", "href=")
            s = _GROUP_ID.sub(r"<\1", s)
            s = _PATH_D.sub(_compact_path, s)
            s = s.replace("font-family: 'DejaVu Sans'", f"font-family: {_FONT_STACK}")
            s = re.sub(r"\n\s+", "\n", s)
            open_end = s.index(">") + 1
            s = (s[:open_end - 1].rstrip("/") + ' role="img" class="chart">' + f"\n<title>{html.escape(self.title)}</title>"
                 + s[open_end:])
            self._svg = s.strip() + "\n"
        return self._svg

    def png(self, dpi: int = PNG_DPI) -> bytes:
        """PNG bytes (deterministic: no software/time metadata)."""
        if dpi not in self._png:
            buf = io.BytesIO()
            with _style():
                self.figure.savefig(buf, format="png", dpi=dpi, metadata={"Software": None},
                                    pil_kwargs={"optimize": True})
            self._png[dpi] = buf.getvalue()
        return self._png[dpi]

    def __str__(self) -> str:
        return self.svg()


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _fmt(fmt: str, v) -> str:
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def _formatter(fmt: str):
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: _fmt(fmt, v))


def _no_data(title: str, width: int, height: int) -> Chart:
    with _style():
        fig = _figure(width, height)
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_title(title, loc="left")
        ax.text(0.5, 0.5, "no data", ha="center", va="center", color="#888888", transform=ax.transAxes)
    return Chart(fig, title)


def _as_dict(series) -> dict[str, pd.Series]:
    if isinstance(series, pd.Series):
        return {str(series.name) if series.name is not None else "series": series}
    if isinstance(series, pd.DataFrame):
        return {str(c): series[c] for c in series.columns}
    return {str(k): v for k, v in (series or {}).items()}


def _naive(index: pd.Index) -> pd.Index:
    if isinstance(index, pd.DatetimeIndex) and index.tz is not None:
        return index.tz_localize(None)  # wall-clock time of the series' own zone
    return index


class _X:
    """The x axis of several series: dates, numbers, or categories (by first appearance)."""

    def __init__(self, indexes: list[pd.Index]):
        idx = [_naive(i) for i in indexes]
        if idx and all(isinstance(i, pd.DatetimeIndex) for i in idx):
            self.kind = "datetime"
        elif idx and all(pd.api.types.is_numeric_dtype(i.dtype) for i in idx):
            self.kind = "numeric"
        else:
            self.kind = "category"
            union = pd.Index([])
            for i in idx:
                union = union.append(pd.Index(i.astype(str)))
            self.categories = pd.Index(pd.unique(union))

    def values(self, index: pd.Index) -> np.ndarray:
        index = _naive(index)
        if self.kind == "datetime":
            from matplotlib import dates as mdates

            return mdates.date2num(np.asarray(index.values, dtype="datetime64[ns]"))
        if self.kind == "numeric":
            return np.asarray(index, dtype=np.float64)
        return self.categories.get_indexer(pd.Index(index.astype(str))).astype(np.float64)

    def setup(self, ax) -> None:
        if self.kind == "datetime":
            from matplotlib import dates as mdates

            locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
        elif self.kind == "category":
            from matplotlib.ticker import FixedLocator

            n = len(self.categories)
            step = max(1, math.ceil(n / 10))
            ax.xaxis.set_major_locator(FixedLocator(list(range(0, n, step))))
            ax.set_xticklabels([str(self.categories[i])[:18] for i in range(0, n, step)])


def _thin(x: np.ndarray, y: np.ndarray, n_buckets: int) -> np.ndarray:
    """Positions to draw: per x-bucket the first, last, minimum and maximum point, and the
    borders of NaN gaps (so a gap stays a gap and every extreme survives)."""
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


def _buckets(width: int) -> int:
    """Thinning resolution: one bucket per 2 pixels of chart width."""
    return max(50, int(width) // 2)


def _xy(xa: _X, s: pd.Series, n_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = xa.values(s.index), s.to_numpy(dtype=float)
    order = np.argsort(x, kind="mergesort")
    x, y = x[order], y[order]
    keep = _thin(x, y, n_buckets)
    return x[keep], y[keep]


def _overlaps(boxes) -> bool:
    boxes = sorted(boxes, key=lambda b: (b.x0, b.y0))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if b.x0 >= a.x1:
                break
            if a.overlaps(b):
                return True
    return False


def _shown(axis) -> list:
    return [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]


def _axis_overlaps(fig, axis) -> bool:
    """Whether visible tick labels of ``axis`` overlap.  Horizontal labels: their boxes
    (4 % wider than the text) intersect.  Rotated x labels (parallel slanted lines of text):
    the horizontal distance between neighbours is below the text height over sin(angle)."""
    renderer = fig.canvas.get_renderer()
    labels = _shown(axis)
    if len(labels) < 2:
        return False
    angle = labels[0].get_rotation() % 180
    if axis.axis_name == "x" and angle:
        anchors = sorted(axis.axes.transData.transform((t.get_position()[0], 0))[0] for t in labels)
        height = max(t.get_fontsize() for t in labels) * fig.dpi / 72.0 * 1.25  # line height in pixels
        return bool(np.min(np.diff(anchors)) < height / math.sin(math.radians(angle)))
    return _overlaps([t.get_window_extent(renderer).expanded(1.04, 1.0) for t in labels])


def label_overlaps(fig) -> list[str]:
    """The axes of ``fig`` whose tick labels overlap (``"axes 0: x"``); empty when all fit."""
    fig.draw_without_rendering()
    out = []
    for i, ax in enumerate(fig.axes):
        for axis in (ax.xaxis, ax.yaxis):
            if _axis_overlaps(fig, axis):
                out.append(f"axes {i}: {axis.axis_name}")
    return out


def _fixed(axis) -> bool:
    """Labels placed by the chart (categories, heatmap rows): these can collide.  Matplotlib's
    automatic numeric and date locators size their tick count to the axis length and the
    font (``Axis.get_tick_space``), so they are not measured."""
    from matplotlib.ticker import FixedLocator

    return isinstance(axis.get_major_locator(), FixedLocator)


def _fit(fig, axis) -> None:
    """One axis' labels: rotate (x), shrink, thin, each step only while they still overlap and
    never back to an earlier step.  Draws without the layout engine (the caller lays out)."""
    labels = [t for t in axis.get_ticklabels() if t.get_text()]
    if not labels:
        return
    steps = ([{"rotation": 45}, {"rotation": 90}] if axis.axis_name == "x" else []) + [{"size": 7.5}, {"size": 6.5}]
    for step in steps:
        if "rotation" in step and labels[0].get_rotation() >= step["rotation"]:
            continue
        if "size" in step and labels[0].get_fontsize() <= step["size"]:
            continue
        if not _axis_overlaps(fig, axis):
            return
        for t in axis.get_ticklabels():
            if "rotation" in step:
                t.set_rotation(step["rotation"])
                t.set_horizontalalignment("right" if step["rotation"] < 90 else "center")
                t.set_rotation_mode("anchor" if step["rotation"] < 90 else "default")
            else:
                t.set_fontsize(step["size"])
        fig.draw_without_rendering()
    k = max(1, next((i for i in range(1, len(labels)) if not labels[i].get_visible()), 1))
    while k < len(labels) and _axis_overlaps(fig, axis):
        k += 1
        for i, t in enumerate(labels):
            t.set_visible(i % k == 0)
        fig.draw_without_rendering()


def declutter(fig, axes=None) -> None:
    """Make the chart-placed tick labels fit without overlapping: x labels rotate 45 then 90
    degrees; then the font shrinks (to 6.5 pt); then only every k-th label is shown.

    The figure is laid out once, the labels are fitted against that layout (cheap draws
    without the layout engine), then laid out again and checked; a label that overlaps
    after the new layout is fitted once more."""
    todo = [axis for ax in (axes if axes is not None else fig.axes) for axis in (ax.xaxis, ax.yaxis) if _fixed(axis)]
    if not todo:
        return
    engine = fig.get_layout_engine()
    for _ in range(3):
        fig.draw_without_rendering()  # lays out
        busy = [axis for axis in todo if _axis_overlaps(fig, axis)]
        if not busy:
            fig._admf_laid_out = True  # Chart() need not lay it out again
            return
        if engine is not None:
            fig.set_layout_engine(None)
        for axis in busy:
            _fit(fig, axis)
        if engine is not None:
            fig.set_layout_engine(engine)


def _shade(axes, xa: "_X", start, x_end: float, label: str | None) -> None:
    """Shade every axis from ``start`` to ``x_end`` (the out-of-sample period)."""
    x0 = float(xa.values(pd.Index([start]))[0])
    for a in axes:
        a.axvspan(x0, x_end, color="#eef1f5", zorder=0, linewidth=0)
    if label:
        axes[0].text(x0, 0.98, " " + label, transform=axes[0].get_xaxis_transform(), va="top", ha="left",
                     fontsize=8, color=_AXIS)


def _legend(fig, ax, n: int) -> None:
    if n > 1:
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=min(n, 4), borderaxespad=0.2,
                  handlelength=1.6, columnspacing=1.2)


def _title(ax, title: str, legend: bool = False) -> None:
    ax.set_title(title, loc="left", pad=18 if legend else 6)


# ---------------------------------------------------------------------------------------
# charts
# ---------------------------------------------------------------------------------------
def line_chart(series: Mapping[str, pd.Series] | pd.Series | pd.DataFrame, title: str, width: int = 720,
               height: int = 260, y_format: str = "{:.2f}", colors: list[str] | None = None,
               baseline: float | None = None, shade_from: Any = None, shade_label: str | None = None) -> Chart:
    """Lines (one per series; NaN breaks a line) over a date, numeric or category index.

    ``baseline``: a dashed horizontal reference (1.0 for equity); ``shade_from``: an x value
    from which the background is shaded (the out-of-sample period), labelled
    ``shade_label``."""
    data = {k: pd.Series(v).astype(float) for k, v in _as_dict(series).items() if v is not None and len(v)}
    if not data or all(v.notna().sum() == 0 for v in data.values()):
        return _no_data(title, width, height)
    colors = colors or PALETTE
    with _style():
        fig = _figure(width, height)
        ax = fig.add_subplot()
        xa = _X([v.index for v in data.values()])
        n_buckets, x_end = _buckets(width), -np.inf
        for i, (name, s) in enumerate(data.items()):
            x, y = _xy(xa, s, n_buckets)
            x_end = max(x_end, float(np.nanmax(x)))
            ax.plot(x, y, color=colors[i % len(colors)], linewidth=1.4, label=name, solid_joinstyle="round")
        if baseline is not None:
            ax.axhline(baseline, color="#999999", linewidth=0.9, linestyle=(0, (4, 3)), zorder=1)
        if shade_from is not None:
            _shade([ax], xa, shade_from, x_end, shade_label)
        xa.setup(ax)
        ax.yaxis.set_major_formatter(_formatter(y_format))
        ax.margins(x=0.01)
        _legend(fig, ax, len(data))
        _title(ax, title, len(data) > 1)
        declutter(fig)
    return Chart(fig, title)


def area_chart(series: pd.Series, title: str, width: int = 720, height: int = 200, y_format: str = "{:.0%}",
               color: str = "#C0392B") -> Chart:
    """Filled area between 0 and the series (underwater / drawdown curves)."""
    s = pd.Series(series, dtype=float) if series is not None else pd.Series(dtype=float)
    if len(s) == 0 or s.notna().sum() == 0:
        return _no_data(title, width, height)
    with _style():
        fig = _figure(width, height)
        ax = fig.add_subplot()
        _area(ax, _X([s.index]), s, color, _buckets(width))
        ax.yaxis.set_major_formatter(_formatter(y_format))
        _title(ax, title)
        declutter(fig)
    return Chart(fig, title)


def _area(ax, xa: _X, s: pd.Series, color: str, n_buckets: int) -> None:
    """One closed polygon between 0 and each finite run of the series (two baseline points
    per run, not a copy of every x), and the outline."""
    x, y = _xy(xa, s, n_buckets)
    finite = np.isfinite(y)
    runs = np.flatnonzero(np.diff(np.concatenate(([0], finite.astype(np.int8), [0]))))
    for a, b in zip(runs[0::2], runs[1::2]):
        px = np.concatenate(([x[a]], x[a:b], [x[b - 1]]))
        py = np.concatenate(([0.0], y[a:b], [0.0]))
        ax.fill(px, py, color=color, alpha=0.35, linewidth=0)
    ax.plot(x, y, color=color, linewidth=1.0)
    ax.axhline(0.0, color=_AXIS, linewidth=0.8)
    xa.setup(ax)
    ax.margins(x=0.01)


def equity_drawdown(curves: Mapping[str, pd.Series] | pd.Series, drawdown: pd.Series | None, title: str,
                    width: int = 720, height: int = 340, colors: list[str] | None = None,
                    shade_from: Any = None, shade_label: str | None = None) -> Chart:
    """Equity curves (growth of 1.0) above their drawdown from the running peak, sharing the
    date axis; ``shade_from`` shades both panels from that date (the out-of-sample period)."""
    data = {k: pd.Series(v).astype(float) for k, v in _as_dict(curves).items() if v is not None and len(v)}
    if not data:
        return _no_data(title, width, height)
    colors = colors or PALETTE
    with _style():
        fig = _figure(width, height)
        if drawdown is not None and len(drawdown):
            ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2.2, 1.0])
        else:
            ax, ax2 = fig.add_subplot(), None
        indexes = [v.index for v in data.values()] + ([drawdown.index] if ax2 is not None else [])
        xa = _X(indexes)
        x_end = -np.inf
        for i, (name, s) in enumerate(data.items()):
            x, y = _xy(xa, s, _buckets(width))
            x_end = max(x_end, float(np.nanmax(x)))
            ax.plot(x, y, color=colors[i % len(colors)], linewidth=1.4, label=name)
        ax.axhline(1.0, color="#999999", linewidth=0.9, linestyle=(0, (4, 3)), zorder=1)
        ax.yaxis.set_major_formatter(_formatter("{:.2f}"))
        ax.set_ylabel("equity")
        if ax2 is not None:
            _area(ax2, xa, pd.Series(drawdown, dtype=float), "#C0392B", _buckets(width))
            ax2.yaxis.set_major_formatter(_formatter("{:.0%}"))
            ax2.set_ylabel("drawdown")
        xa.setup(ax2 if ax2 is not None else ax)
        if shade_from is not None:
            _shade([a for a in (ax, ax2) if a is not None], xa, shade_from, x_end, shade_label)
        _legend(fig, ax, len(data))
        _title(ax, title, len(data) > 1)
        declutter(fig)
    return Chart(fig, title)


def heatmap(table: pd.DataFrame, title: str, fmt: str = "{:.2f}", center: float = 0.0, vmin: float | None = None,
            vmax: float | None = None, max_width: int = 720, cmap: str = "RdBu") -> Chart:
    """Heatmap of a 2-D table (rows = index, columns = columns): a diverging colour scale
    centred on ``center`` (blue above, red below, symmetric unless ``vmin``/``vmax`` are
    given), NaN cells grey, each cell labelled with ``fmt`` while the cells are big enough;
    axis titles from ``table.index.name`` / ``table.columns.name``; a colour bar."""
    if table is None or table.size == 0:
        return _no_data(title, max_width, 160)
    vals = table.to_numpy(dtype=float)
    nr, nc = vals.shape
    fin = vals[np.isfinite(vals)]
    lo = vmin if vmin is not None else (float(fin.min()) if fin.size else center - 1.0)
    hi = vmax if vmax is not None else (float(fin.max()) if fin.size else center + 1.0)
    if vmin is None and vmax is None:
        scale = max(abs(hi - center), abs(lo - center)) or 1.0
        lo, hi = center - scale, center + scale
    row_labels = [str(v) for v in table.index]
    col_labels = [str(v) for v in table.columns]
    longest_row = max(len(s) for s in row_labels)
    height = int(min(900, max(200, 70 + 22 * nr + 5.5 * max(len(s) for s in col_labels))))
    width = int(min(max_width, max(420, 130 + 6 * longest_row + 56 * nc)))
    with _style():
        from matplotlib import colormaps
        from matplotlib.colors import TwoSlopeNorm

        fig = _figure(width, height)
        ax = fig.add_subplot()
        cm = colormaps[cmap].with_extremes(bad="#d9d9d9")
        norm = TwoSlopeNorm(vcenter=center, vmin=min(lo, center - 1e-12), vmax=max(hi, center + 1e-12))
        im = ax.imshow(np.ma.masked_invalid(vals), cmap=cm, norm=norm, aspect="auto", interpolation="none")
        ax.grid(False)
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_xticks(range(nc), [s[:24] for s in col_labels])
        ax.set_yticks(range(nr), [s[:28] for s in row_labels])
        ax.tick_params(length=0)
        if table.columns.name is not None:
            ax.set_xlabel(str(table.columns.name))
        if table.index.name is not None:
            ax.set_ylabel(str(table.index.name))
        bar = fig.colorbar(im, ax=ax, shrink=0.9, pad=0.02, aspect=30)
        bar.ax.yaxis.set_major_formatter(_formatter(fmt))
        bar.outline.set_visible(False)
        ax.set_title(title, loc="left")
        declutter(fig, [ax])
        cell_w, cell_h = (width - 140) / max(nc, 1), (height - 90) / max(nr, 1)
        if nr * nc <= 400 and cell_h >= 12 and cell_w >= 26:
            size = 8.0 if cell_w >= 40 else 7.0
            for i in range(nr):
                for j in range(nc):
                    v = vals[i, j]
                    if np.isfinite(v):
                        t = (v - center) / ((hi - center) if v >= center else (center - lo) or 1.0)
                        ink = "#ffffff" if abs(t) > 0.6 else _INK
                        ax.text(j, i, _fmt(fmt, v), ha="center", va="center", fontsize=size, color=ink,
                                in_layout=False)
    return Chart(fig, title)


def bar_chart(values: pd.Series, title: str, width: int = 720, height: int = 260, y_format: str = "{:.2f}",
              color: str = "#0072B2", negative_color: str = "#D55E00", show_values: bool | None = None,
              horizontal: bool | None = None) -> Chart:
    """Bars of a Series (one per index label, zero baseline, negative bars in
    ``negative_color``), e.g. ensemble weights or performance by regime.  ``horizontal``
    (default: when there are more than 12 bars or labels longer than 14 characters) puts
    the labels on the y axis, where long names stay readable."""
    if values is None or len(values) == 0:
        return _no_data(title, width, height)
    v = pd.to_numeric(pd.Series(values), errors="coerce").astype(float)
    arr = v.to_numpy()
    if not np.isfinite(arr).any():
        return _no_data(title, width, height)
    n = arr.size
    labels = [str(x) if len(str(x)) <= 32 else str(x)[:31] + "\u2026" for x in v.index]
    if horizontal is None:
        horizontal = n > 12 or max(len(s) for s in labels) > 14
    if show_values is None:
        show_values = n <= 20
    if horizontal:
        height = max(height, int(60 + 18 * n))
    with _style():
        fig = _figure(width, height)
        ax = fig.add_subplot()
        pos = np.arange(n)
        fin = np.where(np.isfinite(arr), arr, 0.0)
        cols = [color if x >= 0 else negative_color for x in fin]
        if horizontal:
            bars = ax.barh(pos, fin, color=cols, height=0.7)
            ax.set_yticks(pos, labels)
            ax.invert_yaxis()
            ax.axvline(0.0, color=_AXIS, linewidth=0.8)
            ax.xaxis.set_major_formatter(_formatter(y_format))
            ax.grid(axis="y", visible=False)
        else:
            bars = ax.bar(pos, fin, color=cols, width=0.7)
            ax.set_xticks(pos, labels)
            ax.axhline(0.0, color=_AXIS, linewidth=0.8)
            ax.yaxis.set_major_formatter(_formatter(y_format))
            ax.grid(axis="x", visible=False)
        if show_values:
            ax.bar_label(bars, labels=[_fmt(y_format, x) if np.isfinite(x) else "" for x in arr], padding=2,
                         fontsize=8, color=_INK)
            ax.margins(**({"x": 0.12} if horizontal else {"y": 0.12}))
        _title(ax, title)
        declutter(fig)
    return Chart(fig, title)


def regime_price(price: pd.Series | pd.DataFrame, regimes: pd.Series, title: str, width: int = 720,
                 height: int = 280, colors: Mapping[str, str] | None = None, normalize: bool | None = None,
                 y_format: str = "{:.2f}") -> Chart:
    """Price line(s) over a background shaded by regime: one colour per regime label,
    contiguous runs of the same label drawn as one band, a legend naming each regime and
    its share of the bars.  ``regimes`` is a label per date (index aligned with the price;
    NaN = unknown, not shaded).  Several price columns are normalised to 1.0 at their first
    value unless ``normalize=False``."""
    prices = {k: pd.Series(v).astype(float) for k, v in _as_dict(price).items() if v is not None and len(v)}
    if not prices or regimes is None or len(regimes) == 0:
        return _no_data(title, width, height)
    if normalize is None:
        normalize = len(prices) > 1
    if normalize:
        prices = {k: v / v.dropna().iloc[0] for k, v in prices.items() if v.notna().any()}
    lab = pd.Series(regimes).copy()
    lab.index = _naive(pd.Index(lab.index))
    lab = lab.sort_index()
    order = [x for x in pd.unique(lab.dropna()) if x is not None]
    order = sorted(order, key=str)
    band = {r: (colors or {}).get(r, _BANDS[i % len(_BANDS)]) for i, r in enumerate(order)}
    with _style():
        fig = _figure(width, height)
        ax = fig.add_subplot()
        xa = _X([v.index for v in prices.values()] + [lab.index])
        x = xa.values(lab.index)
        codes = lab.map({r: i for i, r in enumerate(order)}).to_numpy(dtype=float)
        change = np.flatnonzero(np.diff(np.nan_to_num(codes, nan=-1.0)) != 0) + 1
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [len(codes)]))
        # a run covers its first bar to the first bar of the next run (the last run: its last bar)
        from matplotlib.patches import Patch

        for a, b in zip(starts, ends):
            if not np.isfinite(codes[a]):
                continue
            x1 = x[b] if b < len(x) else x[-1]
            ax.axvspan(x[a], x1, color=band[order[int(codes[a])]], linewidth=0, zorder=0)
        for i, (name, s) in enumerate(prices.items()):
            px, py = _xy(xa, s, _buckets(width))
            ax.plot(px, py, color=PALETTE[i % len(PALETTE)] if len(prices) > 1 else _INK, linewidth=1.1, label=name)
        xa.setup(ax)
        ax.yaxis.set_major_formatter(_formatter(y_format))
        ax.set_ylabel("normalised price" if normalize else "price")
        ax.grid(axis="x", visible=False)
        ax.margins(x=0.0)
        counts = lab.value_counts()
        handles = [Patch(color=band[r], label=f"{r} ({counts.get(r, 0) / max(len(lab), 1):.0%})") for r in order]
        handles += ax.get_legend_handles_labels()[0] if len(prices) > 1 else []
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=min(len(handles), 5),
                  borderaxespad=0.2, handlelength=1.4)
        _title(ax, title, legend=True)
        declutter(fig)
    return Chart(fig, title)


_BANDS = ["#dcebf7", "#fbe3d3", "#dff2e8", "#fbf0d2", "#f3e1ec", "#e3f1fb", "#e6e6e6", "#fdf9d6"]


def histogram(values, title: str, bins: int = 50, markers: Mapping[str, float] | None = None,
              x_format: str = "{:.2f}", width: int = 720, height: int = 240, color: str = "#0072B2") -> Chart:
    """Distribution of simulated values (Monte Carlo, bootstrap): a histogram with vertical
    markers (``{"historical": 0.12, "5th percentile": -0.03}``), each named in the legend
    with its value."""
    v = np.asarray(pd.Series(values, dtype=float).dropna(), dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return _no_data(title, width, height)
    with _style():
        fig = _figure(width, height)
        ax = fig.add_subplot()
        ax.hist(v, bins=int(bins) if v.min() < v.max() else 1, color=color, alpha=0.75, linewidth=0)
        styles = [(_INK, "-"), ("#D55E00", "--"), ("#009E73", "--"), ("#CC79A7", ":"), ("#E69F00", ":")]
        for i, (name, x) in enumerate((markers or {}).items()):
            if x is None or not np.isfinite(x):
                continue
            c, ls = styles[i % len(styles)]
            ax.axvline(float(x), color=c, linestyle=ls, linewidth=1.3, label=f"{name}: {_fmt(x_format, x)}")
        ax.xaxis.set_major_formatter(_formatter(x_format))
        ax.set_ylabel("simulations")
        ax.grid(axis="x", visible=False)
        n_markers = len(ax.get_legend_handles_labels()[0])
        if n_markers:
            ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=min(n_markers, 3), borderaxespad=0.2)
        _title(ax, title, legend=bool(n_markers))
        declutter(fig)
    return Chart(fig, title)


def fold_timeline(folds: pd.DataFrame, title: str, width: int = 720, height: int | None = None) -> Chart:
    """Walk-forward folds as a timeline: one row per fold, its train window (blue) then its
    test window (orange), a gap/embargo showing as white space between them.  ``folds``
    has ``train_start``, ``train_end``, ``test_start``, ``test_end`` and optionally ``fold``
    (the row label)."""
    need = ("train_start", "train_end", "test_start", "test_end")
    if folds is None or len(folds) == 0 or any(c not in folds.columns for c in need):
        return _no_data(title, width, height or 200)
    f = folds.reset_index(drop=True)
    n = len(f)
    height = height or int(min(900, max(160, 70 + 20 * n)))
    labels = [str(x) for x in (f["fold"] if "fold" in f.columns else range(1, n + 1))]
    with _style():
        from matplotlib import dates as mdates
        from matplotlib.patches import Patch

        fig = _figure(width, height)
        ax = fig.add_subplot()
        xa = _X([pd.DatetimeIndex(pd.to_datetime(f[c])) for c in need])

        def num(col):
            return xa.values(pd.DatetimeIndex(pd.to_datetime(f[col])))

        ts, te, vs, ve = (num(c) for c in need)
        # a window covers its first to its last day: draw to the end of the last day
        ax.barh(np.arange(n), te - ts + 1, left=ts, height=0.6, color=PALETTE[0], label="train")
        ax.barh(np.arange(n), ve - vs + 1, left=vs, height=0.6, color=PALETTE[1], label="test")
        ax.set_yticks(np.arange(n), labels)
        ax.invert_yaxis()
        ax.set_ylabel("fold")
        ax.grid(axis="y", visible=False)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
        ax.legend(handles=[Patch(color=PALETTE[0], label="train"), Patch(color=PALETTE[1], label="test")],
                  loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, borderaxespad=0.2)
        _title(ax, title, legend=True)
        declutter(fig)
    return Chart(fig, title)


# ---------------------------------------------------------------------------------------
# SVG shortcuts (the report's ``chart_svg`` values)
# ---------------------------------------------------------------------------------------
def line_chart_svg(series, title: str, width: int = 720, height: int = 260, y_format: str = "{:.2f}",
                   colors: list[str] | None = None, baseline: float | None = None, **kw) -> str:
    """:func:`line_chart` as inline SVG."""
    return line_chart(series, title, width, height, y_format, colors, baseline, **kw).svg()


def area_chart_svg(series: pd.Series, title: str, width: int = 720, height: int = 200, y_format: str = "{:.0%}",
                   color: str = "#C0392B") -> str:
    """:func:`area_chart` as inline SVG."""
    return area_chart(series, title, width, height, y_format, color).svg()


def equity_drawdown_svg(curves, drawdown, title: str, **kw) -> str:
    """:func:`equity_drawdown` as inline SVG."""
    return equity_drawdown(curves, drawdown, title, **kw).svg()


def heatmap_svg(table: pd.DataFrame, title: str, fmt: str = "{:.2f}", center: float = 0.0,
                vmin: float | None = None, vmax: float | None = None, max_width: int = 720, **kw) -> str:
    """:func:`heatmap` as inline SVG."""
    return heatmap(table, title, fmt, center, vmin, vmax, max_width, **kw).svg()


def bar_chart_svg(values: pd.Series, title: str, width: int = 720, height: int = 260, y_format: str = "{:.2f}",
                  color: str = "#0072B2", negative_color: str = "#D55E00", show_values: bool | None = None,
                  **kw) -> str:
    """:func:`bar_chart` as inline SVG."""
    return bar_chart(values, title, width, height, y_format, color, negative_color, show_values, **kw).svg()


def regime_price_svg(price, regimes, title: str, **kw) -> str:
    """:func:`regime_price` as inline SVG."""
    return regime_price(price, regimes, title, **kw).svg()


def histogram_svg(values, title: str, **kw) -> str:
    """:func:`histogram` as inline SVG."""
    return histogram(values, title, **kw).svg()


def fold_timeline_svg(folds: pd.DataFrame, title: str, **kw) -> str:
    """:func:`fold_timeline` as inline SVG."""
    return fold_timeline(folds, title, **kw).svg()


# ---------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------
_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values, width: int = 60) -> str:
    """A one-line text picture of a series (for places that show text only): the series is
    split into ``width`` buckets, each drawn by the level of its last value."""
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
