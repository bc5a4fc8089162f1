"""Real daily market data shipped with the ``arch`` package: the S&P 500 and the NASDAQ
composite, 1999-01-04 to 2018-12-31 (5,031 trading days each, exchange holidays absent; the
NCSA licence of ``arch``).  Pure pandas; no Dagster.

>>> bars = sample_bars(["SP500"], "2008-09-15", "2008-09-19")
>>> bars[["date", "symbol", "close"]].round(2).to_dict("records")[0]
{'date': Timestamp('2008-09-15 00:00:00'), 'symbol': 'SP500', 'close': 1192.7}
"""

from __future__ import annotations

import importlib
from functools import lru_cache

import pandas as pd

from .marketdata import BAR_COLUMNS, MarketDataError

__all__ = ["SAMPLE_SYMBOLS", "SAMPLE_FIRST", "SAMPLE_LAST", "SAMPLE_CALENDAR_START", "sample_bars"]

#: symbol -> the ``arch.data`` module holding it
SAMPLE_SYMBOLS = {"SP500": "arch.data.sp500", "NASDAQ": "arch.data.nasdaq"}
SAMPLE_FIRST = pd.Timestamp("1999-01-04")
SAMPLE_LAST = pd.Timestamp("2018-12-31")
#: where the market calendar starts by default with this source (the first weekday of 1999)
SAMPLE_CALENDAR_START = "1999-01-01"


@lru_cache(maxsize=None)
def _load(symbol: str) -> pd.DataFrame:
    """One symbol's bars in the long layout (BAR_COLUMNS); ``Adj Close`` equals ``Close`` for
    both indices (checked in the tests), so the close is used as is."""
    raw = importlib.import_module(SAMPLE_SYMBOLS[symbol]).load()
    out = pd.DataFrame({
        "date": pd.DatetimeIndex(raw.index).normalize(),
        "symbol": symbol,
        "open": raw["Open"].to_numpy("float64"),
        "high": raw["High"].to_numpy("float64"),
        "low": raw["Low"].to_numpy("float64"),
        "close": raw["Close"].to_numpy("float64"),
        "volume": raw["Volume"].to_numpy("float64"),
    })
    return out[BAR_COLUMNS]


def sample_bars(symbols, start, end) -> pd.DataFrame:
    """Long table (date, symbol, open, high, low, close, volume) of the sample ``symbols`` with
    ``start <= date <= end``, sorted by date and symbol.

    Raises :class:`MarketDataError` (one line) for a symbol the sample does not have or a
    range reaching outside 1999-01-04..2018-12-31 (an empty weekday there would look like an
    exchange holiday).
    """
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    wanted = [str(s).upper() for s in symbols]
    unknown = [s for s in wanted if s not in SAMPLE_SYMBOLS]
    if unknown:
        raise MarketDataError(
            f"the sample market source has the symbols {', '.join(SAMPLE_SYMBOLS)}; "
            f"not {', '.join(unknown)} (check ADMF_SYMBOLS)")
    # weekends and the New Year holidays around the bounds hold no bars anyway
    if start < SAMPLE_FIRST - pd.Timedelta(days=4) or end > SAMPLE_LAST + pd.Timedelta(days=1):
        raise MarketDataError(
            f"the sample market data covers {SAMPLE_FIRST.date()}..{SAMPLE_LAST.date()}; "
            f"asked for {start.date()}..{end.date()}")
    frames = [b[(b["date"] >= start) & (b["date"] <= end)] for b in map(_load, wanted)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=BAR_COLUMNS)
    return out.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
