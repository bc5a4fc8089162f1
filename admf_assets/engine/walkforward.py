"""Walk-forward optimisation: re-optimise the parameters on each train window only, trade them
on the window that follows, and stitch the out-of-sample windows together.

* :func:`plan_folds` cuts a calendar of trading dates into folds (rolling or anchored train
  windows, an optional gap -- embargo -- between train and test, a step between folds).  The
  plan depends only on the dates and the window sizes, so the fold keys are known before any
  data is read (the platform makes each fold a partition).
* :func:`run_fold` searches the train window (``engine.search.search`` for grid and random
  over strategy parameters; :func:`sampler_search` -- ``engine.optimize`` -- for the Optuna,
  CMA-ES and differential-evolution methods and for spaces that include trading settings
  such as ``stop_loss`` or ``risk_level``) and evaluates the winner on the test window.  The search sees ``close`` up to the train end
  only; the test evaluation warms the indicators up on the history before the test window
  (data before the window, never after it).
* :func:`stitch` backtests the positions each fold would have held while it was the current
  fold (from its test start until the next fold's test start), so switching costs between
  folds are charged and the out-of-sample equity is one continuous account.
* :func:`parameter_evolution` / :func:`summarize` measure how stable the chosen parameters
  are and how much of the in-sample performance survives out of sample
  (walk-forward efficiency = mean out-of-sample / mean in-sample performance, annualized).

>>> dates = pd.bdate_range("2020-01-01", periods=300)
>>> [(f.key, f.train_start.date(), f.test_start.date()) for f in plan_folds(dates, 200, 50, 50)]
[('fold_01', datetime.date(2020, 1, 1), datetime.date(2020, 10, 7)), ('fold_02', datetime.date(2020, 3, 11), datetime.date(2020, 12, 16))]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import search as engine_search
from .analysis import equity_curve, underwater
from .backtest import BacktestConfig, asset_returns_from_close, backtest_positions, run_backtest
from .metrics import METRIC_COLUMNS, RETURN_METRICS, compute_metrics
from .optimize import (LIST_METHODS, BacktestEvaluator, list_proposals, optimize as sampler_optimize,
                       parse_objectives, strategy_dims, strategy_valid, trading_param)
from .paramsets import params_json, per_set_config, with_trading
from .strategies import get_strategy, normalize_params, raw_positions
from .util import py_scalar

__all__ = [
    "WINDOWS",
    "Fold",
    "SearchSpec",
    "Optimization",
    "FoldResult",
    "trading_days",
    "plan_folds",
    "optimize",
    "sampler_search",
    "run_fold",
    "stitch",
    "parameter_evolution",
    "efficiency_metric",
    "summarize",
    "FOLD_COLUMNS",
]

WINDOWS = ("rolling", "anchored")
#: objectives whose walk-forward efficiency is measured on another, annualized metric
_EFFICIENCY_ON = {"total_return": "annual_return", "max_drawdown": "annual_return",
                  "annual_volatility": "annual_return", "win_rate": "annual_return"}


@dataclass(frozen=True)
class Fold:
    """One fold: train on [train_start, train_end], test on [test_start, test_end]; in the
    stitched out-of-sample account it trades from test_start to ``active_end``."""

    number: int  #: 1-based
    key: str  #: ``fold_01``...
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    active_end: pd.Timestamp

    def as_dict(self) -> dict[str, Any]:
        return {"fold": self.key, "fold_number": self.number, "train_start": self.train_start,
                "train_end": self.train_end, "test_start": self.test_start, "test_end": self.test_end,
                "active_end": self.active_end}


def trading_days(start, end) -> pd.DatetimeIndex:
    """Weekdays from ``start`` to ``end`` inclusive: the platform's market calendar."""
    return pd.bdate_range(pd.Timestamp(start), pd.Timestamp(end))


def plan_folds(dates: Sequence, train: int, test: int, step: int | None = None, window: str = "rolling",
               gap: int = 0) -> list[Fold]:
    """Folds over sorted trading ``dates`` (window sizes in trading days).

    Fold k (0-based) tests the ``test`` dates from index ``i_k = train + gap + k * step``;
    its train window is the ``train`` dates ending ``gap`` dates before the test start
    (``rolling``) or every date from the first up to then (``anchored``, expanding).  Only
    full test windows are planned.  ``step`` defaults to ``test`` (back-to-back test windows);
    a smaller step makes test windows overlap, and the stitched account then trades each fold
    until the next one starts.
    """
    idx = pd.DatetimeIndex(pd.to_datetime(list(dates))).sort_values()
    step = int(test if step is None else step)
    train, test, gap = int(train), int(test), int(gap)
    if train < 2 or test < 1 or step < 1 or gap < 0:
        raise ValueError(f"need train >= 2, test >= 1, step >= 1, gap >= 0 (got {train}, {test}, {step}, {gap})")
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    starts = list(range(train + gap, len(idx) - test + 1, step))
    width = max(2, len(str(len(starts))))
    folds = []
    for k, i in enumerate(starts):
        t0 = 0 if window == "anchored" else i - gap - train
        nxt = starts[k + 1] if k + 1 < len(starts) else None
        last = i + test - 1 if nxt is None else min(i + test - 1, nxt - 1)
        folds.append(Fold(k + 1, f"fold_{k + 1:0{width}d}", idx[t0], idx[i - gap - 1], idx[i], idx[i + test - 1],
                          idx[last]))
    return folds


# ------------------------------------------------------------------ optimisation
@dataclass(frozen=True)
class SearchSpec:
    """What a fold optimises: each candidate strategy with its search space, and the search."""

    candidates: tuple[tuple[str, Mapping[str, Any]], ...]
    objective: str = "sharpe_ratio"
    method: str = "grid"
    n_trials: int | None = None
    seed: int = 42
    direction: str | None = None
    population_size: int | None = None  #: cmaes / nsga2 / differential_evolution

    @property
    def searches_trading(self) -> bool:
        """Whether a candidate's space holds a trading setting (stop_loss, risk_level, ...)."""
        return any(trading_param(k) for _, space in self.candidates for k in space)


@dataclass
class Optimization:
    strategy: str
    params: dict  #: the winner's strategy parameters
    objective: float
    metrics: dict  #: the winner's in-sample metrics
    history: pd.DataFrame  #: every trial: trial_id, strategy, params / trading (JSON), objective, rank, metrics
    n_trials: int
    trading: dict = field(default_factory=dict)  #: the winner's searched trading settings ({} when none)


SearchFn = Callable[..., engine_search.SearchResult]


def optimize(close: pd.DataFrame, spec: SearchSpec, config: BacktestConfig,
             search: SearchFn | None = None) -> Optimization:
    """Search every candidate on ``close`` and pick the best trial overall (ties: the lower
    trial id; each strategy's search uses ``seed + i``, as the parameter_search phase does).
    ``search`` defaults to ``engine.search.search`` for grid / random over strategy
    parameters, else :func:`sampler_search`."""
    direction = spec.direction or engine_search.default_direction(spec.objective)
    if search is None:
        plain = spec.method in engine_search.METHODS and not spec.searches_trading
        search = engine_search.search if plain else sampler_search
    extra = {"population_size": spec.population_size} if search is sampler_search else {}
    parts = []
    for i, (strategy, space) in enumerate(spec.candidates):
        res = search(close, strategy, dict(space), objective=spec.objective, method=spec.method,
                     n_trials=spec.n_trials, seed=spec.seed + i, config=config, top_n=1, keep_returns=False,
                     strict=len(spec.candidates) == 1, direction=direction, **extra)
        h = res.history
        recs = [{k: py_scalar(v) for k, v in rec.items()} for rec in h[res.params].to_dict("records")]
        h = h.assign(params=[params_json({k: v for k, v in rec.items() if not trading_param(k)}) for rec in recs],
                     trading=[params_json({trading_param(k): v for k, v in rec.items() if trading_param(k)})
                              for rec in recs])
        parts.append(h[["strategy", "params", "trading", "objective", *METRIC_COLUMNS]])
    hist = pd.concat(parts, ignore_index=True)
    hist.insert(0, "trial_id", np.arange(len(hist)))
    hist["rank"] = engine_search.rank_trials(hist["objective"].to_numpy(), hist["trial_id"].to_numpy(), direction)
    best = hist.loc[hist["rank"].idxmin()]
    return Optimization(str(best["strategy"]), json.loads(best["params"]), float(best["objective"]),
                        {k: py_scalar(best[k]) for k in METRIC_COLUMNS}, hist, len(hist),
                        trading=json.loads(best["trading"]))


def sampler_search(close: pd.DataFrame, strategy: str, param_space: Mapping[str, Any],
                   objective: str = "sharpe_ratio", method: str = "tpe", n_trials: int | None = None,
                   seed: int = 0, config: BacktestConfig = BacktestConfig(), top_n: int = 10,
                   keep_returns: bool = False, strict: bool = True, direction: str | None = None,
                   population_size: int | None = None) -> engine_search.SearchResult:
    """``engine.search.search`` with every method of ``engine.optimize.optimize`` (grid, random,
    tpe, cmaes, nsga2, differential_evolution; batched, one ``run_grid`` per batch) and spaces
    that hold trading settings (``stop_loss``, ``risk_level`` = ``target_vol``, ...).

    Returns a ``SearchResult`` whose ``history`` has one row per trial: trial_id, strategy,
    every searched and fixed parameter (trading settings under their canonical names), the
    metrics, ``objective`` (NaN for a trial that breaks the strategy's constraint) and
    ``rank``.  No Optuna study is stored (a fold's search is redone when the fold is).
    ``keep_returns`` is not supported (``returns`` is None)."""
    obj = engine_search.resolve_objective(objective)
    direction = direction or engine_search.default_direction(obj)
    proposals = valid = None
    if method in LIST_METHODS:
        proposals, dims, fixed, _ = list_proposals(strategy, param_space, method, n_trials, seed, strict)
        if proposals.empty:
            raise ValueError(f"strategy {strategy!r}: no valid parameter combination in the search space")
        n = len(proposals)
    else:
        dims, fixed = strategy_dims(strategy, param_space, strict)
        valid = strategy_valid(strategy)
        if not n_trials:
            raise ValueError(f"method {method!r} needs n_trials")
        n = int(n_trials)
    res = sampler_optimize(BacktestEvaluator(close, strategy, config), dims, parse_objectives(obj, direction),
                           method=method, n_trials=n, seed=seed, fixed=fixed, valid=valid, proposals=proposals,
                           population_size=population_size)
    t = res.trials
    names = [d.name for d in dims] + [k for k in fixed if k not in {d.name for d in dims}]
    hist = pd.DataFrame({"trial_id": t["trial_id"].to_numpy(), "strategy": get_strategy(strategy).name})
    for name in names:
        hist[name] = t[name].to_numpy() if name in t.columns else fixed[name]
    for c in METRIC_COLUMNS:
        hist[c] = t[c].to_numpy(dtype=np.float64)
    value = np.where(t["feasible"].to_numpy(bool), t["objective"].to_numpy(dtype=np.float64), np.nan)
    hist["objective"] = value
    hist["rank"] = engine_search.rank_trials(value, hist["trial_id"].to_numpy(), direction)
    top = hist.sort_values("rank").head(int(top_n)).reset_index(drop=True)
    best = top.iloc[0]
    return engine_search.SearchResult(
        best_params={k: py_scalar(best[k]) for k in names}, best_metrics={k: py_scalar(best[k]) for k in METRIC_COLUMNS},
        history=hist, top=top, returns=None, objective=obj, method=method, n_drawn=len(hist), n_kept=len(hist),
        message=res.message, params=names)


@dataclass
class FoldResult:
    row: dict  #: one row of the fold table
    history: pd.DataFrame  #: the fold's trials
    returns: pd.DataFrame  #: date, return over the test window (the fold's parameters)


#: the fold table's leading columns (then is_<metric> and oos_<metric> for every metric)
FOLD_COLUMNS = ("fold", "fold_number", "train_start", "train_end", "test_start", "test_end", "active_end",
                "n_train_bars", "n_test_bars", "strategy", "params", "trading", "n_trials", "objective", "is_objective",
                "oos_objective", "efficiency")


def _window(close: pd.DataFrame, start, end) -> pd.DataFrame:
    return close.loc[(close.index >= start) & (close.index <= end)]


def run_fold(close: pd.DataFrame, fold: Fold, spec: SearchSpec, config: BacktestConfig,
             search: SearchFn | None = None) -> FoldResult:
    """Optimise on the fold's train window, evaluate the winner on its test window.

    The search gets the train window's closes only.  The test returns are those of a backtest
    over the closes up to the test end, restricted to the test dates (indicators warmed up on
    the history before the window)."""
    train = _window(close, fold.train_start, fold.train_end)
    if len(train) < 2:
        raise ValueError(f"{fold.key}: the train window {fold.train_start.date()}..{fold.train_end.date()} "
                         f"holds {len(train)} bars")
    opt = optimize(train, spec, config, search)
    upto = close.loc[close.index <= fold.test_end]
    res = run_backtest(upto, opt.strategy, opt.params, with_trading(config, opt.trading))
    mask = np.asarray(upto.index >= fold.test_start)
    if not mask.any():
        raise ValueError(f"{fold.key}: no bars in the test window {fold.test_start.date()}..{fold.test_end.date()}")
    r = res.returns.iloc[:, 0][mask]
    oos = compute_metrics(r.to_frame("oos"), config.periods_per_year, positions=res.positions[mask]).iloc[0]
    metric = efficiency_metric(spec.objective)
    is_obj, oos_obj = float(opt.metrics[spec.objective]), float(oos[spec.objective])
    is_eff, oos_eff = float(opt.metrics[metric]), float(oos[metric])
    row = {**fold.as_dict(), "n_train_bars": len(train), "n_test_bars": int(mask.sum()), "strategy": opt.strategy,
           "params": params_json(opt.params), "trading": params_json(opt.trading), "n_trials": opt.n_trials, "objective": spec.objective,
           "is_objective": is_obj, "oos_objective": oos_obj,
           "efficiency": oos_eff / is_eff if is_eff > 0 else float("nan"),
           **{f"is_{k}": opt.metrics[k] for k in METRIC_COLUMNS},
           **{f"oos_{k}": float(oos[k]) for k in METRIC_COLUMNS}}
    returns = pd.DataFrame({"date": r.index, "return": r.to_numpy()})
    return FoldResult(row, opt.history, returns)


# ------------------------------------------------------------------ stitching
def stitch(close: pd.DataFrame, folds: Sequence[Fold], chosen: Sequence[tuple[str, Mapping[str, Any]]],
           config: BacktestConfig, trading: Sequence[Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """The out-of-sample account: each fold's parameters trade from its test start until the
    next fold takes over (positions decided at the close before; costs, sizing and exit rules
    applied once over the whole stitched position series).

    ``trading``: each fold's searched trading settings (``{}`` for none).  When folds chose
    different settings, the stitched positions are backtested once per fold's settings (one
    vectorized call, a column each) and every fold's dates take their returns from its own
    column: exit rules and sizing follow the settings of the fold in charge.

    Returns date, fold, return, equity, drawdown, exposure from the first test date to the last
    active date."""
    if len(folds) != len(chosen):
        raise ValueError(f"{len(folds)} folds but {len(chosen)} chosen parameter sets")
    trading = [dict(t or {}) for t in (trading or [{}] * len(folds))]
    if len(trading) != len(folds):
        raise ValueError(f"{len(folds)} folds but {len(trading)} trading settings")
    if not folds:
        raise ValueError("no folds to stitch")
    dates = close.index
    pos = np.zeros((len(dates), close.shape[1]), dtype=np.float64)
    owner = np.full(len(dates), "", dtype=object)
    for fold, (strategy, params) in zip(folds, chosen):
        a = int(dates.searchsorted(fold.test_start))  # first return of this fold
        b = int(dates.searchsorted(fold.active_end, side="right"))  # one past its last return
        if b <= a:
            continue
        spec = get_strategy(strategy)
        p = normalize_params(spec, pd.DataFrame([dict(params)]))
        upto = close.iloc[:b]  # the decisions use closes up to the fold's last decision bar
        raw = raw_positions(spec, upto, p, config.mode)[:, :, 0]  # (bars, symbols)
        lo = max(a - 1, 0)
        pos[lo:b - 1] = raw[lo:b - 1]
        owner[a:b] = fold.key
    asset_r = asset_returns_from_close(close.to_numpy(dtype=np.float64))
    if not any(trading):
        rets = backtest_positions(pos[:, :, None], asset_r, config, symbols=list(close.columns))[:, 0]
    else:
        cols = backtest_positions(np.repeat(pos[:, :, None], len(folds), axis=2), asset_r,
                                  per_set_config(config, trading), symbols=list(close.columns))
        column = np.zeros(len(dates), dtype=np.int64)  # the fold in charge of each bar's return
        for k, fold in enumerate(folds):
            column[int(dates.searchsorted(fold.test_start)):int(dates.searchsorted(fold.active_end, side="right"))] = k
        rets = cols[np.arange(len(dates)), column]
    first = int(dates.searchsorted(folds[0].test_start))
    last = int(dates.searchsorted(max(f.active_end for f in folds), side="right"))
    sl = slice(first, last)
    r = pd.Series(rets[sl], index=dates[sl])
    held = np.vstack([np.zeros((1, pos.shape[1])), pos[:-1]])  # the position held over each bar
    exposure = np.abs(held[sl]).mean(axis=1)
    return pd.DataFrame({"date": r.index, "fold": owner[sl], "return": r.to_numpy(),
                         "equity": equity_curve(r).to_numpy(), "drawdown": underwater(r).to_numpy(),
                         "exposure": exposure})


# ------------------------------------------------------------------ stability and efficiency
def parameter_evolution(folds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How the chosen parameters move from fold to fold.

    ``folds``: the fold table (fold, test_start, test_end, strategy, params JSON), in fold
    order.  Returns (long table: fold, test_start, test_end, strategy, parameter, value,
    value_text, changed -- the strategy itself is the parameter ``strategy``; stability
    table: parameter, n_folds, n_distinct, changes, stability = 1 - changes / (folds - 1),
    mean, std, cv for numeric parameters)."""
    rows = []
    prev: dict[str, Any] = {}
    for _, f in folds.iterrows():
        searched = f.get("trading")
        values = {"strategy": f["strategy"], **json.loads(f["params"]),
                  **(json.loads(searched) if isinstance(searched, str) else {})}
        for name, v in values.items():
            numeric = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            rows.append({"fold": f["fold"], "test_start": f["test_start"], "test_end": f["test_end"],
                         "strategy": f["strategy"], "parameter": name,
                         "value": float(v) if numeric else float("nan"), "value_text": str(v),
                         "changed": bool(name in prev and prev[name] != v)})
        prev = values
    long = pd.DataFrame(rows, columns=["fold", "test_start", "test_end", "strategy", "parameter", "value",
                                       "value_text", "changed"])
    stab = []
    n = len(folds)
    for name, g in long.groupby("parameter", sort=False):
        changes = int(g["changed"].sum())
        vals = g["value"].dropna()
        mean = float(vals.mean()) if len(vals) else float("nan")
        std = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
        stab.append({"parameter": name, "n_folds": len(g), "n_distinct": int(g["value_text"].nunique()),
                     "changes": changes, "stability": 1.0 - changes / (n - 1) if n > 1 else float("nan"),
                     "mean": mean, "std": std, "cv": std / abs(mean) if len(vals) > 1 and mean else float("nan")})
    return long, pd.DataFrame(stab, columns=["parameter", "n_folds", "n_distinct", "changes", "stability", "mean",
                                             "std", "cv"])


def efficiency_metric(objective: str) -> str:
    """The annualized metric walk-forward efficiency is measured on: the objective itself when
    it is a higher-is-better annualized ratio, else the annual return."""
    return _EFFICIENCY_ON.get(objective, objective)


def summarize(folds: pd.DataFrame, oos: pd.DataFrame, stability: pd.DataFrame, objective: str,
              periods_per_year: int = 252) -> dict[str, Any]:
    """One-row summary: walk-forward efficiency (mean out-of-sample over mean in-sample
    performance, on :func:`efficiency_metric`), the stitched account's metrics, the share of
    profitable folds and the mean parameter stability."""
    metric = efficiency_metric(objective)
    is_mean = float(folds[f"is_{metric}"].mean())
    oos_mean = float(folds[f"oos_{metric}"].mean())
    r = oos.set_index("date")["return"]
    m = compute_metrics(r.to_frame("oos"), periods_per_year).iloc[0]
    stab = stability.loc[stability["parameter"] != "strategy", "stability"] if len(stability) else pd.Series(dtype=float)
    if stab.dropna().empty and len(stability):
        stab = stability["stability"]
    return {
        "n_folds": len(folds),
        "efficiency_metric": metric,
        "mean_is_performance": is_mean,
        "mean_oos_performance": oos_mean,
        "walk_forward_efficiency": oos_mean / is_mean if is_mean > 0 else float("nan"),
        "profitable_fold_fraction": float((folds["oos_total_return"] > 0).mean()),
        "parameter_stability": float(stab.mean()) if stab.notna().any() else float("nan"),
        "oos_start": r.index[0], "oos_end": r.index[-1], "oos_bars": len(r),
        **{f"oos_{k}": float(m[k]) for k in RETURN_METRICS},
    }
