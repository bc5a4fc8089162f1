"""Market data: reading user files, cleaning bars, and the quality rules behind the checks.

Pure pandas; no Dagster.  Every error a user's file can cause is a :class:`MarketDataError`
whose message names the file and the column and/or row.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

BAR_COLUMNS = ["date", "symbol", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
_REQUIRED = ["date", "open", "high", "low", "close", "volume"]
_ADJ_NAMES = {"adj close", "adj_close", "adjclose", "adj. close", "adjusted close", "adjusted_close"}
FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
#: the market-data sources (ADMF_MARKET_SOURCE; a workflow's ``data.source``)
SOURCES = ("synthetic", "sample", "files")
#: runs of missing weekdays longer than this (a week of trading days) are flagged as gaps
GAP_WEEKDAYS = 5


class MarketDataError(ValueError):
    """A problem with market data a user supplied; the message is meant to be shown as is."""


def last_market_day(today=None) -> pd.Timestamp:
    """The last complete weekday of the calendar: the weekday before ``today`` (UTC date by
    default), the newest day market data can exist for."""
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() if today is None else pd.Timestamp(today)
    return pd.Timestamp(today.normalize()) - pd.offsets.BDay(1)


# --------------------------------------------------------------------------- files

def symbol_files(directory: str | os.PathLike) -> dict[str, Path]:
    """Map SYMBOL -> file for every CSV/Parquet file in ``directory`` (one file per symbol)."""
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise MarketDataError(f"{d}: market data directory does not exist")
    out: dict[str, Path] = {}
    for p in sorted(d.iterdir()):
        name = p.name
        for suf in FILE_SUFFIXES:
            if name.lower().endswith(suf):
                sym = name[: -len(suf)].upper()
                if sym in out:
                    raise MarketDataError(f"{p}: second file for symbol {sym} (first: {out[sym].name})")
                out[sym] = p
                break
    return out


def read_symbol_file(path: str | os.PathLike, symbol: str | None = None) -> pd.DataFrame:
    """Read one symbol's daily bars; returns the standard long layout (BAR_COLUMNS).

    Column names are matched case-insensitively; when an adjusted close is present, the close
    is replaced by it and open/high/low are scaled by the same factor.
    """
    path = Path(path)
    symbol = symbol or path.name.split(".")[0].upper()
    try:
        if path.name.lower().endswith((".parquet", ".pq")):
            raw = pd.read_parquet(path)
            raw = raw.reset_index() if not isinstance(raw.index, pd.RangeIndex) else raw
            raw = raw.astype({c: "object" for c in raw.columns})
            header_lines = 0
        else:
            raw = pd.read_csv(path, dtype=str, skipinitialspace=True)
            header_lines = 1
    except pd.errors.EmptyDataError:
        raise MarketDataError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise MarketDataError(f"{path}: cannot read file: {exc}") from None
    if raw.empty:
        raise MarketDataError(f"{path}: file has a header but no rows")

    lookup = {str(c).strip().lower(): c for c in raw.columns}
    missing = [c for c in _REQUIRED if c not in lookup]
    if missing:
        found = ", ".join(str(c) for c in raw.columns)
        names = ", ".join(m.capitalize() for m in missing)
        raise MarketDataError(f"{path}: missing column {names} (found: {found})")

    def where(i: int) -> str:
        return f"row {i + 1}" + (f" (line {i + 1 + header_lines})" if header_lines else "")

    out = pd.DataFrame(index=raw.index)
    date_col = lookup["date"]
    dates_raw = raw[date_col]
    dates = parse_dates(dates_raw)
    bad = dates.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise MarketDataError(
            f"{path}: {where(i)}, column '{date_col}': cannot parse {dates_raw.iloc[i]!r} as a date"
        )
    out["date"] = dates.dt.normalize()

    numeric = {c: lookup[c] for c in ["open", "high", "low", "close", "volume"]}
    adj_col = next((lookup[k] for k in lookup if k in _ADJ_NAMES), None)
    if adj_col is not None:
        numeric["adj_close"] = adj_col
    for name, col in numeric.items():
        text = raw[col]
        values = pd.to_numeric(text, errors="coerce")
        blank = text.isna() | (text.astype(str).str.strip() == "")
        bad = values.isna() & ~blank
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise MarketDataError(
                f"{path}: {where(i)}, column '{col}': {text.iloc[i]!r} is not a number"
            )
        out[name] = values.astype("float64")

    if adj_col is not None:
        factor = (out["adj_close"] / out["close"]).where(out["close"] > 0)
        factor = factor.fillna(1.0)
        for c in ("open", "high", "low"):
            out[c] = out[c] * factor
        out["close"] = out["adj_close"].where(out["adj_close"].notna(), out["close"])
        out = out.drop(columns="adj_close")
    out["symbol"] = symbol
    return out[BAR_COLUMNS]


_OFFSET = re.compile(r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<hh>\d{2}):?(?P<mm>\d{2}))$")


def parse_dates(values: pd.Series) -> pd.Series:
    """Timestamps as the wall-clock time where each bar was recorded (naive datetime64; NaT
    where a value cannot be parsed).

    A time-zone offset is dropped, each row by its own: ``2021-03-12T16:00:00-05:00`` and
    ``2021-03-15T16:00:00-04:00`` (a daylight-saving change inside the file) are the 12th and
    the 15th at 16:00, so a daily bar keeps the exchange date it was written with; converting
    to UTC would move bars recorded late in the day onto the next date.  Mixed offsets, mixed
    formats and ``Z`` suffixes are accepted.

    >>> parse_dates(pd.Series(["2021-03-12T16:00-05:00", "2021-03-15T16:00-04:00"])).dt.day.tolist()
    [12, 15]
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)  # pandas: "mixed time zones"
        dates = pd.to_datetime(values, errors="coerce")
    if pd.api.types.is_datetime64_any_dtype(dates):
        if getattr(dates.dt, "tz", None) is not None:
            dates = dates.dt.tz_localize(None)
        blank = values.isna()
        if not (dates.isna() & ~blank).any():
            return dates
    # mixed offsets (object dtype) or mixed formats: parse every row on its own, as UTC, then
    # shift each row back by the offset it was written with
    text = values.astype("string").str.strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        utc = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    off = text.str.extract(_OFFSET.pattern)
    sign = np.where((off["sign"] == "-").fillna(False).to_numpy(dtype=bool), -1, 1)
    minutes = (pd.to_numeric(off["hh"], errors="coerce").fillna(0).to_numpy() * 60
               + pd.to_numeric(off["mm"], errors="coerce").fillna(0).to_numpy()) * sign
    return utc.dt.tz_localize(None) + pd.to_timedelta(minutes, unit="min")


# --------------------------------------------------------------------------- cleaning

@dataclass
class CleaningReport:
    rows_in: int = 0
    rows_out: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: pd.DataFrame | None = None  # a few of the flagged rows, as they were

    def as_metadata(self) -> dict[str, int]:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, **self.counts}


CLEANING_RULES = {
    "duplicates_removed": "duplicate (date, symbol) rows removed, last one kept",
    "missing_close_dropped": "rows without a close dropped (nothing to repair from)",
    "nonfinite_close_dropped": "rows with an infinite close dropped (like a missing one)",
    "nonpositive_close_dropped": "rows with close <= 0 dropped",
    "open_repaired": "missing, infinite or non-positive open set to the close",
    "high_repaired": "high below max(open, close) (or missing or infinite) raised to it",
    "low_repaired": "low above min(open, close) (or missing, infinite or non-positive) lowered to it",
    "volume_repaired": "missing, infinite or negative volume set to 0",
}


def clean_bars(bars: pd.DataFrame) -> tuple[pd.DataFrame, CleaningReport]:
    """Sort, de-duplicate, and drop or repair bad rows; every change is counted.

    Returns the cleaned frame (BAR_COLUMNS plus a boolean ``repaired`` column) and a report.
    """
    rep = CleaningReport(rows_in=len(bars))
    df = bars[BAR_COLUMNS].copy()
    df["_row"] = np.arange(len(df))
    df = df.sort_values(["date", "symbol", "_row"], kind="stable")
    flagged = []

    dup = df.duplicated(["date", "symbol"], keep="last")
    rep.counts["duplicates_removed"] = int(dup.sum())
    flagged.append(df[dup].assign(issue="duplicate"))
    df = df[~dup]

    miss = df["close"].isna()
    rep.counts["missing_close_dropped"] = int(miss.sum())
    flagged.append(df[miss].assign(issue="missing_close"))
    df = df[~miss]

    inf = ~np.isfinite(df["close"].to_numpy(dtype="float64"))
    rep.counts["nonfinite_close_dropped"] = int(inf.sum())
    flagged.append(df[inf].assign(issue="nonfinite_close"))
    df = df[~inf]

    nonpos = df["close"] <= 0
    rep.counts["nonpositive_close_dropped"] = int(nonpos.sum())
    flagged.append(df[nonpos].assign(issue="nonpositive_close"))
    df = df[~nonpos].copy()

    repaired = np.zeros(len(df), dtype=bool)
    o, h, lo, c = (df[k].to_numpy(dtype="float64", copy=True) for k in PRICE_COLUMNS)
    bad_o = ~((o > 0) & np.isfinite(o))
    o[bad_o] = c[bad_o]
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    bad_h = ~((h >= top) & np.isfinite(h))
    h[bad_h] = top[bad_h]
    bad_l = ~((lo <= bottom) & (lo > 0))
    lo[bad_l] = bottom[bad_l]
    v = df["volume"].to_numpy(dtype="float64", copy=True)
    bad_v = ~((v >= 0) & np.isfinite(v))
    v[bad_v] = 0.0
    for name, mask in (("open_repaired", bad_o), ("high_repaired", bad_h),
                       ("low_repaired", bad_l), ("volume_repaired", bad_v)):
        rep.counts[name] = int(mask.sum())
        flagged.append(df[mask].assign(issue=name.replace("_repaired", "")))
        repaired |= mask
    df["open"], df["high"], df["low"], df["volume"] = o, h, lo, v
    df["repaired"] = repaired
    df = df.drop(columns="_row").reset_index(drop=True)
    rep.rows_out = len(df)
    ex = pd.concat([f for f in flagged if len(f)], ignore_index=True) if any(len(f) for f in flagged) else None
    rep.examples = ex.drop(columns="_row").head(20) if ex is not None else None
    return df, rep


# --------------------------------------------------------------------------- checks

CHECKS = {
    "no_missing_close": "every bar has a close",
    "high_ge_open_close": "high >= max(open, close)",
    "low_le_open_close": "low <= min(open, close)",
    "positive_prices": "open, high, low and close are all > 0",
    "finite_prices": "no open, high, low or close is infinite (NaN is caught by the rules above)",
    "unique_date_symbol": "at most one bar per (date, symbol)",
}


def check_bars(bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rows violating each quality rule (an empty frame means the rule holds)."""
    o, h, lo, c = (bars[k].to_numpy(dtype="float64") for k in PRICE_COLUMNS)
    with np.errstate(invalid="ignore"):
        masks = {
            "no_missing_close": np.isnan(c),
            "high_ge_open_close": ~(h >= np.fmax(o, c)),
            "low_le_open_close": ~(lo <= np.fmin(o, c)),
            "positive_prices": (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
            "finite_prices": np.isinf(o) | np.isinf(h) | np.isinf(lo) | np.isinf(c),
            "unique_date_symbol": bars.duplicated(["date", "symbol"], keep=False).to_numpy(),
        }
    return {name: bars[mask] for name, mask in masks.items()}


# --------------------------------------------------------------------------- gaps

def calendar_gaps(bars: pd.DataFrame, calendar: list[str], symbols: list[str] | None = None,
                  longer_than: int = GAP_WEEKDAYS) -> pd.DataFrame:
    """Runs of consecutive calendar days (``calendar``: the sorted weekday keys of a range)
    on which a symbol has no bar, longer than ``longer_than`` weekdays (a week).

    Returns one row per run: ``first``, ``last`` (dates, strings), ``weekdays`` and
    ``symbols`` (comma-separated; ``all symbols`` when every symbol misses the run).  A symbol
    of ``symbols`` without any bar misses the whole range.  Holidays are single days and never
    make a run this long; a run this long is missing data (a gap in a file, a delisting, a
    range before the data starts).

    >>> cal = [str(d.date()) for d in pd.bdate_range("2021-01-04", "2021-03-31")]
    >>> bars = pd.DataFrame({"date": pd.to_datetime(["2021-01-04", "2021-03-31"]), "symbol": "SPY"})
    >>> calendar_gaps(bars, cal).to_dict("records")
    [{'first': '2021-01-05', 'last': '2021-03-30', 'weekdays': 61, 'symbols': 'all symbols'}]
    """
    cols = ["first", "last", "weekdays", "symbols"]
    cal = np.asarray(calendar, dtype=object)
    if len(cal) == 0:
        return pd.DataFrame(columns=cols)
    names = list(dict.fromkeys([*(symbols or []), *pd.unique(bars["symbol"])]))
    labels = bars["date"].dt.strftime("%Y-%m-%d").to_numpy(dtype=object) if len(bars) else np.array([], object)
    pos = np.searchsorted(cal, labels)
    ok = (pos < len(cal)) & (cal[np.minimum(pos, len(cal) - 1)] == labels)
    sym = bars["symbol"].to_numpy(dtype=object)[ok]
    pos = pos[ok]
    runs: dict[tuple[int, int], list[str]] = {}
    for name in names:
        have = np.unique(pos[sym == name])
        edges = np.concatenate([[-1], have, [len(cal)]])
        missing = np.diff(edges) - 1
        for i in np.flatnonzero(missing > longer_than):
            runs.setdefault((int(edges[i] + 1), int(edges[i + 1] - 1)), []).append(str(name))
    rows = [{"first": cal[a], "last": cal[b], "weekdays": b - a + 1,
             "symbols": "all symbols" if len(who) == len(names) else ", ".join(who)}
            for (a, b), who in sorted(runs.items())]
    return pd.DataFrame(rows, columns=cols)


def describe_gaps(gaps: pd.DataFrame, limit: int = 5) -> str:
    """One line: ``2 run(s) of missing weekdays longer than a week: 2021-03-01..2021-04-30 (44
    weekdays; SPY), ...``."""
    parts = [f"{r.first}..{r.last} ({r.weekdays} weekdays; {r.symbols})" for r in gaps.head(limit).itertuples()]
    more = f", ... ({len(gaps) - limit} more)" if len(gaps) > limit else ""
    return f"{len(gaps)} run(s) of missing weekdays longer than a week: {', '.join(parts)}{more}"
