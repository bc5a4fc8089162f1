"""Causal features per date and symbol, computed for whole (dates x symbols) frames at once.

Every value at date t uses bars up to and including t only (rolling windows ending at t), so
a feature table can feed any phase without leaking the future.  A window of ``L`` bars needs
``L`` observations: earlier rows are NaN (the warm-up), never partially filled.

Feature families (``FEATURES``), one column per family and lookback ``L``:

* ``momentum``    ``momentum_L``    = close[t] / close[t-L] - 1
* ``volatility``  ``volatility_L``  = annualized std (ddof=1) of the last L daily returns
* ``volume``      ``volume_z_L``    = (volume[t] - mean of the last L volumes) / their std
* ``correlation`` ``correlation_L`` = Pearson correlation of the symbol's last L daily returns
  with the equal-weighted mean return of the universe
* ``trend``       ``trend_L``       = close[t] / SMA_L[t] - 1

>>> import numpy as np, pandas as pd
>>> idx = pd.bdate_range("2024-01-01", periods=6)
>>> close = pd.DataFrame({"A": [10., 11, 12, 11, 13, 14]}, index=idx)
>>> f = compute_features(close, None, ["momentum"], [2])
>>> f["momentum_2"].round(4).tolist()
[nan, nan, 0.2, 0.0, 0.0833, 0.2727]
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .metrics import TRADING_DAYS

__all__ = ["FEATURES", "FEATURE_ALIASES", "feature_columns", "compute_features"]

#: family -> (description, smallest lookback it accepts)
FEATURES: dict[str, tuple[str, int]] = {
    "momentum": ("return over the lookback: close[t] / close[t-L] - 1", 1),
    "volatility": ("annualized standard deviation of the last L daily returns", 2),
    "volume": ("z-score of the volume against its last L values", 2),
    "correlation": ("correlation of the last L daily returns with the universe's mean return", 3),
    "trend": ("distance of the close from its L-bar simple moving average", 1),
}
FEATURE_ALIASES = {"returns": "momentum", "return": "momentum", "vol": "volatility", "volatility_regime": "volatility",
                   "volume_zscore": "volume", "correlations": "correlation", "sma": "trend", "trend_strength": "trend"}

_PREFIX = {"momentum": "momentum", "volatility": "volatility", "volume": "volume_z", "correlation": "correlation",
           "trend": "trend"}


def feature_columns(features: Iterable[str], lookbacks: Iterable[int]) -> list[str]:
    """Column names in output order (family-major, then lookback)."""
    return [f"{_PREFIX[f]}_{int(L)}" for f in features for L in lookbacks]


def _rolling_std(x: pd.DataFrame, window: int) -> pd.DataFrame:
    return x.rolling(window, min_periods=window).std(ddof=1)


def compute_features(close: pd.DataFrame, volume: pd.DataFrame | None, features: Sequence[str],
                     lookbacks: Sequence[int], periods_per_year: int = TRADING_DAYS) -> pd.DataFrame:
    """Long table (date, symbol, one column per feature) from wide close/volume frames
    (DatetimeIndex x symbols, sorted; missing bars NaN).  ``volume`` is needed for the
    ``volume`` family only."""
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature families {unknown}; known: {', '.join(FEATURES)}")
    close = close.sort_index()
    rets = close.pct_change(fill_method=None)
    market = rets.mean(axis=1, skipna=True)
    cols: dict[str, pd.DataFrame] = {}
    for fam in features:
        for L in lookbacks:
            L = int(L)
            if L < FEATURES[fam][1]:
                raise ValueError(f"feature {fam!r} needs a lookback of at least {FEATURES[fam][1]} (got {L})")
            name = f"{_PREFIX[fam]}_{L}"
            if fam == "momentum":
                cols[name] = close / close.shift(L) - 1.0
            elif fam == "volatility":
                cols[name] = _rolling_std(rets, L) * np.sqrt(periods_per_year)
            elif fam == "volume":
                if volume is None:
                    raise ValueError("the volume feature needs volume data")
                v = volume.reindex(index=close.index, columns=close.columns).astype(float)
                mean = v.rolling(L, min_periods=L).mean()
                sd = _rolling_std(v, L)
                cols[name] = (v - mean) / sd.where(sd > 0)
            elif fam == "correlation":
                cols[name] = rets.rolling(L, min_periods=L).corr(market)
            else:  # trend
                cols[name] = close / close.rolling(L, min_periods=L).mean() - 1.0
    out = pd.DataFrame({"date": np.repeat(close.index.to_numpy(), close.shape[1]),
                        "symbol": np.tile(np.asarray(close.columns, dtype=object), close.shape[0])})
    for name, frame in cols.items():
        vals = frame.reindex(columns=close.columns).to_numpy(dtype=np.float64)
        vals[~np.isfinite(vals)] = np.nan
        out[name] = vals.reshape(-1)
    present = ~np.isnan(close.to_numpy(dtype=np.float64)).reshape(-1)
    return out[present].reset_index(drop=True)
