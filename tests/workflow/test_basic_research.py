"""The shipped workflows/basic_research.yaml resolves to exactly the expected graph."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from admf_assets.workflow.validate import load_workflow

REPO = Path(__file__).resolve().parents[2]
WF = "basic_research"


def _spec():
    return load_workflow(WF, workflows_dir=REPO / "workflows")


def test_assets_are_exactly_the_expected_keys():
    g = _spec().graph
    assert g.workflow_id == "basic_research"
    assert g.order == ("data", "parameter_optimization", "performance_analysis", "validation", "report")
    assert g.asset_keys() == [
        ("basic_research", "data", "bars"),
        ("basic_research", "parameter_optimization", "best_parameters"),
        ("basic_research", "parameter_optimization", "top_10_parameter_sets"),
        ("basic_research", "parameter_optimization", "optimization_history"),
        ("basic_research", "performance_analysis", "performance_metrics"),
        ("basic_research", "performance_analysis", "drawdowns"),
        ("basic_research", "performance_analysis", "correlations"),
        ("basic_research", "validation", "validation_results"),
        ("basic_research", "validation", "performance_report"),
        ("basic_research", "report", "report"),
    ]


def test_dependencies_are_exactly_the_expected_edges():
    g = _spec().graph
    deps = {n: sorted((e.upstream_ref, e.kind, e.consumed) for e in g.phases[n].upstream) for n in g.order}
    assert deps["data"] == []
    assert deps["parameter_optimization"] == [("data.bars", "implicit", True)]
    assert deps["performance_analysis"] == [
        ("data.bars", "implicit", True),
        ("parameter_optimization.best_parameters", "input", True),
        ("parameter_optimization.top_10_parameter_sets", "input", True),
    ]
    assert deps["validation"] == [
        ("data.bars", "implicit", True),
        ("parameter_optimization.best_parameters", "input", True),
    ]
    assert deps["report"] == sorted(
        (f"{p}.{o}", "implicit", True)
        for p, o in [("data", "bars"), ("parameter_optimization", "best_parameters"),
                     ("parameter_optimization", "top_10_parameter_sets"),
                     ("parameter_optimization", "optimization_history"),
                     ("performance_analysis", "performance_metrics"), ("performance_analysis", "drawdowns"),
                     ("performance_analysis", "correlations"), ("validation", "validation_results"),
                     ("validation", "performance_report")]
    )
    assert g.downstream("parameter_optimization") == ("performance_analysis", "validation", "report")
    assert g.phases["validation"].input_for("best_parameters").upstream_ref == "parameter_optimization.best_parameters"
    assert g.phases["performance_analysis"].input_for("top_parameter_sets").upstream_output == "top_10_parameter_sets"


def test_data_split_and_phase_settings():
    spec = _spec()
    g = spec.graph
    assert spec.data.symbols == ["SPY", "QQQ"]
    assert (spec.data.start_date, spec.data.end_date) == (date(2021, 1, 1), date(2023, 12, 31))
    assert spec.data.split.test_start == date(2023, 1, 1)
    assert dict(g.phases["data"].config) == {
        "symbols": ["SPY", "QQQ"], "start_date": "2021-01-01", "end_date": "2023-12-31",
        "split": {"test_start": "2023-01-01"},
    }
    opt = g.phases["parameter_optimization"]
    assert opt.declared_type == "optimization" and opt.type == "parameter_search"
    assert opt.config["optimization"]["parameters"] == {
        "fast_period": {"values": [5, 10, 15, 20]},
        "slow_period": {"values": [20, 30, 40, 50]},
        "signal_threshold": {"values": [0.0, 0.01, 0.02]},
    }
    assert (opt.config["optimization"]["method"], opt.config["optimization"]["objective"]) == ("grid", "sharpe_ratio")
    assert opt.config["data_split"] == "train" and opt.config["top_n"] == 10
    assert (opt.retries.count, opt.retries.delay, opt.retries.backoff) == (2, 5.0, "exponential")
    assert opt.timeout_seconds == 1800.0
    assert opt.critical is True
    assert {m: (c.min, c.max) for m, c in opt.success_criteria.items()} == {"n_valid_trials": (10.0, None)}
    assert opt.max_workers == 2
    an = g.phases["performance_analysis"].config
    assert an["analyzers"] == ["drawdown_analysis", "correlation_analysis"]
    val = g.phases["validation"]
    assert (val.config["data_split"], val.config["include_transaction_costs"]) == ("test", True)
    assert (val.config["cost_bps"], val.config["slippage_bps"]) == (5.0, 2.0)
    assert {m: (c.min, c.max) for m, c in val.success_criteria.items()} == {
        "max_drawdown": (-0.5, None), "n_trades": (1.0, None)}
    assert val.critical is False and val.on_failure == "abort"
    assert g.phases["report"].config["title"] == "Basic Research Pipeline"
    assert g.executor == "in_process"
    assert spec.warnings == []
