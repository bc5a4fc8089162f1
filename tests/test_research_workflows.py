"""The shipped production_optimization (seed 000) and regime_adaptive_ensemble (seed 001)
workflows, and the built-in regime template with every phase enabled, end to end through the
runner on a shorter range of the default synthetic data and smaller budgets (same phases,
same kinds, same keys)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
START, END, TEST_START = "2021-01-04", "2023-06-30", "2023-01-02"
MARKET = (["SPY", "QQQ"], START, END)


def _doc(name: str) -> dict:
    doc = yaml.safe_load((REPO / "workflows" / f"{name}.yaml").read_text(encoding="utf-8"))
    doc["data"].update({"symbols": list(MARKET[0]), "start_date": START, "end_date": END,
                        "split": {"test_start": "2023-01-01"}})
    return doc


def _graph(doc: dict, name: str):
    from admf_assets.workflow.loader import load_workflow_dict

    return load_workflow_dict(doc, source=f"{name}.yaml", default_id=name).graph


def _summary(html: str) -> str:
    start = html.index("<h2>Executive summary</h2>")
    return html[start:html.index("<h2>", start + 10)]  # the first section, before every phase's


def _run(graph):
    """Run it through the runner: (outcome, the folder of its tables)."""
    from admf_assets import runner, settings

    with dg.DagsterInstance.get() as instance:
        out = runner.run_workflow(graph, instance)
    assert out.success, out.failures
    assert out.materialized == len(graph.asset_keys())
    return out, settings.storage_root() / "tables" / graph.workflow_id


# ------------------------------------------------------------------ production_optimization
def test_the_shipped_production_workflow_warns_once_per_seed_key_it_cannot_honour():
    from admf_assets.workflow.validate import load_workflow

    spec = load_workflow(str(REPO / "workflows" / "production_optimization.yaml"))
    fields = [w.split(": field ")[1].split(":")[0] if ": field " in w else w for w in spec.warnings]
    assert sorted(fields) == sorted(["'workflow.parallel_phases'", "'workflow.checkpoint_enabled'",
                                     "'workflow.max_total_memory_gb'", "'workflow.max_total_cores'",
                                     "'memory_gb'", "'cpu_cores'", "'config.capture_context'"])
    assert all(": ignored: " in w and "\n" not in w for w in spec.warnings)
    g = spec.graph
    assert g.order == ("data_prep", "feature_engineering", "signal_capture", "param_optimization", "validation",
                       "risk_analysis", "report")
    opt = g.phases["param_optimization"].config["optimization"]
    assert (opt["method"], opt["n_trials"]) == ("bayesian", 500)
    assert set(opt["parameters"]) == {"risk_level", "position_size", "stop_loss", "fast_period", "slow_period"}
    val = g.phases["validation"].config
    assert val["validation_method"] == ["monte_carlo", "bootstrap", "walk_forward", "deflated_sharpe", "pbo"]
    assert val["n_simulations"] == 1000


def _production(n_trials: int = 30):
    doc = _doc("production_optimization")
    phases = {p["name"]: p for p in doc["phases"]}
    phases["feature_engineering"]["config"]["lookback_periods"] = [5, 20]
    phases["param_optimization"]["config"]["n_iterations"] = n_trials
    phases["param_optimization"]["success_criteria"] = {"n_valid_trials": {"min": 10}}
    phases["validation"]["config"].update({"n_simulations": 200, "n_bootstrap": 500,
                                           "walk_forward": {"train_period_days": 200, "test_period_days": 60}})
    return _graph(doc, "production_optimization")


def test_production_optimization_end_to_end(market_home):
    out, store = _run(_production())
    # the bayesian search of seed 000's param_definitions: every trial inside its bounds
    hist = pd.read_parquet(store / "param_optimization" / "optimization_history.parquet")
    assert len(hist) == 30 and set(hist.state) == {"COMPLETE"}
    trading = pd.DataFrame([json.loads(t) for t in hist.trading])
    assert set(trading.columns) == {"target_vol", "position_size", "stop_loss"}  # risk_level = target_vol
    assert trading.target_vol.between(0.01, 0.05).all() and trading.position_size.between(0.05, 0.25).all()
    assert trading.stop_loss.between(0.02, 0.10).all()
    params = pd.DataFrame([json.loads(p) for p in hist.params])
    assert params.fast_period.between(5, 40).all() and params.slow_period.between(50, 200).all()
    # the validation: N = the trials the search ran; walk-forward folds inside the train split,
    # each re-searching the trading settings with TPE on its train window only
    summary = pd.read_parquet(store / "validation" / "validation_summary.parquet")
    s = summary.set_index("statistic")
    assert s.loc["n_trials", "value"] == 30
    assert set(summary.method) >= {"verdict", "monte_carlo", "bootstrap", "walk_forward", "deflated_sharpe", "pbo"}
    folds = pd.read_parquet(store / "validation" / "walk_forward_results.parquet")
    assert len(folds) >= 3 and (folds.train_end < folds.test_start).all()
    assert (pd.to_datetime(folds.test_end) < pd.Timestamp(TEST_START)).all()
    assert all(set(json.loads(t)) == {"target_vol", "position_size", "stop_loss"} for t in folds.trading)
    sims = pd.read_parquet(store / "validation" / "monte_carlo_simulations.parquet")
    assert len(sims) == 200
    # risk of the best set out of sample (2023)
    risk = pd.read_parquet(store / "risk_analysis" / "risk_metrics.parquet")
    assert len(risk) and set(risk.method) >= {"historical", "parametric", "cornish_fisher", "garch"}
    # the report leads with the verdict and the value of every criterion
    valid = bool(s.loc["is_valid", "value"])
    html = Path(out.report_path).read_text(encoding="utf-8")
    head = _summary(html)
    assert f'<p class="headline">{"Valid" if valid else "Not valid"}</p>' in head
    dsr = s.loc["deflated_sharpe_ratio", "value"]
    assert "deflated_sharpe_ratio" in head and f"{dsr:.4g}" in head
    assert "Deflated Sharpe ratio" in head


# ------------------------------------------------------------------ regime_adaptive_ensemble
def _regime_adaptive():
    doc = _doc("regime_adaptive_ensemble")
    phases = {p["name"]: p for p in doc["phases"]}
    phases["parameter_discovery"]["config"]["optimization"]["n_trials"] = 40
    phases["regime_analysis"]["config"]["regime_detection"].update({"methods": ["hmm", "k_means"],
                                                                   "n_regimes": [2]})
    phases["regime_specific_optimization"]["config"]["optimization"]["n_trials_per_regime"] = 12
    phases["ensemble_optimization"]["config"]["optimization"].update({"n_generations": 3, "population_size": 8})
    phases["ensemble_optimization"]["config"].update({"n_bootstrap": 3, "rebalance_frequency": [5, 20],
                                                      "regime_confidence_threshold": 0.6})
    return _graph(doc, "regime_adaptive_ensemble")


def test_regime_adaptive_ensemble_end_to_end(market_home):
    out, store = _run(_regime_adaptive())
    top = pd.read_parquet(store / "parameter_discovery" / "top_20_strategies.parquet")
    hist = pd.read_parquet(store / "parameter_discovery" / "optimization_history.parquet")
    assert len(top) == 20 and set(hist.strategy) == {"momentum", "mean_reversion", "breakout", "pairs_trading"}
    reg = pd.read_parquet(store / "regime_analysis" / "regime_classifications.parquet")
    labels = set(reg.regime) - {"unknown"}
    assert len(labels) == 2
    # per-regime optimization: the best set of each regime and family, searched on that regime's
    # days; a family among the top 20 searched over the ranges its sets span there
    best = pd.read_parquet(store / "regime_specific_optimization" / "regime_optimized_strategies.parquet")
    families = {"momentum", "mean_reversion", "breakout", "pairs_trading"}
    assert set(zip(best.regime, best.strategy)) == {(r, f) for r in labels for f in families}
    assert (best.n_days > 0).all() and (best.n_trials == 12).all()
    for strategy, g in top.groupby("strategy"):
        spans = pd.DataFrame([json.loads(p) for p in g.params])
        chosen = pd.DataFrame([json.loads(p) for p in best[best.strategy == strategy].params])
        for name in spans.columns[spans.nunique() > 1]:
            assert chosen[name].between(spans[name].min(), spans[name].max()).all(), name
    # the ensemble: one weight vector per regime (and the unconditional one), by replay
    w = pd.read_parquet(store / "ensemble_optimization" / "optimal_ensemble_weights.parquet")
    assert set(w.regime) == labels | {"all"}
    for _, g in w.groupby("regime"):
        assert g.weight.sum() == pytest.approx(1.0, abs=1e-9)
        inc = g[g.included]
        assert (inc.weight >= 0.05 - 1e-9).all() and (inc.weight <= 0.4 + 1e-9).all()
    captured = pd.read_parquet(store / "signal_capture" / "signal_metadata.parquet")
    assert set(w.strategy_id) == set(captured.strategy_id)
    assert set(captured.strategy) == families and captured.strategy_id.nunique() <= len(best)
    assert (w.groupby("regime").included.sum() >= 3).all()  # 3 x max_weight 0.4 >= 1: diverse members
    perf = pd.read_parquet(store / "ensemble_optimization" / "ensemble_performance_metrics.parquet")
    assert {("ensemble", "train"), ("ensemble", "test")} <= set(zip(perf.portfolio.str.split().str[0], perf.split))
    html = Path(out.report_path).read_text(encoding="utf-8")
    assert "Regime Adaptive Ensemble" in html and '<p class="headline">Not validated</p>' in _summary(html)


def test_the_regime_template_runs_with_every_phase_enabled(market_home, tmp_path):
    """``template: regime_adaptive_grid_search_ensemble`` alone (its five phases), on the short
    range: the validation judges the ensemble's out-of-sample returns and the report says so."""
    from admf_assets.workflow.validate import load_workflow

    path = tmp_path / "regime_template.yaml"
    path.write_text(yaml.safe_dump({
        "template": "regime_adaptive_grid_search_ensemble",
        "data": {"symbols": list(MARKET[0]), "start_date": START, "end_date": END,
                 "split": {"test_start": "2023-01-01"}},
        "phases": [{"name": "ensemble_optimization", "config": {"n_trials": 40}},
                   {"name": "validation", "config": {"n_simulations": 200, "n_bootstrap": 500}}]}))
    graph = load_workflow(str(path)).graph
    assert not graph.disabled and graph.order == ("data", "parameter_discovery", "regime_analysis", "signal_capture",
                                                  "ensemble_optimization", "validation", "report")
    out, store = _run(graph)
    summary = pd.read_parquet(store / "validation" / "validation_summary.parquet").set_index("statistic")
    daily = pd.read_parquet(store / "ensemble_optimization" / "ensemble_returns.parquet")
    test = daily[daily.split == "test"]
    assert summary.loc["total_return", "value"] == pytest.approx((1 + test.ensemble).prod() - 1, rel=1e-9)
    valid = bool(summary.loc["is_valid", "value"])
    head = _summary(Path(out.report_path).read_text(encoding="utf-8"))
    assert f'<p class="headline">{"Valid" if valid else "Not valid"}</p>' in head
    assert "deflated_sharpe_ratio" in head and f"{summary.loc['deflated_sharpe_ratio', 'value']:.4g}" in head
    assert np.isfinite(summary.loc["sharpe_ratio", "value"])
