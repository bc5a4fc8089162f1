"""parameter_search (optimization): grid or seeded random search of strategy parameters on the
train split, every trial evaluated in one vectorized engine run per strategy.

    - name: parameter_optimization
      type: optimization
      config:
        strategies: [{type: momentum}]
        optimization:
          method: grid                      # grid | random (n_trials, seed)
          parameters: {fast_period: [5, 10, 20], slow_period: [20, 50]}
          objective: sharpe_ratio
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, StrictInt, StrictStr, model_validator

from admf_assets.engine import report as rep
from admf_assets.engine import search as engine_search
from admf_assets.engine.metrics import METRIC_COLUMNS
from admf_assets.engine.paramsets import PARAMS_COLUMN, params_json
from admf_assets.engine.util import py_scalar
from admf_assets.phases.common import (BARS, MAX_GRID_SIZE, DataSplitName, StrategyEntry, TradingSettings,
                                       check_strategy_params, close_matrix, known_strategy, normalise_param,
                                       space_from_config)
from admf_assets.phases.kind import ConfigEnv, Output, PhaseContext, PhaseError, PhaseKind, PhaseResult, PhaseView, \
    StrictModel
from admf_assets.suggest import suggest

DEFAULT_TOP_N = 10
METHODS = engine_search.METHODS
#: methods of the design that are not implemented yet
PLANNED_METHODS = ("bayesian", "tpe", "cmaes", "cma_es", "differential_evolution", "genetic")
OBJECTIVES = engine_search.OBJECTIVES


class OptimizationSettings(StrictModel):
    method: StrictStr = "grid"
    parameters: dict[StrictStr, Any] | None = None
    objective: StrictStr = "sharpe_ratio"
    direction: Literal["maximize", "minimize"] | None = None
    n_trials: StrictInt | None = Field(default=None, ge=1)
    seed: StrictInt = 42


class Config(TradingSettings):
    __key_aliases__ = ("parameters", "method", "strategy")

    optimization: OptimizationSettings = Field(default_factory=OptimizationSettings)
    strategies: list[StrategyEntry] = Field(default_factory=lambda: [StrategyEntry(type="momentum")], min_length=1)
    data_split: DataSplitName = "train"
    top_n: StrictInt | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _shortcuts(cls, v: Any) -> Any:
        """``parameters`` / ``method`` at the top level belong to ``optimization``;
        ``strategy: x`` is ``strategies: [x]``."""
        if not isinstance(v, dict):
            return v
        v = dict(v)
        opt = v.get("optimization")
        opt = dict(opt) if isinstance(opt, dict) else ({} if opt is None else opt)
        for key in ("parameters", "method"):
            if key in v:
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


class ParameterSearch(PhaseKind):
    name = "parameter_search"
    aliases = ("optimization", "parameter_optimization", "grid_search")
    description = "Search a strategy's parameters (grid or random) on the train split."
    Config = Config
    example_config = MappingProxyType({"optimization": {"parameters": {"fast_period": [5, 10],
                                                                       "slow_period": [20, 40]}}})
    outputs = (
        Output("best_parameters", "The best parameter set and its score",
               aliases=("best_params", "optimal_parameters"),
               columns=("objective_name", "trial_id", "strategy", PARAMS_COLUMN, "objective", "rank",
                        "train_start", "train_end", "n_trials")),
        Output("top_parameter_sets", "The N best parameter sets with their metrics",
               aliases=("top_strategies", "top_parameters", "selected_strategies"),
               pattern=r"^top_(?P<n>[0-9]+)_(parameter_sets|strategies|parameters)$",
               pattern_hint="top_<N>_parameter_sets",
               count_field="top_n", count_default=DEFAULT_TOP_N,
               columns=("trial_id", "strategy", PARAMS_COLUMN, "objective", "rank")),
        Output("optimization_history", "Every trial: parameters, objective and metrics",
               aliases=("trial_history", "trials", "all_results", "performance_distribution", "optimization_results"),
               columns=("trial_id", "strategy", PARAMS_COLUMN, "objective", "rank", *METRIC_COLUMNS)),
    )
    consumes = (BARS,)
    metrics = (*METRIC_COLUMNS, "best_score", "n_trials", "n_valid_trials")

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        opt = cfg.optimization
        method = opt.method.strip().lower()
        if method in PLANNED_METHODS:
            env.problem("optimization.method", f"optimization method '{method}' is not available yet "
                                               f"(available: {', '.join(METHODS)})")
        elif method not in METHODS:
            env.problem("optimization.method", f"unknown optimization method '{opt.method}'"
                                               f"{suggest(method, METHODS + PLANNED_METHODS)} "
                                               f"(available: {', '.join(METHODS)})")
        objective = opt.objective
        if objective not in OBJECTIVES:  # canonical names only: one spelling in every table
            env.problem("optimization.objective", f"unknown objective '{opt.objective}'"
                                                  f"{suggest(opt.objective, OBJECTIVES)}; known: {', '.join(OBJECTIVES)}")
        if method == "random" and opt.n_trials is None:
            env.problem("optimization.n_trials", "required for method 'random'")
        params: dict[str, Any] = {}
        if not opt.parameters:
            env.problem("optimization.parameters",
                        f"required for phase type '{self.name}': a mapping of parameter name -> values")
        else:
            grid_size = 1
            for name, spec in opt.parameters.items():
                norm = normalise_param(name, spec, method, env, "optimization.parameters")
                if norm is not None:
                    params[name] = norm
                    if "values" in norm:
                        grid_size *= len(norm["values"])
            if method == "grid" and grid_size > MAX_GRID_SIZE:
                env.problem("optimization.parameters", f"the grid has {grid_size} combinations (more than "
                                                       f"{MAX_GRID_SIZE}); use method 'random' with n_trials")
        targets = []
        for i, s in enumerate(cfg.strategies):
            if not s.type.strip():
                env.problem(f"strategies[{i}].type", "empty strategy type")
                continue
            spec = known_strategy(s.type, f"strategies[{i}].type", env)
            check_strategy_params([spec], s.parameters, f"strategies[{i}].parameters", env)
            if s.optimization_target:
                targets.append(spec)
        if params:
            check_strategy_params(targets, params, "optimization.parameters", env)
        direction = opt.direction
        if direction is None and objective in OBJECTIVES:
            direction = engine_search.default_direction(objective)
        new_opt = opt.model_copy(update={"method": method, "parameters": params, "objective": objective,
                                         "direction": direction or "maximize"})
        return cfg.model_copy(update={"optimization": new_opt})

    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        bars = ctx.need("bars")
        close = close_matrix(bars, cfg.data_split)
        opt = cfg.optimization
        base_space = space_from_config(opt.parameters)
        top_n = int(ctx.output_param("top_parameter_sets", "n") or cfg.top_n or DEFAULT_TOP_N)
        trading = cfg.trading()
        histories, notes = [], []
        for i, strat in enumerate(cfg.strategies):
            space = {**base_space, **space_from_config(strat.parameters)}
            try:
                res = engine_search.search(close, strat.type, space, objective=opt.objective, method=opt.method,
                                           n_trials=opt.n_trials, seed=opt.seed + i, config=trading, top_n=top_n,
                                           keep_returns=False, strict=len(cfg.strategies) == 1,
                                           direction=opt.direction)
            except ValueError as exc:
                raise PhaseError(f"field 'config.optimization': {exc}") from None
            h = res.history.copy()
            h[PARAMS_COLUMN] = [params_json(rec) for rec in h[res.params].to_dict("records")]
            histories.append(h)
            notes.append(f"{strat.type}: {res.message}")
        hist = pd.concat(histories, ignore_index=True)
        hist["trial_id"] = np.arange(len(hist))
        hist["rank"] = engine_search.rank_trials(hist["objective"].to_numpy(), hist["trial_id"].to_numpy(),
                                                 opt.direction)
        hist = hist.sort_values("trial_id").reset_index(drop=True)
        ranked = hist.sort_values("rank").reset_index(drop=True)
        valid = int(np.isfinite(hist["objective"]).sum())
        best = ranked.head(1).copy()
        best.insert(0, "objective_name", res.objective)
        best["train_start"] = close.index[0]
        best["train_end"] = close.index[-1]
        best["n_trials"] = len(hist)
        top = ranked.head(top_n).reset_index(drop=True)
        b = best.iloc[0]
        metrics = {k: py_scalar(b[k]) for k in METRIC_COLUMNS}
        metrics.update({"n_trials": len(hist), "n_valid_trials": valid, "best_score": py_scalar(b["objective"])})
        common = {"split": cfg.data_split, "train_period": f"{close.index[0].date()}..{close.index[-1].date()}",
                  "symbols": ", ".join(close.columns), "search": "; ".join(notes)}
        meta = {
            "best_parameters": {**common, "strategy": b["strategy"], "parameters": b[PARAMS_COLUMN],
                                "objective": res.objective, "best_value": py_scalar(b["objective"]),
                                "preview": best.drop(columns=[PARAMS_COLUMN])},
            "top_parameter_sets": {**common, "rows": len(top), "preview": top.drop(columns=[PARAMS_COLUMN])},
            "optimization_history": {**common, "rows": len(hist), "valid_trials": valid,
                                     "objective_mean": float(np.nanmean(hist["objective"])) if valid else float("nan"),
                                     "preview": ranked.drop(columns=[PARAMS_COLUMN]).head(10)},
        }
        return PhaseResult(
            outputs={"best_parameters": best, "top_parameter_sets": top, "optimization_history": hist},
            metadata=meta, metrics=metrics,
        )

    def sections(self, view: PhaseView) -> list[dict]:
        best, top, hist = (view.outputs.get(k) for k in ("best_parameters", "top_parameter_sets",
                                                         "optimization_history"))
        best_params = None
        if best is not None and len(best):
            from admf_assets.engine.paramsets import parameter_set

            strategy, params = parameter_set(best.iloc[0])
            best_params = {"strategy": strategy, **params}
        return rep.search_sections(best_params, _drop_json(top), _drop_json(hist))


def _drop_json(df):
    return df.drop(columns=[PARAMS_COLUMN], errors="ignore") if df is not None else None


KIND = ParameterSearch()

__all__ = ["KIND", "Config", "ParameterSearch"]
