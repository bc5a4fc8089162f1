"""The forward ledger (engine.ledger) against the engine's backtest, a per-day hand computation,
causality, and its tracking statistics against closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine import synthetic
from admf_assets.engine.backtest import BacktestConfig, run_backtest
from admf_assets.engine.capture import capture_signals, concat_captured, replay
from admf_assets.engine.ledger import Deployment, Member, backtest_deployment, book, tracking, tracking_path

START = "2022-06-01"
PARAMS = {"fast_period": 10, "slow_period": 40}


@pytest.fixture(scope="module")
def close():
    bars = synthetic.synthetic_bars(["SPY", "QQQ", "IWM"], "2021-01-01", "2022-12-30")
    return bars.pivot(index="date", columns="symbol", values="close")


COSTS = BacktestConfig(cost_bps=5.0, slippage_bps=2.0)


@pytest.mark.parametrize("behaviour", [{}, {"sizing": "vol_target", "stop_loss": 0.05},
                                       {"mode": "long_short", "trailing_stop": 0.08, "max_holding": 15}])
def test_from_the_second_day_the_ledger_earns_exactly_the_backtest(close, behaviour):
    d = Deployment((Member("momentum", PARAMS),), behaviour)
    b = book(close, d, COSTS, START)
    from dataclasses import replace

    engine = run_backtest(close, "momentum", PARAMS, replace(COSTS, **behaviour)).returns.iloc[:, 0]
    r = b.daily.set_index("date")["return"]
    assert r.index[0] == pd.Timestamp(START)
    assert np.array_equal(r.iloc[1:].to_numpy(), engine.loc[r.index[1:]].to_numpy())  # bit for bit
    # the first day holds nothing: its only return is the cost of the opening fill at its close
    first = b.rows[b.rows["date"] == pd.Timestamp(START)]
    assert (first["position"] == 0).all()
    assert r.iloc[0] == pytest.approx(-first["cost"].sum() / 100_000.0, abs=1e-15)


def test_an_ensemble_ledger_earns_the_replay_of_its_captured_members(close):
    members = (Member("momentum", PARAMS, 0.6), Member("mean_reversion", {}, 0.4))
    b = book(close, Deployment(members), COSTS, START)
    caps = [capture_signals(close, m.strategy, pd.DataFrame([dict(m.params)]), id_prefix=f"m{i}")
            for i, m in enumerate(members)]
    cap = concat_captured(caps)
    rep = replay(cap, close, COSTS, weights={cap.strategy_ids[0]: 0.6, cap.strategy_ids[1]: 0.4})["ensemble"]
    r = b.daily.set_index("date")["return"]
    np.testing.assert_allclose(r.iloc[1:].to_numpy(), rep.loc[r.index[1:]].to_numpy(), rtol=0, atol=1e-15)


def test_the_backtest_of_a_deployment_is_the_engine_s_and_the_replay_s(close):
    """One member: run_backtest bit for bit (behaviour settings included); an ensemble: the
    replay of its captured members; the ledger earns the same from its second day."""
    one = Deployment((Member("momentum", PARAMS),), {"sizing": "vol_target", "stop_loss": 0.05})
    r, held = backtest_deployment(close, one, COSTS)
    from dataclasses import replace

    engine = run_backtest(close, "momentum", PARAMS, replace(COSTS, sizing="vol_target", stop_loss=0.05))
    assert np.array_equal(r.to_numpy(), engine.returns.iloc[:, 0].to_numpy())
    assert held.shape == (close.shape[1], len(close))
    members = (Member("momentum", PARAMS, 0.7), Member("breakout", {}, 0.3))
    r, _ = backtest_deployment(close, Deployment(members), COSTS)
    caps = [capture_signals(close, m.strategy, pd.DataFrame([dict(m.params)]), id_prefix=f"m{i}")
            for i, m in enumerate(members)]
    cap = concat_captured(caps)
    rep = replay(cap, close, COSTS, weights={cap.strategy_ids[0]: 0.7, cap.strategy_ids[1]: 0.3})["ensemble"]
    np.testing.assert_allclose(r.to_numpy(), rep.to_numpy(), rtol=0, atol=1e-15)
    b = book(close, Deployment(members), COSTS, START).daily.set_index("date")["return"]
    np.testing.assert_allclose(b.iloc[1:].to_numpy(), r.loc[b.index[1:]].to_numpy(), rtol=0, atol=1e-15)


def test_the_account_by_hand(close):
    """Buy and hold of two symbols at 50/50 with costs, one day at a time in plain Python."""
    c = close[["SPY", "QQQ"]].iloc[:30]
    start = c.index[10]
    b = book(c, Deployment.buy_and_hold(), COSTS, start, capital=1000.0)
    rate = 7e-4
    value, pos = 1000.0, {"SPY": 0.0, "QQQ": 0.0}
    for i, day in enumerate(c.index[10:]):
        t = 10 + i
        day_pnl = 0.0
        for s in ("SPY", "QQQ"):
            g = pos[s] * (c[s].iloc[t] / c[s].iloc[t - 1] - 1.0)
            w_new = 1.0
            d = w_new - pos[s]
            k = rate * abs(d) / (1.0 + rate * np.sign(d) * w_new) if d else 0.0
            sleeve = g - k * (1.0 + g)  # the engine's cost model: a fraction of post-trade equity
            row = b.rows[(b.rows["date"] == day) & (b.rows["symbol"] == s)].iloc[0]
            assert row["pnl"] == pytest.approx(value * 0.5 * sleeve, rel=1e-12, abs=1e-12)
            assert row["position"] == pos[s] and row["target_position"] == 1.0
            assert (row["fill_price"] == c[s].iloc[t]) if d else np.isnan(row["fill_price"])
            day_pnl += value * 0.5 * sleeve
            pos[s] = w_new
        value += day_pnl
        assert b.daily.set_index("date").loc[day, "value"] == pytest.approx(value, rel=1e-12)
    assert b.rows["trade"].ne(0).sum() == 2  # bought once, held


def test_a_day_is_decided_by_the_bars_before_it(close):
    """Perturb the close of day t and everything after: the rows before t do not move, and the
    position held over day t (decided at the close of t-1) does not either."""
    d = Deployment((Member("momentum", {"fast_period": 5, "slow_period": 20}),), {"sizing": "vol_target"})
    t = close.index.get_loc(pd.Timestamp("2022-09-01"))
    other = close.copy()
    rng = np.random.default_rng(3)
    other.iloc[t:] *= np.exp(np.cumsum(rng.normal(0, 0.05, size=(len(close) - t, close.shape[1])), axis=0))
    a, b = book(close, d, COSTS, START).rows, book(other, d, COSTS, START).rows
    cut = close.index[t]
    pd.testing.assert_frame_equal(a[a["date"] < cut].reset_index(drop=True), b[b["date"] < cut].reset_index(drop=True))
    day_a, day_b = a[a["date"] == cut].reset_index(drop=True), b[b["date"] == cut].reset_index(drop=True)
    pd.testing.assert_series_equal(day_a["position"], day_b["position"])
    pd.testing.assert_series_equal(day_a["decided_at"], day_b["decided_at"])
    assert (day_a["decided_at"] == close.index[t - 1]).all()
    assert not a[a["date"] >= cut].reset_index(drop=True).equals(b[b["date"] >= cut].reset_index(drop=True))


def test_booking_more_days_never_changes_the_days_already_booked(close):
    d = Deployment((Member("breakout", {}),), {"stop_loss": 0.04})
    short = book(close.loc[:"2022-09-30"], d, COSTS, START)
    long = book(close, d, COSTS, START)
    n = len(short.rows)
    pd.testing.assert_frame_equal(short.rows, long.rows.iloc[:n])
    pd.testing.assert_frame_equal(short.daily, long.daily.iloc[: len(short.daily)])


def test_the_per_symbol_pnl_adds_up_to_the_day(close):
    b = book(close, Deployment((Member("momentum", PARAMS),), {"sizing": "vol_target"}), COSTS, START)
    by_day = b.rows.groupby("date")["pnl"].sum()
    daily = b.daily.set_index("date")
    np.testing.assert_allclose(by_day.to_numpy(), daily["pnl"].to_numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(daily["value"], 100_000.0 * np.cumprod(1.0 + daily["return"]), rtol=1e-12)
    assert (b.rows["cost"] >= 0).all()


def test_the_config_id_names_what_is_traded_not_its_label():
    a = Deployment((Member("momentum", PARAMS),), {"mode": "long_only"}, "one")
    b = Deployment((Member("momentum", PARAMS),), {"mode": "long_only"}, "two")
    c = Deployment((Member("momentum", {**PARAMS, "fast_period": 11}),), {"mode": "long_only"})
    assert a.config_id == b.config_id != c.config_id
    assert Deployment.from_json(a.to_json()) == a


def test_tracking_z_is_the_standardized_sum_for_independent_returns():
    """With blocks of one day the bootstrap's sums of n draws have mean n*mu and std
    sigma*sqrt(n) (here the population of the sample): the z equals the closed form."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0004, 0.01, 400)
    r = rng.normal(0.0, 0.012, 50)
    path = tracking_path(r, x, n_boot=20000, block=1, seed=1)
    mu, sigma = x.mean(), x.std(ddof=0)
    closed = (np.cumsum(r) - np.arange(1, 51) * mu) / (sigma * np.sqrt(np.arange(1, 51)))
    np.testing.assert_allclose(path["tracking_z"][4:], closed[4:], rtol=0.03, atol=0.03)
    assert path["daily_z"][0] == pytest.approx((r[0] - mu) / x.std(ddof=1))
    assert path["volatility_ratio"][-1] == pytest.approx(r.std(ddof=1) / x.std(ddof=1))


def test_tracking_is_calibrated_when_the_ledger_follows_the_backtest():
    """Returns drawn from the expected distribution: z-scores about N(0, 1), few alerts at 3."""
    rng = np.random.default_rng(5)
    z, vz = [], []
    for _ in range(200):
        x = rng.normal(0.0005, 0.01, 500)
        t = tracking(rng.normal(0.0005, 0.01, 60), x)
        z.append(t.tracking_z)
        vz.append(t.volatility_z)
    z, vz = np.array(z), np.array(vz)
    assert abs(z.mean()) < 0.2 and 0.85 < z.std() < 1.25
    assert abs(vz.mean()) < 0.3 and 0.85 < vz.std() < 1.25
    assert (np.abs(z) > 3).mean() < 0.02 and (np.abs(vz) > 3).mean() < 0.02


def test_tracking_flags_a_ledger_that_does_not_follow_the_backtest():
    rng = np.random.default_rng(6)
    x = rng.normal(0.0005, 0.01, 500)
    assert tracking(rng.normal(-0.006, 0.01, 60), x).tracking_z < -3  # bleeding
    assert tracking(rng.normal(0.0005, 0.03, 60), x).volatility_z > 3  # three times the volatility


def test_a_day_s_tracking_does_not_depend_on_how_many_days_follow():
    rng = np.random.default_rng(7)
    x, r = rng.normal(0, 0.01, 300), rng.normal(0, 0.01, 90)
    long, short = tracking_path(r, x), tracking_path(r[:37], x)
    for key in long:
        np.testing.assert_array_equal(long[key][:37], short[key])
