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

import json
import math
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, StrictInt, StrictStr, model_validator

from admf_assets.engine import charts, estimate
from admf_assets.engine import insights as ei
from admf_assets.engine import report as rep
from admf_assets.engine import search as engine_search
from admf_assets.engine.metrics import METRIC_COLUMNS
from admf_assets.engine.paramsets import PARAMS_COLUMN, params_json
from admf_assets.engine.util import py_scalar
from admf_assets.phases.common import (BARS, MAX_GRID_SIZE, DataSplitName, StrategyEntry, TradingSettings,
                                       check_has_valid_combination, check_param_values, check_strategy_params,
                                       close_matrix, data_shape, known_strategy, normalise_param, space_from_config)
from admf_assets.phases.kind import ConfigEnv, Image, Insight, Output, PhaseContext, PhaseError, PhaseKind, \
    PhaseResult, PhaseView, ResourceDemand, StrictModel
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
        shape = data_shape(env, cfg.data_split)
        n_bars = shape[0] if shape else None
        own: list[tuple[int, Any, dict]] = []  # (index, strategy spec, its own normalised grid)
        strategies = list(cfg.strategies)
        for i, s in enumerate(cfg.strategies):
            if not s.type.strip():
                env.problem(f"strategies[{i}].type", "empty strategy type")
                continue
            spec = known_strategy(s.type, f"strategies[{i}].type", env)
            check_strategy_params([spec], s.parameters, f"strategies[{i}].parameters", env)
            if spec is not None:
                fld = f"strategies[{i}].parameters"
                norm = {k: n for k, v in s.parameters.items()
                        if (n := normalise_param(k, v, method, env, fld)) is not None}
                check_param_values([spec], norm, fld, env, n_bars)
                own.append((i, spec, norm))
                strategies[i] = s.model_copy(update={"parameters": norm})
            if s.optimization_target:
                targets.append(spec)
        if params:
            check_strategy_params(targets, params, "optimization.parameters", env)
            check_param_values(targets, params, "optimization.parameters", env, n_bars)
        if not env.problems and method in METHODS:
            for i, spec, norm in own:  # what the run evaluates: the shared space, then the strategy's own
                check_has_valid_combination(spec, space_from_config({**params, **norm}), "optimization.parameters",
                                            env, method=method, n_trials=opt.n_trials, seed=opt.seed + i,
                                            strict=len(cfg.strategies) == 1)
        direction = opt.direction
        if direction is None and objective in OBJECTIVES:
            direction = engine_search.default_direction(objective)
        new_opt = opt.model_copy(update={"method": method, "parameters": params, "objective": objective,
                                         "direction": direction or "maximize"})
        return cfg.model_copy(update={"optimization": new_opt, "strategies": strategies})

    resource_keys = ("memory_limit_gb", "max_workers")

    def demand(self, cfg: Config, env: ConfigEnv) -> ResourceDemand | None:
        """Trials x bars x symbols of every strategy's search, from the data section."""
        shape = data_shape(env, cfg.data_split)
        opt = cfg.optimization
        if shape is None or not opt.parameters:
            return None
        n_bars, n_symbols = shape
        combos = drawn = windows = 0
        n_params = 1
        for strat in cfg.strategies:
            space = {**opt.parameters, **strat.parameters}  # both normalised by effective_config
            n_params = max(n_params, len(space))
            if opt.method == "random":
                n = int(opt.n_trials or 0)
                combos, drawn = combos + n, max(drawn, n)
                windows = max(windows, sum(min(n, int(d["high"] - d["low"] + 1)) if d.get("type") == "int"
                                           else min(n, len(d["values"])) if _whole(d) else 0 for d in space.values()))
            else:
                combos += math.prod(len(d.get("values", [1])) for d in space.values())
                windows = max(windows, sum(len(d["values"]) for d in space.values() if _whole(d)))
        est = estimate.search_estimate(combos, n_bars, n_symbols, n_params, distinct_windows=windows,
                                       n_drawn=drawn or None)
        if opt.method == "random":
            advice = "use fewer n_trials, or fewer symbols or a shorter date range"
            what = f"the random search ({combos:,} trials x {n_bars:,} bars x {n_symbols:,} symbol(s))"
        else:
            advice = ("use method: random with n_trials, or fewer values per parameter, or fewer symbols or a "
                      "shorter date range")
            what = f"the grid search ({combos:,} combinations x {n_bars:,} bars x {n_symbols:,} symbol(s))"
        return ResourceDemand(est, what, "optimization", advice, "trials" if opt.method == "random" else "combinations")

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
            label = f"{strat.type} combinations"
            try:
                res = engine_search.search(close, strat.type, space, objective=opt.objective, method=opt.method,
                                           n_trials=opt.n_trials, seed=opt.seed + i, config=trading, top_n=top_n,
                                           keep_returns=False, strict=len(cfg.strategies) == 1,
                                           direction=opt.direction, memory_limit_bytes=ctx.memory_limit_bytes,
                                           workers=ctx.workers,
                                           progress=lambda done, total: ctx.progress(done, total, label))
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
        heat = rep.search_heatmap_table(hist.drop(columns=[PARAMS_COLUMN]), {k: 0 for k in _param_names(hist)})
        if heat is not None:
            pivot, obj = heat[0], heat[1]
            meta["optimization_history"]["heatmap"] = Image(
                charts.heatmap(pivot, f"Mean {obj} by {pivot.index.name} and {pivot.columns.name}"),
                alt=f"mean {obj} heatmap")
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
        out = rep.search_sections(best_params, _drop_json(top), _drop_json(hist))
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
            out.append(sec)
        return out

    def insights(self, view: PhaseView) -> list[Insight]:
        hist = view.outputs.get("optimization_history")
        if hist is None or not len(hist):
            return []
        cfg: Config = view.config
        opt = cfg.optimization
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
        best_pos = int(np.nanargmax(y.to_numpy(dtype=float)) if opt.direction == "maximize"
                       else np.nanargmin(y.to_numpy(dtype=float)))
        params = _param_names(hist)
        nb = ei.neighbourhood(hist, params, best_pos)
        if nb and opt.direction == "maximize" and nb["best"] > 0:
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


def _param_names(hist: pd.DataFrame) -> list[str]:
    """The searched parameters: the keys of the trials' parameter sets that vary."""
    names: dict[str, None] = {}
    for p in hist[PARAMS_COLUMN].drop_duplicates():
        names.update(dict.fromkeys(json.loads(p)))
    return [n for n in names if n in hist.columns and hist[n].nunique() > 1]


def _v(x) -> str:
    return f"{x:g}" if isinstance(x, (int, float, np.integer, np.floating)) else str(x)


_IMPORTANCE: dict[str, Any] = {"history": None, "value": None}


def _importance(view: PhaseView) -> tuple[pd.DataFrame, dict[str, float], str] | None:
    """(effects, variance explained per parameter, objective) of the view's history; computed once per history
    (the report asks for its sections and its insights)."""
    hist = view.outputs.get("optimization_history")
    if hist is None or not len(hist):
        return None
    if _IMPORTANCE["history"] is hist:
        return _IMPORTANCE["value"]
    opt = view.config.optimization
    best = view.outputs.get("best_parameters")
    strategy = best["strategy"].iloc[0] if best is not None and len(best) else hist["strategy"].iloc[0]
    h = hist[hist["strategy"] == strategy]
    params = _param_names(h)
    effects = ei.parameter_effects(h, params, "objective", opt.direction)
    value = None
    if len(effects):
        shares = ei.parameter_importance(h, list(effects["parameter"]), "objective")
        value = (effects, shares, opt.objective)
    _IMPORTANCE.update(history=hist, value=value)
    return value


def _whole(dim: dict) -> bool:
    """A dimension of whole numbers (windows: each distinct value is one cached indicator)."""
    values = dim.get("values")
    return bool(values) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _drop_json(df):
    return df.drop(columns=[PARAMS_COLUMN], errors="ignore") if df is not None else None


KIND = ParameterSearch()

__all__ = ["KIND", "Config", "ParameterSearch"]
