"""Performance metrics, vectorized over many return columns at once.

Conventions (fixed here, used everywhere in the engine):

* ``returns`` are simple per-bar portfolio returns, net of costs, one column per
  strategy/combination. NaN is treated as a 0 return (no position, no data).
* The annualization factor is explicit: ``periods_per_year`` (default 252 trading
  days). Volatility and Sharpe scale by ``sqrt(periods_per_year)``; the annual
  return is geometric (CAGR over ``n_bars / periods_per_year`` years).
* Standard deviations use ``ddof=1``. Sortino's downside deviation is
  ``sqrt(mean(min(r, 0)**2))`` over all bars (the empyrical/vectorbt definition).
* A ratio whose denominator is zero (constant returns, no losing bar, no
  drawdown, no non-zero bar) is reported as 0, never inf.
* ``max_drawdown`` is a negative fraction (-0.23 = 23% below the running peak,
  the starting capital counting as a peak). ``max_drawdown_duration`` is the
  longest stretch, in bars, from a peak to the bar that recovers it, or to the last
  bar when it never recovers.

Everything is computed on a (columns x bars) block with numpy reductions; there
is no per-column Python loop (large inputs are processed in blocks of columns to
bound memory).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

TRADING_DAYS = 252

METRIC_COLUMNS = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown",
    "max_drawdown_duration",
    "win_rate",
    "n_trades",
    "turnover",
    "exposure",
)
RETURN_METRICS = METRIC_COLUMNS[:9]
POSITION_METRICS = METRIC_COLUMNS[9:]

# Max elements of one (columns x bars) block processed at once (~8 temporaries of
# this many float64 values are alive at the peak).
_BLOCK_ELEMENTS = 125_000


def _as_columns_by_bars(returns) -> tuple[np.ndarray, pd.Index]:
    """Return a C-contiguous float64 (columns x bars) array and the column labels."""
    if isinstance(returns, pd.DataFrame):
        labels = returns.columns
        arr = returns.to_numpy(dtype=np.float64, copy=False).T
    elif isinstance(returns, pd.Series):
        labels = pd.Index([returns.name if returns.name is not None else 0])
        arr = returns.to_numpy(dtype=np.float64, copy=False)[None, :]
    else:
        arr = np.asarray(returns, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        elif arr.ndim == 2:
            arr = arr.T
        else:
            raise ValueError(f"returns must be 1-D or 2-D (bars x columns), got shape {arr.shape}")
        labels = pd.RangeIndex(arr.shape[0])
    arr = np.ascontiguousarray(arr)
    if np.isnan(arr).any():
        arr = np.nan_to_num(arr, nan=0.0)
    return arr, labels


_NEEDS_DD = {"max_drawdown", "max_drawdown_duration", "calmar_ratio"}
_NEEDS_TOTAL = {"total_return", "annual_return", "calmar_ratio"}


def _return_metrics_block(r: np.ndarray, ppy: float, which=None) -> dict[str, np.ndarray]:
    """Metrics of a C-contiguous (columns x bars) float64 block of simple returns.

    ``which``: names of the metrics wanted (default all); expensive groups
    (drawdowns need two scans over the bars) are skipped when not wanted.
    """
    want = set(RETURN_METRICS if which is None else which)
    ncol, n = r.shape
    out: dict[str, np.ndarray] = {}
    if n == 0:
        nan = np.full(ncol, np.nan)
        return {k: nan.copy() for k in RETURN_METRICS if k in want}
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        _return_metrics_into(out, r, float(ppy), want)
    return {k: out[k] for k in RETURN_METRICS if k in want}


def _return_metrics_into(out: dict, r: np.ndarray, ppy: float, want: set) -> None:
    ncol, n = r.shape
    sqrt_ppy = np.sqrt(ppy)
    need_dd = bool(want & _NEEDS_DD)
    need_total = bool(want & _NEEDS_TOTAL)
    total = mdd = under = None

    if need_dd:
        # the equity curve as a cumulative product of (1 + r): one multiply pass (a log1p
        # pass costs more than the rest of the drawdown together)
        equity = np.add(r, 1.0)
        np.multiply.accumulate(equity, axis=1, out=equity)
        if np.isfinite(equity[:, -1]).all() or (r <= -1.0).any():
            total = equity[:, -1] - 1.0
            peak = np.maximum.accumulate(equity, axis=1)
            np.maximum(peak, 1.0, out=peak)  # the initial capital is the first peak
            under = equity < peak
            np.divide(equity, peak, out=equity)
            mdd = np.minimum(equity.min(axis=1) - 1.0, 0.0)
            del peak
        else:  # the product overflowed: log-equity (a bar losing 100% or more has no logarithm)
            logeq = np.log1p(r, out=equity)
            np.cumsum(logeq, axis=1, out=logeq)
            total = np.expm1(logeq[:, -1])
            peak = np.maximum.accumulate(logeq, axis=1)
            np.maximum(peak, 0.0, out=peak)
            np.subtract(logeq, peak, out=logeq)  # log drawdown, <= 0
            del peak
            under = logeq < 0.0
            mdd = np.expm1(logeq.min(axis=1))
        del equity
    elif need_total:
        total = np.multiply.reduce(np.add(r, 1.0), axis=1) - 1.0
    if need_total:
        out["total_return"] = total
        years = n / ppy
        out["annual_return"] = np.where(total > -1.0, np.power(np.maximum(1.0 + total, 0.0), 1.0 / years) - 1.0,
                                        -1.0)

    tmp = None
    if want & {"annual_volatility", "sharpe_ratio", "sortino_ratio"}:
        mean = np.add.reduce(r, axis=1) / n  # == r.mean(axis=1)
    if want & {"annual_volatility", "sharpe_ratio"}:
        if n > 1:
            tmp = np.subtract(r, mean[:, None])
            std = np.sqrt(np.einsum("ij,ij->i", tmp, tmp) / (n - 1))  # two passes, no squared temporary
            # constant columns have exactly zero dispersion (rounding noise in the mean
            # must not turn them into a huge Sharpe); only near-zero candidates are checked
            cand = np.flatnonzero(std <= np.abs(mean) * 1e-9)
            if cand.size:
                sub = r[cand]
                std[cand[sub.max(axis=1) == sub.min(axis=1)]] = 0.0
        else:
            std = np.full(ncol, np.nan)
        out["annual_volatility"] = std * sqrt_ppy
        sharpe = np.where(std > 0, mean / np.where(std > 0, std, 1.0) * sqrt_ppy, 0.0)
        out["sharpe_ratio"] = np.where(np.isnan(std), np.nan, sharpe)
    if "sortino_ratio" in want:
        neg = np.minimum(r, 0.0, out=tmp)
        downside = np.sqrt(np.einsum("ij,ij->i", neg, neg) / n)
        out["sortino_ratio"] = np.where(downside > 0, mean / np.where(downside > 0, downside, 1.0) * sqrt_ppy, 0.0)
    del tmp
    if need_dd:
        out["max_drawdown"] = mdd
        if need_total:
            out["calmar_ratio"] = np.where(mdd < 0, out["annual_return"] / np.where(mdd < 0, -mdd, 1.0), 0.0)
        out["max_drawdown_duration"] = _max_drawdown_duration(under)
    if "win_rate" in want:
        out["win_rate"] = _win_rate(r)


def _count_per_row(mask: np.ndarray) -> np.ndarray:
    """Number of True along the last axis of a boolean array (much faster than
    ``count_nonzero(axis=-1)``: a small-integer sum of its int8 view)."""
    n = mask.shape[-1]
    dt = np.int16 if n < np.iinfo(np.int16).max else np.int64  # exact: no overflow
    return np.add.reduce(mask.view(np.int8), axis=-1, dtype=dt).astype(np.int64)


def _win_rate(r: np.ndarray) -> np.ndarray:
    wins = _count_per_row(r > 0)
    active = _count_per_row(r != 0)
    return np.where(active > 0, wins / np.maximum(active, 1), 0.0)


def _max_drawdown_duration(under: np.ndarray) -> np.ndarray:
    """Longest peak-to-recovery (or peak-to-end) span in bars, per row of a
    (columns x bars) boolean "below the running peak" array. A peak before bar 0 is
    the initial capital (index -1).

    Each run of under-water bars [a, b] is a drawdown from the peak at a-1; it lasts
    b - a + 2 bars when bar b+1 recovers it, b - a + 1 when it is still open at the end.
    """
    ncol, n = under.shape
    out = np.zeros(ncol, dtype=np.int64)
    if n == 0:
        return out.astype(np.float64)
    # one scan for the run boundaries: on rows padded with a dry bar at both ends, the
    # under-water flag changes at a (run start) and at b + 1 (just after its end)
    pad = np.zeros((ncol, n + 2), dtype=bool)
    pad[:, 1 : n + 1] = under
    edge = pad[:, 1:] != pad[:, :-1]  # (ncol, n + 1)
    flat = np.flatnonzero(edge)  # row-major: start, end, start, end, ... per row
    if flat.size:
        fs, fe = flat[0::2], flat[1::2]
        rs = fs // (n + 1)
        a = fs - rs * (n + 1)
        e = fe - rs * (n + 1)  # b + 1
        lengths = e - a + (e < n)
        np.maximum.at(out, rs, lengths)
    return out.astype(np.float64)


def positions_bsc(positions) -> np.ndarray:
    """Positions as a (bars x symbols x columns) array: 1-D is one column of one symbol, 2-D is
    (bars x columns) of one symbol; booleans become int8 and NaN (no position) 0."""
    pos = positions.to_numpy() if isinstance(positions, (pd.DataFrame, pd.Series)) else np.asarray(positions)
    if pos.ndim == 1:
        pos = pos[:, None, None]
    elif pos.ndim == 2:
        pos = pos[:, None, :]
    if pos.ndim != 3:
        raise ValueError(f"positions must be 1-, 2- or 3-D (bars x symbols x columns), got shape {pos.shape}")
    if pos.dtype == bool:
        pos = pos.view(np.int8)
    if pos.dtype.kind == "f" and np.isnan(pos).any():
        pos = np.nan_to_num(pos, nan=0.0)
    return pos


def position_stats(positions, periods_per_year: float = TRADING_DAYS, weights=None) -> dict[str, np.ndarray]:
    """n_trades, turnover and exposure of positions.

    ``positions``: (bars x columns) or (bars x symbols x columns), the position
    decided at each bar (before the one-bar lag). ``weights`` (symbols,) weights the
    per-symbol turnover of 3-D positions (default equal, 1/symbols).

    * n_trades: bars where a position is opened or flipped (its sign changes to a
      non-zero sign), summed over symbols;
    * turnover: sum over bars of |change in position| (starting from flat, weighted
      over symbols) divided by the number of years;
    * exposure: fraction of bars with a non-zero position (in any symbol).
    """
    pos = positions_bsc(positions)
    nsym = pos.shape[1]
    if weights is None:
        w = np.full(nsym, 1.0 / nsym)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(nsym)
    return _position_stats_scb(pos.transpose(1, 2, 0), w, float(periods_per_year))


def _position_stats_scb(pos: np.ndarray, w: np.ndarray, ppy: float) -> dict[str, np.ndarray]:
    """n_trades / turnover / exposure per column from (symbols x columns x bars) positions."""
    S, C, T = pos.shape
    if T == 0:
        nan = np.full(C, np.nan)
        return {"n_trades": nan, "turnover": nan.copy(), "exposure": nan.copy()}
    is_int = pos.dtype.kind in "iu"
    sg = pos.astype(np.int8, copy=False) if is_int else np.sign(pos).astype(np.int8)
    opens = sg != 0
    np.logical_and(opens[:, :, 1:], sg[:, :, 1:] != sg[:, :, :-1], out=opens[:, :, 1:])
    n_trades = _count_per_row(opens).sum(axis=0).astype(np.float64)
    del opens
    if is_int:  # |change| is in {0, 1, 2}: int8 arithmetic is exact
        d = np.abs(np.subtract(sg[:, :, 1:], sg[:, :, :-1]))
        tot = (np.add.reduce(d, axis=2, dtype=np.int32).astype(np.int64)  # <= 2 * bars
               + np.abs(sg[:, :, 0]).astype(np.int64)).astype(np.float64)
        del d
    else:
        tot = np.abs(np.diff(pos, axis=2)).sum(axis=2) + np.abs(pos[:, :, 0])
    turnover = (tot * np.abs(w)[:, None]).sum(axis=0) / (T / ppy)
    active = sg[0] != 0
    for s in range(1, S):  # symbols: few
        active |= sg[s] != 0
    exposure = _count_per_row(active) / T
    return {"n_trades": n_trades, "turnover": turnover, "exposure": exposure}


def metrics_arrays(returns, periods_per_year: float = TRADING_DAYS, which=None) -> dict[str, np.ndarray]:
    """Return metrics as a dict of 1-D arrays (one value per column)."""
    r, _ = _as_columns_by_bars(returns)
    return _metrics_of_block_rows(r, periods_per_year, which)


def _metrics_of_block_rows(r: np.ndarray, ppy: float, which=None) -> dict[str, np.ndarray]:
    ncol, n = r.shape
    keys = [k for k in RETURN_METRICS if which is None or k in which]
    if ncol == 0:
        return {k: np.empty(0) for k in keys}
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    parts = [_return_metrics_block(r[i : i + step], ppy, which) for i in range(0, ncol, step)]
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _check_which(which):
    if which is None:
        return None
    which = [which] if isinstance(which, str) else list(which)
    bad = [k for k in which if k not in METRIC_COLUMNS]
    if bad:
        raise ValueError(f"unknown metric(s) {bad}; valid metrics: {', '.join(METRIC_COLUMNS)}")
    return [k for k in METRIC_COLUMNS if k in which]


def compute_metrics(returns, periods_per_year: int = TRADING_DAYS, positions=None, weights=None, which=None) -> pd.DataFrame:
    """Metrics of each column of ``returns`` (see the module docstring for definitions).

    returns: 1-D or 2-D (bars x columns) array, Series or DataFrame of simple per-bar
    returns net of costs. positions (optional): same shape (bars x columns), or
    (bars x symbols x columns) with ``weights`` over symbols; without it n_trades,
    turnover and exposure are NaN.
    Returns a DataFrame with one row per column (index = the DataFrame's columns,
    or 0..n-1) and the columns of ``METRIC_COLUMNS`` in that order (only those in
    ``which`` when given).
    """
    if periods_per_year is None or not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be > 0, got {periods_per_year!r}")
    which = _check_which(which)
    r, labels = _as_columns_by_bars(returns)
    data = _metrics_of_block_rows(r, float(periods_per_year), which)
    ncol = r.shape[0]
    if positions is not None:
        pos = positions.to_numpy() if isinstance(positions, (pd.DataFrame, pd.Series)) else np.asarray(positions)
        if pos.ndim == 1:
            pos = pos[:, None]
        if pos.shape[0] != r.shape[1] or pos.shape[-1] != ncol:
            raise ValueError(
                f"positions shape {pos.shape} does not match returns (bars={r.shape[1]}, columns={ncol})"
            )
        data.update(position_stats(pos, float(periods_per_year), weights))
    else:
        for k in POSITION_METRICS:
            data[k] = np.full(ncol, np.nan)
    cols = list(METRIC_COLUMNS if which is None else which)
    # one float64 block (all metrics are float64): much cheaper than a dict of columns
    table = np.empty((ncol, len(cols)), dtype=np.float64)
    for j, k in enumerate(cols):
        table[:, j] = data[k]
    return pd.DataFrame(table, index=labels, columns=cols, copy=False)


def sharpe_ratio(returns, periods_per_year: int = TRADING_DAYS) -> np.ndarray:
    """Annualized Sharpe ratio per column (mean / std(ddof=1) * sqrt(ppy); 0 if std == 0)."""
    return metrics_arrays(returns, periods_per_year, ["sharpe_ratio"])["sharpe_ratio"]


__all__ = [
    "TRADING_DAYS",
    "METRIC_COLUMNS",
    "RETURN_METRICS",
    "POSITION_METRICS",
    "compute_metrics",
    "metrics_arrays",
    "position_stats",
    "sharpe_ratio",
]
