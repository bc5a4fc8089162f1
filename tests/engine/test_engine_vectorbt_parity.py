"""Parity with an independent engine (vectorbt, a dev dependency): same seeded data and grid.

vectorbt is imported once, here, at module level: if it is missing this module errors
instead of silently skipping. Conventions aligned explicitly: vectorbt's portfolio returns
start with the 0 return of the first bar (as ours do), std uses ddof=1, and the
annualization factor is passed as year_freq='252 days' (vectorbt's default is 365).
"""
import warnings

import numpy as np
import pandas as pd
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import vectorbt as vbt

from admf_assets.engine.backtest import BacktestConfig, run_grid
from admf_assets.engine.strategies import expand_grid

GRID = expand_grid("momentum", {"fast_period": list(range(5, 51, 5)), "slow_period": list(range(20, 201, 10))})


@pytest.fixture(scope="module")
def close():
    rng = np.random.default_rng(42)  # seeded GBM, daily log-returns N(3e-4, 0.012)
    c = 100.0 * np.exp(np.cumsum(rng.normal(3e-4, 0.012, (700, 2)), axis=0))
    return pd.DataFrame(c, index=pd.bdate_range("2010-01-04", periods=700), columns=["AAA", "BBB"])


def vectorbt_grid(close, fees):
    fast = vbt.MA.run(close, window=GRID.fast_period.tolist(), short_name="fast")
    slow = vbt.MA.run(close, window=GRID.slow_period.tolist(), short_name="slow")
    entries = fast.ma_above(slow)
    exits = fast.ma_below(slow)
    pf = vbt.Portfolio.from_signals(close, entries, exits, fees=fees, freq="1D")
    ra = pf.get_returns_acc(freq="1D", year_freq="252 days")
    return pf, ra


@pytest.mark.parametrize("cost_bps,slippage_bps", [(0.0, 0.0), (7.0, 3.0)])
def test_total_return_and_sharpe_match_vectorbt(close, cost_bps, slippage_bps):
    assert len(GRID) == 174
    pf, ra = vectorbt_grid(close, (cost_bps + slippage_bps) / 1e4)
    res = run_grid(close, "momentum", GRID, BacktestConfig(cost_bps=cost_bps, slippage_bps=slippage_bps),
                   per_symbol=True)
    m = res.metrics
    assert len(m) == 348  # 174 combinations x 2 symbols, ordered like vectorbt's columns
    cols = pf.total_return().index
    assert [(f, s, sym) for f, s, sym in cols] == list(zip(m.fast_period, m.slow_period, m.symbol))
    np.testing.assert_allclose(m.total_return.to_numpy(), pf.total_return().to_numpy(), rtol=1e-9, atol=0)
    np.testing.assert_allclose(m.sharpe_ratio.to_numpy(), ra.sharpe_ratio().to_numpy(), rtol=1e-9, atol=0)
    # the per-bar returns themselves, and more metrics
    np.testing.assert_allclose(res.returns.to_numpy(), pf.returns().to_numpy(), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(m.max_drawdown.to_numpy(), pf.max_drawdown().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(m.annual_volatility.to_numpy(), ra.annualized_volatility().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(m.sortino_ratio.to_numpy(), ra.sortino_ratio().to_numpy(), rtol=1e-9)
    # trades: vectorbt counts entries; ours counts opens (long-only: the same thing)
    np.testing.assert_array_equal(m.n_trades.to_numpy(), pf.entry_trades.count().to_numpy())
    assert (m.n_trades > 0).all() and m.total_return.std() > 0


def test_combined_portfolio_is_weighted_sleeves(close):
    pf, _ = vectorbt_grid(close, 0.001)
    res = run_grid(close, "momentum", GRID, BacktestConfig(cost_bps=10, weights={"AAA": 0.7, "BBB": 0.3}))
    vr = pf.returns().to_numpy().reshape(len(close), 174, 2)
    np.testing.assert_allclose(res.returns.to_numpy(), vr @ np.array([0.7, 0.3]), rtol=1e-9, atol=1e-15)
