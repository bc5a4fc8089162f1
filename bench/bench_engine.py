"""Benchmark: this engine vs vectorbt on the same seeded data and SMA-crossover grid.

    python bench/bench_engine.py            # full run (both shapes, memory check)
    python bench/bench_engine.py --quick    # fewer repeats

Data: seeded GBM (numpy default_rng(42), daily log-returns N(3e-4, 0.012)), 2520
business days; 1 symbol (the first column) and 20 symbols. Grid: fast 5..50 step 5,
slow 20..200 step 10, fast < slow -> 174 combinations per symbol. Long only, position
at close t earns t -> t+1; once without fees, once with 10 bps.

Both engines run in this one process; vectorbt's numba functions are compiled/warmed
on a small input first. Timings are medians of repeated runs (wall clock).
"combos" counts (combination, symbol) sleeves, i.e. 174 for 1 symbol and 3480 for
20, the columns vectorbt simulates.

Engine variants timed:
  same-outputs : per-sleeve returns + total return + Sharpe (what vectorbt computes)
  all-metrics  : per-sleeve returns + all 12 metrics (drawdowns, trades, turnover, ...)
  portfolio    : the default run_grid: sleeves combined per combination (174 portfolios)
                 with all metrics.
The allocator tuning (glibc mallopt, ``tune_allocator``) is measured off and then on,
for both engines. Peak memory of a 10,000-combination x 20-symbol x 2520-bar grid is
measured first, in a fresh subprocess that imports only the engine (ru_maxrss and
/proc VmHWM).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from admf_assets.engine.backtest import BacktestConfig, run_grid, tune_allocator  # noqa: E402
from admf_assets.engine.strategies import expand_grid  # noqa: E402

N_BARS = 2520
FAST = list(range(5, 51, 5))
SLOW = list(range(20, 201, 10))


def make_closes(n_symbols: int = 20, n_bars: int = N_BARS, seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    logret = rng.normal(3e-4, 0.012, (n_bars, n_symbols))
    close = 100.0 * np.exp(np.cumsum(logret, axis=0))
    return pd.DataFrame(close, index=pd.bdate_range("2010-01-04", periods=n_bars),
                        columns=[f"SYM{i:02d}" for i in range(n_symbols)])


def grid() -> pd.DataFrame:
    return expand_grid("momentum", {"fast_period": FAST, "slow_period": SLOW})


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run_vectorbt(vbt, close: pd.DataFrame, g: pd.DataFrame, fees: float):
    fast = vbt.MA.run(close, window=g.fast_period.tolist(), short_name="fast")
    slow = vbt.MA.run(close, window=g.slow_period.tolist(), short_name="slow")
    entries = fast.ma_above(slow)
    exits = fast.ma_below(slow)
    pf = vbt.Portfolio.from_signals(close, entries, exits, fees=fees, freq="1D")
    ra = pf.get_returns_acc(freq="1D", year_freq="252 days")
    return pf.total_return().to_numpy(), ra.sharpe_ratio().to_numpy()


def memory_child(n_combos: int) -> None:
    """Run a n_combos x 20 symbols x 2520 bars grid and print peak RSS (fresh process)."""
    close = make_closes(20)
    fast = np.arange(2, 102)
    slow = np.arange(105, 305, 2)
    g = pd.DataFrame({"fast_period": np.repeat(fast, len(slow)), "slow_period": np.tile(slow, len(fast))})
    g = g.iloc[:n_combos].reset_index(drop=True)
    t0 = time.perf_counter()
    res = run_grid(close, "momentum", g, BacktestConfig(cost_bps=5))
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    hwm = float("nan")
    try:
        with open("/proc/self/status") as fh:
            hwm = [int(ln.split()[1]) / 1024 for ln in fh if ln.startswith("VmHWM")][0]
    except OSError:
        pass
    print(f"MEMORY {len(g)} {dt:.3f} {peak:.1f} {hwm:.1f} {res.returns.shape[0]}x{res.returns.shape[1]} "
          f"{float(res.metrics.sharpe_ratio.max()):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--memory-combos", type=int, default=10_000)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return

    # Memory first, while this process is small: a child's ru_maxrss starts from the
    # parent's RSS at fork time on Linux, so it must not be forked from a big process.
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", str(args.memory_combos)],
                         capture_output=True, text=True, check=True).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("MEMORY")][0].split()
    n, dt, peak, hwm = int(line[1]), float(line[2]), float(line[3]), float(line[4])
    mem_line = (f"\npeak memory, {n:,} combos x 20 symbols x {N_BARS} bars (default run_grid, 5 bps, fresh process):\n"
                f"   {dt:.2f} s ({n * 20 * N_BARS / dt:.3e} bar-combos/s), peak RSS ru_maxrss {peak:,.0f} MiB "
                f"({peak / 1024:.2f} GiB), VmHWM {hwm:,.0f} MiB, returns {line[5]}")
    print(mem_line)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import vectorbt as vbt
    print(f"vectorbt {vbt.__version__} import: {time.perf_counter() - t0:.2f} s")
    warnings.filterwarnings("ignore")
    g = grid()
    assert len(g) == 174
    closes = make_closes(20)
    t0 = time.perf_counter()
    run_vectorbt(vbt, closes.iloc[:300, :2], g, 0.001)  # numba compile / cache load
    run_vectorbt(vbt, closes.iloc[:300, :2], g, 0.0)
    print(f"vectorbt numba warm-up: {time.perf_counter() - t0:.2f} s")
    run_grid(closes.iloc[:300, :2], "momentum", g, per_symbol=True)  # engine warm-up (imports, caches)

    rep_small, rep_big = (3, 2) if args.quick else (9, 3)
    rows = []
    for tuned in (False, True):
        if tuned:
            ok = tune_allocator()
            print(f"\n== allocator tuning (mallopt) {'ON' if ok else 'unavailable'} ==")
        else:
            print("\n== default allocator ==")
        for n_sym in (1, 20):
            close = closes.iloc[:, :n_sym]
            reps = rep_small if n_sym == 1 else rep_big
            n_cols = len(g) * n_sym
            bar_combos = n_cols * N_BARS
            for fees in (0.0, 0.001):
                cfg = BacktestConfig(cost_bps=fees * 1e4)
                t_vbt, (tr_v, sr_v) = timed(lambda: run_vectorbt(vbt, close, g, fees), reps)
                t_same, res_same = timed(lambda: run_grid(close, "momentum", g, cfg, per_symbol=True,
                                                          metrics=["total_return", "sharpe_ratio"]), reps)
                t_all, res_all = timed(lambda: run_grid(close, "momentum", g, cfg, per_symbol=True), reps)
                t_port, _ = timed(lambda: run_grid(close, "momentum", g, cfg), reps)
                d_tr = np.max(np.abs(res_same.metrics.total_return.to_numpy() - tr_v))
                d_sr = np.max(np.abs(res_same.metrics.sharpe_ratio.to_numpy() - sr_v))
                same_all = np.array_equal(res_all.metrics.sharpe_ratio.to_numpy(),
                                          res_same.metrics.sharpe_ratio.to_numpy())
                label = f"{n_sym:>2} sym, fees {fees * 1e4:>4.0f} bps"
                print(f"{label}: {n_cols} combos, {bar_combos:.3g} bar-combos")
                for name, t in (("vectorbt", t_vbt), ("engine same-outputs", t_same),
                                ("engine all-metrics", t_all), ("engine portfolio", t_port)):
                    ratio = t_vbt / t
                    print(f"   {name:<20} {t * 1e3:9.1f} ms  {n_cols / t:>10,.0f} combos/s  "
                          f"{bar_combos / t:>12.3e} bar-combos/s  x{ratio:5.1f} vs vectorbt")
                print(f"   max |diff| vs vectorbt: total_return {d_tr:.2e}, sharpe {d_sr:.2e}; "
                      f"all-metrics run gives identical Sharpe: {same_all}")
                rows.append((tuned, n_sym, fees, t_vbt, t_same, t_all, t_port, d_tr, d_sr))

    print("\nsummary (ratio = vectorbt time / engine time):")
    print("alloc-tuned  symbols  fees   vbt combos/s  same-outputs x  all-metrics x  portfolio x  max|dTR|  max|dSR|")
    for tuned, n_sym, fees, tv, ts, ta, tp, dtr, dsr in rows:
        n_cols = len(g) * n_sym
        print(f"{str(tuned):>11}  {n_sym:>7}  {fees * 1e4:>4.0f}  {n_cols / tv:>13,.0f}  {tv / ts:>14.1f}  "
              f"{tv / ta:>13.1f}  {tv / tp:>11.1f}  {dtr:.1e}  {dsr:.1e}")

    print(mem_line)

if __name__ == "__main__":
    main()
