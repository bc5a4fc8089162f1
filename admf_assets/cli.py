"""The ``admf`` command: backfill market data, run workflows, validate YAML, open the UI.

Every command works on one Dagster instance: ``$DAGSTER_HOME``, or ``~/.admf/dagster_home``
when it is not set, so what the command line runs shows up in ``admf ui``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path


def _instance():
    from admf_assets import settings

    settings.ensure_dagster_home()
    warnings.filterwarnings("ignore", module="dagster")
    import dagster as dg

    return dg.DagsterInstance.get()


def _fail(msg: str) -> int:
    print(f"admf: error: {msg}", file=sys.stderr)
    return 2


def cmd_backfill(args) -> int:
    instance = _instance()
    from admf_assets import runner, settings

    try:
        first, last, keys = runner.partition_range(args.start, args.end)
    except ValueError as exc:
        return _fail(str(exc))
    print(f"backfilling market data {first}..{last} ({len(keys)} weekday partitions) as one run")
    t0 = time.perf_counter()
    out = runner.backfill(args.start, args.end, instance, executor=args.executor,
                          log_level="INFO" if args.verbose else "WARNING")
    took = time.perf_counter() - t0
    if not out.success:
        for line in out.failures or ["run failed; see the run in the UI"]:
            print(f"  {line}", file=sys.stderr)
        print(f"run {out.run_id} FAILED after {took:.1f}s", file=sys.stderr)
        return 1
    print(f"run {out.run_id} succeeded in {took:.1f}s")
    print(f"  instance (DAGSTER_HOME): {settings.dagster_home()}")
    print(f"  tables:  {settings.storage_root() / 'tables' / 'market'}")
    print(f"  DuckDB:  {settings.duckdb_path()}  (SELECT * FROM market.clean_bars)")
    return 0


def cmd_ui(args) -> int:
    from admf_assets import settings

    home = settings.ensure_dagster_home()
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "dagster", "dev", "-h", args.host, "-p", str(args.port)]
    if (root / "workspace.yaml").exists():
        cmd += ["-w", str(root / "workspace.yaml")]
    else:
        cmd += ["-m", "definitions"]
    print(f"Dagster UI on http://{args.host}:{args.port}  (DAGSTER_HOME={home})")
    return subprocess.call(cmd, cwd=str(root), env={**os.environ, "DAGSTER_HOME": str(home)})


def cmd_db(args) -> int:
    from admf_assets import settings
    from resources.storage import TableStore

    store = TableStore(settings.storage_root())
    try:
        names = store.rebuild_views()
    except RuntimeError as exc:
        return _fail(str(exc))
    print(f"DuckDB catalog: {store.duckdb_path}")
    for n in names:
        print(f"  {n}")
    if args.sql:
        import duckdb

        con = duckdb.connect(str(store.duckdb_path), read_only=True)
        try:
            print(con.sql(args.sql))
        finally:
            con.close()
    return 0


def cmd_info(args) -> int:
    from admf_assets import settings

    print(f"DAGSTER_HOME: {settings.dagster_home()}")
    print(f"storage:      {settings.storage_root()}")
    print(f"DuckDB:       {settings.duckdb_path()}")
    print(f"reports:      {settings.reports_dir()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="admf", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("backfill", help="ingest + clean market data for a date range as ONE run")
    b.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    b.add_argument("--end", required=True, help="last date, YYYY-MM-DD (inclusive)")
    b.add_argument("--executor", choices=["in_process", "multiprocess"], default=None)
    b.add_argument("-v", "--verbose", action="store_true", help="show Dagster's event log")
    b.set_defaults(func=cmd_backfill)

    u = sub.add_parser("ui", help="start the Dagster UI (webserver + daemon) on the admf instance")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, default=3000)
    u.set_defaults(func=cmd_ui)

    d = sub.add_parser("db", help="(re)create the DuckDB views over every stored table; optional query")
    d.add_argument("sql", nargs="?", help="a query to run read-only, e.g. 'SELECT count(*) FROM market.clean_bars'")
    d.set_defaults(func=cmd_db)

    i = sub.add_parser("info", help="print where the instance, tables, DuckDB file and reports are")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
