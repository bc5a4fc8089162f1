"""Risk statistics: VaR/CVaR, tail risk, stress windows. Pure numpy/pandas/scipy.

VaR and CVaR are reported as *positive loss fractions per period*: a 95 % VaR of 0.02
means that on 5 % of the bars the return is -2 % or worse.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .analysis import underwater

__all__ = ["var_cvar", "cornish_fisher_z", "tail_risk", "stress_windows", "VAR_METHODS"]

VAR_METHODS = ("historical", "gaussian", "cornish_fisher")
VAR_COLUMNS = ["column", "level", "method", "var", "cvar", "n_obs"]


def _frame(returns) -> pd.DataFrame:
    if isinstance(returns, pd.Series):
        return returns.to_frame(name=returns.name if returns.name is not None else "returns")
    if isinstance(returns, pd.DataFrame):
        return returns
    return pd.DataFrame({"returns": np.asarray(returns, dtype=float)})


def _check_levels(levels) -> tuple[float, ...]:
    if np.isscalar(levels):
        levels = (levels,)
    out = tuple(float(x) for x in levels)
    for lv in out:
        if not 0.0 < lv < 1.0:
            raise ValueError(f"VaR level must be in (0, 1), e.g. 0.95; got {lv}")
    return out


def _norm():
    """scipy's standard normal, imported on first use (scipy.stats costs ~0.8 s of start-up
    for every ``admf`` command otherwise)."""
    from scipy.stats import norm

    return norm


def cornish_fisher_z(z: float, skew: float, excess_kurt: float) -> float:
    """Cornish-Fisher adjusted standard-normal quantile (second-order expansion)."""
    s, k = skew, excess_kurt
    return z + (z * z - 1.0) * s / 6.0 + (z**3 - 3.0 * z) * k / 24.0 - (2.0 * z**3 - 5.0 * z) * s * s / 36.0


def _cf_tail_mean(c: float, alpha: float, skew: float, excess_kurt: float) -> float:
    """E[z_cf(Z) | Z < c] for Z ~ N(0, 1), alpha = Phi(c), in closed form.

    Uses the partial moments M_k = E[Z^k; Z < c]: M_0 = alpha, M_1 = -phi(c),
    M_k = -c^(k-1) phi(c) + (k-1) M_(k-2). With skew = excess_kurt = 0 it is
    -phi(c)/alpha, the Gaussian expected-shortfall quantile.
    """
    phi = _norm().pdf(c)
    m0 = alpha
    m1 = -phi
    m2 = -c * phi + m0
    m3 = -c * c * phi + 2.0 * m1
    s, k = skew, excess_kurt
    num = m1 + s / 6.0 * (m2 - m0) + k / 24.0 * (m3 - 3.0 * m1) - s * s / 36.0 * (2.0 * m3 - 5.0 * m1)
    return num / alpha


def var_cvar(
    returns: pd.Series | pd.DataFrame,
    levels=(0.95, 0.99),
    method: str = "historical",
) -> pd.DataFrame:
    """Value at Risk and Conditional VaR (expected shortfall), one row per (column, level).

    Columns: ``column``, ``level``, ``method``, ``var``, ``cvar``, ``n_obs`` (positive loss
    fractions per period; NaNs are dropped per column).

    * ``historical``: VaR = -q where q is the empirical ``1-level`` quantile (numpy's
      default linear interpolation); CVaR = -(mean of the returns <= q).
    * ``gaussian``: mu, sigma (ddof=1), z = Phi^-1(1-level):
      VaR = -(mu + sigma z), CVaR = -(mu - sigma phi(z) / (1-level)).
    * ``cornish_fisher``: modified VaR, VaR = -(mu + sigma z_cf) with the sample skewness
      and excess kurtosis (pandas' bias-corrected estimators); CVaR = -(mu + sigma
      E[z_cf(Z) | Z < z]), the tail mean of the Cornish-Fisher quantile function, in
      closed form. Equals ``gaussian`` when skew = excess kurtosis = 0.
    """
    if method not in VAR_METHODS:
        raise ValueError(f"unknown VaR method {method!r}; use one of {', '.join(VAR_METHODS)}")
    lv = _check_levels(levels)
    df = _frame(returns)
    rows = []
    for col in df.columns:
        x = df[col].astype(float).dropna()
        a = x.to_numpy()
        n = a.size
        if method != "historical" and n >= 2:
            mu, sigma = float(a.mean()), float(a.std(ddof=1))
        if method == "cornish_fisher":
            s = float(x.skew()) if n >= 3 else float("nan")
            k = float(x.kurt()) if n >= 4 else float("nan")
        for level in lv:
            alpha = 1.0 - level
            var = cvar = float("nan")
            if method == "historical" and n >= 1:
                q = float(np.quantile(a, alpha))
                var = -q
                cvar = -float(a[a <= q].mean())
            elif method == "gaussian" and n >= 2:
                z = _norm().ppf(alpha)
                var = -(mu + sigma * z)
                cvar = -(mu - sigma * _norm().pdf(z) / alpha)
            elif method == "cornish_fisher" and n >= 4 and np.isfinite(s) and np.isfinite(k):
                z = _norm().ppf(alpha)
                var = -(mu + sigma * cornish_fisher_z(z, s, k))
                cvar = -(mu + sigma * _cf_tail_mean(z, alpha, s, k))
            rows.append({"column": col, "level": level, "method": method, "var": var, "cvar": cvar, "n_obs": int(n)})
    return pd.DataFrame(rows, columns=VAR_COLUMNS)


def _tail_one(x: pd.Series) -> dict:
    x = x.astype(float).dropna()
    n = len(x)
    res = {
        "n_obs": int(n),
        "skew": float("nan"),
        "excess_kurtosis": float("nan"),
        "worst": float("nan"),
        "worst_date": None,
        "best": float("nan"),
        "best_date": None,
        "frac_beyond_3sigma": float("nan"),
        "normal_frac_beyond_3sigma": float(2.0 * _norm().sf(3.0)),
    }
    if n == 0:
        return res
    res.update(worst=float(x.min()), worst_date=x.idxmin(), best=float(x.max()), best_date=x.idxmax())
    if n >= 3:
        res["skew"] = float(x.skew())
    if n >= 4:
        res["excess_kurtosis"] = float(x.kurt())
    if n >= 2:
        sd = float(x.std(ddof=1))
        if sd > 0:
            res["frac_beyond_3sigma"] = float((np.abs(x - x.mean()) > 3.0 * sd).mean())
        else:
            res["frac_beyond_3sigma"] = 0.0
    return res


def tail_risk(returns) -> dict:
    """Tail statistics of a return series.

    Keys: ``n_obs``, ``skew``, ``excess_kurtosis`` (pandas' bias-corrected estimators; 0
    for a normal distribution), ``worst``/``worst_date``, ``best``/``best_date`` (best and
    worst single bar and its index label), ``frac_beyond_3sigma`` (share of bars farther
    than 3 sample standard deviations from the mean) and ``normal_frac_beyond_3sigma``
    (0.0027, the Gaussian reference). For a DataFrame: ``{column: dict}``.
    """
    if isinstance(returns, pd.DataFrame):
        return {c: _tail_one(returns[c]) for c in returns.columns}
    if not isinstance(returns, pd.Series):
        returns = pd.Series(np.asarray(returns, dtype=float))
    return _tail_one(returns)


STRESS_COLUMNS = [
    "start",
    "end",
    "n_bars",
    "total_return",
    "max_drawdown",
    "volatility",
    "annual_volatility",
    "worst_bar",
]


def stress_windows(
    returns: pd.Series,
    windows: dict[str, tuple[str, str]],
    periods_per_year: int = 252,
) -> pd.DataFrame:
    """Performance inside named date windows (inclusive bounds).

    One row per window (index ``window``): ``start``, ``end``, ``n_bars``,
    ``total_return``, ``max_drawdown`` (within the window, negative fraction),
    ``volatility`` (per-bar std, ddof=1), ``annual_volatility`` and ``worst_bar``. A window
    that does not overlap the data gives ``n_bars = 0`` and NaNs. A window whose bounds do
    not parse or whose start is after its end raises ``ValueError`` naming the window.
    """
    r = returns.astype(float)
    if not isinstance(r.index, pd.DatetimeIndex):
        raise ValueError("stress_windows needs returns indexed by a DatetimeIndex")
    if not r.index.is_monotonic_increasing:
        r = r.sort_index()
    tz = r.index.tz
    rows = []
    for name, bounds in windows.items():
        try:
            start, end = bounds
            t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
        except Exception as exc:  # noqa: BLE001 - re-raised with the window's name
            raise ValueError(f"stress window {name!r}: bounds must be (start, end) dates, got {bounds!r}: {exc}") from exc
        if pd.isna(t0) or pd.isna(t1):
            raise ValueError(f"stress window {name!r}: bounds must be dates, got {bounds!r}")
        if t0 > t1:
            raise ValueError(f"stress window {name!r}: start {t0.date()} is after end {t1.date()}")
        if tz is not None:
            t0 = t0.tz_localize(tz) if t0.tzinfo is None else t0.tz_convert(tz)
            t1 = t1.tz_localize(tz) if t1.tzinfo is None else t1.tz_convert(tz)
        elif t0.tzinfo is not None:
            t0, t1 = t0.tz_localize(None), t1.tz_localize(None)
        # a date-only end bound covers the whole day
        if t1 == t1.normalize() and isinstance(end, str) and len(end.strip()) <= 10:
            t1 = t1 + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
        x = r.loc[t0:t1].dropna()
        n = len(x)
        row = {"window": name, "start": t0, "end": t1, "n_bars": int(n)}
        if n:
            sd = float(x.std(ddof=1)) if n >= 2 else float("nan")
            row.update(
                total_return=float((1.0 + x).prod() - 1.0),
                max_drawdown=float(underwater(x).min()),
                volatility=sd,
                annual_volatility=sd * math.sqrt(periods_per_year),
                worst_bar=float(x.min()),
            )
        else:
            row.update(
                total_return=np.nan, max_drawdown=np.nan, volatility=np.nan, annual_volatility=np.nan, worst_bar=np.nan
            )
        rows.append(row)
    out = pd.DataFrame(rows, columns=["window", *STRESS_COLUMNS])
    return out.set_index("window")
