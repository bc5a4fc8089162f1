"""Markets for the "is it luck?" experiment: one with no edge at all, one with a planted edge.

* :func:`random_walk_bars` -- every symbol a driftless geometric random walk (iid normal log
  returns): no strategy has a true edge, so whatever the best of a grid earns is luck.
* :func:`planted_edge_bars` -- the same noise plus a persistent trend: the drift is ``+edge``
  or ``-edge`` per day and flips with probability ``1 / trend_days`` per day (a two-state
  Markov chain with mean duration ``trend_days``), so a trend-following rule has a true,
  positive Sharpe ratio.

Both return the platform's long bar layout (date, symbol, open, high, low, close, volume) on
weekdays, deterministic in ``seed``, with valid OHLC relations.

>>> bars = random_walk_bars(["AAA"], "2020-01-01", "2020-03-31", seed=1)
>>> list(bars.columns), len(bars)
(['date', 'symbol', 'open', 'high', 'low', 'close', 'volume'], 65)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["random_walk_bars", "planted_edge_bars", "bars_from_log_returns"]


def bars_from_log_returns(logret: np.ndarray, dates: pd.DatetimeIndex, symbols, rng: np.random.Generator,
                          daily_vol: float) -> pd.DataFrame:
    """OHLCV bars whose closes follow ``logret`` (bars x symbols) from a price of 100."""
    n, k = logret.shape
    close = 100.0 * np.exp(np.cumsum(logret, axis=0))
    prev = np.vstack([np.full((1, k), 100.0), close[:-1]])
    open_ = prev * np.exp(0.25 * daily_vol * rng.standard_normal((n, k)))
    high = np.maximum(open_, close) * np.exp(0.5 * daily_vol * np.abs(rng.standard_normal((n, k))))
    low = np.minimum(open_, close) * np.exp(-0.5 * daily_vol * np.abs(rng.standard_normal((n, k))))
    volume = np.round(1e6 * np.exp(0.3 * rng.standard_normal((n, k))))
    frames = [pd.DataFrame({"date": dates, "symbol": str(s), "open": open_[:, j], "high": high[:, j],
                            "low": low[:, j], "close": close[:, j], "volume": volume[:, j]})
              for j, s in enumerate(symbols)]
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)


def random_walk_bars(symbols, start, end, seed: int = 0, daily_vol: float = 0.01) -> pd.DataFrame:
    """Driftless random walks: log returns iid N(0, daily_vol^2) for each symbol."""
    dates = pd.bdate_range(pd.Timestamp(start), pd.Timestamp(end))
    symbols = list(symbols)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    logret = daily_vol * rng.standard_normal((len(dates), len(symbols)))
    return bars_from_log_returns(logret, dates, symbols, rng, daily_vol)


def planted_edge_bars(symbols, start, end, seed: int = 0, daily_vol: float = 0.01, edge: float = 0.004,
                      trend_days: float = 50.0) -> pd.DataFrame:
    """Random walks plus a persistent trend of +/- ``edge`` per day (its sign flips with
    probability ``1 / trend_days`` each day, independently per symbol)."""
    dates = pd.bdate_range(pd.Timestamp(start), pd.Timestamp(end))
    symbols = list(symbols)
    n, k = len(dates), len(symbols)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 13]))
    flips = rng.random((n, k)) < 1.0 / float(trend_days)
    first = np.where(rng.random((1, k)) < 0.5, 1.0, -1.0)
    sign = first * np.where(np.cumsum(flips, axis=0) % 2 == 0, 1.0, -1.0)
    logret = edge * sign + daily_vol * rng.standard_normal((n, k))
    return bars_from_log_returns(logret, dates, symbols, rng, daily_vol)
