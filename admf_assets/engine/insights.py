"""Numbers behind the report's insights: which parameters matter, how isolated the best set
is, how much of its score luck could explain, how much of it survives out of sample.

Every function takes a search history (one row per trial, a column per parameter and an
objective column) or plain numbers, and returns numbers or small frames; the report's
kinds word them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from . import validation as _validation

__all__ = [
    "EULER_GAMMA",
    "parameter_effects",
    "parameter_importance",
    "neighbourhood",
    "expected_max_sharpe",
    "relative_change",
]

EULER_GAMMA = _validation.EULER_GAMMA


def _levels(s: pd.Series, max_levels: int = 25, bins: int = 5) -> pd.Series:
    """The parameter's values, or quantile bins (labelled by their median value) when it
    has more than ``max_levels`` distinct values (a random search over a range)."""
    if s.nunique(dropna=True) <= max_levels or not pd.api.types.is_numeric_dtype(s.dtype):
        return s
    codes = pd.qcut(s.rank(method="first"), q=bins, labels=False)
    mids = s.groupby(codes).median()
    return codes.map(mids)


def _by_value(history: pd.DataFrame, params: Sequence[str], objective: str):
    """The finite objective values and, lazily, (parameter, its values or bins) for each
    parameter of ``params`` that takes at least two values on those trials."""
    y = pd.to_numeric(history[objective], errors="coerce")
    ok = np.isfinite(y.to_numpy(dtype=float))
    levels = ((p, _levels(history.loc[ok, p])) for p in params if p in history.columns)
    return y[ok], ((p, lev) for p, lev in levels if lev.nunique(dropna=True) >= 2)


def parameter_effects(history: pd.DataFrame, params: Sequence[str], objective: str = "objective",
                      direction: str = "maximize") -> pd.DataFrame:
    """Marginal effect of each parameter: the mean objective of the trials at each of its
    values (other parameters averaged over), and its spread.

    Columns: ``parameter``, ``n_values``, ``best_value`` (the value with the best mean),
    ``best_mean``, ``worst_value``, ``worst_mean``, ``spread`` (``|best_mean - worst_mean|``);
    sorted by spread, largest first.  Parameters with one value and non-finite objectives
    are left out.

    >>> h = pd.DataFrame({"a": [1, 1, 2, 2], "b": [5, 6, 5, 6], "objective": [0.0, 0.2, 1.0, 1.2]})
    >>> parameter_effects(h, ["a", "b"])[["parameter", "best_value", "spread"]].round(3).values.tolist()
    [['a', 2, 1.0], ['b', 6, 0.2]]
    """
    y, groups = _by_value(history, params, objective)
    rows = []
    for p, lev in groups:
        means = y.groupby(lev).mean().dropna()
        if len(means) < 2:
            continue
        best = means.idxmax() if direction == "maximize" else means.idxmin()
        worst = means.idxmin() if direction == "maximize" else means.idxmax()
        rows.append({"parameter": p, "n_values": int(len(means)), "best_value": best, "best_mean": float(means[best]),
                     "worst_value": worst, "worst_mean": float(means[worst]),
                     "spread": float(abs(means[best] - means[worst]))})
    cols = ["parameter", "n_values", "best_value", "best_mean", "worst_value", "worst_mean", "spread"]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("spread", ascending=False, kind="mergesort").reset_index(drop=True)


def parameter_importance(history: pd.DataFrame, params: Sequence[str], objective: str = "objective") -> dict[str, float]:
    """Share of the objective's variance across trials that each parameter explains alone: the
    main-effect eta squared of a one-way ANOVA, ``sum_v n_v (mean_v - mean)^2 / sum_i (y_i - mean)^2``
    over the parameter's values ``v`` (quantile bins for a parameter with many values).

    On a full grid these are the first-order terms of the functional ANOVA decomposition
    (what fANOVA estimates with a random forest), computed exactly; ``1 - sum`` is the share
    left to interactions and noise.  Trials with a non-finite objective are dropped; empty
    when fewer than 4 trials remain or the objective does not vary.

    >>> h = pd.DataFrame({"a": [1, 1, 2, 2], "b": [5, 6, 5, 6], "objective": [0.0, 1.0, 2.0, 3.0]})
    >>> {k: round(v, 3) for k, v in parameter_importance(h, ["a", "b"]).items()}
    {'a': 0.8, 'b': 0.2}
    """
    y, groups = _by_value(history, params, objective)
    if len(y) < 4:
        return {}
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 0:
        return {}
    out = {}
    for p, lev in groups:
        g = y.groupby(lev)
        out[p] = float((g.size() * (g.mean() - y.mean()) ** 2).sum() / total)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def neighbourhood(history: pd.DataFrame, params: Sequence[str], best: int, objective: str = "objective",
                  k: int | None = None) -> dict[str, float]:
    """How the trials nearest to trial ``best`` (a row position) score.

    Each parameter is mapped to the rank of its value among its distinct values, scaled
    to [0, 1], so one grid step weighs the same whatever the units; the ``k`` (default
    2 x parameters) nearest other trials by Euclidean distance are the neighbours.
    Returns ``{"n", "best", "mean", "ratio"}`` (ratio = neighbours' mean / best), or {}.
    """
    params = [p for p in params if p in history.columns and history[p].nunique() > 1]
    y = pd.to_numeric(history[objective], errors="coerce").to_numpy(dtype=float)
    if not params or len(history) < 3 or not np.isfinite(y[best]):
        return {}
    cols = []
    for p in params:
        s = history[p]
        vals = s.astype(str) if not pd.api.types.is_numeric_dtype(s.dtype) else s
        ranks = vals.rank(method="dense").to_numpy(dtype=float)
        top = np.nanmax(ranks)
        cols.append((ranks - 1.0) / (top - 1.0) if top > 1 else np.zeros_like(ranks))
    z = np.column_stack(cols)
    z = np.nan_to_num(z, nan=2.0)  # a parameter another strategy lacks: far away
    d = np.sqrt(((z - z[best]) ** 2).sum(axis=1))
    d[best] = np.inf
    d[~np.isfinite(y)] = np.inf
    k = int(k or 2 * len(params))
    order = np.argsort(d, kind="mergesort")[:k]
    order = order[np.isfinite(d[order])]
    if not order.size:
        return {}
    mean = float(np.mean(y[order]))
    return {"n": int(order.size), "best": float(y[best]), "mean": mean,
            "ratio": mean / y[best] if y[best] != 0 else float("nan")}


def expected_max_sharpe(n_trials: int, sharpe_std: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratios drawn with standard deviation
    ``sharpe_std`` around a true Sharpe ratio of zero (Bailey & Lopez de Prado, "The
    Deflated Sharpe Ratio", 2014, eq. for SR0; :func:`admf_assets.engine.validation.expected_max_sharpe`);
    0 for fewer than two trials or no dispersion.

    >>> round(expected_max_sharpe(1000, 1.0), 4)
    3.2551
    """
    n = int(n_trials)
    if n < 2 or not np.isfinite(sharpe_std) or sharpe_std <= 0:
        return 0.0
    return _validation.expected_max_sharpe(n, float(sharpe_std) ** 2)


def relative_change(before: float, after: float) -> float:
    """``(after - before) / |before|`` (NaN when ``before`` is 0 or either is not finite).

    >>> relative_change(1.5, 0.6)
    -0.6
    """
    if before is None or after is None or not (np.isfinite(before) and np.isfinite(after)) or before == 0:
        return float("nan")
    return round((after - before) / abs(before), 12)
