"""risk_analysis: the returns it analyses (a backtest's performance_report or a search's best set),
stress scenarios (inside, outside the data), validation messages, and the backtest applying its
risk_recommendations (dynamic_risk_management)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine import risk
from admf_assets.engine.backtest import run_backtest
from admf_assets.engine.paramsets import parameter_set
from admf_assets.phases.common import close_matrix, split_mask, trading_config
from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.loader import load_workflow_dict

GRID = {"strategies": [{"type": "momentum"}],
        "optimization": {"method": "grid", "parameters": {"fast_period": [5, 10], "slow_period": [20, 40]}}}
SCENARIOS = [{"name": "spring_2021", "date_range": ["2021-03", "2021-05"]},
             {"name": "long_ago", "date_range": ["2008-09-01", "2009-03-31"]},
             {"name": "into_the_future", "start": "2022-05-01", "end": "2023-03-31"}]


def _doc(kit, phases, data=None):
    return {
        "workflow": {"name": "risk test", "id": "risk_test"},
        "data": data or {"symbols": kit.SYMBOLS, "start_date": kit.START, "end_date": kit.END,
                         "split": {"test_start": kit.TEST_START}},
        "phases": phases,
        "reporting": {"enabled": False},
    }


def _phases(risk_config=None, risk_inputs=("search.best_parameters",), managed=None):
    phases = [
        {"name": "search", "type": "parameter_search", "config": GRID},
        {"name": "oos", "type": "backtest", "inputs": ["search.best_parameters"],
         "config": {"data_split": "test", "include_transaction_costs": True}},
        {"name": "risk", "type": "risk_analysis", "inputs": list(risk_inputs),
         "config": {"stress_scenarios": SCENARIOS, **(risk_config or {})}},
    ]
    if managed is not None:
        phases.append({"name": "managed", "type": "backtest",
                       "inputs": ["search.best_parameters", "risk.risk_recommendations"],
                       "config": {"data_split": "test", "include_transaction_costs": True, **managed}})
    return phases


@pytest.fixture(scope="module")
def store(kit, tmp_path_factory):
    return kit.write_market(tmp_path_factory.mktemp("risk"))


def _run(kit, store, phases):
    graph = load_workflow_dict(_doc(kit, phases), source="<risk test>").graph
    return graph, kit.execute(graph, store)


def test_best_parameters_on_the_train_split(kit, store):
    graph, res = _run(kit, store, _phases())
    bars = res["data"].outputs["bars"]
    best = res["search"].outputs["best_parameters"]
    close = close_matrix(bars)
    strategy, params = parameter_set(best.iloc[0])
    cfg = graph.phases["risk"].settings
    assert cfg.data_split == "train" and cfg.include_transaction_costs  # the kind's defaults
    direct = run_backtest(close, strategy, params, cfg.trading()).returns.iloc[:, 0]
    direct = direct[split_mask(bars, close.index, "train")]
    out = res["risk"].outputs
    var = out["risk_metrics"]
    hist99 = var[(var.series == "strategy") & (var.method == "historical") & (var.level == 0.99)].iloc[0]
    assert hist99["var"] == pytest.approx(-np.quantile(direct.to_numpy(), 0.01), rel=1e-12)
    assert hist99["n_obs"] == len(direct)
    assert set(var["method"]) == set(risk.VAR_METHODS) and set(var["level"]) == {0.95, 0.99, 0.999}
    assert res["risk"].metrics["var_99"] == pytest.approx(hist99["var"])
    # buy and hold: equal weights at full exposure, rebalanced every bar
    bh = close.pct_change().fillna(0.0).mean(axis=1)[direct.index]
    bh99 = var[(var.series == "buy_and_hold") & (var.method == "historical") & (var.level == 0.99)].iloc[0]
    assert bh99["var"] == pytest.approx(-np.quantile(bh.to_numpy(), 0.01), rel=1e-12)
    rec = out["risk_recommendations"]
    assert rec["measured_end"].iloc[0] < pd.Timestamp(kit.TEST_START)  # measured on the train split only


def test_stress_scenarios_inside_and_outside_the_data(kit, store):
    _, res = _run(kit, store, _phases({"data_split": "all"}))
    stress = res["risk"].outputs["stress_test_results"].set_index("scenario")
    assert list(stress.index) == ["spring_2021", "long_ago", "into_the_future"]
    spring = stress.loc["spring_2021"]
    assert spring["start"] == pd.Timestamp("2021-03-01") and spring["end"] == pd.Timestamp("2021-05-31")
    assert spring["n_bars"] > 55 and spring["note"] == ""
    assert np.isfinite(spring["strategy_return"]) and np.isfinite(spring["buy_and_hold_return"])
    assert stress.loc["long_ago", "n_bars"] == 0
    assert stress.loc["long_ago", "note"] == "outside the data (2021-01-04..2022-06-30)"
    assert stress.loc["into_the_future", "note"].startswith("partly outside the data")
    assert res["risk"].metrics["n_scenarios_outside"] == 1
    covered = stress[stress.n_bars > 0]
    assert res["risk"].metrics["worst_stress_return"] == pytest.approx(covered["strategy_return"].min())


def test_a_backtests_performance_report(kit, store, caplog):
    with caplog.at_level("WARNING", logger="admf.phase"):
        _, res = _run(kit, store, _phases({"cost_bps": 9.0}, risk_inputs=("oos.performance_report",)))
    assert "config cost_bps ignored: the returns are the backtest's performance_report" in caplog.text
    assert "stress scenario 'long_ago': outside the backtest's test period" in caplog.text
    perf = res["oos"].outputs["performance_report"]
    out = res["risk"].outputs
    var = out["risk_metrics"]
    row = var[(var.series == "strategy") & (var.method == "parametric") & (var.level == 0.95)].iloc[0]
    r = perf["return"].to_numpy()
    assert row["n_obs"] == len(r)
    assert row["var"] == pytest.approx(-(r.mean() + r.std(ddof=1) * -1.6448536269514722), rel=1e-9)
    assert res["risk"].metadata["risk_metrics"]["returns"] == "the backtest's returns (performance_report)"
    stress = out["stress_test_results"].set_index("scenario")
    assert stress.loc["spring_2021", "note"].startswith("outside the backtest's test period")
    dd = out["drawdowns"]
    assert dd["depth"].min() == pytest.approx(perf["drawdown"].min())


def test_backtest_applies_the_recommended_exposure(kit, store):
    budget = {"risk_budget": {"var": 0.004, "level": 0.99, "max_drawdown": None}}
    graph, res = _run(kit, store, _phases(budget, managed={"dynamic_risk_management": True}))
    recs = res["risk"].outputs["risk_recommendations"]
    k = float(recs.loc[recs.constraint == "exposure_scale", "scale"].iloc[0])
    assert 0 < k < 1 and recs.loc[recs.constraint == "var", "binding"].iloc[0]
    plain = res["oos"].outputs["performance_report"]["return"].to_numpy()
    managed = res["managed"].outputs["performance_report"]
    np.testing.assert_allclose(managed["return"].to_numpy(), k * plain, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(managed["exposure"].to_numpy(),
                               k * res["oos"].outputs["performance_report"]["exposure"].to_numpy())
    vr = res["managed"].outputs["validation_results"].iloc[0]
    assert vr["exposure_scale"] == pytest.approx(k)
    meta = res["managed"].metadata["validation_results"]
    assert meta["exposure_scale"] == pytest.approx(k) and "exposure_in_sample" not in meta  # train vs test
    assert res["oos"].outputs["validation_results"].iloc[0]["exposure_scale"] == 1.0
    # dynamic_risk_management: false keeps full exposure
    _, off = _run(kit, store, _phases(budget, managed={"dynamic_risk_management": False}))
    np.testing.assert_array_equal(off["managed"].outputs["performance_report"]["return"].to_numpy(), plain)


def test_exposure_measured_on_the_backtest_period_is_flagged_in_sample(kit, store):
    _, res = _run(kit, store, _phases({"data_split": "all"}, managed={}))
    meta = res["managed"].metadata["validation_results"]
    assert "in-sample" in meta["exposure_in_sample"]


def _error(kit, phases) -> str:
    with pytest.raises(WorkflowError) as exc:
        load_workflow_dict(_doc(kit, phases), source="wf.yaml")
    return str(exc.value)


@pytest.mark.parametrize("config, field, text", [
    ({"stress_scenarios": [{"name": "x", "date_range": ["2021-05-01", "2021-01-01"]}]},
     "stress_scenarios[0]", "start 2021-05-01 is after end 2021-01-01"),
    ({"stress_scenarios": [{"name": "x", "date_range": ["2021-13", "2021-14"]}]},
     "stress_scenarios[0]", "is not a month"),
    ({"stress_scenarios": [{"name": "x", "date_range": ["2021-01-01"]}]}, "stress_scenarios[0]",
     "expected [start, end]"),
    ({"stress_scenarios": [{"name": "x", "date_range": ["2021-01", "2021-02"]},
                           {"name": "x", "date_range": ["2021-03", "2021-04"]}]},
     "stress_scenarios[1].name", "used twice"),
    ({"var_methods": ["historical", "montecarlo"]}, "var_methods[1]", "unknown VaR method"),
    ({"confidence_levels": [95]}, "confidence_levels", "in (0, 1)"),
    ({"risk_budget": {"method": "vibes"}}, "risk_budget.method", "or worst"),
    ({"risk_budget": {"max_drawdown": 1.5}}, "risk_budget.max_drawdown", ""),
])
def test_config_mistakes_are_one_line_naming_the_field(kit, config, field, text):
    msg = _error(kit, [{"name": "search", "type": "parameter_search", "config": GRID},
                       {"name": "risk", "type": "risk_analysis", "inputs": ["search.best_parameters"],
                        "config": config}])
    assert "\n" not in msg and "wf.yaml" in msg and "phase 'risk'" in msg and field in msg and text in msg, msg


def test_risk_analysis_needs_returns_and_dynamic_risk_management_needs_recommendations(kit):
    msg = _error(kit, [{"name": "risk", "type": "risk_analysis"}])
    assert "needs performance_report or best_parameters or top_parameter_sets" in msg
    msg = _error(kit, [{"name": "search", "type": "parameter_search", "config": GRID},
                       {"name": "bt", "type": "backtest", "inputs": ["search.best_parameters"],
                        "config": {"dynamic_risk_management": True}}])
    assert "needs risk_recommendations" in msg and "config.dynamic_risk_management is true" in msg, msg


def test_seed_keys_are_accepted_with_ignored_warnings(kit):
    spec = load_workflow_dict(_doc(kit, [
        {"name": "search", "type": "parameter_search", "config": GRID},
        {"name": "risk", "type": "risk_analysis", "inputs": ["search.best_parameters"], "config": {
            "risk_analysis": {"var_analysis": True, "stress_testing": True, "scenario_analysis": True},
            "stress_scenarios": [{"name": "covid_crash", "date_range": ["2020-02-01", "2020-04-01"]}],
            "tail_risk_analysis": {"confidence_levels": [0.95, 0.99, 0.999], "extreme_scenario_modeling": True},
        }},
    ]), source="seed.yaml")
    cfg = spec.graph.phases["risk"].settings
    assert cfg.confidence_levels == [0.95, 0.99, 0.999]
    text = "\n".join(spec.warnings)
    assert "risk_analysis" in text and "ignored" in text
    assert "extreme_scenario_modeling" in text
    assert "'covid_crash' (2020-02-01..2020-04-01) is outside the workflow's data" in text


def test_report_sections_render(kit, store):
    from admf_assets.engine.report import render_report

    graph, res = _run(kit, store, _phases({"data_split": "all"}))
    views = {v.phase: v for v in kit.views(graph, res)}
    sections = graph.phases["risk"].kind.sections(views["risk"])
    titles = [s["title"] for s in sections]
    assert titles == ["risk: value at risk", "risk: stress scenarios", "risk: drawdown episodes",
                      "risk: tail statistics", "risk: risk recommendations"]
    html = render_report({"title": "t", "sections": sections})
    assert "outside the data" in html and "cornish_fisher" in html


def test_trading_settings_of_the_upstream_backtest_give_buy_and_hold_weights(kit, store):
    phases = _phases(risk_inputs=("oos.performance_report",))
    phases[1]["config"]["weights"] = {"SPY": 1.0, "QQQ": 0.0}
    _, res = _run(kit, store, phases)
    bars = res["data"].outputs["bars"]
    close = close_matrix(bars)
    perf = res["oos"].outputs["performance_report"]
    spy = close["SPY"].pct_change().fillna(0.0).reindex(pd.DatetimeIndex(perf["date"]))
    var = res["risk"].outputs["risk_metrics"]
    bh = var[(var.series == "buy_and_hold") & (var.method == "historical") & (var.level == 0.95)].iloc[0]
    assert bh["var"] == pytest.approx(-np.quantile(spy.to_numpy(), 0.05), rel=1e-12)
    assert trading_config({"weights": {"SPY": 1.0, "QQQ": 0.0}}).weights == {"SPY": 1.0, "QQQ": 0.0}
