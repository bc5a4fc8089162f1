"""Parameter search: grid and seeded random sampling, ranking, reproducibility."""
import numpy as np
import pandas as pd
import pytest

from admf_assets.engine.backtest import BacktestConfig, run_grid
from admf_assets.engine.metrics import METRIC_COLUMNS
from admf_assets.engine.search import rank_trials, sample_params, search
from admf_assets.engine.strategies import expand_grid


@pytest.fixture(scope="module")
def close():
    rng = np.random.default_rng(2)
    c = 100.0 * np.exp(np.cumsum(rng.normal(3e-4, 0.015, (500, 2)), axis=0))
    return pd.DataFrame(c, index=pd.bdate_range("2016-01-01", periods=500), columns=["A", "B"])


SPACE = {"fast_period": [5, 10, 15, 20], "slow_period": [20, 30, 40, 50], "signal_threshold": [0.01, 0.02, 0.05]}


def test_grid_search_ranking_and_contents(close):
    res = search(close, "momentum", SPACE, objective="sharpe_ratio", config=BacktestConfig(cost_bps=5), top_n=5)
    h = res.history
    assert res.n_drawn == 48 and res.n_kept == len(h) == 45  # (20, 20) x 3 thresholds dropped
    assert list(h.columns[:5]) == ["trial_id", "strategy", "fast_period", "slow_period", "signal_threshold"]
    assert set(METRIC_COLUMNS) <= set(h.columns) and {"objective", "rank"} <= set(h.columns)
    assert h.trial_id.tolist() == list(range(45))
    # ranks: sorted by objective descending, ties to the lower trial id
    exp = sorted(range(45), key=lambda i: (-h.objective[i], i))
    assert h.set_index("trial_id").loc[exp, "rank"].tolist() == list(range(1, 46))
    assert res.top.trial_id.tolist() == exp[:5] and len(res.top) == 5
    best = h.loc[exp[0]]
    assert res.best_params == {"fast_period": int(best.fast_period), "slow_period": int(best.slow_period),
                               "signal_threshold": float(best.signal_threshold)}
    assert res.best_metrics["sharpe_ratio"] == h.sharpe_ratio.max()
    # the numbers are run_grid's numbers
    direct = run_grid(close, "momentum", expand_grid("momentum", SPACE), BacktestConfig(cost_bps=5))
    np.testing.assert_array_equal(h.sharpe_ratio.to_numpy(), direct.metrics.sharpe_ratio.to_numpy())
    assert res.returns.shape == (500, 45) and res.returns.columns.name == "trial_id"
    np.testing.assert_array_equal(res.returns.to_numpy(), direct.returns.to_numpy())
    again = search(close, "momentum", SPACE, objective="sharpe", config=BacktestConfig(cost_bps=5), top_n=5)
    pd.testing.assert_frame_equal(again.history, h)


@pytest.mark.parametrize("objective", ["max_drawdown", "total_return", "calmar_ratio", "win_rate", "sortino"])
def test_objectives_are_maximized(close, objective):
    res = search(close, "breakout", {"lookback": [5, 10, 20, 40], "exit_lookback": [0, 5]}, objective=objective)
    col = {"sortino": "sortino_ratio"}.get(objective, objective)
    assert res.history.loc[res.history["rank"] == 1, col].iloc[0] == res.history[col].max()
    assert res.objective == col


def test_rank_ties_and_nan():
    assert rank_trials([1.0, np.nan, 3.0, 1.0, 3.0]).tolist() == [3, 5, 1, 4, 2]
    assert rank_trials([np.nan, np.nan]).tolist() == [1, 2]


def test_random_search_reproducible_and_sampling_semantics(close):
    space = {"fast_period": [3, 50], "slow_period": [10, 200], "signal_threshold": [0.001, 0.1]}
    a = search(close, "momentum", space, method="random", n_trials=120, seed=42)
    b = search(close, "momentum", space, method="random", n_trials=120, seed=42)
    c = search(close, "momentum", space, method="random", n_trials=120, seed=43)
    pd.testing.assert_frame_equal(a.history, b.history)
    assert not a.history[["fast_period", "slow_period"]].equals(c.history[["fast_period", "slow_period"]])
    h = a.history
    assert a.n_drawn == 120 and a.n_kept == len(h) < 120  # fast >= slow draws dropped
    assert "drew 120" in a.message and f"kept {len(h)}" in a.message
    assert h.fast_period.between(3, 50).all() and h.slow_period.between(10, 200).all()
    assert (h.fast_period < h.slow_period).all()
    assert h.signal_threshold.between(0.001, 0.1).all() and h.signal_threshold.nunique() == len(h)
    assert h.fast_period.dtype == np.int64
    assert not h[["fast_period", "slow_period", "signal_threshold"]].duplicated().any()
    # draws are the documented generator calls, made up front in param_space order
    rng = np.random.default_rng(42)
    f = rng.integers(3, 51, 120)
    s = rng.integers(10, 201, 120)
    t = rng.uniform(0.001, 0.1, 120)
    keep = f < s
    assert h.fast_period.tolist() == f[keep].tolist() and h.signal_threshold.tolist() == t[keep].tolist()


def test_random_dict_ranges_choices_and_dedup():
    space = {"lookback": {"low": 10, "high": 30, "step": 10}, "entry_z": {"choices": [1.5, 2.0]},
             "exit_z": {"low": 0.05, "high": 1.0, "log": True}}
    df, n = sample_params("mean_reversion", space, 200, seed=1)
    assert n == 200 and set(df.lookback) <= {10, 20, 30} and set(df.entry_z) <= {1.5, 2.0}
    assert df.exit_z.between(0.05, 1.0).all() and (df.entry_z > df.exit_z.abs()).all()
    small, n2 = sample_params("breakout", {"lookback": [5, 6]}, 50, seed=0)  # [lo, hi]: integer range
    assert n2 == 50 and sorted(small.lookback) == [5, 6]  # duplicates dropped
    choices, _ = sample_params("breakout", {"lookback": [5, 6, 9]}, 50, seed=0)
    assert sorted(choices.lookback) == [5, 6, 9]


def test_errors(close):
    with pytest.raises(ValueError, match="valid objectives"):
        search(close, "momentum", SPACE, objective="profit")
    with pytest.raises(ValueError, match="valid methods: grid, random"):
        search(close, "momentum", SPACE, method="annealing")
    with pytest.raises(ValueError, match="n_trials"):
        search(close, "momentum", SPACE, method="random")
    with pytest.raises(ValueError, match="no valid parameter combination"):
        search(close, "momentum", {"fast_period": [50], "slow_period": [10]})
    with pytest.raises(KeyError, match="known strategies"):
        search(close, "nope", {})
