"""parameter_search: every method through the kind, the seeds' forms, searched trading settings
applied downstream, per-regime search on a hand-made labels table, resuming a study, and the
one-line validation messages."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine import synthetic
from admf_assets.engine.backtest import run_backtest, run_grid
from admf_assets.engine.paramsets import with_trading
from admf_assets.engine.metrics import compute_metrics
from admf_assets.phases import KINDS
from admf_assets.phases.common import close_matrix, trading_config
from admf_assets.phases.kind import ConfigEnv, PhaseError, Upstream
from admf_assets.workflow.context import phase_context
from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.loader import load_workflow_dict

KIND = KINDS["parameter_search"]
SPACE = {"fast_period": [3, 30], "slow_period": [20, 100]}


@pytest.fixture
def store(tmp_path, kit):
    return kit.write_market(tmp_path)


def doc(kit, config: dict, extra: list | None = None, outputs: list | None = None) -> dict:
    phase = {"name": "opt", "type": "optimization", "config": config,
             "outputs": outputs or [o.name for o in KIND.outputs]}
    return {"workflow": {"name": "search test", "id": "search_test"},
            "data": {"symbols": kit.SYMBOLS, "start_date": kit.START, "end_date": kit.END,
                     "split": {"test_start": kit.TEST_START}},
            "phases": [phase, *(extra or [])], "reporting": {"enabled": False}}


def run(kit, store, config: dict, extra: list | None = None):
    spec = load_workflow_dict(doc(kit, config, extra), source="<test>")
    return spec, kit.execute(spec.graph, store)


def errors(kit, config: dict, extra: list | None = None) -> list[str]:
    with pytest.raises(WorkflowError) as info:
        load_workflow_dict(doc(kit, config, extra), source="w.yaml")
    return info.value.lines()


def warnings_of(kit, config: dict) -> list[str]:
    return load_workflow_dict(doc(kit, config), source="w.yaml").warnings


@pytest.mark.parametrize("method", ["bayesian", "cmaes", "nsga2", "differential_evolution", "random",
                                    "robust_optimization", "return_maximization"])
def test_every_method_runs_through_the_kind(kit, store, method):
    opt = {"method": method, "n_trials": 40, "parameters": SPACE, "population_size": 10}
    if method == "robust_optimization":
        opt["risk_penalty"] = 0.5
    tpe = method in ("bayesian", "robust_optimization", "return_maximization")
    if tpe or method == "random":
        opt.pop("population_size")
    spec, results = run(kit, store, {"optimization": opt})
    res = results["opt"]
    hist, best = res.outputs["optimization_history"], res.outputs["best_parameters"].iloc[0]
    if method == "random":
        assert len(hist) <= 40  # invalid and duplicate draws dropped
    else:
        assert len(hist) == 40 and hist["batch"].nunique() == (5 if tpe else 4)  # 8 per TPE batch
    feasible = hist[hist["feasible"]]
    assert best["objective"] == feasible["objective"].max() and best["rank"] == 1
    params = json.loads(best["params"])
    assert 3 <= params["fast_period"] < params["slow_period"] <= 100
    name = best["objective_name"]
    if method == "robust_optimization":
        assert name == "sharpe_ratio - 0.5*|max_drawdown|"
        assert best["objective"] == pytest.approx(best["sharpe_ratio"] - 0.5 * abs(best["max_drawdown"]))
    elif method == "return_maximization":
        assert name == "annual_return" and best["objective"] == best["annual_return"]
    else:
        assert name == "sharpe_ratio" and best["objective"] == best["sharpe_ratio"]
    assert set(res.metrics) >= set(KIND.metrics) and res.metrics["n_trials"] == len(hist)
    imp = res.outputs["parameter_importance"]
    assert set(imp["parameter"]) <= {"fast_period", "slow_period"} and len(imp)
    meta = res.metadata["optimization_history"]
    assert "optuna/search_test/opt@" in meta["optuna_storage"] and meta["optuna_storage"].endswith(
        "/momentum.journal") and meta["dashboard"] == \
        "admf optuna search_test --phase opt"


def test_multi_objective_gives_the_pareto_front(kit, store):
    opt = {"method": "genetic", "n_trials": 60, "population_size": 20, "parameters": SPACE,
           "objective": ["sharpe_ratio", "max_drawdown"]}
    _, results = run(kit, store, {"optimization": opt})
    front = results["opt"].outputs["pareto_front"]
    hist = results["opt"].outputs["optimization_history"]
    cols = ["objective_0_sharpe_ratio", "objective_1_max_drawdown"]
    assert set(cols) <= set(front.columns) and len(front) >= 1
    vals = hist.loc[hist["feasible"], ["sharpe_ratio", "max_drawdown"]].to_numpy()  # both maximized
    for a in front[cols].to_numpy():
        assert not (((vals >= a).all(axis=1)) & ((vals > a).any(axis=1))).any()


def test_seed_000_param_definitions_with_trading_settings_reach_the_backtest(kit, store):
    """``param_definitions`` / ``n_iterations`` at the top of config (seed 000): risk_level (the target
    volatility), position_size and stop_loss are searched; the backtest applies what was found."""
    config = {"method": "bayesian", "n_iterations": 24,
              "param_definitions": {"risk_level": {"type": "continuous", "bounds": [0.01, 0.05]},
                                    "position_size": {"type": "continuous", "bounds": [0.05, 0.25]},
                                    "stop_loss": {"type": "continuous", "bounds": [0.02, 0.10]}}}
    extra = [{"name": "bt", "type": "backtest", "inputs": ["opt.best_parameters"]}]
    spec, results = run(kit, store, config, extra)
    node = spec.graph.phases["opt"]
    assert node.config["sizing"] == "vol_target" and node.config["optimization"]["n_trials"] == 24
    assert node.config["optimization"]["parameters"]["risk_level"] == {"low": 0.01, "high": 0.05, "step": None,
                                                                       "log": False, "type": "float"}
    best = results["opt"].outputs["best_parameters"].iloc[0]
    trading = json.loads(best["trading"])
    assert set(trading) == {"target_vol", "position_size", "stop_loss"}
    assert 0.01 <= trading["target_vol"] <= 0.05 and 0.05 <= trading["position_size"] <= 0.25
    assert json.loads(best["params"]) == {"fast_period": 10, "slow_period": 30, "signal_threshold": 0.0}
    bt = results["bt"]
    assert json.loads(bt.metadata["validation_results"]["searched_trading"]) == trading
    # the backtest's numbers are those of the searched settings
    close = close_matrix(results["data"].outputs["bars"])
    cfg = with_trading(trading_config(spec.graph.phases["bt"].config), trading)  # the backtest's costs, searched sizing
    assert (cfg.sizing, cfg.target_vol, cfg.stop_loss, cfg.position_size) == (
        "vol_target", trading["target_vol"], trading["stop_loss"], trading["position_size"])
    ref = run_backtest(close, "momentum", json.loads(best["params"]), cfg)
    r = ref.returns.iloc[:, 0]
    perf = bt.outputs["performance_report"]
    np.testing.assert_allclose(perf["return"].to_numpy(), r.loc[pd.DatetimeIndex(perf["date"])].to_numpy(),
                               rtol=1e-12, atol=1e-15)


def test_seed_001_generations_and_population(kit, store):
    spec, results = run(kit, store, {"optimization": {"method": "differential_evolution", "n_generations": 3,
                                                      "population_size": 8, "parameters": SPACE}})
    hist = results["opt"].outputs["optimization_history"]
    assert len(hist) == 24 and hist["batch"].nunique() == 3
    assert spec.graph.phases["opt"].config["optimization"]["n_trials"] == 24


def test_rerun_resumes_the_study_and_a_larger_budget_continues_it(kit, store):
    config = {"optimization": {"method": "bayesian", "n_trials": 20, "parameters": SPACE}}
    _, first = run(kit, store, config)
    _, again = run(kit, store, config)
    m = again["opt"].metadata["optimization_history"]
    assert m["resumed_trials"] == 20 and m["evaluated_trials"] == 0 and m["engine_calls"] == 0
    pd.testing.assert_frame_equal(first["opt"].outputs["best_parameters"], again["opt"].outputs["best_parameters"])
    config["optimization"]["n_trials"] = 36
    _, more = run(kit, store, config)
    m = more["opt"].metadata["optimization_history"]
    assert m["resumed_trials"] == 20 and m["evaluated_trials"] == 16
    hist = more["opt"].outputs["optimization_history"]
    assert hist["resumed"].sum() == 20 and len(hist) == 36
    config["optimization"]["resume"] = False
    _, fresh = run(kit, store, config)
    assert fresh["opt"].metadata["optimization_history"]["resumed_trials"] == 0


KILLED_PHASE = """
import json, os, signal, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
from conftest import execute
from admf_assets.engine import optimize
from admf_assets.workflow.loader import load_workflow_dict
from resources.storage import TableStore

calls = []
real = optimize.BacktestEvaluator.evaluate_columns  # what a search calls with each batch
def counting(self, cols, n, checked=False):
    calls.append(n)
    if len(calls) == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)  # the run dies in the middle of the search
    return real(self, cols, n, checked)
optimize.BacktestEvaluator.evaluate_columns = counting
doc = json.loads({doc!r})
execute(load_workflow_dict(doc, source="<killed>").graph, TableStore({root_store!r}))
"""


def test_a_killed_run_re_executed_continues_its_search(kit, store, tmp_path):
    """The phase dies (SIGKILL) after 3 batches of 8; executing the same workflow again takes those
    24 trials from the study and evaluates only the rest of the budget."""
    import os
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    config = {"optimization": {"method": "bayesian", "n_trials": 80, "parameters": SPACE}}
    code = KILLED_PHASE.format(root=os.path.dirname(os.path.dirname(here)), here=here, kill_at=4,
                               doc=json.dumps(doc(kit, config)), root_store=str(store.root))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    _, results = run(kit, store, config)
    meta = results["opt"].metadata["optimization_history"]
    assert meta["resumed_trials"] == 24 and meta["evaluated_trials"] == 56 and meta["engine_calls"] == 7
    hist = results["opt"].outputs["optimization_history"]
    assert len(hist) == 80 and hist["resumed"].sum() == 24 and hist["study_trial"].tolist() == list(range(80))


def test_constraints_mark_trials_infeasible_and_every_reported_set_satisfies_them(kit, store):
    opt = {"method": "bayesian", "n_trials": 40, "parameters": SPACE,
           "constraints": {"max_drawdown": 0.08, "min_trades": 4}}
    _, results = run(kit, store, {"optimization": opt})
    out = results["opt"].outputs
    hist = out["optimization_history"]
    assert (~hist["feasible"]).any() and hist["feasible"].any()
    for key in ("best_parameters", "top_parameter_sets", "pareto_front", "regime_optimized_strategies"):
        t = out[key]
        assert (t["max_drawdown"].abs() <= 0.08).all() and (t["n_trades"] >= 4).all(), key
    with pytest.raises(PhaseError, match=r"no feasible trial among 12 .*\|max_drawdown\| <= 0.0001"):
        run(kit, store, {"optimization": {**opt, "n_trials": 12, "constraints": {"max_drawdown": 0.0001}}})


def test_a_strategy_without_parameters_uses_its_default_space(kit, store):
    spec, results = run(kit, store, {"strategies": ["pairs_trading", "breakout"], "mode": "long_short",
                                     "optimization": {"method": "bayesian", "n_trials": 16}})
    hist = results["opt"].outputs["optimization_history"]
    assert set(hist["strategy"]) == {"pairs_trading", "breakout"} and len(hist) == 32
    p = [json.loads(x) for x in hist.loc[hist["strategy"] == "pairs_trading", "params"]]
    assert all(20 <= x["lookback"] <= 120 and 1.0 <= x["entry_z"] <= 3.0 for x in p)


def test_input_parameter_sets_define_the_space_of_a_refining_search(kit, store):
    extra = [{"name": "refine", "type": "optimization", "inputs": ["opt.top_parameter_sets"],
              "config": {"optimization": {"method": "bayesian", "n_trials": 12}}}]
    _, results = run(kit, store, {"optimization": {"parameters": {"fast_period": [5, 10, 20],
                                                                   "slow_period": [40, 60]}}}, extra)
    hist = results["refine"].outputs["optimization_history"]
    p = pd.DataFrame([json.loads(x) for x in hist["params"]])
    assert p["fast_period"].between(5, 20).all() and p["slow_period"].between(40, 60).all()


# ----------------------------------------------------------------- per-regime search
def labels_for(dates: pd.DatetimeIndex) -> pd.DataFrame:
    """A hand-made regime_classifications table (the regime kind's contract: date, regime,
    regime_id, probability): the synthetic market's true regime of each date."""
    true = synthetic.synthetic_regimes(dates[0], dates[-1]).reindex(dates)
    return pd.DataFrame({"date": dates, "regime": true.to_numpy(),
                         "regime_id": [synthetic.REGIME_NAMES.index(n) for n in true], "probability": 0.9})


def grouped_context(kit, store, opt: dict):
    spec = load_workflow_dict(doc(kit, {"optimization": {**opt, "group_by_regime": False}}), source="<test>")
    graph = spec.graph
    results = kit.execute(replace(graph, order=tuple(n for n in graph.order if n != "opt")), store)
    loaded = {o.ref: results[n].outputs[o.canonical] for n in results for o in graph.phases[n].outputs}
    node = graph.phases["opt"]
    env = ConfigEnv(data=None)
    cfg = KIND.effective_config(KIND.Config.model_validate({"optimization": {**opt, "group_by_regime": True}}), env)
    assert env.problems == []
    ctx = phase_context(graph, node, loaded, store=store)
    bars = results["data"].outputs["bars"]
    labels = labels_for(close_matrix(bars).index)
    up = Upstream("regimes", "regime_classifications", "regime_classifications", "regime_analysis", {}, True, labels)
    return replace(ctx, config=cfg, upstream=ctx.upstream + (up,)), bars, labels


def test_group_by_regime_gives_the_best_parameters_per_regime(kit, store):
    opt = {"method": "bayesian", "n_trials_per_regime": 24, "parameters": SPACE, "min_regime_days": 20}
    ctx, bars, labels = grouped_context(kit, store, opt)
    res = KIND.run(ctx)
    out = res.outputs
    hist, per = out["optimization_history"], out["regime_optimized_strategies"]
    train = close_matrix(bars, "train")
    lab = labels.set_index("date")["regime"].reindex(train.index)
    present = [r for r in synthetic.REGIME_NAMES if ((lab == r).to_numpy()[:-1]).sum() >= 20]
    assert list(per["regime"]) == present and (per["n_trials"] == 24).all()
    assert hist.groupby("regime").size().to_dict() == {r: 24 for r in present}
    assert res.metrics["n_regimes"] == len(present)
    for _, row in per.iterrows():
        mask = (lab == row["regime"]).to_numpy()
        mask[-1] = False
        assert row["n_days"] == int(mask.sum())
        # the reported objective is the Sharpe of the decisions the label governs, computed independently
        params = json.loads(row["params"])
        r = run_grid(train, "momentum", pd.DataFrame([params])).returns.to_numpy()[:, 0]
        sharpe = compute_metrics(r[np.r_[False, mask[:-1]]])["sharpe_ratio"].iloc[0]
        assert row["objective"] == pytest.approx(sharpe, rel=1e-10)
        regime_hist = hist[(hist["regime"] == row["regime"]) & hist["feasible"]]
        assert row["objective"] == regime_hist["objective"].max()
    best = out["best_parameters"].iloc[0]
    assert best["trial_id"] in set(per["trial_id"])  # a regime's winner, the best over the whole split
    top = out["top_parameter_sets"]
    assert set(top["regime"]) == set(present)


def test_group_by_regime_rejects_bad_labels(kit, store):
    opt = {"method": "bayesian", "n_trials_per_regime": 4, "parameters": SPACE}
    ctx, _, labels = grouped_context(kit, store, opt)
    dup = pd.concat([labels, labels.head(1)])
    bad = replace(ctx, upstream=tuple(replace(u, value=dup) if u.canonical == "regime_classifications" else u
                                      for u in ctx.upstream))
    with pytest.raises(PhaseError, match="has several labels for"):
        KIND.run(bad)
    few = replace(ctx, config=ctx.config.model_copy(update={"optimization": ctx.config.optimization.model_copy(
        update={"min_regime_days": 100000})}))
    with pytest.raises(PhaseError, match="no regime has 100000 or more labelled days"):
        KIND.run(few)


# ----------------------------------------------------------------- validation
@pytest.mark.parametrize("config, line", [
    ({"optimization": {"method": "bayesian", "group_by_regime": True, "parameters": SPACE}},
     "phase 'opt': field 'inputs': phase type 'parameter_search' needs regime_classifications from an upstream "
     "phase: no phase of this workflow produces it (config.optimization.group_by_regime is true)"),
    ({"optimization": {"method": "cmaes", "parameters": {"fast_period": [3, 30]}}},
     "field 'config.optimization.method': cmaes needs at least 2 searched parameters (strategy 'momentum' has 1)"),
    ({"optimization": {"method": "cmaes", "objective": ["sharpe_ratio", "calmar"], "parameters": SPACE}},
     "field 'config.optimization.objective': method 'cmaes' optimizes one objective"),
    ({"optimization": {"method": "return_maximization", "objective": "sharpe_ratio", "parameters": SPACE}},
     "field 'config.optimization.objective': method 'return_maximization' maximizes annual_return"),
    ({"optimization": {"method": "robust_optimization", "parameters": SPACE}},
     "field 'config.optimization.risk_penalty': method 'robust_optimization' needs risk_penalty > 0"),
    ({"optimization": {"method": "bayesian", "parameters": SPACE, "constraints": {"max_sharpness": 1}}},
     "field 'config.optimization.constraints': unknown constraint 'max_sharpness'"),
    ({"optimization": {"method": "bayesian", "parameters": SPACE, "n_trials": 5, "n_iterations": 5}},
     "field 'config.optimization.n_iterations': give n_trials or n_iterations (its seed name), not both"),
    ({"optimization": {"method": "nsga2", "parameters": SPACE, "n_trials": 50, "n_generations": 5}},
     "field 'config.optimization.n_generations': give n_trials or n_generations, not both"),
    ({"sizing": "fixed", "optimization": {"method": "bayesian", "parameters": {**SPACE, "target_vol": [0.05, 0.2]}}},
     "field 'config.sizing': target_vol is searched, which needs sizing: vol_target (got fixed)"),
    ({"optimization": {"method": "bayesian", "parameters": {**SPACE, "stop_loss": [0.02, 1.5]}}},
     "field 'config.optimization.parameters.stop_loss': stop_loss must be in (0, 1); got 1.5"),
    ({"optimization": {"method": "bayesian", "param_definitions": {"x": {"type": "fuzzy", "bounds": [0, 1]}}}},
     "field 'config.optimization.param_definitions.x.type': unknown type 'fuzzy'"),
    ({"optimization": {"method": "bayesian", "param_definitions": {"fast_period": {"type": "integer",
                                                                                   "bounds": [2.5, 9]}}}},
     "field 'config.optimization.param_definitions.fast_period.bounds': an integer parameter needs integer bounds"),
    ({"optimization": {"method": "bayesian", "parameters": {"window": [5, 9]}}},
     "field 'config.optimization.parameters.window': strategy 'momentum' has no parameter 'window'"),
    ({"optimization": {"method": "bayesian", "parameters": SPACE, "objective": {"sharpe_ratio": "high"}}},
     "field 'config.optimization.objective': weight of 'sharpe_ratio' must be a number"),
])
def test_validation_messages(kit, config, line):
    lines = errors(kit, config)
    assert len(lines) == 1 and line in lines[0], lines
    assert lines[0].startswith("w.yaml: phase 'opt'")


def test_ignored_keys_are_warned_in_one_line(kit):
    warns = warnings_of(kit, {"optimization": {"method": "bayesian", "parameters": SPACE, "n_generations": 4,
                                               "n_trials_per_regime": 10},
                              "ensemble_optimization": {"enabled": True}})
    text = "\n".join(warns)
    assert "field 'config.optimization.n_generations': ignored by method 'bayesian'" in text
    assert "field 'config.optimization.n_trials_per_regime': ignored: used with group_by_regime: true" in text
    assert "field 'config.ensemble_optimization': ignored: ensemble weights come from a phase" in text
    grid = warnings_of(kit, {"optimization": {"parameters": {"fast_period": [5, 10]}, "n_trials": 9}})
    assert any("field 'config.optimization.n_trials': ignored: a grid evaluates every combination" in w for w in grid)
    pairs = warnings_of(kit, {"strategies": ["pairs_trading"], "optimization": {"method": "bayesian"}})
    assert any("'pairs_trading' trades both legs (long and short) in every mode" in w for w in pairs)


def test_seed_phase_forms_validate(kit):
    """The seeds' parameter_search phases (000's Bayesian risk search, 001's broad random search and
    its regime-specific Bayesian search input) validate as written."""
    spec = load_workflow_dict(doc(kit, {"method": "bayesian", "n_iterations": 500, "param_definitions": {
        "risk_level": {"type": "continuous", "bounds": [0.01, 0.05]},
        "position_size": {"type": "continuous", "bounds": [0.05, 0.25]},
        "stop_loss": {"type": "continuous", "bounds": [0.02, 0.10]}}}), source="<seed 000>")
    assert spec.graph.phases["opt"].config["optimization"]["method"] == "bayesian"
    broad = {"strategies": [{"type": "momentum"}, {"type": "mean_reversion"}, {"type": "breakout"},
                            {"type": "pairs_trading"}],
             "optimization": {"method": "random", "n_trials": 10000, "parameters": {
                 "fast_period": [3, 50], "slow_period": [10, 200], "lookback_period": [5, 100],
                 "signal_threshold": [0.001, 0.1]}}}
    spec = load_workflow_dict(doc(kit, broad, outputs=["top_100_strategies", "parameter_importance",
                                                       "performance_distribution"]), source="<seed 001>")
    node = spec.graph.phases["opt"]
    assert node.config["top_n"] == 100 and [o.canonical for o in node.outputs] == [
        "top_parameter_sets", "parameter_importance", "performance_distribution"]


def test_sets_that_span_no_range_leave_a_sampler_the_strategy_s_default_space():
    """A per-regime search over the top sets of a broad one: a family with a single set among them
    has nothing to sample there, so it searches its default space (a grid evaluates the point)."""
    import pandas as pd

    from admf_assets.phases.parameter_search import _spaces_from_sets

    sets = pd.DataFrame({"strategy": ["momentum", "momentum", "pairs_trading"],
                         "params": ['{"fast_period": 5, "slow_period": 50}', '{"fast_period": 9, "slow_period": 50}',
                                    '{"lookback": 20, "entry_z": 2.0}']})
    spaces = _spaces_from_sets(sets, grid=False)
    assert spaces == {"momentum": {"fast_period": {"low": 5, "high": 9}, "slow_period": [50]}, "pairs_trading": {}}
    assert _spaces_from_sets(sets, grid=True)["pairs_trading"] == {"entry_z": [2.0], "lookback": [20]}
