"""Runtime choices shared by definitions.py and the CLI: executor and resources from the environment.

* ``ADMF_EXECUTOR``: ``in_process`` (default: ~0.1 s per asset on this kind of machine) or
  ``multiprocess`` (one forkserver process per step, ``ADMF_MAX_CONCURRENT`` at once, default 2).
* ``ADMF_MARKET_SOURCE``: ``synthetic`` (default), ``sample`` (real S&P 500 and NASDAQ bars,
  1999-2018, shipped with ``arch``) or ``files`` with ``ADMF_MARKET_PATH`` a directory.
* ``ADMF_SYMBOLS``: comma-separated universe (default: the 20 built-in synthetic symbols, both
  sample symbols, or every file in ``ADMF_MARKET_PATH``).  ``ADMF_SEED``: seed of the synthetic
  market (default 42).
* ``ADMF_MARKET_START``: the first day of the market calendar (its weekday partitions);
  default 1999-01-01 with the sample source, else 2010-01-01.
"""

from __future__ import annotations

import os

import dagster as dg
import pandas as pd

from admf_assets import settings
from admf_assets.engine import marketdata, sample, synthetic
from admf_assets.settings import SettingError
from resources import DuckDBParquetIOManager, MarketDataSource, StorageResource

PRELOAD = ["pandas", "numpy", "pyarrow", "dagster", "admf_assets.engine.marketdata"]


def executor_kind(kind: str | None = None) -> str:
    """``in_process`` or ``multiprocess``: ``kind``, else ``ADMF_EXECUTOR``, else in_process."""
    kind = (kind or os.environ.get("ADMF_EXECUTOR") or "in_process").lower()
    if kind in ("in_process", "inprocess", "in-process"):
        return "in_process"
    if kind in ("multiprocess", "multi_process", "multiprocessing"):
        return "multiprocess"
    raise ValueError(f"ADMF_EXECUTOR={kind!r}: use 'in_process' or 'multiprocess'")


def max_concurrent(n: int | None = None) -> int:
    return n or int(os.environ.get("ADMF_MAX_CONCURRENT", "2"))


def executor(kind: str | None = None, max_concurrent_: int | None = None) -> dg.ExecutorDefinition:
    if executor_kind(kind) == "in_process":
        return dg.in_process_executor
    return dg.multiprocess_executor.configured(
        {"max_concurrent": max_concurrent(max_concurrent_),
         "start_method": {"forkserver": {"preload_modules": PRELOAD}}},
        name="multiprocess_forkserver",
    )


#: the market calendar's first day unless the source or ADMF_MARKET_START says otherwise
DEFAULT_MARKET_START = "2010-01-01"


def market_source_kind() -> str:
    """``ADMF_MARKET_SOURCE`` (default ``synthetic``), checked against the known sources."""
    kind = os.environ.get("ADMF_MARKET_SOURCE", "").strip().lower() or "synthetic"
    if kind not in marketdata.SOURCES:
        raise SettingError(f"ADMF_MARKET_SOURCE={kind!r}: use one of {', '.join(marketdata.SOURCES)}")
    return kind


def market_start() -> str:
    """The first day of the market calendar: ``ADMF_MARKET_START``, else 1999-01-01 for the
    sample source (its data starts 1999-01-04), else 2010-01-01."""
    env = os.environ.get("ADMF_MARKET_START", "").strip()
    if not env:
        return sample.SAMPLE_CALENDAR_START if market_source_kind() == "sample" else DEFAULT_MARKET_START
    try:
        day = pd.Timestamp(env)
    except ValueError:
        day = pd.NaT
    if pd.isna(day) or day != day.normalize():
        raise SettingError(f"ADMF_MARKET_START={env!r}: expected a date, YYYY-MM-DD")
    if day > pd.Timestamp.today():
        raise SettingError(f"ADMF_MARKET_START={env!r}: the calendar cannot start in the future")
    return str(day.date())


def market_source() -> MarketDataSource:
    kind = market_source_kind()
    symbols = [s.strip().upper() for s in os.environ.get("ADMF_SYMBOLS", "").split(",") if s.strip()]
    if kind == "files":
        return MarketDataSource(kind="files", path=os.environ.get("ADMF_MARKET_PATH"), symbols=symbols)
    if kind == "sample":
        return MarketDataSource(kind="sample", symbols=symbols)
    return MarketDataSource(
        kind="synthetic",
        symbols=symbols or list(synthetic.DEFAULT_SYMBOLS),
        seed=int(os.environ.get("ADMF_SEED", "42")),
    )


def resources() -> dict:
    root = str(settings.storage_root())
    return {
        "io_manager": DuckDBParquetIOManager(storage_root=root),
        "array_io_manager": DuckDBParquetIOManager(storage_root=root, register_views=False),
        "storage": StorageResource(storage_root=root),
        "market_source": market_source(),
    }
