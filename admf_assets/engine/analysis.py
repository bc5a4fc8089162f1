"""Return-series analysis: equity, drawdowns, correlation, volatility regimes, Monte Carlo.

Pure numpy/pandas; imports no dagster.

Conventions
-----------
* ``returns`` are simple per-bar returns (``0.01`` = +1 %). NaN is treated as a flat bar
  (return 0) by the equity/drawdown functions.
* Equity starts from a capital of 1.0 *before* the first bar. The running peak therefore
  includes that starting capital: a strategy that loses 10 % on its first bar is 10 %
  under water, not 0 %.
* Drawdowns are negative fractions (``-0.25`` = 25 % below the running peak).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "equity_curve",
    "underwater",
    "drawdown_analysis",
    "correlation_analysis",
    "correlation_summary",
    "volatility_regimes",
    "regime_labels",
    "regime_performance",
    "bootstrap_indices",
    "monte_carlo",
    "market_conditions",
    "recommend_strategy_types",
]

# A bar counts as "under water" only if it is below the peak by more than this relative
# amount; it keeps float noise (1.1 * (1/1.1) != 1.0) from inventing endless drawdowns.
_DD_TOL = 1e-12

DRAWDOWN_COLUMNS = [
    "peak_date",
    "trough_date",
    "recovery_date",
    "depth",
    "bars_to_trough",
    "bars_to_recovery",
    "duration_bars",
    "recovered",
]


def _as_series(returns, name: str = "returns") -> pd.Series:
    if isinstance(returns, pd.DataFrame):
        if returns.shape[1] != 1:
            raise ValueError(f"{name}: expected a Series or a one-column DataFrame, got {returns.shape[1]} columns")
        returns = returns.iloc[:, 0]
    if not isinstance(returns, pd.Series):
        returns = pd.Series(np.asarray(returns, dtype=float))
    return returns.astype(float)


# ---------------------------------------------------------------------------------------
# equity and drawdowns
# ---------------------------------------------------------------------------------------
def equity_curve(returns: pd.Series) -> pd.Series:
    """Cumulative growth of 1.0: ``(1 + r).cumprod()`` with NaN returns treated as 0."""
    r = _as_series(returns)
    eq = (1.0 + r.fillna(0.0)).cumprod()
    eq.name = r.name
    return eq


def underwater(returns: pd.Series) -> pd.Series:
    """Drawdown from the running peak at every bar (``<= 0``).

    ``equity / max(1, running max of equity) - 1``: the starting capital of 1.0 counts as
    the first peak.
    """
    r = _as_series(returns)
    eq = equity_curve(r).to_numpy()
    if eq.size == 0:
        return pd.Series([], index=r.index, dtype=float, name=r.name)
    peak = np.maximum(np.maximum.accumulate(eq), 1.0)
    dd = eq / peak - 1.0
    dd = np.minimum(dd, 0.0)
    return pd.Series(dd, index=r.index, name=r.name)


def drawdown_analysis(returns: pd.Series, top_n: int | None = 10) -> pd.DataFrame:
    """One row per drawdown episode, deepest first.

    An episode starts at the last running high (``peak``), reaches its lowest equity at
    ``trough`` and ends at ``recovery``, the first bar whose equity is back at (or above)
    the peak. Columns:

    * ``peak_date``: index label of the peak bar. When the peak is the starting capital
      (losses from the very first bar), this is the first index label.
    * ``trough_date``, ``recovery_date`` (NaT/NaN when not recovered by the last bar)
    * ``depth``: lowest drawdown of the episode, a negative fraction
    * ``bars_to_trough``: bars from peak to trough
    * ``bars_to_recovery``: bars from trough to recovery (NaN if not recovered)
    * ``duration_bars``: bars from peak to recovery, or to the last bar if not recovered
    * ``recovered``: bool

    Bar counts are counts of returns: a starting-capital peak sits one bar before the
    first label. ``top_n=None`` keeps every episode. Ties in depth keep time order.
    """
    r = _as_series(returns)
    dd = underwater(r).to_numpy()
    n = dd.size
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in DRAWDOWN_COLUMNS}).rename_axis("episode")
    if n == 0:
        return empty
    under = dd < -_DD_TOL
    if not under.any():
        return empty

    prev = np.concatenate(([False], under[:-1]))
    nxt = np.concatenate((under[1:], [False]))
    starts = np.flatnonzero(under & ~prev)  # first under-water bar of each episode
    ends = np.flatnonzero(under & ~nxt)  # last under-water bar of each episode
    n_ep = starts.size

    # trough: first position of the minimum inside each episode (groupby runs in C)
    ep_id = np.cumsum(under & ~prev) - 1
    pos = np.flatnonzero(under)
    trough = (
        pd.Series(dd[pos], index=pos).groupby(ep_id[pos], sort=True).idxmin().to_numpy(dtype=np.int64)
    )

    peak = starts - 1  # -1 means the starting capital (one bar before the first label)
    recovery = ends + 1
    recovered = recovery < n
    last = n - 1

    labels = r.index
    rec_lbl = labels.take(np.minimum(recovery, last)).where(recovered)  # NaT / NaN if not

    out = pd.DataFrame(
        {
            "peak_date": labels.take(np.maximum(peak, 0)),
            "trough_date": labels.take(trough),
            "recovery_date": rec_lbl,
            "depth": dd[trough],
            "bars_to_trough": (trough - peak).astype(np.int64),
            "bars_to_recovery": np.where(recovered, recovery - trough, np.nan),
            "duration_bars": np.where(recovered, recovery, last) - peak,
            "recovered": recovered,
        },
        index=pd.RangeIndex(n_ep),
    )
    out["duration_bars"] = out["duration_bars"].astype(np.int64)
    out = out.sort_values("depth", kind="mergesort").reset_index(drop=True)
    if top_n is not None:
        out = out.head(int(top_n))
    out.index.name = "episode"
    return out


# ---------------------------------------------------------------------------------------
# correlation
# ---------------------------------------------------------------------------------------
def correlation_analysis(returns: pd.DataFrame, min_periods: int = 2) -> pd.DataFrame:
    """Pearson correlation matrix (wide, square: columns x columns) of the return columns.

    Pairwise-complete observations are used. The mean off-diagonal correlation is stored
    in ``result.attrs["mean_offdiag"]``; :func:`correlation_summary` gives more.
    """
    if isinstance(returns, pd.Series):
        returns = returns.to_frame()
    corr = returns.astype(float).corr(method="pearson", min_periods=min_periods)
    corr.attrs["mean_offdiag"] = correlation_summary(corr)["mean_offdiag"]
    return corr


def correlation_summary(corr: pd.DataFrame) -> dict:
    """Summary of a square correlation matrix's off-diagonal entries.

    Returns ``mean_offdiag``, ``median_offdiag``, ``min_offdiag``, ``max_offdiag`` and the
    most/least correlated pairs (NaN/None when fewer than two columns).
    """
    a = corr.to_numpy(dtype=float)
    k = a.shape[0]
    res = {
        "n_series": int(k),
        "mean_offdiag": float("nan"),
        "median_offdiag": float("nan"),
        "min_offdiag": float("nan"),
        "max_offdiag": float("nan"),
        "most_correlated": None,
        "least_correlated": None,
    }
    if k < 2:
        return res
    iu = np.triu_indices(k, 1)
    vals = a[iu]
    ok = ~np.isnan(vals)
    if not ok.any():
        return res
    v = vals[ok]
    rows, cols = iu[0][ok], iu[1][ok]
    names = list(corr.columns)
    imax, imin = int(np.argmax(v)), int(np.argmin(v))
    res.update(
        mean_offdiag=float(v.mean()),
        median_offdiag=float(np.median(v)),
        min_offdiag=float(v[imin]),
        max_offdiag=float(v[imax]),
        most_correlated=(names[rows[imax]], names[cols[imax]]),
        least_correlated=(names[rows[imin]], names[cols[imin]]),
    )
    return res


# ---------------------------------------------------------------------------------------
# volatility regimes (causal)
# ---------------------------------------------------------------------------------------
UNKNOWN_REGIME = "unknown"


def regime_labels(n_regimes: int) -> list[str]:
    """Labels from the calmest to the most volatile regime."""
    if n_regimes == 2:
        return ["calm", "volatile"]
    if n_regimes == 3:
        return ["low", "mid", "high"]
    if n_regimes < 2:
        raise ValueError(f"n_regimes must be >= 2, got {n_regimes}")
    return [f"q{i + 1}" for i in range(n_regimes)]


def volatility_regimes(
    returns: pd.Series,
    window: int = 20,
    n_regimes: int = 2,
    min_history: int | None = None,
) -> pd.Series:
    """Causal volatility-regime label per bar.

    At bar ``t`` the rolling standard deviation of the last ``window`` returns (bars
    ``t-window+1 .. t``) is compared with the expanding ``k/n_regimes`` quantiles of all
    rolling-vol values seen up to and including ``t``; the label is the number of
    thresholds it exceeds. Nothing after ``t`` is used, so the label at ``t`` may drive the
    position held from ``t`` to ``t+1``.

    Labels: ``calm``/``volatile`` (2), ``low``/``mid``/``high`` (3), ``q1..qn`` otherwise;
    ``"unknown"`` during warm-up (until ``window`` returns and ``min_history`` rolling-vol
    values, default ``window``, exist). Returns an object-dtype Series named ``regime``.
    """
    if window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    labels = np.array(regime_labels(n_regimes), dtype=object)
    r = _as_series(returns)
    min_history = window if min_history is None else int(min_history)
    vol = r.rolling(window, min_periods=window).std(ddof=1)
    # expanding quantiles over the non-NaN rolling vols seen so far (NaN rows are skipped
    # by the expanding window, so warm-up NaNs do not count as history)
    count = vol.expanding(min_periods=1).count()
    level = np.zeros(len(r), dtype=np.int64)
    for k in range(1, n_regimes):
        thr = vol.expanding(min_periods=1).quantile(k / n_regimes, interpolation="linear")
        level += (vol.to_numpy() > thr.to_numpy()).astype(np.int64)
    ready = vol.notna().to_numpy() & (count.to_numpy() >= min_history)
    out = np.where(ready, labels[np.minimum(level, n_regimes - 1)], UNKNOWN_REGIME)
    return pd.Series(out.astype(object), index=r.index, name="regime")


def regime_performance(
    returns: pd.Series,
    regimes: pd.Series,
    periods_per_year: int = 252,
    include_unknown: bool = False,
) -> pd.DataFrame:
    """Per-regime performance: ``n_bars``, ``fraction`` of time and ``compute_metrics``.

    The returns of each regime are taken as one (non-contiguous) series and passed to
    :func:`admf_assets.engine.metrics.compute_metrics`. ``regimes`` is aligned on the
    returns' index; bars whose regime is NaN or ``"unknown"`` are dropped unless
    ``include_unknown``. ``fraction`` is relative to the bars kept. Index: regime label,
    in the order of :func:`regime_labels` when the labels come from there, otherwise
    sorted.
    """
    from .metrics import compute_metrics  # local: keeps this module importable on its own

    r = _as_series(returns)
    reg = regimes.reindex(r.index) if isinstance(regimes, pd.Series) else pd.Series(regimes, index=r.index)
    reg = reg.astype(object)
    keep = reg.notna()
    if not include_unknown:
        keep &= reg != UNKNOWN_REGIME
    r, reg = r[keep], reg[keep]
    present = list(pd.unique(reg))
    order: list = []
    for n in (2, 3):
        lab = regime_labels(n)
        if set(present) <= set(lab) | {UNKNOWN_REGIME}:
            order = [x for x in lab + [UNKNOWN_REGIME] if x in present]
            break
    if not order:
        order = sorted(present, key=lambda x: str(x))
    total = len(r)
    rows = []
    for lab in order:
        sub = r[reg == lab]
        m = compute_metrics(sub.to_frame(name=str(lab)), periods_per_year=periods_per_year)
        row = m.iloc[0].to_dict()
        rows.append({"regime": lab, "n_bars": int(len(sub)), "fraction": len(sub) / total if total else np.nan, **row})
    if not rows:
        return pd.DataFrame(columns=["n_bars", "fraction"]).rename_axis("regime")
    return pd.DataFrame(rows).set_index("regime")


# ---------------------------------------------------------------------------------------
# Monte Carlo (block bootstrap)
# ---------------------------------------------------------------------------------------
def bootstrap_indices(
    n: int,
    n_sims: int,
    horizon: int,
    rng: np.random.Generator,
    block_size: int = 1,
    method: str = "stationary",
) -> np.ndarray:
    """Index matrix ``(n_sims, horizon)`` into a series of length ``n``, vectorized.

    * ``method="fixed"``: circular block bootstrap with blocks of exactly ``block_size``.
    * ``method="stationary"``: Politis-Romano stationary bootstrap, block lengths
      geometric with mean ``block_size`` (circular wrap-around).

    ``block_size=1`` is the iid bootstrap for both methods.
    """
    if n < 1:
        raise ValueError("cannot bootstrap an empty series")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if horizon < 1 or n_sims < 1:
        raise ValueError("horizon and n_sims must be >= 1")
    if block_size == 1:
        return rng.integers(0, n, size=(n_sims, horizon))
    if method == "fixed":
        k = -(-horizon // block_size)
        starts = rng.integers(0, n, size=(n_sims, k))
        idx = (starts[:, :, None] + np.arange(block_size)[None, None, :]) % n
        return idx.reshape(n_sims, k * block_size)[:, :horizon]
    if method == "stationary":
        p = 1.0 / block_size
        new = rng.random((n_sims, horizon)) < p
        new[:, 0] = True
        pos = rng.integers(0, n, size=(n_sims, horizon))
        t = np.arange(horizon)
        last_start = np.maximum.accumulate(np.where(new, t[None, :], 0), axis=1)
        start_val = np.take_along_axis(pos, last_start, axis=1)
        return (start_val + (t[None, :] - last_start)) % n
    raise ValueError(f"unknown bootstrap method {method!r}; use 'stationary' or 'fixed'")


def _path_stats(r: np.ndarray, periods_per_year: float) -> dict[str, np.ndarray]:
    """total_return, max_drawdown, sharpe_ratio of each row of a (sims, T) matrix, with
    exactly the conventions of :func:`admf_assets.engine.metrics.compute_metrics`."""
    from .metrics import metrics_arrays

    m = metrics_arrays(r.T, periods_per_year)  # metrics_arrays takes (bars x columns)
    return {k: m[k] for k in ("total_return", "max_drawdown", "sharpe_ratio")}


MC_COLUMNS = ["historical", "mean", "std", "p05", "p25", "p50", "p75", "p95", "prob_loss"]

# simulated values materialized at once; larger runs are generated in fixed-size batches
# (the batch size depends only on the horizon, so results depend only on the inputs)
_MC_BATCH_ELEMENTS = 4_000_000


def monte_carlo(
    returns: pd.Series,
    n_sims: int = 1000,
    horizon: int | None = None,
    seed: int = 0,
    block_size: int = 1,
    periods_per_year: int = 252,
    method: str = "stationary",
) -> pd.DataFrame:
    """Block-bootstrap Monte Carlo of a return series.

    Resamples ``horizon`` bars (default: the series length, NaNs dropped) ``n_sims`` times
    with :func:`bootstrap_indices` driven by ``np.random.default_rng(seed)``; no Python loop
    per simulation. Rows: ``total_return``, ``max_drawdown``, ``sharpe_ratio``, computed
    per simulated path with the conventions of ``metrics.compute_metrics`` (annualized
    with ``periods_per_year``, ddof=1, no risk-free rate, starting capital as first
    peak). Columns: ``historical`` (the statistic of the actual series), ``mean``,
    ``std`` (ddof=1), ``p05 .. p95`` (percentiles) and ``prob_loss`` = P(total return <
    0), filled on the ``total_return`` row only. ``attrs`` carries the settings.
    """
    r = _as_series(returns).dropna().to_numpy()
    n = r.size
    if n < 2:
        raise ValueError(f"monte_carlo needs at least 2 non-NaN returns, got {n}")
    horizon = n if horizon is None else int(horizon)
    rng = np.random.default_rng(seed)
    batch = max(1, _MC_BATCH_ELEMENTS // max(horizon, 1))
    parts: dict[str, list[np.ndarray]] = {"total_return": [], "max_drawdown": [], "sharpe_ratio": []}
    done = 0
    while done < n_sims:
        m = min(batch, n_sims - done)
        idx = bootstrap_indices(n, m, horizon, rng, block_size=block_size, method=method)
        for k, v in _path_stats(r[idx], periods_per_year).items():
            parts[k].append(v)
        done += m
    sims = {k: np.concatenate(v) for k, v in parts.items()}
    hist = _path_stats(r[None, :], periods_per_year)

    rows = {}
    for k, v in sims.items():
        v = v[np.isfinite(v)]
        if v.size:
            q = np.percentile(v, [5, 25, 50, 75, 95])
            rows[k] = [
                float(hist[k][0]),
                float(v.mean()),
                float(v.std(ddof=1)) if v.size > 1 else np.nan,
                *map(float, q),
                float(np.mean(v < 0)) if k == "total_return" else np.nan,
            ]
        else:
            rows[k] = [float(hist[k][0])] + [np.nan] * (len(MC_COLUMNS) - 1)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=MC_COLUMNS)
    out.index.name = "statistic"
    out.attrs.update(
        n_sims=int(n_sims), horizon=int(horizon), seed=int(seed), block_size=int(block_size), method=method
    )
    return out


# ---------------------------------------------------------------------------------------
# market conditions (an initial assessment)
# ---------------------------------------------------------------------------------------
def market_conditions(close: pd.DataFrame, window: int = 20, periods_per_year: int = 252,
                      high_correlation: float = 0.7, low_correlation: float = 0.3) -> dict:
    """Facts about a market (dates x symbols closes) as one dict of plain values:

    * ``volatility``: annualized std (ddof=1) of the equal-weighted mean daily return over the
      whole frame; ``recent_volatility``: the same over the last ``window`` bars;
    * ``volatility_regime``: the last bar's causal label of :func:`volatility_regimes` with
      three regimes (``low`` / ``mid`` / ``high``), ``volatile_fraction``: share of bars labelled
      ``high``;
    * ``trend_strength``: R^2 of a least-squares line through the log of the market's equity
      (1 = a straight trend, 0 = none); ``trend_direction`` (+1 / -1 / 0: the slope's sign);
      ``trend_slope``: annualized slope of that line;
    * ``mean_correlation``: mean pairwise correlation of the symbols' daily returns (NaN for one
      symbol), ``correlation_structure``: ``high`` (>= ``high_correlation``), ``moderate`` or ``low``
      (< ``low_correlation``), ``single_symbol``.

    >>> idx = pd.bdate_range("2024-01-01", periods=60)
    >>> c = pd.DataFrame({"A": np.exp(np.linspace(0, 0.1, 60))}, index=idx)
    >>> m = market_conditions(c)
    >>> round(m["trend_strength"], 3), m["trend_direction"], m["correlation_structure"]
    (1.0, 1, 'single_symbol')
    """
    rets = close.sort_index().pct_change(fill_method=None)
    market = rets.mean(axis=1, skipna=True).iloc[1:].fillna(0.0)
    if len(market) < max(window, 3):
        raise ValueError(f"market conditions need at least {max(window, 3) + 1} bars (got {len(close)})")
    ann = float(np.sqrt(periods_per_year))
    vol = float(market.std(ddof=1)) * ann
    recent = float(market.iloc[-window:].std(ddof=1)) * ann
    labels = volatility_regimes(market, window=window, n_regimes=3)
    known = labels[labels != UNKNOWN_REGIME]
    log_eq = np.log(np.cumprod(1.0 + market.to_numpy()))
    t = np.arange(len(log_eq), dtype=np.float64)
    slope, intercept = np.polyfit(t, log_eq, 1)
    fitted = slope * t + intercept
    ss_tot = float(((log_eq - log_eq.mean()) ** 2).sum())
    r2 = 1.0 - float(((log_eq - fitted) ** 2).sum()) / ss_tot if ss_tot > 0 else 0.0
    S = close.shape[1]
    if S > 1:
        C = rets.iloc[1:].corr().to_numpy()
        mean_corr = float(C[~np.eye(S, dtype=bool)].mean())
        structure = "high" if mean_corr >= high_correlation else ("low" if mean_corr < low_correlation else "moderate")
    else:
        mean_corr, structure = float("nan"), "single_symbol"
    return {
        "volatility": vol, "recent_volatility": recent,
        "volatility_regime": str(known.iloc[-1]) if len(known) else UNKNOWN_REGIME,
        "volatile_fraction": float((known == "high").mean()) if len(known) else float("nan"),
        "trend_strength": float(max(r2, 0.0)), "trend_direction": int(np.sign(slope)),
        "trend_slope": float(slope) * periods_per_year,
        "mean_correlation": mean_corr, "correlation_structure": structure,
        "n_bars": int(len(close)), "start": str(close.index[0].date()), "end": str(close.index[-1].date()),
    }


def recommend_strategy_types(conditions: dict) -> pd.DataFrame:
    """A transparent rule of thumb from :func:`market_conditions`: trend-following where the
    market trends (score = trend strength), mean reversion where it does not (1 - trend
    strength), breakout when volatility is rising (recent / full-period volatility, capped at
    1).  Columns: strategy, score, rank, reason."""
    ts = float(conditions["trend_strength"])
    ratio = conditions["recent_volatility"] / conditions["volatility"] if conditions["volatility"] > 0 else 1.0
    rows = [
        ("momentum", ts, f"trend strength (R^2 of the log equity line) {ts:.2f}"),
        ("mean_reversion", 1.0 - ts, f"1 - trend strength {1 - ts:.2f}"),
        ("breakout", float(min(max(ratio - 0.5, 0.0), 1.0)),
         f"recent / full-period volatility {ratio:.2f}"),
    ]
    out = pd.DataFrame(rows, columns=["strategy", "score", "reason"])
    out = out.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(2, "rank", np.arange(1, len(out) + 1))
    return out
