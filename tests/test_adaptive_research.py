"""The adaptive research workflow (seed 001) end to end through the runner, on a shorter range
of the default synthetic data; conditional branches and ``enabled:`` conditions in Dagster:
only the branch taken runs, the decision is in the metadata, a false gate skips its phase."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
START, END, TEST_START = "2022-01-03", "2023-06-30", "2023-01-02"


MARKET = (["SPY", "QQQ"], START, END)


@pytest.fixture(scope="module")
def home(market_home):
    return market_home


def _adaptive(threshold: float | None = None):
    """The shipped workflow on 2022-01 .. 2023-06 with smaller budgets (same phases, same kinds)."""
    from admf_assets.workflow.loader import load_workflow_dict

    doc = yaml.safe_load((REPO / "workflows" / "adaptive_research.yaml").read_text(encoding="utf-8"))
    doc["data"].update({"start_date": START, "end_date": END, "split": {"test_start": "2023-01-01"}})
    phases = {p["name"]: p for p in doc["phases"]}
    phases["market_regimes"]["config"]["regime_detection"].update({"methods": ["hmm", "k_means"], "n_regimes": [2]})
    phases["ensemble_construction"]["config"].update({"n_bootstrap": 3, "rebalance_frequency": [5, 20],
                                                       "regime_confidence_threshold": 0.6})
    if threshold is not None:
        phases["strategy_selection"]["condition"] = phases["strategy_selection"]["condition"].replace(
            "0.25", str(threshold))
    return load_workflow_dict(doc, source="adaptive_research.yaml", default_id="adaptive_research").graph


def _meta(instance, *key):
    ev = instance.get_latest_materialization_event(dg.AssetKey(list(key)))
    return None if ev is None else {k: getattr(v, "value", v) for k, v in ev.asset_materialization.metadata.items()}


def test_adaptive_research_end_to_end(home):
    from admf_assets import runner, settings

    graph = _adaptive()
    with dg.DagsterInstance.get() as instance:
        out = runner.run_workflow(graph, instance)
        assert out.success, out.failures
        assert out.materialized == len(graph.asset_keys()) == 17
        store = settings.storage_root() / "tables" / "adaptive_research"
        bars = pd.read_parquet(store / "data" / "bars.parquet")
        # the assessment sees the train split only: recompute its volatility with pandas
        train = bars[bars.split == "train"].pivot(index="date", columns="symbol", values="close")
        vol = train.pct_change().mean(axis=1).iloc[1:].std(ddof=1) * np.sqrt(252)
        cond = pd.read_parquet(store / "initial_assessment" / "market_conditions.parquet").iloc[0]
        assert cond.volatility == pytest.approx(vol, rel=1e-12)
        decision = pd.read_parquet(store / "strategy_selection" / "branch_decision.parquet").iloc[0]
        taken = "if_true" if vol > 0.25 else "if_false"
        assert decision.branch == taken and decision.branch_type == "parameter_search"
        meta = _meta(instance, "adaptive_research", "strategy_selection", "selected_strategies")
        assert meta["condition"] == "${initial_assessment.market_conditions.volatility} > 0.25"
        assert meta["branch_taken"] == taken and meta["condition_value"] == (vol > 0.25)
        assert meta["ref initial_assessment.market_conditions.volatility"] == pytest.approx(vol)
        # only the branch taken ran: its strategies, its grid
        hist = pd.read_parquet(store / "strategy_selection" / "optimization_results.parquet")
        expected = {"momentum", "mean_reversion"} if taken == "if_false" else {"mean_reversion", "breakout"}
        assert set(hist.strategy) == expected
        assert len(hist) == (9 + 3 if taken == "if_false" else 2 * 4 + 4)
        sel = pd.read_parquet(store / "strategy_selection" / "selected_strategies.parquet")
        assert len(sel) == 8 and sel["rank"].tolist() == list(range(1, 9))
        # regimes: causal labels for every date, the filtered probability of the label
        reg = pd.read_parquet(store / "market_regimes" / "regime_classifications.parquet")
        assert len(reg) == bars.date.nunique() and set(reg.regime) <= {"calm", "volatile", "unknown"}
        assert np.allclose(reg.probability, reg[["probability_calm", "probability_volatile"]].max(axis=1))
        assert _meta(instance, "adaptive_research", "market_regimes", "regime_classifications")[
            "accuracy/markov"] > 0.8
        # the ensemble: fit on train, every weight vector meets the constraints
        w = pd.read_parquet(store / "ensemble_construction" / "optimal_ensemble_weights.parquet")
        assert set(w.regime) == {"calm", "volatile", "all"}
        for _, g in w.groupby("regime"):
            assert g.weight.sum() == pytest.approx(1.0, abs=1e-9)
            inc = g[g.included]
            assert (inc.weight >= 0.05 - 1e-9).all() and (inc.weight <= 0.4 + 1e-9).all() and inc.eligible.all()
        assert set(w.strategy_id) == set(pd.read_parquet(store / "signal_capture" / "signal_metadata.parquet")
                                         .strategy_id)
        perf = pd.read_parquet(store / "ensemble_construction" / "ensemble_performance_metrics.parquet")
        assert set(zip(perf.portfolio.str.split().str[0], perf.split)) >= {("ensemble", "train"),
                                                                           ("ensemble", "test")}
        daily = pd.read_parquet(store / "ensemble_construction" / "ensemble_returns.parquet")
        test = perf[(perf.portfolio == "ensemble") & (perf.split == "test")].iloc[0]
        after = daily[daily.date > pd.Timestamp(TEST_START)]
        assert test.total_return == pytest.approx((1 + after.ensemble).prod() - 1, rel=1e-9)
        em = _meta(instance, "adaptive_research", "ensemble_construction", "optimal_ensemble_weights")
        assert em["all_constraints_met"] is True and em["evaluations_by_replay"] >= 1
        assert out.report_path and "Adaptive Research Workflow" in Path(out.report_path).read_text()


def test_the_other_branch_runs_when_the_condition_flips(home):
    from admf_assets import runner, settings

    with dg.DagsterInstance.get() as instance:
        out = runner.run_workflow(_adaptive(threshold=0.01), instance)  # volatility > 0.01: if_true
        assert out.success, out.failures
    store = settings.storage_root() / "tables" / "adaptive_research"
    decision = pd.read_parquet(store / "strategy_selection" / "branch_decision.parquet").iloc[0]
    assert decision.branch == "if_true" and decision.condition_value == "True"
    hist = pd.read_parquet(store / "strategy_selection" / "optimization_results.parquet")
    assert set(hist.strategy) == {"mean_reversion", "breakout"} and len(hist) == 12
    # the stop of the high-volatility branch is in its effective config (its code version)
    cfg = json.loads(pd.read_parquet(store / "strategy_selection" / "selected_strategies.parquet").params.iloc[0])
    assert "lookback" in cfg


GATED = """\
workflow: {{name: gated, id: gated}}
data: {{symbols: [SPY, QQQ], start_date: {start}, end_date: {end}, split: {{test_start: 2023-01-01}}}}
phases:
  - name: opt
    type: optimization
    config: {{optimization: {{parameters: {{fast_period: [5, 10], slow_period: [30, 50]}}}}}}
  - name: validation
    type: backtest
    inputs: [opt.best_parameters]
    enabled: "${{opt.best_parameters.sharpe_ratio}} > {bar}"
    success_criteria: {{sharpe_ratio: {{min: -100}}}}
  - name: select
    type: conditional
    condition: "${{opt.best_parameters.sharpe_ratio}} > {bar}"
    if_true: {{type: backtest, inputs: [opt.best_parameters]}}
reporting: {{enabled: false}}
"""


@pytest.mark.parametrize("bar,runs", [(-100, True), (100, False)])
def test_enabled_conditions_gate_a_phase(home, bar, runs):
    from admf_assets import runner
    from admf_assets.workflow.loader import load_workflow_text

    graph = load_workflow_text(GATED.format(start=START, end=END, bar=bar), source="gated.yaml").graph
    with dg.DagsterInstance.get() as instance:
        out = runner.run_workflow(graph, instance)
        assert out.success, out.failures
        run_mats = {tuple(e.event_specific_data.materialization.asset_key.path) for e in
                    [r.event_log_entry.dagster_event for r in instance.get_records_for_run(
                        out.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records]}
        gated = {k for k in graph.asset_keys() if k[1] == "validation"}
        branch = {k for k in graph.asset_keys() if k[1] == "select" and k[2] != "branch_decision"}
        assert ("gated", "select", "branch_decision") in run_mats
        assert (gated <= run_mats) == runs and (branch <= run_mats) == runs
        assert not runs or not (gated | branch) - run_mats
        if not runs:
            assert not (gated | branch) & run_mats
            obs = instance.get_records_for_run(out.run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION).records
            seen = {tuple(r.event_log_entry.dagster_event.event_specific_data.asset_observation.asset_key.path): r
                    for r in obs}
            assert gated <= set(seen) and branch <= set(seen)
            md = seen[sorted(gated)[0]].event_log_entry.dagster_event.event_specific_data.asset_observation.metadata
            assert md["condition_value"].value is False and md["skipped"].value is True
            assert "ref opt.best_parameters.sharpe_ratio" in md
