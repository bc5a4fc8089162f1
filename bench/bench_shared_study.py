"""Bench: one Optuna study shared by 1 and 2 worker processes (PostgreSQL), against the
single-process search.

The same trial-bound search (bayesian / TPE on a momentum strategy over many synthetic symbols
and years, so that evaluating a trial costs more than sampling and storing it) is run as:

* ``optimize``: ``engine.optimize.optimize`` in this process, its study in memory (the
  search a phase runs with ``max_workers: 1``: the peer);
* ``shared x1``: ``engine.shared_search.optimize_shared`` with 1 worker, the study in PostgreSQL;
* ``shared x2``: the same with 2 workers (this process and one spawned process).

For each it prints trials per second (the budget over the wall time, spawned workers' start
included), the seconds spent in the engine (summed over workers), the best objective, and the
ratio of the 2-worker rate to the 1-worker rate.

    python bench/bench_shared_study.py [--url postgresql+psycopg2://u:p@127.0.0.1:5432/postgres]
        [--symbols 60] [--years 12] [--n-trials 160] [--batch-size 4]

``--url`` (default ``$ADMF_TEST_POSTGRES_URL``, which ``.ci/services start`` exports) is a role that
may create databases: the bench creates a scratch database there and drops it at the end.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import sqlalchemy as sa

from admf_assets.engine import optimize as eo
from admf_assets.engine import shared_search as sh
from admf_assets.engine.backtest import BacktestConfig
from admf_assets.engine.synthetic import synthetic_bars
from admf_assets.instance import with_database

SPACE = {"fast_period": {"low": 2, "high": 60}, "slow_period": {"low": 20, "high": 250}}


def _problem(symbols: int, years: int):
    bars = synthetic_bars([f"S{i:03d}" for i in range(symbols)], f"{2024 - years}-01-01", "2023-12-31", seed=3)
    close = bars.pivot(index="date", columns="symbol", values="close")
    dims, fixed = eo.strategy_dims("momentum", SPACE)
    return close, dims, fixed, eo.parse_objectives("sharpe_ratio")


def _best(res: eo.OptimizeResult) -> float:
    t = res.trials
    return float(t.loc[t["feasible"], "objective"].max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("ADMF_TEST_POSTGRES_URL"))
    ap.add_argument("--symbols", type=int, default=60)
    ap.add_argument("--years", type=int, default=12)
    ap.add_argument("--n-trials", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    if not args.url:
        raise SystemExit("no PostgreSQL: pass --url or eval \"$(bash .ci/services start)\" first")
    close, dims, fixed, objectives = _problem(args.symbols, args.years)
    print(f"momentum TPE on {close.shape[1]} symbols x {close.shape[0]} bars, {args.n_trials} trials, "
          f"batches of {args.batch_size}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    scratch = f"admf_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{scratch}"'))
    url = with_database(args.url, scratch)
    rows = []
    try:
        valid = sh.StrategyValid("momentum")
        t0 = time.perf_counter()
        res = eo.optimize(eo.BacktestEvaluator(close, "momentum", BacktestConfig()), dims, objectives,
                          method="tpe", n_trials=args.n_trials, seed=args.seed, fixed=fixed, valid=valid,
                          batch_size=args.batch_size)
        rows.append(("optimize", time.perf_counter() - t0, res.seconds["engine"], _best(res), 0.0))
        for k in (1, 2):
            t0 = time.perf_counter()
            res = sh.optimize_shared(eo.BacktestEvaluator(close, "momentum", BacktestConfig()), dims, objectives,
                                     n_trials=args.n_trials, url=url, study_name=f"bench-x{k}", workers=k,
                                     seed=args.seed, fixed=fixed, valid=valid, batch_size=args.batch_size)
            assert len(res.trials) == args.n_trials, res.message
            rows.append((f"shared x{k}", time.perf_counter() - t0, res.seconds["engine"], _best(res),
                         res.seconds["start"]))
            print(f"  {res.message}")
    finally:
        with admin.connect() as con:
            con.execute(sa.text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        admin.dispose()
    print(f"\n{'search':11s} {'wall s':>7s} {'trials/s':>9s} {'engine s':>9s} {'start s':>8s} {'best sharpe':>12s}")
    for name, wall, engine, best, start in rows:
        print(f"{name:11s} {wall:7.2f} {args.n_trials / wall:9.2f} {engine:9.2f} {start:8.2f} {best:12.4f}")
    rate = {name: args.n_trials / wall for name, wall, *_ in rows}
    print(f"\nshared x2 / shared x1: {rate['shared x2'] / rate['shared x1']:.2f}x trials per second; "
          f"shared x1 / optimize: {rate['shared x1'] / rate['optimize']:.2f}x")


if __name__ == "__main__":
    main()
