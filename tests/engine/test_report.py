"""Tests of admf_assets.engine.report and admf_assets.engine.charts."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine import analysis as A
from admf_assets.engine import charts as C
from admf_assets.engine import report as REP

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
SVG_NS = "{http://www.w3.org/2000/svg}"


def _returns(n=2520, seed=1):
    rng = np.random.default_rng(seed)
    return pd.Series(rng.normal(0.0004, 0.01, n), index=pd.bdate_range("2012-01-02", periods=n), name="strategy")


def _history(n=400, seed=2):
    rng = np.random.default_rng(seed)
    fast = rng.choice([5, 10, 20, 30, 40], n)
    slow = rng.choice([50, 100, 150, 200], n)
    stop = rng.choice([0.01, 0.02], n)
    sharpe = 0.01 * fast - 0.002 * slow + 10 * stop + rng.normal(0, 0.05, n)
    return pd.DataFrame(
        {"number": np.arange(n), "params_fast": fast, "params_slow": slow, "params_stop": stop, "sharpe_ratio": sharpe}
    )


def _research_report(**overrides):
    r = _returns()
    hist = _history()
    rng = np.random.default_rng(4)
    corr = A.correlation_analysis(pd.DataFrame(rng.normal(0, 0.01, (500, 10)), columns=[f"s{i}" for i in range(10)]))
    kw = dict(
        title="Trend research",
        workflow={"name": "trend_following", "description": "MA crossover research", "id": "run-42"},
        data={"symbols": ["SPY", "QQQ"], "start": r.index[0], "end": r.index[-1], "train_end": r.index[1763], "n_bars": len(r)},
        best_params={"fast": 10, "slow": 100.0, "stop": 0.02},
        search_top=hist.sort_values("sharpe_ratio", ascending=False).head(10),
        search_history=hist,
        in_sample_returns=r.iloc[:1764],
        oos_returns=r.iloc[1764:],
        oos_metrics={"sharpe_ratio": 0.91, "total_return": 0.153, "max_drawdown": -0.071},
        drawdowns=None,
        correlations=corr,
        warnings=["only 12 trades out of sample"],
        generated_at=pd.Timestamp("2026-01-05 08:00"),
        lineage=[{"phase": "optimize", "asset": "trend/optimize", "materialized_at": "2026-01-05T07:59:00"}],
    )
    kw.update(overrides)
    return REP.build_research_report(**kw)


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", html, flags=re.S)


# ---------------------------------------------------------------------------------------
# escaping
# ---------------------------------------------------------------------------------------
def test_render_report_escapes_every_text_field():
    table = pd.DataFrame({XSS: [1.5, 2.0], "label": [XSS, "ok"]}, index=pd.Index(["a", XSS], name="idx"))
    html = REP.render_report(
        {
            "title": XSS,
            "workflow": {"name": XSS, "description": XSS, "id": XSS},
            "generated_at": XSS,
            "data": {"symbols": [XSS], XSS: 1},
            "sections": [{"title": XSS, "text": XSS, "metrics": {XSS: XSS, "sharpe": 1.2}, "table": table}],
            "warnings": [XSS],
            "lineage": [{"phase": XSS, "asset": XSS, "materialized_at": XSS}],
        }
    )
    assert "<script" not in html.lower()
    assert "alert(1)</script>" not in html
    assert html.count(XSS_ESCAPED) >= 14


def test_research_report_escapes_workflow_name_and_has_no_active_content():
    html = _research_report(workflow={"name": XSS, "id": "x", "description": "a <b>bold</b> claim"})
    assert XSS_ESCAPED in html
    assert XSS not in html
    assert "a &lt;b&gt;bold&lt;/b&gt; claim" in html
    low = html.lower()
    for bad in ("<script", "<link", "<iframe", "javascript:", "onload=", "onclick=", "src=", "@import"):
        assert bad not in low
    # self-contained: the only URL is the SVG namespace
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}


def test_chart_svg_is_the_only_unescaped_field():
    svg = C.bar_chart_svg(pd.Series([1.0, -0.5], index=["a", "b"]), "bars")
    html = REP.render_report({"title": "t", "sections": [{"title": "c", "chart_svg": svg, "text": svg}]})
    assert svg in html  # inserted as markup
    assert html.count("<svg") == 1  # the same string in `text` is escaped
    assert "&lt;svg" in html


def test_render_report_requires_title_and_dict_sections():
    with pytest.raises(ValueError, match="title"):
        REP.render_report({"sections": []})
    with pytest.raises(TypeError, match="DataFrame"):
        REP.render_report({"title": "t", "sections": [{"title": "x", "table": [[1, 2]]}]})


# ---------------------------------------------------------------------------------------
# content
# ---------------------------------------------------------------------------------------
def test_research_report_sections_charts_and_tables():
    html = _research_report()
    for title in (
        "Best parameters",
        "Out-of-sample metrics",
        "In-sample vs out-of-sample",
        "Equity curve",
        "Underwater",
        "Drawdown episodes",
        "Top parameter sets",
        "Sharpe ratio by fast and slow",
        "Correlations",
        "Lineage",
    ):
        assert f"<h2>{title}</h2>" in html, title
    svgs = _svgs(html)
    assert len(svgs) == 4  # equity, underwater, Sharpe heatmap, correlation heatmap
    for s in svgs:
        ET.fromstring(s)  # well-formed XML
    equity = svgs[0]
    assert "in-sample" in equity and "out-of-sample" in equity
    assert html.count('<table class="data">') == 5  # IS/OOS, drawdowns, top sets, correlations, lineage
    assert "only 12 trades out of sample" in html
    assert "15.30%" in html and "-7.10%" in html  # oos_metrics formatted as percentages
    assert "trend_following" in html and "run-42" in html and "SPY, QQQ" in html
    assert "2026-01-05 08:00:00" in html


def test_is_oos_table_matches_compute_metrics():
    from admf_assets.engine.metrics import compute_metrics

    r = _returns()
    html = _research_report()
    m_is = compute_metrics(r.iloc[:1764].to_frame("x")).loc["x"]
    m_oos = compute_metrics(r.iloc[1764:].to_frame("x")).loc["x"]
    # rows are labelled in words with units (engine.labels), Sharpe ratios shown to 2 decimals
    row = re.search(r"<tr><th scope=\"row\">Sharpe ratio \(annualised\)</th><td class=\"num\">([^<]+)</td>"
                    r"<td class=\"num\">([^<]+)</td></tr>", html)
    assert row is not None
    assert row.group(1) == f"{m_is.sharpe_ratio:.2f}" and row.group(2) == f"{m_oos.sharpe_ratio:.2f}"
    tr = re.search(r"<tr><th scope=\"row\">Total return</th><td class=\"num\">([^<]+)</td>", html)
    assert tr.group(1) == f"{m_is.total_return:.2%}"


def test_search_heatmap_table_means_over_other_params():
    hist = _history()
    pivot, obj, p0, p1, n_params = REP.search_heatmap_table(hist)
    assert (obj, p0, p1, n_params) == ("sharpe_ratio", "params_fast", "params_slow", 3)
    assert pivot.index.name == "fast" and pivot.columns.name == "slow"
    sel = hist[(hist.params_fast == 20) & (hist.params_slow == 150)]
    assert pivot.loc[20, 150] == pytest.approx(sel.sharpe_ratio.mean())
    assert REP.search_heatmap_table(hist[["params_fast", "sharpe_ratio"]]) is None


def test_table_rendering_formats_and_truncates():
    df = pd.DataFrame(
        {
            "total_return": np.linspace(-0.1, 0.2, 120),
            "sharpe_ratio": np.linspace(0, 2, 120),
            "n_trades": np.arange(120) * 1000,
            "when": pd.date_range("2020-01-01", periods=120),
            "ok": [True, False] * 60,
            "gap": [np.nan] + [1.0] * 119,
        }
    )
    html = REP.render_report({"title": "t", "sections": [{"title": "big", "table": df, "max_rows": 50}]})
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr>") == 50
    assert "Showing 50 of 120 rows." in html
    first = re.findall(r"<td[^>]*>([^<]*)</td>", body)[:6]
    assert first == ["-10.00%", "0", "0", "2020-01-01", "yes", "\u2013"]
    assert "49,000" in body and "0.0168" in body  # ints with separators, floats 4 decimals
    assert '<th class="num" scope="col">sharpe_ratio</th>' in html


def test_format_value():
    f = REP.format_value
    assert f(float("nan")) == "\u2013" and f(None) == "\u2013" and f(pd.NaT) == "\u2013"
    assert f(0.1234, "max_drawdown") == "12.34%"
    assert f(0.1234, "sharpe_ratio") == "0.1234"
    assert f(1234567) == "1,234,567"
    assert f(12.0, "max_drawdown_duration") == "12"
    assert f(pd.Timestamp("2021-05-03")) == "2021-05-03"
    assert f(2.5e-6) == "2.500e-06"
    assert f(3.14159, fmt="{:.1f}") == "3.1"


def test_report_is_deterministic_and_small():
    a = _research_report()
    b = _research_report()
    assert a == b
    size = len(a.encode("utf-8"))
    assert size < 500_000, size
    # a 10-year daily series x 3 long series stays small too (charts are thinned)
    long = _returns(20_000, seed=3)
    html = _research_report(in_sample_returns=long.iloc[:15_000], oos_returns=long.iloc[15_000:], drawdowns=None)
    assert len(html.encode("utf-8")) < 500_000


def test_report_without_optional_inputs():
    html = REP.build_research_report(
        title="empty",
        workflow={},
        data={},
        best_params=None,
        search_top=None,
        search_history=None,
        in_sample_returns=None,
        oos_returns=None,
        oos_metrics=None,
        drawdowns=None,
        correlations=None,
        extra_sections=[{"title": "Notes", "text": "first paragraph\n\nsecond paragraph"}],
    )
    assert "<h2>Notes</h2>" in html and "<p>second paragraph</p>" in html
    assert "<svg" not in html


# ---------------------------------------------------------------------------------------
# write_report
# ---------------------------------------------------------------------------------------
def test_write_report_creates_dirs_and_leaves_no_temp(tmp_path):
    target = tmp_path / "deep" / "er" / "report.html"
    out = REP.write_report("<p>one</p>", target)
    assert out == target and target.read_text(encoding="utf-8") == "<p>one</p>"
    REP.write_report("<p>two \u2013 ünïcode</p>", str(target))
    assert target.read_text(encoding="utf-8") == "<p>two \u2013 ünïcode</p>"
    assert sorted(os.listdir(target.parent)) == ["report.html"]
    assert (target.stat().st_mode & 0o777) == 0o644


def test_failed_render_leaves_previous_report_intact(tmp_path):
    target = tmp_path / "report.html"
    REP.write_report(_research_report(), target)
    before = target.read_bytes()

    def build_and_write():
        html = REP.render_report({"sections": [{"title": "no title given"}]})  # raises
        REP.write_report(html, target)

    with pytest.raises(ValueError):
        build_and_write()
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["report.html"]


def test_failed_write_leaves_previous_report_intact(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    REP.write_report("<p>old</p>", target)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(REP.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        REP.write_report("<p>new</p>", target)
    assert target.read_text() == "<p>old</p>"
    assert os.listdir(tmp_path) == ["report.html"]  # temp file cleaned up

    monkeypatch.undo()
    monkeypatch.setattr(REP.os, "fsync", boom)  # failure while writing the temp file
    with pytest.raises(OSError):
        REP.write_report("<p>new</p>", target)
    assert target.read_text() == "<p>old</p>"
    assert os.listdir(tmp_path) == ["report.html"]
    with pytest.raises(TypeError):
        REP.write_report(b"bytes", target)


# ---------------------------------------------------------------------------------------
# charts (matplotlib; the structure tests of the hand-written SVG live in test_charts.py)
# ---------------------------------------------------------------------------------------
def test_sparkline_levels_follow_the_series():
    from admf_assets.engine.charts import sparkline

    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([8, 1]) == "█▁"
    assert sparkline([3.0] * 5) == "▁▁▁▁▁"
    assert len(sparkline(range(1000), width=40)) == 40
    assert sparkline([]) == ""
