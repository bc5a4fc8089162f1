"""Runtime choices shared by definitions.py and the CLI: executor and resources from the environment.

* ``ADMF_EXECUTOR``: ``in_process`` (default: ~0.1 s per asset on this kind of machine),
  ``multiprocess`` (one forkserver process per step, ``ADMF_MAX_CONCURRENT`` at once, default 2)
  or ``celery`` (steps on Celery workers: ``admf worker``; see :mod:`admf_assets.distributed`).
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

from admf_assets import settings
from admf_assets.engine import synthetic
from admf_assets.errors import SettingError
from resources import DuckDBParquetIOManager, MarketDataSource, StorageResource

EXECUTORS = ("in_process", "multiprocess", "celery")


def executor_kind(kind: str | None = None) -> str:
    """``in_process``, ``multiprocess`` or ``celery``: ``kind``, else ``ADMF_EXECUTOR``, else in_process."""
    kind = (kind or os.environ.get("ADMF_EXECUTOR") or "in_process").lower()
    if kind in ("in_process", "inprocess", "in-process"):
        return "in_process"
    if kind in ("multiprocess", "multi_process", "multiprocessing"):
        return "multiprocess"
    if kind == "celery":
        return "celery"
    raise ValueError(f"ADMF_EXECUTOR={kind!r}: use one of {', '.join(EXECUTORS)}")


def max_concurrent(n: int | None = None) -> int:
    return n or int(os.environ.get("ADMF_MAX_CONCURRENT", "2"))


def executor(kind: str | None = None, max_concurrent_: int | None = None) -> dg.ExecutorDefinition:
    chosen = executor_kind(kind)
    if chosen == "in_process":
        return dg.in_process_executor
    if chosen == "celery":
        from admf_assets import distributed

        return distributed.executor_def()
    from admf_assets.workers import PRELOAD

    return dg.multiprocess_executor.configured(
        {"max_concurrent": max_concurrent(max_concurrent_),
         "start_method": {"forkserver": {"preload_modules": PRELOAD}}},
        name="multiprocess_forkserver",
    )


def check_executor(kind: str, instance: dg.DagsterInstance) -> None:
    """A one-line SettingError when the executor cannot work with this instance or storage:
    steps in other processes need a storage root they can all reach (not ``memory://``), and
    Celery workers (other machines) an instance on PostgreSQL and a broker with a worker on it."""
    if kind.startswith("in"):
        return
    root = str(settings.storage_root())
    if root.startswith("memory://"):
        raise SettingError(f"ADMF_STORAGE={root}: a memory:// storage root lives in one process; "
                           f"use the in_process executor or a storage every step process can reach")
    if kind == "celery":
        from admf_assets import distributed

        distributed.check_ready(instance)


#: the market calendar's first day unless the source or ADMF_MARKET_START says otherwise
DEFAULT_MARKET_START = settings.DEFAULT_MARKET_START
#: ADMF_MARKET_SOURCE and the calendar's first day (in settings: validation reads them without Dagster)
market_source_kind = settings.market_source_kind
market_start = settings.market_start


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
