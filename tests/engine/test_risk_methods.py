"""VaR/CVaR methods against independent computations (a direct quantile, scipy.stats, a
hand-written Cornish-Fisher expansion, arch's own GARCH forecast), the VaR backtest, tail
statistics, drawdown tables, stress tests and the exposure scaling of a risk budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from admf_assets.engine import risk as R
from admf_assets.engine import riskbudget as B
from admf_assets.engine.backtest import BacktestConfig, run_backtest


def _t_returns(n=3000, seed=11, df=4, scale=0.01, mu=0.0004):
    rng = np.random.default_rng(seed)
    return pd.Series(mu + scale * rng.standard_t(df, n), index=pd.bdate_range("2001-01-01", periods=n), name="r")


def _garch_returns(n=2500, seed=5, omega=2e-6, alpha=0.08, beta=0.9, mu=3e-4):
    """A simulated GARCH(1, 1) with Gaussian innovations (known parameters)."""
    rng = np.random.default_rng(seed)
    r = np.empty(n)
    var = omega / (1 - alpha - beta)
    for t in range(n):
        r[t] = mu + np.sqrt(var) * rng.standard_normal()
        var = omega + alpha * (r[t] - mu) ** 2 + beta * var
    return pd.Series(r, index=pd.bdate_range("2005-01-03", periods=n))


# ------------------------------------------------------------------------------- VaR methods
@pytest.mark.parametrize("level", [0.95, 0.99, 0.999])
def test_historical_var_is_the_direct_quantile(level):
    r = _t_returns()
    row = R.var_cvar(r, (level,), "historical").iloc[0]
    q = np.quantile(r.to_numpy(), 1 - level)  # numpy's default (linear) quantile
    assert row["var"] == pytest.approx(-q, rel=1e-12)
    assert row["var"] == pytest.approx(-r.quantile(1 - level), rel=1e-12)  # pandas agrees
    tail = np.sort(r.to_numpy())
    tail = tail[tail <= q]
    assert row["cvar"] == pytest.approx(-tail.mean(), rel=1e-12)
    assert row["cvar"] >= row["var"]


@pytest.mark.parametrize("level", [0.95, 0.99, 0.999])
def test_parametric_var_matches_scipy_normal(level):
    r = _t_returns(seed=2)
    row = R.var_cvar(r, (level,), "parametric").iloc[0]
    dist = stats.norm(loc=r.mean(), scale=r.std(ddof=1))
    q = dist.ppf(1 - level)
    assert row["var"] == pytest.approx(-q, rel=1e-10)
    # expected shortfall by scipy's numerical conditional expectation
    es = dist.expect(lambda x: x, ub=q, conditional=True)
    assert row["cvar"] == pytest.approx(-es, rel=1e-7)
    assert R.var_cvar(r, (level,), "gaussian").iloc[0]["method"] == "parametric"  # the alias


def test_cornish_fisher_var_against_a_hand_computed_expansion():
    r = _t_returns(seed=7)
    x = r.to_numpy()
    n = x.size
    mu, sd = x.mean(), x.std(ddof=1)
    # sample skewness and excess kurtosis with the small-sample corrections (scipy's bias=False)
    s = stats.skew(x, bias=False)
    k = stats.kurtosis(x, fisher=True, bias=False)
    assert s == pytest.approx(r.skew(), rel=1e-9) and k == pytest.approx(r.kurt(), rel=1e-9) and n == 3000
    for level in (0.95, 0.99, 0.999):
        z = stats.norm.ppf(1 - level)
        z_cf = (z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36)
        row = R.var_cvar(r, (level,), "cornish_fisher").iloc[0]
        assert row["var"] == pytest.approx(-(mu + sd * z_cf), rel=1e-10)
        # CVaR: the tail mean of the CF quantile function, by direct numerical integration
        u = (np.arange(100_000) + 0.5) / 100_000 * (1 - level)
        zz = stats.norm.ppf(u)
        tail = zz + (zz**2 - 1) * s / 6 + (zz**3 - 3 * zz) * k / 24 - (2 * zz**3 - 5 * zz) * s**2 / 36
        assert row["cvar"] == pytest.approx(-(mu + sd * tail.mean()), rel=1e-4)


@pytest.mark.parametrize("dist", ["normal", "t"])
def test_garch_var_matches_arch_own_forecast(dist):
    from arch import arch_model

    r = _garch_returns()
    am = arch_model(100 * r, mean="Constant", vol="GARCH", p=1, q=1, dist=dist, rescale=False)
    res = am.fit(disp="off")
    fc = res.forecast(horizon=1, reindex=False)
    mean, var = fc.mean.iloc[-1, 0], fc.variance.iloc[-1, 0]
    dparams = res.params[am.distribution.parameter_names()] if dist == "t" else None
    for level in (0.95, 0.99, 0.999):
        q = am.distribution.ppf([1 - level], dparams)[0]  # arch's standardized quantile
        expected = -(mean + np.sqrt(var) * q) / 100
        row = R.var_cvar(r, (level,), "garch", garch_dist=dist).iloc[0]
        assert row["var"] == pytest.approx(expected, rel=1e-6)
        # CVaR: the mean of arch's quantile function over the tail
        u = (np.arange(20_000) + 0.5) / 20_000 * (1 - level)
        es = -(mean + np.sqrt(var) * am.distribution.ppf(u, dparams).mean()) / 100
        assert row["cvar"] == pytest.approx(es, rel=2e-3)
    fit = R.garch_fit(r, dist)
    assert fit.converged and 0.9 < fit.persistence < 1.0
    assert fit.params["alpha[1]"] == pytest.approx(0.08, abs=0.05)  # the simulated parameters
    assert fit.conditional_vol.index.equals(r.index)


def test_garch_needs_enough_varying_returns():
    short = pd.Series(np.random.default_rng(0).normal(0, 0.01, 50))
    assert R.garch_fit(short) is None
    assert np.isnan(R.var_cvar(short, (0.99,), "garch").iloc[0]["var"])
    flat = pd.Series(np.zeros(500))
    rep = R.var_report(flat, (0.99,), ("garch",))
    assert np.isnan(rep["var"].iloc[0]) and "no GARCH fit" in rep["note"].iloc[0]


@pytest.mark.parametrize("nu", [3.5, 5.0, 12.0])
def test_standardized_student_t_tail_against_scipy(nu):
    c = np.sqrt((nu - 2) / nu)
    for alpha in (0.05, 0.01, 0.001):
        q, e = R.standardized_tail(alpha, "t", nu)
        assert q == pytest.approx(c * stats.t.ppf(alpha, nu), rel=1e-12)
        dist = stats.t(nu, scale=c)  # unit variance
        assert dist.var() == pytest.approx(1.0)
        assert e == pytest.approx(dist.expect(lambda x: x, ub=q, conditional=True), rel=1e-6)


# ------------------------------------------------------------------------------- VaR backtest
def test_kupiec_matches_the_binomial_likelihood_ratio():
    for n, x, level in [(250, 5, 0.99), (250, 0, 0.99), (1000, 80, 0.95), (500, 10, 0.99)]:
        p, phat = 1 - level, x / n
        lr = 2 * (stats.binom.logpmf(x, n, phat) - stats.binom.logpmf(x, n, p))
        assert R.kupiec_pof(n, x, level) == pytest.approx(stats.chi2.sf(lr, 1), rel=1e-9)
    assert R.kupiec_pof(1000, 10, 0.99) == pytest.approx(1.0)  # exactly the expected rate


def test_var_report_counts_breaches_directly():
    r = _garch_returns(seed=9)
    rep = R.var_report(r, (0.95, 0.99), R.VAR_METHODS)
    assert list(rep.columns) == R.VAR_REPORT_COLUMNS and len(rep) == 8
    x = r.to_numpy()
    for _, row in rep[rep["method"] != "garch"].iterrows():
        assert row["breaches"] == int((x < -row["var"]).sum())
        assert row["breach_rate"] == pytest.approx(row["breaches"] / len(x))
    fit = R.garch_fit(r, "t")
    for _, row in rep[rep["method"] == "garch"].iterrows():
        q, _ = R.standardized_tail(1 - row["level"], "t", fit.nu)
        cond = -(fit.mu + fit.conditional_vol.to_numpy() * q)
        assert row["breaches"] == int((x < -cond).sum())
    # a GARCH market: the conditional VaR is calibrated, the unconditional Gaussian one is not at 99 %
    g99 = rep[(rep.method == "garch") & (rep.level == 0.99)].iloc[0]
    assert g99["kupiec_pvalue"] > 0.05


def test_garch_note_on_a_mostly_flat_series():
    r = _garch_returns(seed=3).copy()
    r.iloc[::2] = 0.0  # out of the market half of the time
    row = R.var_report(r, (0.99,), ("garch",)).iloc[0]
    assert "flat on 50% of bars" in row["note"]


# ------------------------------------------------------------------------------- tails
def test_hill_estimator_by_hand_and_on_pareto_losses():
    x = -np.array([8.0, 4.0, 2.0, 1.0, 0.5] + [0.1] * 10)  # 15 losses
    k = 10
    losses = np.sort(-x)[::-1]
    expected = 1.0 / np.mean(np.log(losses[:k] / losses[k]))
    assert R.hill_tail_index(x, tail_fraction=0.0, min_tail=k) == pytest.approx(expected)
    rng = np.random.default_rng(1)
    pareto = -(rng.pareto(3.0, 40_000) + 1.0)  # losses with tail index 3
    assert R.hill_tail_index(pareto, tail_fraction=0.02) == pytest.approx(3.0, abs=0.25)
    normal = rng.normal(0, 1, 40_000)
    assert R.hill_tail_index(normal) > 4  # thin tails: a large index


def test_tail_statistics_extras():
    r = _t_returns(seed=4)
    t = R.tail_risk(r)
    assert t["jarque_bera_pvalue"] < 1e-6  # t(4) is far from normal
    q05, q95 = np.quantile(r, [0.05, 0.95])
    assert t["tail_ratio"] == pytest.approx(abs(q95) / abs(q05))
    assert 2.5 < t["hill_tail_index"] < 6


# ------------------------------------------------------------------------------- drawdowns
def test_drawdown_table_by_hand():
    idx = pd.bdate_range("2020-01-06", periods=8)  # Mon 2020-01-06 .. Wed 2020-01-15
    r = pd.Series([0.10, -0.20, 0.05, 0.25, 0.0, -0.10, 0.02, 0.0], index=idx)
    t = R.drawdown_table(r)
    assert list(t.columns) == R.DRAWDOWN_TABLE_COLUMNS
    first, second = t.iloc[0], t.iloc[1]
    # equity 1.1, 0.88, 0.924, 1.155 (new high), 1.155, 1.0395, 1.0603, 1.0603
    assert first["depth"] == pytest.approx(-0.2)
    assert (first["start"], first["trough"], first["recovery"]) == (idx[0], idx[1], idx[3])
    assert first["length_bars"] == 3 and first["bars_to_trough"] == 1 and first["recovered"]
    assert first["length_days"] == 3  # Monday -> Thursday
    assert second["depth"] == pytest.approx(-0.10)  # the trough 1.0395 against the peak 1.155
    assert (second["start"], second["trough"]) == (idx[4], idx[5])
    assert pd.isna(second["recovery"]) and not second["recovered"]
    assert second["length_bars"] == 3 and second["length_days"] == (idx[7] - idx[4]).days


# ------------------------------------------------------------------------------- stress tests
def test_stress_test_strategy_against_benchmark_and_notes():
    idx = pd.bdate_range("2008-01-01", "2009-12-31")
    rng = np.random.default_rng(0)
    bench = pd.Series(rng.normal(0, 0.02, len(idx)), index=idx)
    strat = bench * 0.5
    scen = {"gfc": ("2008-09-01", "2009-03-31"), "dot_com": ("2000-03-01", "2002-10-31"),
            "tail": ("2009-10-01", "2010-06-30"), "edge": ("2007-12-29", "2008-01-31")}
    out = R.stress_test(strat, bench, scen).set_index("scenario")
    assert list(out.index) == list(scen)
    g = out.loc["gfc"]
    window = bench.loc["2008-09-01":"2009-03-31"]
    assert g["n_bars"] == len(window)
    assert g["buy_and_hold_return"] == pytest.approx((1 + window).prod() - 1)
    assert g["strategy_return"] == pytest.approx((1 + window * 0.5).prod() - 1)
    assert g["excess_return"] == pytest.approx(g["strategy_return"] - g["buy_and_hold_return"])
    assert g["strategy_volatility"] == pytest.approx(window.std() * 0.5 * np.sqrt(252))
    assert g["note"] == ""
    assert out.loc["dot_com", "n_bars"] == 0 and np.isnan(out.loc["dot_com", "strategy_return"])
    assert out.loc["dot_com", "note"] == "outside the data (2008-01-01..2009-12-31)"
    assert out.loc["tail", "note"].startswith("partly outside the data (2008-01-01..2009-12-31): measured on "
                                              "2009-10-01..2009-12-31")
    assert out.loc["edge", "note"] == ""  # a weekend before the first bar is not "outside"


# ------------------------------------------------------------------------------- risk budget
def test_max_drawdown_at_matches_a_loop():
    r = _t_returns(n=800, seed=3).to_numpy()
    for k in (0.3, 1.0, 2.5):
        eq = np.cumprod(1 + k * r)
        peak = np.maximum(np.maximum.accumulate(eq), 1.0)
        assert B.max_drawdown_at(r, [k])[0] == pytest.approx(-(eq / peak - 1).min(), rel=1e-9)
    assert B.max_drawdown_at([-0.6], [2.0])[0] == 1.0  # ruin


def test_scale_for_drawdown_meets_the_budget_exactly():
    r = _t_returns(n=2000, seed=8).to_numpy()
    k = B.scale_for_drawdown(r, 0.15)
    assert B.max_drawdown_at(r, [k])[0] == pytest.approx(0.15, abs=1e-8)
    assert (B.max_drawdown_at(r, np.linspace(0.01, k * 0.999, 50)) <= 0.15 + 1e-9).all()
    assert np.isinf(B.scale_for_drawdown(np.abs(r), 0.1))  # never loses


def test_var_and_volatility_scale_linearly_and_recommendation_meets_every_budget():
    r = _t_returns(n=2500, seed=6)
    for k in (0.4, 1.7):  # the equivariance the linear scales rely on
        for method in ("historical", "parametric", "cornish_fisher"):
            a = R.var_cvar(r, (0.99,), method).iloc[0]
            b = R.var_cvar(k * r, (0.99,), method).iloc[0]
            assert b["var"] == pytest.approx(k * a["var"], rel=1e-9)
            assert b["cvar"] == pytest.approx(k * a["cvar"], rel=1e-9)
    table = R.var_report(r, (0.99,), ("historical", "parametric", "cornish_fisher"))
    recs = B.recommend_exposure(r, table, var_budget=0.01, cvar_budget=0.02, level=0.99, method="worst",
                                drawdown_budget=0.1, volatility_budget=0.12, max_exposure=1.0)
    assert list(recs.columns) == B.RECOMMENDATION_COLUMNS
    assert list(recs["constraint"]) == ["var", "cvar", "max_drawdown", "volatility", B.EXPOSURE_ROW]
    k = recs.iloc[-1]["scale"]
    assert k == pytest.approx(recs["scale"].iloc[:-1].min())
    # every budget holds at the recommended exposure, measured afresh on k * r
    worst_var = max(R.var_cvar(k * r, (0.99,), m).iloc[0]["var"] for m in ("historical", "parametric",
                                                                           "cornish_fisher"))
    assert worst_var <= 0.01 + 1e-12
    assert R.var_cvar(k * r, (0.99,), "historical").iloc[0]["cvar"] <= 0.02 + 1e-12
    assert B.max_drawdown_at(r.to_numpy(), [k])[0] <= 0.1 + 1e-9
    assert (k * r).std() * np.sqrt(252) <= 0.12 + 1e-12
    assert recs["binding"].sum() == 1
    var_row = recs.iloc[0]
    assert var_row["method"].startswith("worst (") and var_row["current"] == pytest.approx(
        max(table[table.method == m]["var"].iloc[0] for m in ("historical", "parametric", "cornish_fisher")))
    assert recs["measured_start"].iloc[0] == r.index[0] and recs["n_obs"].iloc[0] == len(r)
    # loose budgets: the cap sets the exposure
    loose = B.recommend_exposure(r, table, var_budget=0.5, max_exposure=0.8)
    assert loose.iloc[-1]["scale"] == 0.8 and loose.iloc[-1]["binding"]
    assert "met at max_exposure" in loose.iloc[-1]["note"]
    assert B.exposure_scale(loose)[0] == 0.8


def test_with_exposure_scales_backtest_returns_exactly_costs_included():
    idx = pd.bdate_range("2015-01-01", periods=600)
    rng = np.random.default_rng(2)
    close = pd.DataFrame({s: 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, len(idx)))) for s in "AB"},
                         index=idx)
    cfg = BacktestConfig(cost_bps=5, slippage_bps=2)
    params = {"fast_period": 10, "slow_period": 40}
    base = run_backtest(close, "momentum", params, cfg).returns.iloc[:, 0]
    for k in (0.37, 1.5):
        scaled = run_backtest(close, "momentum", params, B.with_exposure(cfg, close.columns, k)).returns.iloc[:, 0]
        np.testing.assert_allclose(scaled.to_numpy(), k * base.to_numpy(), rtol=1e-12, atol=1e-15)
    assert B.with_exposure(cfg, close.columns, 1.0) is cfg
    with pytest.raises(ValueError, match="exposure_scale"):
        B.exposure_scale(pd.DataFrame({"constraint": ["var"], "scale": [0.5]}))
