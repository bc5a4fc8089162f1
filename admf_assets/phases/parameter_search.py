"""parameter_search (optimization): search strategy parameters and trading settings on the train
split -- grid, random, Optuna TPE (bayesian), CMA-ES, NSGA-II (genetic) or differential
evolution -- each batch of trials evaluated in one vectorized engine call and every trial
recorded in an Optuna study, so a killed run continues where it stopped.

    - name: parameter_optimization
      type: optimization
      config:
        strategies: [{type: momentum}]
        optimization:
          method: bayesian                  # grid | random | bayesian | cmaes | nsga2 | differential_evolution
          n_trials: 300                     #   | robust_optimization | return_maximization
          parameters: {fast_period: [3, 50], slow_period: [10, 200], stop_loss: [0.02, 0.1]}
          objective: sharpe_ratio           # or {sharpe_ratio: 0.7, calmar_ratio: 0.3}, or a list (Pareto)
          constraints: {max_drawdown: 0.25, min_trades: 10}

The engine does the work (``engine.optimize``); this module turns the YAML into its calls and
its results into the phase's tables.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, StrictBool, StrictInt, StrictStr, model_validator

import admf_assets
from admf_assets.engine import charts, estimate
from admf_assets.engine import insights as ei
from admf_assets.engine import optimize as eo
from admf_assets.engine import report as rep
from admf_assets.engine import strategies as strategy_registry
from admf_assets.engine.metrics import METRIC_COLUMNS
from admf_assets.engine.paramsets import PARAMS_COLUMN, TRADING_COLUMN, params_json
from admf_assets.engine.search import OBJECTIVE_ALIASES, OBJECTIVES, rank_trials, resolve_objective
from admf_assets.engine.strategies import normalize_params
from admf_assets.engine.studies import describe_storage, journal_path, open_storage, study_name
from admf_assets.engine.util import py_scalar
from admf_assets.phases.common import (BARS, MAX_GRID_SIZE, DataSplitName, StrategyEntry, TradingSettings,
                                       check_has_valid_combination, check_param_values, check_strategy_params,
                                       close_matrix, data_shape, known_strategy, normalise_param, space_from_config)
from admf_assets.phases.kind import ConfigEnv, Consumes, Image, Insight, Output, PhaseContext, PhaseError, PhaseKind, \
    PhaseResult, PhaseView, ResourceDemand, StrictModel
from admf_assets.suggest import suggest

DEFAULT_TOP_N = 10
#: random draws that stand for a sampler's search space when validation looks for one valid set
SPACE_PROBE_DRAWS = 10_000
#: trials of a sampler-driven method when the YAML gives no budget
DEFAULT_N_TRIALS = 100
#: user-facing method -> the engine's sampler
ENGINE_METHOD = {"grid": "grid", "random": "random", "bayesian": "tpe", "robust_optimization": "tpe",
                 "return_maximization": "tpe", "cmaes": "cmaes", "nsga2": "nsga2",
                 "differential_evolution": "differential_evolution"}
METHODS = tuple(ENGINE_METHOD)
METHOD_ALIASES = {"tpe": "bayesian", "optuna": "bayesian", "bayesian_optimization": "bayesian", "cma_es": "cmaes",
                  "cma-es": "cmaes", "cma": "cmaes", "genetic": "nsga2", "nsga_ii": "nsga2", "nsga-ii": "nsga2",
                  "genetic_algorithm": "nsga2", "de": "differential_evolution", "robust": "robust_optimization"}
POPULATION_METHODS = ("cmaes", "nsga2", "differential_evolution")
#: ``param_definitions`` types (seed 000) -> how they are searched
PARAM_TYPES = {"continuous": "float", "float": "float", "real": "float", "uniform": "float", "integer": "int",
               "int": "int", "discrete": "int", "categorical": "categorical", "choice": "categorical",
               "boolean": "bool", "bool": "bool"}
#: the trading settings a search may vary, with their admissible ranges
TRADING_BOUNDS = {"stop_loss": (0.0, 1.0), "trailing_stop": (0.0, 1.0), "take_profit": (0.0, math.inf),
                  "target_vol": (0.0, math.inf), "position_size": (0.0, math.inf), "max_holding": (0.0, math.inf)}
STORAGE_ENV = "ADMF_OPTUNA_STORAGE"
SET_INPUTS = ("top_parameter_sets", "optimization_history", "best_parameters")
REGIME_INPUT = "regime_classifications"
WHOLE_PERIOD = "all"


class OptimizationSettings(StrictModel):
    __key_aliases__ = ("n_iterations", "param_definitions", "n_generations", "population_size", "container_count")

    method: StrictStr = "grid"
    parameters: dict[StrictStr, Any] | None = None
    param_definitions: dict[StrictStr, Any] | None = None  # seed 000: {x: {type: continuous, bounds: [a, b]}}
    objective: Any = "sharpe_ratio"
    direction: Literal["maximize", "minimize"] | None = None
    n_trials: StrictInt | None = Field(default=None, ge=1)
    n_iterations: StrictInt | None = Field(default=None, ge=1)  # seed 000's name for n_trials
    n_generations: StrictInt | None = Field(default=None, ge=1)
    population_size: StrictInt | None = Field(default=None, ge=2)
    batch_size: StrictInt | None = Field(default=None, ge=1)
    seed: StrictInt = 42
    constraints: dict[StrictStr, Any] | None = None
    risk_penalty: float = Field(default=0.0, ge=0)
    risk_measure: Literal[eo.RISK_MEASURES] = "max_drawdown"  # type: ignore[valid-type]
    group_by_regime: StrictBool = False
    n_trials_per_regime: StrictInt | None = Field(default=None, ge=1)
    min_regime_days: StrictInt = Field(default=60, ge=2)
    storage: StrictStr | None = None
    resume: StrictBool = True
    # processes that optimize ONE study together (bayesian, on an RDB storage: engine.shared_search)
    max_workers: StrictInt = Field(default=1, ge=1)
    container_count: StrictInt | None = Field(default=None, ge=1)  # seed 001's name for max_workers
    importance: Literal[eo.IMPORTANCE_EVALUATORS] = "ped_anova"  # type: ignore[valid-type]


#: keys of ``optimization`` also accepted at the top of ``config`` (the seeds write both)
HOISTED = tuple(k for k in OptimizationSettings.model_fields if k not in ("storage", "resume", "importance"))


class Config(TradingSettings):
    __key_aliases__ = ("parameters", "method", "strategy", "param_definitions", "n_iterations")

    optimization: OptimizationSettings = Field(default_factory=OptimizationSettings)
    strategies: list[StrategyEntry] = Field(default_factory=lambda: [StrategyEntry(type="momentum")], min_length=1)
    data_split: DataSplitName = "train"
    top_n: StrictInt | None = Field(default=None, ge=1)
    ensemble_optimization: dict[StrictStr, Any] | None = None  # seed 001 phase 3; an ensemble phase does this

    @model_validator(mode="before")
    @classmethod
    def _shortcuts(cls, v: Any) -> Any:
        """Search keys at the top level (``method``, ``parameters``, ``n_iterations``, ...) belong to
        ``optimization``; ``strategy: x`` is ``strategies: [x]``."""
        if not isinstance(v, dict):
            return v
        v = dict(v)
        opt = v.get("optimization")
        opt = dict(opt) if isinstance(opt, dict) else ({} if opt is None else opt)
        for key in HOISTED:
            if key in v and key not in Config.model_fields:
                if not isinstance(opt, dict):
                    break
                if key in opt:
                    raise ValueError(f"[{key}] `{key}` is given both at config top level and in config.optimization")
                opt[key] = v.pop(key)
        if "optimization" in v or opt:
            v["optimization"] = opt
        if "strategy" in v:
            if "strategies" in v:
                raise ValueError("[strategy] give `strategy` or `strategies`, not both")
            v["strategies"] = [v.pop("strategy")]
        return v


PARAMETER_SET_COLUMNS = ("trial_id", "strategy", PARAMS_COLUMN, TRADING_COLUMN, "objective", "rank")


class ParameterSearch(PhaseKind):
    name = "parameter_search"
    aliases = ("optimization", "parameter_optimization", "grid_search")
    description = ("Search strategy parameters and trading settings on the train split (grid, random, "
                   "Optuna TPE, CMA-ES, NSGA-II, differential evolution; resumable Optuna studies).")
    version = "2"
    Config = Config
    example_config = MappingProxyType({"optimization": {"parameters": {"fast_period": [5, 10],
                                                                       "slow_period": [20, 40]}}})
    outputs = (
        Output("best_parameters", "The best feasible parameter set and its score",
               aliases=("best_params", "optimal_parameters", "best_strategies"),
               columns=("objective_name", *PARAMETER_SET_COLUMNS, "train_start", "train_end", "n_trials",
                        *METRIC_COLUMNS)),
        Output("top_parameter_sets", "The N best feasible parameter sets with their metrics (per regime when "
                                     "grouped)",
               aliases=("top_strategies", "top_parameters", "selected_strategies"),
               pattern=r"^top_(?P<n>[0-9]+)_(parameter_sets|strategies|parameters)$",
               pattern_hint="top_<N>_parameter_sets",
               count_field="top_n", count_default=DEFAULT_TOP_N,
               columns=(*PARAMETER_SET_COLUMNS, "regime")),
        Output("optimization_history", "Every trial: state, parameters, objective, constraints, metrics, duration",
               aliases=("trial_history", "trials", "all_results", "optimization_results"),
               columns=("trial_id", "study_trial", "strategy", "regime", PARAMS_COLUMN, TRADING_COLUMN, "state",
                        "objective", "rank", "feasible", "violation", "duration", "batch", "resumed",
                        *METRIC_COLUMNS)),
        Output("parameter_importance", "Optuna's importance of each searched parameter for the objective",
               aliases=("param_importance", "importance"),
               columns=("strategy", "regime", "parameter", "importance", "evaluator", "n_trials"), default=False),
        Output("performance_distribution", "Distribution of the objective and metrics over the feasible trials",
               aliases=("metric_distribution",),
               columns=("strategy", "regime", "metric", "n", "mean", "std", "min", "p05", "p25", "p50", "p75",
                        "p95", "max"), default=False),
        Output("pareto_front", "Non-dominated feasible trials (the best trial alone for one objective)",
               aliases=("pareto", "pareto_optimal"),
               columns=("trial_id", "strategy", "regime", PARAMS_COLUMN, TRADING_COLUMN, "objective"), default=False),
        Output("regime_optimized_strategies", "The best parameter set per regime and strategy "
                                              "(regime 'all' without group_by_regime)",
               aliases=("regime_best_parameters", "optimal_params_by_regime", "regime_specific_parameters"),
               columns=("regime", "regime_id", "strategy", PARAMS_COLUMN, TRADING_COLUMN, "objective", "rank",
                        "trial_id", "n_trials", "n_days"), default=False),
    )
    unproduced_outputs = {
        "ensemble_weights": "ensemble weights come from an ensemble_optimization phase over the captured signals of "
                            "this phase's sets",
        "regime_switching_rules": "regime_optimized_strategies holds each regime's best set; trading them by regime "
                                  "is an ensemble_optimization with regime_conditional: true",
    }
    consumes = (BARS,
                Consumes((REGIME_INPUT,), required=False, required_if="optimization.group_by_regime"),
                Consumes(SET_INPUTS, required=False))
    metrics = (*METRIC_COLUMNS, "best_score", "n_trials", "n_valid_trials", "n_resumed_trials", "n_regimes",
               "trials_per_second")

    # ================================================================== validation
    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        opt = cfg.optimization
        given = opt.model_fields_set
        method = self._method(opt.method, env)
        engine_method = ENGINE_METHOD.get(method)
        updates: dict[str, Any] = {"method": method}
        # ---- objective(s) and constraints
        objective = opt.objective
        if method == "return_maximization":
            if "objective" in given and _canonical_objective(objective) != "annual_return":
                env.problem("optimization.objective", "method 'return_maximization' maximizes annual_return; "
                                                      "leave objective out or use method 'bayesian'")
            objective = "annual_return"
        if method == "robust_optimization" and not opt.risk_penalty:
            env.problem("optimization.risk_penalty", "method 'robust_optimization' needs risk_penalty > 0 (the "
                                                     f"objective minus risk_penalty x |{opt.risk_measure}|)")
        objectives = None
        unknown = [m for m in _objective_metrics(objective) if _resolve(m) is None]
        if unknown:
            names = OBJECTIVES + tuple(OBJECTIVE_ALIASES)
            env.problem("optimization.objective", f"unknown objective '{unknown[0]}'{suggest(str(unknown[0]), names)}; "
                                                  f"known: {', '.join(OBJECTIVES)} (aliases: "
                                                  f"{', '.join(OBJECTIVE_ALIASES)})")
        else:
            try:
                objectives = eo.parse_objectives(objective, opt.direction, opt.risk_penalty, opt.risk_measure)
                updates["objective"] = _canonical_objective(objective)
                if len(objectives) == 1:
                    updates["direction"] = objectives[0].direction
            except ValueError as exc:
                env.problem("optimization.objective", str(exc))
        if objectives and len(objectives) > 1 and engine_method not in (None, *eo.MULTI_OBJECTIVE_METHODS):
            env.problem("optimization.objective", f"method '{method}' optimizes one objective; several objectives "
                                                  "(a Pareto front) need grid, random, bayesian or nsga2")
        try:
            eo.parse_constraints(opt.constraints)
        except ValueError as exc:
            env.problem("optimization.constraints", str(exc))
        # ---- budget
        updates.update(self._budget(opt, method, env))
        # ---- parameters (the seed 000 param_definitions form is merged in)
        grid = method == "grid"
        params = self._parameters(opt, grid, env)
        updates["parameters"] = params or None
        updates["param_definitions"] = None
        shape = data_shape(env, cfg.data_split)
        n_bars = shape[0] if shape else None
        entries = self._strategies(cfg, grid, env, n_bars)
        targets = [_spec(s.type) for s in entries if s.optimization_target and _spec(s.type) is not None]
        trading = {k: v for k, v in (params or {}).items() if eo.trading_param(k)}
        if params:
            strategy_params = {k: v for k, v in params.items() if not eo.trading_param(k)}
            check_strategy_params(targets, list(strategy_params), "optimization.parameters", env)
            check_param_values(targets, strategy_params, "optimization.parameters", env, n_bars)
        if not env.problems and engine_method is not None:
            listed = engine_method in eo.LIST_METHODS
            for i, s in enumerate(entries):  # what the run evaluates: the shared space, then the strategy's own
                own = {k: v for k, v in {**(params or {}), **s.parameters}.items() if not eo.trading_param(k)}
                if s.optimization_target and _spec(s.type) is not None and own:
                    # a sampler's space: seeded random draws stand for what it can propose
                    check_has_valid_combination(_spec(s.type), space_from_config(own), "optimization.parameters",
                                                env, method=engine_method if listed else "random",
                                                n_trials=updates.get("n_trials") if listed else SPACE_PROBE_DRAWS,
                                                seed=opt.seed + i, strict=len(entries) == 1)
        if not params and grid and opt.parameters is None and opt.param_definitions is None:
            env.problem("optimization.parameters",
                        f"required for phase type '{self.name}' with method 'grid': a mapping of parameter name -> "
                        "values (sampler methods use each strategy's default search space)")
        self._check_trading(cfg, trading, env)
        top_updates: dict[str, Any] = {}
        if any(eo.trading_param(k) == "target_vol" for k in trading) and cfg.sizing != "vol_target":
            if "sizing" in cfg.model_fields_set:
                env.problem("sizing", "target_vol is searched, which needs sizing: vol_target (got fixed)")
            top_updates["sizing"] = "vol_target"
        for i, s in enumerate(entries):
            space = {**space_from_config(params), **space_from_config(s.parameters)}
            if engine_method in eo.LIST_METHODS or not s.optimization_target:
                continue
            spec = _spec(s.type)
            if spec is None:
                continue
            if not space:
                space = dict(spec.space)
            known = {k: v for k, v in space.items() if eo.trading_param(k) or spec.canonical_param(k)}
            if len(known) < len(space) and len(entries) == 1:
                continue  # an unknown name, reported above
            space = known  # a space shared by several strategies: each takes its own parameters
            try:
                dims, _ = eo.strategy_dims(spec.name, space, strict=False)
            except ValueError as exc:
                env.problem(f"strategies[{i}]", str(exc))
                continue
            if not dims and not (opt.parameters is None and opt.param_definitions is None and not spec.space):
                env.problem("optimization.parameters", f"nothing to search for strategy '{spec.name}': give ranges "
                                                       "or several values")
            elif not dims:
                env.problem("optimization.parameters", f"strategy '{spec.name}' has no default search space; give "
                                                       "optimization.parameters")
            elif engine_method == "cmaes" and len(dims) < 2:
                env.problem("optimization.method", f"cmaes needs at least 2 searched parameters (strategy "
                                                   f"'{spec.name}' has {len(dims)}); use bayesian or "
                                                   "differential_evolution")
        # ---- regimes, storage, evaluators, ignored keys
        updates.update(_shared_workers(opt, engine_method, env))
        if opt.n_trials_per_regime is not None and not opt.group_by_regime:
            env.warn("optimization.n_trials_per_regime", "ignored: used with group_by_regime: true")
        if "min_regime_days" in given and not opt.group_by_regime:
            env.warn("optimization.min_regime_days", "ignored: used with group_by_regime: true")
        if opt.importance in ("fanova", "mean_decrease_impurity") and importlib.util.find_spec("sklearn") is None:
            env.problem("optimization.importance", f"'{opt.importance}' needs scikit-learn (pip install "
                                                   "scikit-learn); 'ped_anova' does not")
        if cfg.ensemble_optimization is not None:
            env.warn("ensemble_optimization", "ignored: ensemble weights come from a phase of type "
                                              "ensemble_optimization that takes this phase's outputs")
        new_opt = opt.model_copy(update=updates)
        return cfg.model_copy(update={"optimization": new_opt, "strategies": entries, **top_updates})

    def _method(self, name: str, env: ConfigEnv) -> str:
        key = name.strip().lower().replace(" ", "_")
        key = METHOD_ALIASES.get(key, key)
        if key not in ENGINE_METHOD:
            env.problem("optimization.method", f"unknown optimization method '{name}'"
                                               f"{suggest(key, METHODS + tuple(METHOD_ALIASES))} "
                                               f"(available: {', '.join(METHODS)}; aliases: tpe, genetic, cma_es, de)")
        return key

    @staticmethod
    def _budget(opt: OptimizationSettings, method: str, env: ConfigEnv) -> dict[str, Any]:
        """n_trials from n_trials / n_iterations / n_generations x population_size; warnings for keys
        the method does not use."""
        out: dict[str, Any] = {"n_iterations": None}
        n = opt.n_trials
        if opt.n_iterations is not None:
            if n is not None:
                env.problem("optimization.n_iterations", "give n_trials or n_iterations (its seed name), not both")
            n = opt.n_iterations
        engine = ENGINE_METHOD.get(method)
        if engine == "grid":
            if n is not None:
                env.warn("optimization.n_trials", "ignored: a grid evaluates every combination")
                n = None
        if engine in ("grid", "random", "tpe"):
            for key in ("n_generations", "population_size"):
                if getattr(opt, key) is not None:
                    env.warn(f"optimization.{key}", f"ignored by method '{method}' (used by "
                                                    f"{', '.join(POPULATION_METHODS)}); set n_trials"
                                                    + (" and batch_size" if engine == "tpe" else ""))
        if engine in ("cmaes", "differential_evolution") and opt.batch_size is not None:
            env.warn("optimization.batch_size", f"ignored by method '{method}': one generation is one batch "
                                                "(set population_size)")
        if engine == "random" and n is None:
            env.problem("optimization.n_trials", "required for method 'random'")
        if engine in POPULATION_METHODS and opt.n_generations is not None:
            if n is not None:
                env.problem("optimization.n_generations", "give n_trials or n_generations, not both")
            elif opt.population_size is None and engine == "cmaes":
                env.problem("optimization.population_size", "with n_generations, cmaes needs population_size "
                                                            "(its default depends on the number of parameters)")
            else:
                pop = opt.population_size or (50 if engine == "nsga2" else None)
                if pop is None:  # differential evolution: 15 x dimensions, known per strategy at run time
                    out["n_trials"] = None
                    return out
                n = opt.n_generations * pop
        if engine in ("tpe", *POPULATION_METHODS) and n is None and opt.n_generations is None:
            n = DEFAULT_N_TRIALS
        out["n_trials"] = n
        return out

    def _parameters(self, opt: OptimizationSettings, grid: bool, env: ConfigEnv) -> dict[str, Any]:
        kind = "grid" if grid else "random"
        raw: dict[str, Any] = dict(opt.parameters or {})
        for name, spec in (opt.param_definitions or {}).items():
            field = f"optimization.param_definitions.{name}"
            if name in raw:
                env.problem(field, f"'{name}' is also in optimization.parameters; give it once")
                continue
            converted = _from_definition(name, spec, env, field)
            if converted is not None:
                raw[name] = converted
        params: dict[str, Any] = {}
        grid_size = 1
        for name, spec in raw.items():
            where = "optimization.param_definitions" if name in (opt.param_definitions or {}) else \
                "optimization.parameters"
            norm = normalise_param(name, spec, kind, env, where)
            if norm is not None:
                params[name] = norm
                if "values" in norm:
                    grid_size *= len(norm["values"])
        if grid and grid_size > MAX_GRID_SIZE:
            env.problem("optimization.parameters", f"the grid has {grid_size} combinations (more than "
                                                   f"{MAX_GRID_SIZE}); use method 'random' or a sampler")
        return params

    @staticmethod
    def _strategies(cfg: Config, grid: bool, env: ConfigEnv, n_bars: int | None = None) -> list[StrategyEntry]:
        out = []
        for i, s in enumerate(cfg.strategies):
            if not s.type.strip():
                env.problem(f"strategies[{i}].type", "empty strategy type")
                out.append(s)
                continue
            spec = known_strategy(s.type, f"strategies[{i}].type", env)
            if spec is None:
                out.append(s)
                continue
            check_strategy_params([spec], [k for k in s.parameters if not eo.trading_param(k)],
                                  f"strategies[{i}].parameters", env)
            params = {}
            for name, value in s.parameters.items():
                norm = normalise_param(name, value, "grid" if grid else "random", env, f"strategies[{i}].parameters")
                if norm is not None:
                    params[name] = norm
            check_param_values([spec], {k: v for k, v in params.items() if not eo.trading_param(k)},
                               f"strategies[{i}].parameters", env, n_bars)
            if spec.long_short_only and cfg.mode == "long_only":
                env.warn(f"strategies[{i}].type", f"'{spec.name}' trades both legs (long and short) in every mode; "
                                                  "mode long_only applies to the other strategies")
            out.append(s.model_copy(update={"parameters": params}))
        return out

    @staticmethod
    def _check_trading(cfg: Config, trading: dict[str, Any], env: ConfigEnv) -> None:
        seen = {}
        for name, norm in trading.items():
            key = eo.trading_param(name)
            field = f"optimization.parameters.{name}"
            if key in seen:
                env.problem(field, f"'{name}' and '{seen[key]}' are the same trading setting ({key})")
                continue
            seen[key] = name
            lo, hi = TRADING_BOUNDS[key]
            values = norm["values"] if "values" in norm else [norm["low"], norm["high"]]
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v < hi]
            if bad:
                bound = f"in (0, {hi:g})" if math.isfinite(hi) else "> 0"
                env.problem(field, f"{key} must be {bound}; got {bad[0]!r}")
            if key == "max_holding" and any(isinstance(v, float) and v != int(v) for v in values):
                env.problem(field, "max_holding is a number of bars (an integer)")
            if key in cfg.model_fields_set and getattr(cfg, key) is not None:
                env.warn(key, f"ignored: {key} is searched (optimization.parameters.{name})")

    resource_keys = ("memory_limit_gb", "max_workers")

    def demand(self, cfg: Config, env: ConfigEnv) -> ResourceDemand | None:
        """Trials x bars x symbols of every strategy's search (and regime, when grouped), from
        the data section; the grid's size from its values."""
        shape = data_shape(env, cfg.data_split)
        opt = cfg.optimization
        if shape is None or opt.method not in ENGINE_METHOD:
            return None
        n_bars, n_symbols = shape
        engine_method = ENGINE_METHOD[opt.method]
        combos = drawn = windows = 0
        n_params = 1
        for strat in cfg.strategies:
            if not strat.optimization_target:
                continue
            space = {**(opt.parameters or {}), **strat.parameters}  # both normalised by effective_config
            if not space:
                spec = _spec(strat.type)
                space = dict(spec.space) if spec is not None else {}
            n_params = max(n_params, len(space))
            if engine_method == "grid":
                combos += math.prod(len(d.get("values", [1])) for d in space.values())
                windows = max(windows, sum(len(d["values"]) for d in space.values() if _whole(d)))
                continue
            n = int(opt.n_trials or 0)
            if opt.group_by_regime and opt.n_trials_per_regime:
                n = int(opt.n_trials_per_regime) * 4  # regimes are known at run time; a typical count
            combos += n
            drawn = max(drawn, n) if engine_method == "random" else drawn
            windows = max(windows, sum(min(n, int(d["high"] - d["low"] + 1)) if _int_range(d)
                                       else min(n, len(d["values"])) if _whole(d) else 0 for d in space.values()))
        if not combos:
            return None
        est = estimate.search_estimate(combos, n_bars, n_symbols, n_params, distinct_windows=windows,
                                       n_drawn=drawn or None)
        if engine_method == "grid":
            advice = ("use a sampler (method: bayesian or random with n_trials), or fewer values per parameter, or "
                      "fewer symbols or a shorter date range")
            what = f"the grid search ({combos:,} combinations x {n_bars:,} bars x {n_symbols:,} symbol(s))"
            return ResourceDemand(est, what, "optimization", advice, "combinations")
        advice = "use fewer n_trials, or fewer symbols or a shorter date range"
        what = f"the {opt.method} search ({combos:,} trials x {n_bars:,} bars x {n_symbols:,} symbol(s))"
        return ResourceDemand(est, what, "optimization", advice, "trials")

    # ================================================================== running
    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        opt = cfg.optimization
        close = close_matrix(ctx.need("bars"), cfg.data_split)
        if close.shape[0] < 3:
            raise PhaseError(f"field 'config.data_split': the '{cfg.data_split}' split has {close.shape[0]} bar(s)")
        regimes = _regimes(ctx.inputs.get(REGIME_INPUT), close.index, opt) if opt.group_by_regime else \
            [_Regime(WHOLE_PERIOD, -1, None, len(close))]
        plans = self._plans(cfg, ctx)
        storage = self._storage(ctx, close)
        top_n = int(ctx.output_param("top_parameter_sets", "n") or cfg.top_n or DEFAULT_TOP_N)
        t0 = time.perf_counter()
        runs = []
        for i, (strategy, space) in enumerate(plans):
            for regime in regimes:
                runs.append(self._search(ctx, cfg, close, strategy, space, regime, i, len(plans), storage))
        seconds = time.perf_counter() - t0
        return _assemble(ctx, cfg, close, runs, regimes, top_n, seconds, storage)

    def _plans(self, cfg: Config, ctx: PhaseContext) -> list[tuple[str, dict]]:
        """(strategy, search space) per searched strategy: the phase's parameters, a strategy's own,
        else the ranges spanned by an input of parameter sets, else the strategy's default space."""
        opt = cfg.optimization
        base = space_from_config(opt.parameters)
        sets = next((ctx.inputs[k] for k in SET_INPUTS if ctx.inputs.get(k) is not None), None)
        from_sets = _spaces_from_sets(sets, opt.method == "grid") if sets is not None and not base else {}
        entries = [s for s in cfg.strategies if s.optimization_target]
        if from_sets and "strategies" not in cfg.model_fields_set:
            entries = [StrategyEntry(type=name) for name in from_sets]
        plans = []
        for s in entries:
            spec = strategy_registry.get_strategy(s.type)
            space = {**base, **space_from_config(s.parameters)}
            if not space:
                space = from_sets.get(spec.name) or dict(spec.space)
            plans.append((spec.name, space))
        if not plans:
            raise PhaseError("field 'config.strategies': no strategy is an optimization_target")
        return plans

    def _storage(self, ctx: PhaseContext, close: pd.DataFrame) -> "_Storage | None":
        """``optimization.storage`` (a URL, or a journal file relative to the storage root), else
        ``$ADMF_OPTUNA_STORAGE``, else a journal file per study in the phase's folder for this
        configuration (``studies.journal_path``)."""
        spec = ctx.config.optimization.storage or os.environ.get(STORAGE_ENV)
        root = getattr(ctx.store, "root", None)
        if root is not None and not isinstance(root, Path):  # an fsspec URL: Optuna journals need a local file
            root = None
            if not spec:
                spec = _shared_url(None)  # the instance's PostgreSQL server, when there is one
            if not spec or ("://" not in spec and not os.path.isabs(spec)):
                ctx.log.warning(f"{ctx.phase}: the storage root is not a local folder, so this phase's Optuna "
                                f"studies are not persisted: set optimization.storage (or {STORAGE_ENV}) to an "
                                f"RDB URL or an absolute journal path to keep them")
                return None
        if spec:
            if "://" not in spec and not os.path.isabs(spec) and root is not None:
                spec = str(root / spec)
            return _Storage(spec)
        if root is None:
            return None
        labels = ctx.inputs.get(REGIME_INPUT)
        version = _phase_version(self, ctx.config, close, labels)
        return _Storage(None, lambda key: str(journal_path(root, ctx.workflow.id, ctx.phase, version, key)))

    def _search(self, ctx: PhaseContext, cfg: Config, close: pd.DataFrame, strategy: str, space: dict,
                regime: "_Regime", index: int, n_plans: int, storage: "_Storage | None") -> "_Run":
        opt = cfg.optimization
        method = ENGINE_METHOD[opt.method]
        strict = n_plans == 1
        objectives = eo.parse_objectives(opt.objective, opt.direction, opt.risk_penalty, opt.risk_measure)
        constraints = eo.parse_constraints(opt.constraints)
        trading = cfg.trading()
        seed = opt.seed + index
        try:
            evaluator = eo.BacktestEvaluator(close, strategy, trading, decisions=regime.decisions, workers=ctx.workers,
                                             memory_limit_bytes=ctx.memory_limit_bytes)
            proposals, valid, n_drawn = None, None, None
            if method in eo.LIST_METHODS:
                proposals, dims, fixed, n_drawn = eo.list_proposals(strategy, space, method, opt.n_trials, seed,
                                                                    strict)
                if proposals.empty:
                    raise PhaseError(f"field 'config.optimization.parameters': strategy '{strategy}' has no valid "
                                     f"parameter combination in the search space")
                n_trials = len(proposals)
            else:
                dims, fixed = eo.strategy_dims(strategy, space, strict)
                valid = eo.strategy_valid(strategy)
                n_trials = (opt.n_trials_per_regime if opt.group_by_regime and opt.n_trials_per_regime else None) \
                    or opt.n_trials
                if n_trials is None:  # n_generations x the method's default population
                    n_trials = opt.n_generations * (opt.population_size or
                                                    eo.default_population_size(method, len(dims)))
            population = opt.population_size or (eo.default_population_size(method, len(dims))
                                                  if method in POPULATION_METHODS and dims else None)
            version = _version(self, cfg, strategy, space, objectives, constraints, trading, method, seed,
                               population, close, regime)
            name = study_name(ctx.workflow.id, ctx.phase, strategy, *( [f"regime={regime.label}"]
                                                                       if opt.group_by_regime else []),
                              version=version)
            key = strategy + (f"@regime={regime.label}" if opt.group_by_regime else "")
            attrs = {"workflow": ctx.workflow.id, "phase": ctx.phase, "strategy": strategy, "regime": regime.label,
                     "method": opt.method, "objective": [o.name for o in objectives],
                     "constraints": [c.text for c in constraints], "n_trials": n_trials,
                     "train_period": f"{close.index[0].date()}..{close.index[-1].date()}",
                     "symbols": list(map(str, close.columns))}
            if opt.max_workers > 1 and method == "tpe":
                res = _run_shared(ctx, evaluator, dims, objectives, n_trials=n_trials, seed=seed,
                                  constraints=constraints, fixed=fixed, strategy=strategy, batch_size=opt.batch_size,
                                  name=name, attrs=attrs, resume=opt.resume)
                return _Run(strategy, regime, res, res.message, evaluator)
            spec = storage.spec(key) if storage is not None else None
            try:
                opened = open_storage(spec)
            except Exception as exc:  # a bad URL or an unwritable path: one line
                raise PhaseError(f"field 'config.optimization.storage': cannot open Optuna storage "
                                 f"{describe_storage(spec)}: {exc}") from None
            study = eo.StudyRef(opened, name, opt.resume, label=describe_storage(spec), attrs=attrs)
            progress = _Progress(ctx, f"{strategy}" + (f" [{regime.label}]" if opt.group_by_regime else ""),
                                 objectives[0].name, unit="combinations" if method == "grid" else "trials")
            res = eo.optimize(evaluator, dims, objectives, method=method, n_trials=n_trials, seed=seed,
                              constraints=constraints, fixed=fixed, valid=valid, proposals=proposals,
                              batch_size=opt.batch_size, population_size=population, study=study,
                              on_batch=progress)
        except ValueError as exc:
            raise PhaseError(f"field 'config.optimization': strategy '{strategy}': {exc}") from None
        note = res.message + (f"; drew {n_drawn}, kept {len(proposals)}" if method == "random" else "")
        return _Run(strategy, regime, res, note, evaluator)

    # ================================================================== report
    def sections(self, view: PhaseView) -> list[dict]:
        out = view.outputs
        best, top, hist = (out.get(k) for k in ("best_parameters", "top_parameter_sets", "optimization_history"))
        best_params = None
        if best is not None and len(best):
            from admf_assets.engine.paramsets import parameter_set

            strategy, params = parameter_set(best.iloc[0])
            best_params = {"strategy": strategy, **params, **json.loads(best.iloc[0].get(TRADING_COLUMN) or "{}")}
        sections = rep.search_sections(best_params, _drop_json(top), _drop_json(hist))
        imp = _importance(view)
        if imp is not None:
            effects, shares, objective = imp
            table = effects.copy()
            if shares:
                table.insert(1, "variance_explained", table["parameter"].map(shares).fillna(0.0))
            sec = {"title": "Parameter importance",
                   "text": f"Mean {objective} of the trials at each value of a parameter (the other parameters "
                           f"averaged over): its best and worst value and their spread."
                           + (f" variance_explained: the share of the {objective} variance across trials that the "
                              f"parameter explains alone (main-effect eta squared; on a full grid, the first-order "
                              f"terms of a functional ANOVA); the rest, {1 - sum(shares.values()):.0%}, comes from "
                              f"interactions between parameters." if shares else ""),
                   "table": table, "formats": {**{c: "{:.4g}" for c in ("best_mean", "worst_mean", "spread")},
                                               "best_value": "{:g}", "worst_value": "{:g}"}}
            if shares:
                sec["formats"]["variance_explained"] = "{:.1%}"
                sec["chart_svg"] = charts.bar_chart_svg(pd.Series(shares), f"Share of the {objective} variance each "
                                                                           f"parameter explains alone", height=220,
                                                        y_format="{:.0%}")
            sections.append(sec)
        for key, title in (("parameter_importance", "Optuna parameter importance"),
                           ("regime_optimized_strategies", "Best parameters by regime"),
                           ("pareto_front", "Pareto front")):
            table = out.get(key)
            if table is not None and len(table) and not (key == "regime_optimized_strategies"
                                                         and set(table["regime"]) == {WHOLE_PERIOD}) \
                    and not (key == "pareto_front" and len(table) == 1):
                sections.append({"title": f"{view.phase}: {title}", "table": table, "max_rows": 30})
        return sections


    def insights(self, view: PhaseView) -> list[Insight]:
        hist = _feasible(view.outputs.get("optimization_history"))
        if hist is None or not len(hist):
            return []
        cfg: Config = view.config
        opt = cfg.optimization
        direction = opt.direction or "maximize"  # a Pareto search ranks on its first objective
        out: list[Insight] = []
        y = pd.to_numeric(hist["objective"], errors="coerce")
        finite = np.isfinite(y.to_numpy(dtype=float))
        n = int(finite.sum())
        if n == 0:
            return [Insight("robustness", f"None of the {len(hist)} trials has a finite {opt.objective}.",
                            severity="warning")]
        imp = _importance(view)
        if imp is not None:
            effects, shares, objective = imp
            top = effects.iloc[0]
            share = shares.get(top["parameter"]) if shares else None
            text = (f"{top['parameter']} matters most: mean {objective} {top['worst_mean']:.3g} at "
                    f"{_v(top['worst_value'])} against {top['best_mean']:.3g} at {_v(top['best_value'])} "
                    f"(spread {top['spread']:.3g})")
            if share is not None:
                text += (f"; alone it explains {share:.0%} of the {objective} variance across trials "
                         f"(interactions: {1 - sum(shares.values()):.0%})")
            if len(effects) > 1:
                last = effects.iloc[-1]
                text += (f". Least: {last['parameter']} (spread {last['spread']:.3g}"
                         + (f", {shares.get(last['parameter'], 0.0):.0%}" if shares else "") + ")")
            out.append(Insight("parameters", text + ".", value=share, key="variance_explained" if share else None,
                               label=f"Variance explained by {top['parameter']}" if share else None))
        best_pos = int(np.nanargmax(y.to_numpy(dtype=float)) if direction == "maximize"
                       else np.nanargmin(y.to_numpy(dtype=float)))
        params = _param_names(hist)
        nb = ei.neighbourhood(hist, params, best_pos)
        if nb and direction == "maximize" and nb["best"] > 0:
            ratio = nb["ratio"]
            sev = "warning" if ratio < 0.5 else ("good" if ratio >= 0.8 else "info")
            shape = "an isolated peak: small parameter changes lose most of the score" if ratio < 0.5 else \
                ("a broad plateau" if ratio >= 0.8 else "a moderate peak")
            out.append(Insight("robustness", f"The {nb['n']} parameter sets nearest to the best average "
                                             f"{opt.objective} {nb['mean']:.3g}, {ratio:.0%} of the best's "
                                             f"{nb['best']:.3g}: {shape}.", severity=sev))
        positive = float(np.mean(y[finite] > 0))
        out.append(Insight("robustness", f"{positive:.0%} of the {n} valid trials have a positive {opt.objective}.",
                           severity="warning" if positive < 0.5 else "info"))
        sharpe = pd.to_numeric(hist.get("sharpe_ratio"), errors="coerce") if "sharpe_ratio" in hist else None
        if sharpe is not None and np.isfinite(sharpe).sum() >= 2:
            s = sharpe[np.isfinite(sharpe)]
            best_sr = float(s.max())
            luck = ei.expected_max_sharpe(len(s), float(s.std(ddof=1)))
            margin = best_sr - luck
            out.append(Insight(
                "overfitting",
                f"Best of {len(s)} trials: Sharpe ratio {best_sr:.2f}. With no edge at all, the best of {len(s)} "
                f"trials with this spread of Sharpe ratios (standard deviation {s.std(ddof=1):.2f}) would reach "
                f"about {luck:.2f} by luck (Bailey and Lopez de Prado's expected maximum), a margin of "
                f"{margin:+.2f}. Trials on one grid are correlated, so this overstates the luck somewhat; a "
                f"validation phase's deflated Sharpe ratio is the test.",
                value=luck, key="expected_max_sharpe", severity="warning" if margin <= 0 else "info"))
        return out


# ====================================================================== helpers
def _param_names(hist: pd.DataFrame) -> list[str]:
    """The searched parameters: the keys of the trials' parameter sets that vary."""
    names: dict[str, None] = {}
    for p in hist[PARAMS_COLUMN].drop_duplicates():
        names.update(dict.fromkeys(json.loads(p)))
    return [n for n in names if n in hist.columns and hist[n].nunique() > 1]


def _feasible(hist: pd.DataFrame | None) -> pd.DataFrame | None:
    """The trials that satisfied the constraints (every trial when none were given)."""
    if hist is None or "feasible" not in hist.columns:
        return hist
    return hist[hist["feasible"].astype(bool)].reset_index(drop=True)


def _v(x) -> str:
    return f"{x:g}" if isinstance(x, (int, float, np.integer, np.floating)) else str(x)


_IMPORTANCE: dict[str, Any] = {"history": None, "value": None}


def _importance(view: PhaseView) -> tuple[pd.DataFrame, dict[str, float], str] | None:
    """(effects, variance explained per parameter, objective) of the view's history; computed once per history
    (the report asks for its sections and its insights)."""
    raw = view.outputs.get("optimization_history")
    hist = _feasible(raw)
    if hist is None or not len(hist):
        return None
    if _IMPORTANCE["history"] is raw:
        return _IMPORTANCE["value"]
    opt = view.config.optimization
    best = view.outputs.get("best_parameters")
    strategy = best["strategy"].iloc[0] if best is not None and len(best) else hist["strategy"].iloc[0]
    h = hist[hist["strategy"] == strategy]
    params = _param_names(h)
    effects = ei.parameter_effects(h, params, "objective", opt.direction or "maximize")
    value = None
    if len(effects):
        shares = ei.parameter_importance(h, list(effects["parameter"]), "objective")
        value = (effects, shares, opt.objective)
    _IMPORTANCE.update(history=raw, value=value)
    return value


def _spec(name: str):
    try:
        return strategy_registry.get_strategy(name)
    except KeyError:
        return None


def _resolve(metric: Any) -> str | None:
    try:
        return resolve_objective(metric) if isinstance(metric, str) else None
    except ValueError:
        return None


def _objective_metrics(spec: Any) -> list:
    """The metric names an objective spec uses (non-strings are left to parse_objectives)."""
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, dict):
        return list(spec)
    if isinstance(spec, list):
        return [m for s in spec for m in _objective_metrics(s)]
    return []


def _canonical_objective(spec: Any) -> Any:
    """The objective with canonical metric names (one spelling in every table)."""
    try:
        if isinstance(spec, str):
            return resolve_objective(spec)
        if isinstance(spec, dict):
            return {resolve_objective(k): v for k, v in spec.items()}
        if isinstance(spec, list):
            return [_canonical_objective(s) for s in spec]
    except ValueError:
        pass
    return spec


def _from_definition(name: str, spec: Any, env: ConfigEnv, field: str) -> Any:
    """A seed 000 parameter definition ``{type, bounds | values, log?, step?}`` in the
    ``parameters`` form."""
    if not isinstance(spec, dict):
        env.problem(field, "expected {type: continuous|integer|categorical, bounds: [low, high]} or values")
        return None
    allowed = {"type", "bounds", "values", "choices", "log", "step", "default", "distribution"}
    extra = sorted(set(spec) - allowed)
    if extra:
        env.problem(field, f"unknown key '{extra[0]}'{suggest(extra[0], allowed)}; allowed: {', '.join(sorted(allowed))}")
        return None
    kind = PARAM_TYPES.get(str(spec.get("type", "continuous")).lower())
    if kind is None:
        env.problem(f"{field}.type", f"unknown type '{spec.get('type')}'{suggest(str(spec.get('type')), PARAM_TYPES)}; "
                                     f"known: {', '.join(PARAM_TYPES)}")
        return None
    if "default" in spec:
        env.warn(f"{field}.default", "ignored: the search starts from its sampler, not from a default")
    log = spec.get("log", False)
    dist = spec.get("distribution")
    if dist is not None:
        dname = str(dist).lower().replace("-", "_")
        if dname not in ("uniform", "log_uniform", "loguniform", "log"):
            env.problem(f"{field}.distribution", f"unknown distribution '{dist}'; use uniform or log_uniform")
            return None
        log = log or dname != "uniform"
    if kind == "bool":
        return {"values": [False, True]}
    if kind == "categorical" or "values" in spec or "choices" in spec:
        values = spec.get("values", spec.get("choices"))
        if not isinstance(values, list) or not values:
            env.problem(field, "a categorical parameter needs values: [...]")
            return None
        return {"values": values}
    bounds = spec.get("bounds")
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                                                  for b in bounds)):
        env.problem(f"{field}.bounds", f"expected [low, high] numbers, got {bounds!r}")
        return None
    low, high = (float(b) for b in bounds) if kind == "float" else bounds
    if kind == "int" and not all(float(b).is_integer() for b in bounds):
        env.problem(f"{field}.bounds", f"an integer parameter needs integer bounds, got {bounds}")
        return None
    if kind == "int":
        low, high = int(low), int(high)
    out: dict[str, Any] = {"low": low, "high": high}
    if log:
        out["log"] = True
    if spec.get("step") is not None:
        out["step"] = spec["step"]
    return out


def _spaces_from_sets(sets: pd.DataFrame, grid: bool) -> dict[str, dict]:
    """Per strategy, the space an input of parameter sets spans: each parameter's [min, max]
    (its distinct values for a grid or a non-numeric parameter).  A sampler has nothing to
    search in a single point: a strategy whose sets span no range gets ``{}`` there (its
    default space), except for a grid (which then evaluates that point)."""
    from admf_assets.engine.paramsets import parameter_sets

    if sets is None or sets.empty or PARAMS_COLUMN not in sets:
        return {}
    try:
        pairs = parameter_sets(sets)
    except (ValueError, TypeError) as exc:
        raise PhaseError(f"input parameter sets: {exc}") from None
    by: dict[str, list[dict]] = {}
    for strategy, params in pairs:
        by.setdefault(strategy, []).append(params)
    out = {}
    for strategy, rows in by.items():
        frame = pd.DataFrame(rows)
        space: dict[str, Any] = {}
        for col in frame.columns:
            vals = frame[col].dropna()
            uniq = sorted(set(vals.tolist()), key=repr)
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in uniq)
            if len(uniq) == 1:
                space[col] = [py_scalar(uniq[0])]
            elif grid or not numeric:
                space[col] = [py_scalar(v) for v in sorted(uniq)] if numeric else uniq
            else:
                lo, hi = min(uniq), max(uniq)
                space[col] = {"low": py_scalar(lo), "high": py_scalar(hi)}
        varied = any(not (isinstance(v, list) and len(v) == 1) for v in space.values())
        out[strategy] = space if grid or varied else {}
    return out


@dataclass
class _Storage:
    """A phase's Optuna storage: one URL or file for every study, or a journal file per study."""

    shared: str | None
    per_study: Any = None  #: study key -> journal path

    def spec(self, key: str) -> str:
        return self.shared if self.shared is not None else self.per_study(key)


@dataclass
class _Regime:
    label: str
    regime_id: int
    decisions: np.ndarray | None  #: bars whose decided position the regime governs (None: all)
    n_days: int


def _regimes(labels: pd.DataFrame | None, dates: pd.DatetimeIndex, opt: OptimizationSettings) -> list[_Regime]:
    """One decision mask per regime label: the label at date t (known at the close of t)
    governs the position decided at t, i.e. the return from t to t+1."""
    if labels is None:
        raise PhaseError(f"group_by_regime needs an input providing {REGIME_INPUT} (a regime_analysis phase)")
    need = {"date", "regime"}
    if not need <= set(labels.columns):
        raise PhaseError(f"input {REGIME_INPUT} needs columns date and regime (got {', '.join(map(str, labels.columns))})")
    lab = labels.copy()
    lab["date"] = pd.to_datetime(lab["date"])
    if "symbol" in lab.columns and lab["symbol"].nunique() > 1:
        raise PhaseError(f"input {REGIME_INPUT} has labels per symbol; the search needs one label per date")
    if lab["date"].duplicated().any():
        d = lab.loc[lab["date"].duplicated(), "date"].iloc[0]
        raise PhaseError(f"input {REGIME_INPUT} has several labels for {d.date()}")
    lab = lab.dropna(subset=["regime"]).set_index("date").reindex(dates)
    ids = {}
    if "regime_id" in lab.columns:
        for r, i in lab.dropna(subset=["regime"]).groupby("regime")["regime_id"].first().items():
            ids[str(r)] = int(i)
    out = []
    for j, label in enumerate(sorted(lab["regime"].dropna().astype(str).unique(), key=lambda r: (ids.get(r, 0), r))):
        mask = (lab["regime"].astype(str) == label).to_numpy()
        mask[-1] = False  # the last bar's decision earns nothing inside the split
        n = int(mask.sum())
        if n < opt.min_regime_days:
            continue
        out.append(_Regime(label, ids.get(label, j), mask, n))
    if not out:
        raise PhaseError(f"input {REGIME_INPUT}: no regime has {opt.min_regime_days} or more labelled days in the "
                         "search's split (field 'config.optimization.min_regime_days')")
    return out


#: settings that do not change what a trial is (the budget, what is reported, where it is stored)
_NOT_VERSIONED = ("n_trials", "n_iterations", "n_generations", "n_trials_per_regime", "batch_size", "storage",
                  "resume", "importance", "max_workers", "container_count")


def _fingerprint(close: pd.DataFrame) -> str:
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(close.to_numpy(dtype=np.float64)).tobytes())
    h.update(close.index.asi8.tobytes())
    h.update("|".join(map(str, close.columns)).encode())
    return h.hexdigest()


def _phase_version(kind: PhaseKind, cfg: Config, close: pd.DataFrame, labels: pd.DataFrame | None = None) -> str:
    """The version naming a phase's journal file: its search configuration and data."""
    dump = cfg.model_dump(mode="json", exclude={"top_n": True, "optimization": set(_NOT_VERSIONED)})
    regimes = None
    if labels is not None and cfg.optimization.group_by_regime:
        regimes = hashlib.sha1(pd.util.hash_pandas_object(labels, index=False).to_numpy().tobytes()).hexdigest()
    blob = json.dumps({"kind": kind.name, "kind_version": kind.version, "admf": admf_assets.__version__,
                       "config": dump, "data": _fingerprint(close), "regimes": regimes}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _version(kind: PhaseKind, cfg: Config, strategy: str, space: dict, objectives, constraints, trading, method: str,
             seed: int, population: int | None, close: pd.DataFrame, regime: _Regime) -> str:
    """What decides a trial's outcome and the sampler's proposals (not the budget: raising
    n_trials continues the same study), with a fingerprint of the data."""
    h = hashlib.sha1(_fingerprint(close).encode())
    if regime.decisions is not None:
        h.update(regime.decisions.tobytes())
    trading_fields = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(trading).items()}
    blob = json.dumps({"kind": kind.name, "kind_version": kind.version, "admf": admf_assets.__version__,
                       "strategy": strategy, "space": space, "objectives": [(o.name, o.direction) for o in objectives],
                       "constraints": [c.text for c in constraints], "trading": trading_fields,
                       "split": cfg.data_split, "method": method, "seed": seed, "population": population,
                       "regime": regime.label}, sort_keys=True, default=str)
    h.update(blob.encode())
    return h.hexdigest()[:12]


class _Progress:
    """Logs the search's progress at most every few seconds."""

    def __init__(self, ctx: PhaseContext, what: str, objective: str, every: float = 5.0, unit: str = "trials"):
        self.ctx, self.what, self.objective, self.every, self.unit = ctx, what, objective, every, unit
        self.last = time.monotonic()

    def __call__(self, info: eo.BatchInfo) -> None:
        self.ctx.progress(info.n_done, info.n_trials, f"{self.what} {self.unit}")  # the terminal's bar (throttled)
        now = time.monotonic()
        if now - self.last < self.every and info.n_done < info.n_trials:
            return
        self.last = now
        best = "none feasible yet" if info.best is None else f"{info.best:.4g}"
        self.ctx.log.info(f"phase '{self.ctx.phase}': {self.what}: {info.n_done}/{info.n_trials} trials, "
                          f"best {self.objective} {best}")


@dataclass
class _Run:
    strategy: str
    regime: _Regime
    result: eo.OptimizeResult
    note: str
    evaluator: eo.BacktestEvaluator


def _param_tables(run: _Run) -> tuple[list[str], list[str]]:
    """JSON of the strategy parameters (defaults filled) and of the searched trading settings, per trial."""
    res = run.result
    t = res.trials
    spec = strategy_registry.get_strategy(run.strategy)
    frame = pd.DataFrame({d.name: t[d.name].to_numpy() for d in res.dims}, index=t.index)
    for k, v in res.fixed.items():
        frame[k] = v
    strat_cols = [c for c in frame.columns if c in spec.params]
    trade_cols = [c for c in frame.columns if c in eo.TRADING_PARAMS]
    norm = normalize_params(spec, frame[strat_cols], check=False) if len(frame) else pd.DataFrame()
    params = [params_json({k: py_scalar(v) for k, v in rec.items()}) for rec in norm.to_dict("records")]
    if trade_cols:
        trading = [params_json({k: py_scalar(v) for k, v in rec.items()}) for rec in frame[trade_cols].to_dict("records")]
    else:
        trading = ["{}"] * len(frame)
    return params, trading


def _history(runs: list[_Run], grouped: bool) -> pd.DataFrame:
    parts = []
    for run in runs:
        t = run.result.trials.copy()
        params, trading = _param_tables(run)
        t.insert(0, "study_trial", t.pop("trial_id"))
        t.insert(1, "strategy", run.strategy)
        t.insert(2, "regime", run.regime.label)
        t.insert(3, PARAMS_COLUMN, params)
        t.insert(4, TRADING_COLUMN, trading)
        parts.append(t)
    hist = pd.concat(parts, ignore_index=True)
    hist.insert(0, "trial_id", np.arange(len(hist)))
    objective = runs[0].result.objectives[0]
    score = np.where(hist["feasible"].to_numpy(bool), hist["objective"].to_numpy(np.float64), np.nan)
    hist["rank"] = 0
    for _, idx in hist.groupby("regime", sort=False).groups.items():
        idx = np.asarray(idx)
        hist.loc[idx, "rank"] = rank_trials(score[idx], hist["trial_id"].to_numpy()[idx], objective.direction)
    return hist


def _assemble(ctx: PhaseContext, cfg: Config, close: pd.DataFrame, runs: list[_Run], regimes: list[_Regime],
              top_n: int, seconds: float, storage: str | None) -> PhaseResult:
    opt = cfg.optimization
    grouped = opt.group_by_regime
    objectives = runs[0].result.objectives
    hist = _history(runs, grouped)
    feasible = hist[hist["feasible"] & np.isfinite(hist["objective"])]
    if feasible.empty:
        raise PhaseError(_no_feasible_message(hist, runs[0].result))
    ranked = feasible.sort_values(["regime", "rank"], kind="stable")
    top = ranked.groupby("regime", sort=False).head(top_n).reset_index(drop=True)
    set_cols = ["trial_id", "strategy", "regime", PARAMS_COLUMN, TRADING_COLUMN, "objective", "rank",
                *METRIC_COLUMNS]
    top = top[set_cols + [c for c in top.columns if c not in set_cols and c.startswith("objective_")]]
    regime_best = _regime_best(runs, hist)
    best = _best(cfg, close, runs, hist, regime_best, objectives) if grouped else ranked.head(1).copy()
    best = best[[c for c in set_cols if c != "regime"]].reset_index(drop=True)
    best.insert(0, "objective_name", objectives[0].name)
    best["train_start"] = close.index[0]
    best["train_end"] = close.index[-1]
    best["n_trials"] = len(hist)
    # the optional tables are computed only when the phase declares them (importance fits models)
    importance = pd.concat([_tag(eo.param_importance(r.result, opt.importance, opt.seed), r) for r in runs],
                           ignore_index=True) if ctx.wants("parameter_importance") else None
    distribution = pd.concat([_tag(eo.performance_distribution(r.result.trials), r) for r in runs],
                             ignore_index=True) if ctx.wants("performance_distribution") else None
    pareto = _pareto(runs, hist, objectives)
    b = best.iloc[0]
    n_valid = len(feasible)
    n_resumed = sum(r.result.n_resumed for r in runs)
    evaluated = sum(r.result.n_evaluated for r in runs)
    metrics = {k: py_scalar(b[k]) for k in METRIC_COLUMNS}
    metrics.update({"n_trials": len(hist), "n_valid_trials": n_valid, "best_score": py_scalar(b["objective"]),
                    "n_resumed_trials": n_resumed, "n_regimes": len(regimes) if grouped else 0,
                    "trials_per_second": round(evaluated / seconds, 2) if seconds > 0 and evaluated else 0.0})
    notes = "; ".join(f"{r.strategy}" + (f" [{r.regime.label}]" if grouped else "") + f": {r.note}" for r in runs)
    studies = [r.result.study_name for r in runs if r.result.study_name]
    common = {"split": cfg.data_split, "train_period": f"{close.index[0].date()}..{close.index[-1].date()}",
              "symbols": ", ".join(map(str, close.columns)), "method": _method_text(opt, objectives),
              "search": notes}
    where = list(dict.fromkeys(r.result.storage for r in runs if r.result.storage))
    if len(where) > 1 and all("://" not in w for w in where):
        where = [os.path.commonpath(where)]  # the phase's folder of journal files
    study_meta = {"optuna_storage": ", ".join(where) or "in-memory (not persisted)",
                  "optuna_studies": studies,
                  "dashboard": (f"admf optuna {ctx.workflow.id} --storage URL (the optuna_storage above, with its "
                                f"password)" if opt.max_workers > 1 else
                                f"admf optuna {ctx.workflow.id} --phase {ctx.phase}" if storage else ""),
                  "workers": opt.max_workers,
                  "resumed_trials": n_resumed, "evaluated_trials": evaluated,
                  "engine_calls": sum(r.result.engine_calls for r in runs),
                  "seconds": {k: round(sum(r.result.seconds[k] for r in runs), 3)
                              for k in ("sampler", "engine", "storage", "total")}}
    regime_table = regime_best.drop(columns=[PARAMS_COLUMN, TRADING_COLUMN], errors="ignore")
    meta = {
        "best_parameters": {**common, "strategy": b["strategy"], "parameters": b[PARAMS_COLUMN],
                            "trading": b[TRADING_COLUMN], "objective": objectives[0].name,
                            "best_value": py_scalar(b["objective"]),
                            "preview": best.drop(columns=[PARAMS_COLUMN, TRADING_COLUMN])},
        "top_parameter_sets": {**common, "rows": len(top), "preview": top.drop(columns=[PARAMS_COLUMN,
                                                                                          TRADING_COLUMN])},
        "optimization_history": {**common, **study_meta, "rows": len(hist), "valid_trials": n_valid,
                                 "infeasible_trials": int((~hist["feasible"]).sum()),
                                 "objective_mean": float(feasible["objective"].mean()),
                                 "preview": hist.sort_values("rank").drop(columns=[PARAMS_COLUMN, TRADING_COLUMN])
                                 .head(10)},
        "parameter_importance": {**common, "evaluator": opt.importance, "preview": importance},
        "performance_distribution": {**common, "preview": None if distribution is None else distribution[
            distribution["metric"].isin(["objective", "sharpe_ratio", "total_return", "max_drawdown", "n_trades"])]},
        "pareto_front": {**common, "objectives": [o.name for o in objectives], "rows": len(pareto),
                         "preview": pareto.drop(columns=[PARAMS_COLUMN, TRADING_COLUMN])},
        "regime_optimized_strategies": {**common, "regimes": [r.label for r in regimes], "preview": regime_table},
    }
    heat = rep.search_heatmap_table(hist.drop(columns=[PARAMS_COLUMN, TRADING_COLUMN], errors="ignore"),
                                    {k: 0 for k in _param_names(hist)})
    if heat is not None:
        pivot, obj = heat[0], heat[1]
        meta["optimization_history"]["heatmap"] = Image(
            charts.heatmap(pivot, f"Mean {obj} by {pivot.index.name} and {pivot.columns.name}"),
            alt=f"mean {obj} heatmap")
    outputs = {"best_parameters": best, "top_parameter_sets": top, "optimization_history": hist,
               "parameter_importance": importance, "performance_distribution": distribution,
               "pareto_front": pareto, "regime_optimized_strategies": regime_best}
    outputs = {k: v for k, v in outputs.items() if v is not None}
    return PhaseResult(outputs=outputs, metadata={k: meta[k] for k in outputs}, metrics=metrics)


def _tag(frame: pd.DataFrame, run: _Run) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "strategy", run.strategy)
    frame.insert(1, "regime", run.regime.label)
    return frame


def _regime_best(runs: list[_Run], hist: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for run in runs:
        h = hist[(hist["strategy"] == run.strategy) & (hist["regime"] == run.regime.label) & hist["feasible"]
                 & np.isfinite(hist["objective"])]
        if h.empty:
            continue
        r = h.sort_values("rank").iloc[0]
        rows.append({"regime": run.regime.label, "regime_id": run.regime.regime_id, "strategy": run.strategy,
                     PARAMS_COLUMN: r[PARAMS_COLUMN], TRADING_COLUMN: r[TRADING_COLUMN], "objective": r["objective"],
                     "rank": int(r["rank"]), "trial_id": int(r["trial_id"]), "n_trials": len(run.result.trials),
                     "n_days": run.regime.n_days, **{k: r[k] for k in METRIC_COLUMNS}})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["rank"] = out.groupby("regime")["rank"].rank(method="first").astype(int)
        out = out.sort_values(["regime_id", "rank"], kind="stable").reset_index(drop=True)
    return out


def _best(cfg: Config, close: pd.DataFrame, runs: list[_Run], hist: pd.DataFrame, regime_best: pd.DataFrame,
          objectives) -> pd.DataFrame:
    """Grouped search: each regime's winner evaluated over the whole split (one engine call per
    strategy); the best feasible one by the objective is best_parameters."""
    constraints = eo.parse_constraints(cfg.optimization.constraints)
    trading = cfg.trading()
    rows = []
    for strategy, group in regime_best.groupby("strategy", sort=False):
        cand = hist.set_index("trial_id").loc[group["trial_id"]].reset_index()
        params = pd.DataFrame([{**json.loads(p), **json.loads(t)} for p, t in zip(cand[PARAMS_COLUMN],
                                                                                   cand[TRADING_COLUMN])])
        m = eo.BacktestEvaluator(close, strategy, trading)(params)
        arrays = {k: m[k].to_numpy(np.float64) for k in METRIC_COLUMNS}
        score = objectives[0].values(arrays)
        ok = np.ones(len(m), bool)
        for c in constraints:
            ok &= c.violation(arrays) <= 0
        for i in range(len(cand)):
            row = cand.iloc[i].to_dict()
            row.update({k: float(m[k].iloc[i]) for k in METRIC_COLUMNS})
            row["objective"] = float(score[i])
            row["feasible"] = bool(ok[i] and np.isfinite(score[i]))
            rows.append(row)
    full = pd.DataFrame(rows)
    ok = full[full["feasible"]]
    if ok.empty:
        raise PhaseError("no regime's best parameter set satisfies the constraints over the whole "
                         f"'{cfg.data_split}' split (field 'config.optimization.constraints')")
    order = rank_trials(ok["objective"].to_numpy(), ok["trial_id"].to_numpy(), objectives[0].direction)
    best = ok.iloc[[int(np.argmin(order))]].copy()
    best["rank"] = 1
    return best


def _pareto(runs: list[_Run], hist: pd.DataFrame, objectives) -> pd.DataFrame:
    parts = []
    for run in runs:
        h = hist[(hist["strategy"] == run.strategy) & (hist["regime"] == run.regime.label)]
        front = h[h["study_trial"].isin(run.result.pareto)]
        parts.append(front)
    cols = ["trial_id", "strategy", "regime", PARAMS_COLUMN, TRADING_COLUMN, "objective",
            *([f"objective_{j}" for j in range(len(objectives))] if len(objectives) > 1 else []), *METRIC_COLUMNS]
    out = pd.concat(parts, ignore_index=True)[cols]
    if len(objectives) > 1:
        out = out.rename(columns={f"objective_{j}": f"objective_{j}_{o.key}" for j, o in enumerate(objectives)})
    return out


def _no_feasible_message(hist: pd.DataFrame, res: eo.OptimizeResult) -> str:
    counts = [f"{c[len('violation_'):]} violated by {int((hist[c] > 0).sum())}" for c in hist.columns
              if c.startswith("violation_") and (hist[c] > 0).any()]
    what = ", ".join(c.text for c in res.constraints) or "no constraints"
    return (f"no feasible trial among {len(hist)} ({'; '.join(counts)}); constraints: {what} "
            "(field 'config.optimization.constraints')")


def _method_text(opt: OptimizationSettings, objectives) -> str:
    sampler = {"grid": "every combination", "random": f"seeded random draws (seed {opt.seed})",
               "tpe": "Optuna TPE", "cmaes": "CMA-ES (cmaes)", "nsga2": "Optuna NSGA-II",
               "differential_evolution": "scipy differential evolution"}[ENGINE_METHOD[opt.method]]
    return f"{opt.method}: {sampler} on {', '.join(o.name for o in objectives)}"


def _whole(dim: dict) -> bool:
    """A dimension of whole numbers (windows: each distinct value is one cached indicator)."""
    values = dim.get("values")
    return bool(values) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _int_range(dim: dict) -> bool:
    return "low" in dim and all(isinstance(dim.get(k), int) and not isinstance(dim.get(k), bool)
                                for k in ("low", "high"))


def _drop_json(df):
    return df.drop(columns=[PARAMS_COLUMN, TRADING_COLUMN], errors="ignore") if df is not None else None


KIND = ParameterSearch()

__all__ = ["KIND", "Config", "ParameterSearch", "METHODS", "ENGINE_METHOD"]


# ================================================================== shared studies (max_workers)
def _shared_workers(opt: OptimizationSettings, engine_method: str | None, env: ConfigEnv) -> dict[str, Any]:
    """``max_workers`` (or its seed name ``container_count``): the processes that run ONE study of a
    bayesian search together, on an RDB storage every one of them reaches."""
    k = opt.max_workers
    if opt.container_count is not None:
        if "max_workers" in opt.model_fields_set:
            env.problem("optimization.container_count", "give max_workers or container_count (its seed name), not both")
        k = opt.container_count
    if k > 1 and engine_method != "tpe":
        env.warn("optimization.max_workers", f"ignored by method '{opt.method}': only 'bayesian' shares one study "
                                             "among several workers (the others run in one process)")
        k = 1
    if k > 1 and _shared_url(opt.storage) is None:
        env.problem("optimization.max_workers", "several workers share one study through an RDB storage: set "
                                                "optimization.storage to a postgresql:// URL (sqlite:/// on one "
                                                "machine), or ADMF_OPTUNA_STORAGE, or ADMF_POSTGRES_URL")
    return {"max_workers": k, "container_count": None}


def _shared_url(storage: str | None) -> str | None:
    """The RDB URL a shared study lives in: ``optimization.storage`` when it is a URL, else
    ``ADMF_OPTUNA_STORAGE`` when it is one, else the instance's PostgreSQL server (database
    ``<dagster database>_optuna``), else None."""
    from admf_assets import instance

    for spec in (storage, os.environ.get(STORAGE_ENV)):
        if spec:
            return spec if "://" in spec else None
    return instance.optuna_storage_url()


def _run_shared(ctx: PhaseContext, evaluator, dims, objectives, *, n_trials: int, seed: int, constraints, fixed,
                strategy: str, batch_size: int | None, name: str, attrs: dict, resume: bool):
    """The search on one study that ``max_workers`` processes optimize together."""
    from admf_assets import instance
    from admf_assets.engine import shared_search

    opt = ctx.config.optimization
    url = _shared_url(opt.storage)
    if url is None:  # validate says so too; the environment may have changed since
        raise PhaseError("field 'config.optimization.max_workers': no RDB storage for the shared study (set "
                         "optimization.storage, ADMF_OPTUNA_STORAGE or ADMF_POSTGRES_URL)")
    try:
        if url.startswith("postgresql") and not (opt.storage or os.environ.get(STORAGE_ENV)):
            instance.ensure_database(url)  # the instance server's <database>_optuna
        return shared_search.optimize_shared(
            evaluator, dims, objectives, n_trials=n_trials, url=url, study_name=name, workers=opt.max_workers,
            seed=seed, constraints=constraints, fixed=fixed, valid=shared_search.StrategyValid(strategy),
            batch_size=batch_size, attrs=attrs, resume=resume, log=ctx.log.info)
    except Exception as exc:  # noqa: BLE001 - the database refused: one line, the password hidden
        if isinstance(exc, (PhaseError, ValueError)):
            raise
        raise PhaseError(f"field 'config.optimization.storage': the shared study at {describe_storage(url)} "
                         f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
