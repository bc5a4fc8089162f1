"""Benchmark: ensemble evaluation by replaying captured signals vs recomputing strategies.

    python bench/bench_replay.py [--quick]

Data: seeded GBM (default_rng(42)), 20 symbols x 2520 business days. Members: 30
strategies (10 momentum, 10 mean-reversion, 10 breakout parameter sets), long/short,
10 bps costs. An ensemble nets its members' positions per symbol (weights sum to 1)
and is backtested once; metrics are computed for every ensemble.

Two workloads, each evaluated both ways with identical results checked:
  1. one ensemble: recompute = generate each member's positions from prices (all
     indicators recomputed) + net + backtest + metrics; replay = net the captured
     positions + backtest + metrics.
  2. an ensemble-weight search: 200 candidate weight vectors (Dirichlet, seed 0).
     recompute = the loop a pipeline without capture runs (members recomputed for
     every candidate); replay = one vectorized replay() call over all candidates.
Capturing the members is a one-off cost, reported separately.
  3. the ensemble_optimization kind's fitters (engine.ensemble.fit_weights) with a budget of
     200 candidate ensembles each, under the seed's constraints (sum 1, 0.05 <= w <= 0.4,
     max pairwise correlation 0.8): every candidate is projected onto the constraints and
     replayed; the recompute column is what recomputing the members for each of those
     candidates would cost (the per-ensemble cost measured in workload 2).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

# The ensemble step is a small matrix product per symbol; on a shared 2-core VM
# OpenBLAS's worker threads spin against other processes and make its timing erratic
# (0.1 ms to 15 ms for the same product). Single-threaded BLAS measures the engine,
# not the scheduler. Set ADMF_BENCH_BLAS_THREADS to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("ADMF_BENCH_BLAS_THREADS", "1"))

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from admf_assets.engine.backtest import BacktestConfig, backtest_positions, tune_allocator  # noqa: E402
from admf_assets.engine import ensemble as en  # noqa: E402
from admf_assets.engine.capture import capture_signals, concat_captured, replay  # noqa: E402
from admf_assets.engine.metrics import compute_metrics  # noqa: E402
from admf_assets.engine.strategies import expand_grid, generate_positions  # noqa: E402

N_BARS = 2520


def make_closes(n_symbols: int = 20, n_bars: int = N_BARS, seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(3e-4, 0.012, (n_bars, n_symbols)), axis=0))
    return pd.DataFrame(close, index=pd.bdate_range("2010-01-04", periods=n_bars),
                        columns=[f"SYM{i:02d}" for i in range(n_symbols)])


MEMBERS = {
    "momentum": expand_grid("momentum", {"fast_period": [5, 10, 20, 30, 50], "slow_period": [60, 120],
                                         "signal_threshold": [0.0]}),
    "mean_reversion": expand_grid("mean_reversion", {"lookback": [10, 20, 30, 40, 60], "entry_z": [1.5, 2.0],
                                                     "exit_z": [0.0]}),
    "breakout": expand_grid("breakout", {"lookback": [10, 20, 40, 55, 100], "exit_lookback": [0, 10]}),
}
MODE = "long_short"


def recompute_ensembles(close: pd.DataFrame, W: np.ndarray, cfg: BacktestConfig) -> np.ndarray:
    """What a pipeline without capture does: recompute every member for every candidate."""
    rets = close.pct_change().fillna(0.0)
    values = close.to_numpy()
    out = np.empty((len(close), W.shape[0]))
    for e in range(W.shape[0]):
        net = np.zeros((len(close), close.shape[1]))
        k = 0
        for strategy, grid in MEMBERS.items():
            pos = generate_positions(strategy, values, grid, MODE)  # indicators recomputed
            for j in range(len(grid)):
                net += W[e, k] * pos[:, :, j]
                k += 1
        out[:, e] = backtest_positions(net[:, :, None], rets, cfg)[:, 0]
    return out


def timed(fn, repeats: int):
    times, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tune-allocator", action="store_true", help="apply engine.tune_allocator() first")
    args = ap.parse_args()
    if args.tune_allocator:
        print(f"allocator tuning: {tune_allocator()}")
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    close = make_closes(20)
    cfg = BacktestConfig(cost_bps=10, mode=MODE)
    K = sum(len(g) for g in MEMBERS.values())

    t_cap, cap = timed(lambda: concat_captured([capture_signals(close, s, g, mode=MODE)
                                                for s, g in MEMBERS.items()]), 1)
    print(f"members: {K} strategies x 20 symbols x {N_BARS} bars; capture (one-off): {t_cap * 1e3:.1f} ms, "
          f"positions {cap.positions.shape} {cap.positions.dtype}, {cap.positions.nbytes / 2**20:.1f} MiB")
    sids = cap.strategy_ids

    rng = np.random.default_rng(0)
    n_batch = 50 if args.quick else 200
    W = rng.dirichlet(np.ones(K), size=n_batch)
    reps = 3 if args.quick else 5

    # 1. one ensemble
    w1 = W[:1]
    t_rec1, r_rec1 = timed(lambda: compute_metrics(recompute_ensembles(close, w1, cfg)), reps)
    t_rep1, r_rep1 = timed(lambda: compute_metrics(replay(cap, close, cfg, weights=dict(zip(sids, w1[0])))), reps * 3)
    d1 = np.nanmax(np.abs(r_rec1.to_numpy() - r_rep1.to_numpy()))
    print("\n1 ensemble (30 members, net positions, 10 bps):")
    print(f"   recompute strategies: {t_rec1 * 1e3:9.1f} ms")
    print(f"   replay captured     : {t_rep1 * 1e3:9.1f} ms   speedup x{t_rec1 / t_rep1:,.1f}   "
          f"max |metric diff| {d1:.1e}")

    # 2. a batch of candidate weightings (ensemble-weight search)
    t_rec, r_rec = timed(lambda: recompute_ensembles(close, W, cfg), 1)
    Wdf = pd.DataFrame(W, columns=sids)
    t_rep, r_rep = timed(lambda: replay(cap, close, cfg, weights=Wdf), reps)
    diff = np.max(np.abs(r_rec - r_rep.to_numpy()))
    m_rec = compute_metrics(r_rec).sharpe_ratio.to_numpy()
    m_rep = compute_metrics(r_rep).sharpe_ratio.to_numpy()
    print(f"\n{n_batch} candidate ensembles (weight search):")
    print(f"   recompute strategies: {t_rec * 1e3:9.1f} ms  ({t_rec / n_batch * 1e3:.1f} ms per ensemble)")
    print(f"   replay captured     : {t_rep * 1e3:9.1f} ms  ({t_rep / n_batch * 1e3:.2f} ms per ensemble)   "
          f"speedup x{t_rec / t_rep:,.1f}")
    print(f"   max |return diff| {diff:.1e}, max |Sharpe diff| {np.max(np.abs(m_rec - m_rep)):.1e}, "
          f"best candidate same: {int(np.argmax(m_rec)) == int(np.argmax(m_rep))}")
    print(f"\nreplay incl. the one-off capture: {(t_rep + t_cap) * 1e3:.1f} ms -> speedup x{t_rec / (t_rep + t_cap):,.1f}")

    # 3. the kind's fitters on the train part (first 70 %), 200 candidates each
    n_train = int(0.7 * N_BARS)
    train = type(cap)(cap.index[:n_train], cap.symbols, cap.positions[:n_train], cap.columns)
    members = replay(train, close.iloc[:n_train], cfg, kind="close").to_numpy()
    cons = en.Constraints(sum_weights=1.0, min_weight=0.05, max_weight=0.4, max_correlation=0.8)
    eligible = en.eligible_members(members, cons)
    per_ens = t_rec / n_batch
    print(f"\nensemble_optimization fitters, {n_batch} candidates each, train {n_train} bars, "
          f"{int(eligible.sum())}/{K} members eligible (max_correlation 0.8):")
    print(f"   {'method':24s} {'evals':>6s} {'replay s':>9s} {'fit s':>7s} {'recompute s':>12s} {'speedup':>8s} "
          f"{'train Sharpe':>12s}")
    budgets = {"optuna": dict(n_trials=n_batch, batch_size=25), "cmaes": dict(n_trials=n_batch, batch_size=25),
               "nsga2": dict(n_trials=n_batch, batch_size=25),
               "differential_evolution": dict(n_generations=max(1, n_batch // 20 - 1), population_size=20)}
    for method in en.METHODS:
        ev = en.Evaluator(train, close.iloc[:n_train], cfg)
        t0 = time.perf_counter()
        fit = en.fit_weights(method, ev, members, eligible, cons, seed=0, **budgets.get(method, {}))
        t_fit = time.perf_counter() - t0
        assert en.check_weights(fit.weights[None, :], eligible, cons, np.corrcoef(members, rowvar=False)) == []
        rec = fit.n_evals * per_ens
        print(f"   {method:24s} {fit.n_evals:6d} {fit.replay_seconds:9.3f} {t_fit:7.2f} {rec:12.2f} "
              f"{rec / max(fit.replay_seconds, 1e-9):7.1f}x {fit.score:12.3f}")


if __name__ == "__main__":
    main()
