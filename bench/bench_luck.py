"""Is it luck?  The best of a grid search on a market with no edge must be judged NOT valid; on a
market with a planted edge it must be judged valid.

For each seed a market is drawn (``engine.luck``: driftless random walks, or the same noise
plus persistent trends), a grid search runs on its train split and the validation phase
judges the winner -- the platform's own parameter_search and validation kinds, run exactly
as a workflow runs them (only the data phase's read of the stored market data is replaced by
the generated bars).  The "peer" column is what a backtester that reports only the in-sample
winner would conclude with the same Sharpe threshold: accept whenever the best Sharpe
clears it.

    python bench/bench_luck.py                 # 100 + 100 seeds (about 2 minutes on 2 cores)
    python bench/bench_luck.py --seeds 20      # quicker
    python bench/bench_luck.py --power         # and how the verdict's power grows with the edge
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from admf_assets.engine.luck import planted_edge_bars, random_walk_bars  # noqa: E402
from admf_assets.phases.data_preparation import prepare_bars  # noqa: E402
from admf_assets.phases.kind import run_phase  # noqa: E402
from admf_assets.workflow.context import phase_context  # noqa: E402
from admf_assets.workflow.loader import load_workflow_dict  # noqa: E402

SYMBOLS = ["SPY", "QQQ"]  # names of the default universe (validation checks them); the bars are generated
START, END = "2016-01-01", "2019-12-31"  # 4 years; the search and the verdict use the first 70 %
GRID = {"fast_period": [5, 10, 20, 30], "slow_period": [40, 60, 100, 150, 200], "signal_threshold": [0.0, 0.01]}
NAIVE_SHARPE = 1.0  # the peer's acceptance: best in-sample Sharpe >= 1
EDGE = 0.004  # planted daily drift of the trends (their sign flips every 50 days on average)
POWER_EDGES = (0.001, 0.002, 0.003, 0.004, 0.005)


def workflow(n_simulations: int = 1000, n_bootstrap: int = 10_000, validation: dict | None = None):
    """The experiment's workflow: a 40-combination momentum grid (long/short) on the train split,
    then the validation phase with its default methods and thresholds."""
    doc = {
        "workflow": {"name": "is it luck", "id": "luck"},
        "data": {"symbols": SYMBOLS, "start_date": START, "end_date": END},
        "phases": [
            {"name": "search", "type": "parameter_search",
             "config": {"mode": "long_short", "optimization": {"method": "grid", "parameters": GRID}}},
            {"name": "validation", "type": "validation", "depends_on": ["search"],
             "config": {"n_simulations": n_simulations, "n_bootstrap": n_bootstrap, **(validation or {})}},
        ],
        "reporting": {"enabled": False},
    }
    return load_workflow_dict(doc, source="<bench_luck>").graph


def judge(bars: pd.DataFrame, graph) -> dict:
    """Run the workflow's phases on ``bars``; the verdict and the numbers behind it."""
    data = graph.phases["data"]
    prepared, _, _ = prepare_bars(bars, list(data.settings.symbols), data.settings.split)
    loaded = {o.ref: prepared for o in data.outputs}
    results = {}
    for name in graph.order:
        node = graph.phases[name]
        if node is data:
            continue
        res = run_phase(node.kind, phase_context(graph, node, loaded))
        results[name] = res
        for o in node.outputs:
            loaded[o.ref] = res.outputs[o.canonical]
    m = results["validation"].metrics
    return {"is_valid": bool(m["is_valid"]), "sharpe": m["sharpe_ratio"], "dsr": m["deflated_sharpe_ratio"],
            "pbo": m["pbo"], "n_trials": m["n_trials"]}


def experiment(n_seeds: int, edge: float | None, graph, first_seed: int = 0) -> pd.DataFrame:
    """One verdict per seed: on random walks (``edge=None``) or with a planted daily trend of
    ``edge`` (see ``engine.luck.planted_edge_bars``)."""
    rows = []
    for seed in range(first_seed, first_seed + n_seeds):
        bars = (random_walk_bars(SYMBOLS, START, END, seed=seed) if edge is None
                else planted_edge_bars(SYMBOLS, START, END, seed=seed, edge=edge))
        rows.append({"seed": seed, **judge(bars, graph)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--simulations", type=int, default=1000)
    ap.add_argument("--bootstrap", type=int, default=10_000)
    ap.add_argument("--edge", type=float, default=EDGE, help="planted daily trend (default %(default)s)")
    ap.add_argument("--power", action="store_true", help="also: valid verdicts for weaker and stronger edges")
    args = ap.parse_args(argv)
    graph = workflow(args.simulations, args.bootstrap)
    t0 = time.perf_counter()
    noise = experiment(args.seeds, None, graph)
    t1 = time.perf_counter()
    edge = experiment(args.seeds, args.edge, graph)
    t2 = time.perf_counter()
    n = args.seeds
    print(f"random-walk market (no edge): best of a {int(noise['n_trials'].iloc[0])}-trial grid judged NOT valid "
          f"in {int((~noise['is_valid']).sum())} of {n} seeds "
          f"(peer 'best Sharpe >= {NAIVE_SHARPE:g}' would accept {int((noise['sharpe'] >= NAIVE_SHARPE).sum())}); "
          f"median best Sharpe {noise['sharpe'].median():.2f}, DSR {noise['dsr'].median():.2f}, "
          f"PBO {noise['pbo'].median():.2f}  [{t1 - t0:.1f} s]")
    print(f"planted-edge market ({args.edge:g}/day trends): best of the grid judged valid in {int(edge['is_valid'].sum())} of {n} seeds "
          f"(peer would accept {int((edge['sharpe'] >= NAIVE_SHARPE).sum())}); "
          f"median best Sharpe {edge['sharpe'].median():.2f}, DSR {edge['dsr'].median():.2f}, "
          f"PBO {edge['pbo'].median():.2f}  [{t2 - t1:.1f} s]")
    print(f"per seed: {(t2 - t0) / (2 * n):.2f} s (search + validation with {args.simulations} Monte Carlo paths "
          f"and {args.bootstrap} bootstrap resamples)")
    if args.power:
        fast = workflow(100, 100, {"validation_method": ["deflated_sharpe", "pbo"]})  # what the verdict uses
        for e in POWER_EDGES:
            df = experiment(args.seeds, e, fast)
            print(f"  edge {e:g}/day: valid in {int(df['is_valid'].sum())} of {n} seeds; median best Sharpe "
                  f"{df['sharpe'].median():.2f}, DSR {df['dsr'].median():.2f}, PBO {df['pbo'].median():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
