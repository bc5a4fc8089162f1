"""Exposure scaling that keeps a strategy inside a risk budget. Pure numpy/pandas/scipy.

A strategy run at exposure ``k`` (the fraction of capital in the strategy, the rest in cash
earning nothing, rebalanced every bar) earns ``k * r`` per bar.  VaR, CVaR and volatility are
then exactly ``k`` times those of ``r`` (historical, parametric and Cornish-Fisher VaR are
scale-equivariant, and a GARCH fitted to ``k r`` has the same alpha and beta); the maximum
drawdown of ``prod(1 + k r)`` is not linear in ``k`` and is solved for numerically.

In the engine's backtest the exposure is applied by scaling the symbol weights by ``k``, which
scales every bar's return, costs included, by exactly ``k`` (see
:func:`admf_assets.engine.backtest.resolve_weights`).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from .backtest import BacktestConfig, resolve_weights
from .util import LazyImport

brentq = LazyImport("scipy.optimize", "brentq")  # imported on first use (see LazyImport)

__all__ = ["max_drawdown_at", "scale_for_drawdown", "recommend_exposure", "exposure_scale", "with_exposure",
           "RECOMMENDATION_COLUMNS", "EXPOSURE_ROW"]

#: the row of the recommendations table a backtest applies
EXPOSURE_ROW = "exposure_scale"
RECOMMENDATION_COLUMNS = ["constraint", "method", "level", "budget", "current", "scale", "at_recommended",
                          "binding", "measured_start", "measured_end", "n_obs", "note"]


def max_drawdown_at(returns, scales) -> np.ndarray:
    """Maximum drawdown (a positive fraction, 1.0 = ruin) of ``prod(1 + k r)`` for each
    exposure ``k`` in ``scales``, vectorized over the scales (bars x scales in log space).

    >>> max_drawdown_at([0.1, -0.5, 0.2], [1.0, 0.5]).round(4).tolist()
    [0.5, 0.25]
    """
    r = np.nan_to_num(np.asarray(returns, dtype=float), nan=0.0)
    k = np.atleast_1d(np.asarray(scales, dtype=float))
    out = np.zeros(k.size)
    if r.size == 0:
        return out
    growth = 1.0 + np.outer(r, k)  # bars x scales
    ruined = (growth <= 0).any(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_eq = np.cumsum(np.log(np.where(growth > 0, growth, 1.0)), axis=0)
    peak = np.maximum(np.maximum.accumulate(log_eq, axis=0), 0.0)  # the starting capital is a peak
    out = 1.0 - np.exp((log_eq - peak).min(axis=0))
    out[ruined] = 1.0
    return np.maximum(out, 0.0)


def scale_for_drawdown(returns, budget: float, grid: int = 256) -> float:
    """The largest exposure whose maximum drawdown stays within ``budget`` (a positive
    fraction) at every smaller exposure too: the first crossing of the budget, found on a grid
    up to ruin (a loss of 100 % in one bar) and refined with Brent's method.  ``inf`` when the
    series never loses."""
    r = np.nan_to_num(np.asarray(returns, dtype=float), nan=0.0)
    if not 0.0 < budget < 1.0:
        raise ValueError(f"a drawdown budget is a fraction in (0, 1), got {budget!r}")
    worst = float(r.min()) if r.size else 0.0
    if worst >= 0:
        return math.inf
    ruin = -1.0 / worst  # exposure at which the worst bar wipes the account out
    ks = np.linspace(0.0, ruin, grid + 1)[1:]
    dd = max_drawdown_at(r, ks)
    over = np.flatnonzero(dd > budget)
    if not over.size:  # pragma: no cover - dd reaches 1 at ruin
        return float(ruin)
    i = int(over[0])
    lo = ks[i - 1] if i else 0.0
    from scipy.optimize import brentq  # here: scipy.optimize is not imported by every process

    return float(brentq(lambda k: max_drawdown_at(r, [k])[0] - budget, lo, ks[i], xtol=1e-10))


def recommend_exposure(returns: pd.Series, var_by_method: pd.DataFrame, *, var_budget: float | None = None,
                       cvar_budget: float | None = None, level: float = 0.99, method: str = "worst",
                       unconditional: tuple[str, ...] = ("historical", "parametric", "cornish_fisher"),
                       drawdown_budget: float | None = None, volatility_budget: float | None = None,
                       max_exposure: float = 1.0, periods_per_year: int = 252) -> pd.DataFrame:
    """The exposure meeting each budget and the recommendation: one row per constraint given,
    then the row ``EXPOSURE_ROW`` (columns ``RECOMMENDATION_COLUMNS``).

    ``var_by_method``: rows (method, level, var, cvar) as from
    :func:`admf_assets.engine.risk.var_report`, including ``level``.  ``method``: the VaR
    method the VaR/CVaR budgets use, or ``worst`` for the largest among ``unconditional``.
    Budgets are positive fractions: one-bar VaR and CVaR at ``level``, the maximum drawdown,
    annualized volatility.  ``scale`` = the exposure at which the constraint is exactly met
    (NaN when it cannot bind: no loss at that level); the recommendation is the smallest of
    them capped at ``max_exposure``; ``at_recommended`` is each measure at that exposure and
    ``binding`` marks the constraint (or the cap) that sets it.
    """
    r = returns.astype(float).dropna()
    start, end = (r.index[0], r.index[-1]) if len(r) else (pd.NaT, pd.NaT)
    rows: list[dict] = []
    at_level = var_by_method[np.isclose(var_by_method["level"].astype(float), level)]

    def pick(col: str) -> tuple[str, float]:
        if method == "worst":
            cand = at_level[at_level["method"].isin(unconditional)]
            cand = cand[np.isfinite(cand[col].astype(float))]
            if cand.empty:
                return "worst", float("nan")
            best = cand.loc[cand[col].astype(float).idxmax()]
            return f"worst ({best['method']})", float(best[col])
        hit = at_level[at_level["method"] == method]
        return method, float(hit[col].iloc[0]) if len(hit) else float("nan")

    for name, budget, col in (("var", var_budget, "var"), ("cvar", cvar_budget, "cvar")):
        if budget is None:
            continue
        label, current = pick(col)
        scale, note = _linear_scale(budget, current, f"{name.upper()} at {level:g}")
        rows.append({"constraint": name, "method": label, "level": level, "budget": budget, "current": current,
                     "scale": scale, "note": note})
    if drawdown_budget is not None:
        current = float(max_drawdown_at(r.to_numpy(), [1.0])[0])
        scale = scale_for_drawdown(r.to_numpy(), drawdown_budget)
        note = "the series never loses: no limit" if math.isinf(scale) else ""
        rows.append({"constraint": "max_drawdown", "method": "path", "level": np.nan, "budget": drawdown_budget,
                     "current": current, "scale": np.nan if math.isinf(scale) else scale, "note": note})
    if volatility_budget is not None:
        current = float(r.std(ddof=1) * math.sqrt(periods_per_year)) if len(r) > 1 else float("nan")
        scale, note = _linear_scale(volatility_budget, current, "the volatility")
        rows.append({"constraint": "volatility", "method": "annualized", "level": np.nan,
                     "budget": volatility_budget, "current": current, "scale": scale, "note": note})

    scales = [row["scale"] for row in rows if np.isfinite(row["scale"])]
    recommended = float(min([*scales, max_exposure]))
    for row in rows:
        if row["constraint"] == "max_drawdown":
            row["at_recommended"] = float(max_drawdown_at(r.to_numpy(), [recommended])[0])
        else:
            row["at_recommended"] = row["current"] * recommended
        row["binding"] = bool(np.isfinite(row["scale"]) and math.isclose(row["scale"], recommended, rel_tol=1e-9))
    capped = not any(row["binding"] for row in rows)
    if not rows:
        note = "no risk budget set: the exposure is max_exposure"
    elif capped:
        note = "every budget is met at max_exposure"
    else:
        binding = ", ".join(row["constraint"] for row in rows if row["binding"])
        note = f"set by the {binding} budget"
    rows.append({"constraint": EXPOSURE_ROW, "method": "min", "level": np.nan, "budget": max_exposure,
                 "current": 1.0, "scale": recommended, "at_recommended": recommended, "binding": capped,
                 "note": note})
    out = pd.DataFrame(rows)
    out["measured_start"], out["measured_end"], out["n_obs"] = start, end, int(len(r))
    return out[RECOMMENDATION_COLUMNS]


def _linear_scale(budget: float, current: float, what: str) -> tuple[float, str]:
    if not np.isfinite(current):
        return float("nan"), f"{what} is not available"
    if current <= 0:
        return float("nan"), f"{what} is not a loss: no limit"
    return float(budget / current), ""


def exposure_scale(recommendations: pd.DataFrame) -> tuple[float, pd.Timestamp, pd.Timestamp]:
    """The recommended exposure of a :func:`recommend_exposure` table and the first and last
    date it was measured on; ValueError (one line) when the table has no usable row."""
    cols = set(recommendations.columns)
    if not {"constraint", "scale"} <= cols:
        raise ValueError("risk_recommendations needs the columns constraint and scale (is it a risk_analysis output?)")
    row = recommendations[recommendations["constraint"] == EXPOSURE_ROW]
    if row.empty:
        raise ValueError(f"risk_recommendations has no '{EXPOSURE_ROW}' row")
    k = float(row["scale"].iloc[0])
    if not (np.isfinite(k) and k > 0):
        raise ValueError(f"risk_recommendations: the exposure scale must be a positive number, got {k!r}")
    start = pd.Timestamp(row["measured_start"].iloc[0]) if "measured_start" in cols else pd.NaT
    end = pd.Timestamp(row["measured_end"].iloc[0]) if "measured_end" in cols else pd.NaT
    return k, start, end


def with_exposure(config: BacktestConfig, symbols, scale: float) -> BacktestConfig:
    """A copy of a backtest config running at exposure ``scale``: the symbol weights times
    ``scale`` (the rest of the capital in cash), which scales every bar's portfolio return,
    costs included, by exactly ``scale``.  Scale 1.0 returns ``config`` itself."""
    if float(scale) == 1.0:
        return config
    w = resolve_weights(list(symbols), len(symbols), config.weights)
    return replace(config, weights=w * float(scale))
