"""Market data: reading user files, cleaning bars, and the quality rules behind the checks.

Pure pandas; no Dagster.  Every error a user's file can cause is a :class:`MarketDataError`
whose message names the file and the column and/or row.
"""

from __future__ import annotations

import os
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


class MarketDataError(ValueError):
    """A problem with market data a user supplied; the message is meant to be shown as is."""


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dates = pd.to_datetime(dates_raw, errors="coerce")
    bad = dates.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise MarketDataError(
            f"{path}: {where(i)}, column '{date_col}': cannot parse {dates_raw.iloc[i]!r} as a date"
        )
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
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
    "nonpositive_close_dropped": "rows with close <= 0 dropped",
    "open_repaired": "missing or non-positive open set to the close",
    "high_repaired": "high below max(open, close) (or missing) raised to it",
    "low_repaired": "low above min(open, close) (or missing/non-positive) lowered to it",
    "volume_repaired": "missing or negative volume set to 0",
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

    nonpos = df["close"] <= 0
    rep.counts["nonpositive_close_dropped"] = int(nonpos.sum())
    flagged.append(df[nonpos].assign(issue="nonpositive_close"))
    df = df[~nonpos].copy()

    repaired = np.zeros(len(df), dtype=bool)
    o, h, lo, c = (df[k].to_numpy(dtype="float64", copy=True) for k in PRICE_COLUMNS)
    bad_o = ~(o > 0)
    o[bad_o] = c[bad_o]
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    bad_h = ~(h >= top)
    h[bad_h] = top[bad_h]
    bad_l = ~((lo <= bottom) & (lo > 0))
    lo[bad_l] = bottom[bad_l]
    v = df["volume"].to_numpy(dtype="float64", copy=True)
    bad_v = ~(v >= 0)
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
            "unique_date_symbol": bars.duplicated(["date", "symbol"], keep=False).to_numpy(),
        }
    return {name: bars[mask] for name, mask in masks.items()}
