"""Sampler-driven parameter search: every batch of trials is ONE vectorized evaluation, and
every finished trial is recorded in an Optuna study (resumable, readable by optuna-dashboard).

    from admf_assets.engine.optimize import optimize, parse_objectives, Dim
    res = optimize(evaluate, [Dim("x", "float", 0.0, 1.0)], parse_objectives("sharpe_ratio"),
                   method="tpe", n_trials=300, seed=1)
    res.trials            # one row per trial: parameters, objective, feasibility, metrics, duration
    res.best              # trial number of the best feasible trial

``evaluate(params: DataFrame) -> DataFrame`` receives one row per trial of a batch (the
searched parameters plus ``fixed`` ones) and returns their metrics (``METRIC_COLUMNS``), in
the same order; :class:`BacktestEvaluator` is the engine's (one ``run_grid`` call per batch).

Methods (the sampler that proposes each batch):

* ``tpe`` -- Optuna's ``TPESampler`` (multivariate, ``constant_liar``: the trials of a batch
  in flight are counted as bad, so a batch spreads out); batches of ``batch_size`` (8: TPE's own
  ask costs several ms a trial, so a batch hides the engine's cost at any size, while each trial
  of a batch is sampled without the results of the others in it; measured here on momentum, 5
  seeds, the best Sharpe after 100 trials was the plain sequential loop's with batches of 4 or 8,
  0.009 lower with 16).
* ``nsga2`` -- Optuna's ``NSGAIISampler``; one generation (``population_size``, 50) per batch.
  With several objectives the result's ``pareto`` is the Pareto front.
* ``cmaes`` -- the ``cmaes`` library's CMA-ES (the optimizer Optuna's ``CmaEsSampler`` wraps,
  driven directly: Optuna's sampler re-reads its pickled state on every ask, about 2.6 ms per
  trial measured here, more than the engine's cost of a trial); one generation per batch;
  mean 0.5 and sigma 1/6 on the unit cube as Optuna's; discrete values by rounding as Optuna's.
  Population: Hansen's default 4 + 3 ln(n) (7 for 3 parameters), with IPOP restarts
  (``restart_strategy="ipop"``, the default; Optuna's ``CmaEsSampler(restart_strategy="ipop")``):
  a run that meets CMA-ES's stopping criteria (on integer parameters: every member on one
  point, after which a plain CMA-ES spends the rest of the budget re-evaluating it) is followed
  by a run from a random mean with twice the population.  Batched evaluation suits this: a
  generation is one engine call whose cost grows little with its size (measured here, momentum
  on 2 symbols x 10 years: 1 row 0.95 ms, 7 rows 1.7 ms, 16 rows 2.3 ms), so the restarts'
  larger generations cost little more per call; the first run is Hansen's, so the early trials
  are those of a plain CMA-ES.
* ``differential_evolution`` -- ``scipy.optimize.differential_evolution`` (``vectorized``,
  ``updating='deferred'``, no polishing) over the unit cube from a Latin-hypercube population
  of ``population_size`` (15 x dimensions); one generation per batch; constraints through
  scipy's feasibility rules.
* ``grid`` / ``random`` -- the given ``proposals`` (``expand_grid`` / ``sample_params``)
  evaluated in batches of ``batch_size`` (2,000) in order.

Objectives and constraints (see :func:`parse_objectives`, :func:`parse_constraints`): an
objective is a metric, a weighted sum of metrics, optionally minus ``risk_penalty`` x a risk
measure; a constraint bounds a metric.  A trial is *feasible* when every constraint holds,
its parameters satisfy the strategy's own constraint (``valid``) and its objective is a
number.  Optuna's samplers get the violations through ``Trial.set_constraint`` (TPE and
NSGA-II use them); CMA-ES, which cannot, is told ``-PENALTY - violation`` for an infeasible
trial (maximizing), so any feasible trial ranks above every infeasible one.  A trial with no
objective is told ``-PENALTY`` (``+PENALTY`` when minimizing); the table keeps NaN.

Resuming: with a ``study`` (:class:`StudyRef`), trials already recorded there count towards
``n_trials``.  Optuna samplers continue from them (the sampler sees every recorded trial);
the deterministic methods (grid, random, CMA-ES, differential evolution) replay their
proposals from the seed and take the recorded results instead of evaluating again, until
the budget is reached.  Only finished batches are written, so a kill loses at most the
batch in flight.
"""
from __future__ import annotations

import math
import os
import time
import uuid
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .backtest import BacktestConfig, GridMetrics, run_grid
from .estimate import chunk_combinations, distinct_windows
from .indicators import Indicators
from .metrics import METRIC_COLUMNS, compute_metrics
from .search import MINIMIZED, OBJECTIVE_ALIASES, default_direction, rank_trials, resolve_objective
from .strategies import _is_normalized, get_strategy, n_rows, normalize_params, valid_mask
from .studies import describe_storage, open_storage, record_trials, sync_storage

if TYPE_CHECKING:  # optuna is imported where a search runs: `admf validate` and up-to-date runs never pay for it
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial
from .util import py_scalar

__all__ = [
    "METHODS", "PENALTY", "RISK_MEASURES", "TRADING_PARAMS", "TRADING_ALIASES", "IMPORTANCE_EVALUATORS",
    "Dim", "Objective", "Constraint", "StudyRef", "BatchInfo", "OptimizeResult", "BacktestEvaluator",
    "parse_objectives", "parse_constraints", "dims_from_space", "optimize", "param_importance",
    "performance_distribution", "pareto_front", "default_batch_size", "default_population_size",
]

METHODS = ("grid", "random", "tpe", "nsga2", "cmaes", "differential_evolution")
#: methods whose proposals do not depend on results: given as ``proposals``
LIST_METHODS = ("grid", "random")
#: methods that take several objectives (a Pareto front)
MULTI_OBJECTIVE_METHODS = ("grid", "random", "tpe", "nsga2")
PENALTY = 1e9
RISK_MEASURES = ("max_drawdown", "annual_volatility")
#: trading settings a search may vary per trial (``BacktestConfig`` fields)
TRADING_PARAMS = ("stop_loss", "take_profit", "trailing_stop", "max_holding", "target_vol", "position_size")
TRADING_ALIASES = {"risk_level": "target_vol", "vol_target": "target_vol", "position_sizing": "position_size",
                   "max_position_size": "position_size", "holding_period": "max_holding"}
_INT_TRADING = {"max_holding"}
IMPORTANCE_EVALUATORS = ("ped_anova", "fanova", "mean_decrease_impurity")
#: trials used for parameter importance (a seeded subsample of the feasible ones beyond this)
IMPORTANCE_MAX_TRIALS = 2000
DEFAULT_LIST_BATCH = 2000
_STATE_KEY = "constraints:"


# ================================================================== search space
@dataclass(frozen=True)
class Dim:
    """One searched parameter: ``float`` / ``int`` range (``step``, ``log``) or ``categorical``.

    CMA-ES and differential evolution move in the unit cube; ``decode`` maps a unit coordinate
    to a value (ranges linearly or on a log scale, discrete values in equal-width bins).

    >>> Dim("w", "int", 5, 9).decode(np.array([0.0, 0.5, 0.99])).tolist()
    [5, 7, 9]
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()

    def __post_init__(self):
        if self.kind not in ("float", "int", "categorical"):
            raise ValueError(f"parameter {self.name!r}: kind must be float, int or categorical")
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError(f"parameter {self.name!r}: no choices")
            return
        if self.low is None or self.high is None or not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"parameter {self.name!r}: a range needs finite low and high")
        if self.low > self.high:
            raise ValueError(f"parameter {self.name!r}: low {self.low} is greater than high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"parameter {self.name!r}: a log range needs low > 0")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"parameter {self.name!r}: step must be > 0")
        if self.log and self.step is not None and not (self.kind == "int" and self.step == 1):
            raise ValueError(f"parameter {self.name!r}: a log range takes no step")

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        high = self.high
        if self.step is not None:  # Optuna needs high on the step grid
            high = self.low + math.floor((self.high - self.low) / self.step + 1e-9) * self.step
        return FloatDistribution(float(self.low), float(high), log=self.log, step=self.step)

    def _values(self) -> np.ndarray | None:
        """The finite set of values (discrete kinds), or None for a continuous range."""
        if self.kind == "categorical":
            return np.asarray(self.choices, dtype=object)
        if self.kind == "int" and not self.log:
            return np.arange(int(self.low), int(self.high) + 1, int(self.step or 1), dtype=np.int64)
        if self.kind == "float" and self.step is not None:
            n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            return np.round(self.low + self.step * np.arange(n), 12)
        return None

    def decode(self, u: np.ndarray) -> np.ndarray:
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        values = self._values()
        if values is not None:
            idx = np.minimum((u * len(values)).astype(np.int64), len(values) - 1)
            return values[idx]
        if self.log:
            x = np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        else:
            x = self.low + u * (self.high - self.low)
        if self.kind == "int":
            return np.clip(np.round(x), self.low, self.high).astype(np.int64)
        return np.clip(x, self.low, self.high)


def dims_from_space(space: Mapping[str, Any], integer: Sequence[str] = ()) -> tuple[list[Dim], dict[str, Any]]:
    """Searched dimensions and fixed values of a search space in the engine's form.

    A list is a set of choices (one value: fixed), ``{low, high, step?, log?, type?}`` a range
    (``type: int`` or a name in ``integer`` makes it integer), ``{values: [...]}`` choices, a
    scalar a fixed value.  Returns ``(dims, fixed)``.

    >>> dims, fixed = dims_from_space({"fast": {"low": 3, "high": 50}, "thr": [0.0, 0.01], "k": 7})
    >>> [(d.name, d.kind) for d in dims], fixed
    ([('fast', 'int'), ('thr', 'categorical')], {'k': 7})
    """
    dims, fixed = [], {}
    for name, v in space.items():
        if isinstance(v, Mapping) and ("values" in v or "choices" in v):
            v = list(v.get("values", v.get("choices")))
        if isinstance(v, Mapping):
            if "low" not in v or "high" not in v:
                raise ValueError(f"parameter {name!r}: a range needs low and high, got {dict(v)}")
            lo, hi, step = v["low"], v["high"], v.get("step")
            kind = v.get("type")
            if kind is None:
                ints = all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in (lo, hi))
                ints = ints and (step is None or isinstance(step, (int, np.integer)))
                kind = "int" if (name in integer or ints) else "float"
            if lo == hi:
                fixed[name] = int(lo) if kind == "int" else float(lo)
                continue
            dims.append(Dim(name, kind, float(lo) if kind == "float" else int(lo),
                            float(hi) if kind == "float" else int(hi),
                            None if step is None else (int(step) if kind == "int" else float(step)),
                            bool(v.get("log", False))))
        elif isinstance(v, (list, tuple, np.ndarray)):
            vals = [py_scalar(x) for x in v]
            if not vals:
                raise ValueError(f"parameter {name!r}: empty list of values")
            if len(set(map(repr, vals))) == 1:
                fixed[name] = vals[0]
            else:
                dims.append(Dim(name, "categorical", choices=tuple(dict.fromkeys(vals))))
        else:
            fixed[name] = py_scalar(v)
    return dims, fixed


# ================================================================== objectives, constraints
_METRIC_ALIASES = {**OBJECTIVE_ALIASES, "trades": "n_trades", "volatility": "annual_volatility", "vol": "annual_volatility"}


def _metric(name: str) -> str | None:
    key = str(name).lower()
    key = _METRIC_ALIASES.get(key, key)
    return key if key in METRIC_COLUMNS else None


@dataclass(frozen=True)
class Objective:
    """``sum(weight * metric)`` (a minimized metric enters with its sign flipped), minus
    ``risk_penalty`` x the risk measure (``|max_drawdown|`` or ``annual_volatility``); one
    metric alone keeps its own direction."""

    terms: tuple[tuple[str, float], ...]
    direction: str = "maximize"
    risk_penalty: float = 0.0
    risk_measure: str = "max_drawdown"

    @property
    def name(self) -> str:
        if len(self.terms) == 1 and self.terms[0][1] == 1.0:
            base = self.terms[0][0]
        else:
            base = " + ".join(f"{w:g}*{m}" for m, w in self.terms)
        if self.risk_penalty:
            risk = "|max_drawdown|" if self.risk_measure == "max_drawdown" else self.risk_measure
            base = f"{base} {'-' if self.direction == 'maximize' else '+'} {self.risk_penalty:g}*{risk}"
        return base

    @property
    def key(self) -> str:
        """A column-safe name (the metric itself for a plain objective)."""
        if len(self.terms) == 1 and self.terms[0][1] == 1.0 and not self.risk_penalty:
            return self.terms[0][0]
        return "score"

    def values(self, m: Mapping[str, np.ndarray]) -> np.ndarray:
        single = len(self.terms) == 1 and self.terms[0][1] == 1.0
        if single:
            out = np.asarray(m[self.terms[0][0]], dtype=np.float64).copy()
        else:
            out = 0.0
            for metric, w in self.terms:
                sign = -1.0 if metric in MINIMIZED else 1.0
                out = out + w * sign * np.asarray(m[metric], dtype=np.float64)
            out = np.asarray(out, dtype=np.float64)
        if self.risk_penalty:
            risk = np.asarray(m[self.risk_measure], dtype=np.float64)
            risk = np.abs(risk) if self.risk_measure == "max_drawdown" else risk
            out = out - self.risk_penalty * risk if self.direction == "maximize" else out + self.risk_penalty * risk
        return out


def parse_objectives(spec: Any, direction: str | Sequence[str] | None = None, risk_penalty: float = 0.0,
                     risk_measure: str = "max_drawdown") -> list[Objective]:
    """Objectives from the YAML form: a metric (``sharpe_ratio``, ``sortino``, ...), a weighted
    combination ``{sharpe_ratio: 0.7, calmar_ratio: 0.3}``, or a list of either (several
    objectives: a Pareto front).  ``direction`` overrides a single objective's direction
    (a list: one per objective).  Raises ValueError naming the problem.

    >>> [o.name for o in parse_objectives({"sharpe": 0.5, "calmar": 0.5})]
    ['0.5*sharpe_ratio + 0.5*calmar_ratio']
    """
    specs = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    if not specs:
        raise ValueError("no objective given")
    if risk_measure not in RISK_MEASURES:
        raise ValueError(f"unknown risk measure {risk_measure!r}; known: {', '.join(RISK_MEASURES)}")
    if risk_penalty and (not math.isfinite(risk_penalty) or risk_penalty < 0):
        raise ValueError(f"risk_penalty must be a number >= 0, got {risk_penalty!r}")
    if risk_penalty and len(specs) > 1:
        raise ValueError("risk_penalty applies to one objective; with several, add the risk measure as an objective")
    dirs = list(direction) if isinstance(direction, (list, tuple)) else [direction] * len(specs)
    if len(dirs) != len(specs):
        raise ValueError(f"{len(dirs)} directions for {len(specs)} objectives")
    out = []
    for s, d in zip(specs, dirs):
        if isinstance(s, Mapping):
            if not s:
                raise ValueError("an objective combination needs at least one metric: weight")
            terms = []
            for metric, w in s.items():
                key = resolve_objective(metric)
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
                    raise ValueError(f"weight of {metric!r} must be a number, got {w!r}")
                terms.append((key, float(w)))
            if all(w == 0 for _, w in terms):
                raise ValueError("every weight of the objective combination is 0")
            if len(terms) == 1 and terms[0][1] == 1.0:
                out.append(Objective(tuple(terms), d or default_direction(terms[0][0]), risk_penalty, risk_measure))
            else:
                if d not in (None, "maximize"):
                    raise ValueError("a weighted combination is maximized (minimized metrics enter with a "
                                     "negative sign); give no direction")
                out.append(Objective(tuple(terms), "maximize", risk_penalty, risk_measure))
        elif isinstance(s, str):
            key = resolve_objective(s)
            out.append(Objective(((key, 1.0),), d or default_direction(key), risk_penalty, risk_measure))
        else:
            raise ValueError(f"an objective is a metric name or a {{metric: weight}} mapping, got {s!r}")
    for o in out:
        if o.direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be maximize or minimize, got {o.direction!r}")
    _once([o.name for o in out], "an objective is listed twice")
    return out


def _once(names: list[str], message: str) -> None:
    if len(set(names)) != len(names):
        raise ValueError(f"{message} ({', '.join(names)})")


@dataclass(frozen=True)
class Constraint:
    """``low <= metric <= high`` (``max_drawdown`` compared by its depth, a positive number).

    The violation is relative to the bound (``(metric - high) / |high|``), so constraints
    on different scales add up sensibly; <= 0 is satisfied, a NaN metric violates by 1."""

    key: str
    metric: str
    low: float | None = None
    high: float | None = None

    @property
    def text(self) -> str:
        m = "|max_drawdown|" if self.metric == "max_drawdown" else self.metric
        if self.low is not None and self.high is not None:
            return f"{self.low:g} <= {m} <= {self.high:g}"
        return f"{m} >= {self.low:g}" if self.low is not None else f"{m} <= {self.high:g}"

    def violation(self, m: Mapping[str, np.ndarray]) -> np.ndarray:
        x = np.asarray(m[self.metric], dtype=np.float64)
        if self.metric == "max_drawdown":
            x = np.abs(x)
        v = np.full(x.shape, -np.inf)
        with np.errstate(invalid="ignore"):
            if self.high is not None:
                v = np.maximum(v, (x - self.high) / max(abs(self.high), 1e-12))
            if self.low is not None:
                v = np.maximum(v, (self.low - x) / max(abs(self.low), 1e-12))
        return np.where(np.isnan(x), 1.0, np.maximum(v, -1.0))


def parse_constraints(spec: Mapping[str, Any] | None) -> list[Constraint]:
    """Constraints from the YAML form.

    * ``max_drawdown: 0.25`` -- the drawdown is at most 25 % deep;
    * ``min_trades: 10`` / ``max_trades: 500`` -- bounds on ``n_trades``;
    * ``min_<metric>: x`` / ``max_<metric>: x`` -- e.g. ``min_sharpe_ratio: 0.5``,
      ``max_annual_volatility: 0.2`` (aliases such as ``min_sharpe`` work);
    * ``<metric>: {min: a, max: b}``.

    >>> [c.text for c in parse_constraints({"max_drawdown": 0.2, "min_trades": 5})]
    ['|max_drawdown| <= 0.2', 'n_trades >= 5']
    """
    out: list[Constraint] = []
    for key, value in (spec or {}).items():
        key = str(key)
        metric, low, high = None, None, None
        if isinstance(value, Mapping):
            metric = _metric(key)
            extra = sorted(set(value) - {"min", "max"})
            if metric is None or extra or not value:
                raise ValueError(f"constraint '{key}': use {{min: x, max: y}} with a metric name "
                                 f"({', '.join(METRIC_COLUMNS)})")
            low, high = value.get("min"), value.get("max")
        else:
            if key == "max_drawdown" or _metric(key) == "max_drawdown":
                metric, high = "max_drawdown", value
            elif key.startswith(("min_", "max_")) and _metric(key[4:]) is not None:
                metric = _metric(key[4:])
                low, high = (value, None) if key.startswith("min_") else (None, value)
            else:
                raise ValueError(f"unknown constraint '{key}': use max_drawdown, min_trades, min_<metric>, "
                                 f"max_<metric> or <metric>: {{min, max}} (metrics: {', '.join(METRIC_COLUMNS)})")
        for b in (low, high):
            if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b)):
                raise ValueError(f"constraint '{key}': bound must be a number, got {b!r}")
        if metric == "max_drawdown":
            low, high = (None if low is None else abs(low)), (None if high is None else abs(high))
        if low is not None and high is not None and low > high:
            raise ValueError(f"constraint '{key}': min {low} is greater than max {high}")
        ckey = "".join(ch if ch.isalnum() else "_" for ch in key).strip("_").lower()
        out.append(Constraint(ckey, metric, None if low is None else float(low), None if high is None else float(high)))
    _once([c.key for c in out], "a constraint is given twice")
    return out


# ================================================================== studies and results
@dataclass(frozen=True)
class StudyRef:
    """Where a search records its trials: ``storage`` (a spec for ``studies.open_storage``, or a
    storage the caller opened) and the study's ``name``; ``resume=False`` deletes an existing study of
    that name first; ``attrs`` are stored as the study's user attributes (what it searched, on
    which data).  ``label`` names the storage in results (default: the spec)."""

    storage: Any
    name: str
    resume: bool = True
    attrs: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None

    @property
    def where(self) -> str:
        if self.label is not None:
            return self.label
        return describe_storage(self.storage if isinstance(self.storage, (str, os.PathLike)) or self.storage is None
                                else type(self.storage).__name__)


@dataclass
class BatchInfo:
    """What ``on_batch`` gets after each recorded batch."""

    batch: int
    n_done: int
    n_trials: int
    n_in_batch: int
    best: float | None
    seconds: float


@dataclass
class OptimizeResult:
    trials: pd.DataFrame  #: one row per trial, in trial order (see ``trials_frame``)
    objectives: list[Objective]
    constraints: list[Constraint]
    dims: list[Dim]
    fixed: dict[str, Any]
    method: str
    best: int | None  #: trial number of the best feasible trial (None when there is none)
    pareto: list[int]  #: trial numbers of the Pareto front (the best trial alone for one objective)
    n_resumed: int  #: trials found in the study when the search started
    n_evaluated: int  #: trials evaluated by this call
    engine_calls: int  #: evaluate() calls made by this call (one per batch)
    seconds: dict[str, float]  #: sampler, engine, storage, total
    study_name: str | None = None
    storage: str | None = None
    message: str = ""


def _clean(x: Any) -> Any:
    v = py_scalar(x)
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _trial_metrics(t: FrozenTrial) -> dict[str, float] | None:
    m = t.user_attrs.get("metrics")
    if m is None:
        return None
    return {k: (np.nan if m.get(k) is None else float(m[k])) for k in METRIC_COLUMNS}


def _metric_block(metrics: list[dict | None]) -> tuple[np.ndarray, np.ndarray]:
    """Per-trial metric dicts (None: no metrics) as ``evaluate_block``'s (array, has) pair."""
    has = np.array([m is not None for m in metrics], dtype=bool)
    m = np.full((len(metrics), len(METRIC_COLUMNS)), np.nan)
    for i, x in enumerate(metrics):
        if x is not None:
            m[i] = [x[c] for c in METRIC_COLUMNS]
    return m, has


# ================================================================== the loop
class _Search:
    """State shared by every method's loop: scoring, recording, timing."""

    def __init__(self, evaluate, dims, objectives, constraints, fixed, valid, method, n_trials, study, on_batch):
        self.evaluate, self.dims, self.objectives, self.constraints = evaluate, dims, objectives, constraints
        self.fixed, self.valid, self.method, self.n_trials, self.on_batch = fixed, valid, method, n_trials, on_batch
        self.dists = {d.name: d.distribution() for d in dims}
        self.directions = [o.direction for o in objectives]
        self.session = uuid.uuid4().hex[:12]
        import optuna
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if study is None or study.storage is None or isinstance(study.storage, (str, os.PathLike)):
            self.storage = open_storage(study.storage) if study is not None else None
        else:
            self.storage = study.storage  # opened by the caller
        self.persist = None
        if study is not None:
            if not study.resume:
                try:
                    optuna.delete_study(study_name=study.name, storage=self.storage)
                except KeyError:
                    pass
            self.persist = optuna.create_study(storage=self.storage, study_name=study.name,
                                               directions=self.directions, load_if_exists=True)
            if list(self.persist.directions) != [optuna.study.StudyDirection[d.upper()] for d in self.directions]:
                raise ValueError(f"study {study.name!r} exists with other directions; use another study name")
            for k, v in study.attrs.items():
                if self.persist.user_attrs.get(k) != _jsonable(v):
                    self.persist.set_user_attr(k, _jsonable(v))
        self.done: list[FrozenTrial] = (self.persist.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                                        if self.persist is not None else [])
        self.n_resumed = len(self.done)
        self.n_evaluated = 0
        self.engine_calls = 0
        self.t = {"sampler": 0.0, "engine": 0.0, "storage": 0.0}
        self.batch = max((int(t.user_attrs.get("batch", -1)) for t in self.done), default=-1) + 1
        self.constraint_keys = (["valid_parameters"] if valid is not None else []) + ["objective_defined"] + \
            [c.key for c in constraints]
        #: trials_frame columns of the trials recorded after the first ``n_kept_from`` (``keep``)
        self.blocks: list[dict[str, Any]] = []
        self.n_kept_from, self.n_kept = self.n_resumed, 0
        self._best, self._best_upto = None, 0  # _best_value: of the first _best_upto trials

    # ---------------------------------------------------------------- scoring
    def score(self, metrics: list[dict | None]) -> tuple[np.ndarray, np.ndarray]:
        """(objective values (n x k), constraint violations (n x m)) of a batch's metrics."""
        return self.score_block(*_metric_block(metrics))

    def score_block(self, m: np.ndarray, has: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``score`` of a batch's metrics as an (n x ``METRIC_COLUMNS``) array; ``has[i]``: row i has
        metrics (False: it failed the strategy's constraint and was not evaluated)."""
        n, k = len(m), len(self.objectives)
        obj = np.full((n, k), np.nan)
        viol = np.zeros((n, len(self.constraint_keys)))
        col = 0
        if self.valid is not None:
            viol[:, 0] = np.where(has, 0.0, 1.0)
            col = 1
        if has.any():
            arrays = {c: m[has, j] for j, c in enumerate(METRIC_COLUMNS)}
            for j, o in enumerate(self.objectives):
                obj[has, j] = o.values(arrays)
            for j, c in enumerate(self.constraints):
                viol[has, col + 1 + j] = c.violation(arrays)
        viol[:, col] = np.where(np.isfinite(obj).all(axis=1), 0.0, 1.0)
        if self.valid is not None:  # no metrics: the metric constraints are unknown, not violated
            viol[~has, col + 1:] = 0.0
        return obj, viol

    def told(self, obj: np.ndarray, viol: np.ndarray, uses_constraints: bool) -> list[list[float]]:
        """Values told to the sampler (see the module docstring), computed for the whole batch."""
        obj = np.asarray(obj, dtype=np.float64).reshape(len(obj), len(self.directions))
        sign = np.array([1.0 if d == "maximize" else -1.0 for d in self.directions])
        bad = np.maximum(np.asarray(viol, dtype=np.float64).reshape(len(obj), -1), 0.0).sum(axis=1)[:, None]
        vals = obj if uses_constraints else np.where(bad > 0, -sign * (PENALTY + bad), obj)
        return np.where(np.isfinite(obj), vals, -sign * PENALTY).tolist()

    # ---------------------------------------------------------------- evaluation
    def evaluate_params(self, params: list[dict]) -> list[dict | None]:
        """Metrics of each parameter set (None: fails the strategy's constraint), ONE evaluate call."""
        m, has = self.evaluate_block(params)
        return [dict(zip(METRIC_COLUMNS, row)) if h else None for row, h in zip(m.tolist(), has)]

    def evaluate_block(self, params: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """``evaluate_params`` as (metrics (n x ``METRIC_COLUMNS``, NaN rows where not evaluated), evaluated)."""
        if not params:
            return np.empty((0, len(METRIC_COLUMNS))), np.zeros(0, bool)
        names = list(dict.fromkeys(k for p in params for k in p))
        cols: dict[str, Any] = {}
        for k in names:
            vals = [p.get(k) for p in params]
            arr = np.asarray(vals) if all(type(v) in (int, float) for v in vals) else None  # numbers: no inference
            cols[k] = arr if arr is not None and arr.dtype.kind in "if" else vals  # (ints beyond int64: a list)
        cols.update({k: [v] * len(params) for k, v in self.fixed.items() if k not in cols})
        n = len(params)
        if self.valid is None:
            ok = np.ones(n, bool)
        elif getattr(self.valid, "takes_columns", False):  # tested before any frame is built
            ok = np.asarray(self.valid(cols), bool)
        else:
            ok = np.asarray(self.valid(pd.DataFrame(cols)), bool)
        out = np.full((n, len(METRIC_COLUMNS)), np.nan)
        if ok.any():
            t0 = time.perf_counter()
            if not ok.all():  # one frame of the rows to evaluate
                idx = np.flatnonzero(ok)
                cols = {k: v[ok] if isinstance(v, np.ndarray) else [v[i] for i in idx] for k, v in cols.items()}
            checked = self.valid is not None  # the rows passed ``valid``: an evaluator need not test them again
            by_columns = getattr(self.evaluate, "evaluate_columns", None)
            if by_columns is not None:
                rows = np.asarray(by_columns(cols, int(ok.sum()), checked=checked), dtype=np.float64)
            else:
                frame = pd.DataFrame(cols)
                res = (self.evaluate(frame, checked=True) if checked and getattr(self.evaluate, "takes_checked", False)
                       else self.evaluate(frame))
                rows = (res if list(res.columns) == list(METRIC_COLUMNS) else res[list(METRIC_COLUMNS)]).to_numpy(
                    dtype=np.float64)
            self.t["engine"] += time.perf_counter() - t0
            self.engine_calls += 1
            if len(rows) != int(ok.sum()):
                raise ValueError(f"evaluate returned {len(rows)} rows for {int(ok.sum())} parameter sets")
            out[ok] = rows
        self.n_evaluated += len(params)
        return out, ok

    def attrs(self, metrics: dict | None, obj: np.ndarray, batch_seconds: float, n: int, ask_seconds: float) -> dict:
        """A recorded trial's user attributes: its metrics and objective values (NaN / inf as None, JSON's
        null), then what the trials of its batch share (``shared_attrs``)."""
        clean = None if metrics is None else {k: (v if v == v and abs(v) != math.inf else None)
                                              for k, v in metrics.items()}
        return {"metrics": clean, "objective": [_clean(x) for x in obj],
                **self.shared_attrs(batch_seconds, n, ask_seconds)}

    def shared_attrs(self, batch_seconds: float, n: int, ask_seconds: float) -> dict:
        """The user attributes every trial of a batch of ``n`` shares."""
        return {"batch": self.batch, "session": self.session, "ask_seconds": round(ask_seconds, 6),
                "eval_seconds": round(batch_seconds / max(n, 1), 6),
                **({"fixed": {k: _clean(v) for k, v in self.fixed.items()}} if self.fixed else {})}

    # ---------------------------------------------------------------- recording
    def keep(self, params: list[dict], metrics: np.ndarray, obj: np.ndarray, viol: np.ndarray,
             batch_seconds: float, ask_seconds: float) -> None:
        """The ``trials_frame`` columns of the batch about to be recorded (numbered from
        ``len(self.done)``; ``metrics`` as ``evaluate_block`` gives them), built from its arrays:
        the values ``trials_frame`` reads back from its FrozenTrials (non-finite objectives and
        metrics as NaN, the rounded durations)."""
        n = len(params)
        start = len(self.done)
        block: dict[str, Any] = {"trial_id": np.arange(start, start + n), "state": ["COMPLETE"] * n}
        for d in self.dims:
            block[d.name] = [p.get(d.name) for p in params]
        for j in range(obj.shape[1]):
            block[f"objective_{j}"] = np.where(np.isfinite(obj[:, j]), obj[:, j], np.nan)
        for j, c in enumerate(self.constraint_keys):
            block[f"violation_{c}"] = viol[:, j].astype(np.float64)
        m = np.where(np.isfinite(metrics), metrics, np.nan)  # rows without metrics are NaN already
        for j, c in enumerate(METRIC_COLUMNS):
            block[c] = m[:, j]
        block["duration"] = np.full(n, round(ask_seconds, 6) + round(batch_seconds / max(n, 1), 6))
        block["batch"] = np.full(n, self.batch)
        block["resumed"] = np.zeros(n, bool)
        self.blocks.append(block)
        self.n_kept += n

    def frame(self) -> pd.DataFrame:
        """``trials_frame`` of every trial: the recorded ones read back, the rest from the kept columns
        (all read back when a trial was recorded without its columns: ``_run_optuna`` keeps none)."""
        if self.n_kept_from + self.n_kept != len(self.done):
            return trials_frame(self.done, self.dims, self.objectives, self.constraint_keys, self.session)
        return trials_frame(self.done[: self.n_kept_from], self.dims, self.objectives, self.constraint_keys,
                            self.session, self.blocks)

    def record(self, trials: list[FrozenTrial]) -> None:
        if self.persist is not None and trials:
            t0 = time.perf_counter()
            record_trials(self.persist, trials)
            self.t["storage"] += time.perf_counter() - t0
        self.done.extend(trials)
        self.batch += 1
        if self.on_batch is not None:
            self.on_batch(BatchInfo(self.batch - 1, len(self.done), self.n_trials, len(trials), self._best_value(),
                                    sum(self.t.values())))

    def frozen(self, base: int, params: list[dict], told: list[list[float]], metrics: np.ndarray, has: np.ndarray,
               obj: np.ndarray, viol: np.ndarray, start: datetime, batch_seconds: float, ask_seconds: float,
               end: datetime) -> list[FrozenTrial]:
        """The finished trials of a batch, numbered from ``base`` (``metrics`` as ``evaluate_block``
        gives them; ``end``: when the batch's evaluation ended), with the user attributes ``attrs``
        gives, built for the whole batch at once."""
        from optuna.trial import FrozenTrial, TrialState

        n = len(params)
        shared = self.shared_attrs(batch_seconds, n, ask_seconds)
        finite = np.isfinite(metrics)
        rows, fin, all_fin, evaluated = metrics.tolist(), finite.tolist(), finite.all(axis=1).tolist(), has.tolist()
        objective = np.where(np.isfinite(obj), obj, 0.0).tolist()
        obj_ok = np.isfinite(obj).tolist()
        violations = viol.tolist()
        keys = [f"{_STATE_KEY}{k}" for k in self.constraint_keys]
        out = []
        for i in range(n):
            if not evaluated[i]:
                m = None
            elif all_fin[i]:
                m = dict(zip(METRIC_COLUMNS, rows[i]))
            else:  # NaN / inf -> None (JSON's null)
                m = dict(zip(METRIC_COLUMNS, [v if f else None for v, f in zip(rows[i], fin[i])]))
            values = told[i] if len(told[i]) > 1 else None
            out.append(FrozenTrial(
                number=base + i, state=TrialState.COMPLETE, value=None if values else told[i][0], values=values,
                datetime_start=start, datetime_complete=end,
                params={k: v if type(v) in (int, float, str, bool) else py_scalar(v) for k, v in params[i].items()},
                distributions=self.dists,
                user_attrs={"metrics": m, "objective": [x if f else None for x, f in zip(objective[i], obj_ok[i])],
                            **shared},
                system_attrs=dict(zip(keys, violations[i])), intermediate_values={}, trial_id=base + i))
        return out

    def _best_value(self) -> float | None:
        """The best feasible first objective recorded so far (kept up to date, trial by trial)."""
        d = self.directions[0]
        best = self._best
        for t in self.done[self._best_upto:]:
            if any(v > 0 for v in t.constraints.values()):
                continue
            x = t.user_attrs.get("objective", [None])[0]
            if x is None:
                continue
            if best is None or (x > best if d == "maximize" else x < best):
                best = x
        self._best, self._best_upto = best, len(self.done)
        return best

    def recorded(self, i: int, params: dict) -> FrozenTrial | None:
        """The recorded trial at position ``i`` when it holds the same parameters (a replay)."""
        if i >= self.replay_limit:
            return None
        t = self.done[i]
        same = set(t.params) == set(params) and all(_same(t.params[k], params[k]) for k in params)
        if not same:
            self.replay_limit = i  # the proposals diverged from what was recorded: evaluate from here on
            return None
        return t

    def sync(self) -> None:
        t0 = time.perf_counter()
        sync_storage(self.storage)
        self.t["storage"] += time.perf_counter() - t0


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return bool(np.isclose(float(a), float(b), rtol=1e-12, atol=0.0))
        except (TypeError, ValueError):
            return False
    return a == b


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return _clean(v)


def _derived_seed(seed: int, n_done: int) -> int:
    """The sampler seed after ``n_done`` recorded trials (``seed`` itself for a fresh study)."""
    if n_done == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(n_done)]).generate_state(1)[0])


def default_batch_size(method: str) -> int:
    return {"tpe": 8}.get(method, DEFAULT_LIST_BATCH)


def default_population_size(method: str, n_dims: int) -> int:
    """NSGA-II: Optuna's 50; CMA-ES: 4 + 3 ln(n) (Hansen's; the first run's, IPOP restarts double
    it); DE: scipy's 15 x dimensions."""
    if method == "nsga2":
        return 50
    if method == "cmaes":
        return 4 + int(math.floor(3 * math.log(max(n_dims, 1))))
    if method == "differential_evolution":
        return max(5, 15 * n_dims)
    raise ValueError(f"method {method!r} has no population")


def optimize(evaluate: Callable[[pd.DataFrame], pd.DataFrame], dims: Sequence[Dim], objectives: Sequence[Objective], *,
             method: str, n_trials: int, seed: int = 0, constraints: Sequence[Constraint] = (),
             fixed: Mapping[str, Any] | None = None, valid: Callable[[pd.DataFrame], Any] | None = None,
             proposals: pd.DataFrame | None = None, batch_size: int | None = None,
             population_size: int | None = None, study: StudyRef | None = None,
             on_batch: Callable[[BatchInfo], None] | None = None,
             restart_strategy: str | None = "ipop") -> OptimizeResult:
    """Search ``dims`` with ``method`` until ``n_trials`` trials are recorded (see the module
    docstring); returns every trial (the study's earlier ones included) and the best."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
    objectives = list(objectives)
    if not objectives:
        raise ValueError("no objective")
    if len(objectives) > 1 and method not in MULTI_OBJECTIVE_METHODS:
        raise ValueError(f"method {method!r} optimizes one objective; several objectives need "
                         f"{', '.join(MULTI_OBJECTIVE_METHODS)}")
    if n_trials is None or int(n_trials) < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials!r}")
    dims = list(dims)
    if method in LIST_METHODS:
        if proposals is None:
            raise ValueError(f"method {method!r} evaluates given proposals")
    elif not dims:
        raise ValueError(f"method {method!r} needs at least one searched parameter (a range or several values)")
    if restart_strategy not in (None, "ipop"):
        raise ValueError(f"restart_strategy must be None or 'ipop', got {restart_strategy!r}")
    if method == "cmaes" and len(dims) < 2:
        raise ValueError("method 'cmaes' needs at least 2 searched parameters (CMA-ES is multivariate); use "
                         "'bayesian' or 'differential_evolution' for one")
    n_trials = int(n_trials)
    s = _Search(evaluate, dims, objectives, list(constraints), dict(fixed or {}), valid, method, n_trials, study,
                on_batch)
    s.replay_limit = len(s.done)
    t0 = time.perf_counter()
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if method in LIST_METHODS:
            _run_list(s, proposals, batch_size or default_batch_size(method))
        elif method in ("tpe", "nsga2"):
            pop = population_size or (default_population_size(method, len(dims)) if method == "nsga2" else None)
            _run_optuna(s, seed, batch_size or (pop if method == "nsga2" else default_batch_size(method)), pop)
        elif method == "cmaes":
            _run_cmaes(s, seed, population_size or default_population_size(method, len(dims)), restart_strategy)
        else:
            _run_de(s, seed, population_size or default_population_size(method, len(dims)))
    s.sync()
    total = time.perf_counter() - t0
    seconds = {**{k: round(v, 4) for k, v in s.t.items()}, "total": round(total, 4)}
    seconds["sampler"] = round(max(0.0, total - s.t["engine"] - s.t["storage"]), 4)
    trials = s.frame()
    best, pareto = _best_and_front(trials, objectives)
    msg = (f"{method}: {len(trials)} trials ({s.n_resumed} from the study, {s.n_evaluated} evaluated in "
           f"{s.engine_calls} engine calls)")
    return OptimizeResult(trials=trials, objectives=objectives, constraints=list(constraints), dims=dims,
                          fixed=dict(fixed or {}), method=method, best=best, pareto=pareto, n_resumed=s.n_resumed,
                          n_evaluated=s.n_evaluated, engine_calls=s.engine_calls, seconds=seconds,
                          study_name=study.name if study else None,
                          storage=study.where if study else None, message=msg)


def _propose(s: _Search, start: int, params: list[dict], uses_constraints: bool, ask_seconds: float = 0.0) -> int:
    """Score the proposals numbered ``start``, ``start + 1``, ...: a proposal that matches the
    recorded trial at its position is replayed (its stored metrics), the others are evaluated
    in ONE call, at most as many as the budget has left, and recorded.  Returns how many
    proposals were used (fewer than given when the budget ran out); fills ``s.last``."""
    budget = s.n_trials - len(s.done)
    new: list[int] = []
    replayed: dict[int, FrozenTrial] = {}
    for i, p in enumerate(params):
        rec = s.recorded(start + i, p) if start + i < s.replay_limit else None
        if rec is None:
            if len(new) >= budget:
                break
            new.append(i)
        else:
            replayed[i] = rec
    used = len(new) + len(replayed)
    now = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    fresh, fresh_has = s.evaluate_block([params[i] for i in new])
    secs = time.perf_counter() - t0
    if replayed:  # the batch's rows in proposal order: recorded metrics and fresh ones
        m, has = _metric_block([_trial_metrics(replayed[i]) if i in replayed else None for i in range(used)])
        m[new], has[new] = fresh, fresh_has
    else:
        m, has = fresh, fresh_has
    obj, viol = s.score_block(m, has)
    told = s.told(obj, viol, uses_constraints)
    base = len(s.done)
    end = datetime.now(timezone.utc)  # the batch's trials finish together
    if new:
        fresh_params, fresh_obj, fresh_viol = [params[i] for i in new], obj[new], viol[new]
        s.keep(fresh_params, fresh, fresh_obj, fresh_viol, secs, ask_seconds)
        s.record(s.frozen(base, fresh_params, [told[i] for i in new], fresh, fresh_has, fresh_obj, fresh_viol, now,
                          secs, ask_seconds, end))
    s.last = (obj, viol, told)
    return used


def _run_list(s: _Search, proposals: pd.DataFrame, batch_size: int) -> None:
    rows = proposals[[d.name for d in s.dims]].to_dict("records") if s.dims else [{} for _ in range(len(proposals))]
    rows = rows[: s.n_trials]
    i = 0
    while i < len(rows) and len(s.done) < s.n_trials:
        i += _propose(s, i, rows[i: i + batch_size], True)


def _make_sampler(method: str, seed: int, population_size: int | None):
    import optuna

    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size)


def _run_optuna(s: _Search, seed: int, batch_size: int, population_size: int | None) -> None:
    import optuna

    work = optuna.create_study(directions=s.directions,
                               sampler=_make_sampler(s.method, _derived_seed(seed, len(s.done)), population_size))
    if s.done:
        work.add_trials(s.done)
    while len(s.done) < s.n_trials:
        k = min(batch_size, s.n_trials - len(s.done))
        asked, asks, starts = [], [], []
        for _ in range(k):
            starts.append(datetime.now(timezone.utc))
            t0 = time.perf_counter()
            asked.append(work.ask(s.dists))
            asks.append(time.perf_counter() - t0)
        params = [t.params for t in asked]
        t0 = time.perf_counter()
        metrics = s.evaluate_params(params)
        secs = time.perf_counter() - t0
        obj, viol = s.score(metrics)
        told = s.told(obj, viol, True)
        for t, m, o, v, val, a in zip(asked, metrics, obj, viol, told, asks):
            for key, x in s.attrs(m, o, secs, k, a).items():
                t.set_user_attr(key, x)
            for key, x in zip(s.constraint_keys, v):
                t.set_constraint(key, float(x))
            work.tell(t, val)
        s.record(work.get_trials(deepcopy=False)[-k:])


def _run_cmaes(s: _Search, seed: int, popsize: int, restart_strategy: str | None = "ipop") -> None:
    """CMA-ES, one generation per batch; with ``restart_strategy="ipop"`` (IPOP-CMA-ES, Auger &
    Hansen 2005, Optuna's ``CmaEsSampler(restart_strategy="ipop")``): when a run meets its stopping
    criteria (``CMA.should_stop``: converged, e.g. every member on the same integer point), a new
    run starts from a random mean (``default_rng([seed, run])``) with twice the population."""
    import cmaes

    d = len(s.dims)
    bounds = np.tile([0.0, 1.0], (d, 1))
    opt = cmaes.CMA(mean=np.full(d, 0.5), sigma=1.0 / 6.0, bounds=bounds, seed=int(seed),
                    population_size=int(popsize))
    sign = -1.0 if s.directions[0] == "maximize" else 1.0  # cmaes minimizes
    proposal = run = 0
    while len(s.done) < s.n_trials:
        t0 = time.perf_counter()
        xs = [opt.ask() for _ in range(opt.population_size)]
        ask = (time.perf_counter() - t0) / len(xs)
        used = _propose(s, proposal, _decode(s.dims, np.array(xs)), False, ask)
        proposal += used
        if used < len(xs):
            break  # the budget ended inside this generation
        opt.tell([(x, sign * v[0]) for x, v in zip(xs, s.last[2])])
        if restart_strategy == "ipop" and opt.should_stop():
            run += 1
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, run])
            opt = cmaes.CMA(mean=rng.uniform(0.0, 1.0, d), sigma=1.0 / 6.0, bounds=bounds,
                            seed=int(rng.integers(2**31 - 1)), population_size=2 * opt.population_size)


def _decode(dims: Sequence[Dim], X: np.ndarray) -> list[dict]:
    """Parameter sets of the unit-cube points (rows of X), decoded a dimension at a time."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    cols = [d.decode(X[:, i]).tolist() for i, d in enumerate(dims)]
    names = [d.name for d in dims]
    return [dict(zip(names, row)) for row in zip(*cols)]


class _Stop(Exception):
    """Raised inside scipy's loop when the trial budget is spent."""


def _run_de(s: _Search, seed: int, popsize: int) -> None:
    from scipy.optimize import NonlinearConstraint, differential_evolution
    from scipy.stats import qmc

    d = len(s.dims)
    init = qmc.LatinHypercube(d, seed=np.random.default_rng(seed)).random(int(popsize))
    cache: dict[bytes, tuple[float, np.ndarray]] = {}
    state = {"proposal": 0}
    sign = -1.0 if s.directions[0] == "maximize" else 1.0  # scipy minimizes

    def population(X: np.ndarray) -> None:
        """Score a generation (the columns of X) in one batch; every member is a trial (a repeated
        vector too).  A call whose vectors are all scored already (the energies of the feasible
        ones) scores nothing."""
        pts = np.ascontiguousarray(X.T)
        keys = [p.tobytes() for p in pts]
        if all(k in cache for k in keys):
            return
        if len(s.done) >= s.n_trials and state["proposal"] >= s.replay_limit:
            raise _Stop
        used = _propose(s, state["proposal"], _decode(s.dims, pts), True)
        state["proposal"] += used
        obj, viol, _ = s.last
        for j in range(used):
            o = obj[j, 0]
            cache[keys[j]] = (sign * o if math.isfinite(o) else np.inf, viol[j])
        if used < len(keys):
            raise _Stop

    def constraint(X: np.ndarray) -> np.ndarray:
        if X.ndim == 1 and X.tobytes() not in cache:  # scipy's probe for the number of constraints
            return np.zeros(len(s.constraint_keys))
        X = X.reshape(d, -1)
        population(X)
        return np.stack([cache[p.tobytes()][1] for p in np.ascontiguousarray(X.T)], axis=1)

    def energy(X: np.ndarray) -> np.ndarray:
        X = X.reshape(d, -1)
        population(X)
        return np.array([cache[p.tobytes()][0] for p in np.ascontiguousarray(X.T)])

    nlc = NonlinearConstraint(constraint, -np.inf, np.zeros(len(s.constraint_keys)))
    generations = int(math.ceil(s.n_trials / popsize)) + 1
    try:
        differential_evolution(energy, [(0.0, 1.0)] * d, init=init, maxiter=generations, tol=0.0, atol=0.0,
                               polish=False, vectorized=True, updating="deferred", rng=np.random.default_rng(seed),
                               constraints=(nlc,))
    except _Stop:
        pass


# ================================================================== result tables
def trials_frame(trials: Sequence[FrozenTrial], dims: Sequence[Dim], objectives: Sequence[Objective],
                 constraint_keys: Sequence[str], session: str = "", blocks: Sequence[Mapping[str, Any]] = ()
                 ) -> pd.DataFrame:
    """One row per trial: ``trial_id``, ``state``, the parameters, ``objective`` (the first
    objective; ``objective_<i>`` for each when there are several), ``feasible``,
    ``violation`` (sum of the positive constraint violations), ``violation_<key>`` per
    constraint, the metrics, ``duration`` (seconds: the trial's own sampling time plus its
    share of its batch's evaluation), ``batch`` and ``resumed`` (recorded by an earlier run).
    ``blocks``: the columns of further trials, after ``trials``, as a search kept them (see
    ``_Search.keep``)."""
    k = len(objectives)
    names = [d.name for d in dims]
    keys = [f"{_STATE_KEY}{c}" for c in constraint_keys]
    cols: dict[str, list] = {c: [] for c in ["trial_id", "state", *names, *[f"objective_{j}" for j in range(k)],
                                            *[f"violation_{c}" for c in constraint_keys], *METRIC_COLUMNS,
                                            "duration", "batch", "resumed"]}
    nan = float("nan")
    for t in trials:  # column lists: one pass, no per-row frames
        ua, sa = t.user_attrs, t.system_attrs
        cols["trial_id"].append(t.number)
        cols["state"].append(t.state.name)
        for n in names:
            cols[n].append(t.params.get(n))
        obj = ua.get("objective") or [None] * k
        for j in range(k):
            cols[f"objective_{j}"].append(nan if obj[j] is None else float(obj[j]))
        for c, key in zip(constraint_keys, keys):
            cols[f"violation_{c}"].append(float(sa.get(key, 0.0)))
        m = ua.get("metrics") or {}
        for c in METRIC_COLUMNS:
            v = m.get(c)
            cols[c].append(nan if v is None else float(v))
        cols["duration"].append(float(ua.get("ask_seconds", 0.0)) + float(ua.get("eval_seconds", 0.0)))
        cols["batch"].append(int(ua.get("batch", -1)))
        cols["resumed"].append(ua.get("session") != session)
    if blocks:  # the kept columns after the trials': arrays joined as arrays, lists as lists
        data: dict[str, Any] = {}
        for c, head in cols.items():
            parts = [b[c] for b in blocks]
            if isinstance(parts[0], np.ndarray):
                data[c] = np.concatenate([np.asarray(head, dtype=parts[0].dtype).reshape(-1), *parts])
            else:
                data[c] = head + [x for p in parts for x in p]
        cols = data
    frame = pd.DataFrame(cols)
    viol = frame[[f"violation_{c}" for c in constraint_keys]].to_numpy(dtype=np.float64).reshape(len(frame), -1)
    at = 2 + len(names) + k
    frame.insert(at, "feasible", (viol <= 0).all(axis=1))
    frame.insert(at + 1, "violation", np.maximum(viol, 0.0).sum(axis=1))
    frame.insert(2 + len(names), "objective", frame["objective_0"])
    if k == 1:
        frame = frame.drop(columns=["objective_0"])
    for d in dims:
        if d.kind == "int" and len(frame):
            frame[d.name] = frame[d.name].astype(np.int64)
    return frame


def _objective_matrix(trials: pd.DataFrame, objectives: Sequence[Objective]) -> np.ndarray:
    cols = ["objective"] if len(objectives) == 1 else [f"objective_{j}" for j in range(len(objectives))]
    x = trials[cols].to_numpy(dtype=np.float64)
    sign = np.array([1.0 if o.direction == "maximize" else -1.0 for o in objectives])
    return x * sign  # larger is better in every column


def pareto_front(values: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``values`` (larger is better in every column).

    >>> pareto_front(np.array([[1, 2], [2, 1], [0, 0], [2, 2]])).tolist()
    [3]
    """
    v = np.asarray(values, dtype=np.float64)
    keep = []
    order = np.lexsort(tuple(-v[:, j] for j in reversed(range(v.shape[1]))))  # best first column first
    front: list[np.ndarray] = []
    for i in order:
        x = v[i]
        if any(np.all(f >= x) and np.any(f > x) for f in front):
            continue
        if any(np.array_equal(f, x) for f in front):
            keep.append(i)  # a tie with a front member is on the front too
            continue
        front.append(x)
        keep.append(i)
    return np.array(sorted(keep), dtype=np.int64)


def _best_and_front(trials: pd.DataFrame, objectives: Sequence[Objective]) -> tuple[int | None, list[int]]:
    if trials.empty:
        return None, []
    vals = _objective_matrix(trials, objectives)
    ok = trials["feasible"].to_numpy(bool) & np.isfinite(vals).all(axis=1)
    if not ok.any():
        return None, []
    idx = np.flatnonzero(ok)
    ids = trials["trial_id"].to_numpy()
    first = rank_trials(np.where(ok, vals[:, 0], np.nan), ids, "maximize")
    if len(objectives) == 1:
        best = int(ids[np.argmin(first)])
        return best, [best]
    front = idx[pareto_front(vals[idx])]
    best = int(ids[front[np.argmin(first[front])]])
    return best, [int(ids[i]) for i in front]


def rank(result: OptimizeResult) -> np.ndarray:
    """1-based rank of each trial by its first objective, feasible trials first."""
    t = result.trials
    if t.empty:
        return np.empty(0, dtype=np.int64)
    vals = _objective_matrix(t, result.objectives)[:, 0]
    vals = np.where(t["feasible"].to_numpy(bool), vals, np.nan)
    return rank_trials(vals, t["trial_id"].to_numpy(), "maximize")


def param_importance(result: OptimizeResult, evaluator: str = "ped_anova", seed: int = 0,
                     max_trials: int = IMPORTANCE_MAX_TRIALS) -> pd.DataFrame:
    """Optuna's importance of each searched parameter for the first objective, over the
    feasible trials (a seeded subsample of ``max_trials`` when there are more).  Columns:
    ``parameter``, ``importance`` (sums to 1), ``evaluator``, ``n_trials``.  Empty when fewer
    than 3 feasible trials vary or nothing varies."""
    cols = ["parameter", "importance", "evaluator", "n_trials"]
    if evaluator not in IMPORTANCE_EVALUATORS:
        raise ValueError(f"unknown importance evaluator {evaluator!r}; known: {', '.join(IMPORTANCE_EVALUATORS)}")
    t = result.trials
    names = [d.name for d in result.dims if d.name in t.columns and t[d.name].nunique() > 1]
    if t.empty or not names:
        return pd.DataFrame(columns=cols)
    vals = _objective_matrix(t, result.objectives)[:, 0]
    ok = t["feasible"].to_numpy(bool) & np.isfinite(vals)
    idx = np.flatnonzero(ok)
    if len(idx) > max_trials:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_trials, replace=False))
    names = [n for n in names if t[n].iloc[idx].nunique() > 1]
    if len(idx) < 3 or not names:
        return pd.DataFrame(columns=cols)
    import optuna

    dists = {d.name: d.distribution() for d in result.dims if d.name in names}
    study = optuna.create_study(direction="maximize")
    study.add_trials([optuna.trial.create_trial(params={n: py_scalar(t[n].iloc[i]) for n in names},
                                                distributions=dists, value=float(vals[i])) for i in idx])
    ev = {"ped_anova": lambda: optuna.importance.PedAnovaImportanceEvaluator(),
          "fanova": lambda: optuna.importance.FanovaImportanceEvaluator(seed=seed),
          "mean_decrease_impurity": lambda: optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=seed)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = optuna.importance.get_param_importances(study, evaluator=ev[evaluator](), params=names)
    return pd.DataFrame([{"parameter": k, "importance": float(v), "evaluator": evaluator, "n_trials": len(idx)}
                         for k, v in imp.items()], columns=cols)


DISTRIBUTION_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def performance_distribution(trials: pd.DataFrame, metrics: Sequence[str] = ("objective", *METRIC_COLUMNS)
                             ) -> pd.DataFrame:
    """Distribution of each metric over the feasible trials with a finite value: ``metric``,
    ``n``, ``mean``, ``std``, ``min``, ``p05``, ``p25``, ``p50``, ``p75``, ``p95``, ``max``."""
    cols = ["metric", "n", "mean", "std", "min", "p05", "p25", "p50", "p75", "p95", "max"]
    ok = trials[trials["feasible"]] if "feasible" in trials else trials
    rows = []
    for m in metrics:
        if m not in ok:
            continue
        x = ok[m].to_numpy(dtype=np.float64)
        x = x[np.isfinite(x)]
        if not len(x):
            rows.append({"metric": m, "n": 0})
            continue
        q = np.quantile(x, DISTRIBUTION_QUANTILES)
        rows.append({"metric": m, "n": len(x), "mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1
                     else np.nan, "min": float(x.min()), **{c: float(v) for c, v in zip(cols[5:10], q)},
                     "max": float(x.max())})
    return pd.DataFrame(rows, columns=cols)


# ================================================================== the engine's evaluator
class BacktestEvaluator:
    """``evaluate`` for a strategy: ONE ``run_grid`` call per batch, the trading settings of
    ``TRADING_PARAMS`` in a batch passed as per-combination arrays, one indicator cache kept
    across batches.

    ``decisions``: a boolean mask over the bars; only positions decided at those closes are
    scored (their returns, realized one bar later, and their trades), e.g. the days a regime
    label names -- the label known at the close of t governs the position decided at t.
    Metrics are then those of the returns of the scored bars joined in date order (years =
    scored bars / 252); ``n_trades`` counts opens at scored bars, ``exposure`` and
    ``turnover`` are over the scored bars.
    """

    #: ``optimize`` calls it with ``checked=True`` for rows that passed ``valid``
    takes_checked = True

    def __init__(self, close: pd.DataFrame, strategy: str, config: BacktestConfig = BacktestConfig(),
                 decisions: np.ndarray | None = None, *, workers: int = 1, memory_limit_bytes: float | None = None):
        self.close = close
        self.workers = max(1, int(workers))
        self.memory_limit_bytes = memory_limit_bytes
        self.strategy = strategy
        self.config = config
        self.indicators = Indicators(close.to_numpy(dtype=np.float64))
        self.fast = GridMetrics(close, self.indicators)
        self.decisions = None if decisions is None else np.asarray(decisions, dtype=bool)
        if self.decisions is not None and len(self.decisions) != len(close):
            raise ValueError(f"decision mask has {len(self.decisions)} bars, close has {len(close)}")

    def split(self, params: pd.DataFrame) -> tuple[pd.DataFrame, BacktestConfig]:
        """Strategy parameters (normalized) and the config with the batch's trading settings."""
        trading = [c for c in params.columns if c in TRADING_PARAMS]
        unknown = [c for c in params.columns if c not in TRADING_PARAMS and get_strategy(self.strategy)
                   .canonical_param(c) != c]
        if unknown:  # aliases or strangers: the strict path names the problem
            strat = normalize_params(self.strategy, params.drop(columns=trading), check=False)
        else:
            strat = strategy_frame(self.strategy, params)
        return strat, self._config({c: params[c].to_numpy(dtype=np.float64) for c in trading})

    def _config(self, trading: Mapping[str, np.ndarray]) -> BacktestConfig:
        """The config with a batch's trading settings (per-row arrays; one row: a scalar)."""
        updates: dict[str, Any] = {c: v if len(v) > 1 else float(v[0]) for c, v in trading.items()}
        if "target_vol" in updates and self.config.sizing != "vol_target":
            updates["sizing"] = "vol_target"
        return replace(self.config, **updates) if updates else self.config

    def _one_block(self, strat) -> bool:
        """Whether the batch (normalized parameters: a frame or columns) is evaluated by ``GridMetrics``
        in one block (under the memory limit)."""
        n = n_rows(strat)
        if self.decisions is not None or (self.workers > 1 and n > 1):
            return False
        limit = self.fast.max_rows
        if self.memory_limit_bytes is not None:  # the batch's working memory under the phase's limit
            limit = min(limit, chunk_combinations(self.memory_limit_bytes, n, *self.close.shape,
                                                  distinct_windows(strat), workers=self.workers, keep_returns=False))
        return n <= limit

    def __call__(self, params: pd.DataFrame, checked: bool = False) -> pd.DataFrame:
        """Metrics of each row; ``checked``: the rows already satisfy the strategy's constraint."""
        strat, cfg = self.split(params)
        if self._one_block(strat):
            m = self.fast(self.strategy, strat, cfg, checked)  # one block: no chunking, no per-column frames
            return pd.DataFrame(np.column_stack([m[k] for k in METRIC_COLUMNS]), columns=list(METRIC_COLUMNS))
        masked = self.decisions is not None
        chunk = None
        if self.memory_limit_bytes is not None:
            chunk = chunk_combinations(self.memory_limit_bytes, len(strat), *self.close.shape,
                                       distinct_windows(strat), workers=self.workers, keep_returns=masked)
        res = run_grid(self.close, self.strategy, strat, cfg, keep_positions=masked, indicators=self.indicators,
                       checked=checked, chunk_size=chunk, workers=self.workers, keep_returns=masked)
        if not masked:
            return res.metrics[list(METRIC_COLUMNS)].reset_index(drop=True)
        return self._masked(res.returns.to_numpy(), res.positions, cfg)

    def evaluate_columns(self, cols: Mapping[str, Any], n: int, checked: bool = False) -> np.ndarray:
        """``self(pd.DataFrame(cols), checked)`` as an (n x ``METRIC_COLUMNS``) array: what ``optimize``
        calls with a batch's ``{name: values}`` columns.  A batch of a search (a generation of a
        few dozen rows) is evaluated without the frames around it, whose construction costs about
        as much as the backtest of a CMA-ES generation."""
        strat = _strategy_columns(self.strategy, cols, n) if checked else None
        if strat is not None and self._one_block(strat):
            cfg = self._config({c: np.asarray(v, dtype=np.float64) for c, v in cols.items() if c in TRADING_PARAMS})
            m = self.fast(self.strategy, strat, cfg, checked=True, normalized=True)
            return np.column_stack([m[k] for k in METRIC_COLUMNS])
        return self(pd.DataFrame(dict(cols)), checked).to_numpy(dtype=np.float64)

    def _masked(self, returns: np.ndarray, positions: np.ndarray, cfg: BacktestConfig) -> pd.DataFrame:
        d = self.decisions
        ret_rows = np.zeros(len(d), bool)
        ret_rows[1:] = d[:-1]  # the return realized at t+1 belongs to the decision at t
        ppy = cfg.periods_per_year
        m = compute_metrics(returns[ret_rows], periods_per_year=ppy,
                            which=[k for k in METRIC_COLUMNS if k not in ("n_trades", "turnover", "exposure")])
        m = m.reset_index(drop=True)
        n_dec = int(d.sum())
        pos = positions.astype(np.float64)  # (bars x symbols x combos)
        sg = np.sign(pos)
        prev = np.concatenate([np.zeros_like(sg[:1]), sg[:-1]])
        opens = (sg != 0) & (sg != prev)
        m["n_trades"] = opens[d].sum(axis=(0, 1)).astype(np.float64)
        from .backtest import resolve_weights

        w = np.abs(resolve_weights(list(self.close.columns), pos.shape[1], cfg.weights))
        dpos = np.abs(np.diff(np.concatenate([np.zeros_like(pos[:1]), pos]), axis=0))
        turn = (dpos[d] * w[None, :, None]).sum(axis=(0, 1))
        m["turnover"] = turn / (n_dec / ppy) if n_dec else np.nan
        m["exposure"] = (sg[d] != 0).any(axis=1).mean(axis=0) if n_dec else np.nan
        return m[list(METRIC_COLUMNS)]


# ================================================================== strategies' spaces
def trading_param(name: str) -> str | None:
    """The ``BacktestConfig`` field a search-space name stands for (``risk_level`` ->
    ``target_vol``), or None for a strategy parameter."""
    key = TRADING_ALIASES.get(name, name)
    return key if key in TRADING_PARAMS else None


def split_space(strategy: str, space: Mapping[str, Any], strict: bool = True) -> tuple[dict, dict]:
    """(strategy parameters, trading settings) of a search space, names made canonical
    (strategy aliases such as ``lookback_period``, trading aliases such as ``risk_level``).
    ``strict=False`` drops names the strategy does not have (a space shared by strategies)."""
    spec = get_strategy(strategy)
    strat, trading = {}, {}
    for name, v in space.items():
        t = trading_param(name)
        if t is not None:
            if t in trading:
                raise ValueError(f"trading setting {t!r} given twice (as an alias too)")
            trading[t] = v
            continue
        c = spec.canonical_param(name)
        if c is None:
            if strict:
                raise ValueError(f"strategy {spec.name!r} has no parameter {name!r}; its parameters are: "
                                 f"{', '.join(spec.params)} (trading settings: {', '.join(TRADING_PARAMS)})")
            continue
        if c in strat:
            raise ValueError(f"strategy {spec.name!r}: parameter {c!r} given twice (as an alias too)")
        strat[c] = v
    return strat, trading


def _integer_names(strategy: str) -> list[str]:
    spec = get_strategy(strategy)
    ints = [k for k, v in spec.params.items() if isinstance(v, (int, np.integer)) and not isinstance(v, bool)]
    return ints + sorted(_INT_TRADING)


def _typed(strategy: str, space: Mapping[str, Any]) -> dict[str, Any]:
    """Ranges typed by what the parameter is (an integer or a float parameter), whatever the
    bounds look like (``signal_threshold: [0, 1]`` is a float range)."""
    spec = get_strategy(strategy)
    ints = set(_integer_names(strategy))
    out = {}
    for k, v in space.items():
        if isinstance(v, Mapping) and "low" in v and "high" in v:
            is_float = (k in spec.params and isinstance(spec.params[k], float)) or k in set(TRADING_PARAMS) - ints
            v = {**v, "type": "int" if k in ints else ("float" if is_float else v.get("type"))}
            if v["type"] is None:
                del v["type"]
        out[k] = v
    return out


def strategy_dims(strategy: str, space: Mapping[str, Any], strict: bool = True) -> tuple[list[Dim], dict]:
    """Searched dims and fixed values of a strategy's space (trading settings included)."""
    strat, trading = split_space(strategy, space, strict)
    return dims_from_space(_typed(strategy, {**strat, **trading}), _integer_names(strategy))


def strategy_frame(strategy: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The strategy's parameters of ``frame`` in its declared order and types, defaults filled
    (what ``normalize_params`` returns, built cheaply for the shapes a search produces)."""
    spec = get_strategy(strategy)
    if _is_normalized(spec, frame) and isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 \
            and frame.index.step == 1:
        return frame  # a batch's frame is usually built in this shape already
    n = len(frame)
    cols = {}
    for name, default in spec.params.items():
        values = frame[name].to_numpy() if name in frame.columns else np.full(n, default)
        if isinstance(default, bool):
            values = values.astype(bool)
        elif isinstance(default, (int, np.integer)):
            as_float = values.astype(np.float64)
            if not np.array_equal(as_float, np.round(as_float)):
                return normalize_params(spec, frame[[c for c in frame.columns if c in spec.params]], check=False)
            values = as_float.astype(np.int64)
        elif isinstance(default, float):
            values = values.astype(np.float64)
        cols[name] = values
    return pd.DataFrame(cols, index=pd.RangeIndex(n))


def _strategy_columns(strategy: str, cols: Mapping[str, Any], n: int) -> dict[str, np.ndarray] | None:
    """``strategy_frame``'s values of a batch given as ``{name: values}`` columns (trading settings
    left out), as typed arrays; None when a name is not the strategy's own (an alias, a stranger) or
    a value does not fit its type: the frame path then normalizes or names it."""
    spec = get_strategy(strategy)
    if any(k not in spec.params and k not in TRADING_PARAMS for k in cols):
        return None
    return _strategy_arrays(spec, cols, n)


def strategy_valid(strategy: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """Rows of a parameter frame -- or of ``{name: values}`` columns of equal length (``valid.takes_columns``:
    a search tests its batch before building a frame) -- that satisfy the strategy's own constraint
    (defaults filled).

    The constraint is first applied to the columns as numpy arrays: the built-in constraints are
    elementwise comparisons, about 60x faster on arrays than on a frame's Series for a search's
    batch of a few dozen rows.  A constraint that needs the frame (a DataFrame method, or an answer
    of the wrong shape) is applied to the frame, as ``valid_mask`` does."""
    spec = get_strategy(strategy)

    def valid(frame) -> np.ndarray:
        n = len(frame) if isinstance(frame, pd.DataFrame) else len(next(iter(frame.values()), ()))
        if spec.constraint is None:
            return np.ones(n, bool)
        arrays = _strategy_arrays(spec, frame, n)
        if arrays is not None:
            try:
                with np.errstate(invalid="ignore"):
                    ok = np.asarray(spec.constraint(arrays))
                if ok.dtype == bool and ok.shape == (n,):
                    return ok
            except (AttributeError, TypeError, KeyError, ValueError, IndexError):
                pass
        f = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(dict(frame))
        return valid_mask(spec, strategy_frame(spec.name, f))

    valid.takes_columns = True
    return valid


def _strategy_arrays(spec, frame, n: int) -> dict[str, np.ndarray] | None:
    """The strategy's parameters of a frame or of columns as typed arrays (defaults filled), or None
    when a value does not fit its parameter's type (the frame path then normalizes or names it)."""
    out = {}
    for name, default in spec.params.items():
        vals = np.asarray(frame[name]) if name in frame else np.full(n, default)
        if isinstance(default, bool):
            if vals.dtype != bool:
                return None
        elif isinstance(default, (int, np.integer)):
            if vals.dtype.kind not in "iu":
                return None
            vals = vals.astype(np.int64, copy=False)
        elif isinstance(default, float):
            if vals.dtype.kind not in "iuf":
                return None
            vals = vals.astype(np.float64, copy=False)
        out[name] = vals
    return out


def list_proposals(strategy: str, space: Mapping[str, Any], method: str, n_trials: int | None = None,
                   seed: int = 0, strict: bool = True) -> tuple[pd.DataFrame, list[Dim], dict, int]:
    """Grid or random proposals of a strategy's space: ``(proposals, dims, fixed, n_drawn)``.

    grid: ``expand_grid`` of the strategy parameters (invalid and duplicate combinations
    dropped) crossed with every trading-setting value; random: ``sample_params`` (seeded
    draws, invalid and duplicates dropped) with each trading setting drawn for the kept rows
    from ``default_rng([seed, 1])``.  ``dims`` describe what varies (the study's distributions),
    ``fixed`` the rest; ``n_drawn`` counts combinations / draws before dropping.
    """
    from .search import _sample_param, sample_params
    from .strategies import _choices, expand_grid

    spec = get_strategy(strategy)
    strat, trading = split_space(strategy, space, strict)
    if method == "grid":
        frame = expand_grid(spec, strat)
        n_drawn = int(np.prod([len(_choices(k, v)) for k, v in strat.items()])) if strat else 1
        for name, v in trading.items():
            vals = _choices(name, v)
            n_drawn *= len(vals)
            frame = frame.merge(pd.DataFrame({name: vals}), how="cross")
    elif method == "random":
        frame, n_drawn = sample_params(spec, strat, n_trials, seed, strict)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1])
        for name, v in trading.items():
            vals = _sample_param(rng, name, v, len(frame), name in _INT_TRADING)
            frame[name] = np.asarray(vals).astype(np.int64 if name in _INT_TRADING else np.float64)
        if trading:
            frame = frame.drop_duplicates().reset_index(drop=True)
    else:
        raise ValueError(f"method {method!r} has no proposal list")
    dims, fixed = [], {}
    for col in frame.columns:  # numeric columns are ranges (compact in the study, ordered for importance)
        values = frame[col]
        if values.nunique(dropna=False) <= 1:
            fixed[col] = py_scalar(values.iloc[0]) if len(values) else None
        elif values.dtype.kind in "iu":
            dims.append(Dim(col, "int", int(values.min()), int(values.max())))
        elif values.dtype.kind == "f":
            dims.append(Dim(col, "float", float(values.min()), float(values.max())))
        else:
            dims.append(Dim(col, "categorical", choices=tuple(py_scalar(x) for x in sorted(values.unique()))))
    if col_order := [d.name for d in dims]:
        frame = frame[col_order]
    return frame, dims, fixed, n_drawn


__all__ += ["trials_frame", "rank", "DISTRIBUTION_QUANTILES", "trading_param", "split_space", "strategy_dims",
            "strategy_valid", "strategy_frame", "list_proposals"]
