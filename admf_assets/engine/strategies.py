"""Strategy registry and vectorized position generation for whole parameter grids.

A strategy is ONE function, registered with its parameters and defaults::

    from admf_assets.engine.strategies import register_strategy
    from admf_assets.engine.indicators import latch

    @register_strategy("sma_trend", params={"window": 50, "band": 0.0},
                       constraint=lambda p: p["window"] >= 2)
    def sma_trend(ind, params, mode):
        # ind: Indicators over the (bars x symbols) closes, caching per-window arrays
        # params: DataFrame, one row per combination (defaults filled, types cast)
        sma = ind.grid("sma", params["window"])          # (bars x symbols x combos)
        band = params["band"].to_numpy()
        return ind.close[:, :, None] > sma * (1 + band)  # bool/int/float, in [-1, 1]

It is then available to ``expand_grid``/``generate_positions``/``run_grid``/
``search`` and to workflow YAML as ``type: sma_trend``. The function must return
a (bars x symbols x combos) array (bool, int or float in [-1, 1]) decided at the
close of each bar with data up to that bar only; the backtest applies the one-bar
lag. It is called once per chunk of combinations (never once per combination).

Built-in strategies (all decided at the close of bar t):

* ``momentum`` (alias ``ma_crossover``): fast/slow simple moving averages;
  ``gap = (sma_fast - sma_slow) / sma_slow``; long when ``gap > signal_threshold``;
  in long_short mode short when ``gap < -signal_threshold``; flat otherwise.
* ``mean_reversion``: ``z = (close - sma(lookback)) / std(lookback, ddof=1)``;
  enter long when ``z < -entry_z`` and hold until ``z >= -exit_z``; in long_short
  mode enter short when ``z > entry_z`` and hold until ``z <= exit_z``. Requires
  ``entry_z > |exit_z|``. Flat while z is undefined.
* ``breakout`` (Donchian): long when the close is above the highest close of the
  previous ``lookback`` bars, exit when it is below the lowest close of the previous
  ``exit_lookback`` bars (0 = same as ``lookback``); long_short mirrors this (short
  below the prior ``lookback`` low, cover above the prior ``exit_lookback`` high).
* ``pairs_trading``: the spread of two symbols (``pair`` numbers the pairs of the
  close columns in order: 0 = (col 0, col 1), 1 = (col 0, col 2), ...). Over the last
  ``lookback`` bars up to t, an OLS fit ``log A = alpha + beta log B`` gives the hedge
  ratio beta and the residual's std (ddof 2); ``z = residual_t / std``. Long the spread
  (long A, short beta of B) when ``z < -entry_z`` until ``z >= -exit_z``; short it when
  ``z > entry_z`` until ``z <= exit_z``. The hedge ratio is the one of the entry bar,
  held while the trade lasts; legs are ``s / max(1, |beta|)`` and ``-s beta / max(1, |beta|)``
  (the other symbols are flat). A pair trade has two directions in every ``mode``.

``register_strategy(..., space={...})`` gives a strategy a default search space: the
ranges a sampler-driven search explores when the workflow names no parameters.
"""
from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .indicators import Indicators, _rolling_pandas, latch

MODES = ("long_only", "long_short")

StrategyFunc = Callable[[Indicators, pd.DataFrame, str], Any]


class UnknownStrategyError(KeyError):
    """Raised by ``get_strategy`` for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown strategy"


#: the longest window a built-in strategy accepts: 10,000 bars is about 40 years of trading days
MAX_WINDOW = 10_000


@dataclass(frozen=True)
class StrategySpec:
    name: str
    func: StrategyFunc
    params: dict[str, Any]
    aliases: tuple[str, ...] = ()
    constraint: Callable[[pd.DataFrame], Any] | None = None
    param_aliases: dict[str, str] = field(default_factory=dict)
    description: str = ""
    #: default search space (engine form: ``{name: {low, high} | [choices]}``), may be empty
    space: dict[str, Any] = field(default_factory=dict)
    #: trades long and short in every mode (a pair trade); ``long_only`` does not clamp it
    long_short_only: bool = False
    #: inclusive (low, high) of a parameter's values (None: unbounded on that side)
    bounds: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: the constraint in words, for messages ("fast_period < slow_period")
    constraint_text: str = ""
    #: ``func`` also takes the parameters as ``{name: array}`` columns of normalized values (the
    #: built-ins: they read each column with ``np.asarray``); a search's small batches then reach it
    #: without a DataFrame, whose construction costs as much as a backtest of a few rows
    takes_columns: bool = False

    def check_value(self, name: str, value: Any) -> str | None:
        """Why ``value`` cannot be parameter ``name`` (its type is the default's: whole
        numbers for integer parameters, finite numbers for float ones; within ``bounds``),
        or None when it can."""
        default = self.params[name]
        if isinstance(default, (bool, np.bool_)):
            return None if isinstance(value, (bool, np.bool_)) else f"must be true or false (got {value!r})"
        is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        if isinstance(default, (int, np.integer)):
            if not is_number or not np.isfinite(value) or float(value) != int(value):
                return f"must be a whole number of bars (got {value!r})"
        elif isinstance(default, (float, np.floating)):
            if not is_number:
                return f"must be a number (got {value!r})"
            if not np.isfinite(value):
                return f"must be a finite number (got {value!r})"
        else:
            return None
        low, high = self.bounds.get(name, (None, None))
        if low is not None and value < low:
            return f"must be >= {low} (got {value!r})"
        if high is not None and value > high:
            return f"must be <= {high:,} (got {value!r})"
        return None

    @property
    def param_names(self) -> list[str]:
        return list(self.params)

    def canonical_param(self, name: str) -> str | None:
        if name in self.params:
            return name
        return self.param_aliases.get(name)


STRATEGIES: dict[str, StrategySpec] = {}
_ALIASES: dict[str, str] = {}


def register_strategy(
    name: str,
    *,
    params: Mapping[str, Any],
    aliases=(),
    constraint: Callable[[pd.DataFrame], Any] | None = None,
    param_aliases: Mapping[str, str] | None = None,
    description: str | None = None,
    replace: bool = False,
    space: Mapping[str, Any] | None = None,
    long_short_only: bool = False,
    bounds: Mapping[str, tuple[Any, Any]] | None = None,
    constraint_text: str = "",
    takes_columns: bool = False,
):
    """Decorator registering ``func(ind, params, mode) -> (bars x symbols x combos)``.

    params: parameter names and their defaults (an int default makes the parameter
    integer-valued). constraint: vectorized validity test, called with the params
    DataFrame, returning a boolean per row; invalid rows are dropped by
    ``expand_grid`` and rejected by ``generate_positions``. space: the default search
    space (``{name: {"low": a, "high": b}}`` or a list of choices). long_short_only: the
    strategy's positions keep both signs in ``long_only`` mode (a pair trade).
    ``expand_grid`` and rejected by ``generate_positions``.  bounds: inclusive
    ``(low, high)`` per parameter, checked by ``admf validate`` (with the type of the
    default); constraint_text: the constraint in words for its messages.  takes_columns: ``func``
    also accepts ``{name: array}`` columns (each read with ``np.asarray``, the row count from the
    arrays, not ``len(params)``).
    """
    key = name.lower()
    aliases = tuple(a.lower() for a in ((aliases,) if isinstance(aliases, str) else aliases))

    def deco(func: StrategyFunc) -> StrategyFunc:
        if not replace:
            for k in (key, *aliases):
                if k in STRATEGIES or k in _ALIASES:
                    raise ValueError(f"strategy name {k!r} is already registered")
        spec = StrategySpec(
            name=key,
            func=func,
            params=dict(params),
            aliases=aliases,
            constraint=constraint,
            param_aliases=dict(param_aliases or {}),
            description=description or ((func.__doc__ or "").strip().splitlines() or [""])[0],
            space=dict(space or {}),
            long_short_only=bool(long_short_only),
            bounds=dict(bounds or {}),
            constraint_text=constraint_text,
            takes_columns=bool(takes_columns),
        )
        unknown = [k for k in spec.space if k not in spec.params]
        if unknown:
            raise ValueError(f"strategy {key!r}: default space names unknown parameters {unknown}")
        STRATEGIES[key] = spec
        for a in aliases:
            _ALIASES[a] = key
        return func

    return deco


def strategy_names(include_aliases: bool = False) -> list[str]:
    names = sorted(STRATEGIES)
    return sorted(names + list(_ALIASES)) if include_aliases else names


def get_strategy(name) -> StrategySpec:
    """Look a strategy up by name or alias (case-insensitive)."""
    if isinstance(name, StrategySpec):
        return name
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key in STRATEGIES:
        return STRATEGIES[key]
    known = strategy_names(include_aliases=True)
    hint = difflib.get_close_matches(str(name).lower(), known, n=1)
    msg = f"unknown strategy {name!r}; known strategies: {', '.join(known)}"
    if hint:
        msg += f" (did you mean {hint[0]!r}?)"
    raise UnknownStrategyError(msg)


# --------------------------------------------------------------------- params
def _cast_param(spec: StrategySpec, name: str, values) -> np.ndarray:
    default = spec.params[name]
    arr = np.asarray(values)
    if isinstance(default, (bool, np.bool_)):
        return arr.astype(bool)
    if isinstance(default, (int, np.integer)):
        try:
            farr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"strategy {spec.name!r}: parameter {name!r} must be an integer, got {values!r}") from exc
        farr = np.where(np.isnan(farr), float(default), farr)  # null -> default
        if not np.all(np.isfinite(farr)) or np.any(farr != np.round(farr)):
            bad = farr[~np.isfinite(farr) | (farr != np.round(farr))][:3]
            raise ValueError(f"strategy {spec.name!r}: parameter {name!r} must be an integer, got {bad.tolist()}")
        return farr.astype(np.int64)
    if isinstance(default, (float, np.floating)):
        try:
            return arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"strategy {spec.name!r}: parameter {name!r} must be a number, got {values!r}") from exc
    return arr


def _canonical_space(spec: StrategySpec, param_space: Mapping[str, Any] | None, strict: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (param_space or {}).items():
        ck = spec.canonical_param(k)
        if ck is None:
            if strict:
                raise ValueError(
                    f"strategy {spec.name!r} has no parameter {k!r}; its parameters are: {', '.join(spec.params)}"
                )
            continue
        if ck in out:
            raise ValueError(f"strategy {spec.name!r}: parameter {ck!r} given twice (as an alias too)")
        out[ck] = v
    return out


def _choices(name: str, value) -> list:
    """Grid values of one parameter: list/tuple/array = choices, scalar = fixed,
    dict {low, high, step} = inclusive range, dict {choices: [...]} = choices."""
    if isinstance(value, Mapping):
        if "choices" in value or "values" in value:
            return list(value.get("choices", value.get("values")))
        if "low" in value and "high" in value:
            lo, hi = value["low"], value["high"]
            step = value.get("step", 1)
            if step is None or step <= 0:
                raise ValueError(f"parameter {name!r}: step must be > 0 for a grid range, got {step!r}")
            n = int(np.floor((hi - lo) / step + 1e-9)) + 1
            vals = lo + step * np.arange(max(n, 0))
            if all(isinstance(x, (int, np.integer)) for x in (lo, hi, step)):
                return [int(x) for x in vals]
            return [float(x) for x in np.round(vals, 12)]  # 0.01 + 2*0.01 -> 0.03, not 0.030000000000000002
        raise ValueError(f"parameter {name!r}: a dict must have 'choices' or 'low'/'high', got {dict(value)}")
    if isinstance(value, (list, tuple, np.ndarray, pd.Series, range)):
        vals = list(value)
        if not vals:
            raise ValueError(f"parameter {name!r}: empty list of values")
        return vals
    return [value]


def normalize_params(strategy, params, *, strict: bool = True, check: bool = True) -> pd.DataFrame:
    """Fill missing parameters with defaults, cast types and (optionally) reject invalid rows.

    ``params`` may be a DataFrame (one row per combination), a dict of scalars or a
    list of dicts. Returns a DataFrame with exactly the strategy's parameters, in
    declaration order, index 0..n-1.
    """
    spec = get_strategy(strategy)
    if isinstance(params, pd.DataFrame) and _is_normalized(spec, params):
        res = params if isinstance(params.index, pd.RangeIndex) and params.index.start == 0 and \
            params.index.step == 1 else params.reset_index(drop=True)
        _check_constraint(spec, res, check)
        return res
    if isinstance(params, pd.DataFrame):
        df = params
    elif isinstance(params, Mapping):
        df = pd.DataFrame([dict(params)])
    elif params is None:
        df = pd.DataFrame([{}])
    else:
        df = pd.DataFrame(list(params))
    _canonical_space(spec, {c: None for c in df.columns}, strict)  # unknown / duplicate names
    rename = {c: spec.canonical_param(c) for c in df.columns if spec.canonical_param(c) is not None}
    df = df[list(rename)].rename(columns=rename)
    n = len(df)
    out = {}
    for name, default in spec.params.items():
        vals = df[name].to_numpy() if name in df.columns else np.full(n, default, dtype=object)
        out[name] = _cast_param(spec, name, vals)
    res = pd.DataFrame(out, index=pd.RangeIndex(n))
    _check_constraint(spec, res, check)
    return res


def _is_normalized(spec: StrategySpec, df: pd.DataFrame) -> bool:
    """Already exactly the strategy's parameters, in order, with the right dtypes?"""
    if list(df.columns) != list(spec.params):
        return False
    for name, default in spec.params.items():
        kind = df[name].dtype.kind
        if isinstance(default, (bool, np.bool_)):
            ok = kind == "b"
        elif isinstance(default, (int, np.integer)):
            ok = df[name].dtype == np.int64
        elif isinstance(default, (float, np.floating)):
            ok = df[name].dtype == np.float64
        else:
            ok = False
        if not ok:
            return False
    return True


def _check_constraint(spec: StrategySpec, res: pd.DataFrame, check: bool) -> None:
    n = len(res)
    if check and spec.constraint is not None and n:
        ok = np.asarray(spec.constraint(res), dtype=bool).reshape(n)
        if not ok.all():
            bad = res[~ok].head(3).to_dict("records")
            raise ValueError(
                f"strategy {spec.name!r}: {int((~ok).sum())} invalid parameter combination(s), e.g. {bad}"
            )


def valid_mask(strategy, params: pd.DataFrame) -> np.ndarray:
    """Boolean mask of rows satisfying the strategy's constraint."""
    spec = get_strategy(strategy)
    if spec.constraint is None or len(params) == 0:
        return np.ones(len(params), dtype=bool)
    return np.asarray(spec.constraint(params), dtype=bool).reshape(len(params))


def expand_grid(strategy, param_space: Mapping[str, Any] | None = None, *, strict: bool = True) -> pd.DataFrame:
    """Cartesian product of ``param_space`` (lists = choices), defaults for missing
    parameters, invalid (constraint) and duplicate combinations dropped, index 0..n-1.

    Rows are ordered as nested loops over the parameters in declaration order (the
    last parameter varies fastest). ``strict=False`` ignores parameters the strategy
    does not have (useful when one search space is shared by several strategies).
    """
    spec = get_strategy(strategy)
    space = _canonical_space(spec, param_space, strict)
    names = list(spec.params)
    axes = [_choices(n, space[n]) if n in space else [spec.params[n]] for n in names]
    sizes = [len(a) for a in axes]
    total = int(np.prod(sizes)) if sizes else 1
    if total > 50_000_000:
        raise ValueError(f"strategy {spec.name!r}: grid of {total:,} combinations is too large")
    if names:
        idx = np.indices(sizes).reshape(len(sizes), -1)
        data = {n: _cast_param(spec, n, np.asarray(axes[i], dtype=object)[idx[i]]) for i, n in enumerate(names)}
        df = pd.DataFrame(data)
    else:
        df = pd.DataFrame(index=pd.RangeIndex(1))
    df = df[valid_mask(spec, df)] if len(df) else df
    df = df.drop_duplicates().reset_index(drop=True)
    return df


# ------------------------------------------------------------------ positions
def _as_close_array(close) -> np.ndarray:
    if isinstance(close, pd.DataFrame):
        arr = close.to_numpy(dtype=np.float64)
    elif isinstance(close, pd.Series):
        arr = close.to_numpy(dtype=np.float64)[:, None]
    else:
        arr = np.asarray(close, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"close must be (bars x symbols), got shape {arr.shape}")
    return arr


def n_rows(params) -> int:
    """Rows of a parameter frame or of ``{name: array}`` columns."""
    if isinstance(params, pd.DataFrame):
        return len(params)
    return len(next(iter(params.values()))) if len(params) else 0


def raw_positions(strategy, close, params: pd.DataFrame, mode: str = "long_only", indicators: Indicators | None = None) -> np.ndarray:
    """Like ``generate_positions`` but keeps the strategy's own dtype (int8 for the
    built-ins) and memory layout; ``params`` must already be normalized."""
    spec = get_strategy(strategy)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    ind = indicators if indicators is not None else Indicators(_as_close_array(close))
    n_bars, n_sym = ind.n_bars, ind.n_symbols
    ncomb = n_rows(params)
    if ncomb == 0:
        return np.zeros((n_bars, n_sym, 0), dtype=np.int8)
    out = np.asarray(spec.func(ind, params, mode))
    if out.shape != (n_bars, n_sym, ncomb):
        raise ValueError(
            f"strategy {spec.name!r} returned shape {out.shape}, expected (bars, symbols, combos) = {(n_bars, n_sym, ncomb)}"
        )
    if out.dtype == bool:
        out = out.view(np.int8)
    if out.dtype.kind == "f":
        out = np.nan_to_num(out, nan=0.0)
        if np.any(np.abs(out) > 1.0):
            raise ValueError(f"strategy {spec.name!r} returned positions outside [-1, 1]")
        if mode == "long_only" and not spec.long_short_only:
            out = np.maximum(out, 0.0)
    elif out.dtype.kind in "iu":
        if out.size and (out.max() > 1 or out.min() < -1):
            raise ValueError(f"strategy {spec.name!r} returned positions outside [-1, 1]")
        if mode == "long_only" and not spec.long_short_only and out.size and out.min() < 0:
            out = np.maximum(out, 0).astype(out.dtype)
    else:
        raise ValueError(f"strategy {spec.name!r} returned dtype {out.dtype}; expected bool, int or float")
    return out


def generate_positions(strategy, close, params, mode: str = "long_only", indicators: Indicators | None = None) -> np.ndarray:
    """Positions (bars x symbols x combos), float64 in [-1, 1], decided at the close of
    each bar (NOT yet lagged). ``params``: DataFrame, one row per combination
    (missing parameters get defaults). ``indicators``: an ``Indicators`` over the same
    closes to share per-window indicators across calls."""
    spec = get_strategy(strategy)
    p = normalize_params(spec, params)
    raw = raw_positions(spec, close, p, mode, indicators)
    return raw.astype(np.float64, order="K")


# ------------------------------------------------------------- built-ins
def _momentum_constraint(p: pd.DataFrame):
    return (p["fast_period"] >= 1) & (p["fast_period"] < p["slow_period"]) & (p["signal_threshold"] >= 0)


@register_strategy(
    "momentum",
    takes_columns=True,
    params={"fast_period": 10, "slow_period": 30, "signal_threshold": 0.0},
    aliases=("ma_crossover", "sma_crossover"),
    constraint=_momentum_constraint,
    param_aliases={"fast": "fast_period", "slow": "slow_period", "threshold": "signal_threshold"},
    space={"fast_period": {"low": 3, "high": 50}, "slow_period": {"low": 10, "high": 200},
           "signal_threshold": {"low": 0.0, "high": 0.05}},
    bounds={"fast_period": (1, MAX_WINDOW), "slow_period": (2, MAX_WINDOW), "signal_threshold": (0.0, None)},
    constraint_text="fast_period < slow_period",
)
def momentum(ind: Indicators, params: pd.DataFrame, mode: str) -> np.ndarray:
    """Moving-average crossover with a relative-gap threshold."""
    fast = np.asarray(params["fast_period"], dtype=np.int64)
    slow = np.asarray(params["slow_period"], dtype=np.int64)
    thr = np.asarray(params["signal_threshold"], dtype=np.float64)
    # distinct (fast, slow) pairs in lexicographic order, via one 1-D key (much faster
    # than np.unique(axis=0), same result); windows are small non-negative integers
    key = fast.astype(np.uint64) << np.uint64(32) | slow.astype(np.uint64)
    ukey, pidx = np.unique(key, return_inverse=True)
    pairs = np.stack([(ukey >> np.uint64(32)).astype(np.int64), (ukey & np.uint64(0xFFFFFFFF)).astype(np.int64)], axis=1)
    pidx = pidx.reshape(-1)
    gap = ind._grid_scb("sma", pairs[:, 0])  # (S, P, T), a fresh array we own
    slow_ma = ind._grid_scb("sma", pairs[:, 1])
    identity = len(pairs) == len(fast) and np.array_equal(pidx, np.arange(len(fast)))
    if identity and mode == "long_only" and not thr.any():
        # threshold 0: (f - s) / s > 0  <=>  f > s  for s > 0 (exact in IEEE arithmetic)
        with np.errstate(invalid="ignore"):
            return np.greater(gap, slow_ma).view(np.int8).transpose(2, 0, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.subtract(gap, slow_ma, out=gap)
        np.divide(gap, slow_ma, out=gap)
    del slow_ma
    if not identity:
        gap = np.take(gap, pidx, axis=1)
    th = thr[None, :, None]
    if mode == "long_short":
        out = (gap > th).view(np.int8) - (gap < -th).view(np.int8)
    else:
        out = (gap > th).view(np.int8)
    return out.transpose(2, 0, 1)


def _mean_reversion_constraint(p: pd.DataFrame):
    return (p["lookback"] >= 2) & (p["entry_z"] > 0) & (p["entry_z"] > p["exit_z"].abs())


@register_strategy(
    "mean_reversion",
    takes_columns=True,
    params={"lookback": 20, "entry_z": 2.0, "exit_z": 0.0},
    aliases=("zscore_reversion",),
    constraint=_mean_reversion_constraint,
    param_aliases={"lookback_period": "lookback", "entry_threshold": "entry_z", "exit_threshold": "exit_z"},
    space={"lookback": {"low": 5, "high": 100}, "entry_z": {"low": 0.5, "high": 3.0},
           "exit_z": {"low": 0.0, "high": 0.5}},
    bounds={"lookback": (2, MAX_WINDOW), "entry_z": (0.0, None)},
    constraint_text="entry_z > 0 and entry_z > |exit_z|",
)
def mean_reversion(ind: Indicators, params: pd.DataFrame, mode: str) -> np.ndarray:
    """Z-score mean reversion with entry/exit bands (stateful, via latches)."""
    look = np.asarray(params["lookback"], dtype=np.int64)
    e = np.asarray(params["entry_z"], dtype=np.float64)[None, :, None]
    x = np.asarray(params["exit_z"], dtype=np.float64)[None, :, None]
    z = ind._grid_scb("zscore", look)  # (S, C, T)
    undefined = np.isnan(z)
    enter_long = z < -e
    exit_long = (z >= -x) | undefined
    if mode == "long_short":
        enter_short = z > e
        exit_short = (z <= x) | undefined
        exit_long |= enter_short
        exit_short |= enter_long
        out = latch(enter_long, exit_long).view(np.int8) - latch(enter_short, exit_short).view(np.int8)
    else:
        out = latch(enter_long, exit_long).view(np.int8)
    return out.transpose(2, 0, 1)


def _breakout_constraint(p: pd.DataFrame):
    return (p["lookback"] >= 1) & (p["exit_lookback"] >= 0)


@register_strategy(
    "breakout",
    takes_columns=True,
    params={"lookback": 20, "exit_lookback": 0},
    aliases=("donchian", "channel_breakout"),
    constraint=_breakout_constraint,
    param_aliases={"lookback_period": "lookback", "channel_period": "lookback", "exit_period": "exit_lookback"},
    space={"lookback": {"low": 5, "high": 100}, "exit_lookback": {"low": 0, "high": 50}},
    bounds={"lookback": (1, MAX_WINDOW), "exit_lookback": (0, MAX_WINDOW)},
)
def breakout(ind: Indicators, params: pd.DataFrame, mode: str) -> np.ndarray:
    """Donchian channel breakout of the previous bars, with an optional exit channel."""
    look = np.asarray(params["lookback"], dtype=np.int64)
    xl = np.asarray(params["exit_lookback"], dtype=np.int64)
    xl = np.where(xl > 0, xl, look)
    c = ind._close_sb[:, None, :]
    enter_long = c > ind._grid_scb("prior_max", look)
    exit_long = c < ind._grid_scb("prior_min", xl)
    if mode == "long_short":
        enter_short = c < ind._grid_scb("prior_min", look)
        exit_short = c > ind._grid_scb("prior_max", xl)
        exit_long |= enter_short
        exit_short |= enter_long
        out = latch(enter_long, exit_long).view(np.int8) - latch(enter_short, exit_short).view(np.int8)
    else:
        out = latch(enter_long, exit_long).view(np.int8)
    return out.transpose(2, 0, 1)


def _pairs_constraint(p: pd.DataFrame):
    return (p["lookback"] >= 3) & (p["entry_z"] > 0) & (p["entry_z"] > p["exit_z"].abs()) & (p["pair"] >= 0)


def symbol_pairs(n_symbols: int) -> list[tuple[int, int]]:
    """The pairs ``pairs_trading`` numbers: column (i, j) with i < j, in lexicographic order."""
    return list(itertools.combinations(range(int(n_symbols)), 2))


def _pair_fit(ind: Indicators, a: int, b: int, lookback: int) -> np.ndarray:
    """(2 x bars): rolling-OLS z-score of the residual of log A on log B, and the hedge ratio
    beta, each from the ``lookback`` bars up to and including t (NaN until the window fills)."""

    def make():
        logs = np.log(ind._close_sb[[a, b]])
        y, x = logs[0] - logs[0, 0], logs[1] - logs[1, 0]  # shifted by a past constant: same fit, better numerics
        m = _rolling_pandas(np.stack([x, y, x * x, x * y, y * y]), lookback, "mean")
        mx, my, mxx, mxy, myy = m
        with np.errstate(invalid="ignore", divide="ignore"):
            vx, cxy, vy = mxx - mx * mx, mxy - mx * my, myy - my * my
            beta = cxy / vx
            resid = y - (my + beta * (x - mx))
            s2 = (vy - beta * cxy) * lookback / (lookback - 2)  # residual variance, ddof 2
            z = resid / np.sqrt(s2)
        bad = ~np.isfinite(z) | ~(s2 > 1e-14 * np.maximum(vy, 1e-300))  # no dispersion left: no signal
        z[bad] = np.nan
        beta[~np.isfinite(beta)] = np.nan
        return np.stack([z, beta])

    return ind.cached(("pair_fit", int(a), int(b), int(lookback)), make)


@register_strategy(
    "pairs_trading",
    takes_columns=True,
    params={"lookback": 60, "entry_z": 2.0, "exit_z": 0.5, "pair": 0},
    aliases=("pairs", "pair_trading", "stat_arb"),
    constraint=_pairs_constraint,
    param_aliases={"lookback_period": "lookback", "hedge_lookback": "lookback", "entry_threshold": "entry_z",
                   "exit_threshold": "exit_z", "pair_index": "pair"},
    space={"lookback": {"low": 20, "high": 120}, "entry_z": {"low": 1.0, "high": 3.0},
           "exit_z": {"low": 0.0, "high": 0.9}},
    long_short_only=True,
    bounds={"lookback": (3, MAX_WINDOW), "entry_z": (0.0, None), "pair": (0, None)},
    constraint_text="lookback >= 3, entry_z > 0 and entry_z > |exit_z|",
)
def pairs_trading(ind: Indicators, params: pd.DataFrame, mode: str) -> np.ndarray:
    """Two-symbol spread with a rolling hedge ratio, z-score entry and exit bands."""
    pairs = symbol_pairs(ind.n_symbols)
    pair = np.asarray(params["pair"], dtype=np.int64)
    if not pairs:
        raise ValueError("strategy 'pairs_trading' needs at least 2 symbols")
    if pair.size and pair.max() >= len(pairs):
        raise ValueError(f"strategy 'pairs_trading': pair {int(pair.max())} does not exist; {ind.n_symbols} symbols "
                         f"make {len(pairs)} pair(s), numbered 0..{len(pairs) - 1}")
    look = np.asarray(params["lookback"], dtype=np.int64)
    entry = np.asarray(params["entry_z"], dtype=np.float64)
    exit_ = np.asarray(params["exit_z"], dtype=np.float64)
    T, C = ind.n_bars, len(look)
    out = np.zeros((T, ind.n_symbols, C), dtype=np.float64)
    t_idx = np.arange(T)[:, None]
    key = pair * (int(look.max()) + 1) + look
    for k in np.unique(key):  # one fit per distinct (pair, lookback), every combination using it at once
        cols = np.flatnonzero(key == k)
        a, b = pairs[int(pair[cols[0]])]
        z, beta = _pair_fit(ind, a, b, int(look[cols[0]]))
        zz = z[:, None]
        undefined = np.isnan(zz)
        e, x = entry[cols][None, :], exit_[cols][None, :]
        enter_long, enter_short = zz < -e, zz > e
        exit_long = (zz >= -x) | undefined | enter_short
        exit_short = (zz <= x) | undefined | enter_long
        side = latch(enter_long, exit_long, axis=0).view(np.int8) - latch(enter_short, exit_short, axis=0).view(np.int8)
        prev = np.vstack([np.zeros((1, len(cols)), np.int8), side[:-1]])
        entered = np.where((side != 0) & (side != prev), t_idx, -1)
        np.maximum.accumulate(entered, axis=0, out=entered)  # bar of the current trade's entry
        hedge = np.where(entered >= 0, beta[np.maximum(entered, 0)], np.nan)  # held from the entry bar
        scale = np.maximum(1.0, np.abs(hedge))
        held = (side != 0) & np.isfinite(hedge)
        sgn = side.astype(np.float64)
        out[:, a, cols] = np.where(held, sgn / scale, 0.0)
        out[:, b, cols] = np.where(held, -sgn * hedge / scale, 0.0)
    return out


__all__ = [
    "MAX_WINDOW",
    "MODES",
    "STRATEGIES",
    "StrategySpec",
    "UnknownStrategyError",
    "expand_grid",
    "generate_positions",
    "get_strategy",
    "normalize_params",
    "raw_positions",
    "register_strategy",
    "strategy_names",
    "symbol_pairs",
    "valid_mask",
]
