"""Backfill 10 years x 20 symbols of market data as ONE run vs Dagster's own floor.

The floor is a no-op asset over the same daily partitions, materialized in one run on the same
kind of instance: Dagster records one materialization event per partition (and per asset), so
no IO manager can beat it.  Both run in this process against fresh persistent (sqlite)
instances, like `admf backfill` does.  The project's run has two partitioned assets (raw and
clean bars), so its event floor is twice the one-asset floor; both ratios are printed.

    python bench/bench_backfill.py [--start 2015-01-01] [--end 2024-12-31]
"""

import argparse
import os
import resource
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

import dagster as dg  # noqa: E402

from admf_assets import market  # noqa: E402
from admf_assets.engine import synthetic  # noqa: E402
from admf_assets.runner import RANGE_END, RANGE_START  # noqa: E402
from resources import DuckDBParquetIOManager, MarketDataSource, StorageResource  # noqa: E402

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def noop_assets(n):
    out = []
    for i in range(n):
        @dg.asset(name=f"noop_{i}", partitions_def=market.market_partitions,
                  backfill_policy=dg.BackfillPolicy.single_run())
        def _noop(context) -> None:
            return None
        out.append(_noop)
    return out


def timed_run(assets, tags, resources=None):
    with tempfile.TemporaryDirectory() as home:
        with open(f"{home}/dagster.yaml", "w") as f:
            f.write("telemetry:\n  enabled: false\n")
        return _run_in(home, assets, tags, resources)


def _run_in(home, assets, tags, resources):
    with dg.DagsterInstance.from_config(home) as inst:
        t0 = time.perf_counter()
        res = dg.materialize(assets, instance=inst, tags=tags, resources=resources or {},
                             run_config=QUIET)
        took = time.perf_counter() - t0
        assert res.success
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", default="2015-01-01")
    ap.add_argument("--end", default="2024-12-31")
    ap.add_argument("--per-partition-planned-events", action="store_true",
                    help="do not set DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS (admf sets it)")
    a = ap.parse_args()
    if not a.per_partition_planned_events:
        os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    print("planned events:", "one per asset" if os.environ.get("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS")
          else "one per partition")
    keys = [k for k in market.market_partitions.get_partition_keys() if a.start <= k <= a.end]
    tags = {RANGE_START: keys[0], RANGE_END: keys[-1]}
    print(f"{len(keys)} weekday partitions x {len(synthetic.DEFAULT_SYMBOLS)} symbols, one run each")

    floor1 = timed_run(noop_assets(1), tags)
    floor2 = timed_run(noop_assets(2), tags)
    with tempfile.TemporaryDirectory() as root:
        res = {"io_manager": DuckDBParquetIOManager(storage_root=root),
               "storage": StorageResource(storage_root=root),
               "market_source": MarketDataSource()}
        ours = timed_run([*market.ASSETS, *market.CHECKS], tags, res)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"no-op floor, 1 partitioned asset : {floor1:7.2f} s ({1000 * floor1 / len(keys):.1f} ms/partition)")
    print(f"no-op floor, 2 partitioned assets: {floor2:7.2f} s")
    print(f"admf raw+clean bars + 5 checks   : {ours:7.2f} s ({1000 * ours / len(keys):.1f} ms/partition)")
    print(f"ratio vs 1-asset floor: {ours / floor1:.2f}   ratio vs 2-asset floor: {ours / floor2:.2f}")
    print(f"peak RSS of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
