"""Tests of admf_assets.engine.charts: matplotlib figures rendered as inline SVG and PNG.

Valid markup, escaping, determinism (same input -> same bytes), tick labels that never
overlap, thinning that keeps every extreme, and each chart type's content."""

from __future__ import annotations

import io
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine import analysis as A
from admf_assets.engine import charts as C

SVG_NS = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _returns(n=600, seed=1):
    rng = np.random.default_rng(seed)
    return pd.Series(rng.normal(0.0004, 0.01, n), index=pd.bdate_range("2015-01-02", periods=n), name="r")


def _labels(n, width=18):
    return [f"#{i} momentum (10, {i}, 0.0)"[:width] for i in range(n)]


def _every_chart():
    r = _returns()
    eq = A.equity_curve(r)
    dd = A.underwater(r)
    regimes = pd.Series(np.where((np.arange(len(r)) // 90) % 2 == 0, "calm", "volatile"), index=r.index)
    folds = pd.DataFrame({
        "train_start": pd.date_range("2020-01-01", periods=4, freq="3MS"),
        "train_end": pd.date_range("2020-12-31", periods=4, freq="3ME"),
        "test_start": pd.date_range("2021-01-04", periods=4, freq="3MS"),
        "test_end": pd.date_range("2021-03-31", periods=4, freq="3ME"),
    })
    table = pd.DataFrame([[1.0, -1.0, np.nan], [0.5, 0.0, 2.0]], index=pd.Index([5, 10], name="fast"),
                         columns=pd.Index([50, 100, 200], name="slow"))
    return {
        "line": C.line_chart({"a <&>": eq, "b": eq * 1.1}, "Equity <title> & co", baseline=1.0,
                             shade_from=eq.index[400], shade_label="out of sample"),
        "area": C.area_chart(dd, "Underwater"),
        "equity_drawdown": C.equity_drawdown({"strategy": eq}, dd, "Equity and drawdown", shade_from=eq.index[400]),
        "heatmap": C.heatmap(table, "Sharpe <x>", fmt="{:.1f}"),
        "bar": C.bar_chart(pd.Series([0.3, -0.2], index=["calm", "volatile"]), "by regime", y_format="{:.0%}"),
        "regime_price": C.regime_price(100 * eq, regimes, "Price by regime"),
        "histogram": C.histogram(np.random.default_rng(3).normal(0.1, 0.2, 500), "Monte Carlo total return",
                                 markers={"historical": 0.15, "5th percentile": -0.2}, x_format="{:.0%}"),
        "fold_timeline": C.fold_timeline(folds, "Walk-forward folds"),
    }


@pytest.fixture(scope="module")
def every_chart():
    return _every_chart()


def test_every_chart_is_valid_inline_svg_with_an_escaped_title(every_chart):
    for name, chart in every_chart.items():
        svg = chart.svg()
        root = ET.fromstring(svg)  # well-formed XML
        assert root.tag == SVG_NS + "svg", name
        assert root.find(SVG_NS + "title").text == chart.title, name
        assert svg.startswith("<svg") and "<?xml" not in svg and "DOCTYPE" not in svg, name
        assert "xlink" not in svg and "<metadata" not in svg, name  # no namespace besides SVG's, no creator/date
        assert "<script" not in svg.lower(), name
    line = every_chart["line"].svg()
    assert "Equity &lt;title&gt; &amp; co" in line
    assert "a &lt;&amp;&gt;" in line and "<&>" not in line  # data text escaped by matplotlib's writer
    texts = {t.text for t in ET.fromstring(line).iter(SVG_NS + "text")}
    assert {"a <&>", "b", " out of sample"} <= texts  # text stays text (svg.fonttype none): small, searchable


def test_every_chart_is_a_valid_png(every_chart):
    from PIL import Image

    for name, chart in every_chart.items():
        png = chart.png()
        assert png[:8] == PNG_SIGNATURE, name
        img = Image.open(io.BytesIO(png))
        img.verify()
        w_in, h_in = chart.figure.get_size_inches()
        assert img.size == (round(w_in * C.PNG_DPI), round(h_in * C.PNG_DPI)), name
        assert len(png) < 150_000, (name, len(png))


def test_charts_are_deterministic():
    a, b = _every_chart(), _every_chart()
    for name in a:
        assert a[name].svg() == b[name].svg(), name
        assert a[name].png() == b[name].png(), name


def test_no_pyplot_and_the_agg_canvas_in_a_fresh_process():
    code = ("import sys, pandas as pd\n"
            "from admf_assets.engine import charts\n"
            "assert 'matplotlib' not in sys.modules  # imported on first use only\n"
            "c = charts.line_chart(pd.Series([1.0, 2.0, 1.5]), 'x'); c.svg(); c.png()\n"
            "from matplotlib.backends.backend_agg import FigureCanvasAgg\n"
            "assert isinstance(c.figure.canvas, FigureCanvasAgg)\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_tick_labels_never_overlap():
    n = 30
    corr = pd.DataFrame(np.random.default_rng(0).uniform(-1, 1, (n, n)), index=_labels(n, 28),
                        columns=_labels(n, 28))
    many_bars = pd.Series(np.linspace(-1, 1, 40), index=_labels(40, 30))
    wide_bars = pd.Series(np.linspace(0, 1, 12), index=[f"regime {i} long name" for i in range(12)])
    cats = pd.Series(np.arange(60.0), index=[f"set-{i:03d}-{'x' * 12}" for i in range(60)])
    charts = {
        "correlation heatmap": C.heatmap(corr, "Pearson correlation", vmin=-1, vmax=1),
        "many bars": C.bar_chart(many_bars, "weights"),
        "vertical bars": C.bar_chart(wide_bars, "by regime", horizontal=False),
        "categories": C.line_chart(cats, "by set"),
        "folds": C.fold_timeline(pd.DataFrame({
            "train_start": pd.date_range("2000-01-01", periods=60, freq="MS"),
            "train_end": pd.date_range("2001-01-01", periods=60, freq="MS"),
            "test_start": pd.date_range("2001-01-02", periods=60, freq="MS"),
            "test_end": pd.date_range("2001-02-01", periods=60, freq="MS")}), "60 folds"),
    }
    for name, chart in charts.items():
        assert C.label_overlaps(chart.figure) == [], name
        ET.fromstring(chart.svg())


def test_the_overlap_check_sees_overlaps():
    """The check itself: 30 long labels on a narrow axis, left as they are, do overlap."""
    with C._style():
        fig = C._figure(300, 200)
        ax = fig.add_subplot()
        ax.bar(range(30), np.ones(30))
        ax.set_xticks(range(30), _labels(30, 24))
    assert C.label_overlaps(fig) == ["axes 0: x"]
    C.declutter(fig)
    assert C.label_overlaps(fig) == []


def test_line_breaks_at_nan_and_long_series_are_thinned_keeping_extremes():
    s = pd.Series([1.0, 2.0, np.nan, 3.0, 4.0], index=pd.date_range("2020-01-01", periods=5))
    line = C.line_chart(s, "gap").figure.axes[0].lines[0]
    assert np.isnan(line.get_ydata()).sum() == 1  # the gap is kept: two segments
    y = np.cumsum(np.random.default_rng(0).normal(size=200_000))
    x = np.arange(y.size, dtype=float)
    keep = C._thin(x, y, 360)
    assert keep.size <= 4 * 360 + 2
    assert {int(np.argmin(y)), int(np.argmax(y)), 0, y.size - 1} <= set(keep.tolist())
    svg = C.line_chart_svg(pd.Series(y), "long")
    assert len(svg) < 60_000
    drawn = C.line_chart(pd.Series(y), "long").figure.axes[0].lines[0].get_ydata()
    assert drawn.min() == y.min() and drawn.max() == y.max()


def test_twenty_years_of_daily_equity_and_drawdown_stay_small():
    r = _returns(5040, seed=4)
    eq, dd = A.equity_curve(r), A.underwater(r)
    assert len(C.equity_drawdown_svg({"in": eq[:3500], "out": eq[3499:]}, dd, "Equity")) < 80_000
    assert len(C.area_chart_svg(dd, "Underwater")) < 50_000


def test_heatmap_colours_labels_and_missing_cells(every_chart):
    ax = every_chart["heatmap"].figure.axes[0]
    im = ax.images[0]
    assert im.norm(0.0) == pytest.approx(0.5)  # centred on 0: white in the middle of RdBu
    assert im.norm(2.0) == pytest.approx(1.0) and im.norm(-2.0) == pytest.approx(0.0)  # symmetric scale
    assert np.ma.is_masked(im.get_array()[0, 2])  # the NaN cell ...
    assert tuple(np.round(im.cmap.get_bad()[:3], 3)) == (0.851, 0.851, 0.851)  # ... drawn grey
    cells = sorted(t.get_text() for t in ax.texts)
    assert cells == sorted(["1.0", "-1.0", "0.5", "0.0", "2.0"])
    assert ax.get_xlabel() == "slow" and ax.get_ylabel() == "fast"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["50", "100", "200"]


def test_bar_chart_colours_and_value_labels(every_chart):
    ax = every_chart["bar"].figure.axes[0]
    colours = [C._mpl().colors.to_hex(p.get_facecolor()) for p in ax.patches]
    assert colours == ["#0072b2", "#d55e00"]  # positive blue, negative orange
    values = [t.get_text() for t in ax.texts]
    assert values == ["30%", "-20%"]
    weights = C.bar_chart(pd.Series(np.linspace(0, 0.2, 15), index=_labels(15)), "weights")
    assert [t.get_text() for t in weights.figure.axes[0].get_yticklabels()][:2] == _labels(2)  # horizontal


def test_regime_price_shades_each_run_and_names_the_shares(every_chart):
    ax = every_chart["regime_price"].figure.axes[0]
    n = 600
    runs = len(range(0, n, 90))
    assert len(ax.patches) == runs  # one band per contiguous run of a regime
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    calm = np.mean((np.arange(n) // 90) % 2 == 0)
    assert legend == [f"calm ({calm:.0%})", f"volatile ({1 - calm:.0%})"]


def test_histogram_markers_and_fold_timeline(every_chart):
    ax = every_chart["histogram"].figure.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["historical: 15%", "5th percentile: -20%"]
    assert sum(p.get_height() for p in ax.patches) == 500
    ax = every_chart["fold_timeline"].figure.axes[0]
    bars = ax.patches
    assert len(bars) == 8  # train + test per fold
    train, test = bars[:4], bars[4:]
    for a, b in zip(train, test):
        assert a.get_x() + a.get_width() <= b.get_x()  # the test window starts after the train window


def test_empty_inputs_say_no_data():
    for chart in (C.line_chart({}, "e"), C.area_chart(pd.Series(dtype=float), "e"),
                  C.bar_chart(pd.Series(dtype=float), "e"), C.heatmap(pd.DataFrame(), "e"),
                  C.histogram([], "e"), C.regime_price(pd.Series(dtype=float), pd.Series(dtype=object), "e"),
                  C.fold_timeline(pd.DataFrame(), "e")):
        svg = chart.svg()
        ET.fromstring(svg)
        assert "no data" in svg


def test_text_is_not_tex():
    svg = C.line_chart_svg({"$SPY_x^2$": pd.Series([1.0, 2.0]), "b": pd.Series([2.0, 1.0])}, "cost $5 and $6")
    assert "$SPY_x^2$" in svg and "cost $5 and $6" in svg
