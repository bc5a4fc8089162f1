"""The report kind: an executive summary leading with the verdict, then one group of sections
per phase, the lineage; names escaped; a failing kind hook costs its part, not the report."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from admf_assets.phases import KINDS
from admf_assets.phases.kind import Criterion, Insight, Verdict
from admf_assets.workflow.context import phase_context
from admf_assets.workflow.loader import load_workflow_dict

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
GRID = {"fast_period": [5, 10, 20], "slow_period": [30, 50], "signal_threshold": [0.0, 0.01]}


def _doc(kit):
    phases = [
        {"name": "features", "type": "feature_engineering", "config": {"lookback_periods": [5, 20]}},
        {"name": "search", "type": "optimization", "config": {"optimization": {"parameters": GRID}},
         "outputs": ["best_parameters", "top_5_parameter_sets", "optimization_history"]},
        {"name": "capture", "type": "signal_capture", "inputs": ["search.top_5_parameter_sets"]},
        {"name": "analysis", "type": "analysis", "inputs": ["search.top_5_parameter_sets", "search.best_parameters"],
         "config": {"analyzers": ["drawdown_analysis", "correlation_analysis", "regime_performance",
                                  "monte_carlo_simulation"], "n_simulations": 200}},
        {"name": "oos", "type": "backtest", "inputs": ["search.best_parameters"],
         "config": {"include_transaction_costs": True}},
    ]
    return {
        "workflow": {"name": f"{XSS} research", "id": "every_kind", "description": f"a <b>bold</b> {XSS} claim"},
        "data": {"symbols": kit.SYMBOLS, "start_date": kit.START, "end_date": kit.END,
                 "split": {"test_start": kit.TEST_START}},
        "phases": phases,
        "reporting": {"title": f"Report {XSS}"},
    }


LINEAGE = [
    {"phase": "search", "asset": "every_kind/search/best_parameters", "materialized_at": "2026-01-05 08:00:00",
     "run_id": "abcd1234", "code_version": "41abb5ae4f85", "data_version": "c0ff37a5d27f", "seconds": 0.42,
     "cpu_seconds": 0.4, "peak_rss_mb": 312.5, "rss_increase_mb": 12.25, "measured": "rss sampled every 5 ms"},
    {"phase": "shared, read by data", "asset": "market/clean_bars", "materialized_at": "2026-01-05 07:00:00",
     "run_id": "ffff0000", "code_version": "1", "data_version": "cd03632a7603",
     "partitions": "390 (2021-01-04..2022-06-30)"},
    {"phase": "shared, read by data (input of market/clean_bars)", "asset": "market/raw_bars",
     "materialized_at": "2026-01-05 06:59:00", "run_id": "ffff0000", "source": "synthetic"},
]


@pytest.fixture(scope="module")
def every_kind(kit, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store = kit.write_market(root / "market")
    graph = load_workflow_dict(_doc(kit), source="<every kind>").graph
    loaded: dict = {}
    results = {}
    for name in graph.order:
        if name == "report":
            continue
        node = graph.phases[name]
        res = node.kind.run(phase_context(graph, node, loaded, store=store, reports_dir=root / "reports"))
        results[name] = res
        for o in node.outputs:
            loaded[o.ref] = res.outputs[o.canonical]
    return graph, loaded, store, root


def _report(every_kind):
    graph, loaded, store, root = every_kind
    node = graph.phases["report"]
    ctx = phase_context(graph, node, loaded, store=store, reports_dir=root / "reports", run_id="abcd1234-run",
                        lineage=lambda: LINEAGE)
    res = node.kind.run(ctx)
    path = res.outputs["report"]["path"].iloc[0]
    return res, open(path, encoding="utf-8").read()


@pytest.fixture(scope="module")
def rendered(every_kind):
    return _report(every_kind)


def test_report_has_a_summary_first_then_every_phase_and_the_lineage(every_kind, rendered):
    graph = every_kind[0]
    res, html = rendered
    heads = re.findall(r"<h2>([^<]*)</h2>", html)
    assert heads[0] == "Executive summary"
    phases = [p for p in graph.order if p not in ("data", "report")]
    assert [h for h in heads if h in phases] == phases  # one group per phase, in graph order
    assert heads[-1] == "Lineage"
    assert '<p class="headline">Not validated</p>' in html  # no validation phase ran
    for title in ("Best parameters", "Parameter importance", "In-sample vs out-of-sample", "Equity curve",
                  "Correlations", "Performance by volatility regime", "Monte Carlo and value at risk of the best set"):
        assert f"<h3>{title}</h3>" in html, title
    # insights with their numbers
    for topic in ("Parameters", "Robustness", "Overfitting", "In-sample vs out-of-sample", "Regime dependence"):
        assert f'<span class="topic">{topic}</span>' in html, topic
    # lineage: run link, versions, market data source and range, execution per phase
    assert '<a href="http://127.0.0.1:3000/runs/abcd1234-run">abcd1234-run</a>' in html
    assert "41abb5ae4f85" in html and "c0ff37a5d27f" in html and "390 (2021-01-04..2022-06-30)" in html
    assert "<dt>market data source</dt><dd>synthetic</dd>" in html
    assert "<dt>market data range</dt><dd>2021-01-04 .. 2022-06-30</dd>" in html
    assert "<dt>dagster</dt><dd>1.13" in html
    assert "execution time: <b>0.42 s wall, 0.40 s CPU</b>" in html  # the search group's facts
    assert "312.50" in html  # execution table
    assert res.metadata["report"]["verdict"] == "not validated (no validation phase ran)"
    assert res.metrics["n_sections"] == len(re.findall(r'<section class="block"', html)) - 1  # minus lineage


def test_report_escapes_names_everywhere(rendered):
    _, html = rendered
    assert XSS_ESCAPED in html and "a &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script" not in html.lower() and "<b>bold" not in html
    low = html.lower()
    for bad in ("javascript:", "onload=", "onclick=", "onerror="):
        assert bad not in low


def test_dates_agree_between_header_backtest_and_charts(every_kind, rendered):
    _, html = rendered
    graph, loaded = every_kind[0], every_kind[1]
    bars = loaded["data.bars"]
    first_test = pd.Timestamp(bars.loc[bars.split == "test", "date"].min()).date()
    first_return = loaded["oos.performance_report"]["date"].min().date()
    assert first_return > first_test
    assert f"test</dt><dd>{first_test} .. " in html  # header: the test period starts at the first test close
    assert f"<span class=\"k\">Starting equity at (close)</span><span class=\"v\">{first_test}</span>" in html
    assert f"<span class=\"k\">First return (date)</span><span class=\"v\">{first_return}</span>" in html
    assert f"from the {first_test} close to" in html  # the summary's words


def test_in_and_out_of_sample_use_the_same_cost_model(every_kind):
    from admf_assets.engine.metrics import compute_metrics
    from admf_assets.engine.paramsets import evaluate_sets, parameter_set
    from admf_assets.phases.common import close_matrix

    graph, loaded = every_kind[0], every_kind[1]
    view = next(v for v in _views(every_kind) if v.phase == "oos")
    is_r, note = view.kind._in_sample(view)
    bars, best = loaded["data.bars"], loaded["search.best_parameters"]
    with_costs = graph.phases["oos"].settings.trading()
    assert with_costs.cost_bps > 0
    expected = evaluate_sets(close_matrix(bars, "train"), [parameter_set(best.iloc[0])], with_costs).iloc[:, 0]
    pd.testing.assert_series_equal(is_r, expected, check_names=False)
    before = evaluate_sets(close_matrix(bars, "train"), [parameter_set(best.iloc[0])],
                           graph.phases["search"].settings.trading()).iloc[:, 0]
    assert compute_metrics(before.to_frame()).iloc[0].total_return > compute_metrics(is_r.to_frame()).iloc[0].total_return
    assert note.startswith("In sample and out of sample are both computed after 5 bps commission + 2 bps slippage")
    assert "ranked its trials before costs" in note


def _views(every_kind):
    graph, loaded = every_kind[0], every_kind[1]
    node = graph.phases["report"]
    return phase_context(graph, node, loaded).views()


def test_a_verdict_leads_the_summary_and_a_broken_hook_is_a_warning(every_kind, monkeypatch):
    backtest = type(KINDS["backtest"])
    verdict = Verdict(False, f"deflated Sharpe ratio 0.62 < 0.95 {XSS}",
                      criteria=(Criterion("deflated_sharpe", 0.62, ">= 0.95", False),
                                Criterion("max_drawdown", -0.09, ">= -0.20", True)))
    monkeypatch.setattr(backtest, "verdict", lambda self, view: verdict, raising=True)
    analysis = type(KINDS["analysis"])

    def broken(self, view):
        raise ValueError("no numbers <today>")

    monkeypatch.setattr(analysis, "insights", broken)
    res, html = _report(every_kind)
    summary = html.split("<h2>Executive summary</h2>")[1].split("<h2>")[0]
    assert '<div class="callout invalid" role="note">' in summary and '<p class="headline">Not valid</p>' in summary
    assert f"oos: deflated Sharpe ratio 0.62 &lt; 0.95 {XSS_ESCAPED}" in summary
    assert "<td>deflated_sharpe</td>" in summary and "<td>FAIL</td>" in summary and "<td>pass</td>" in summary
    assert "phase &#39;analysis&#39;: its insights could not be built (ValueError: no numbers &lt;today&gt;)" in html
    assert res.metadata["report"]["verdict"].startswith("NOT VALID: oos: deflated Sharpe ratio 0.62")
    monkeypatch.setattr(backtest, "verdict", lambda self, view: Verdict(True, "all 2 criteria pass"))
    _, html = _report(every_kind)
    assert '<p class="headline">Valid</p>' in html and "oos: all 2 criteria pass" in html


def test_every_insight_carries_its_number(every_kind):
    for view in _views(every_kind):
        for ins in view.kind.insights(view):
            assert isinstance(ins, Insight)
            if ins.text:
                assert re.search(r"\d", ins.text), (view.phase, ins.text)
