"""data_preparation: the workflow's symbols and dates from the partitioned clean bars, with the
train/test split as a column (``split`` = 'train' | 'test')."""

from __future__ import annotations

import numpy as np
import pandas as pd

from admf_assets.engine.charts import sparkline
from admf_assets.market import CLEAN_KEY, market_partitions, partition_keys_between
from admf_assets.phases.base import PhaseContext, PhaseError, PhaseResult, md_table
from admf_assets.workflow.spec import DataSplit
from resources.storage import summarize_dates

COLUMNS = ["date", "symbol", "open", "high", "low", "close", "volume"]


def required_partitions(start, end) -> list[str]:
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    first = pd.Timestamp(market_partitions.get_first_partition_key())
    last = pd.Timestamp(market_partitions.get_last_partition_key())
    if start < first or end > last:
        raise PhaseError(
            f"dates {start.date()}..{end.date()} are outside the market data partitions "
            f"({first.date()}..{last.date()})"
        )
    return partition_keys_between(start, end)


def missing_partitions(store, start, end) -> list[str]:
    have = store.stored_partitions(list(CLEAN_KEY.path))
    return [k for k in required_partitions(start, end) if k not in have]


def run(ctx: PhaseContext) -> PhaseResult:
    cfg = ctx.config
    symbols = [s.upper() for s in cfg["symbols"]]
    start, end = pd.Timestamp(cfg["start_date"]), pd.Timestamp(cfg["end_date"])
    missing = missing_partitions(ctx.store, start, end)
    if missing:
        raise PhaseError(
            f"market data for {len(missing)} weekday(s) is not materialized: {summarize_dates(missing)}. "
            f"Backfill first: admf backfill --start {missing[0]} --end {missing[-1]} "
            f"(or run the workflow with `admf run`, which backfills what is missing)"
        )
    keys = required_partitions(start, end)
    bars = ctx.store.read_partitions(list(CLEAN_KEY.path), keys, columns=COLUMNS)
    bars = bars[bars["symbol"].isin(symbols)]
    absent = [s for s in symbols if s not in set(bars["symbol"])]
    if absent:
        raise PhaseError(
            f"symbol(s) {', '.join(absent)} have no bars between {start.date()} and {end.date()}; "
            f"set ADMF_SYMBOLS / the market source to include them and backfill again"
        )
    bars = bars.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    dates = pd.DatetimeIndex(sorted(bars["date"].unique()))
    split = DataSplit(**(cfg.get("split") or {}))
    i = split.test_start_index(list(dates))
    test_start = dates[i] if i < len(dates) else None
    bars["split"] = np.where(bars["date"] >= test_start, "test", "train") if test_start is not None else "train"
    n_train = int((dates < test_start).sum()) if test_start is not None else len(dates)
    if n_train == 0 or n_train == len(dates):
        raise PhaseError(
            f"the split leaves {'no train' if n_train == 0 else 'no test'} dates in "
            f"{dates[0].date()}..{dates[-1].date()} (field 'data.split')"
        )
    full = bars.pivot(index="date", columns="symbol", values="close")
    missing_fraction = float(full.isna().to_numpy().mean())
    metrics = {"n_rows": len(bars), "n_symbols": len(symbols), "n_dates": len(dates),
               "missing_fraction": missing_fraction}
    meta = {
        "rows": len(bars),
        "symbols": ", ".join(symbols),
        "first_date": str(dates[0].date()),
        "last_date": str(dates[-1].date()),
        "test_start": str(test_start.date()),
        "train_dates": n_train,
        "test_dates": len(dates) - n_train,
        "missing_fraction": missing_fraction,
        **{f"close_{sym}": sparkline(full[sym]) for sym in list(full.columns)[:5]},
        "preview": md_table(bars),
    }
    return PhaseResult(outputs={"bars": bars}, metadata={"bars": meta}, metrics=metrics)
