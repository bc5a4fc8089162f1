"""Strategies: registry, grids, plain per-bar Python references, and no look-ahead."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admf_assets.engine.backtest import BacktestConfig, run_grid
from admf_assets.engine.strategies import (
    STRATEGIES,
    UnknownStrategyError,
    expand_grid,
    generate_positions,
    get_strategy,
    register_strategy,
)


def gbm(n_bars, n_sym, seed, vol=0.015):
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(2e-4, vol, (n_bars, n_sym)), axis=0))


# ----------------------------------------------------------------- registry
def test_registry_and_aliases():
    assert {"momentum", "mean_reversion", "breakout"} <= set(STRATEGIES)
    assert get_strategy("ma_crossover") is get_strategy("momentum")
    assert get_strategy("MOMENTUM").name == "momentum"
    with pytest.raises(KeyError) as exc:
        get_strategy("momentom")
    msg = str(exc.value)
    assert "momentom" in msg and "mean_reversion" in msg and "breakout" in msg and "did you mean 'momentum'" in msg
    assert isinstance(exc.value, UnknownStrategyError)


def test_expand_grid_constraints_defaults_types():
    g = expand_grid("momentum", {"fast_period": [5, 10, 20], "slow_period": [10, 20, 30]})
    pairs = list(zip(g.fast_period, g.slow_period))
    assert pairs == [(5, 10), (5, 20), (5, 30), (10, 20), (10, 30), (20, 30)]  # fast < slow only
    assert (g.signal_threshold == 0.0).all()  # default filled
    assert list(g.index) == list(range(6))
    assert g.fast_period.dtype == np.int64 and g.signal_threshold.dtype == np.float64
    full = expand_grid("momentum", {"fast_period": list(range(5, 51, 5)), "slow_period": list(range(20, 201, 10))})
    assert len(full) == 174
    mr = expand_grid("mean_reversion", {"entry_z": [0.5, 2.0], "exit_z": [0.0, 1.0]})
    # entry_z must exceed |exit_z|
    assert sorted(zip(mr.entry_z, mr.exit_z)) == [(0.5, 0.0), (2.0, 0.0), (2.0, 1.0)]
    assert (mr.lookback == 20).all()
    rng_grid = expand_grid("breakout", {"lookback": {"low": 10, "high": 30, "step": 10}})
    assert rng_grid.lookback.tolist() == [10, 20, 30]
    # aliases of parameter names, unknown names
    assert expand_grid("mean_reversion", {"lookback_period": [7]}).lookback.tolist() == [7]
    with pytest.raises(ValueError, match="has no parameter 'foo'"):
        expand_grid("momentum", {"foo": [1]})
    assert len(expand_grid("momentum", {"foo": [1], "fast_period": [3]}, strict=False)) == 1
    with pytest.raises(ValueError, match="integer"):
        expand_grid("momentum", {"fast_period": [2.5]})


def test_generate_positions_rejects_invalid_combos():
    close = gbm(60, 1, 0)
    with pytest.raises(ValueError, match="invalid parameter combination"):
        generate_positions("momentum", close, pd.DataFrame({"fast_period": [30], "slow_period": [10]}))


def test_user_strategy_one_function():
    name = "test_sma_trend_tmp"
    STRATEGIES.pop(name, None)

    @register_strategy(name, params={"window": 10, "band": 0.0}, constraint=lambda p: p["window"] >= 2)
    def sma_trend(ind, params, mode):
        sma = ind.grid("sma", params["window"])
        return ind.close[:, :, None] > sma * (1 + params["band"].to_numpy())

    try:
        close = gbm(200, 2, 1)
        grid = expand_grid(name, {"window": [5, 10, 1], "band": [0.0, 0.01]})
        assert len(grid) == 4  # window 1 dropped by the constraint
        pos = generate_positions(name, close, grid)
        assert pos.shape == (200, 2, 4) and pos.dtype == np.float64
        for j, row in grid.iterrows():
            w = int(row.window)
            for s in range(2):
                for t in range(w - 1, 200):
                    sma = close[t - w + 1 : t + 1, s].mean()
                    exp = float(close[t, s] > sma * (1 + row.band))
                    if abs(close[t, s] - sma * (1 + row.band)) > 1e-9:
                        assert pos[t, s, j] == exp
        res = run_grid(pd.DataFrame(close), name, grid)
        assert res.returns.shape == (200, 4) and np.isfinite(res.metrics.sharpe_ratio).all()
        with pytest.raises(ValueError, match="already registered"):
            register_strategy(name, params={})(sma_trend)
    finally:
        STRATEGIES.pop(name, None)


# ---------------------------------------------- plain per-bar Python references
def ref_momentum(c, fast, slow, thr, mode):
    n = len(c)
    out = np.zeros(n)
    for t in range(n):
        if t + 1 < slow:
            continue
        f = sum(c[t - fast + 1 : t + 1]) / fast
        s = sum(c[t - slow + 1 : t + 1]) / slow
        gap = (f - s) / s
        if gap > thr:
            out[t] = 1
        elif mode == "long_short" and gap < -thr:
            out[t] = -1
    return out


def ref_mean_reversion(c, lookback, entry, exit_, mode):
    n = len(c)
    out = np.zeros(n)
    state = 0
    for t in range(n):
        if t + 1 < lookback:
            state = 0
        else:
            win = c[t - lookback + 1 : t + 1]
            sd = np.std(win, ddof=1)
            if sd == 0:
                state = 0
            else:
                z = (c[t] - np.mean(win)) / sd
                if state == 1 and z >= -exit_:
                    state = 0
                elif state == -1 and z <= exit_:
                    state = 0
                if state == 0:
                    if z < -entry:
                        state = 1
                    elif mode == "long_short" and z > entry:
                        state = -1
        out[t] = state
    return out


def ref_breakout(c, lookback, exit_lookback, mode):
    n = len(c)
    xl = exit_lookback or lookback
    out = np.zeros(n)
    state = 0
    for t in range(n):
        hi = max(c[t - lookback : t]) if t >= lookback else np.nan
        lo = min(c[t - lookback : t]) if t >= lookback else np.nan
        xhi = max(c[t - xl : t]) if t >= xl else np.nan
        xlo = min(c[t - xl : t]) if t >= xl else np.nan
        if state == 1 and (c[t] < xlo or (mode == "long_short" and c[t] < lo)):
            state = 0
        elif state == -1 and (c[t] > xhi or c[t] > hi):
            state = 0
        if state == 0:
            if c[t] > hi:
                state = 1
            elif mode == "long_short" and c[t] < lo:
                state = -1
        out[t] = state
    return out


@pytest.mark.parametrize("mode", ["long_only", "long_short"])
def test_momentum_matches_python_loop(mode):
    close = gbm(260, 2, 11)
    grid = expand_grid("momentum", {"fast_period": [3, 8], "slow_period": [12, 30], "signal_threshold": [0.0, 0.004]})
    pos = generate_positions("momentum", close, grid, mode)
    for j, r in grid.iterrows():
        for s in range(2):
            ref = ref_momentum(close[:, s], int(r.fast_period), int(r.slow_period), r.signal_threshold, mode)
            np.testing.assert_array_equal(pos[:, s, j], ref)
    assert (pos == 1).any() and ((pos == -1).any() == (mode == "long_short"))


@pytest.mark.parametrize("mode", ["long_only", "long_short"])
def test_mean_reversion_matches_python_loop(mode):
    close = gbm(300, 2, 12)
    grid = expand_grid("mean_reversion", {"lookback": [10, 25], "entry_z": [1.0, 1.8], "exit_z": [-0.3, 0.0, 0.5]})
    pos = generate_positions("mean_reversion", close, grid, mode)
    for j, r in grid.iterrows():
        for s in range(2):
            ref = ref_mean_reversion(close[:, s], int(r.lookback), r.entry_z, r.exit_z, mode)
            np.testing.assert_array_equal(pos[:, s, j], ref)
    assert (pos == 1).sum() > 10 and (((pos == -1).sum() > 10) == (mode == "long_short"))


@pytest.mark.parametrize("mode", ["long_only", "long_short"])
def test_breakout_matches_python_loop(mode):
    close = gbm(300, 2, 13)
    grid = expand_grid("breakout", {"lookback": [5, 20], "exit_lookback": [0, 3, 30]})
    pos = generate_positions("breakout", close, grid, mode)
    for j, r in grid.iterrows():
        for s in range(2):
            ref = ref_breakout(close[:, s], int(r.lookback), int(r.exit_lookback), mode)
            np.testing.assert_array_equal(pos[:, s, j], ref)
    assert (pos == 1).sum() > 10 and (((pos == -1).sum() > 10) == (mode == "long_short"))


def test_indicators_shared_across_grid():
    from admf_assets.engine.indicators import Indicators

    close = gbm(120, 1, 3)
    ind = Indicators(close)
    grid = expand_grid("momentum", {"fast_period": [5, 10], "slow_period": [20, 40, 60]})
    a = generate_positions("momentum", close, grid, indicators=ind)
    keys = sorted(k for k in ind._cache if k[0] == "sma")
    assert keys == [("sma", w) for w in (5, 10, 20, 40, 60)]  # 5 windows for 6 combos, once each
    np.testing.assert_array_equal(a, generate_positions("momentum", close, grid))


def ref_pairs(ca, cb, lookback, entry, exit_):
    """Per bar: OLS of log A on log B over the window up to t, z of the residual at t (ddof 2),
    the long/short state machine, and the hedge ratio frozen at the entry bar."""
    n = len(ca)
    ya, xb = np.log(ca), np.log(cb)
    pos_a, pos_b = np.zeros(n), np.zeros(n)
    state, hedge = 0, np.nan
    for t in range(n):
        z = beta = np.nan
        if t + 1 >= lookback:
            y, x = ya[t - lookback + 1 : t + 1], xb[t - lookback + 1 : t + 1]
            beta, alpha = np.polyfit(x, y, 1)
            resid = y - (alpha + beta * x)
            s = np.sqrt((resid**2).sum() / (lookback - 2))
            z = resid[-1] / s if s > 0 else np.nan
        prev = state
        if np.isnan(z):
            state = 0
        else:
            if state == 1 and (z >= -exit_ or z > entry):
                state = 0
            elif state == -1 and (z <= exit_ or z < -entry):
                state = 0
            if state == 0 and z < -entry:
                state = 1
            elif state == 0 and z > entry:
                state = -1
        if state != 0 and state != prev:
            hedge = beta
        scale = max(1.0, abs(hedge)) if state else 1.0
        pos_a[t], pos_b[t] = (state / scale, -state * hedge / scale) if state else (0.0, 0.0)
    return pos_a, pos_b


def test_pairs_trading_matches_python_loop():
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(0, 0.01, 400))
    spread = np.zeros(400)
    for t in range(1, 400):  # a mean-reverting spread: the pair is cointegrated
        spread[t] = 0.9 * spread[t - 1] + rng.normal(0, 0.004)
    close = 100 * np.exp(np.column_stack([1.3 * x + spread, x, np.cumsum(rng.normal(0, 0.01, 400))]))
    grid = expand_grid("pairs_trading", {"lookback": [10, 30], "entry_z": [1.0, 2.0], "exit_z": [0.0, 0.5],
                                         "pair": [0, 2]})
    pos = generate_positions("pairs_trading", close, grid, mode="long_only")  # both legs in every mode
    for j, r in grid.iterrows():
        a, b = [(0, 1), (0, 2), (1, 2)][int(r.pair)]
        ref_a, ref_b = ref_pairs(close[:, a], close[:, b], int(r.lookback), r.entry_z, r.exit_z)
        np.testing.assert_allclose(pos[:, a, j], ref_a, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(pos[:, b, j], ref_b, rtol=1e-7, atol=1e-9)
        other = ({0, 1, 2} - {a, b}).pop()
        assert not pos[:, other, j].any()
    assert (pos < 0).any() and np.abs(pos).max() <= 1.0
    assert get_strategy("pairs").name == "pairs_trading" and get_strategy("pairs_trading").long_short_only
    res = run_grid(pd.DataFrame(close, index=pd.bdate_range("2019-01-01", periods=400)), "pairs_trading",
                   expand_grid("pairs_trading", {"lookback": [30], "entry_z": [1.5]}), BacktestConfig(cost_bps=2))
    assert res.metrics["sharpe_ratio"].iloc[0] > 0.5  # it does trade the planted mean reversion
    with pytest.raises(ValueError, match="pair 3 does not exist; 3 symbols make 3 pair"):
        generate_positions("pairs_trading", close, expand_grid("pairs_trading", {"pair": [3]}))
    with pytest.raises(ValueError, match="needs at least 2 symbols"):
        generate_positions("pairs_trading", close[:, :1], expand_grid("pairs_trading", {}))


def test_default_search_spaces_name_real_parameters():
    for name in ("momentum", "mean_reversion", "breakout", "pairs_trading"):
        spec = get_strategy(name)
        assert spec.space and set(spec.space) <= set(spec.params), name
    with pytest.raises(ValueError, match="default space names unknown parameters"):
        register_strategy("test_bad_space_tmp", params={"a": 1}, space={"b": {"low": 1, "high": 2}})(lambda i, p, m: 0)
    assert "test_bad_space_tmp" not in STRATEGIES


# ------------------------------------------------------------- no look-ahead
GRIDS = {
    "momentum": {"fast_period": [2, 5], "slow_period": [8, 20], "signal_threshold": [0.0, 0.003]},
    "mean_reversion": {"lookback": [5, 15], "entry_z": [0.8, 1.5], "exit_z": [0.0, 0.4]},
    "breakout": {"lookback": [3, 12], "exit_lookback": [0, 5]},
    "pairs_trading": {"lookback": [5, 15], "entry_z": [0.8, 1.5], "exit_z": [0.0, 0.4]},
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    strategy=st.sampled_from(sorted(GRIDS)),
    mode=st.sampled_from(["long_only", "long_short"]),
    seed=st.integers(0, 2**32 - 1),
    t=st.integers(0, 89),
    shock=st.floats(0.5, 2.0),
)
def test_no_look_ahead_positions(strategy, mode, seed, t, shock):
    close = gbm(90, 2, seed, vol=0.03)
    grid = expand_grid(strategy, GRIDS[strategy])
    base = generate_positions(strategy, close, grid, mode)
    rng = np.random.default_rng(seed + 1)
    future = close.copy()
    future[t + 1 :] *= shock * np.exp(rng.normal(0, 0.05, future[t + 1 :].shape))
    moved = generate_positions(strategy, future, grid, mode)
    np.testing.assert_array_equal(base[: t + 1], moved[: t + 1])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), t=st.integers(0, 79), strategy=st.sampled_from(sorted(GRIDS)))
def test_no_look_ahead_held_positions_with_exit_rules_and_sizing(seed, t, strategy):
    """Held positions after stops / trailing stop / max holding / vol targeting are causal too,
    and the return at bar t+1 is the only one that may see the close of bar t+1."""
    idx = pd.bdate_range("2020-01-01", periods=80)
    close = pd.DataFrame(gbm(80, 2, seed, vol=0.03), index=idx, columns=["A", "B"])
    grid = expand_grid(strategy, GRIDS[strategy])
    cfg = BacktestConfig(mode="long_short", sizing="vol_target", vol_lookback=5, stop_loss=0.03,
                         take_profit=0.06, trailing_stop=0.04, max_holding=7, cost_bps=5)
    a = run_grid(close, strategy, grid, cfg, keep_positions=True)
    moved = close.copy()
    moved.iloc[t + 1 :] *= np.exp(np.random.default_rng(seed).normal(0, 0.05, moved.iloc[t + 1 :].shape))
    b = run_grid(moved, strategy, grid, cfg, keep_positions=True)
    np.testing.assert_array_equal(a.positions[: t + 1], b.positions[: t + 1])
    np.testing.assert_array_equal(a.returns.to_numpy()[: t + 1], b.returns.to_numpy()[: t + 1])


def test_look_ahead_check_detects_a_leaky_strategy():
    """The perturbation check above has teeth: a strategy peeking at close[t+1] fails it."""
    name = "test_leaky_tmp"
    STRATEGIES.pop(name, None)

    @register_strategy(name, params={"k": 1})
    def leaky(ind, params, mode):
        c = ind.close
        nxt = np.vstack([c[1:], c[-1:]])
        return np.repeat((nxt > c)[:, :, None], len(params), axis=2)

    try:
        close = gbm(50, 1, 0)
        base = generate_positions(name, close, expand_grid(name, {}))
        future = close.copy()
        future[21:] *= 0.5 if base[20, 0, 0] == 1 else 2.0  # flips the peeked-at comparison
        moved = generate_positions(name, future, expand_grid(name, {}))
        assert not np.array_equal(base[:21], moved[:21])
    finally:
        STRATEGIES.pop(name, None)
