"""Risk statistics: VaR/CVaR (historical, parametric, Cornish-Fisher, GARCH), VaR backtests,
drawdown tables, tail risk, stress windows. Pure numpy/pandas/scipy/arch.

VaR and CVaR are reported as *positive loss fractions per period*: a 95 % VaR of 0.02
means that on 5 % of the bars the return is -2 % or worse.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .analysis import drawdown_analysis, underwater
from .util import LazyImport

stats = LazyImport("scipy.stats")  # imported on first use (see LazyImport)
norm = LazyImport("scipy.stats", "norm")

__all__ = ["var_cvar", "var_report", "kupiec_pof", "garch_fit", "GarchFit", "standardized_tail", "cornish_fisher_z",
           "tail_risk", "hill_tail_index", "drawdown_table", "stress_windows", "stress_test", "VAR_METHODS",
           "canonical_method"]

#: ``parametric`` is the Gaussian (variance-covariance) method; ``garch`` the one-bar-ahead
#: forecast of a GARCH(p, q) fitted with the ``arch`` package
VAR_METHODS = ("historical", "parametric", "cornish_fisher", "garch")
METHOD_ALIASES = {"gaussian": "parametric", "normal": "parametric", "variance_covariance": "parametric",
                  "modified": "cornish_fisher", "cf": "cornish_fisher"}
GARCH_DISTRIBUTIONS = ("normal", "t")
VAR_COLUMNS = ["column", "level", "method", "var", "cvar", "n_obs"]
#: fewer returns than this give no GARCH estimate (NaN)
GARCH_MIN_OBS = 100
#: a GARCH row notes when more than this share of the returns is exactly 0 (out of the market)
FLAT_NOTE_SHARE = 0.2


def canonical_method(name: str) -> str:
    """The VaR method a name or alias stands for (``gaussian`` -> ``parametric``); ValueError if unknown."""
    key = str(name).strip().lower()
    key = METHOD_ALIASES.get(key, key)
    if key not in VAR_METHODS:
        raise ValueError(f"unknown VaR method {name!r}; use one of {', '.join(VAR_METHODS)}")
    return key


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
    phi = norm.pdf(c)
    m0 = alpha
    m1 = -phi
    m2 = -c * phi + m0
    m3 = -c * c * phi + 2.0 * m1
    s, k = skew, excess_kurt
    num = m1 + s / 6.0 * (m2 - m0) + k / 24.0 * (m3 - 3.0 * m1) - s * s / 36.0 * (2.0 * m3 - 5.0 * m1)
    return num / alpha


# ------------------------------------------------------------------------------- GARCH
@dataclass(frozen=True)
class GarchFit:
    """A GARCH(p, q) with constant mean fitted by ``arch`` on percent returns, in fractions.

    ``mu``: mean return per bar; ``sigma_next``: the one-bar-ahead volatility forecast after
    the last bar; ``conditional_vol``: sigma_t of every bar given the bars before it (the
    fitted parameters use the whole sample); ``nu``: Student-t degrees of freedom (None for
    ``normal``); ``persistence``: sum of the alpha and beta coefficients; ``params``: as
    ``arch`` reports them (on percent returns); ``converged``: the optimizer's flag is 0.
    """

    mu: float
    sigma_next: float
    conditional_vol: pd.Series
    dist: str
    nu: float | None
    persistence: float
    params: dict
    converged: bool
    loglikelihood: float

    @property
    def half_life(self) -> float:
        """Bars for a volatility shock to halve (inf when persistence >= 1)."""
        p = self.persistence
        return float(math.log(0.5) / math.log(p)) if 0.0 < p < 1.0 else float("inf")


def garch_fit(returns, dist: str = "t", p: int = 1, q: int = 1) -> GarchFit | None:
    """Fit a constant-mean GARCH(p, q) with ``normal`` or Student ``t`` innovations; None when
    there are fewer than ``GARCH_MIN_OBS`` returns or they do not vary.

    The returns are scaled to percent for the optimizer (``arch``'s advice) and the results
    scaled back to fractions.
    """
    from arch import arch_model

    if dist not in GARCH_DISTRIBUTIONS:
        raise ValueError(f"unknown GARCH distribution {dist!r}; use one of {', '.join(GARCH_DISTRIBUTIONS)}")
    x = pd.Series(returns, dtype=float).dropna() if not isinstance(returns, pd.Series) else returns.astype(float).dropna()
    if len(x) < GARCH_MIN_OBS or not float(x.std(ddof=1)) > 0:
        return None
    model = arch_model(100.0 * x, mean="Constant", vol="GARCH", p=p, q=q, dist=dist, rescale=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning is reported through ``converged``
        res = model.fit(disp="off", show_warning=False)
        fc = res.forecast(horizon=1, reindex=False)
    params = {k: float(v) for k, v in res.params.items()}
    persistence = sum(v for k, v in params.items() if k.startswith(("alpha[", "beta[")))
    return GarchFit(
        mu=params["mu"] / 100.0,
        sigma_next=float(np.sqrt(fc.variance.iloc[-1, 0])) / 100.0,
        conditional_vol=(res.conditional_volatility / 100.0).rename("conditional_vol"),
        dist=dist,
        nu=params.get("nu"),
        persistence=float(persistence),
        params=params,
        converged=int(res.convergence_flag) == 0,
        loglikelihood=float(res.loglikelihood),
    )


def standardized_tail(alpha: float, dist: str = "normal", nu: float | None = None) -> tuple[float, float]:
    """(q, e): the ``alpha`` quantile of a zero-mean, unit-variance innovation and its tail mean
    E[Z | Z <= q].  ``normal``: q = Phi^-1(alpha), e = -phi(q)/alpha.  ``t`` (Student t with
    ``nu`` > 2 degrees of freedom scaled to unit variance by c = sqrt((nu-2)/nu)): q = c t_q,
    e = -c (nu + t_q^2)/(nu - 1) f_t(t_q)/alpha with t_q the t quantile and f_t its density.
    """
    if dist == "normal":
        q = float(norm.ppf(alpha))
        return q, float(-norm.pdf(q) / alpha)
    if dist == "t":
        if nu is None or not nu > 2:
            raise ValueError(f"the standardized t needs nu > 2, got {nu!r}")
        c = math.sqrt((nu - 2.0) / nu)
        tq = float(stats.t.ppf(alpha, nu))
        return c * tq, float(-c * (nu + tq * tq) / (nu - 1.0) * stats.t.pdf(tq, nu) / alpha)
    raise ValueError(f"unknown distribution {dist!r}; use one of {', '.join(GARCH_DISTRIBUTIONS)}")


def _garch_var(fit: GarchFit | None, alpha: float) -> tuple[float, float]:
    if fit is None:
        return float("nan"), float("nan")
    q, e = standardized_tail(alpha, fit.dist, fit.nu)
    return -(fit.mu + fit.sigma_next * q), -(fit.mu + fit.sigma_next * e)


# ------------------------------------------------------------------------------- VaR
def var_cvar(
    returns: pd.Series | pd.DataFrame,
    levels=(0.95, 0.99),
    method: str = "historical",
    garch_dist: str = "t",
) -> pd.DataFrame:
    """Value at Risk and Conditional VaR (expected shortfall), one row per (column, level).

    Columns: ``column``, ``level``, ``method``, ``var``, ``cvar``, ``n_obs`` (positive loss
    fractions per period; NaNs are dropped per column).

    * ``historical``: VaR = -q where q is the empirical ``1-level`` quantile (numpy's
      default linear interpolation); CVaR = -(mean of the returns <= q).
    * ``parametric`` (alias ``gaussian``): mu, sigma (ddof=1), z = Phi^-1(1-level):
      VaR = -(mu + sigma z), CVaR = -(mu - sigma phi(z) / (1-level)).
    * ``cornish_fisher``: modified VaR, VaR = -(mu + sigma z_cf) with the sample skewness
      and excess kurtosis (pandas' bias-corrected estimators); CVaR = -(mu + sigma
      E[z_cf(Z) | Z < z]), the tail mean of the Cornish-Fisher quantile function, in
      closed form. Equals ``parametric`` when skew = excess kurtosis = 0.
    * ``garch``: the one-bar-ahead forecast after the last bar of a GARCH(1, 1) with
      ``garch_dist`` innovations (:func:`garch_fit`): VaR = -(mu + sigma_next q),
      CVaR = -(mu + sigma_next e) with (q, e) from :func:`standardized_tail`; NaN with fewer
      than ``GARCH_MIN_OBS`` returns.
    """
    method = canonical_method(method)
    lv = _check_levels(levels)
    df = _frame(returns)
    rows = []
    for col in df.columns:
        x = df[col].astype(float).dropna()
        a = x.to_numpy()
        n = a.size
        if method in ("parametric", "cornish_fisher") and n >= 2:
            mu, sigma = float(a.mean()), float(a.std(ddof=1))
        fit = garch_fit(x, garch_dist) if method == "garch" else None
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
            elif method == "parametric" and n >= 2:
                z = norm.ppf(alpha)
                var = -(mu + sigma * z)
                cvar = -(mu - sigma * norm.pdf(z) / alpha)
            elif method == "cornish_fisher" and n >= 4 and np.isfinite(s) and np.isfinite(k):
                z = norm.ppf(alpha)
                var = -(mu + sigma * cornish_fisher_z(z, s, k))
                cvar = -(mu + sigma * _cf_tail_mean(z, alpha, s, k))
            elif method == "garch":
                var, cvar = _garch_var(fit, alpha)
            rows.append({"column": col, "level": level, "method": method, "var": var, "cvar": cvar, "n_obs": int(n)})
    return pd.DataFrame(rows, columns=VAR_COLUMNS)


def kupiec_pof(n_obs: int, breaches: int, level: float) -> float:
    """P-value of Kupiec's (1995) proportion-of-failures test that ``breaches`` losses beyond
    the VaR in ``n_obs`` bars are consistent with the rate ``1 - level``:
    LR = -2 ln[(1-p)^(n-x) p^x / ((1-x/n)^(n-x) (x/n)^x)] ~ chi2(1).  Small values reject the
    VaR model (too many or too few breaches)."""
    n, x, p = int(n_obs), int(breaches), 1.0 - float(level)
    if n <= 0:
        return float("nan")
    phat = x / n

    def loglik(prob: float) -> float:
        out = 0.0
        if n - x:
            out += (n - x) * math.log1p(-prob) if prob < 1 else -math.inf
        if x:
            out += x * math.log(prob) if prob > 0 else -math.inf
        return out

    lr = max(0.0, -2.0 * (loglik(p) - loglik(phat)))
    return float(stats.chi2.sf(lr, 1))


VAR_REPORT_COLUMNS = ["method", "level", "var", "cvar", "n_obs", "breaches", "breach_rate", "expected_rate",
                      "kupiec_pvalue", "note"]


def var_report(returns: pd.Series, levels=(0.95, 0.99), methods=VAR_METHODS, garch_dist: str = "t",
               garch: GarchFit | None = None) -> pd.DataFrame:
    """VaR and CVaR of one return series by every method and level, with an in-sample VaR
    backtest: one row per (method, level), columns ``VAR_REPORT_COLUMNS``.

    ``breaches``: bars whose return is below -VaR (for ``garch``: below the conditional VaR of
    that bar, -(mu + sigma_t q), so the count tests the volatility model, not one number);
    ``breach_rate`` against ``expected_rate`` = 1 - level and Kupiec's p-value
    (:func:`kupiec_pof`).  ``garch``: a fit to reuse (else fitted here when needed).
    ``note`` says why a value is missing.

    >>> r = pd.Series(np.random.default_rng(0).normal(0, 0.01, 2000))
    >>> t = var_report(r, levels=(0.99,), methods=("historical", "parametric"))
    >>> t[["method", "var"]].round(4).values.tolist()
    [['historical', 0.0233], ['parametric', 0.0233]]
    """
    lv = _check_levels(levels)
    methods = [canonical_method(m) for m in methods]
    x = _frame(returns).iloc[:, 0].astype(float).dropna()
    a = x.to_numpy()
    n = a.size
    if "garch" in methods and garch is None:
        garch = garch_fit(x, garch_dist)
    rows = []
    for method in methods:
        table = var_cvar(x, lv, method) if method != "garch" else None
        for level in lv:
            alpha = 1.0 - level
            note = ""
            if method == "garch":
                var, cvar = _garch_var(garch, alpha)
                if garch is None:
                    note = f"no GARCH fit: fewer than {GARCH_MIN_OBS} returns or no variation"
                    threshold = None
                else:
                    q, _ = standardized_tail(alpha, garch.dist, garch.nu)
                    threshold = -(garch.mu + garch.conditional_vol.reindex(x.index).to_numpy() * q)
                    flat = float(np.mean(a == 0.0)) if n else 0.0
                    if not garch.converged:
                        note = "the GARCH optimizer did not converge"
                    elif flat > FLAT_NOTE_SHARE:
                        note = (f"the series is flat on {flat:.0%} of bars; a GARCH of it assumes it is always "
                                "invested (see the breaches)")
            else:
                row = table[table["level"] == level].iloc[0]
                var, cvar = float(row["var"]), float(row["cvar"])
                threshold = var if np.isfinite(var) else None
                if not np.isfinite(var):
                    note = "too few returns"
            if threshold is not None and n:
                breaches = int(np.sum(a < -np.asarray(threshold)))
                rate, pval = breaches / n, kupiec_pof(n, breaches, level)
            else:
                breaches, rate, pval = 0, float("nan"), float("nan")
            rows.append({"method": method, "level": level, "var": var, "cvar": cvar, "n_obs": int(n),
                         "breaches": breaches, "breach_rate": rate, "expected_rate": alpha,
                         "kupiec_pvalue": pval, "note": note})
    return pd.DataFrame(rows, columns=VAR_REPORT_COLUMNS)


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
        "normal_frac_beyond_3sigma": float(2.0 * norm.sf(3.0)),
        "tail_ratio": float("nan"),
        "hill_tail_index": float("nan"),
        "jarque_bera_pvalue": float("nan"),
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
        q05, q95 = np.quantile(x.to_numpy(), [0.05, 0.95])
        if q05 < 0:
            res["tail_ratio"] = float(abs(q95) / abs(q05))
    res["hill_tail_index"] = hill_tail_index(x)
    if n >= 8 and float(x.std(ddof=1)) > 0:
        res["jarque_bera_pvalue"] = float(stats.jarque_bera(x.to_numpy()).pvalue)
    return res


def tail_risk(returns) -> dict:
    """Tail statistics of a return series.

    Keys: ``n_obs``, ``skew``, ``excess_kurtosis`` (pandas' bias-corrected estimators; 0
    for a normal distribution), ``worst``/``worst_date``, ``best``/``best_date`` (best and
    worst single bar and its index label), ``frac_beyond_3sigma`` (share of bars farther
    than 3 sample standard deviations from the mean), ``normal_frac_beyond_3sigma``
    (0.0027, the Gaussian reference), ``tail_ratio`` (|95th percentile| / |5th percentile|:
    above 1 the gains' tail is the longer), ``hill_tail_index`` of the losses
    (:func:`hill_tail_index`) and ``jarque_bera_pvalue`` (scipy; small = not normal). For a
    DataFrame: ``{column: dict}``.
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


def hill_tail_index(returns, tail_fraction: float = 0.05, min_tail: int = 10) -> float:
    """Hill's estimator of the tail index of the losses: with L_(1) >= L_(2) >= ... the losses
    (-returns > 0) in decreasing order and k = max(``min_tail``, ``tail_fraction`` * n),
    1 / mean(ln L_(i) / L_(k+1), i = 1..k).  About 3-4 for daily equity returns, the degrees of
    freedom for Student-t data, infinite in the limit for thin (Gaussian) tails. NaN when
    fewer than k + 1 losses.
    """
    x = np.asarray(returns, dtype=float)
    x = x[np.isfinite(x)]
    k = max(int(min_tail), int(tail_fraction * x.size))
    losses = np.sort(-x[x < 0])[::-1]
    if losses.size <= k or losses[k] <= 0:
        return float("nan")
    xi = float(np.mean(np.log(losses[:k]) - np.log(losses[k])))
    return 1.0 / xi if xi > 0 else float("nan")


DRAWDOWN_TABLE_COLUMNS = ["depth", "start", "trough", "recovery", "length_bars", "length_days", "bars_to_trough",
                          "bars_to_recovery", "recovered"]


def drawdown_table(returns: pd.Series, top_n: int | None = 10) -> pd.DataFrame:
    """The drawdown episodes of a return series, deepest first (index ``episode``).

    ``depth``: lowest equity below the running peak (a negative fraction); ``start``: the date
    of the peak it falls from; ``trough``: the date of its low; ``recovery``: the first date
    back at the peak (NaT while under water); ``length_bars``: bars from the peak to the
    recovery, or to the last bar when not recovered; ``length_days``: the same in calendar
    days; ``bars_to_trough``, ``bars_to_recovery``; ``recovered``.  Built on
    :func:`admf_assets.engine.analysis.drawdown_analysis`.
    """
    dd = drawdown_analysis(returns, top_n=top_n)
    r = returns if isinstance(returns, pd.Series) else pd.Series(returns)
    last = r.index[-1] if len(r) else None
    out = pd.DataFrame({
        "depth": dd["depth"].astype(float),
        "start": dd["peak_date"],
        "trough": dd["trough_date"],
        "recovery": dd["recovery_date"],
        "length_bars": dd["duration_bars"].astype("int64") if len(dd) else pd.Series(dtype="int64"),
        "bars_to_trough": dd["bars_to_trough"],
        "bars_to_recovery": dd["bars_to_recovery"],
        "recovered": dd["recovered"].astype(bool) if len(dd) else pd.Series(dtype=bool),
    }, index=dd.index)
    if isinstance(r.index, pd.DatetimeIndex) and len(dd):
        end = pd.DatetimeIndex(out["recovery"]).fillna(last)
        out["length_days"] = (end - pd.DatetimeIndex(out["start"])).days.astype("int64")
    else:
        out["length_days"] = np.nan
    return out[DRAWDOWN_TABLE_COLUMNS]


STRESS_TEST_COLUMNS = ["scenario", "start", "end", "n_bars", "first_bar", "last_bar", "strategy_return",
                       "buy_and_hold_return", "excess_return", "strategy_max_drawdown", "buy_and_hold_max_drawdown",
                       "strategy_volatility", "buy_and_hold_volatility", "strategy_worst_bar",
                       "buy_and_hold_worst_bar", "note"]
#: weekdays a scenario may reach past the data without being "partly outside" (holidays)
_EDGE_WEEKDAYS = 3


def stress_test(strategy: pd.Series, benchmark: pd.Series, scenarios: dict[str, tuple], periods_per_year: int = 252,
                data_label: str = "the data") -> pd.DataFrame:
    """The strategy against a benchmark (buy and hold) in named date windows, one row per
    scenario in order (columns ``STRESS_TEST_COLUMNS``; volatilities annualized).

    Both series are measured on the bars of ``strategy`` inside each window (inclusive
    bounds, see :func:`stress_windows`).  A window without bars gives NaNs and the ``note``
    "outside <data_label> (first..last)"; one reaching more than a few weekdays past either
    end says "partly outside ...: measured on first..last".
    """
    r = strategy.astype(float)
    b = benchmark.astype(float).reindex(r.index)
    s_tab = stress_windows(r, scenarios, periods_per_year)
    b_tab = stress_windows(b, scenarios, periods_per_year)
    d0, d1 = (r.index[0], r.index[-1]) if len(r) else (None, None)
    rows = []
    for name in scenarios:
        sr, br = s_tab.loc[name], b_tab.loc[name]
        start, end = sr["start"], sr["end"]
        x = r.loc[start:end]
        row = {"scenario": name, "start": start.normalize(), "end": end.normalize(), "n_bars": int(sr["n_bars"]),
               "first_bar": x.index[0] if len(x) else pd.NaT, "last_bar": x.index[-1] if len(x) else pd.NaT,
               "strategy_return": sr["total_return"], "buy_and_hold_return": br["total_return"],
               "excess_return": sr["total_return"] - br["total_return"],
               "strategy_max_drawdown": sr["max_drawdown"], "buy_and_hold_max_drawdown": br["max_drawdown"],
               "strategy_volatility": sr["annual_volatility"], "buy_and_hold_volatility": br["annual_volatility"],
               "strategy_worst_bar": sr["worst_bar"], "buy_and_hold_worst_bar": br["worst_bar"], "note": ""}
        span = f"{d0.date()}..{d1.date()}" if d0 is not None else "no bars"
        if not len(x):
            row["note"] = f"outside {data_label} ({span})"
        else:
            before = np.busday_count(start.date(), d0.date()) if start < d0 else 0
            after = np.busday_count(d1.date(), end.date()) if end > d1 else 0
            if before > _EDGE_WEEKDAYS or after > _EDGE_WEEKDAYS:
                row["note"] = (f"partly outside {data_label} ({span}): measured on "
                               f"{x.index[0].date()}..{x.index[-1].date()}")
        rows.append(row)
    return pd.DataFrame(rows, columns=STRESS_TEST_COLUMNS)
