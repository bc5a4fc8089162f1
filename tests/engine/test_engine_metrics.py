"""Metrics: closed-form cases and per-column references."""
import numpy as np
import pandas as pd
import pytest

from admf_assets.engine.metrics import METRIC_COLUMNS, TRADING_DAYS, compute_metrics, position_stats


def test_columns_and_index():
    r = pd.DataFrame({"a": [0.0, 0.01, -0.01], "b": [0.0, 0.0, 0.02]})
    m = compute_metrics(r)
    assert list(m.columns) == list(METRIC_COLUMNS)
    assert list(m.index) == ["a", "b"]
    m2 = compute_metrics(np.zeros((5, 3)))
    assert list(m2.index) == [0, 1, 2]
    assert m2[["n_trades", "turnover", "exposure"]].isna().all().all()
    assert TRADING_DAYS == 252


def test_constant_return_series():
    n, c = 504, 0.0004
    m = compute_metrics(np.full(n, c)).iloc[0]
    assert m.total_return == pytest.approx((1 + c) ** n - 1, rel=1e-12)
    # two years of 252 bars: CAGR = (1+c)^252 - 1
    assert m.annual_return == pytest.approx((1 + c) ** 252 - 1, rel=1e-10)
    # zero dispersion: Sharpe/Sortino reported as 0 by convention, no drawdown
    assert m.annual_volatility == 0.0
    assert m.sharpe_ratio == 0.0
    assert m.sortino_ratio == 0.0
    assert m.max_drawdown == 0.0 and m.calmar_ratio == 0.0 and m.max_drawdown_duration == 0
    assert m.win_rate == 1.0


def test_alternating_series_known_sharpe():
    # mean mu, deviations +-s: std(ddof=1) = s*sqrt(n/(n-1))
    n, mu, s = 1000, 0.0005, 0.01
    r = mu + s * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    m = compute_metrics(r, periods_per_year=252).iloc[0]
    std = s * np.sqrt(n / (n - 1))
    assert m.sharpe_ratio == pytest.approx(mu / std * np.sqrt(252), rel=1e-10)
    assert m.annual_volatility == pytest.approx(std * np.sqrt(252), rel=1e-10)
    downside = np.sqrt(np.mean(np.minimum(r, 0) ** 2))
    assert m.sortino_ratio == pytest.approx(mu / downside * np.sqrt(252), rel=1e-10)
    # explicit annualization factor
    m12 = compute_metrics(r, periods_per_year=12).iloc[0]
    assert m12.sharpe_ratio == pytest.approx(mu / std * np.sqrt(12), rel=1e-10)
    assert m.win_rate == 0.5


def test_drawdown_and_duration_hand_computed():
    # equity: 1, 1.1, 0.99, 1.045, 1.155, 1.0395, 1.0395 (never recovers after bar 4)
    r = np.array([0.0, 0.10, -0.10, 0.0555555555555556, 0.10526315789473684, -0.10, 0.0])
    m = compute_metrics(r).iloc[0]
    eq = np.cumprod(1 + r)
    assert m.total_return == pytest.approx(eq[-1] - 1, rel=1e-12)
    assert m.max_drawdown == pytest.approx(0.99 / 1.1 - 1, rel=1e-9)
    # peak at bar 1 recovered at bar 4 -> 3 bars; peak at bar 4 still under at bar 6 -> 2 bars
    assert m.max_drawdown_duration == 3
    assert m.win_rate == pytest.approx(3 / 5)
    ann = (1 + m.total_return) ** (252 / len(r)) - 1
    assert m.annual_return == pytest.approx(ann, rel=1e-12)
    assert m.calmar_ratio == pytest.approx(ann / abs(m.max_drawdown), rel=1e-12)


def test_drawdown_from_initial_capital_and_total_loss():
    r = np.array([-0.05, 0.01, 0.01, 0.01, 0.03, 0.0])
    m = compute_metrics(r).iloc[0]
    assert m.max_drawdown == pytest.approx(-0.05)
    # the starting capital is the first peak (bar -1); equity first exceeds it at bar 4
    assert m.max_drawdown_duration == 5
    wipe = compute_metrics(np.array([0.0, 0.1, -1.0, 0.0])).iloc[0]
    assert wipe.total_return == -1.0 and wipe.max_drawdown == -1.0 and wipe.annual_return == -1.0


def test_an_equity_curve_beyond_float_range_keeps_its_drawdown():
    """The drawdowns come from the cumulative product of (1 + r); where that product overflows (a
    column doubling for over 1,024 bars) they come from log-equity, so its drawdown stays the -50%
    it is, next to an ordinary column computed the usual way."""
    r = np.zeros((1100, 2))
    r[:1030, 0] = 1.0
    r[1030, 0] = -0.5
    r[1031:1034, 0] = 0.1  # 1.1^3 < 2: never back to the peak
    r[:, 1] = np.tile([0.01, -0.02, 0.015, 0.0], 275)
    m = compute_metrics(r)
    assert m.loc[0, "max_drawdown"] == pytest.approx(-0.5, rel=1e-12)
    assert m.loc[0, "max_drawdown_duration"] == 1100 - 1030 and np.isinf(m.loc[0, "total_return"])
    ref = _reference_metrics(r[:, 1])
    for k in ("max_drawdown", "max_drawdown_duration", "total_return"):
        assert m.loc[1, k] == pytest.approx(ref[k], rel=1e-12, abs=1e-15), k


def _reference_metrics(r, ppy=252):
    """Straightforward per-series implementation (loops) for comparison."""
    n = len(r)
    eq, peak, mdd, dur, best, start = 1.0, 1.0, 0.0, 0, 0, -1  # start: bar of the last peak
    for t, x in enumerate(r):
        eq *= 1 + x
        if eq >= peak:  # new peak (or recovery): a drawdown since `start` ends here
            peak = eq
            if dur:
                best = max(best, t - start)
            dur, start = 0, t
        else:
            dur += 1
            mdd = min(mdd, eq / peak - 1)
    if dur:
        best = max(best, (n - 1) - start)
    mean, std = np.mean(r), np.std(r, ddof=1)
    total = eq - 1
    return {
        "total_return": total,
        "annual_return": (1 + total) ** (ppy / n) - 1,
        "annual_volatility": std * np.sqrt(ppy),
        "sharpe_ratio": mean / std * np.sqrt(ppy),
        "sortino_ratio": mean / np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(ppy),
        "max_drawdown": mdd,
        "max_drawdown_duration": best,
        "win_rate": np.sum(r > 0) / np.sum(r != 0),
    }


def test_vectorized_equals_per_column_reference():
    rng = np.random.default_rng(3)
    r = rng.normal(0.0003, 0.01, (300, 7))
    r[rng.random((300, 7)) < 0.3] = 0.0  # flat bars
    m = compute_metrics(pd.DataFrame(r))
    for j in range(r.shape[1]):
        ref = _reference_metrics(r[:, j])
        for k, v in ref.items():
            assert m.loc[j, k] == pytest.approx(v, rel=1e-9, abs=1e-12), (j, k)


def test_which_subset_matches_full():
    rng = np.random.default_rng(5)
    r = rng.normal(0, 0.01, (200, 4))
    full = compute_metrics(r)
    sub = compute_metrics(r, which=["sharpe_ratio", "total_return"])
    assert list(sub.columns) == ["total_return", "sharpe_ratio"]
    np.testing.assert_allclose(sub.to_numpy(), full[["total_return", "sharpe_ratio"]].to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="valid metrics"):
        compute_metrics(r, which=["sharp"])


def test_position_stats():
    pos = np.array([[0, 0], [1, 0], [1, 0], [-1, 0], [0, 0], [1, 0]], dtype=float)
    ppy = 3  # 6 bars = 2 years
    s = position_stats(pos, ppy)
    # opens: bar1 (0->1), bar3 (flip to -1), bar5 (0->1)
    assert s["n_trades"].tolist() == [3.0, 0.0]
    # |dpos|: 1 + 0 + 2 + 1 + 1 = 5 over 2 years
    assert s["turnover"].tolist() == [2.5, 0.0]
    assert s["exposure"].tolist() == [4 / 6, 0.0]
    m = compute_metrics(np.zeros((6, 2)), periods_per_year=ppy, positions=pos)
    assert m.n_trades.tolist() == [3.0, 0.0]
    # 3-D positions: symbols weighted for turnover, trades summed, exposure = any symbol
    p3 = np.stack([pos, pos * 0.5], axis=1)  # (bars, 2 symbols, 2 combos)
    s3 = position_stats(p3, ppy, weights=[0.5, 0.5])
    assert s3["n_trades"].tolist() == [6.0, 0.0]
    assert s3["turnover"][0] == pytest.approx(0.5 * 2.5 + 0.5 * 1.25)
    assert s3["exposure"][0] == pytest.approx(4 / 6)


def test_zero_returns_and_bad_input():
    m = compute_metrics(np.zeros(50)).iloc[0]
    assert m.total_return == 0 and m.sharpe_ratio == 0 and m.max_drawdown == 0 and m.win_rate == 0
    with pytest.raises(ValueError):
        compute_metrics(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        compute_metrics(np.zeros(5), periods_per_year=0)
    with pytest.raises(ValueError, match="positions shape"):
        compute_metrics(np.zeros((5, 2)), positions=np.zeros((4, 2)))
