"""Is it luck?  Statistics that ask whether a backtest's performance survives the search that
found it: probabilistic and deflated Sharpe ratios, minimum track record length, probability
of backtest overfitting (CSCV), and block-bootstrap Monte Carlo confidence intervals.

Conventions (tested against the papers' worked numbers, see tests/engine/test_validation.py):

* Inside the formulas the Sharpe ratio ``sr`` is **per period** (not annualized):
  ``mean / std(ddof=1)`` of simple returns, no risk-free rate; divide an annualized Sharpe by
  ``sqrt(periods_per_year)`` to get it.  Functions whose name ends in ``_annual`` take or
  return annualized values.
* ``skew`` is the skewness and ``kurtosis`` the **raw** kurtosis (3 for a normal
  distribution), both the population (biased) moment estimators of ``scipy.stats``.
* ``n`` is the number of return observations; the standard error of the Sharpe ratio uses
  ``n - 1`` (Bailey & Lopez de Prado 2012, "The Sharpe ratio efficient frontier").
* The dispersion of the trials' Sharpe ratios is their variance with ``ddof=1``.
* PBO: ``omega = rank / (N + 1)`` with average ranks; ``logit = ln(omega / (1 - omega))``;
  PBO is the share of combinations with ``logit <= 0`` (Bailey, Borwein, Lopez de Prado &
  Zhu 2017; the same convention as pypbo).

>>> round(deflated_sharpe_ratio(2.5 / 250 ** 0.5, n=1250, n_trials=100, var_sharpe=0.5 / 250,
...                             skew=-3, kurtosis=10), 4)
0.9004
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Iterator

import numpy as np
import pandas as pd
from .analysis import _path_stats, bootstrap_indices
from .metrics import TRADING_DAYS
from .util import LazyImport

stats = LazyImport("scipy.stats")  # imported on first use: a second of every admf command's start-up

__all__ = [
    "EULER_GAMMA",
    "SharpeMoments",
    "sharpe_moments",
    "sharpe_standard_error",
    "probabilistic_sharpe_ratio",
    "expected_max_z",
    "expected_max_sharpe",
    "deflated_sharpe_ratio",
    "min_track_record_length",
    "min_backtest_length",
    "effective_number_of_trials",
    "PBOResult",
    "probability_of_backtest_overfitting",
    "held_segments",
    "resampled_indices",
    "MonteCarloResult",
    "monte_carlo",
    "bootstrap_sharpe",
    "trade_win_rate",
    "Criterion",
    "judge",
]

EULER_GAMMA = 0.5772156649015329


# ================================================================== Sharpe ratio statistics
@dataclass(frozen=True)
class SharpeMoments:
    """Per-period Sharpe ratio and the moments its standard error needs."""

    sr: float  #: per-period Sharpe ratio (mean / std, ddof=1)
    skew: float
    kurtosis: float  #: raw kurtosis (normal = 3)
    n: int  #: observations

    def annual(self, periods_per_year: float = TRADING_DAYS) -> float:
        return self.sr * math.sqrt(periods_per_year)


def sharpe_moments(returns) -> SharpeMoments:
    """Sharpe ratio (per period), skewness and raw kurtosis of a return series (NaN = 0, as in
    ``metrics``).  A constant series has Sharpe 0, skew 0 and kurtosis 3."""
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64).ravel(), nan=0.0)
    n = r.size
    if n < 2:
        raise ValueError(f"need at least 2 returns, got {n}")
    sd = r.std(ddof=1)
    if not sd > 0 or np.ptp(r) == 0:
        return SharpeMoments(0.0, 0.0, 3.0, n)
    return SharpeMoments(float(r.mean() / sd), float(stats.skew(r)), float(stats.kurtosis(r, fisher=False)), n)


def _sr_variance_term(sr, skew, kurtosis):
    return 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr


def sharpe_standard_error(sr: float, n: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Standard error of a per-period Sharpe estimate under non-normal returns:
    ``sqrt((1 - skew*sr + (kurtosis - 1)/4 * sr^2) / (n - 1))``.

    >>> round(sharpe_standard_error(0.7079, 134, -0.2250, 2.9570), 4)
    0.1028
    """
    if n < 2:
        raise ValueError(f"need n >= 2 observations, got {n}")
    return math.sqrt(max(_sr_variance_term(sr, skew, kurtosis), 0.0) / (n - 1))


def probabilistic_sharpe_ratio(sr: float, n: int, sr_benchmark: float = 0.0, skew: float = 0.0,
                               kurtosis: float = 3.0) -> float:
    """PSR: the probability that the true Sharpe ratio exceeds ``sr_benchmark`` (both per
    period), ``Phi((sr - sr*) * sqrt(n - 1) / sqrt(1 - skew*sr + (kurtosis - 1)/4 * sr^2))``.

    >>> round(probabilistic_sharpe_ratio(0.458, 24), 3)
    0.982
    """
    if n < 2:
        raise ValueError(f"need n >= 2 observations, got {n}")
    term = _sr_variance_term(sr, skew, kurtosis)
    if not term > 0:
        return float("nan")
    return float(stats.norm.cdf((sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(term)))


def expected_max_z(n_trials: float) -> float:
    """Expected maximum of ``n_trials`` independent standard normal draws (the extreme-value
    approximation of Bailey & Lopez de Prado 2014): ``(1 - g) * Phi^-1(1 - 1/N) +
    g * Phi^-1(1 - 1/(N e))`` with g the Euler-Mascheroni constant; 0 for a single trial.

    >>> round(expected_max_z(100), 4)
    2.5306
    """
    if not n_trials >= 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1:
        return 0.0
    return float((1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n_trials)
                 + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n_trials * math.e)))


def expected_max_sharpe(n_trials: float, var_sharpe: float, mean_sharpe: float = 0.0) -> float:
    """SR0: the Sharpe ratio the best of ``n_trials`` trials reaches by luck alone,
    ``mean + sqrt(var) * E[max Z]`` (per period or annualized, as ``var_sharpe`` is)."""
    if var_sharpe < 0:
        raise ValueError(f"var_sharpe must be >= 0, got {var_sharpe}")
    return float(mean_sharpe + math.sqrt(var_sharpe) * expected_max_z(n_trials))


def deflated_sharpe_ratio(sr: float, n: int, n_trials: float, var_sharpe: float, skew: float = 0.0,
                          kurtosis: float = 3.0, mean_sharpe: float = 0.0) -> float:
    """DSR = PSR(SR0): the probability that the true Sharpe ratio of the selected strategy is
    positive once the selection among ``n_trials`` trials (whose per-period Sharpe ratios have
    variance ``var_sharpe``) is accounted for.  ``sr`` per period, ``n`` observations."""
    return probabilistic_sharpe_ratio(sr, n, expected_max_sharpe(n_trials, var_sharpe, mean_sharpe), skew, kurtosis)


def min_track_record_length(sr: float, sr_benchmark: float = 0.0, skew: float = 0.0, kurtosis: float = 3.0,
                            confidence: float = 0.95) -> float:
    """Observations needed before ``sr`` (per period) exceeds ``sr_benchmark`` with the given
    confidence: ``1 + (1 - skew*sr + (kurtosis - 1)/4 * sr^2) * (z / (sr - sr*))^2``;
    infinite when ``sr <= sr_benchmark``.  Divide by periods per year for years."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if sr <= sr_benchmark:
        return float("inf")
    z = stats.norm.ppf(confidence)
    return float(1.0 + _sr_variance_term(sr, skew, kurtosis) * (z / (sr - sr_benchmark)) ** 2)


def min_backtest_length(n_trials: float, sharpe_annual: float) -> float:
    """Minimum backtest length in years so that ``n_trials`` trials of a skill-less strategy
    are not expected to reach an annualized in-sample Sharpe of ``sharpe_annual``:
    ``(E[max Z] / SR)^2`` (Bailey, Borwein, Lopez de Prado & Zhu 2014).

    >>> round(min_backtest_length(45, 1.0), 4)
    4.9981
    """
    if not sharpe_annual > 0:
        raise ValueError(f"sharpe_annual must be > 0, got {sharpe_annual}")
    return float((expected_max_z(n_trials) / sharpe_annual) ** 2)


def effective_number_of_trials(returns) -> float:
    """Independent trials equivalent to ``returns`` (bars x trials): ``rho + (1 - rho) * M``
    with ``rho`` the mean pairwise correlation of the trials (clipped to [0, 1]), so perfectly
    correlated trials count as one and uncorrelated ones as M."""
    r = np.asarray(returns, dtype=np.float64)
    m = r.shape[1]
    if m < 2:
        return float(m)
    sd = r.std(axis=0)
    live = sd > 0
    k = int(live.sum())
    if k < 2:
        return 1.0
    # the sum of every entry of the correlation matrix is |sum of the standardized columns|^2 / T:
    # O(T k) time and memory instead of a k x k matrix
    z = (r[:, live] - r[:, live].mean(axis=0)) / sd[live]
    total = float(np.square(z.sum(axis=1)).sum()) / r.shape[0]
    rho = float(np.clip((total - k) / (k * (k - 1)), 0.0, 1.0))
    return rho + (1.0 - rho) * m


# ================================================================== PBO by CSCV
@dataclass
class PBOResult:
    """Combinatorially symmetric cross-validation of N trials over S blocks of time.

    One entry per combination of S/2 in-sample blocks: ``best`` (the trial that is best
    in-sample), ``is_performance`` / ``oos_performance`` (its metric in and out of sample),
    ``omega`` (its out-of-sample relative rank) and ``logit``."""

    pbo: float
    n_splits: int
    n_trials: int
    n_obs: int  #: rows used (the first ``T mod S`` rows are dropped)
    metric: str
    best: np.ndarray
    is_performance: np.ndarray
    oos_performance: np.ndarray
    omega: np.ndarray
    logit: np.ndarray
    prob_oos_loss: float  #: share of combinations whose IS-best loses out of sample (metric < 0)
    degradation_slope: float  #: slope of OOS on IS performance of the IS-best (negative: decay)
    degradation_intercept: float
    degradation_r2: float
    blocks: list = field(default_factory=list)  #: in-sample block numbers of each combination

    def table(self) -> pd.DataFrame:
        """One row per combination."""
        return pd.DataFrame({
            "combination": np.arange(len(self.logit)),
            "is_blocks": [",".join(map(str, b)) for b in self.blocks],
            "best_trial": self.best,
            "is_performance": self.is_performance,
            "oos_performance": self.oos_performance,
            "oos_rank": self.omega,
            "logit": self.logit,
            "overfit": self.logit <= 0,
        })


_PBO_METRICS = ("sharpe_ratio", "mean_return")
_PBO_BATCH_ELEMENTS = 16_000  # small blocks: their temporaries are reused instead of page-faulted in


def _block_sums(m: np.ndarray, n_splits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per block (S x N) sums of the centred returns and of their squares, the column means."""
    t, n = m.shape
    rows = t // n_splits
    blocks = m.reshape(n_splits, rows, n)
    mu = m.mean(axis=0)
    centred = blocks - mu
    return centred.sum(axis=1), np.einsum("sbn,sbn->sn", centred, centred), mu, rows


def _metric_of(ind: np.ndarray, s1: np.ndarray, s2: np.ndarray, mu: np.ndarray, count: int, metric: str) -> np.ndarray:
    """The metric of every trial over the union of the blocks in each row of ``ind``."""
    a = ind @ s1  # sums of centred returns
    mean = a / count + mu
    if metric == "mean_return":
        return mean
    var = (ind @ s2 - a * a / count) / (count - 1)
    sd = np.sqrt(np.maximum(var, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 1e-15 * (np.abs(mean) + 1e-300), mean / np.where(sd > 0, sd, 1.0), 0.0)


def probability_of_backtest_overfitting(returns, n_splits: int = 16, metric: str = "sharpe_ratio") -> PBOResult:
    """PBO of selecting the in-sample best of the trials in ``returns`` (bars x trials).

    The rows are cut into ``n_splits`` (even) contiguous blocks of equal length (the first
    ``T mod S`` rows are dropped); for each of the C(S, S/2) choices of in-sample blocks the
    trial with the best in-sample ``metric`` (``sharpe_ratio`` or ``mean_return``) is ranked
    among all trials on the complementary blocks.  Vectorized: each block's sums are computed
    once and every combination's metric is one matrix product.
    """
    m = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0)
    if m.ndim != 2:
        raise ValueError(f"returns must be 2-D (bars x trials), got shape {m.shape}")
    if metric not in _PBO_METRICS:
        raise ValueError(f"unknown PBO metric {metric!r}; use one of {', '.join(_PBO_METRICS)}")
    n_splits = int(n_splits)
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even number >= 2, got {n_splits}")
    t, n = m.shape
    if n < 2:
        raise ValueError(f"PBO needs at least 2 trials, got {n}")
    if t // n_splits < 2:
        raise ValueError(f"PBO needs at least 2 bars per block: {t} bars for {n_splits} blocks")
    m = m[t % n_splits:]
    s1, s2, mu, rows = _block_sums(m, n_splits)
    combos = np.array(list(combinations(range(n_splits), n_splits // 2)))
    ind = np.zeros((len(combos), n_splits))
    ind[np.repeat(np.arange(len(combos)), combos.shape[1]), combos.ravel()] = 1.0
    count = rows * n_splits // 2
    batch = max(1, _PBO_BATCH_ELEMENTS // n)
    best, is_perf, oos_perf, omega = [], [], [], []
    for start in range(0, len(combos), batch):
        ii = ind[start:start + batch]
        r_is = _metric_of(ii, s1, s2, mu, count, metric)
        r_oos = _metric_of(1.0 - ii, s1, s2, mu, count, metric)
        star = np.argmax(r_is, axis=1)
        rows_ = np.arange(len(ii))
        v = r_oos[rows_, star]
        less = (r_oos < v[:, None]).sum(axis=1)
        equal = (r_oos == v[:, None]).sum(axis=1)
        rank = less + (equal + 1) / 2.0  # average rank, 1 = worst
        best.append(star)
        is_perf.append(r_is[rows_, star])
        oos_perf.append(v)
        omega.append(rank / (n + 1))
    best_a, is_a, oos_a, om = (np.concatenate(x) for x in (best, is_perf, oos_perf, omega))
    logit = np.log(om / (1.0 - om))
    if np.ptp(is_a) > 0:
        slope, intercept, r, _, _ = stats.linregress(is_a, oos_a)
        r2 = r * r
    else:
        slope, intercept, r2 = float("nan"), float(np.mean(oos_a)), float("nan")
    return PBOResult(
        pbo=float(np.mean(logit <= 0)), n_splits=n_splits, n_trials=n, n_obs=int(m.shape[0]), metric=metric,
        best=best_a, is_performance=is_a, oos_performance=oos_a, omega=om, logit=logit,
        prob_oos_loss=float(np.mean(oos_a < 0)), degradation_slope=float(slope),
        degradation_intercept=float(intercept), degradation_r2=float(r2), blocks=combos.tolist(),
    )


# ================================================================== resampling
def held_segments(positions) -> np.ndarray:
    """Start index (into the return series) of each segment of bars during which the held
    position stays the same: the position decided at the close of bar t is held over bar t+1,
    so a trade's returns are one segment and the flat stretches between trades are others.

    ``positions``: (bars,), (bars x symbols) or (bars x symbols x 1) positions decided at each
    close (a change in any symbol starts a new segment).

    >>> held_segments([0, 1, 1, 0, 0, -1]).tolist()  # the last decision is held after the end
    [0, 2, 4]
    """
    p = np.asarray(positions, dtype=np.float64)
    p = np.nan_to_num(p.reshape(p.shape[0], -1), nan=0.0)
    held = np.vstack([np.zeros((1, p.shape[1])), p[:-1]])  # held over bar t
    change = np.any(held[1:] != held[:-1], axis=1)
    return np.concatenate([[0], np.flatnonzero(change) + 1])


def _segment_indices(starts: np.ndarray, n: int, n_sims: int, horizon: int,
                     rng: np.random.Generator) -> np.ndarray:
    """(n_sims x horizon) indices built from whole segments drawn with replacement."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.diff(np.append(starts, n))
    k = int(math.ceil(horizon / lengths.mean() * 1.5)) + 8
    draws = rng.integers(0, len(starts), size=(n_sims, k))
    while True:
        covered = lengths[draws].sum(axis=1)
        if covered.min() >= horizon:
            break
        draws = np.hstack([draws, rng.integers(0, len(starts), size=(n_sims, k))])
    seg_len = lengths[draws]  # (sims, K)
    ends = np.cumsum(seg_len, axis=1)  # exclusive end of each drawn segment in the path
    t = np.arange(horizon)
    # which drawn segment covers bar t of each path: searchsorted row by row, vectorized
    # by offsetting each row's (increasing) ends into one increasing array
    big = int(ends[:, -1].max()) + 1
    flat_ends = (ends + (np.arange(n_sims) * big)[:, None]).ravel()
    pos = np.searchsorted(flat_ends, (t[None, :] + (np.arange(n_sims) * big)[:, None]).ravel(), side="right")
    seg = pos.reshape(n_sims, horizon) - (np.arange(n_sims) * draws.shape[1])[:, None]
    rows = np.arange(n_sims)[:, None]
    seg_start_in_path = ends[rows, seg] - seg_len[rows, seg]
    return starts[draws[rows, seg]] + (t[None, :] - seg_start_in_path)


def resampled_indices(n: int, n_sims: int, seed: int = 42, block_size: int = 1, method: str = "stationary",
                      segments: np.ndarray | None = None, horizon: int | None = None,
                      batch_elements: int = 64_000) -> Iterator[np.ndarray]:
    """Batches of (sims x horizon) indices into a series of length ``n``, seeded.

    ``segments`` (start indices, see :func:`held_segments`): whole trades and flat stretches
    are drawn with replacement; otherwise blocks of ``block_size`` bars (``stationary``:
    geometric lengths with that mean, Politis-Romano; ``fixed``: exactly that length; 1 = the
    iid bootstrap).  Batch sizes depend only on the horizon, so the draws depend only on the
    inputs and the seed."""
    horizon = int(horizon or n)
    rng = np.random.default_rng(seed)
    batch = max(1, batch_elements // max(horizon, 1))
    done = 0
    while done < n_sims:
        m = min(batch, n_sims - done)
        if segments is not None:
            yield _segment_indices(segments, n, m, horizon, rng)
        else:
            yield bootstrap_indices(n, m, horizon, rng, block_size=block_size, method=method)
        done += m


@dataclass
class MonteCarloResult:
    simulations: pd.DataFrame  #: one row per simulated path: sim, total_return, max_drawdown, sharpe_ratio
    summary: pd.DataFrame  #: one row per statistic: observed, mean, std, median, ci_low, ci_high, prob_below_zero
    confidence_level: float
    resample: str
    block_size: int
    seed: int


MC_STATISTICS = ("sharpe_ratio", "max_drawdown", "total_return")


def monte_carlo(returns, n_simulations: int = 1000, confidence_level: float = 0.95, seed: int = 42,
                block_size: int = 5, resample: str = "returns", positions=None, method: str = "stationary",
                periods_per_year: int = TRADING_DAYS) -> MonteCarloResult:
    """Distributions and confidence intervals of the Sharpe ratio, maximum drawdown and final
    (total) return of paths resampled from ``returns``.

    ``resample="returns"``: a block bootstrap of the bars (``block_size`` mean block length,
    keeping short-range autocorrelation; 1 = iid); ``resample="trades"``: whole trades and the
    flat stretches between them are drawn with replacement (``positions`` required, see
    :func:`held_segments`).  Paths have the length of the series; statistics follow the
    conventions of ``metrics.compute_metrics``.  The interval is the central
    ``confidence_level`` percentile interval.
    """
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64).ravel(), nan=0.0)
    n = r.size
    if n < 2:
        raise ValueError(f"Monte Carlo needs at least 2 returns, got {n}")
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    if resample not in ("returns", "trades"):
        raise ValueError(f"resample must be 'returns' or 'trades', got {resample!r}")
    segments = None
    if resample == "trades":
        if positions is None:
            raise ValueError("resample='trades' needs the positions")
        if len(positions) != n:
            raise ValueError(f"positions have {len(positions)} bars for {n} returns")
        segments = held_segments(positions)
    parts: dict[str, list] = {k: [] for k in MC_STATISTICS}
    for idx in resampled_indices(n, int(n_simulations), seed, block_size, method, segments):
        for k, v in _path_stats(r[idx], periods_per_year).items():
            parts[k].append(v)
    sims = pd.DataFrame({"sim": np.arange(int(n_simulations)),
                         **{k: np.concatenate(parts[k]) for k in MC_STATISTICS}})
    observed = _path_stats(r[None, :], periods_per_year)
    lo, hi = (1 - confidence_level) / 2, (1 + confidence_level) / 2
    rows = []
    for k in MC_STATISTICS:
        v = sims[k].to_numpy()
        v = v[np.isfinite(v)]
        rows.append({"statistic": k, "observed": float(observed[k][0]), "mean": float(v.mean()),
                     "std": float(v.std(ddof=1)) if v.size > 1 else float("nan"), "median": float(np.median(v)),
                     "ci_low": float(np.quantile(v, lo)), "ci_high": float(np.quantile(v, hi)),
                     "prob_below_zero": float(np.mean(v < 0))})
    return MonteCarloResult(sims, pd.DataFrame(rows), float(confidence_level), resample, int(block_size), int(seed))


def _resampled_sums(r: np.ndarray, n_sims: int, rng: np.random.Generator, block_size: int, method: str,
                    batch_elements: int = 64_000) -> tuple[np.ndarray, np.ndarray]:
    """Sums of the resampled values and of their squares, per path of ``len(r)`` bars, without
    materializing the paths: a block bootstrap path is a sequence of (circular) blocks, and a
    block's sums are differences of prefix sums.  Blocks have geometric lengths with mean
    ``block_size`` (``stationary``, Politis-Romano) or exactly ``block_size`` (``fixed``), and
    start uniformly at random; the last block is cut at the path's end."""
    n = r.size
    c1 = np.concatenate([[0.0], np.cumsum(np.concatenate([r, r]))])
    c2 = np.concatenate([[0.0], np.cumsum(np.concatenate([r, r]) ** 2)])
    k = int(math.ceil(n / block_size * 1.5)) + 8 if block_size > 1 else n
    batch = max(1, batch_elements // k)
    s1, s2 = [], []
    done = 0
    while done < n_sims:
        m = min(batch, n_sims - done)
        if block_size == 1:
            lengths = np.ones((m, n), dtype=np.int64)
        elif method == "fixed":
            lengths = np.full((m, k), block_size, dtype=np.int64)
        elif method == "stationary":
            lengths = rng.geometric(1.0 / block_size, size=(m, k))
            while (lengths.sum(axis=1) < n).any():  # rare: draw more blocks for every path
                lengths = np.hstack([lengths, rng.geometric(1.0 / block_size, size=(m, k))])
        else:
            raise ValueError(f"unknown bootstrap method {method!r}; use 'stationary' or 'fixed'")
        ends = np.minimum(np.cumsum(lengths, axis=1), n)
        lengths = np.diff(np.concatenate([np.zeros((m, 1), dtype=np.int64), ends], axis=1), axis=1)
        starts = rng.integers(0, n, size=lengths.shape)
        stop = starts + lengths  # <= 2n - 1: inside the doubled series
        s1.append((c1[stop] - c1[starts]).sum(axis=1))
        s2.append((c2[stop] - c2[starts]).sum(axis=1))
        done += m
    return np.concatenate(s1), np.concatenate(s2)


def bootstrap_sharpe(returns, n_bootstrap: int = 10_000, confidence_level: float = 0.95, seed: int = 42,
                     block_size: int = 5, method: str = "stationary",
                     periods_per_year: int = TRADING_DAYS) -> dict[str, float]:
    """Bootstrap confidence interval of the annualized Sharpe ratio (percentile interval of
    ``n_bootstrap`` block-bootstrap resamples of the series' length), with the analytic
    interval from the non-normal standard error for comparison.  Returns ``sharpe_ratio``,
    ``ci_low``, ``ci_high``, ``std_error`` (of the bootstrap), ``analytic_ci_low``/``high``."""
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64).ravel(), nan=0.0)
    n = r.size
    mom = sharpe_moments(r)
    ann = math.sqrt(periods_per_year)
    mu = r.mean()
    s1, s2 = _resampled_sums(r - mu, int(n_bootstrap), np.random.default_rng(seed), int(block_size), method)
    mean = s1 / n
    var = np.maximum(s2 - n * mean * mean, 0.0) / (n - 1)
    sd = np.sqrt(var)
    v = np.where(sd > 0, (mean + mu) / np.where(sd > 0, sd, 1.0), 0.0) * ann
    lo, hi = (1 - confidence_level) / 2, (1 + confidence_level) / 2
    se = sharpe_standard_error(mom.sr, n, mom.skew, mom.kurtosis) * ann
    z = float(stats.norm.ppf(hi))
    sharpe = mom.annual(periods_per_year)
    return {"sharpe_ratio": sharpe, "ci_low": float(np.quantile(v, lo)), "ci_high": float(np.quantile(v, hi)),
            "std_error": float(v.std(ddof=1)), "analytic_ci_low": sharpe - z * se, "analytic_ci_high": sharpe + z * se}


def trade_win_rate(returns, positions) -> tuple[float, int]:
    """Share of trades (segments with a non-zero held position) whose compounded return is
    positive, and the number of trades."""
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64).ravel(), nan=0.0)
    p = np.nan_to_num(np.asarray(positions, dtype=np.float64), nan=0.0).reshape(len(r), -1)
    starts = held_segments(p)
    held = np.vstack([np.zeros((1, p.shape[1])), p[:-1]])
    in_pos = np.any(held[starts] != 0, axis=1)
    seg_ret = np.expm1(np.add.reduceat(np.log1p(np.maximum(r, -1 + 1e-12)), starts))
    trades = seg_ret[in_pos]
    if trades.size == 0:
        return float("nan"), 0
    return float(np.mean(trades > 0)), int(trades.size)


# ================================================================== verdict
@dataclass(frozen=True)
class Criterion:
    """``statistic`` must be ``>=`` (``op='min'``) or ``<=`` (``op='max'``) ``threshold``."""

    name: str
    statistic: str
    op: str
    threshold: float

    def passes(self, value) -> bool:
        if value is None or not np.isfinite(value):
            return False
        return bool(value >= self.threshold) if self.op == "min" else bool(value <= self.threshold)

    @property
    def text(self) -> str:
        return f"{self.statistic} {'>=' if self.op == 'min' else '<='} {self.threshold:g}"


def judge(values: dict, criteria: list[Criterion]) -> tuple[bool, pd.DataFrame]:
    """The verdict (every criterion passes; a statistic that could not be computed fails) and
    one row per criterion: criterion, statistic, value, rule, threshold, passed."""
    rows = []
    for c in criteria:
        v = values.get(c.statistic)
        v = float(v) if v is not None else float("nan")
        rows.append({"criterion": c.name, "statistic": c.statistic, "value": v, "rule": c.text,
                     "threshold": c.threshold, "passed": c.passes(v)})
    table = pd.DataFrame(rows, columns=["criterion", "statistic", "value", "rule", "threshold", "passed"])
    return bool(table["passed"].all()) if len(table) else True, table
