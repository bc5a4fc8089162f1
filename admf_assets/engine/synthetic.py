"""Deterministic synthetic daily OHLCV market with a hidden Markov regime process.

The market has two regimes that switch with a known transition matrix:

* ``calm_trend``   - low volatility, positive drift, mildly positive return autocorrelation
* ``volatile_chop`` - high volatility, negative drift, negative autocorrelation (choppy)

Every symbol loads on one common market factor (so symbols are correlated, more so in
the volatile regime) plus its own idiosyncratic noise.  The whole history from
``ORIGIN`` to ``HORIZON`` is generated in one pass, so the bars of any given date are the
same whatever date range is asked for.  The regime path depends only on the seed; each
symbol's idiosyncratic stream depends only on (seed, symbol), so adding a symbol to the
universe never changes another symbol's prices.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
import pandas as pd

ORIGIN = pd.Timestamp("2000-01-03")
HORIZON = pd.Timestamp("2035-12-31")

REGIME_NAMES = ("calm_trend", "volatile_chop")
#: P[i, j] = probability of moving from regime i today to regime j tomorrow.
TRANSITION_MATRIX = np.array([[0.99, 0.01], [0.03, 0.97]])

# Per-regime market factor parameters (daily log returns).
_MU = np.array([0.0006, -0.0004])
_SIGMA = np.array([0.007, 0.020])
_PHI = np.array([0.08, -0.15])  # AR(1) coefficient of the factor return
_IDIO = np.array([0.006, 0.011])  # idiosyncratic volatility

DEFAULT_SYMBOLS = (
    "SPY", "QQQ", "IWM", "DIA", "TLT", "GLD", "VXX", "EFA", "EEM", "XLF",
    "XLK", "XLE", "XLV", "XLY", "XLP", "XLI", "XLU", "XLB", "HYG", "LQD",
)


def trading_days(start=ORIGIN, end=HORIZON) -> pd.DatetimeIndex:
    """Weekdays (Mon-Fri); the synthetic market has no holidays."""
    return pd.bdate_range(start, end, name="date")


def stationary_distribution(p: np.ndarray = TRANSITION_MATRIX) -> np.ndarray:
    vals, vecs = np.linalg.eig(p.T)
    v = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
    return v / v.sum()


@lru_cache(maxsize=8)
def _market(seed: int) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Regime path and market factor log returns over the whole horizon."""
    days = trading_days()
    n = len(days)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    u = rng.random(n)
    eps = rng.standard_normal(n)
    regimes = np.empty(n, dtype=np.int8)
    stat = stationary_distribution()
    state = 0 if u[0] < stat[0] else 1
    factor = np.empty(n)
    prev = 0.0
    for t in range(n):  # a Markov chain and an AR(1) are inherently sequential (9k steps)
        if t > 0:
            state = 0 if u[t] < TRANSITION_MATRIX[state, 0] else 1
        regimes[t] = state
        prev = _MU[state] + _PHI[state] * (prev - _MU[state]) + _SIGMA[state] * eps[t]
        factor[t] = prev
    return days, regimes, factor


@lru_cache(maxsize=256)
def _symbol_bars(seed: int, symbol: str) -> pd.DataFrame:
    days, regimes, factor = _market(seed)
    n = len(days)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, zlib.crc32(symbol.encode())]))
    beta = rng.uniform(0.5, 1.4)
    alpha = rng.normal(0.0, 0.0001)
    p0 = float(np.exp(rng.uniform(np.log(20.0), np.log(400.0))))
    base_volume = float(np.exp(rng.uniform(np.log(5e5), np.log(5e7))))
    idio = _IDIO[regimes] * rng.standard_normal(n)
    logret = alpha + beta * factor + idio
    close = p0 * np.exp(np.cumsum(logret))
    prev_close = np.concatenate([[p0], close[:-1]])
    sig = _SIGMA[regimes] * beta + _IDIO[regimes]
    gap = 0.25 * sig * rng.standard_normal(n)
    open_ = prev_close * np.exp(gap)
    hi_ext = np.abs(rng.standard_normal(n)) * 0.5 * sig
    lo_ext = np.abs(rng.standard_normal(n)) * 0.5 * sig
    high = np.maximum(open_, close) * np.exp(hi_ext)
    low = np.minimum(open_, close) * np.exp(-lo_ext)
    vol_mult = np.exp(0.3 * rng.standard_normal(n)) * (1.0 + 4.0 * np.abs(logret) / sig)
    volume = np.round(base_volume * vol_mult * np.where(regimes == 1, 1.5, 1.0))
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=days,
    )


def synthetic_bars(symbols, start, end, seed: int = 42) -> pd.DataFrame:
    """Long table of daily bars: date, symbol, open, high, low, close, volume."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if start < ORIGIN or end > HORIZON:
        raise ValueError(
            f"synthetic data covers {ORIGIN.date()}..{HORIZON.date()}; "
            f"asked for {start.date()}..{end.date()}"
        )
    frames = []
    for sym in symbols:
        bars = _symbol_bars(seed, str(sym)).loc[start:end]
        frames.append(bars.reset_index().assign(symbol=str(sym)))
    if not frames:
        return empty_bars()
    out = pd.concat(frames, ignore_index=True)
    out = out[["date", "symbol", "open", "high", "low", "close", "volume"]]
    return out.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)


def synthetic_regimes(start, end, seed: int = 42) -> pd.Series:
    """The true hidden regime label of each trading day (for measuring detectors)."""
    days, regimes, _ = _market(seed)
    s = pd.Series(np.asarray(REGIME_NAMES)[regimes], index=days, name="regime")
    return s.loc[pd.Timestamp(start): pd.Timestamp(end)]


def empty_bars() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.Series([], dtype="datetime64[ns]"),
            "symbol": pd.Series([], dtype="object"),
            **{c: pd.Series([], dtype="float64") for c in ("open", "high", "low", "close", "volume")},
        }
    )


def truth_for(close: pd.DataFrame, seed: int = 42) -> pd.Series | None:
    """The true regimes of ``close`` (dates x symbols) when it is this seed's synthetic market
    (every close matches the generator to 1e-9), else None -- so a detector's accuracy is
    reported only when it is really known."""
    if close.empty:
        return None
    start, end = close.index[0], close.index[-1]
    if start < ORIGIN or end > HORIZON:
        return None
    for sym in close.columns:
        ref = _symbol_bars(seed, str(sym))["close"].reindex(close.index)
        got = close[sym].to_numpy(dtype=np.float64)
        ok = np.isfinite(got)
        if not ok.any() or not np.allclose(got[ok], ref.to_numpy()[ok], rtol=1e-9, atol=0.0):
            return None
    return synthetic_regimes(start, end, seed).reindex(close.index)
