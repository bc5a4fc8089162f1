"""paper_trading: what it deploys, what a run books, and what validation refuses (without Dagster;
tests/workflow/test_deployment_runs.py runs it as partitioned assets)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine.backtest import BacktestConfig, run_backtest
from admf_assets.phases.kind import PhaseError, run_phase
from admf_assets.workflow.context import phase_context
from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.loader import load_workflow_dict

LEDGER = {"start_date": "2022-03-01", "end_date": "2022-06-30", "expected_split": "train"}
SEARCH = {"name": "opt", "type": "optimization",
          "config": {"mode": "long_short", "optimization": {"parameters": {"fast_period": [5, 10],
                                                                           "slow_period": [20, 40]}}}}


def _graph(kit, *phases, data=None):
    doc = {"workflow": {"name": "paper", "id": "paper"},
           "data": data or {"symbols": kit.SYMBOLS, "start_date": kit.START, "end_date": kit.END,
                            "split": {"test_start": kit.TEST_START}},
           "phases": list(phases), "reporting": {"enabled": False}}
    return load_workflow_dict(doc, source="paper.yaml")


@pytest.fixture(scope="module")
def store(tmp_path_factory, kit):
    return kit.write_market(tmp_path_factory.mktemp("paper") / "store")


def _run(kit, store, graph, phase, partition_keys=()):
    """Every phase before ``phase`` as the harness does, then ``phase`` with ``partition_keys``."""
    loaded = {}
    for name in graph.order:
        node = graph.phases[name]
        ctx = phase_context(graph, node, loaded, store=store, partition_keys=partition_keys if name == phase else ())
        res = run_phase(node.kind, ctx)
        if name == phase:
            return res, loaded
        for o in node.outputs:
            loaded[o.ref] = res.outputs[o.canonical]
    raise AssertionError(phase)


def _closes(store, kit):
    keys = [d.strftime("%Y-%m-%d") for d in pd.bdate_range(kit.START, kit.END)]
    bars = store.read_partitions(["market", "clean_bars"], keys)
    return bars.pivot(index="date", columns="symbol", values="close")[sorted(kit.SYMBOLS)]


def test_the_ledger_trades_the_searched_parameters_as_they_were_searched(kit, store):
    """best_parameters with the search's trading behaviour (long_short here) and the ledger's own
    costs: from its second day it earns the engine's backtest returns exactly."""
    g = _graph(kit, SEARCH, {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters"],
                             "config": LEDGER}).graph
    res, loaded = _run(kit, store, g, "paper")
    best = loaded["opt.best_parameters"].iloc[0]
    params = json.loads(best["params"])
    engine = run_backtest(_closes(store, kit), best["strategy"], params,
                          BacktestConfig(cost_bps=5.0, slippage_bps=2.0, mode="long_short")).returns.iloc[:, 0]
    perf = res.outputs["performance_validation"].set_index("date")
    assert perf.index[0] == pd.Timestamp("2022-03-01") and perf.index[-1] == pd.Timestamp("2022-06-30")
    assert np.array_equal(perf["return"].iloc[1:].to_numpy(), engine.loc[perf.index[1:]].to_numpy())
    assert json.loads(perf["deployment"].iloc[0])["settings"]["mode"] == "long_short"
    assert (res.outputs["ledger"]["position"].to_numpy() < 0).any()  # it really went short
    assert res.metrics["days_booked"] == len(perf) and res.metrics["n_trades"] > 0
    assert set(res.checks) == {"duration_days", "tracking_deviation", "volatility_deviation"}
    assert res.checks["duration_days"].passed == (len(perf) >= 30)


def test_booking_one_day_gives_the_rows_booking_them_all_gives(kit, store):
    g = _graph(kit, SEARCH, {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters"],
                             "config": {**LEDGER, "shadow_mode": True}}).graph
    whole, _ = _run(kit, store, g, "paper")
    for day in ("2022-03-01", "2022-04-14", "2022-06-30"):
        one, _ = _run(kit, store, g, "paper", partition_keys=(day,))
        for name, frame in one.outputs.items():
            assert set(frame["date"].dt.strftime("%Y-%m-%d")) == {day}, name
            expect = whole.outputs[name][whole.outputs[name]["date"] == pd.Timestamp(day)].reset_index(drop=True)
            pd.testing.assert_frame_equal(frame, expect, obj=f"{name} {day}")
    week, _ = _run(kit, store, g, "paper", partition_keys=("2022-04-11", "2022-04-12", "2022-04-13"))
    assert week.metrics["days_booked"] == len(pd.bdate_range("2022-03-01", "2022-04-13"))  # from the start on


def test_a_different_deployed_configuration_is_refused_on_an_existing_ledger(kit, store, tmp_path):
    g = _graph(kit, SEARCH, {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters"],
                             "config": LEDGER}).graph
    first, _ = _run(kit, store, g, "paper", partition_keys=("2022-03-01",))
    prev = first.outputs["performance_validation"].assign(config_id="0123456789ab")
    store.write_partitions(["paper", "paper", "performance_validation"], prev, ["2022-03-01"], ["2022-03-01"],
                           views=False)
    try:
        with pytest.raises(PhaseError, match=r"the deployed configuration changed since the ledger's last booked day "
                                             r"\(2022-03-01: 0123456789ab, now [0-9a-f]{12}: momentum"):
            _run(kit, store, g, "paper", partition_keys=("2022-03-02",))
    finally:
        (store.partition_path(["paper", "paper", "performance_validation"], "2022-03-01")).unlink()


def test_an_ensemble_ledger_nets_its_members(kit, store):
    capture = {"name": "capture", "type": "signal_capture", "config": {
        "strategies": [{"type": "momentum", "parameters": {"fast_period": [5, 10], "slow_period": [30]}},
                       {"type": "mean_reversion", "parameters": {"lookback": [10, 20]}}], "data_split": "all"}}
    ens = {"name": "ensemble", "type": "ensemble_optimization", "inputs": ["capture"],
           "config": {"method": "equal_weight", "n_bootstrap": 0, "measure_recompute": False,
                      "rebalance_frequency": 5}}
    paper = {"name": "paper", "type": "live_simulation", "inputs": ["ensemble.optimal_ensemble_weights"],
             "config": LEDGER}
    g = _graph(kit, capture, ens, paper).graph
    res, loaded = _run(kit, store, g, "paper")
    dep = json.loads(res.outputs["performance_validation"]["deployment"].iloc[0])
    weights = loaded["ensemble.optimal_ensemble_weights"]
    assert len(dep["members"]) == int(weights["included"].sum()) == 4
    assert sum(m["weight"] for m in dep["members"]) == pytest.approx(1.0)
    assert "rebalances daily" in res.metadata["ledger"]["notes"]  # what of the research it cannot follow


def test_baselines_fixed_or_from_another_phase(kit, store):
    other = {**SEARCH, "name": "incumbent", "config": {"optimization": {"parameters": {
        "fast_period": [20], "slow_period": [50]}}}}
    paper = {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters"],
             "config": {**LEDGER, "shadow_mode": True, "comparison_baseline": "incumbent.best_parameters"}}
    spec = _graph(kit, SEARCH, other, paper)
    node = spec.graph.phases["paper"]
    ref = [e for e in node.upstream if e.upstream_phase == "incumbent"]
    assert [(e.kind, e.consumed) for e in ref] == [("reference", False)]  # read for the baseline, not deployed
    res, _ = _run(kit, store, spec.graph, "paper")
    comp = res.outputs["comparative_results"]
    assert comp["baseline"].iloc[0] == 'momentum {"fast_period": 20, "signal_threshold": 0.0, "slow_period": 50}'
    assert set(res.outputs["ledger"]["book"]) == {"deployed", "baseline"}
    paper["config"]["comparison_baseline"] = {"strategy": "breakout", "parameters": {"lookback": 30}}
    res, _ = _run(kit, store, _graph(kit, SEARCH, paper).graph, "paper")
    assert res.outputs["comparative_results"]["baseline"].iloc[0] == 'breakout {"lookback": 30}'
    assert res.metrics["excess_return_vs_baseline"] == pytest.approx(
        res.outputs["comparative_results"]["cumulative_excess"].iloc[-1])


def test_a_fixed_deployment_needs_no_input(kit, store):
    paper = {"name": "paper", "type": "paper_trading",
             "config": {**LEDGER, "strategy": "momentum", "parameters": {"fast_period": 10, "slow_period": 40}}}
    res, _ = _run(kit, store, _graph(kit, paper).graph, "paper")
    assert res.outputs["performance_validation"]["strategy"].iloc[0] == \
        'momentum {"fast_period": 10, "slow_period": 40}'


def test_too_few_expected_returns_is_one_clear_error(kit, store):
    paper = {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters"],
             "config": {"start_date": "2022-01-10", "end_date": "2022-02-28"}}  # test split before it: 4 days
    with pytest.raises(PhaseError, match=r"the expected distribution needs at least 20 daily returns before the "
                                         r"ledger's start 2022-01-10; .* has 4 \(field 'config.expected_split'"):
        _run(kit, store, _graph(kit, SEARCH, paper).graph, "paper")


def _errors(kit, *phases, data=None) -> list[str]:
    with pytest.raises(WorkflowError) as info:
        _graph(kit, *phases, data=data)
    return info.value.lines()


def test_validation_refuses_what_cannot_run(kit):
    two = {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters", "opt2.best_parameters"]}
    assert _errors(kit, SEARCH, {**SEARCH, "name": "opt2"}, two) == [
        "paper.yaml: phase 'paper': field 'inputs': ambiguous best_parameters: opt.best_parameters, "
        "opt2.best_parameters; keep exactly one in inputs / depends_on"]
    two_kinds = {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters", "paper0.performance_validation"]}
    assert _errors(kit, SEARCH, {"name": "paper0", "type": "paper_trading", "inputs": ["opt.best_parameters"],
                                 "config": LEDGER}, {**two_kinds, "config": LEDGER}) == [
        "paper.yaml: phase 'paper': field 'inputs': give one of best_parameters, optimal_ensemble_weights, "
        "performance_validation, production_configuration, not 2: opt.best_parameters, paper0.performance_validation"]
    broker = {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters"],
              "config": {"paper_trading_only": False}}
    assert _errors(kit, SEARCH, broker) == [
        "paper.yaml: phase 'paper': field 'config.paper_trading_only': this platform does not connect to a broker: "
        "paper_trading books a simulated ledger (shadow_mode: true runs a baseline beside it)"]
    dates = {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters"],
             "config": {"start_date": "2022-03-01", "end_date": "2022-02-01", "history_start": "2022-04-01"}}
    assert _errors(kit, SEARCH, dates) == [
        "paper.yaml: phase 'paper': field 'config.history_start': history_start 2022-04-01 must be before the "
        "ledger's start 2022-03-01",
        "paper.yaml: phase 'paper': field 'config.end_date': end_date 2022-02-01 is before the ledger's start "
        "2022-03-01"]
    live = {"name": "rollout", "type": "gradual_rollout"}
    assert _errors(kit, SEARCH, live) == [
        "paper.yaml: phase 'rollout': field 'type': phase type 'gradual_rollout' (live_trading) is not offered: this "
        "platform does not connect to a broker (simulate the deployment with type paper_trading, and shadow_mode: "
        "true for a baseline beside it)"]
    nothing = {"name": "paper", "type": "paper_trading"}
    assert _errors(kit, nothing) == [
        "paper.yaml: phase 'paper': field 'inputs': phase type 'paper_trading' needs best_parameters or "
        "optimal_ensemble_weights or performance_validation or production_configuration from an upstream phase: no phase of this workflow "
        "produces it (or set config.parameters)"]


def test_partitions_of_one_workflow_must_agree(kit):
    a = {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters"]}
    b = {"name": "shadow", "type": "paper_trading", "inputs": ["paper.performance_validation"],
         "config": {"start_date": "2024-02-01"}}
    assert _errors(kit, SEARCH, a, b) == [
        "paper.yaml: phase 'shadow': field 'config': its partitions (market days from 2024-02-01) differ from "
        "phase 'paper''s (market days from 2022-07-01); one workflow holds one set of partitions: make them the "
        "same or use a separate workflow"]


def test_a_baseline_without_shadow_mode_is_an_ignored_key(kit):
    paper = {"name": "paper", "type": "paper_trading", "inputs": ["opt.best_parameters"],
             "config": {"comparison_baseline": "buy_and_hold"}}
    spec = _graph(kit, SEARCH, paper)
    assert spec.warnings == ["paper.yaml: phase 'paper': field 'config.comparison_baseline': ignored: set "
                             "shadow_mode: true to run a baseline beside the deployed configuration"]
    assert [o.name for o in spec.graph.phases["paper"].outputs] == ["ledger", "performance_validation"]


def test_the_strategy_construction_backtests_the_ensemble_as_it_is_deployed(kit, store):
    """Seed 001's strategy construction: a backtest of an ensemble's weights at a risk-managed
    exposure nets the members like the ledger; its production_configuration deploys exactly
    that (the ledger earns the backtest's returns from its second day); the seed's switches
    without a model are one warning each."""
    capture = {"name": "capture", "type": "signal_capture", "config": {
        "strategies": [{"type": "momentum", "parameters": {"fast_period": [5, 10], "slow_period": [30]}},
                       {"type": "breakout", "parameters": {"lookback": [10, 20]}}], "data_split": "all"}}
    ens = {"name": "ensemble", "type": "ensemble_optimization", "inputs": ["capture"],
           "config": {"method": "inverse_volatility", "n_bootstrap": 0, "measure_recompute": False}}
    risk = {"name": "risk", "type": "risk_analysis", "inputs": ["opt.best_parameters"],
            "config": {"risk_budget": {"var": 0.004, "level": 0.99}}}
    build = {"name": "build", "type": "backtest", "inputs": ["ensemble.optimal_ensemble_weights", "risk.risk_recommendations"],
             "config": {"generate_deployment_config": True, "include_market_impact": True,
                        "realistic_execution_delays": True, "regime_aware_position_sizing": True},
             "outputs": ["final_strategy_performance", "performance_report", "production_configuration",
                         "implementation_guide", "monitoring_recommendations"]}
    paper = {"name": "paper", "type": "live_simulation", "inputs": ["build.production_configuration"],
             "config": {**LEDGER, "start_date": "2022-03-01"}}
    spec = _graph(kit, SEARCH, capture, ens, risk, build, paper)
    fields = [w.split("field ")[1].split(":")[0] for w in spec.warnings if "phase 'build'" in w]
    assert fields == ["'config.include_market_impact'", "'config.realistic_execution_delays'",
                      "'config.regime_aware_position_sizing'", "'outputs[3]'", "'outputs[4]'"], spec.warnings
    g = spec.graph
    res, loaded = _run(kit, store, g, "build")
    prod = res.outputs["production_configuration"]
    weights = loaded["ensemble.optimal_ensemble_weights"]
    inc = weights[(weights["regime"] == "all") & weights["included"]]
    assert len(prod) == len(inc) and prod["config_id"].nunique() == 1
    assert prod["weight"].to_numpy() == pytest.approx(inc["weight"].to_numpy())
    scale = float(res.outputs["validation_results"]["exposure_scale"].iloc[0])
    assert 0 < scale < 1  # the budget binds: the deployment runs at the recommended exposure
    dep = json.loads(prod["deployment"].iloc[0])
    assert sum(dep["settings"]["weights"].values()) == pytest.approx(scale)
    # the backtest by hand: the members' captured positions netted with the weights, replayed
    from admf_assets.engine.capture import capture_signals, concat_captured, replay

    close = _closes(store, kit)
    caps = [capture_signals(close, r["strategy"], pd.DataFrame([json.loads(r["params"])]), id_prefix=f"m{i}")
            for i, (_, r) in enumerate(inc.iterrows())]
    cap = concat_captured(caps)
    cfg = BacktestConfig(cost_bps=g.phases["build"].settings.cost_bps, slippage_bps=g.phases["build"].settings.slippage_bps,
                         weights=np.full(len(close.columns), scale / len(close.columns)))
    by_hand = replay(cap, close, cfg, weights=dict(zip(cap.strategy_ids, inc["weight"])))["ensemble"]
    perf = res.outputs["performance_report"].set_index("date")["return"]
    np.testing.assert_allclose(perf.to_numpy(), by_hand.loc[perf.index].to_numpy(), rtol=0, atol=1e-14)
    # ... and the ledger deploying its production configuration earns it from its second day
    ledger_res, _ = _run(kit, store, g, "paper")
    daily = ledger_res.outputs["performance_validation"].set_index("date")["return"]
    both = daily.index[1:].intersection(perf.index)
    assert len(both) > 50
    np.testing.assert_allclose(daily.loc[both].to_numpy(), perf.loc[both].to_numpy(), rtol=0, atol=1e-14)
