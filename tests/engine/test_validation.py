"""engine.validation against the papers' worked numbers and independent computations
(inputs and published outputs: shared/notes/peers-and-oracles.md section 4)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from admf_assets.engine import validation as v
from admf_assets.engine.metrics import compute_metrics


# ------------------------------------------------------------------ (d) standard error, MinTRL
@pytest.mark.parametrize("n, skew, kurt, sr, se, mintrl_years", [
    (134, -0.2250, 2.9570, 0.7079, 0.102761, 0.7152),   # Sharpe Ratio Efficient Frontier, monthly
    (134, -1.4455, 7.0497, 0.8183, 0.155007, 1.1593),
])
def test_sharpe_standard_error_and_min_track_record_paper_examples(n, skew, kurt, sr, se, mintrl_years):
    assert v.sharpe_standard_error(sr, n, skew, kurt) == pytest.approx(se, abs=5e-6)
    assert v.min_track_record_length(sr, 0.0, skew, kurt, 0.95) / 12 == pytest.approx(mintrl_years, abs=5e-4)


@pytest.mark.parametrize("ppy, sr, target, skew, kurt, years", [
    (250, 2.0, 1.0, 0.0, 3.0, 2.7311878),   # pypbo test_minTRL (Figure 8 of the efficient-frontier paper)
    (52, 2.0, 1.0, 0.0, 3.0, 2.8288336),
    (12, 3.0, 2.5, -0.72, 5.78, 27.3529202),
])
def test_min_track_record_length_figure_8(ppy, sr, target, skew, kurt, years):
    obs = v.min_track_record_length(sr / math.sqrt(ppy), target / math.sqrt(ppy), skew, kurt, 0.95)
    assert obs / ppy == pytest.approx(years, rel=1e-7)


def test_min_track_record_length_mlfinlab_and_infinite_below_benchmark():
    assert v.min_track_record_length(1.14, 1.0) == pytest.approx(228.73497, abs=1e-4)
    assert v.min_track_record_length(0.5, 0.5) == math.inf


# ------------------------------------------------------------------ (b) PSR
def test_probabilistic_sharpe_ratio_paper_example():
    assert v.probabilistic_sharpe_ratio(0.458, 24) == pytest.approx(0.98167, abs=5e-6)
    # pypbo test_psr: SR = 1.585 / sqrt(12), skew -2.448, kurtosis 10.164
    assert v.probabilistic_sharpe_ratio(1.585 / math.sqrt(12), 24, 0.0, -2.448, 10.164) == \
        pytest.approx(0.91323430688486018, abs=1e-12)
    assert v.probabilistic_sharpe_ratio(0.458, 24, 0.0, -2.448, 10.164) == pytest.approx(0.913361, abs=5e-7)
    assert v.probabilistic_sharpe_ratio(1.14, 250, 1.0) == pytest.approx(0.95727, abs=1e-5)  # mlfinlab


def test_psr_matches_a_direct_normal_tail_computation():
    sr, n, sk, ku, bench = 0.1, 500, -0.5, 6.0, 0.03
    z = (sr - bench) / math.sqrt((1 - sk * sr + (ku - 1) / 4 * sr * sr) / (n - 1))
    assert v.probabilistic_sharpe_ratio(sr, n, bench, sk, ku) == pytest.approx(stats.norm.cdf(z), rel=1e-12)


# ------------------------------------------------------------------ (e) expected maximum
def test_expected_max_and_min_backtest_length():
    assert v.expected_max_z(100) == pytest.approx(2.5306028932016846, abs=1e-12)  # pypbo test_expected_max
    for n, want in [(10, 1.5746), (20, 1.9007), (1000, 3.2551), (10000, 3.8607)]:
        assert v.expected_max_z(n) == pytest.approx(want, abs=5e-5)
    assert v.expected_max_z(1) == 0.0
    assert v.min_backtest_length(45, 1.0) == pytest.approx(4.9980870044434038, abs=1e-12)  # pypbo test_minBTL
    assert v.expected_max_z(1000) < math.sqrt(2 * math.log(1000))  # the upper bound


# ------------------------------------------------------------------ (a) DSR
def test_deflated_sharpe_ratio_paper_example():
    """Bailey & Lopez de Prado (2014): N = 100, V = 1/2 annualized, T = 1250 days (250 a year),
    best annualized SR 2.5, skew -3, kurtosis 10 -> SR0 = 0.1132 per day, DSR = 0.9004."""
    sr, var = 2.5 / math.sqrt(250), 0.5 / 250
    assert v.expected_max_sharpe(100, var) == pytest.approx(0.113172, abs=5e-7)
    assert v.expected_max_sharpe(100, var) * math.sqrt(250) == pytest.approx(1.7894, abs=5e-5)
    assert v.deflated_sharpe_ratio(sr, 1250, 100, var, -3, 10) == pytest.approx(0.90039683444939034, abs=1e-12)
    assert v.deflated_sharpe_ratio(sr, 1250, 46, var, -3, 10) == pytest.approx(0.9505, abs=5e-5)
    assert v.deflated_sharpe_ratio(sr, 1250, 1000, var, -3, 10) == pytest.approx(0.6399, abs=5e-5)


def test_deflated_sharpe_ratio_mlfinlab_convention():
    """mlfinlab: DSR(1.14, trials [3.5, 1.01, 1.02], 250) = 0.95836 with the population std of the
    trial Sharpe ratios (ddof=0) around a zero mean."""
    trials = np.array([3.5, 1.01, 1.02])
    assert v.deflated_sharpe_ratio(1.14, 250, 3, trials.var(ddof=0)) == pytest.approx(0.95836, abs=1e-5)


def test_single_trial_dsr_is_psr():
    assert v.deflated_sharpe_ratio(0.1, 300, 1, 0.02) == v.probabilistic_sharpe_ratio(0.1, 300)


def test_sharpe_moments_conventions():
    r = np.random.default_rng(3).standard_t(5, 400) * 0.01 + 0.0005
    m = v.sharpe_moments(r)
    assert m.sr == pytest.approx(r.mean() / r.std(ddof=1))
    assert m.skew == pytest.approx(pd.Series(r).skew(), rel=0.02)  # biased vs adjusted estimator
    assert m.kurtosis == pytest.approx(stats.kurtosis(r, fisher=False, bias=True))
    assert m.annual() == pytest.approx(compute_metrics(r)["sharpe_ratio"].iloc[0])
    assert v.sharpe_moments(np.zeros(10)) == v.SharpeMoments(0.0, 0.0, 3.0, 10)


def test_effective_number_of_trials():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 1))
    assert v.effective_number_of_trials(np.repeat(x, 8, axis=1)) == pytest.approx(1.0)
    n = v.effective_number_of_trials(rng.normal(size=(5000, 8)))
    assert 7.5 < n <= 8.0
    y = rng.normal(size=(300, 6))
    y[:, 1:4] += y[:, [0]]  # correlated trials
    c = np.corrcoef(y, rowvar=False)
    rho = (c.sum() - 6) / 30
    assert v.effective_number_of_trials(y) == pytest.approx(rho + (1 - rho) * 6, rel=1e-12)


# ------------------------------------------------------------------ (c) PBO
def _pbo_by_definition(m: np.ndarray, s: int) -> tuple[float, np.ndarray]:
    """The CSCV loop as written in the paper / pypbo, one combination at a time."""
    t, n = m.shape
    m = m[t % s:]
    b = len(m) // s
    blocks = [m[i * b:(i + 1) * b] for i in range(s)]
    logits = []
    for c in itertools.combinations(range(s), s // 2):
        j = np.concatenate([blocks[i] for i in c])
        jb = np.concatenate([blocks[i] for i in range(s) if i not in c])
        r, rb = j.mean(0) / j.std(0, ddof=1), jb.mean(0) / jb.std(0, ddof=1)
        w = stats.rankdata(rb)[np.argmax(r)] / (n + 1)
        logits.append(math.log(w / (1 - w)))
    lam = np.array(logits)
    return float(np.mean(lam <= 0)), lam


def test_pbo_matches_the_definition_exactly():
    m = np.random.default_rng(11).normal(0, 0.01, size=(1003, 30))
    res = v.probability_of_backtest_overfitting(m, 10)
    pbo, lam = _pbo_by_definition(m, 10)
    assert res.pbo == pbo
    np.testing.assert_allclose(res.logit, lam, atol=1e-9)
    assert len(res.logit) == math.comb(10, 5) == 252
    assert res.n_obs == 1000
    assert math.comb(16, 8) == 12870 and len(v.probability_of_backtest_overfitting(m, 16).logit) == 12870


def test_pbo_null_centres_near_one_half_and_a_planted_edge_gives_zero():
    rng = np.random.default_rng(5)
    null = [v.probability_of_backtest_overfitting(rng.normal(0, 0.01, (1000, 100)), 10).pbo for _ in range(12)]
    assert 0.35 < float(np.mean(null)) < 0.65
    m = rng.normal(0, 0.01, (1000, 100))
    m[:, :10] += 4 / math.sqrt(252) * 0.01  # 10 of 100 columns at an annual Sharpe of about 4
    res = v.probability_of_backtest_overfitting(m, 10)
    assert res.pbo == 0.0
    assert res.prob_oos_loss == 0.0


def test_pbo_input_checks():
    with pytest.raises(ValueError, match="even"):
        v.probability_of_backtest_overfitting(np.zeros((100, 3)), 5)
    with pytest.raises(ValueError, match="2 trials"):
        v.probability_of_backtest_overfitting(np.zeros((100, 1)), 4)
    with pytest.raises(ValueError, match="2 bars per block"):
        v.probability_of_backtest_overfitting(np.zeros((10, 3)), 16)


# ------------------------------------------------------------------ resampling
def test_held_segments_follow_the_one_bar_lag():
    assert v.held_segments([0, 1, 1, 0, 0, -1]).tolist() == [0, 2, 4]  # the last decision is held after the end
    two = np.array([[0, 0], [1, 0], [1, 1], [1, 1]])
    assert v.held_segments(two).tolist() == [0, 2, 3]


def test_trade_resampling_draws_whole_trades():
    r = np.arange(1, 13, dtype=float) / 1000
    pos = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0])
    starts = v.held_segments(pos)
    idx = next(v.resampled_indices(len(r), 50, seed=1, segments=starts))
    segs = [list(range(a, b)) for a, b in zip(starts, list(starts[1:]) + [len(r)])]
    for row in idx:  # every path is a sequence of whole segments (the last one may be cut)
        i = 0
        while i < len(row):
            seg = next(s for s in segs if s[0] == row[i])
            take = min(len(seg), len(row) - i)
            assert list(row[i:i + take]) == seg[:take]
            i += take


def test_monte_carlo_is_seeded_and_its_intervals_cover_the_observed_value():
    r = np.random.default_rng(2).normal(0.0005, 0.01, 750)
    a = v.monte_carlo(r, 500, 0.9, seed=3, block_size=5)
    b = v.monte_carlo(r, 500, 0.9, seed=3, block_size=5)
    pd.testing.assert_frame_equal(a.simulations, b.simulations)
    s = a.summary.set_index("statistic")
    assert list(s.index) == ["sharpe_ratio", "max_drawdown", "total_return"]
    obs = compute_metrics(r).iloc[0]
    for k in s.index:
        assert s.loc[k, "observed"] == pytest.approx(obs[k])
        assert s.loc[k, "ci_low"] <= s.loc[k, "observed"] <= s.loc[k, "ci_high"]
    sims = a.simulations["sharpe_ratio"]
    assert s.loc["sharpe_ratio", "ci_low"] == pytest.approx(np.quantile(sims, 0.05))
    assert (a.simulations["max_drawdown"] <= 0).all()


def test_bootstrap_sharpe_interval_agrees_with_the_analytic_one_for_iid_returns():
    r = np.random.default_rng(8).normal(0.0006, 0.01, 1000)
    out = v.bootstrap_sharpe(r, 4000, 0.95, seed=1, block_size=1)
    assert out["ci_low"] < out["sharpe_ratio"] < out["ci_high"]
    assert out["ci_low"] == pytest.approx(out["analytic_ci_low"], abs=0.12)
    assert out["ci_high"] == pytest.approx(out["analytic_ci_high"], abs=0.12)


def test_trade_win_rate():
    r = np.array([0, 0.01, 0.02, 0, 0, -0.01, -0.02, 0.0])
    pos = np.array([1, 1, 0, 0, 1, 1, 0, 0])  # two trades: +3% (bars 1-2), -3% (bars 5-6)
    assert v.trade_win_rate(r, pos) == (0.5, 2)


def test_judge():
    crits = [v.Criterion("dsr", "deflated_sharpe_ratio", "min", 0.95), v.Criterion("pbo", "pbo", "max", 0.5)]
    ok, table = v.judge({"deflated_sharpe_ratio": 0.97, "pbo": 0.2}, crits)
    assert ok and table["passed"].all()
    ok, table = v.judge({"deflated_sharpe_ratio": 0.97, "pbo": float("nan")}, crits)
    assert not ok and table["passed"].tolist() == [True, False]
