"""ensemble_optimization (ensemble, signal_replay): weights over the members of a captured-signals
input, fit on the train split by replaying the captured positions (never recomputing an
indicator), reported in and out of sample.

    - name: ensemble_optimization
      type: ensemble_optimization
      inputs: [signal_capture.compressed_signals, signal_capture.signal_metadata,
               regime_analysis.regime_classifications]            # regimes: optional
      config:
        method: differential_evolution   # optuna (tpe) | cmaes | nsga2 (genetic) | equal_weight
                                         # | inverse_volatility | minimum_variance | maximum_sharpe
        objective: sharpe_ratio
        constraints: {sum_weights: 1.0, min_weight: 0.05, max_weight: 0.4, max_correlation: 0.8}
        rebalance_frequency: 21          # bars; weights drift with the members in between
        regime_conditional: true         # one weight vector per regime (needs regimes)

Every weight vector satisfies every constraint (``engine.ensemble.project``); the
correlation limit is applied to the members' training returns before fitting.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, StrictBool, StrictInt, StrictStr, model_validator

from admf_assets.engine import charts
from admf_assets.engine import ensemble as en
from admf_assets.engine.analysis import equity_curve
from admf_assets.engine.capture import from_frame, replay
from admf_assets.engine.metrics import METRIC_COLUMNS, compute_metrics
from admf_assets.engine.paramsets import PARAMS_COLUMN, evaluate_sets
from admf_assets.engine.search import OBJECTIVES, default_direction
from admf_assets.phases.common import BARS, TradingSettings, close_matrix, is_number
from admf_assets.phases.kind import ConfigEnv, Consumes, Insight, Output, PhaseContext, PhaseError, PhaseKind, PhaseResult, \
    PhaseView, StrictModel
from admf_assets.suggest import suggest

OBJECTIVE_ALIASES = {"sharpe": "sharpe_ratio", "risk_adjusted_returns": "sharpe_ratio", "risk_adjusted_return":
                     "sharpe_ratio", "sortino": "sortino_ratio", "calmar": "calmar_ratio", "return": "total_return"}
#: candidate values tried when the seed gives a range for these (chosen on the train split)
GRID_POINTS = 5


class ConstraintsConfig(StrictModel):
    sum_weights: float = Field(default=1.0, gt=0)
    min_weight: float = Field(default=0.0, ge=0)
    max_weight: float = Field(default=1.0, gt=0)
    max_correlation: float | None = Field(default=None, ge=-1, le=1)
    max_members: StrictInt | None = Field(default=None, ge=1)


class Config(TradingSettings):
    __key_aliases__ = ("optimization", "parameters", "adaptive_weighting", "market_condition_awareness",
                       "signal_replay")

    method: StrictStr = "maximum_sharpe"
    objective: StrictStr = "sharpe_ratio"
    n_trials: StrictInt = Field(default=300, ge=1)
    batch_size: StrictInt = Field(default=32, ge=1)
    n_generations: StrictInt = Field(default=50, ge=1)
    population_size: StrictInt = Field(default=50, ge=4)
    seed: StrictInt = 42
    constraints: ConstraintsConfig = Field(default_factory=ConstraintsConfig)
    rebalance_frequency: StrictInt | list[StrictInt] = 1
    regime_conditional: StrictBool = False
    regime_confidence_threshold: float | list[float] = 0.0
    n_bootstrap: StrictInt = Field(default=20, ge=0)
    bootstrap_block: StrictInt = Field(default=20, ge=1)
    stability_trials: StrictInt = Field(default=100, ge=1)
    measure_recompute: StrictBool = True

    @model_validator(mode="before")
    @classmethod
    def _seed_forms(cls, v: Any) -> Any:
        """Seed 001: ``optimization: {method, n_generations, population_size, parameters:
        {strategy_weights: [lo, hi], regime_confidence_threshold: [a, b], rebalance_frequency:
        [a, b]}}``; ``adaptive_weighting`` / ``market_condition_awareness`` = regime-conditional
        weights; ``signal_replay: true`` (always)."""
        if not isinstance(v, dict):
            return v
        v = dict(v)
        opt = v.pop("optimization", None)
        if opt is not None:
            if not isinstance(opt, dict):
                raise ValueError("[optimization] expected a mapping {method, n_trials, ...}")
            for key, value in opt.items():
                if key == "parameters":
                    continue
                if key in v:
                    raise ValueError(f"[optimization] `{key}` is given both in optimization and at config top level")
                v[key] = value
            params = opt.get("parameters") or {}
            if not isinstance(params, dict):
                raise ValueError("[optimization] parameters: expected a mapping")
            for key, value in params.items():
                if key == "strategy_weights":
                    if not (isinstance(value, list) and len(value) == 2 and all(is_number(x) for x in value)):
                        raise ValueError("[optimization] parameters.strategy_weights: expected [low, high]")
                    c = dict(v.get("constraints") or {})
                    c.setdefault("min_weight", value[0])
                    c.setdefault("max_weight", value[1])
                    v["constraints"] = c
                elif key in ("regime_confidence_threshold", "rebalance_frequency"):
                    if key in v:
                        raise ValueError(f"[optimization] `{key}` is given both in optimization.parameters and at "
                                         "config top level")
                    v[key] = value
                else:
                    raise ValueError(f"[optimization] unknown parameter '{key}'; allowed: strategy_weights, "
                                     "regime_confidence_threshold, rebalance_frequency")
        for key in ("adaptive_weighting", "market_condition_awareness"):
            if key in v:
                flag = v.pop(key)
                if not isinstance(flag, bool):
                    raise ValueError(f"[{key}] expected true or false")
                v["regime_conditional"] = bool(v.get("regime_conditional", False)) or flag
        if "signal_replay" in v:
            if v.pop("signal_replay") is not True:
                raise ValueError("[signal_replay] ensembles are always evaluated by signal replay (true)")
        return v


class EnsembleOptimization(PhaseKind):
    name = "ensemble_optimization"
    aliases = ("ensemble", "ensemble_weights", "signal_replay", "ensemble_construction")
    description = ("Weights over captured strategies, fit on the train split by replaying their captured positions "
                   "(constraints: sum, min/max weight, max correlation; optional regime-conditional weights).")
    Config = Config
    example_config = {"method": "differential_evolution", "n_generations": 5, "population_size": 12,
                      "constraints": {"min_weight": 0.1, "max_weight": 0.6, "max_correlation": 0.95},
                      "rebalance_frequency": 5, "n_bootstrap": 3}
    outputs = (
        Output("optimal_ensemble_weights", "One row per member (and regime): its weight and whether it is included",
               aliases=("ensemble_weights", "weights", "optimal_weights"),
               columns=("regime", "strategy_id", "strategy", PARAMS_COLUMN, "weight", "included", "eligible",
                        "train_sharpe", "method")),
        Output("ensemble_performance_metrics", "The ensemble, equal weights and the best member, train and test",
               aliases=("ensemble_performance", "ensemble_metrics"),
               columns=("portfolio", "split", *METRIC_COLUMNS[:9])),
        Output("weight_stability_analysis", "Weights re-estimated on block-bootstrap resamples of the train split",
               aliases=("weight_stability", "ensemble_weight_stability"),
               columns=("strategy_id", "weight", "bootstrap_mean", "bootstrap_std", "p05", "p95", "inclusion_rate")),
        Output("ensemble_returns", "Daily returns of the ensemble and of equal weights (weights fit on train)",
               aliases=("ensemble_daily_returns",), columns=("date", "split", "ensemble", "equal_weight"),
               time_series=True),
    )
    consumes = (BARS, Consumes(("compressed_signals",)), Consumes(("signal_metadata",)),
                Consumes(("regime_classifications",), required=False))
    metrics = ("sharpe_ratio", "train_sharpe_ratio", "total_return", "max_drawdown", "n_members", "n_included",
               "weight_stability", "n_evaluations", "replay_seconds", "recompute_seconds", "replay_speedup")

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        method = en.canonical_method(cfg.method)
        if method is None:
            env.problem("method", f"unknown ensemble method '{cfg.method}'"
                                  f"{suggest(cfg.method.lower(), [*en.METHODS, *en.METHOD_ALIASES])}; "
                                  f"available: {', '.join(en.METHODS)}")
        objective = OBJECTIVE_ALIASES.get(cfg.objective, cfg.objective)
        if objective not in OBJECTIVES:
            env.problem("objective", f"unknown objective '{cfg.objective}'{suggest(cfg.objective, OBJECTIVES)}; "
                                     f"known: {', '.join(OBJECTIVES)}")
        c = cfg.constraints
        if c.min_weight > c.max_weight:
            env.problem("constraints.min_weight", f"min_weight {c.min_weight} is above max_weight {c.max_weight}")
        if c.min_weight > c.sum_weights:
            env.problem("constraints.min_weight", f"min_weight {c.min_weight} is above sum_weights {c.sum_weights}")
        for key in ("rebalance_frequency", "regime_confidence_threshold"):
            value = getattr(cfg, key)
            if isinstance(value, list) and len(value) != 2:
                env.problem(key, "a search range is [low, high]")
            vals = value if isinstance(value, list) else [value]
            if key == "rebalance_frequency" and any(x < 1 for x in vals):
                env.problem(key, "at least 1 bar")
            if key == "regime_confidence_threshold" and any(not 0 <= x <= 1 for x in vals):
                env.problem(key, "a probability between 0 and 1")
        if (isinstance(cfg.regime_confidence_threshold, list) or cfg.regime_confidence_threshold) \
                and not cfg.regime_conditional:
            env.warn("regime_confidence_threshold", "ignored: set regime_conditional: true (with a "
                                                    "regime_classifications input)")
        if "mode" in cfg.model_fields_set:
            env.warn("mode", "ignored: the positions' mode was fixed when the signals were captured")
        if method in ("equal_weight", "inverse_volatility", "minimum_variance", "maximum_sharpe"):
            for key in ("n_trials", "n_generations", "population_size", "batch_size"):
                if key in cfg.model_fields_set:
                    env.warn(key, f"ignored: method '{method}' has no trial budget")
        return cfg.model_copy(update={"method": method or cfg.method, "objective": objective})

    # ------------------------------------------------------------------ run
    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        bars = ctx.need("bars")
        try:
            cap = from_frame(ctx.need("compressed_signals"), ctx.need("signal_metadata"))
        except ValueError as exc:
            raise PhaseError(f"captured signals: {exc}") from None
        close = close_matrix(bars).reindex(cap.index)
        split = bars.drop_duplicates("date").set_index("date")["split"].reindex(cap.index).to_numpy()
        train_dates = cap.index[split == "train"]
        if len(train_dates) < 30:
            raise PhaseError(f"the captured signals cover {len(train_dates)} train dates; the ensemble is fit on the "
                             "train split (capture with data_split: all)")
        n_train = len(train_dates)
        trading = cfg.trading()
        direction = default_direction(cfg.objective)
        t0 = time.perf_counter()
        members_all = replay(cap, close, trading, kind="close")  # (bars x K), no indicator recomputed
        member_seconds = time.perf_counter() - t0
        members = members_all.to_numpy()[:n_train]
        cap_train = type(cap)(cap.index[:n_train], cap.symbols, cap.positions[:n_train], cap.columns)
        close_train = close.iloc[:n_train]
        ev = en.Evaluator(cap_train, close_train, trading, cfg.objective, direction)
        c = cfg.constraints
        cons = en.Constraints(c.sum_weights, c.min_weight, c.max_weight, c.max_correlation, c.max_members)
        eligible = en.eligible_members(members, cons, trading.periods_per_year)
        why = cons.feasible(int(eligible.sum()))
        if why:
            raise PhaseError(f"field 'config.constraints': {why}")
        kw = dict(n_trials=cfg.n_trials, batch_size=cfg.batch_size, n_generations=cfg.n_generations,
                  population_size=cfg.population_size, seed=cfg.seed)
        try:
            fit = en.fit_weights(cfg.method, ev, members, eligible, cons, **kw)
        except ValueError as exc:
            raise PhaseError(str(exc)) from None
        # ------------------------------------------------ regime-conditional weights
        regimes = ctx.inputs.get("regime_classifications")
        targets = fit.weights[None, :]
        names = ["all"]
        reg_id = conf = None
        if cfg.regime_conditional:
            if regimes is None:
                raise PhaseError("regime_conditional needs a regime_classifications input (from a regime_analysis "
                                 "phase): add it to inputs")
            rc = regimes.assign(date=pd.to_datetime(regimes["date"])).set_index("date").reindex(cap.index)
            reg_id = rc["regime_id"].fillna(-1).astype(int).to_numpy()
            conf = rc["probability"].to_numpy(dtype=np.float64)
            k = int(reg_id.max()) + 1
            if k < 1:
                raise PhaseError("the regime_classifications input labels no date of the captured signals")
            label_of = rc.dropna(subset=["regime"]).drop_duplicates("regime_id").set_index("regime_id")["regime"]
            per = []
            for j in range(k):
                # the position decided at bar t-1 (under the label of t-1) earns the return of bar t;
                # a regime with fewer than 20 training bars keeps the unconditional weights
                idx = np.flatnonzero(np.r_[False, reg_id[:n_train - 1] == j])
                if len(idx) < 20:
                    per.append(fit.weights)
                    continue
                ev.index = idx
                try:
                    per.append(en.fit_weights(cfg.method, ev, members, eligible, cons, **kw).weights)
                finally:
                    ev.index = None
            targets = np.vstack([*per, fit.weights])
            names = [str(label_of.get(j, f"regime_{j}")) for j in range(k)] + ["all"]
        # ------------------------------------------------ rebalance / threshold choice (train)
        rebal_grid = _grid(cfg.rebalance_frequency, integer=True)
        thr_grid = _grid(cfg.regime_confidence_threshold, integer=False) if cfg.regime_conditional else [0.0]
        best_choice, best_score = (rebal_grid[0], thr_grid[0]), -np.inf
        scores = []
        for rb in rebal_grid:
            for th in thr_grid:
                path = en.weight_path(targets, members_all.to_numpy(), regime=reg_id, confidence=conf, threshold=th,
                                      rebalance_every=rb)
                r = en.path_returns(cap, close, trading, path)[:n_train]
                s = _objective(r, cfg.objective, trading.periods_per_year, direction)
                scores.append({"rebalance_frequency": rb, "threshold": th, "train_objective": s})
                if s > best_score:
                    best_choice, best_score = (rb, th), s
        rebalance, threshold = best_choice
        path = en.weight_path(targets, members_all.to_numpy(), regime=reg_id, confidence=conf, threshold=threshold,
                              rebalance_every=rebalance)
        ens = pd.Series(en.path_returns(cap, close, trading, path), index=cap.index)
        # ------------------------------------------------ every weight vector checked
        with np.errstate(invalid="ignore", divide="ignore"):  # a member that never trades has no correlation
            corr = np.nan_to_num(np.corrcoef(members, rowvar=False)) if members.shape[1] > 1 else np.ones((1, 1))
        violated = en.check_weights(targets, eligible, cons, corr)
        if violated:  # pragma: no cover - project() guarantees them
            raise PhaseError(f"internal: weights violate {', '.join(violated)}")
        # ------------------------------------------------ stability (bootstrap refits)
        stab_kw = dict(kw, n_trials=min(cfg.n_trials, cfg.stability_trials),
                       n_generations=min(cfg.n_generations, max(1, cfg.stability_trials // 5)))

        def refit(index):
            ev.index = index
            try:
                return en.fit_weights(cfg.method, ev, members, eligible, cons, **stab_kw).weights
            finally:
                ev.index = None

        boot = en.bootstrap_weights(refit, n_train, cfg.n_bootstrap, cfg.bootstrap_block, cfg.seed) \
            if cfg.n_bootstrap else np.empty((0, len(eligible)))
        # ------------------------------------------------ recompute cost (for the metadata)
        table = ctx.need("signal_metadata").drop_duplicates("strategy_id").set_index("strategy_id").loc[cap.strategy_ids]
        recompute_seconds = float("nan")
        if cfg.measure_recompute:
            t1 = time.perf_counter()
            sets = [(s, json.loads(p)) for s, p in zip(table["strategy"], table[PARAMS_COLUMN])]
            try:
                evaluate_sets(close, sets, replace(trading, mode=str(table["mode"].iloc[0])))
                recompute_seconds = time.perf_counter() - t1
            except ValueError:
                recompute_seconds = float("nan")  # a plugin strategy not loaded here: replay only
        # ------------------------------------------------ outputs
        msharpe = compute_metrics(members_all.iloc[:n_train], periods_per_year=trading.periods_per_year)["sharpe_ratio"]
        rows = []
        for j, name in enumerate(names):
            w = targets[j]
            for k, sid in enumerate(cap.strategy_ids):
                rows.append({"regime": name, "strategy_id": sid, "strategy": table["strategy"].iloc[k],
                             PARAMS_COLUMN: table[PARAMS_COLUMN].iloc[k], "weight": float(w[k]),
                             "included": bool(w[k] > 1e-9), "eligible": bool(eligible[k]),
                             "train_sharpe": float(msharpe.iloc[k]), "method": fit.method})
        weights = pd.DataFrame(rows)
        eq_w = en.project(np.ones((1, len(eligible))), eligible, cons)[0]
        eq = pd.Series(en.path_returns(cap, close, trading, np.tile(eq_w, (len(cap.index), 1))), index=cap.index)
        best_k = int(np.nanargmax(msharpe.to_numpy()))
        best_member = members_all.iloc[:, best_k]
        perf_rows = []
        for label, series in (("ensemble", ens), ("equal_weight", eq), (f"best_member {cap.strategy_ids[best_k]}",
                                                                        best_member)):
            for part, sl in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
                # test returns start after the first test close (its equity is the starting point)
                seg = series.iloc[sl] if part == "train" else series.iloc[n_train + 1:]
                m = compute_metrics(seg.to_frame(label), periods_per_year=trading.periods_per_year).iloc[0]
                perf_rows.append({"portfolio": label, "split": part, **{k: float(m[k]) for k in METRIC_COLUMNS[:9]}})
        perf = pd.DataFrame(perf_rows)
        stab = pd.DataFrame({"strategy_id": cap.strategy_ids, "weight": fit.weights,
                             "bootstrap_mean": boot.mean(axis=0) if len(boot) else np.nan,
                             "bootstrap_std": boot.std(axis=0, ddof=1) if len(boot) > 1 else np.nan,
                             "p05": np.quantile(boot, 0.05, axis=0) if len(boot) else np.nan,
                             "p95": np.quantile(boot, 0.95, axis=0) if len(boot) else np.nan,
                             "inclusion_rate": (boot > 1e-9).mean(axis=0) if len(boot) else np.nan})
        daily = pd.DataFrame({"date": cap.index, "split": split, "ensemble": ens.to_numpy(),
                              "equal_weight": eq.to_numpy()})
        test_row = perf[(perf["portfolio"] == "ensemble") & (perf["split"] == "test")].iloc[0]
        train_row = perf[(perf["portfolio"] == "ensemble") & (perf["split"] == "train")].iloc[0]
        per_member_recompute = recompute_seconds / max(len(cap.strategy_ids), 1)
        per_eval_replay = fit.replay_seconds / max(fit.n_evals, 1)
        # recomputing a candidate ensemble = recomputing all of its members
        recompute_all = recompute_seconds * fit.n_evals
        speedup = recompute_all / fit.replay_seconds if fit.replay_seconds > 0 else float("nan")
        metrics = {"sharpe_ratio": float(test_row["sharpe_ratio"]), "train_sharpe_ratio": float(train_row["sharpe_ratio"]),
                   "total_return": float(test_row["total_return"]), "max_drawdown": float(test_row["max_drawdown"]),
                   "n_members": int(len(eligible)), "n_included": int((fit.weights > 1e-9).sum()),
                   "weight_stability": float(np.nanmean(stab["bootstrap_std"])) if len(boot) > 1 else float("nan"),
                   "n_evaluations": int(fit.n_evals), "replay_seconds": float(fit.replay_seconds),
                   "recompute_seconds": float(recompute_seconds), "replay_speedup": float(speedup)}
        common = {"method": fit.method, "objective": cfg.objective, "members": len(eligible),
                  "eligible": int(eligible.sum()), "included": metrics["n_included"],
                  "fit": f"train split, {n_train} bars", "rebalance_frequency": int(rebalance),
                  "regime_conditional": bool(cfg.regime_conditional)}
        meta = {
            "optimal_ensemble_weights": {**common, "train_objective": fit.score,
                                         "constraints": c.model_dump(), "all_constraints_met": not violated,
                                         "threshold": float(threshold),
                                         "preview": weights[weights["included"]].drop(columns=[PARAMS_COLUMN])},
            "ensemble_performance_metrics": {**common, "test_sharpe": metrics["sharpe_ratio"],
                                             "train_sharpe": metrics["train_sharpe_ratio"],
                                             "equity": charts.sparkline(equity_curve(ens)), "preview": perf},
            "weight_stability_analysis": {**common, "bootstrap_resamples": int(len(boot)),
                                          "block_size": cfg.bootstrap_block, "preview": stab},
            "ensemble_returns": {**common, "rows": len(daily)},
        }
        meta["optimal_ensemble_weights"].update({
            "evaluations_by_replay": int(fit.n_evals), "replay_seconds": round(fit.replay_seconds, 4),
            "replay_ms_per_ensemble": round(per_eval_replay * 1e3, 4),
            "member_replay_seconds": round(member_seconds, 4),
            "recompute_seconds_all_members": round(recompute_seconds, 4),
            "recompute_ms_per_member": round(per_member_recompute * 1e3, 4),
            "recompute_estimate_for_all_evaluations_s": round(recompute_all, 2),
            "replay_speedup_vs_recompute": round(speedup, 1) if np.isfinite(speedup) else "n/a",
            "rebalance_threshold_search": pd.DataFrame(scores) if len(scores) > 1 else None})
        return PhaseResult(outputs={"optimal_ensemble_weights": weights, "ensemble_performance_metrics": perf,
                                    "weight_stability_analysis": stab, "ensemble_returns": daily},
                           metadata=meta, metrics=metrics)

    def insights(self, view: PhaseView) -> list[Insight]:
        out: list[Insight] = []
        w = view.outputs.get("optimal_ensemble_weights")
        if w is not None and len(w) and w["included"].any():
            inc = w[w["included"]]
            top = inc.loc[inc["weight"].idxmax()]
            out.append(Insight("robustness", f"The ensemble holds {len(inc)} of {w['strategy_id'].nunique()} members; "
                                             f"the largest weight is {top['weight']:.0%} ({top['strategy_id']})."))
        perf = view.outputs.get("ensemble_performance_metrics")
        if perf is not None and len(perf) and {"portfolio", "split", "sharpe_ratio"} <= set(perf.columns):
            test = perf[perf["split"] == "test"].set_index("portfolio")["sharpe_ratio"]
            if {"ensemble", "equal_weight"} <= set(test.index):
                a, b = float(test["ensemble"]), float(test["equal_weight"])
                out.append(Insight("decay", f"Out of sample the ensemble's Sharpe ratio is {a:.2f} against {b:.2f} "
                                            f"for equal weights ({a - b:+.2f}).",
                                   severity="warning" if a < b else "info"))
        return out

    def sections(self, view: PhaseView) -> list[dict]:
        out = []
        w = view.outputs.get("optimal_ensemble_weights")
        if w is not None and len(w):
            inc = w[w["included"]].drop(columns=[PARAMS_COLUMN], errors="ignore")
            sec = {"title": f"{view.phase}: ensemble weights", "table": inc, "max_rows": 40}
            if len(inc) and inc["regime"].nunique(dropna=False) <= 1:
                sec["chart_svg"] = charts.bar_chart_svg(pd.Series(inc["weight"].to_numpy(), index=inc["strategy_id"]),
                                                        "Ensemble weights", y_format="{:.0%}")
            out.append(sec)
        perf = view.outputs.get("ensemble_performance_metrics")
        if perf is not None and len(perf):
            out.append({"title": f"{view.phase}: ensemble performance (train and test)", "table": perf})
        daily = view.outputs.get("ensemble_returns")
        if daily is not None and len(daily):
            idx = pd.DatetimeIndex(daily["date"])
            out.append({"title": f"{view.phase}: equity", "chart_svg": charts.line_chart_svg(
                {"ensemble": equity_curve(pd.Series(daily["ensemble"].to_numpy(), index=idx)),
                 "equal weight": equity_curve(pd.Series(daily["equal_weight"].to_numpy(), index=idx))}, "Equity")})
        stab = view.outputs.get("weight_stability_analysis")
        if stab is not None and len(stab):
            out.append({"title": f"{view.phase}: weight stability (bootstrap)", "table": stab, "detail": True,
                        "max_rows": 40})
        return out


def _grid(value, integer: bool) -> list:
    if not isinstance(value, list):
        return [value]
    lo, hi = value
    pts = np.linspace(lo, hi, GRID_POINTS)
    return sorted({int(round(x)) for x in pts}) if integer else [float(x) for x in pts]


def _objective(r: np.ndarray, objective: str, ppy: int, direction: str) -> float:
    from admf_assets.engine.metrics import metrics_arrays

    v = float(metrics_arrays(r, ppy, which=[objective])[objective][0])
    if not np.isfinite(v):
        return -np.inf
    return v if direction == "maximize" else -v


KIND = EnsembleOptimization()

__all__ = ["KIND", "Config", "EnsembleOptimization"]
