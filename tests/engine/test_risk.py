"""Tests of admf_assets.engine.risk (VaR/CVaR, tail risk, stress windows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from admf_assets.engine import risk as R


def _normal_sample(n=5000, seed=3, mu=0.0005, sd=0.012):
    rng = np.random.default_rng(seed)
    return pd.Series(rng.normal(mu, sd, n), index=pd.bdate_range("2005-01-03", periods=n), name="x")


# ---------------------------------------------------------------------------------------
# VaR / CVaR
# ---------------------------------------------------------------------------------------
def test_historical_var_cvar_hand_case():
    r = pd.Series(np.arange(-10, 10) / 100.0)  # -0.10, -0.09, ..., 0.09 (20 values)
    out = R.var_cvar(r, levels=(0.90, 0.95), method="historical")
    assert list(out.columns) == R.VAR_COLUMNS
    row90 = out[out.level == 0.90].iloc[0]
    # 10 % quantile, linear interpolation: position 0.1 * 19 = 1.9 -> -0.09 + 0.9 * 0.01
    assert row90["var"] == pytest.approx(0.081)
    assert row90["cvar"] == pytest.approx(0.095)  # mean of -0.10 and -0.09
    row95 = out[out.level == 0.95].iloc[0]
    assert row95["var"] == pytest.approx(0.0905)
    assert row95["cvar"] == pytest.approx(0.10)
    assert (out.n_obs == 20).all()


def test_gaussian_var_cvar_closed_form():
    r = _normal_sample()
    out = R.var_cvar(r, levels=(0.95, 0.99), method="gaussian").set_index("level")
    mu, sd = r.mean(), r.std(ddof=1)
    for level in (0.95, 0.99):
        z = norm.ppf(1 - level)
        assert out.loc[level, "var"] == pytest.approx(-(mu + sd * z), rel=1e-12)
        assert out.loc[level, "cvar"] == pytest.approx(-(mu - sd * norm.pdf(z) / (1 - level)), rel=1e-12)


def test_gaussian_var_cvar_textbook_numbers():
    # mu = 0, sigma = 1 %: VaR95 = 1.6449 %, ES95 = 2.0627 %, VaR99 = 2.3263 %, ES99 = 2.6652 %
    x = np.array([-0.01, 0.01] * 50)  # mean 0
    x = x / x.std(ddof=1) * 0.01  # sample sd exactly 1 %
    out = R.var_cvar(pd.Series(x), method="gaussian").set_index("level")
    assert out.loc[0.95, "var"] == pytest.approx(0.0164485, abs=1e-6)
    assert out.loc[0.95, "cvar"] == pytest.approx(0.0206271, abs=1e-6)
    assert out.loc[0.99, "var"] == pytest.approx(0.0232635, abs=1e-6)
    assert out.loc[0.99, "cvar"] == pytest.approx(0.0266521, abs=1e-6)


def _zero_skew_zero_kurt_sample():
    """Symmetric sample (skew exactly 0) whose bias-corrected excess kurtosis is 0."""
    m, k = 90, 10
    n = 2 * (m + k)

    def g2(c):  # population excess kurtosis of {+-1 (m times), +-c (k times)}
        m2 = (2 * m + 2 * k * c**2) / n
        m4 = (2 * m + 2 * k * c**4) / n
        return m4 / m2**2 - 3.0

    # pandas' G2 = ((n+1) g2 + 6)(n-1)/((n-2)(n-3)) is 0 when g2 = -6/(n+1)
    c = brentq(lambda c: g2(c) + 6.0 / (n + 1), 1.0, 20.0, xtol=1e-14)
    x = np.array([1.0] * m + [-1.0] * m + [c] * k + [-c] * k) * 0.01 + 0.0003
    return pd.Series(x)


def test_cornish_fisher_reduces_to_gaussian_without_skew_and_kurtosis():
    r = _zero_skew_zero_kurt_sample()
    assert abs(r.skew()) < 1e-10 and abs(r.kurt()) < 1e-10
    cf = R.var_cvar(r, levels=(0.9, 0.95, 0.99), method="cornish_fisher")
    g = R.var_cvar(r, levels=(0.9, 0.95, 0.99), method="gaussian")
    np.testing.assert_allclose(cf["var"], g["var"], rtol=1e-8)
    np.testing.assert_allclose(cf["cvar"], g["cvar"], rtol=1e-8)
    # and at the function level
    for z in (-1.2816, -1.6449, -2.3263):
        assert R.cornish_fisher_z(z, 0.0, 0.0) == z


def test_cornish_fisher_fat_tails_raise_far_tail_risk():
    rng = np.random.default_rng(9)
    r = pd.Series(rng.standard_t(3, 20_000) * 0.01)
    assert r.kurt() > 1
    cf = R.var_cvar(r, levels=(0.99,), method="cornish_fisher").iloc[0]
    g = R.var_cvar(r, levels=(0.99,), method="gaussian").iloc[0]
    assert cf["var"] > g["var"] and cf["cvar"] > g["cvar"]
    # the tail mean of the CF quantile function, checked against direct numerical integration
    s, k = float(r.skew()), float(r.kurt())
    alpha = 0.01
    u = (np.arange(200_000) + 0.5) / 200_000 * alpha
    z_cf_all = R.cornish_fisher_z(norm.ppf(u), s, k)  # vectorized over the tail quantiles
    expected = -(r.mean() + r.std(ddof=1) * z_cf_all.mean())
    assert cf["cvar"] == pytest.approx(expected, rel=1e-3)


def test_var_cvar_frame_rows_per_column_and_level_and_errors():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(0, 0.01, 500), "b": rng.normal(0, 0.02, 500)})
    df.iloc[:10, 1] = np.nan
    out = R.var_cvar(df, levels=(0.95, 0.99))
    assert len(out) == 4
    assert list(zip(out.column, out.level)) == [("a", 0.95), ("a", 0.99), ("b", 0.95), ("b", 0.99)]
    assert out.set_index(["column", "level"]).loc[("b", 0.95), "n_obs"] == 490
    assert (out.cvar >= out["var"]).all() and (out["var"] > 0).all()
    with pytest.raises(ValueError, match="method"):
        R.var_cvar(df, method="monte")
    with pytest.raises(ValueError, match="level"):
        R.var_cvar(df, levels=(95,))


# ---------------------------------------------------------------------------------------
# tail risk
# ---------------------------------------------------------------------------------------
def test_tail_risk_values():
    idx = pd.bdate_range("2020-01-01", periods=101)
    x = np.tile([0.001, -0.001], 50).astype(float)
    x = np.append(x, -0.05)
    r = pd.Series(x, index=idx)
    t = R.tail_risk(r)
    assert t["worst"] == -0.05 and t["worst_date"] == idx[-1]
    assert t["best"] == 0.001 and t["best_date"] == idx[0]
    assert t["frac_beyond_3sigma"] == pytest.approx(1 / 101)
    assert t["skew"] < -5 and t["excess_kurtosis"] > 50
    assert t["skew"] == pytest.approx(r.skew()) and t["excess_kurtosis"] == pytest.approx(r.kurt())
    assert t["normal_frac_beyond_3sigma"] == pytest.approx(0.0026998, abs=1e-6)
    sym = R.tail_risk(pd.Series(np.tile([0.01, -0.01], 20)))
    assert sym["skew"] == pytest.approx(0.0, abs=1e-12) and sym["frac_beyond_3sigma"] == 0.0
    both = R.tail_risk(pd.DataFrame({"a": x, "b": -x}))
    assert both["b"]["best"] == 0.05


# ---------------------------------------------------------------------------------------
# stress windows
# ---------------------------------------------------------------------------------------
def test_stress_windows_inside_outside_and_errors():
    idx = pd.date_range("2020-01-01", periods=10, freq="D")
    r = pd.Series([0.1, -0.1, -0.1, 0.5, -0.2, 0.0, 0.1, -0.5, 0.0, 0.1], index=idx)
    out = R.stress_windows(
        r,
        {"early": ("2020-01-02", "2020-01-04"), "crash": ("2020-01-08", "2020-01-10"), "before": ("2019-01-01", "2019-06-30")},
    )
    assert list(out.index) == ["early", "crash", "before"]
    e = out.loc["early"]
    assert e.n_bars == 3
    assert e.total_return == pytest.approx(0.9 * 0.9 * 1.5 - 1)
    assert e.max_drawdown == pytest.approx(0.81 - 1)
    assert e.volatility == pytest.approx(np.std([-0.1, -0.1, 0.5], ddof=1))
    assert e.annual_volatility == pytest.approx(e.volatility * np.sqrt(252))
    assert e.worst_bar == -0.1
    c = out.loc["crash"]
    assert c.n_bars == 3 and c.total_return == pytest.approx(0.5 * 1.1 - 1) and c.max_drawdown == pytest.approx(-0.5)
    b = out.loc["before"]
    assert b.n_bars == 0 and np.isnan(b.total_return) and np.isnan(b.max_drawdown) and np.isnan(b.volatility)
    with pytest.raises(ValueError, match="inverted"):
        R.stress_windows(r, {"inverted": ("2020-02-01", "2020-01-01")})
    with pytest.raises(ValueError, match="garbage"):
        R.stress_windows(r, {"garbage": ("not a date", "2020-01-01")})


def test_stress_windows_tz_aware_and_intraday_end_of_day():
    idx = pd.date_range("2021-03-01 09:30", periods=48, freq="h", tz="America/New_York")
    r = pd.Series(0.001, index=idx)
    out = R.stress_windows(r, {"day1": ("2021-03-01", "2021-03-01")})
    assert out.loc["day1", "n_bars"] == 15  # 09:30 .. 23:30 on the first day
