"""Benchmark: batched, persisted parameter search (engine.optimize) vs the plain one-trial-per-engine-call
loops a user would write with Optuna's study.optimize and scipy's differential_evolution.

    python bench/bench_search.py [--quick] [--seeds 5] [--trials 1000]

Data: the synthetic market (engine.synthetic, seed 42), SPY and QQQ, 2014-01-01..2023-12-31 (2 symbols x
10 years); strategy momentum; space fast_period 3..50, slow_period 10..200, signal_threshold 0..0.05;
objective sharpe_ratio with 5 + 2 bps costs; fast >= slow is infeasible.

Printed, side by side, all in this process:
  1. TPE: the batched ask/tell loop with the engine (batches of 8, constant liar, trials recorded in an
     Optuna journal file) against the same loop with a free objective (sampler and storage only): the
     engine's share of the wall time; and against the plain study.optimize loop (one run_grid per trial).
  2. CMA-ES and differential evolution: trials/s of the batched search (one generation per engine call,
     persisted) against the plain loops (Optuna's CmaEsSampler(seed=...) in study.optimize; scipy's
     differential_evolution calling the engine once per vector, same population and updating).  The
     batched CMA-ES restarts with a doubled population when a run converges (IPOP, its default); the
     plain loop with CmaEsSampler(restart_strategy="ipop") is shown too ("plain ipop", best objective
     only), so the best-objective comparison separates the restarts from the batching.
  3. Best objective after 100 / 300 / 1,000 trials for every method, batched vs plain, for each seed and
     averaged over the seeds.
  4. A 10,000-trial random search per strategy (seed 001's broad search: momentum, mean_reversion, breakout,
     pairs_trading) on 6 symbols x 6 years, persisted, against the engine's unpersisted grid/random search.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("ADMF_BENCH_BLAS_THREADS", "1"))

import numpy as np
import optuna
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from admf_assets.engine import search as engine_search  # noqa: E402
from admf_assets.engine.backtest import BacktestConfig, run_grid, tune_allocator  # noqa: E402
from admf_assets.engine.metrics import METRIC_COLUMNS  # noqa: E402
from admf_assets.engine.optimize import (BacktestEvaluator, StudyRef, list_proposals, optimize,  # noqa: E402
                                         parse_objectives, strategy_dims, strategy_valid)
from admf_assets.engine.synthetic import synthetic_bars  # noqa: E402

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)

SPACE = {"fast_period": {"low": 3, "high": 50}, "slow_period": {"low": 10, "high": 200},
         "signal_threshold": {"low": 0.0, "high": 0.05}}
CONFIG = BacktestConfig(cost_bps=5.0, slippage_bps=2.0)
SHARPE = parse_objectives("sharpe_ratio")
CHECKPOINTS = (100, 300, 1000)
PENALTY = -1e9


def closes(symbols, start, end) -> pd.DataFrame:
    bars = synthetic_bars(list(symbols), start, end)
    return bars.pivot(index="date", columns="symbol", values="close").sort_index()


def running_best(values, feasible) -> np.ndarray:
    v = np.where(np.asarray(feasible, bool), np.asarray(values, float), -np.inf)
    v = np.where(np.isfinite(v), v, -np.inf)
    return np.maximum.accumulate(v)


# ------------------------------------------------------------------ this project: batched, persisted
def batched(close, method, n, seed, storage_dir, free=False, population_size=None):
    dims, fixed = strategy_dims("momentum", SPACE)
    ev = BacktestEvaluator(close, "momentum", CONFIG)
    rng = np.random.default_rng(seed)

    def free_evaluate(params):
        out = pd.DataFrame({c: np.zeros(len(params)) for c in METRIC_COLUMNS})
        out["sharpe_ratio"] = rng.normal(0, 1, len(params))  # the sampler still has values to model
        return out

    evaluate = free_evaluate if free else ev

    study = StudyRef(os.path.join(storage_dir, f"{method}-{seed}-{free}-{population_size}.journal"), "bench",
                     resume=False)
    t0 = time.perf_counter()
    res = optimize(evaluate, dims, SHARPE, method=method, n_trials=n, seed=seed, fixed=fixed,
                   valid=strategy_valid("momentum"), study=study, population_size=population_size)
    wall = time.perf_counter() - t0
    t = res.trials
    return wall, running_best(t["objective"], t["feasible"]), res


# ------------------------------------------------------------------ the plain loops (peers)
def one_trial(close, params: dict) -> float:
    if params["fast_period"] >= params["slow_period"]:
        return float("nan")
    return float(run_grid(close, "momentum", pd.DataFrame([params]), CONFIG).metrics["sharpe_ratio"].iloc[0])


def plain_optuna(close, sampler, n):
    """study.optimize with one engine call per trial; fast >= slow is an infeasible trial (set_constraint)."""
    values, feasible = [], []

    def objective(trial):
        p = {"fast_period": trial.suggest_int("fast_period", 3, 50),
             "slow_period": trial.suggest_int("slow_period", 10, 200),
             "signal_threshold": trial.suggest_float("signal_threshold", 0.0, 0.05)}
        v = one_trial(close, p)
        ok = math.isfinite(v)
        trial.set_constraint("valid_parameters", 0.0 if ok else 1.0)
        values.append(v)
        feasible.append(ok)
        return v if ok else PENALTY

    study = optuna.create_study(direction="maximize", sampler=sampler)
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    return time.perf_counter() - t0, running_best(values, feasible)


def plain_de(close, n, seed):
    """scipy's differential_evolution calling the engine once per vector (same initial population,
    deferred updating and seed as the batched search)."""
    from scipy.optimize import differential_evolution
    from scipy.stats import qmc

    dims, _ = strategy_dims("momentum", SPACE)
    pop = max(5, 15 * len(dims))
    init = qmc.LatinHypercube(len(dims), seed=np.random.default_rng(seed)).random(pop)
    values, feasible = [], []

    class Done(Exception):
        pass

    def func(x):
        if len(values) >= n:
            raise Done
        p = {d.name: d.decode(np.array([x[i]]))[0].item() for i, d in enumerate(dims)}
        v = one_trial(close, p)
        values.append(v)
        feasible.append(math.isfinite(v))
        return -v if math.isfinite(v) else 1e9

    t0 = time.perf_counter()
    try:
        differential_evolution(func, [(0.0, 1.0)] * len(dims), init=init, maxiter=n, tol=0, atol=0, polish=False,
                               updating="deferred", rng=np.random.default_rng(seed))
    except Done:
        pass
    return time.perf_counter() - t0, running_best(values[:n], feasible[:n])


def at(best: np.ndarray, k: int) -> float:
    return float(best[min(k, len(best)) - 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 seed, 300 trials, a 2,000-trial random search")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=1000)
    args = ap.parse_args()
    seeds = list(range(1, 2 if args.quick else args.seeds + 1))
    n = 300 if args.quick else args.trials
    tune_allocator()
    close = closes(["SPY", "QQQ"], "2014-01-01", "2023-12-31")
    print(f"data: {close.shape[1]} symbols x {close.shape[0]} bars ({close.index[0].date()}..{close.index[-1].date()}); "
          f"momentum; {n} trials; seeds {seeds}; optuna {optuna.__version__}")
    tmp = tempfile.mkdtemp(prefix="bench_search_")
    best = {}  # (method, variant) -> list of running-best arrays
    times = {}

    def record(key, wall, b):
        best.setdefault(key, []).append(b)
        times.setdefault(key, []).append(wall)

    batched(close, "cmaes", 20, 0, tmp)  # imports (cmaes, scipy.stats) outside the timings
    batched(close, "differential_evolution", 20, 0, tmp)
    for seed in seeds:
        for method in ("tpe", "cmaes", "differential_evolution", "nsga2"):
            wall, b, res = batched(close, method, n, seed, tmp)
            record((method, "batched"), wall, b)
            if method == "tpe":
                wall_free, _, _ = batched(close, method, n, seed, tmp, free=True)
                record((method, "sampler only"), wall_free, b)
        wall, b, _ = batched(close, "cmaes", n, seed, tmp, population_size=16)  # a larger generation per call
        record(("cmaes", "batched, population 16"), wall, b)
        record(("tpe", "plain"), *plain_optuna(close, optuna.samplers.TPESampler(seed=seed, multivariate=True), n))
        record(("cmaes", "plain"), *plain_optuna(close, optuna.samplers.CmaEsSampler(seed=seed), n))
        record(("cmaes", "plain ipop"), *plain_optuna(close, optuna.samplers.CmaEsSampler(
            seed=seed, restart_strategy="ipop"), n))
        record(("nsga2", "plain"), *plain_optuna(close, optuna.samplers.NSGAIISampler(seed=seed), n))
        record(("differential_evolution", "plain"), *plain_de(close, n, seed))
        print(f"  seed {seed} done")

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n1. TPE, {n} trials (median wall time over {len(seeds)} seed(s))")
    print(f"   batched + engine + journal : {med[('tpe', 'batched')]:7.2f} s  ({n / med[('tpe', 'batched')]:6.0f} trials/s)")
    print(f"   sampler only (free obj.)    : {med[('tpe', 'sampler only')]:7.2f} s")
    print(f"   plain study.optimize        : {med[('tpe', 'plain')]:7.2f} s  ({n / med[('tpe', 'plain')]:6.0f} trials/s)")
    print(f"   batched / sampler-only      : {med[('tpe', 'batched')] / med[('tpe', 'sampler only')]:7.2f}x  (target <= 1.25)")
    print(f"   batched speed-up over plain : {med[('tpe', 'plain')] / med[('tpe', 'batched')]:7.2f}x")
    print(f"\n2. trials/s, batched (persisted) vs plain one-trial-per-engine-call loop, {n} trials")
    for method, variant in (("cmaes", "batched"), ("cmaes", "batched, population 16"),
                            ("differential_evolution", "batched"), ("nsga2", "batched")):
        b, p = med[(method, variant)], med[(method, "plain")]
        target = "  (target >= 10x)" if method != "nsga2" else ""
        label = method + (" (population 16)" if "16" in variant else "")
        print(f"   {label:24s}: batched {n / b:7.0f}/s  plain {n / p:7.0f}/s  ratio {p / b:6.1f}x{target}")
    print("\n3. best sharpe_ratio after k trials, batched vs plain (each seed, then the mean)")
    ks = [k for k in CHECKPOINTS if k <= n]
    header = "   method                   variant   " + "".join(f"{'seed ' + str(s):>9s}" for s in seeds)
    for k in ks:
        print(f"   -- after {k} trials")
        print(header + f"{'mean':>9s}")
        for method in ("tpe", "cmaes", "differential_evolution", "nsga2"):
            for variant in ("batched", "batched, population 16", "plain", "plain ipop"):
                if (method, variant) not in best:
                    continue
                vals = [at(b, k) for b in best[(method, variant)]]
                name = "batched/16" if "16" in variant else variant
                print(f"   {method:24s} {name:10s}" + "".join(f"{v:9.3f}" for v in vals) + f"{np.mean(vals):9.3f}")
    print("\n   mean batched - mean plain (>= 0: no worse):")
    for method, variant in (("tpe", "batched"), ("cmaes", "batched"), ("cmaes", "batched, population 16"),
                            ("differential_evolution", "batched"), ("nsga2", "batched")):
        diffs = [np.mean([at(b, k) for b in best[(method, variant)]]) - np.mean([at(b, k) for b in
                                                                                    best[(method, "plain")]])
                 for k in ks]
        label = method + (" (population 16)" if "16" in variant else "")
        print(f"   {label:24s} " + "  ".join(f"{k}: {d:+.3f}" for k, d in zip(ks, diffs)))
    diffs = [np.mean([at(b, k) for b in best[("cmaes", "batched")]]) - np.mean([at(b, k) for b in
                                                                                 best[("cmaes", "plain ipop")]])
             for k in ks]
    print(f"   {'cmaes vs plain ipop':24s} " + "  ".join(f"{k}: {d:+.3f}" for k, d in zip(ks, diffs)))

    # ---- 4. the broad random search of seed 001
    big = closes(["SPY", "QQQ", "IWM", "TLT", "GLD", "VXX"], "2018-01-01", "2023-12-31")
    n_big = 2000 if args.quick else 10_000
    space = {"fast_period": [3, 50], "slow_period": [10, 200], "lookback_period": [5, 100],
             "signal_threshold": [0.001, 0.1]}
    print(f"\n4. random search, {n_big} draws per strategy, {big.shape[1]} symbols x {big.shape[0]} bars "
          f"({big.index[0].date()}..{big.index[-1].date()})")
    total_new = total_old = 0.0
    for i, strategy in enumerate(("momentum", "mean_reversion", "breakout", "pairs_trading")):
        cfg = BacktestConfig(cost_bps=5.0, slippage_bps=2.0, mode="long_short")
        t0 = time.perf_counter()
        props, dims, fixed, drawn = list_proposals(strategy, space, "random", n_big, 42 + i, strict=False)
        res = optimize(BacktestEvaluator(big, strategy, cfg), dims, SHARPE, method="random", n_trials=len(props),
                       proposals=props, fixed=fixed,
                       study=StudyRef(os.path.join(tmp, "broad", f"{strategy}.journal"), f"broad/{strategy}",
                                      resume=False))  # one journal file per study, as the phase does
        new = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine_search.search(big, strategy, space, method="random", n_trials=n_big, seed=42 + i, config=cfg,
                             keep_returns=False, strict=False)
        old = time.perf_counter() - t0
        total_new += new
        total_old += old
        print(f"   {strategy:15s}: {len(props):6d} distinct trials  persisted search {new:6.2f} s "
              f"({len(props) / new:6.0f}/s: engine {res.seconds['engine']:.2f} s, journal {res.seconds['storage']:.2f} s)"
              f"   engine.search (not persisted) {old:6.2f} s")
    print(f"   all four: persisted {total_new:.2f} s, not persisted {total_old:.2f} s "
          f"(ratio {total_new / total_old:.2f})")


if __name__ == "__main__":
    main()
