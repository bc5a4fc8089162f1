"""Wall time and peak memory of seed 001's institutional pipeline (workflows/institutional_research.yaml)
end to end through the runner, at the seed's sizes or at the reduced CI size of
tests/test_institutional_research.py.  A measurement, not a peer comparison: no other tool runs
this pipeline.

    python bench/bench_institutional.py            # the seed's sizes: 6 symbols, 2018-2023
    python bench/bench_institutional.py --reduced  # the CI size

Each run uses a fresh DAGSTER_HOME with the synthetic market partitions written into its store
(what a backfill stores; the backfill itself is measured by bench_backfill.py).  Prints the run's
wall time, its phases' compute time, each phase's time and peak RSS (the compiler's profile
metadata), and the process's peak RSS (in-process executor: every phase runs in this process).
"""

from __future__ import annotations

import argparse
import os
import resource
import runpy
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reduced", action="store_true", help="the CI size of the test")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    test = runpy.run_path(str(REPO / "tests" / "test_institutional_research.py"))
    import yaml

    doc = yaml.safe_load(test["WORKFLOW"].read_text(encoding="utf-8"))
    if args.reduced:
        doc = test["reduced"](doc)
    else:
        doc["reporting"] = {"enabled": False}
    symbols, start, end = doc["data"]["symbols"], str(doc["data"]["start_date"]), str(doc["data"]["end_date"])
    home = tempfile.mkdtemp(prefix="bench_institutional_")
    os.environ.update({"DAGSTER_HOME": home, "ADMF_SYMBOLS": ",".join(symbols)})
    os.environ.pop("ADMF_STORAGE", None)

    import dagster as dg

    from admf_assets import runner, settings
    from admf_assets.engine import marketdata, synthetic
    from admf_assets.market import partition_keys_between
    from resources.storage import TableStore

    settings.ensure_dagster_home()
    clean, _ = marketdata.clean_bars(synthetic.synthetic_bars(symbols, start, end))
    TableStore(settings.storage_root()).write_partitions(
        ["market", "clean_bars"], clean, clean["date"].dt.strftime("%Y-%m-%d").to_numpy(),
        partition_keys_between(start, end), views=False)
    graph = test["load"](doc).graph
    with dg.DagsterInstance.get() as instance:
        t0 = time.perf_counter()
        out = runner.run_workflow(graph, instance)
        wall = time.perf_counter() - t0
        print(f"{'reduced' if args.reduced else 'seed'} size: {len(symbols)} symbols {start}..{end}; "
              f"success={out.success}; {out.materialized} materializations")
        if not out.success:
            print("\n".join(out.failures))
        print(f"wall {wall:.1f} s (run {out.run_seconds:.1f} s, phases {out.compute_seconds:.1f} s)")
        for name in graph.order:
            node = graph.phases[name]
            firsts = {o.partitioned: o for o in reversed(node.outputs)}  # one per multi-asset
            for partitioned, o in sorted(firsts.items()):
                ev = instance.get_latest_materialization_event(dg.AssetKey(list(graph.asset_key(o))))
                meta = {} if ev is None else {k: getattr(v, "value", v)
                                              for k, v in ev.asset_materialization.metadata.items()}
                label = name + (" (its partitions, one run)" if partitioned else "")
                print(f"  {label:45s} {meta.get('compute_seconds', float('nan')):8.2f} s  "
                      f"peak RSS {meta.get('peak_rss_mb', float('nan')):7.1f} MB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {peak:.0f} MB")
    return 0 if out.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
