"""Shared, date-partitioned market-data assets: raw bars -> clean bars, with blocking checks.

Partitions are weekdays (Mon-Fri) from ``MARKET_START`` (``ADMF_MARKET_START``; by default
1999-01-01 with the sample source, else 2010-01-01; read when this module is imported);
weekends are excluded from the partition set.  Exchange holidays are weekdays without bars: their partitions materialize
empty (0 rows, recorded in the metadata), so "materialized but no trading" is distinguishable
from "never loaded".  Runs of more than a week of weekdays without bars (for any symbol) are not
holidays: they are flagged in the raw asset's metadata (``run_gaps``) and in the run log.  Rows a file source has on weekend dates are not stored; their count is
reported in the raw asset's metadata and logged (never dropped silently).
"""


import datetime
import functools
import warnings

import dagster as dg
import numpy as np
import pandas as pd

from admf_assets import runtime
from admf_assets.engine import marketdata
from resources.market_source import MarketDataSource
from resources.io_managers import StorageResource

# BackfillPolicy.single_run() is what makes a backfill one run; Dagster still labels it beta.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

MARKET_START = runtime.market_start()
PREVIEW_MAX_PARTITIONS = 5
GROUP = "market_data"
RAW_KEY = dg.AssetKey(["market", "raw_bars"])
CLEAN_KEY = dg.AssetKey(["market", "clean_bars"])

market_partitions = dg.DailyPartitionsDefinition(
    start_date=MARKET_START, exclusions=["0 0 * * 6", "0 0 * * 0"]
)


def partition_keys_between(start, end) -> list[str]:
    """The market-data partition keys (weekdays) with start <= date <= end.

    Computed as the weekdays between the first and last partition: Dagster enumerates the whole
    partition set one cron tick at a time (~0.1-0.2 s per call), on every `admf run`
    (tests/market/test_market_assets.py checks both agree).
    """
    first = max(pd.Timestamp(start), pd.Timestamp(MARKET_START)).strftime("%Y-%m-%d")
    last = min(pd.Timestamp(end), pd.Timestamp(_last_partition(_utc_today()))).strftime("%Y-%m-%d")
    days = np.arange(np.datetime64(first, "D"), np.datetime64(last, "D") + 1)  # empty when first > last
    return np.datetime_as_string(days[np.is_busday(days)], unit="D").tolist()  # Mon-Fri, as bdate_range


def _utc_today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


@functools.lru_cache(maxsize=2)
def _last_partition(today: str) -> str:
    """The last partition key, once per UTC day (a code server or daemon lives for days)."""
    return market_partitions.get_last_partition_key()


def required_partitions(start, end) -> list[str]:
    """Every partition key of [start, end]; a ValueError when the range leaves the calendar."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    first = pd.Timestamp(market_partitions.get_first_partition_key())
    last = pd.Timestamp(_last_partition(_utc_today()))
    if start < first or end > last:
        raise ValueError(
            f"dates {start.date()}..{end.date()} are outside the market data partitions "
            f"({first.date()}..{last.date()})"
        )
    return partition_keys_between(start, end)


def missing_partitions(store, start, end) -> list[str]:
    """The partition keys of [start, end] that the store has not materialized."""
    have = store.stored_partitions(list(CLEAN_KEY.path))
    return [k for k in required_partitions(start, end) if k not in have]


def _range(context) -> tuple[pd.Timestamp, pd.Timestamp, list[str]]:
    tw = context.partition_time_window
    start = pd.Timestamp(tw.start).tz_localize(None)
    end = pd.Timestamp(tw.end).tz_localize(None) - pd.Timedelta(days=1)
    return start, end, list(context.partition_keys)


def _preview(df: pd.DataFrame, n: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(n).to_markdown(index=False, floatfmt=".4f") if len(df) else "_no rows_")


@dg.asset(
    key=RAW_KEY,
    group_name=GROUP,
    partitions_def=market_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    metadata={"partition_expr": "date"},
    kinds={"pandas", "parquet"},
    code_version="1",
    description="Daily OHLCV bars as delivered by the market-data source (synthetic regime-"
    "switching market by default, or a directory of CSV/Parquet files). One partition per "
    "weekday; a backfill of any range runs as one run.",
)
def raw_bars(context: dg.AssetExecutionContext, market_source: MarketDataSource) -> dg.Output:
    start, end, keys = _range(context)
    try:
        df = market_source.load(start, end)
    except marketdata.MarketDataError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    labels = df["date"].dt.strftime("%Y-%m-%d")
    off = ~labels.isin(set(keys))
    if off.any():
        days = sorted(labels[off].unique())
        context.log.warning(
            f"{int(off.sum())} rows on {len(days)} non-trading-calendar date(s) not stored "
            f"(weekends; first: {days[0]})"
        )
        df = df[~off].reset_index(drop=True)
    gaps = marketdata.calendar_gaps(df, keys, market_source.universe())
    if len(gaps):
        context.log.warning(marketdata.describe_gaps(gaps) + " (their partitions are stored empty, "
                            "like holidays; check the source)")
    # Dagster copies an output's metadata onto every partition's materialization, so the
    # numbers are labelled as the run's (a preview only for short runs: it would be the same
    # first rows on every partition of a long backfill).
    meta = {
        "run_first_date": str(start.date()),
        "run_last_date": str(end.date()),
        "run_partitions": len(keys),
        "symbols": dg.MetadataValue.int(df["symbol"].nunique()),
        "off_calendar_rows_not_stored": int(off.sum()),
        "run_gaps_over_a_week": len(gaps),
        "source": market_source.kind,
    }
    if len(gaps):
        meta["run_gaps"] = dg.MetadataValue.md(gaps.head(50).to_markdown(index=False))
    if len(keys) <= PREVIEW_MAX_PARTITIONS:
        meta["preview"] = _preview(df)
    return dg.Output(df, metadata=meta)


@dg.asset(
    key=CLEAN_KEY,
    group_name=GROUP,
    partitions_def=market_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    metadata={"partition_expr": "date"},
    ins={"raw": dg.AssetIn(RAW_KEY)},
    kinds={"pandas", "parquet"},
    code_version="1",
    description="Raw bars sorted, de-duplicated per (date, symbol), with bad rows dropped or "
    "repaired; every change is counted in the metadata and repaired rows carry `repaired = "
    "true`. Rules: " + "; ".join(f"{k}: {v}" for k, v in marketdata.CLEANING_RULES.items())
    + ". Guarded by blocking quality checks.",
)
def clean_bars(context: dg.AssetExecutionContext, raw: pd.DataFrame) -> dg.Output:
    cleaned, report = marketdata.clean_bars(raw)
    changed = {k: v for k, v in report.counts.items() if v}
    if changed:
        context.log.warning("cleaning changed rows: " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    meta = {f"run_{k}": dg.MetadataValue.int(v) for k, v in report.as_metadata().items()}
    if len(context.partition_keys) <= PREVIEW_MAX_PARTITIONS:
        meta["preview"] = _preview(cleaned)
    if report.examples is not None:
        meta["flagged_rows"] = _preview(report.examples, 20)
    return dg.Output(cleaned, metadata=meta)


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name, asset=CLEAN_KEY, description=desc, blocking=True)
        for name, desc in marketdata.CHECKS.items()
    ],
)
def clean_bars_quality(context: dg.AssetCheckExecutionContext, storage: StorageResource):
    """Quality rules on the partitions this run wrote (all stored partitions otherwise)."""
    store = storage.store()
    key = list(CLEAN_KEY.path)
    if context.has_partition_key_range:
        r = context.partition_key_range
        keys = market_partitions.get_partition_keys_in_range(r)
    else:
        keys = sorted(store.stored_partitions(key))
    bars = store.read_partitions(key, keys) if keys else pd.DataFrame(columns=marketdata.BAR_COLUMNS)
    for name, bad in marketdata.check_bars(bars).items():
        yield dg.AssetCheckResult(
            check_name=name,
            asset_key=CLEAN_KEY,
            passed=bad.empty,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows_checked": len(bars), "failing_rows": len(bad),
                      "partitions_checked": len(keys), "examples": _preview(bad)},
        )


market_data_job = dg.define_asset_job(
    "market_data",
    selection=dg.AssetSelection.assets(RAW_KEY, CLEAN_KEY),
    partitions_def=market_partitions,
    description="Ingest and clean daily market data for a date range (one run per backfill).",
)

market_data_schedule = dg.build_schedule_from_partitioned_job(
    market_data_job, hour_of_day=22, name="market_data_daily",
    description="Ingests the newest weekday partition of market data every weekday evening.",
)

ASSETS = [raw_bars, clean_bars]
CHECKS = [clean_bars_quality]
