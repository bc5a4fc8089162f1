"""Backtest core: per-bar account simulation references, closed forms, chunking."""
import numpy as np
import pandas as pd
import pytest

from admf_assets.engine.backtest import BacktestConfig, backtest_positions, run_backtest, run_grid
from admf_assets.engine.strategies import expand_grid, generate_positions


def frame(n_bars, n_sym, seed, vol=0.02):
    rng = np.random.default_rng(seed)
    c = 100.0 * np.exp(np.cumsum(rng.normal(2e-4, vol, (n_bars, n_sym)), axis=0))
    return pd.DataFrame(c, index=pd.bdate_range("2018-01-01", periods=n_bars), columns=[f"S{i}" for i in range(n_sym)])


# ------------------------------------------------------------ references
def ref_exits(raw, price, sl=None, tp=None, ts=None, mh=None):
    """Plain per-bar state machine for one series of strategy positions."""
    out = np.zeros_like(raw)
    d, blocked, entry, ext, held = 0, 0, None, None, 0
    for t in range(len(raw)):
        p, rd = price[t], int(np.sign(raw[t]))
        if blocked and rd != blocked:
            blocked = 0
        desired = 0 if blocked else rd
        if d != 0 and desired == d:
            held += 1
            ext = max(ext, p) if d > 0 else min(ext, p)
            hit = False
            if sl is not None:
                hit |= p <= entry * (1 - sl) if d > 0 else p >= entry * (1 + sl)
            if tp is not None:
                hit |= p >= entry * (1 + tp) if d > 0 else p <= entry * (1 - tp)
            if ts is not None:
                hit |= p <= ext * (1 - ts) if d > 0 else p >= ext * (1 + ts)
            if mh is not None:
                hit |= held >= mh
            if hit:
                blocked, d = d, 0
                continue
            out[t] = raw[t]
            continue
        if desired != 0 and desired != d:
            entry = ext = p
            held = 0
        d = desired
        out[t] = raw[t] if d else 0.0
    return out


def ref_vol_scale(ret, lookback, target, ppy, max_lev):
    scale = np.zeros(len(ret))
    for t in range(lookback, len(ret)):
        vol = np.std(ret[t - lookback + 1 : t + 1], ddof=1) * np.sqrt(ppy)
        scale[t] = max_lev if vol == 0 else min(target / vol, max_lev)
    return scale


def ref_account(pos, close, rate, weights):
    """Per-bar account simulation: each symbol a sleeve holding `pos` of its equity; the fee
    `rate * traded notional` is paid from the sleeve (post-trade equity solved by iteration)."""
    T, S = close.shape
    port = np.zeros(T)
    for s in range(S):
        eq_prev, a = 1.0, 0.0
        for t in range(T):
            ret = close[t, s] / close[t - 1, s] - 1 if t else 0.0
            eq = eq_prev * (1 + a * ret)
            w = pos[t, s]
            post = eq
            for _ in range(60):  # fixed point of post = eq - rate * |w*post - a*eq|
                post = eq - rate * abs(w * post - a * eq)
            port[t] += weights[s] * (post / eq_prev - 1)
            eq_prev, a = post, w
    return port


def reference_returns(close_df, strategy, grid, cfg):
    close = close_df.to_numpy()
    T, S = close.shape
    raw = generate_positions(strategy, close, grid, cfg.mode)
    ret = np.vstack([np.zeros(S), close[1:] / close[:-1] - 1])
    w = np.full(S, 1 / S) if cfg.weights is None else np.array([cfg.weights.get(c, 0.0) for c in close_df.columns])
    out = np.zeros((T, len(grid)))
    held = np.zeros_like(raw)
    for j in range(len(grid)):
        pos = raw[:, :, j].copy()
        for s in range(S):
            if any(v is not None for v in (cfg.stop_loss, cfg.take_profit, cfg.trailing_stop, cfg.max_holding)):
                pos[:, s] = ref_exits(pos[:, s], close[:, s], cfg.stop_loss, cfg.take_profit, cfg.trailing_stop,
                                      cfg.max_holding)
            if cfg.sizing == "vol_target":
                pos[:, s] *= ref_vol_scale(ret[:, s], cfg.vol_lookback, cfg.target_vol, cfg.periods_per_year,
                                           cfg.max_leverage)
        held[:, :, j] = pos
        out[:, j] = ref_account(pos, close, cfg.cost_rate, w)
    return out, held


CASES = [
    ("momentum", {"fast_period": [3, 6], "slow_period": [15, 25], "signal_threshold": [0.0, 0.01]}),
    ("mean_reversion", {"lookback": [8, 20], "entry_z": [1.0, 1.6], "exit_z": [0.0]}),
    ("breakout", {"lookback": [5, 15], "exit_lookback": [0, 4]}),
]
CONFIGS = [
    BacktestConfig(),
    BacktestConfig(mode="long_short", cost_bps=8, slippage_bps=4, weights={"S0": 0.5, "S1": 0.2, "S2": 0.3}),
    BacktestConfig(mode="long_short", sizing="vol_target", target_vol=0.15, vol_lookback=10, cost_bps=5,
                   max_leverage=1.5),
    BacktestConfig(stop_loss=0.03, cost_bps=10),
    BacktestConfig(mode="long_short", take_profit=0.04, trailing_stop=0.025),
    BacktestConfig(mode="long_short", max_holding=4, stop_loss=0.05, cost_bps=3, sizing="vol_target",
                   vol_lookback=6),
]


@pytest.mark.parametrize("strategy,space", CASES)
@pytest.mark.parametrize("cfg_i", range(len(CONFIGS)))
def test_run_grid_matches_per_bar_account_simulation(strategy, space, cfg_i):
    cfg = CONFIGS[cfg_i]
    close = frame(160, 3, 21 + cfg_i)
    grid = expand_grid(strategy, space)
    res = run_grid(close, strategy, grid, cfg, keep_positions=True)
    ref, held = reference_returns(close, strategy, grid, cfg)
    np.testing.assert_array_equal(res.positions != 0, held != 0)
    np.testing.assert_allclose(res.positions.astype(float), held, rtol=1e-12)  # vol scale: pandas vs np.std
    np.testing.assert_allclose(res.returns.to_numpy(), ref, rtol=1e-12, atol=1e-15)
    assert (held != 0).any()  # the case trades at all


def test_exit_rules_fire_and_block_reentry():
    close = frame(300, 1, 4, vol=0.03)
    grid = expand_grid("breakout", {"lookback": [5, 10], "exit_lookback": [50]})  # exits rarely by signal
    plain = run_grid(close, "breakout", grid, BacktestConfig(), keep_positions=True)
    stopped = run_grid(close, "breakout", grid, BacktestConfig(stop_loss=0.02, max_holding=5), keep_positions=True)
    assert (stopped.metrics.exposure < plain.metrics.exposure).all()
    held = stopped.positions[:, 0, :]
    # never held longer than max_holding=5 bars in a row
    for j in range(held.shape[1]):
        run = 0
        for v in held[:, j]:
            run = run + 1 if v else 0
            assert run <= 6  # entry bar + 5 held bars


def test_per_combination_stop_values_equal_separate_runs():
    close = frame(200, 2, 8, vol=0.03)
    grid = expand_grid("momentum", {"fast_period": [3], "slow_period": [10]})
    grid3 = pd.concat([grid] * 3, ignore_index=True)
    stops = [0.01, 0.03, None]
    vec = run_grid(close, "momentum", grid3, BacktestConfig(stop_loss=[0.01, 0.03, np.nan]))
    for j, sl in enumerate(stops):
        one = run_grid(close, "momentum", grid, BacktestConfig(stop_loss=sl))
        np.testing.assert_array_equal(vec.returns[j].to_numpy(), one.returns[0].to_numpy())


# ------------------------------------------------------------- closed forms
def test_lag_position_earns_next_bar():
    close = np.array([100.0, 110.0, 99.0, 99.0, 108.9])
    ret = np.r_[0.0, close[1:] / close[:-1] - 1]
    pos = np.array([0.0, 1.0, 0.0, -1.0, 0.0])[:, None]
    r = backtest_positions(pos, ret, BacktestConfig(mode="long_short"))[:, 0]
    np.testing.assert_allclose(r, [0.0, 0.0, ret[2], 0.0, -ret[4]], rtol=1e-15)


def test_buy_and_hold_equals_asset_return():
    close = frame(250, 1, 1)
    c = close.to_numpy()[:, 0]
    ret = np.r_[0.0, c[1:] / c[:-1] - 1]
    r = backtest_positions(np.ones((250, 1)), ret, BacktestConfig())
    from admf_assets.engine.metrics import compute_metrics

    m = compute_metrics(r, positions=np.ones((250, 1))).iloc[0]
    assert m.total_return == pytest.approx(c[-1] / c[0] - 1, rel=1e-12)
    assert m.n_trades == 1 and m.exposure == 1.0
    # with costs: entering at the first close costs rate/(1+rate) of equity, nothing else
    rate = 0.001
    rc = backtest_positions(np.ones((250, 1)), ret, BacktestConfig(cost_bps=10))
    assert np.prod(1 + rc[:, 0]) == pytest.approx(c[-1] / c[0] / (1 + rate), rel=1e-12)


def test_zero_exposure_gives_zero_return_and_no_trades():
    close = frame(200, 2, 3)
    grid = expand_grid("mean_reversion", {"entry_z": [50.0, 80.0]})  # never reached
    res = run_grid(close, "mean_reversion", grid, BacktestConfig(cost_bps=10, slippage_bps=5))
    assert (res.returns.to_numpy() == 0).all()
    m = res.metrics
    assert (m.total_return == 0).all() and (m.n_trades == 0).all() and (m.exposure == 0).all()
    assert (m.turnover == 0).all() and (m.sharpe_ratio == 0).all() and (m.max_drawdown == 0).all()


def test_chunking_and_per_symbol_consistency():
    close = frame(180, 3, 5)
    grid = expand_grid("momentum", {"fast_period": [2, 4, 6], "slow_period": [10, 20, 30]})
    cfg = BacktestConfig(cost_bps=7, weights={"S0": 0.2, "S1": 0.3, "S2": 0.5})
    a = run_grid(close, "momentum", grid, cfg)
    b = run_grid(close, "momentum", grid, cfg, chunk_size=2)
    pd.testing.assert_frame_equal(a.returns, b.returns)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    ps = run_grid(close, "momentum", grid, cfg, per_symbol=True)
    assert ps.returns.shape == (180, 27) and list(ps.metrics.columns[:2]) == ["combo", "symbol"]
    w = np.array([0.2, 0.3, 0.5])
    combined = (ps.returns.to_numpy().reshape(180, 9, 3) * w).sum(axis=2)
    np.testing.assert_allclose(combined, a.returns.to_numpy(), rtol=1e-12, atol=1e-16)
    single = run_grid(close[["S1"]], "momentum", grid, BacktestConfig(cost_bps=7))
    np.testing.assert_array_equal(ps.returns.xs("S1", axis=1, level="symbol").to_numpy(), single.returns.to_numpy())
    np.testing.assert_array_equal(ps.metrics[ps.metrics.symbol == "S1"].n_trades.to_numpy(),
                                  single.metrics.n_trades.to_numpy())


def test_result_shapes_and_metrics_frame():
    close = frame(120, 2, 9)
    grid = expand_grid("breakout", {"lookback": [5, 10, 20]})
    res = run_grid(close, "breakout", grid, keep_positions=True)
    assert res.returns.index.equals(close.index) and list(res.returns.columns) == [0, 1, 2]
    assert list(res.metrics.columns[:2]) == ["lookback", "exit_lookback"]
    assert res.positions.shape == (120, 2, 3) and res.positions.dtype == np.int8
    one = run_backtest(close, "breakout", {"lookback": 10})
    np.testing.assert_array_equal(one.returns[0].to_numpy(), res.returns[1].to_numpy())
    sub = run_grid(close, "breakout", grid, metrics=["sharpe_ratio"])
    assert list(sub.metrics.columns) == ["lookback", "exit_lookback", "sharpe_ratio"]
    np.testing.assert_array_equal(sub.metrics.sharpe_ratio.to_numpy(), res.metrics.sharpe_ratio.to_numpy())


@pytest.mark.parametrize("kwargs,match", [
    (dict(mode="both"), "mode"), (dict(sizing="kelly"), "sizing"), (dict(cost_bps=-1), "cost_bps"),
    (dict(stop_loss=1.5), "stop_loss"), (dict(sizing="vol_target", target_vol=0), "target_vol"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BacktestConfig(**kwargs)


def test_bad_inputs():
    close = frame(50, 2, 1)
    with pytest.raises(ValueError, match="unknown symbols"):
        run_grid(close, "breakout", expand_grid("breakout", {}), BacktestConfig(weights={"XX": 1.0}))
    with pytest.raises(TypeError):
        run_grid(close.to_numpy(), "breakout", expand_grid("breakout", {}))
    with pytest.raises(ValueError, match="> 0"):
        run_grid(close * -1, "breakout", expand_grid("breakout", {}))
