"""Signal capture and replay: exact equality with run_grid, compact dtypes, ensembles."""
import numpy as np
import pandas as pd
import pytest

from admf_assets.engine.backtest import BacktestConfig, backtest_positions, run_grid
from admf_assets.engine.capture import (
    capture_signals,
    capture_to_frame,
    concat_captured,
    ensemble_positions,
    from_frame,
    replay,
)
from admf_assets.engine.strategies import STRATEGIES, expand_grid, register_strategy


def frame(n_bars, n_sym, seed, vol=0.02):
    rng = np.random.default_rng(seed)
    c = 100.0 * np.exp(np.cumsum(rng.normal(2e-4, vol, (n_bars, n_sym)), axis=0))
    return pd.DataFrame(c, index=pd.bdate_range("2019-01-01", periods=n_bars), columns=[f"S{i}" for i in range(n_sym)])


SPACES = {
    "momentum": {"fast_period": [3, 8], "slow_period": [20, 40], "signal_threshold": [0.0, 0.005]},
    "mean_reversion": {"lookback": [10, 20], "entry_z": [1.2, 2.0], "exit_z": [0.0, 0.5]},
    "breakout": {"lookback": [5, 20], "exit_lookback": [0, 10]},
}
CONFIGS = [
    BacktestConfig(),
    BacktestConfig(cost_bps=5, slippage_bps=2, weights={"S0": 0.6, "S1": 0.1, "S2": 0.3}),
    BacktestConfig(sizing="vol_target", vol_lookback=15, stop_loss=0.04, trailing_stop=0.06, take_profit=0.1,
                   max_holding=20, cost_bps=3),
]


@pytest.mark.parametrize("strategy", sorted(SPACES))
@pytest.mark.parametrize("mode", ["long_only", "long_short"])
def test_replay_equals_run_grid_exactly(strategy, mode):
    close = frame(400, 3, 7)
    grid = expand_grid(strategy, SPACES[strategy])
    cap = capture_signals(close, strategy, grid, mode=mode, chunk_size=3)
    assert cap.positions.dtype == np.int8 and cap.positions.shape == (400, 3 * len(grid))
    for cfg in CONFIGS:
        cfg = BacktestConfig(**{**cfg.__dict__, "mode": mode})
        direct = run_grid(close, strategy, grid, cfg)
        rp = replay(cap, close, cfg)
        assert list(rp.columns) == cap.strategy_ids
        np.testing.assert_array_equal(rp.to_numpy(), direct.returns.to_numpy())
        # from returns instead of closes: same numbers
        rets = close.pct_change().fillna(0.0)
        np.testing.assert_array_equal(replay(cap, rets, cfg, kind="returns").to_numpy(), direct.returns.to_numpy())
    assert (rp.to_numpy() != 0).any()


def test_column_table_and_frame_roundtrip(tmp_path):
    close = frame(150, 2, 3)
    grid = expand_grid("momentum", {"fast_period": [3, 5], "slow_period": [10]})
    cap = capture_signals(close, "momentum", grid)
    tab = cap.columns
    assert list(tab.columns[:7]) == ["column", "strategy_id", "strategy", "combo", "symbol", "mode", "params"]
    assert tab.symbol.tolist() == ["S0", "S1", "S0", "S1"]
    assert tab.fast_period.tolist() == [3, 3, 5, 5] and (tab.strategy == "momentum").all()
    assert tab.params[0] == '{"fast_period": 3, "signal_threshold": 0.0, "slow_period": 10}'
    # column j holds combo j // 2, symbol j % 2
    direct = run_grid(close, "momentum", grid, keep_positions=True)
    np.testing.assert_array_equal(cap.positions[:, 3], direct.positions[:, 1, 1])
    wide, table = capture_to_frame(cap)
    assert wide.shape == (150, 4) and (wide.dtypes == np.int8).all() and wide.index.equals(close.index)
    wide.to_parquet(tmp_path / "sig.parquet")
    table.to_parquet(tmp_path / "cols.parquet")
    back = from_frame(pd.read_parquet(tmp_path / "sig.parquet"), pd.read_parquet(tmp_path / "cols.parquet"))
    assert back.positions.dtype == np.int8
    np.testing.assert_array_equal(back.positions, cap.positions)
    np.testing.assert_array_equal(replay(back, close).to_numpy(), replay(cap, close).to_numpy())


def test_compact_dtypes_for_fractional_strategies():
    name = "test_frac_tmp"
    STRATEGIES.pop(name, None)

    @register_strategy(name, params={"level": 0.5})
    def frac(ind, params, mode):
        c = ind.close
        up = (c > np.roll(c, 1, axis=0)).astype(float)
        up[0] = 0
        return up[:, :, None] * params["level"].to_numpy()[None, None, :]

    try:
        close = frame(80, 2, 1)
        caps = {lvl: capture_signals(close, name, pd.DataFrame({"level": [lvl]})) for lvl in
                (1.0, 0.25, 0.5 + 2.0 ** -20, 0.1)}
        assert caps[1.0].positions.dtype == np.int8
        assert caps[0.25].positions.dtype == np.float16  # exact in half precision
        assert caps[0.5 + 2.0 ** -20].positions.dtype == np.float32  # needs float32, exact there
        assert caps[0.1].positions.dtype == np.float64  # not exact in float32: kept exact
        for lvl, cap in caps.items():
            direct = run_grid(close, name, pd.DataFrame({"level": [lvl]}), BacktestConfig(cost_bps=4))
            np.testing.assert_array_equal(replay(cap, close, BacktestConfig(cost_bps=4)).to_numpy(),
                                          direct.returns.to_numpy())
    finally:
        STRATEGIES.pop(name, None)


def test_weighted_ensembles():
    close = frame(300, 2, 11)
    a = capture_signals(close, "momentum", expand_grid("momentum", {"fast_period": [5], "slow_period": [20, 50]}),
                        mode="long_short")
    b = capture_signals(close, "breakout", expand_grid("breakout", {"lookback": [10]}), mode="long_short")
    cap = concat_captured([a, b])
    sids = cap.strategy_ids
    assert sids == ["momentum#0000", "momentum#0001", "breakout#0000"]
    cfg = BacktestConfig(cost_bps=10, mode="long_short")
    w = {sids[0]: 0.5, sids[1]: 0.25, sids[2]: 0.25}
    ens = replay(cap, close, cfg, weights=w)
    assert list(ens.columns) == ["ensemble"]
    # reference: net the positions, then one backtest
    pos = np.zeros((300, 2))
    for sid, wt in w.items():
        pos += wt * cap.positions[:, [2 * sids.index(sid), 2 * sids.index(sid) + 1]]
    rets = close.pct_change().fillna(0.0)
    ref = backtest_positions(pos[:, :, None], rets, cfg)[:, 0]
    np.testing.assert_allclose(ens["ensemble"].to_numpy(), ref, rtol=1e-13, atol=1e-16)
    # a single strategy with weight 1 is that strategy
    solo = replay(cap, close, cfg, weights={sids[2]: 1.0}, include_strategies=True)
    np.testing.assert_array_equal(solo["ensemble"].to_numpy(), solo[sids[2]].to_numpy())
    # many ensembles at once equal one-by-one evaluation
    W = pd.DataFrame([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.5, 0.25, 0.25]], columns=sids, index=["x", "y", "z"])
    many = replay(cap, close, cfg, weights=W)
    assert list(many.columns) == ["x", "y", "z"]
    np.testing.assert_array_equal(many["z"].to_numpy(), ens["ensemble"].to_numpy())
    np.testing.assert_array_equal(many["x"].to_numpy(), solo[sids[0]].to_numpy())
    # offsetting positions cost nothing when netted
    hedge = replay(cap, close, cfg, weights=np.array([[0.0, 0.0, 0.0]]))
    assert (hedge.to_numpy() == 0).all()
    assert ensemble_positions(cap, W).shape == (300, 2, 3)
    with pytest.raises(ValueError, match="unknown strategy ids"):
        replay(cap, close, cfg, weights={"nope": 1.0})


def test_replay_alignment_errors():
    close = frame(60, 2, 2)
    cap = capture_signals(close, "breakout", expand_grid("breakout", {}))
    with pytest.raises(ValueError, match="lacks captured symbols"):
        replay(cap, close[["S0"]])
    with pytest.raises(ValueError, match="captured dates"):
        replay(cap, close.iloc[:30])
    wider = pd.concat([close, close.iloc[-1:].set_axis([close.index[-1] + pd.Timedelta(days=3)])])
    np.testing.assert_array_equal(replay(cap, wider).to_numpy(), replay(cap, close).to_numpy())
