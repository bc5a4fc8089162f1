"""engine.walkforward: fold dates, no training on test-window data, stitching, stability."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine import search as engine_search
from admf_assets.engine import synthetic
from admf_assets.engine import walkforward as wf
from admf_assets.engine.backtest import BacktestConfig, run_backtest

DATES = pd.bdate_range("2020-01-01", periods=400)
SPACE = {"fast_period": [5, 10, 20], "slow_period": [30, 50]}
SPEC = wf.SearchSpec(candidates=(("momentum", SPACE),))


@pytest.fixture(scope="module")
def close():
    bars = synthetic.synthetic_bars(["SPY", "QQQ"], "2018-01-01", "2020-12-31")
    c = bars.pivot(index="date", columns="symbol", values="close")
    c.index = pd.DatetimeIndex(c.index)
    return c


def test_rolling_folds_with_a_gap_never_overlap_train_and_test():
    folds = wf.plan_folds(DATES, train=100, test=50, step=50, window="rolling", gap=5)
    assert [f.key for f in folds] == [f"fold_{i:02d}" for i in range(1, 6)]
    pos = {d: i for i, d in enumerate(DATES)}
    for k, f in enumerate(folds):
        assert pos[f.train_end] - pos[f.train_start] + 1 == 100
        assert pos[f.test_start] - pos[f.train_end] - 1 == 5  # the embargo
        assert pos[f.test_end] - pos[f.test_start] + 1 == 50
        assert f.train_end < f.test_start
        assert pos[f.test_start] == 105 + 50 * k
        assert f.active_end == f.test_end  # back-to-back test windows
    assert folds[-1].test_end <= DATES[-1]


def test_anchored_folds_expand_and_overlapping_tests_hand_over_at_the_next_start():
    folds = wf.plan_folds(DATES, train=100, test=60, step=30, window="anchored")
    assert all(f.train_start == DATES[0] for f in folds)
    assert [f.train_end for f in folds] == [DATES[99 + 30 * k] for k in range(len(folds))]
    for a, b in zip(folds, folds[1:]):
        assert a.test_end > b.test_start  # overlapping test windows ...
        assert a.active_end == DATES[DATES.get_loc(b.test_start) - 1]  # ... trade until the next fold starts
    assert folds[-1].active_end == folds[-1].test_end
    assert len(folds) == (400 - 100 - 60) // 30 + 1


def test_plan_rejects_bad_windows():
    with pytest.raises(ValueError):
        wf.plan_folds(DATES, 1, 10)
    with pytest.raises(ValueError, match="window"):
        wf.plan_folds(DATES, 100, 10, window="sideways")
    assert wf.plan_folds(DATES[:120], 100, 30) == []


def test_the_search_sees_only_the_train_window(close):
    seen = []

    def spy(c, *args, **kwargs):
        seen.append((c.index[0], c.index[-1]))
        return engine_search.search(c, *args, **kwargs)

    folds = wf.plan_folds(close.index, 200, 60, 60, gap=3)
    for f in folds:
        wf.run_fold(close, f, SPEC, BacktestConfig(), search=spy)
        first, last = seen[-1]
        assert first == f.train_start and last == f.train_end
        assert last < f.test_start
        assert close.index.get_loc(f.test_start) - close.index.get_loc(last) == 4  # gap of 3 trading days


def test_changing_the_future_of_a_fold_does_not_change_its_choice(close):
    f = wf.plan_folds(close.index, 250, 60, 60)[2]
    a = wf.run_fold(close, f, SPEC, BacktestConfig())
    later = close.copy()
    later.loc[later.index > f.train_end] *= np.exp(np.cumsum(
        np.random.default_rng(1).normal(0, 0.03, size=((later.index > f.train_end).sum(), 2)), axis=0))
    b = wf.run_fold(later, f, SPEC, BacktestConfig())
    assert a.row["params"] == b.row["params"]
    assert a.row["is_sharpe_ratio"] == b.row["is_sharpe_ratio"]
    assert a.row["oos_sharpe_ratio"] != b.row["oos_sharpe_ratio"]


def test_fold_row_metrics(close):
    f = wf.plan_folds(close.index, 250, 60, 60)[0]
    res = wf.run_fold(close, f, SPEC, BacktestConfig(cost_bps=5))
    row = res.row
    assert row["n_train_bars"] == 250 and row["n_test_bars"] == 60 and row["n_trials"] == 6
    assert len(res.history) == 6 and res.history["rank"].min() == 1
    best = res.history.loc[res.history["rank"] == 1].iloc[0]
    assert row["params"] == best["params"] and row["is_objective"] == best["objective"]
    # the out-of-sample numbers: a backtest over the history up to the test end, test dates only
    full = run_backtest(close.loc[:f.test_end], "momentum", json.loads(row["params"]), BacktestConfig(cost_bps=5))
    r = full.returns.iloc[:, 0].loc[f.test_start:f.test_end]
    np.testing.assert_allclose(res.returns["return"].to_numpy(), r.to_numpy())
    assert row["oos_total_return"] == pytest.approx(np.prod(1 + r) - 1)


def test_stitched_account_equals_the_folds_without_costs(close):
    folds = wf.plan_folds(close.index, 200, 60, 60)
    results = [wf.run_fold(close, f, SPEC, BacktestConfig()) for f in folds]
    chosen = [(r.row["strategy"], json.loads(r.row["params"])) for r in results]
    oos = wf.stitch(close, folds, chosen, BacktestConfig())
    per_fold = pd.concat([r.returns for r in results], ignore_index=True)
    np.testing.assert_array_equal(oos["date"].to_numpy(), per_fold["date"].to_numpy())
    np.testing.assert_allclose(oos["return"].to_numpy(), per_fold["return"].to_numpy(), atol=1e-15)
    assert oos["fold"].tolist() == [f.key for f in folds for _ in range(60)]
    assert oos["equity"].iloc[-1] == pytest.approx(np.prod(1 + oos["return"]))
    # with costs the account also pays for switching between folds (charged once, at the switch)
    costly = wf.stitch(close, folds, chosen, BacktestConfig(cost_bps=10))
    assert costly["equity"].iloc[-1] < oos["equity"].iloc[-1]


def test_overlapping_tests_stitch_each_fold_until_the_next_start(close):
    folds = wf.plan_folds(close.index, 200, 60, 20)
    chosen = [("momentum", {"fast_period": 5 if i % 2 else 20, "slow_period": 50}) for i in range(len(folds))]
    oos = wf.stitch(close, folds, chosen, BacktestConfig())
    counts = oos["fold"].value_counts()
    assert all(counts[f.key] == 20 for f in folds[:-1]) and counts[folds[-1].key] == 60
    assert oos["date"].is_unique


def test_parameter_evolution_and_summary():
    table = pd.DataFrame({
        "fold": ["fold_01", "fold_02", "fold_03"], "test_start": DATES[:3], "test_end": DATES[1:4],
        "strategy": "momentum",
        "params": [json.dumps({"fast_period": 5, "slow_period": 50}), json.dumps({"fast_period": 10, "slow_period": 50}),
                   json.dumps({"fast_period": 10, "slow_period": 50})],
        "is_sharpe_ratio": [2.0, 1.0, 1.5], "oos_sharpe_ratio": [1.0, 0.0, 0.5], "oos_total_return": [0.1, -0.1, 0.05],
    })
    long, stab = wf.parameter_evolution(table)
    assert long["changed"].tolist() == [False, False, False, False, True, False, False, False, False]
    s = stab.set_index("parameter")
    assert s.loc["fast_period", "changes"] == 1 and s.loc["fast_period", "stability"] == 0.5
    assert s.loc["slow_period", "stability"] == 1.0
    oos = pd.DataFrame({"date": DATES[:50], "return": np.linspace(-0.01, 0.012, 50)})
    summary = wf.summarize(table, oos, stab[stab["parameter"] == "fast_period"], "sharpe_ratio")
    assert summary["walk_forward_efficiency"] == pytest.approx(0.5 / 1.5)
    assert summary["profitable_fold_fraction"] == pytest.approx(2 / 3)
    assert summary["parameter_stability"] == 0.5
    assert wf.efficiency_metric("total_return") == "annual_return"


def test_a_fold_searches_trading_settings_with_a_sampler(close):
    """Seed 000's search (bayesian over risk_level, stop_loss and the periods): each fold runs
    Optuna's TPE on its train window only; the chosen stop and volatility target go in the
    fold's ``trading`` column and into its out-of-sample backtest."""
    from dataclasses import replace

    space = {"fast_period": {"low": 5, "high": 20}, "slow_period": {"low": 30, "high": 80},
             "stop_loss": {"low": 0.02, "high": 0.1}, "risk_level": {"low": 0.05, "high": 0.2}}
    spec = wf.SearchSpec(candidates=(("momentum", space),), method="tpe", n_trials=24)
    assert spec.searches_trading
    f = wf.plan_folds(close.index, 250, 60, 60)[0]
    cfg = BacktestConfig(cost_bps=5)
    res = wf.run_fold(close, f, spec, cfg)
    row = res.row
    chosen, trading = json.loads(row["params"]), json.loads(row["trading"])
    assert set(chosen) == {"fast_period", "slow_period"} and set(trading) == {"stop_loss", "target_vol"}
    assert 0.02 <= trading["stop_loss"] <= 0.1 and 0.05 <= trading["target_vol"] <= 0.2
    assert len(res.history) == 24 and row["n_trials"] == 24
    # the winner is the best trial of the train window, re-measured there with a direct backtest
    train = close.loc[f.train_start:f.train_end]
    tuned = replace(cfg, sizing="vol_target", **trading)
    direct = run_backtest(train, "momentum", chosen, tuned).metrics.iloc[0]
    assert row["is_objective"] == pytest.approx(direct["sharpe_ratio"], rel=1e-9)
    assert row["is_objective"] == res.history["objective"].max()
    full = run_backtest(close.loc[:f.test_end], "momentum", chosen, tuned)
    r = full.returns.iloc[:, 0].loc[f.test_start:f.test_end]
    np.testing.assert_allclose(res.returns["return"].to_numpy(), r.to_numpy())


def test_the_stitched_account_applies_each_folds_trading_settings(close):
    from dataclasses import replace

    folds = wf.plan_folds(close.index, 200, 60, 60)[:3]
    chosen = [("momentum", {"fast_period": 10, "slow_period": 50})] * 3
    cfg = BacktestConfig(cost_bps=5)
    same = wf.stitch(close, folds, chosen, cfg, [{"stop_loss": 0.03}] * 3)
    direct = wf.stitch(close, folds, chosen, replace(cfg, stop_loss=0.03))
    np.testing.assert_allclose(same["return"].to_numpy(), direct["return"].to_numpy(), atol=1e-15)
    stops = [{"stop_loss": 0.02}, {"stop_loss": 0.05}, {"stop_loss": 0.1}]
    mixed = wf.stitch(close, folds, chosen, cfg, stops)
    for f, t in zip(folds, stops):  # each fold's dates: the stitched positions under its own stop
        alone = wf.stitch(close, folds, chosen, replace(cfg, **t))
        sel = mixed["fold"] == f.key
        np.testing.assert_allclose(mixed.loc[sel, "return"].to_numpy(), alone.loc[sel, "return"].to_numpy(),
                                   atol=1e-15)
    evo, stab = wf.parameter_evolution(pd.DataFrame({
        "fold": [f.key for f in folds], "test_start": [f.test_start for f in folds],
        "test_end": [f.test_end for f in folds], "strategy": "momentum",
        "params": [json.dumps(p) for _, p in chosen], "trading": [json.dumps(t) for t in stops]}))
    assert stab.set_index("parameter").loc["stop_loss", "n_distinct"] == 3
