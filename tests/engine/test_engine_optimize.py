"""Sampler-driven search: every method finds a planted optimum within its budget, a batch is ONE
evaluate call, constraints hold for every reported best, a killed search resumes from its study,
and the backtest evaluator's batched numbers are run_grid's numbers."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import optuna
import pandas as pd
import pytest

from admf_assets.engine.backtest import BacktestConfig, run_grid
from admf_assets.engine.metrics import METRIC_COLUMNS, compute_metrics
from admf_assets.engine.optimize import (BacktestEvaluator, Dim, StudyRef, dims_from_space, list_proposals, optimize,
                                         param_importance, parse_constraints, parse_objectives, pareto_front,
                                         performance_distribution, strategy_dims, strategy_valid)
from admf_assets.engine.strategies import expand_grid
from admf_assets.engine.studies import SyncedJournalFile, journal_path, open_storage, study_name

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIMS = [Dim("x", "float", -1.0, 1.0), Dim("y", "int", 0, 20), Dim("k", "categorical", choices=(1, 2, 3, 4))]
OPTIMUM = {"x": 0.3, "y": 7, "k": 3}


class Planted:
    """A known objective: sharpe_ratio = 2 - 4 (x - 0.3)^2 - (y - 7)^2 / 25 - 0.5 [k != 3], maximum 2 at
    (0.3, 7, 3); max_drawdown = -|x| / 2 (a constraint on it moves the optimum); counts calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, params: pd.DataFrame) -> pd.DataFrame:
        self.calls.append(len(params))
        x = params["x"].to_numpy(float)
        y = params["y"].to_numpy(float) if "y" in params else np.full(len(params), 7.0)
        k = params["k"].to_numpy(float) if "k" in params else np.full(len(params), 3.0)
        out = pd.DataFrame({c: np.zeros(len(params)) for c in METRIC_COLUMNS})
        out["sharpe_ratio"] = 2 - 4 * (x - 0.3) ** 2 - (y - 7) ** 2 / 25 - 0.5 * (k != 3)
        out["max_drawdown"] = -np.abs(x) / 2
        out["n_trades"] = y * 3
        out["annual_return"] = x
        return out


def best_row(res):
    return res.trials.set_index("trial_id").loc[res.best]


SHARPE = parse_objectives("sharpe_ratio")


@pytest.mark.parametrize("method, n, tol", [("tpe", 150, 0.02), ("nsga2", 400, 0.05), ("cmaes", 250, 0.01),
                                            ("differential_evolution", 600, 0.01)])
def test_each_sampler_finds_the_planted_optimum_within_its_budget(method, n, tol):
    f = Planted()
    res = optimize(f, DIMS, SHARPE, method=method, n_trials=n, seed=3)
    b = best_row(res)
    assert len(res.trials) == n and res.n_evaluated == n and sum(f.calls) == n
    assert b["y"] == 7 and b["k"] == 3 and abs(b["x"] - 0.3) < 0.1
    assert b["objective"] > 2 - tol
    assert b["objective"] == res.trials["objective"].max()  # the best is the best row


@pytest.mark.parametrize("method", ["random", "grid"])
def test_list_methods_evaluate_their_proposals_in_batches(method):
    rng = np.random.default_rng(0)
    if method == "grid":
        proposals = pd.DataFrame([{"x": x, "y": y, "k": k} for x in np.linspace(-1, 1, 21) for y in range(0, 21, 7)
                                  for k in (1, 3)])
        dims = [Dim("x", "categorical", choices=tuple(np.linspace(-1, 1, 21))), Dim("y", "categorical",
                choices=(0, 7, 14)), Dim("k", "categorical", choices=(1, 3))]
    else:
        proposals = pd.DataFrame({"x": rng.uniform(-1, 1, 500), "y": rng.integers(0, 21, 500),
                                  "k": rng.integers(1, 5, 500)})
        dims = DIMS
    f = Planted()
    res = optimize(f, dims, SHARPE, method=method, n_trials=len(proposals), proposals=proposals, batch_size=100)
    assert f.calls == [100] * (len(proposals) // 100) + ([len(proposals) % 100] if len(proposals) % 100 else [])
    np.testing.assert_array_equal(res.trials["x"].to_numpy(), proposals["x"].to_numpy())  # in order
    b = best_row(res)
    expected = Planted()(proposals)["sharpe_ratio"]
    assert b["objective"] == expected.max() and res.best == int(expected.idxmax())
    if method == "grid":
        assert (b["x"], b["y"], b["k"]) == (pytest.approx(0.3), 7, 3)


def test_each_batch_is_one_evaluate_call():
    f = Planted()
    optimize(f, DIMS, SHARPE, method="tpe", n_trials=100, seed=1, batch_size=16)
    assert f.calls == [16] * 6 + [4]
    f = Planted()
    optimize(f, DIMS, SHARPE, method="cmaes", n_trials=70, seed=1, population_size=10)
    assert f.calls == [10] * 7  # one generation per call
    f = Planted()
    optimize(f, DIMS, SHARPE, method="differential_evolution", n_trials=100, seed=1, population_size=20)
    assert f.calls == [20] * 5  # the initial population, then one generation per call
    f = Planted()
    optimize(f, DIMS, SHARPE, method="nsga2", n_trials=90, seed=1, population_size=30)
    assert f.calls == [30] * 3


@pytest.mark.parametrize("method, n", [("tpe", 300), ("nsga2", 800), ("cmaes", 300), ("differential_evolution", 900)])
def test_constraints_hold_for_every_reported_best(method, n):
    cons = parse_constraints({"max_drawdown": 0.05, "min_trades": 12})  # |x| <= 0.1 and y >= 4
    res = optimize(Planted(), DIMS, SHARPE, method=method, n_trials=n, seed=5, constraints=cons)
    t = res.trials
    feasible = (t["max_drawdown"].abs() <= 0.05) & (t["n_trades"] >= 12)
    np.testing.assert_array_equal(t["feasible"].to_numpy(), feasible.to_numpy())
    assert (~feasible).any()  # the constraint binds: some trials were infeasible
    b = best_row(res)
    assert b["feasible"] and abs(b["max_drawdown"]) <= 0.05 and b["n_trades"] >= 12
    assert b["objective"] == t.loc[feasible, "objective"].max()
    assert abs(b["x"] - 0.1) < 0.05 and b["y"] == 7  # the constrained optimum is on the boundary x = 0.1
    assert set(res.pareto) == {res.best}


def test_invalid_parameters_are_infeasible_not_errors():
    """The strategy's own constraint (here y > 3) marks trials infeasible and they are never evaluated."""
    f = Planted()
    res = optimize(f, DIMS, SHARPE, method="tpe", n_trials=60, seed=2, valid=lambda p: p["y"].to_numpy() > 3)
    t = res.trials
    bad = t["y"] <= 3
    assert bad.any() and (~t.loc[bad, "feasible"]).all() and t.loc[bad, "objective"].isna().all()
    assert (t.loc[bad, "violation_valid_parameters"] == 1).all()
    assert sum(f.calls) == int((~bad).sum())
    assert best_row(res)["y"] > 3


def test_multi_objective_nsga2_returns_the_pareto_front():
    objs = parse_objectives(["sharpe_ratio", "annual_return"])  # both maximized: a trade-off in x
    res = optimize(Planted(), DIMS, objs, method="nsga2", n_trials=400, seed=0, population_size=40)
    t = res.trials.set_index("trial_id")
    vals = t[["objective_0", "objective_1"]].to_numpy()
    front = set(t.index[pareto_front(vals)])
    assert set(res.pareto) == front and len(front) > 5
    for i in res.pareto:  # no trial dominates a front member
        a = t.loc[i, ["objective_0", "objective_1"]].to_numpy()
        assert not (((vals >= a).all(axis=1)) & ((vals > a).any(axis=1))).any()
    assert t.loc[list(res.pareto), "x"].between(0.25, 1.0).all()  # from the sharpe peak up to the return peak
    assert res.best in res.pareto


def test_weighted_and_penalised_objectives():
    m = {k: np.array([0.0, 0.0]) for k in METRIC_COLUMNS}
    m.update(sharpe_ratio=np.array([1.0, 2.0]), calmar_ratio=np.array([3.0, 1.0]),
             max_drawdown=np.array([-0.1, -0.4]), annual_volatility=np.array([0.2, 0.1]))
    (o,) = parse_objectives({"sharpe": 0.5, "calmar": 0.5})
    assert o.name == "0.5*sharpe_ratio + 0.5*calmar_ratio" and o.direction == "maximize"
    np.testing.assert_allclose(o.values(m), [2.0, 1.5])
    (o,) = parse_objectives({"sharpe_ratio": 1.0, "annual_volatility": 2.0})  # a minimized metric enters negated
    np.testing.assert_allclose(o.values(m), [1.0 - 0.4, 2.0 - 0.2])
    (o,) = parse_objectives("sharpe_ratio", risk_penalty=0.5)
    assert o.name == "sharpe_ratio - 0.5*|max_drawdown|"
    np.testing.assert_allclose(o.values(m), [1.0 - 0.05, 2.0 - 0.2])
    (o,) = parse_objectives("sharpe_ratio", risk_penalty=2.0, risk_measure="annual_volatility")
    np.testing.assert_allclose(o.values(m), [1.0 - 0.4, 2.0 - 0.2])
    (o,) = parse_objectives("annual_volatility")
    assert o.direction == "minimize"


@pytest.mark.parametrize("spec, kwargs, message", [
    ("sharp", {}, "unknown objective 'sharp'"),
    ({}, {}, "needs at least one metric"),
    ({"sharpe_ratio": "a lot"}, {}, "weight of 'sharpe_ratio' must be a number"),
    ({"sharpe_ratio": 0, "calmar_ratio": 0}, {}, "every weight of the objective combination is 0"),
    (["sharpe_ratio", "sharpe"], {}, "listed twice"),
    (["sharpe_ratio", "calmar_ratio"], {"risk_penalty": 0.5}, "risk_penalty applies to one objective"),
    ("sharpe_ratio", {"risk_measure": "var"}, "unknown risk measure 'var'"),
    ({"sharpe_ratio": 0.5, "calmar_ratio": 0.5}, {"direction": "minimize"}, "a weighted combination is maximized"),
    (42, {}, "an objective is a metric name"),
])
def test_objective_validation_messages(spec, kwargs, message):
    with pytest.raises(ValueError, match=message):
        parse_objectives(spec, **kwargs)


def test_constraint_forms_and_violations():
    cons = parse_constraints({"max_drawdown": -0.2, "min_trades": 10, "min_sharpe": 0.5,
                              "annual_volatility": {"max": 0.3}, "max_turnover": 12})
    assert [c.text for c in cons] == ["|max_drawdown| <= 0.2", "n_trades >= 10", "sharpe_ratio >= 0.5",
                                      "annual_volatility <= 0.3", "turnover <= 12"]
    m = {k: np.array([0.0, 0.0, np.nan]) for k in METRIC_COLUMNS}
    m["max_drawdown"] = np.array([-0.1, -0.3, np.nan])
    np.testing.assert_allclose(cons[0].violation(m), [-0.5, 0.5, 1.0])  # relative to the bound; NaN violates
    for bad, message in [({"max_sharpness": 1}, "unknown constraint 'max_sharpness'"),
                         ({"sharpe_ratio": {"above": 1}}, "use {min: x, max: y}"),
                         ({"min_trades": "ten"}, "bound must be a number"),
                         ({"n_trades": {"min": 5, "max": 2}}, "min 5 is greater than max 2")]:
        with pytest.raises(ValueError, match=message):
            parse_constraints(bad)


def test_space_forms():
    dims, fixed = dims_from_space({"a": {"low": 1, "high": 9, "step": 2}, "b": {"low": 0.01, "high": 1.0, "log": True},
                                   "c": ["x", "y"], "d": [5], "e": 0.5, "f": {"values": [1, 2]}})
    assert [(d.name, d.kind) for d in dims] == [("a", "int"), ("b", "float"), ("c", "categorical"),
                                                ("f", "categorical")]
    assert fixed == {"d": 5, "e": 0.5}
    assert dims[0].decode(np.array([0.0, 0.3, 1.0])).tolist() == [1, 3, 9]
    assert dims[1].decode(np.array([0.0, 0.5, 1.0])) == pytest.approx([0.01, 0.1, 1.0])
    assert dims[2].decode(np.array([0.49, 0.51])).tolist() == ["x", "y"]
    for kw, message in [(dict(kind="float", low=2.0, high=1.0), "greater than high"),
                        (dict(kind="float", low=0.0, high=1.0, log=True), "log range needs low > 0"),
                        (dict(kind="float", low=0.1, high=1.0, log=True, step=0.1), "takes no step"),
                        (dict(kind="categorical"), "no choices")]:
        with pytest.raises(ValueError, match=message):
            Dim("p", **kw)
    # a strategy's parameters keep their type whatever the bounds look like; trading settings are recognised
    dims, fixed = strategy_dims("momentum", {"fast": {"low": 3, "high": 50}, "signal_threshold": {"low": 0, "high": 1},
                                             "risk_level": {"low": 0.01, "high": 0.05}, "max_holding": [5, 10]})
    assert [(d.name, d.kind) for d in dims] == [("fast_period", "int"), ("signal_threshold", "float"),
                                                ("target_vol", "float"), ("max_holding", "categorical")]
    with pytest.raises(ValueError, match="has no parameter 'window'"):
        strategy_dims("momentum", {"window": [1, 2]})


# ----------------------------------------------------------------- studies: persistence and resume
KILLED = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {here!r})
    from test_engine_optimize import DIMS, SHARPE, Planted
    from admf_assets.engine.optimize import StudyRef, optimize
    f = Planted()
    def evaluate(params):
        if len(f.calls) == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of a batch
        return f(params)
    optimize(evaluate, DIMS, SHARPE, method={method!r}, n_trials={n}, seed=11, population_size={pop},
             batch_size={pop}, study=StudyRef({storage!r}, "wf/phase/planted@v1"))
""")


@pytest.mark.parametrize("method", ["tpe", "nsga2", "cmaes", "differential_evolution"])
def test_a_killed_search_resumes_its_study_to_the_budget(tmp_path, method):
    storage = str(tmp_path / "optuna" / "wf.journal")
    n, pop, kill_at = 100, 10, 4
    code = KILLED.format(root=ROOT, here=os.path.dirname(os.path.abspath(__file__)), kill_at=kill_at,
                         method=method, n=n, pop=pop, storage=storage)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr  # SIGKILL
    before = optuna.load_study(study_name="wf/phase/planted@v1", storage=open_storage(storage)).get_trials()
    assert len(before) == kill_at * pop  # the finished batches; the one in flight is lost
    f = Planted()
    res = optimize(f, DIMS, SHARPE, method=method, n_trials=n, seed=11, population_size=pop, batch_size=pop,
                   study=StudyRef(storage, "wf/phase/planted@v1"))
    assert res.n_resumed == kill_at * pop and len(res.trials) == n
    assert sum(f.calls) == n - kill_at * pop  # resumed, not restarted
    first = res.trials.head(kill_at * pop)
    assert first["resumed"].all() and not res.trials["resumed"].iloc[kill_at * pop:].any()
    for t, (_, row) in zip(before, first.iterrows()):
        assert t.number == row["trial_id"] and t.params["x"] == row["x"] and t.params["y"] == row["y"]
    after = optuna.load_study(study_name="wf/phase/planted@v1", storage=open_storage(storage))
    assert len(after.trials) == n and all(t.state.name == "COMPLETE" for t in after.trials)
    if method in ("cmaes", "differential_evolution"):  # deterministic: the resumed search is the uninterrupted one
        clean = optimize(Planted(), DIMS, SHARPE, method=method, n_trials=n, seed=11, population_size=pop,
                         batch_size=pop)
        cols = ["x", "y", "k", "objective"]
        pd.testing.assert_frame_equal(res.trials[cols], clean.trials[cols])
    again = optimize(Planted(), DIMS, SHARPE, method=method, n_trials=n, seed=11, population_size=pop,
                     batch_size=pop, study=StudyRef(storage, "wf/phase/planted@v1"))
    assert again.n_evaluated == 0 and again.engine_calls == 0 and again.best == res.best


def test_cmaes_restarts_with_a_doubled_population_and_resumes_across_a_restart(tmp_path):
    """IPOP-CMA-ES: on a discrete space the first run converges (every member on one point) and a run
    with twice the population starts; a study continued past that point replays the first run and
    restarts exactly where the uninterrupted search does."""
    kw = dict(method="cmaes", seed=3, population_size=6, fixed={"x": 0.3})
    clean = optimize(Planted(), DIMS[1:], SHARPE, n_trials=320, **kw)
    sizes = clean.trials.groupby("batch").size().tolist()
    assert sizes[0] == 6 and 12 in sizes and sizes.index(12) > 5  # converged, then the larger run
    assert optimize(Planted(), DIMS[1:], SHARPE, n_trials=320, restart_strategy=None, **kw) \
        .trials.groupby("batch").size().max() == 6
    ref = StudyRef(str(tmp_path / "c.journal"), "c")
    first = 6 * (sizes.index(12) - 2)  # the budget ends before the restart
    optimize(Planted(), DIMS[1:], SHARPE, n_trials=first, study=ref, **kw)
    f = Planted()
    res = optimize(f, DIMS[1:], SHARPE, n_trials=320, study=ref, **kw)
    assert res.n_resumed == first and sum(f.calls) == 320 - first
    cols = ["y", "k", "objective"]
    pd.testing.assert_frame_equal(res.trials[cols], clean.trials[cols])
    with pytest.raises(ValueError, match="restart_strategy"):
        optimize(Planted(), DIMS[1:], SHARPE, n_trials=10, restart_strategy="bipop", **kw)


def test_a_larger_budget_continues_and_resume_false_starts_over(tmp_path):
    ref = StudyRef(str(tmp_path / "s.journal"), "s")
    optimize(Planted(), DIMS, SHARPE, method="tpe", n_trials=32, seed=1, study=ref)
    f = Planted()
    res = optimize(f, DIMS, SHARPE, method="tpe", n_trials=64, seed=1, study=ref)
    assert res.n_resumed == 32 and sum(f.calls) == 32 and len(res.trials) == 64
    f = Planted()
    res = optimize(f, DIMS, SHARPE, method="tpe", n_trials=16, seed=1,
                   study=StudyRef(ref.storage, "s", resume=False))
    assert res.n_resumed == 0 and sum(f.calls) == 16 and len(res.trials) == 16


def test_recorded_trials_carry_metrics_constraints_and_timing(tmp_path):
    path = tmp_path / "x.journal"
    cons = parse_constraints({"max_drawdown": 0.2})
    optimize(Planted(), DIMS, SHARPE, method="tpe", n_trials=20, seed=1, constraints=cons,
             study=StudyRef(str(path), "wf/p/s@1", attrs={"workflow": "wf", "symbols": ["A", "B"]}))
    study = optuna.load_study(study_name="wf/p/s@1", storage=open_storage(path))
    assert study.user_attrs == {"workflow": "wf", "symbols": ["A", "B"]}
    t = study.trials[0]
    assert set(t.user_attrs["metrics"]) == set(METRIC_COLUMNS)
    assert set(t.constraints) == {"objective_defined", "max_drawdown"}
    assert t.user_attrs["eval_seconds"] >= 0 and t.datetime_complete >= t.datetime_start
    # the file is Optuna's journal format: Optuna's own backend reads it (as optuna-dashboard does)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    plain = optuna.load_study(study_name="wf/p/s@1", storage=JournalStorage(JournalFileBackend(str(path))))
    assert [x.params for x in plain.trials] == [x.params for x in study.trials]
    json.loads(path.read_text().splitlines()[-1])


@pytest.mark.parametrize("method", ["grid", "tpe", "nsga2", "cmaes", "differential_evolution"])
def test_the_trials_table_is_what_the_study_holds(tmp_path, method):
    """The table a search returns is built from the columns it kept while searching; it equals the one
    read back from the study's FrozenTrials, resumed trials included (and NaN / inf objectives and
    metrics as NaN)."""
    from admf_assets.engine.optimize import trials_frame

    class Holes(Planted):
        def __call__(self, params):
            out = super().__call__(params)
            out.loc[params["y"].to_numpy() == 3, "sharpe_ratio"] = np.inf  # no objective
            out.loc[params["y"].to_numpy() == 4, "calmar_ratio"] = np.nan
            return out

    ref = StudyRef(str(tmp_path / "t.journal"), "t")
    objectives = parse_objectives(["sharpe_ratio", "calmar_ratio"] if method == "nsga2" else "sharpe_ratio")
    kw = dict(method=method, seed=4, constraints=parse_constraints({"max_drawdown": 0.3}),
              valid=lambda f: np.asarray(f["y"]) != 5, population_size=None if method in ("grid", "tpe") else 10)
    if method == "grid":
        kw["proposals"] = pd.DataFrame({"x": np.linspace(-1, 1, 60), "y": np.arange(60) % 21,
                                        "k": np.arange(60) % 4 + 1})
    optimize(Holes(), DIMS, objectives, n_trials=30, study=ref, **kw)
    res = optimize(Holes(), DIMS, objectives, n_trials=60, study=ref, **kw)
    assert res.n_resumed == 30 and res.trials["resumed"].tolist() == [True] * 30 + [False] * 30
    study = optuna.load_study(study_name="t", storage=open_storage(ref.storage))
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    back = trials_frame(trials, DIMS, objectives, ["valid_parameters", "objective_defined", "max_drawdown"])
    back["resumed"] = res.trials["resumed"]  # the session is the search's own
    pd.testing.assert_frame_equal(res.trials, back)
    assert res.trials["objective"].isna().any() and res.trials["calmar_ratio"].isna().any()


def test_the_evaluator_takes_a_batch_as_columns(close):
    """``evaluate_columns`` (how a search hands over its batch) gives the frame call's numbers, through
    the one-block path and through the others (aliases, more rows than a block, a decision mask)."""
    cols = {"fast_period": np.array([5, 10, 20]), "slow_period": np.array([30, 50, 100]),
            "signal_threshold": np.array([0.0, 0.01, 0.0]), "stop_loss": [0.05, 0.05, 0.05]}
    for ev in (BacktestEvaluator(close, "momentum", BacktestConfig(cost_bps=5)),
               BacktestEvaluator(close, "momentum", decisions=np.arange(len(close)) % 3 > 0)):
        np.testing.assert_array_equal(ev.evaluate_columns(cols, 3), ev(pd.DataFrame(cols)).to_numpy())
    from admf_assets.engine.search import sample_params
    from admf_assets.engine.strategies import STRATEGIES, normalize_params

    for name, spec in STRATEGIES.items():  # every strategy that takes columns: the numbers of the frame path
        if not spec.takes_columns:
            continue
        frame = normalize_params(name, sample_params(name, spec.space, 6, seed=1)[0].head(6))
        cols = {c: frame[c].to_numpy() for c in frame.columns}
        ev = BacktestEvaluator(close, name, BacktestConfig(mode="long_short"))
        np.testing.assert_array_equal(ev.evaluate_columns(cols, len(frame), checked=True), ev(frame).to_numpy(),
                                      err_msg=name)
    assert {n for n, sp in STRATEGIES.items() if sp.takes_columns} >= {"momentum", "mean_reversion", "breakout",
                                                                          "pairs_trading"}
    ev = BacktestEvaluator(close, "momentum")
    alias = {"fast": [5, 10], "slow": [30, 50]}
    np.testing.assert_array_equal(ev.evaluate_columns(alias, 2), ev(pd.DataFrame(alias)).to_numpy())
    n = ev.fast.max_rows + 1
    big = {"fast_period": np.full(n, 5), "slow_period": np.full(n, 30)}
    np.testing.assert_allclose(ev.evaluate_columns(big, n)[:, list(METRIC_COLUMNS).index("sharpe_ratio")],
                               run_grid(close, "momentum", pd.DataFrame(big)).metrics["sharpe_ratio"], rtol=1e-12)


def test_study_names_and_paths(tmp_path):
    assert journal_path(tmp_path, "wf", "opt", "v1", "momentum@regime=calm") == \
        tmp_path / "optuna" / "wf" / "opt@v1" / "momentum@regime=calm.journal"
    assert study_name("wf", "opt", "momentum", "regime=calm", version="abc") == "wf/opt/momentum/regime=calm@abc"
    backend = SyncedJournalFile(str(tmp_path / "j.journal"), sync_seconds=3600)
    backend.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "a", "directions": [1]}])
    backend.sync()
    assert len(list(backend.read_logs(0))) == 1


# ----------------------------------------------------------------- importance and distribution
def test_importance_names_the_parameter_that_matters():
    dims = DIMS + [Dim("noise", "float", 0.0, 1.0)]
    res = optimize(Planted(), dims, SHARPE, method="tpe", n_trials=120, seed=4)
    imp = param_importance(res)
    assert list(imp.columns) == ["parameter", "importance", "evaluator", "n_trials"]
    assert imp["importance"].sum() == pytest.approx(1.0)
    assert imp.iloc[0]["parameter"] in ("x", "y", "k") and imp.set_index("parameter").loc["noise", "importance"] < 0.2
    dist = performance_distribution(res.trials)
    obj = dist.set_index("metric").loc["objective"]
    feas = res.trials["objective"]
    assert obj["n"] == 120 and obj["max"] == feas.max() and obj["p50"] == pytest.approx(feas.median())


# ----------------------------------------------------------------- the backtest evaluator
@pytest.fixture(scope="module")
def close():
    rng = np.random.default_rng(9)
    c = 100 * np.exp(np.cumsum(rng.normal(3e-4, 0.013, (700, 3)), axis=0))
    return pd.DataFrame(c, index=pd.bdate_range("2017-01-02", periods=700), columns=["A", "B", "C"])


def test_batched_evaluation_equals_one_run_grid_per_set(close):
    cfg = BacktestConfig(cost_bps=5, mode="long_short")
    params = pd.DataFrame({"fast_period": [5, 10, 20], "slow_period": [30, 50, 100], "signal_threshold": 0.0,
                           "stop_loss": [0.03, 0.05, 0.08], "position_size": [0.5, 1.0, 0.25]})
    ev = BacktestEvaluator(close, "momentum", cfg)
    got = ev(params)
    for i, row in params.iterrows():
        one = BacktestConfig(cost_bps=5, mode="long_short", stop_loss=row.stop_loss, position_size=row.position_size)
        ref = run_grid(close, "momentum", params.iloc[[i]][["fast_period", "slow_period", "signal_threshold"]], one)
        np.testing.assert_allclose(got.iloc[i].to_numpy(), ref.metrics[list(METRIC_COLUMNS)].iloc[0].to_numpy(),
                                   rtol=1e-12, atol=1e-14)
    # per-combination target volatility = separate runs with that scalar target
    tv = pd.DataFrame({"lookback": [10, 20], "entry_z": 1.5, "exit_z": 0.0, "target_vol": [0.05, 0.2]})
    got = BacktestEvaluator(close, "mean_reversion", BacktestConfig())(tv)
    for i, t in enumerate([0.05, 0.2]):
        ref = run_grid(close, "mean_reversion", tv.iloc[[i]].drop(columns="target_vol"),
                       BacktestConfig(sizing="vol_target", target_vol=t))
        np.testing.assert_allclose(got.iloc[i].to_numpy(), ref.metrics[list(METRIC_COLUMNS)].iloc[0].to_numpy(),
                                   rtol=1e-12, atol=1e-14)


def test_grid_metrics_equal_run_grid_across_configs(close):
    """The evaluator's one-block path (GridMetrics: closes prepared once, sizing arrays kept per config)
    gives run_grid's metrics, call after call, whatever the config of each call."""
    from admf_assets.engine.backtest import GridMetrics

    gm = GridMetrics(close)
    params = pd.DataFrame({"fast_period": [5, 10, 20, 5], "slow_period": [30, 50, 100, 30],
                           "signal_threshold": [0.0, 0.01, 0.0, 0.02]})
    configs = [BacktestConfig(), BacktestConfig(sizing="vol_target", target_vol=0.1),
               BacktestConfig(sizing="vol_target", target_vol=0.2, cost_bps=3, weights={"A": 2, "B": 1, "C": 1}),
               BacktestConfig(sizing="vol_target", target_vol=0.1), BacktestConfig(mode="long_short", stop_loss=0.05)]
    for cfg in configs:
        got = gm("momentum", params, cfg)
        ref = run_grid(close, "momentum", params, cfg).metrics
        for k in METRIC_COLUMNS:
            np.testing.assert_allclose(got[k], ref[k].to_numpy(), rtol=1e-12, atol=1e-14, err_msg=k)
    with pytest.raises(ValueError, match="invalid parameter"):
        gm("momentum", pd.DataFrame({"fast_period": [50], "slow_period": [20]}))
    big = pd.DataFrame({"fast_period": np.full(gm.max_rows + 1, 5), "slow_period": 30})
    with pytest.raises(ValueError, match="exceed one block"):
        gm("momentum", big)
    ev = BacktestEvaluator(close, "momentum")  # a batch larger than a block goes through run_grid's chunks
    np.testing.assert_allclose(ev(big)["sharpe_ratio"], run_grid(close, "momentum", big).metrics["sharpe_ratio"],
                               rtol=1e-12)


def test_position_size_scales_positions(close):
    p = pd.DataFrame({"fast_period": [10, 10], "slow_period": [40, 40], "signal_threshold": 0.0})
    a = run_grid(close, "momentum", p, BacktestConfig(position_size=[1.0, 0.5]))
    np.testing.assert_allclose(a.returns[1].to_numpy(), 0.5 * a.returns[0].to_numpy(), rtol=1e-13, atol=1e-16)
    with pytest.raises(ValueError, match="position_size must be > 0"):
        BacktestConfig(position_size=0.0)


def test_decision_mask_scores_the_decisions_a_label_governs(close):
    params = pd.DataFrame({"fast_period": [5, 10], "slow_period": [20, 60], "signal_threshold": 0.0})
    full = BacktestEvaluator(close, "momentum")(params)
    every = BacktestEvaluator(close, "momentum", decisions=np.ones(len(close), bool))(params)
    pd.testing.assert_frame_equal(every[["total_return", "n_trades", "exposure", "turnover"]],
                                  full[["total_return", "n_trades", "exposure", "turnover"]], rtol=1e-12)
    # bar 0's placeholder return (no decision precedes it) is not scored
    rets = run_grid(close, "momentum", params).returns.to_numpy()
    np.testing.assert_allclose(every["sharpe_ratio"], compute_metrics(rets[1:])["sharpe_ratio"], rtol=1e-12)
    mask = (np.arange(len(close)) // 50) % 2 == 0  # alternate 50-day blocks
    got = BacktestEvaluator(close, "momentum", decisions=mask)(params)
    res = run_grid(close, "momentum", params, keep_positions=True)
    rows = np.r_[False, mask[:-1]]  # the return at t+1 belongs to the decision at t
    ref = compute_metrics(rets[rows])
    np.testing.assert_allclose(got["sharpe_ratio"], ref["sharpe_ratio"], rtol=1e-12)
    np.testing.assert_allclose(got["total_return"], ref["total_return"], rtol=1e-12)
    pos = res.positions.astype(float)
    prev = np.concatenate([np.zeros_like(pos[:1]), pos[:-1]])
    opens = (np.sign(pos) != 0) & (np.sign(pos) != np.sign(prev))
    assert got["n_trades"].tolist() == opens[mask].sum(axis=(0, 1)).tolist()


def test_strategy_proposals_and_validity():
    frame, dims, fixed, n = list_proposals("momentum", {"fast_period": [5, 20], "slow_period": [10, 40],
                                                        "stop_loss": [0.02, 0.05]}, "grid")
    assert n == 8 and len(frame) == 6  # (20, 10) dropped for both stop losses
    assert fixed == {"signal_threshold": 0.0} and [d.name for d in dims] == ["fast_period", "slow_period", "stop_loss"]
    valid = strategy_valid("momentum")
    assert valid(pd.DataFrame({"fast_period": [5, 30], "slow_period": [10, 10], "stop_loss": [0.1, 0.1]})).tolist() \
        == [True, False]
    frame, dims, fixed, n = list_proposals("momentum", {"fast_period": {"low": 3, "high": 50},
                                                        "slow_period": {"low": 10, "high": 200},
                                                        "position_size": {"low": 0.1, "high": 0.5}}, "random", 80, 3)
    assert n == 80 and len(frame) < 80 and frame["position_size"].between(0.1, 0.5).all()
    assert {d.name: d.kind for d in dims} == {"fast_period": "int", "slow_period": "int", "position_size": "float"}
    again, *_ = list_proposals("momentum", {"fast_period": {"low": 3, "high": 50},
                                            "slow_period": {"low": 10, "high": 200},
                                            "position_size": {"low": 0.1, "high": 0.5}}, "random", 80, 3)
    pd.testing.assert_frame_equal(frame, again)


def test_search_a_real_strategy_end_to_end(close):
    """TPE over momentum and a stop loss, with a drawdown constraint: the reported best is a real
    run_grid result and respects the constraint; the exhaustive grid cannot beat it by much."""
    space = {"fast_period": {"low": 3, "high": 30}, "slow_period": {"low": 20, "high": 120},
             "stop_loss": {"low": 0.02, "high": 0.1}}
    dims, fixed = strategy_dims("momentum", space)
    cfg = BacktestConfig(cost_bps=5)
    cons = parse_constraints({"max_drawdown": 0.3})
    res = optimize(BacktestEvaluator(close, "momentum", cfg), dims, SHARPE, method="tpe", n_trials=120, seed=0,
                   constraints=cons, fixed=fixed, valid=strategy_valid("momentum"))
    b = best_row(res)
    assert b["feasible"] and abs(b["max_drawdown"]) <= 0.3
    one = run_grid(close, "momentum", pd.DataFrame([{"fast_period": b.fast_period, "slow_period": b.slow_period}]),
                   BacktestConfig(cost_bps=5, stop_loss=b.stop_loss))
    assert one.metrics["sharpe_ratio"].iloc[0] == pytest.approx(b["objective"], rel=1e-12)
    grid = run_grid(close, "momentum", expand_grid("momentum", {"fast_period": list(range(3, 31, 3)),
                                                                "slow_period": list(range(20, 121, 10))}), cfg)
    ok = grid.metrics["max_drawdown"].abs() <= 0.3
    assert b["objective"] >= grid.metrics.loc[ok, "sharpe_ratio"].max() - 0.15
    assert res.engine_calls <= math.ceil(120 / 8)  # batches of 8: at most one run_grid call each
