"""Ensemble weights by replay (engine.ensemble): every weight vector meets every constraint,
closed forms against their textbook solutions, replay against the linear combination of the
members and against time-varying netting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine import ensemble as en
from admf_assets.engine import synthetic
from admf_assets.engine.backtest import BacktestConfig
from admf_assets.engine.capture import capture_signals, concat_captured, replay
from admf_assets.engine.strategies import expand_grid

CONSTRAINTS = [
    en.Constraints(),
    en.Constraints(sum_weights=1.0, min_weight=0.05, max_weight=0.4, max_correlation=0.8),
    en.Constraints(sum_weights=1.0, min_weight=0.2, max_weight=0.5),
    en.Constraints(sum_weights=2.0, min_weight=0.0, max_weight=0.7, max_members=4),
    en.Constraints(sum_weights=1.0, min_weight=0.0, max_weight=0.34, max_correlation=0.9),
]


@pytest.fixture(scope="module")
def market():
    bars = synthetic.synthetic_bars(("SPY", "QQQ"), "2020-01-01", "2022-12-30")
    close = bars.pivot(index="date", columns="symbol", values="close")
    close.index = pd.DatetimeIndex(close.index)
    caps = [capture_signals(close, "momentum", expand_grid("momentum", {"fast_period": [5, 10, 20],
                                                                      "slow_period": [30, 60]}), id_prefix="mom"),
            capture_signals(close, "mean_reversion", expand_grid("mean_reversion", {"lookback_period": [10, 20, 40]}),
                            id_prefix="mr")]
    cap = concat_captured(caps)
    n_train = 500
    train = type(cap)(cap.index[:n_train], cap.symbols, cap.positions[:n_train], cap.columns)
    return close, cap, train, n_train


def _members(train, close, cfg):
    return replay(train, close.iloc[:len(train.index)], cfg, kind="close").to_numpy()


@pytest.mark.parametrize("cons", CONSTRAINTS, ids=range(len(CONSTRAINTS)))
def test_projection_meets_every_constraint(cons):
    rng = np.random.default_rng(0)
    R = rng.normal(0, 0.01, (300, 12))
    R[:, 1] = R[:, 0] * 0.95 + rng.normal(0, 0.002, 300)  # a highly correlated pair
    eligible = en.eligible_members(R, cons)
    corr = np.corrcoef(R, rowvar=False)
    for scale in (1.0, 10.0, 1e-6):
        scores = rng.normal(0, scale, (500, 12))
        W = en.project(scores, eligible, cons)
        assert en.check_weights(W, eligible, cons, corr) == [], cons
    if cons.max_correlation is not None:
        assert not (eligible[0] and eligible[1])


@pytest.mark.parametrize("method", en.METHODS)
@pytest.mark.parametrize("cons", CONSTRAINTS[:3], ids=range(3))
def test_every_method_returns_feasible_weights(market, method, cons):
    close, cap, train, n_train = market
    cfg = BacktestConfig(cost_bps=2.0)
    members = _members(train, close, cfg)
    eligible = en.eligible_members(members, cons)
    ev = en.Evaluator(train, close.iloc[:n_train], cfg)
    fit = en.fit_weights(method, ev, members, eligible, cons, n_trials=40, batch_size=10, n_generations=4,
                         population_size=16)
    corr = np.corrcoef(members, rowvar=False)
    assert en.check_weights(fit.weights[None, :], eligible, cons, corr) == []
    assert np.isfinite(fit.score)
    if method in en.SAMPLER_METHODS:
        assert fit.n_evals >= 16 and fit.history == sorted(fit.history)  # best so far never worsens
        # the equal-weight start is among the candidates: never worse than it
        eq = en.project(np.ones((1, len(eligible))), eligible, cons)
        assert fit.score >= ev.score(eq)[0] - 1e-9


def test_replayed_ensemble_is_the_weighted_sum_of_members_without_costs(market):
    close, cap, train, n_train = market
    cfg = BacktestConfig()
    members = _members(train, close, cfg)
    rng = np.random.default_rng(3)
    W = rng.dirichlet(np.ones(members.shape[1]), 5)
    ev = en.Evaluator(train, close.iloc[:n_train], cfg)
    np.testing.assert_allclose(ev.returns(W), members @ W.T, atol=1e-14)


def test_time_varying_netting_equals_replay_for_constant_weights(market):
    close, cap, _, _ = market
    cfg = BacktestConfig(cost_bps=5.0, slippage_bps=2.0)
    w = np.random.default_rng(4).dirichlet(np.ones(len(cap.strategy_ids)))
    ref = replay(cap, close, cfg, weights=dict(zip(cap.strategy_ids, w)), kind="close")["ensemble"].to_numpy()
    path = np.tile(w, (len(cap.index), 1))
    np.testing.assert_allclose(en.path_returns(cap, close, cfg, path), ref, atol=1e-14)


def test_weight_path_drift_and_regimes():
    R = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, -0.5], [0.2, 0.2]])
    W = en.weight_path(np.array([0.5, 0.5]), R, rebalance_every=3)
    # bar 0 rebalances; bar 1: sleeve 0 grew 10 % -> 0.55 / 1.05; bar 2: sleeve 1 halves
    np.testing.assert_allclose(W[1], [0.55 / 1.05, 0.5 / 1.05])
    np.testing.assert_allclose(W[2], [0.55 / 0.8, 0.25 / 0.8])
    np.testing.assert_allclose(W[3], [0.5, 0.5])  # bar 3 rebalances
    targets = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])  # regime 0, regime 1, fallback
    Wr = en.weight_path(targets, R, regime=np.array([0, 1, -1, 1]), confidence=np.array([0.9, 0.6, 0.9, 0.9]),
                        threshold=0.7)
    np.testing.assert_allclose(Wr, [[1, 0], [0.5, 0.5], [0.5, 0.5], [0, 1]])


def test_closed_forms_on_uncorrelated_members():
    """Uncorrelated members: minimum variance ~ 1/sigma^2, maximum Sharpe ~ mu/sigma^2,
    inverse volatility ~ 1/sigma (long only, sum 1, bounds not binding)."""
    rng = np.random.default_rng(5)
    n = 200_000
    sig = np.array([0.01, 0.02, 0.015])
    mu = np.array([0.0004, 0.0006, 0.0003])
    Z = rng.standard_normal((n, 3))
    Z = (Z - Z.mean(0)) / Z.std(0)
    Z = np.linalg.solve(np.linalg.cholesky(np.cov(Z, rowvar=False)), Z.T).T  # exactly uncorrelated sample
    R = mu + Z * sig
    cons = en.Constraints()
    el = np.ones(3, bool)
    expect = {"minimum_variance": 1 / sig ** 2, "maximum_sharpe": mu / sig ** 2, "inverse_volatility": 1 / sig,
              "equal_weight": np.ones(3)}
    for method, raw in expect.items():
        w = en._closed_form(method, R, el, cons, 0, None)
        np.testing.assert_allclose(w, raw / raw.sum(), atol=2e-3, err_msg=method)


def test_infeasible_constraints_are_reported():
    cons = en.Constraints(min_weight=0.1, max_weight=0.2)
    assert "max_weight" in en.Constraints(max_weight=0.2).feasible(3)
    assert cons.feasible(10) is None and cons.max_included(20) == 10
    with pytest.raises(ValueError, match="cannot be met"):
        en.project(np.ones((1, 3)), np.ones(3, bool), en.Constraints(max_weight=0.2))
