"""Parameter search: grid or seeded random sampling, evaluated in one vectorized run.

``search(close, strategy, param_space, objective, method, n_trials, seed, config)``

* method ``"grid"``: the full cartesian product of ``param_space`` (a list is a set
  of choices, a scalar a fixed value, ``{low, high, step}`` an inclusive range).
* method ``"random"``: ``n_trials`` draws made up front with
  ``np.random.default_rng(seed)``, parameter by parameter in ``param_space`` order.
  A value may be a list of choices, a 2-number list ``[lo, hi]`` meaning a range
  (integers, inclusive, if both bounds are ints -- or if the parameter is an
  integer parameter; uniform floats otherwise), a dict
  ``{low, high, step?, log?}`` or ``{choices: [...]}``, or a scalar. Draws that
  violate the strategy's constraint and duplicates are dropped (the result says how
  many were drawn and kept).

All kept trials are evaluated at once with ``run_grid``. Objectives are maximized
(``max_drawdown`` is negative, so higher = shallower) except ``annual_volatility``;
``direction`` overrides that. Ties go to the lower trial_id; a NaN objective ranks last.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .estimate import chunk_combinations, distinct_windows
from .backtest import BacktestConfig, run_grid
from .metrics import METRIC_COLUMNS
from .util import py_scalar
from .strategies import _canonical_space, _choices, expand_grid, get_strategy, normalize_params, valid_mask

OBJECTIVES = ("sharpe_ratio", "sortino_ratio", "calmar_ratio", "total_return", "annual_return", "max_drawdown",
              "win_rate", "annual_volatility")
#: objectives where lower is better by default (``max_drawdown`` is negative: higher = shallower)
MINIMIZED = frozenset({"annual_volatility"})
DIRECTIONS = ("maximize", "minimize")
OBJECTIVE_ALIASES = {
    "sharpe": "sharpe_ratio",
    "sortino": "sortino_ratio",
    "calmar": "calmar_ratio",
    "return": "total_return",
    "cagr": "annual_return",
    "drawdown": "max_drawdown",
}
METHODS = ("grid", "random")


@dataclass
class SearchResult:
    best_params: dict
    best_metrics: dict
    history: pd.DataFrame  # trial_id, strategy, params, metrics, objective, rank (trial order)
    top: pd.DataFrame  # top_n rows of history by rank
    returns: pd.DataFrame | None  # dates x trial_id
    objective: str = "sharpe_ratio"
    method: str = "grid"
    n_drawn: int = 0
    n_kept: int = 0
    message: str = ""
    params: list = field(default_factory=list)


def resolve_objective(objective: str) -> str:
    key = str(objective).lower()
    key = OBJECTIVE_ALIASES.get(key, key)
    if key not in OBJECTIVES:
        raise ValueError(
            f"unknown objective {objective!r}; valid objectives: {', '.join(OBJECTIVES)} "
            f"(aliases: {', '.join(f'{k}={v}' for k, v in OBJECTIVE_ALIASES.items())})"
        )
    return key


def default_direction(objective: str) -> str:
    return "minimize" if resolve_objective(objective) in MINIMIZED else "maximize"


def rank_trials(values, trial_ids=None, direction: str = "maximize") -> np.ndarray:
    """1-based ranks, best value first (highest, or lowest for ``direction='minimize'``);
    ties -> lower trial_id first; NaN last."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    v = np.asarray(values, dtype=np.float64)
    if direction == "minimize":
        v = -v
    ids = np.arange(len(v)) if trial_ids is None else np.asarray(trial_ids)
    nan = np.isnan(v)
    order = np.lexsort((ids, -np.where(nan, 0.0, v), nan))
    ranks = np.empty(len(v), dtype=np.int64)
    ranks[order] = np.arange(1, len(v) + 1)
    return ranks


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _sample_param(rng: np.random.Generator, name: str, value, n: int, is_int: bool) -> np.ndarray:
    if isinstance(value, Mapping) and ("low" in value and "high" in value):
        lo, hi = value["low"], value["high"]
        if not (_is_number(lo) and _is_number(hi)) or hi < lo:
            raise ValueError(f"parameter {name!r}: need numeric low <= high, got {dict(value)}")
        step, log = value.get("step"), bool(value.get("log", False))
        ints = is_int or (isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer)) and
                          (step is None or isinstance(step, (int, np.integer))))
        if step is not None:
            if step <= 0:
                raise ValueError(f"parameter {name!r}: step must be > 0")
            m = int(math.floor((hi - lo) / step + 1e-9))
            vals = lo + step * rng.integers(0, m + 1, size=n)
            return np.round(vals).astype(np.int64) if ints else vals.astype(np.float64)
        if log:
            if lo <= 0:
                raise ValueError(f"parameter {name!r}: log sampling needs low > 0")
            if ints:
                vals = np.exp(rng.uniform(np.log(lo - 0.5 if lo > 0.5 else lo), np.log(hi + 0.5), size=n))
                return np.clip(np.round(vals), lo, hi).astype(np.int64)
            return np.exp(rng.uniform(np.log(lo), np.log(hi), size=n))
        if ints:
            return rng.integers(int(math.ceil(lo)), int(math.floor(hi)) + 1, size=n)
        return rng.uniform(lo, hi, size=n)
    if isinstance(value, Mapping):
        choices = _choices(name, value)
        return np.asarray(choices, dtype=object)[rng.integers(0, len(choices), size=n)]
    if isinstance(value, (list, tuple, np.ndarray, range)):
        vals = list(value)
        if len(vals) == 2 and all(_is_number(v) for v in vals):
            lo, hi = vals
            return _sample_param(rng, name, {"low": lo, "high": hi}, n, is_int)
        if not vals:
            raise ValueError(f"parameter {name!r}: empty list")
        return np.asarray(vals, dtype=object)[rng.integers(0, len(vals), size=n)]
    return np.full(n, value, dtype=object)


def sample_params(strategy: str, param_space: Mapping[str, Any], n_trials: int, seed: int = 0,
                  strict: bool = True) -> tuple[pd.DataFrame, int]:
    """Draw ``n_trials`` parameter sets; returns (kept valid unique draws, n_drawn)."""
    spec = get_strategy(strategy)
    if n_trials is None or int(n_trials) < 1:
        raise ValueError(f"method 'random' needs n_trials >= 1, got {n_trials!r}")
    n = int(n_trials)
    space = _canonical_space(spec, param_space, strict)
    rng = np.random.default_rng(seed)
    cols = {}
    for name, value in space.items():
        is_int = isinstance(spec.params[name], (int, np.integer)) and not isinstance(spec.params[name], bool)
        vals = _sample_param(rng, name, value, n, is_int)
        if is_int and np.asarray(vals).dtype.kind == "f":
            vals = np.round(vals).astype(np.int64)
        cols[name] = vals
    df = normalize_params(spec, pd.DataFrame(cols, index=pd.RangeIndex(n)), check=False)
    ok = valid_mask(spec, df)
    df = df[ok].drop_duplicates().reset_index(drop=True)
    return df, n


def search(close, strategy: str, param_space: Mapping[str, Any], objective: str = "sharpe_ratio",
           method: str = "grid", n_trials: int | None = None, seed: int = 0,
           config: BacktestConfig = BacktestConfig(), top_n: int = 10, keep_returns: bool = True,
           strict: bool = True, direction: str | None = None, *, memory_limit_bytes: float | None = None,
           workers: int = 1, progress=None) -> SearchResult:
    """Evaluate a parameter space and rank the trials by ``objective`` (see module docstring).

    ``strict=False`` ignores parameters the strategy does not have (one search space
    shared by several strategies).  ``memory_limit_bytes`` sizes the evaluation's chunks so
    that its working memory stays under the limit (see :mod:`.estimate`; a ValueError when
    even one combination at a time cannot fit); ``workers`` threads evaluate chunks at once;
    ``progress(done, total)`` is called as combinations finish.
    """
    obj = resolve_objective(objective)
    direction = direction or default_direction(obj)
    meth = str(method).lower()
    if meth not in METHODS:
        raise ValueError(f"unknown search method {method!r}; valid methods: {', '.join(METHODS)}")
    spec = get_strategy(strategy)
    if meth == "grid":
        params = expand_grid(spec, param_space, strict=strict)
        space = _canonical_space(spec, param_space, strict)
        n_drawn = int(np.prod([len(_choices(k, v)) for k, v in space.items()])) if space else 1
        msg = f"grid: {n_drawn} combinations, {len(params)} valid and distinct"
    else:
        params, n_drawn = sample_params(spec, param_space, n_trials, seed, strict)
        msg = (f"random (seed {seed}): drew {n_drawn} trials, kept {len(params)} "
               f"(dropped {n_drawn - len(params)} invalid or duplicate)")
    if len(params) == 0:
        raise ValueError(f"strategy {spec.name!r}: no valid parameter combination in the search space ({msg})")
    chunk = None
    if memory_limit_bytes is not None:
        chunk = chunk_combinations(memory_limit_bytes, len(params), close.shape[0], close.shape[1],
                                   distinct_windows(params), workers=workers,
                                            keep_returns=keep_returns)
    res = run_grid(close, spec.name, params, config, chunk_size=chunk, keep_returns=keep_returns,
                   workers=workers, progress=progress)
    m = res.metrics
    trial_id = np.arange(len(params))
    hist = pd.concat([
        pd.DataFrame({"trial_id": trial_id, "strategy": spec.name}),
        params.reset_index(drop=True),
        m[list(METRIC_COLUMNS)].reset_index(drop=True),
    ], axis=1)
    hist["objective"] = hist[obj].to_numpy(dtype=np.float64)
    hist["rank"] = rank_trials(hist["objective"].to_numpy(), trial_id, direction)
    top = hist.sort_values("rank").head(int(top_n)).reset_index(drop=True)
    best = top.iloc[0]
    best_params = {k: py_scalar(best[k]) for k in params.columns}
    best_metrics = {k: py_scalar(best[k]) for k in METRIC_COLUMNS}
    returns = None
    if keep_returns:
        returns = res.returns
        returns.columns = pd.Index(trial_id, name="trial_id")
    return SearchResult(best_params=best_params, best_metrics=best_metrics, history=hist, top=top, returns=returns,
                        objective=obj, method=meth, n_drawn=n_drawn, n_kept=len(params), message=msg,
                        params=list(params.columns))




__all__ = ["DIRECTIONS", "METHODS", "MINIMIZED", "OBJECTIVES", "OBJECTIVE_ALIASES", "default_direction", "SearchResult", "rank_trials", "resolve_objective", "sample_params", "search"]
