"""The validation kind: the search's own trials, like with like; criteria and the verdict; the
seed forms; replay of captured trials; return series (a walk-forward's stitched account)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from admf_assets.engine import validation as val
from admf_assets.phases import KINDS
from admf_assets.phases.kind import ConfigEnv
from admf_assets.workflow.loader import load_workflow_dict
from admf_assets.workflow.spec import DataSpec

KIND = KINDS["validation"]
GRID = {"fast_period": [5, 10, 20], "slow_period": [30, 50, 80]}


@pytest.fixture(scope="module")
def store(tmp_path_factory, kit):
    return kit.write_market(tmp_path_factory.mktemp("validation"))


def _graph(kit, phases, name="v"):
    doc = {"workflow": {"name": name, "id": name},
           "data": {"symbols": kit.SYMBOLS, "start_date": kit.START, "end_date": kit.END,
                    "split": {"test_start": kit.TEST_START}},
           "phases": phases, "reporting": {"enabled": False}}
    return load_workflow_dict(doc, source=f"<{name}>")


SEARCH = {"name": "opt", "type": "optimization", "config": {"mode": "long_short", "optimization": {"parameters": GRID}}}


def _run(kit, store, validation_config=None, extra=(), depends=("opt",)):
    phases = [SEARCH, *extra, {"name": "val", "type": "validation", "depends_on": list(depends),
                               "config": {"n_simulations": 200, "n_bootstrap": 500, **(validation_config or {})}}]
    spec = _graph(kit, phases)
    return spec, kit.execute(spec.graph, store)


def _stats(res):
    return res.outputs["validation_summary"].set_index("statistic")


def test_the_trials_are_the_search_s_own_numbers(kit, store):
    _, results = _run(kit, store, {"validation_method": ["deflated_sharpe", "pbo"]})
    hist = results["opt"].outputs["optimization_history"]
    best = results["opt"].outputs["best_parameters"].iloc[0]
    s = _stats(results["val"])["value"]
    # the validated set is the search's best, with the search's split and cost model
    assert s["sharpe_ratio"] == pytest.approx(best["sharpe_ratio"], rel=1e-12)
    assert s["n_trials"] == len(hist) == 9
    # the dispersion DSR deflates by is the variance of the trials' Sharpe ratios (ddof=1)
    m = results["val"].metrics
    assert m["trials_sharpe_std"] == pytest.approx(hist["sharpe_ratio"].std(ddof=1), rel=1e-9)
    # ... and SR0 is the paper's expected maximum of 9 trials with that dispersion
    assert results["val"].metadata["validation_summary"]["period"] == "2021-01-04..2021-12-31"
    var = (hist["sharpe_ratio"] / math.sqrt(252)).var(ddof=1)
    assert m["expected_max_sharpe"] == pytest.approx(val.expected_max_sharpe(9, var) * math.sqrt(252), rel=1e-9)
    assert 0.0 <= m["deflated_sharpe_ratio"] <= m["probabilistic_sharpe_ratio"] <= 1.0
    assert m["min_backtest_years"] == pytest.approx(val.min_backtest_length(9, best["sharpe_ratio"]), rel=1e-9)


def test_verdict_lists_each_criterion_with_its_value_and_pass_or_fail(kit, store):
    cfg = {"validation_method": ["deflated_sharpe", "pbo", "monte_carlo", "bootstrap"],
           "acceptance_criteria": {"min_sharpe_ratio": 0.0, "max_drawdown": 0.5, "min_win_rate": 0.9,
                                   "min_dsr": 0.0, "max_pbo": 1.0, "max_mc_prob_loss": 1.0,
                                   "min_sharpe_ci_low": -10}}
    _, results = _run(kit, store, cfg)
    res = results["val"]
    table = _stats(res)
    assert table.loc["is_valid", "value"] == 0.0 and res.metrics["is_valid"] == 0.0
    assert res.metrics["n_failed_criteria"] == 1.0  # only the (impossible) 90 % winning bars fails
    assert table.loc["win_rate", "passed"] is False and table.loc["win_rate", "rule"] == "win_rate >= 0.9"
    assert table.loc["max_drawdown", "rule"] == "max_drawdown >= -0.5" and table.loc["max_drawdown", "passed"]
    assert table.loc["deflated_sharpe_ratio", "passed"] and table.loc["pbo", "passed"]
    assert "win_rate" in table.loc["is_valid", "description"] and "not valid" in table.loc["is_valid", "description"]
    meta = res.metadata["validation_summary"]
    assert meta["verdict"] == "NOT VALID"
    assert meta["criterion/min_win_rate"].endswith("FAIL (win_rate >= 0.9)")
    assert meta["criterion/max_pbo"].startswith(f"{res.metrics['pbo']:.3g} PASS")
    # intervals
    assert table.loc["mc_sharpe_ratio", "ci_low"] < table.loc["mc_sharpe_ratio", "ci_high"]
    assert table.loc["bootstrap_sharpe_ci_low", "value"] == table.loc["bootstrap_sharpe_ci_low", "ci_low"]


def test_seeded_and_reproducible(kit, store):
    a = _run(kit, store)[1]["val"]
    b = _run(kit, store)[1]["val"]
    assert a.outputs["validation_summary"].equals(b.outputs["validation_summary"])
    assert a.outputs["monte_carlo_simulations"].equals(b.outputs["monte_carlo_simulations"])


def test_replayed_captured_trials_give_the_same_verdict(kit, store):
    capture = {"name": "cap", "type": "signal_capture", "inputs": ["opt.optimization_history"]}
    cfg = {"validation_method": ["deflated_sharpe", "pbo"]}
    _, plain = _run(kit, store, cfg)
    spec, replayed = _run(kit, store, cfg, extra=[capture], depends=("opt", "cap"))
    assert "replayed 9 captured signals" in replayed["val"].metadata["validation_summary"]["notes"]
    assert "recomputed 9 trials" in plain["val"].metadata["validation_summary"]["notes"]
    for k in ("deflated_sharpe_ratio", "pbo", "trials_sharpe_std", "expected_max_sharpe"):
        assert replayed["val"].metrics[k] == pytest.approx(plain["val"].metrics[k], rel=1e-12, abs=1e-15), k


def test_a_walk_forward_s_stitched_account_is_validated_as_a_return_series(kit, store):
    wfo = {"name": "wfo", "type": "walk_forward", "inputs": ["opt.best_parameters"],
           "config": {"walk_forward": {"train_period_days": 100, "test_period_days": 50}}}
    spec = _graph(kit, [SEARCH, wfo, {"name": "val", "type": "validation", "inputs": ["wfo.oos_equity"],
                                       "config": {"n_simulations": 100, "n_bootstrap": 200}}])
    results = kit.execute(spec.graph, store)
    res = results["val"]
    oos = results["wfo"].outputs["oos_equity"]
    assert res.metrics["sharpe_ratio"] == pytest.approx(results["wfo"].metrics["sharpe_ratio"], rel=1e-12)
    assert res.metrics["n_trials"] == 1 and math.isnan(res.metrics["pbo"])
    assert res.metrics["deflated_sharpe_ratio"] == res.metrics["probabilistic_sharpe_ratio"]
    notes = res.metadata["validation_summary"]["notes"]
    assert "max_pbo: not applicable" in notes
    assert res.metadata["validation_summary"]["period"] == (
        f"{oos['date'].iloc[0].date()}..{oos['date'].iloc[-1].date()}")


def test_fixed_parameters_validate_without_a_search(kit, store):
    spec = _graph(kit, [{"name": "val", "type": "validation",
                         "config": {"strategy": "momentum", "parameters": {"fast_period": 10, "slow_period": 50},
                                    "n_simulations": 100, "n_bootstrap": 200}}])
    assert spec.warnings == ["<v>: phase 'val': field 'config.validation_method': ignored: pbo needs the trials "
                             "of a search (the parameters are fixed)"]
    res = kit.execute(spec.graph, store)["val"]
    assert res.metrics["n_trials"] == 1
    assert res.metrics["deflated_sharpe_ratio"] == res.metrics["probabilistic_sharpe_ratio"]


def test_seed_forms_and_warnings(kit):
    env = ConfigEnv(data=DataSpec(symbols=kit.SYMBOLS, start_date=kit.START, end_date=kit.END))
    # seed 000: validation_method [monte_carlo, bootstrap, walk_forward], n_simulations, confidence_level
    cfg = KIND.effective_config(KIND.Config.model_validate(
        {"validation_method": ["monte_carlo", "bootstrap", "walk_forward"], "n_simulations": 1000,
         "confidence_level": 0.95, "metrics": ["sharpe_ratio"], "thresholds": {"max_pbo": 0.2}}), env)
    assert cfg.validation_method == ["monte_carlo", "bootstrap", "walk_forward"]
    assert [f for f, _ in env.warnings] == ["metrics", "acceptance_criteria.max_pbo"]
    assert [c.name for c in KIND.criteria(cfg)] == ["min_walk_forward_efficiency"]
    # the template's `tests:` and aliases; seed 001's validation_tests with names that are not methods
    env = ConfigEnv()
    cfg = KIND.effective_config(KIND.Config.model_validate({"tests": ["dsr", "Monte_Carlo", "cscv", "stress_testing"]}),
                                env)
    assert cfg.validation_method == ["deflated_sharpe", "monte_carlo", "pbo"]
    assert env.warnings[0][0] == "validation_method[3]" and "ignored: 'stress_testing'" in env.warnings[0][1]
    env = ConfigEnv()
    cfg = KIND.effective_config(KIND.Config.model_validate(
        {"validation_tests": ["out_of_sample_performance"], "acceptance_criteria":
         {"min_sharpe_ratio": 1.0, "max_drawdown": 0.15, "min_win_rate": 0.45}}), env)
    assert cfg.validation_method == ["monte_carlo", "bootstrap", "deflated_sharpe", "pbo"]
    assert {c.name: (c.op, c.threshold) for c in KIND.criteria(cfg)} == {
        "min_sharpe_ratio": ("min", 1.0), "max_drawdown": ("min", -0.15), "min_win_rate": ("min", 0.45),
        "min_deflated_sharpe": ("min", 0.95), "max_pbo": ("max", 0.5)}


def test_a_best_set_without_its_trials_is_a_validation_error(kit):
    from admf_assets.workflow.errors import WorkflowError

    with pytest.raises(WorkflowError) as info:
        _graph(kit, [SEARCH, {"name": "val", "type": "validation", "inputs": ["opt.best_parameters"]}])
    assert info.value.lines()[-1].endswith(
        "phase 'val': field 'inputs': phase type 'validation' takes best_parameters together with "
        "optimization_history: e.g. inputs: ['opt.optimization_history']")


def test_the_report_leads_with_the_verdict_and_its_numbers(kit, store, tmp_path):
    wfo = {"name": "wfo", "type": "walk_forward", "inputs": ["opt.best_parameters"],
           "config": {"walk_forward": {"train_period_days": 100, "test_period_days": 50}}}
    doc = {"workflow": {"name": "luck report", "id": "luck_report"},
           "data": {"symbols": kit.SYMBOLS, "start_date": kit.START, "end_date": kit.END,
                    "split": {"test_start": kit.TEST_START}},
           "phases": [SEARCH, wfo, {"name": "val", "type": "validation", "depends_on": ["opt"],
                                    "config": {"n_simulations": 100, "n_bootstrap": 200}}],
           "reporting": {"title": "luck"}}
    spec = load_workflow_dict(doc, source="<luck report>")
    results = kit.execute(spec.graph, store, reports_dir=tmp_path)
    view = next(v for v in kit.views(spec.graph, results) if v.phase == "val")
    verdict = KIND.verdict(view)
    assert verdict.valid is (results["val"].metrics["is_valid"] == 1.0)
    assert {c.name for c in verdict.criteria} == {"deflated_sharpe_ratio", "pbo"}
    dsr = next(c for c in verdict.criteria if c.name == "deflated_sharpe_ratio")
    assert dsr.threshold == ">= 0.95" and dsr.value == pytest.approx(results["val"].metrics["deflated_sharpe_ratio"])
    topics = [i.topic for i in KIND.insights(view)]
    assert topics.count("overfitting") == 2 and "risk" in topics
    wf_view = next(v for v in kit.views(spec.graph, results) if v.phase == "wfo")
    keys = [i.key for i in KINDS["walk_forward"].insights(wf_view)]
    assert "walk_forward_efficiency" in keys or "oos_sharpe_ratio" in keys
    html = open(results["report"].outputs["report"]["path"].iloc[0]).read()
    start = html.index("<h2>Executive summary</h2>")
    summary = html[start:html.index("<h2>", start + 10)]  # the first section, before every phase's
    assert ("Not valid" in summary) != verdict.valid
    assert "Deflated Sharpe ratio" in summary and "Walk-forward" in summary


def test_searched_trading_settings_are_validated_with_the_set(kit, store):
    """Seed 000's search varies risk_level (the volatility target), position_size and stop_loss:
    the validated set and every trial carry their own, so the validated Sharpe is the search's
    best and the trials' Sharpe dispersion is the search's; walk-forward folds re-search them."""
    search = {"name": "opt", "type": "parameter_search", "config": {
        "method": "bayesian", "n_iterations": 16,
        "param_definitions": {"risk_level": {"type": "continuous", "bounds": [0.05, 0.2]},
                              "position_size": {"type": "continuous", "bounds": [0.2, 1.0]},
                              "stop_loss": {"type": "continuous", "bounds": [0.02, 0.1]},
                              "fast_period": {"type": "integer", "bounds": [5, 20]},
                              "slow_period": {"type": "integer", "bounds": [30, 80]}}}}
    spec = _graph(kit, [search, {"name": "val", "type": "validation", "depends_on": ["opt"], "config": {
        "validation_method": ["deflated_sharpe", "pbo", "walk_forward"], "n_simulations": 100,
        "n_bootstrap": 500, "walk_forward": {"train_period_days": 100, "test_period_days": 40}}}])
    results = kit.execute(spec.graph, store)
    hist = results["opt"].outputs["optimization_history"]
    best = results["opt"].outputs["best_parameters"].iloc[0]
    s = _stats(results["val"])["value"]
    assert s["sharpe_ratio"] == pytest.approx(best["sharpe_ratio"], rel=1e-9)
    assert s["n_trials"] == len(hist) == 16
    assert results["val"].metrics["trials_sharpe_std"] == pytest.approx(hist["sharpe_ratio"].std(ddof=1), rel=1e-9)
    folds = results["val"].outputs["walk_forward_results"]
    import json

    assert all(set(json.loads(t)) == {"target_vol", "position_size", "stop_loss"} for t in folds["trading"])
    assert (folds["train_end"] < folds["test_start"]).all()
