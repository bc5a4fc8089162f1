"""parameter_search (optimization): grid or seeded random search on the train split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from admf_assets.engine.backtest import BacktestConfig
from admf_assets.engine.metrics import METRIC_COLUMNS
from admf_assets.engine.search import rank_trials, search
from admf_assets.engine.util import py_scalar
from admf_assets.phases.base import PhaseContext, PhaseError, PhaseResult, close_matrix, md_table

PARAM_JSON = "params"


def space_from_config(parameters: dict) -> dict:
    """The validated YAML form ({'values': [...]} or {low, high, step, log}) -> engine form."""
    out = {}
    for name, v in (parameters or {}).items():
        if isinstance(v, dict) and set(v) == {"values"}:
            out[name] = list(v["values"])
        elif isinstance(v, dict):
            out[name] = {k: x for k, x in v.items() if x is not None}
        else:
            out[name] = v
    return out


def backtest_config(cfg: dict, costs: bool | None = None) -> BacktestConfig:
    """The engine's BacktestConfig from a phase's effective config (``costs`` overrides the
    phase's include_transaction_costs)."""
    costs = bool(cfg.get("include_transaction_costs", False)) if costs is None else costs
    return BacktestConfig(
        cost_bps=float(cfg.get("cost_bps") or 0.0) if costs else 0.0,
        slippage_bps=float(cfg.get("slippage_bps") or 0.0) if costs else 0.0,
        mode=cfg.get("mode") or "long_only",
        sizing=cfg.get("sizing") or "fixed",
        target_vol=float(cfg.get("target_vol") or 0.10),
        vol_lookback=int(cfg.get("vol_lookback") or 20),
        weights=cfg.get("weights"),
        stop_loss=cfg.get("stop_loss"),
        take_profit=cfg.get("take_profit"),
        trailing_stop=cfg.get("trailing_stop"),
        max_holding=cfg.get("max_holding"),
    )


def run(ctx: PhaseContext) -> PhaseResult:
    cfg = ctx.config
    bars = ctx.need("bars")
    split = cfg.get("data_split", "train")
    close = close_matrix(bars, split)
    opt = cfg["optimization"]
    objective, method = opt.get("objective", "sharpe_ratio"), opt.get("method", "grid")
    seed = int(opt.get("seed") or 0)
    base_space = space_from_config(opt.get("parameters"))
    top_n = int(ctx.output_param("top_parameter_sets", "n") or cfg.get("top_n") or 10)
    strategies = cfg.get("strategies") or [{"type": "momentum"}]
    config = backtest_config(cfg)
    histories, notes = [], []
    for i, strat in enumerate(strategies):
        space = {**base_space, **space_from_config(strat.get("parameters"))}
        try:
            res = search(close, strat["type"], space, objective=objective, method=method,
                         n_trials=opt.get("n_trials"), seed=seed + i, config=config,
                         top_n=top_n, keep_returns=False, strict=len(strategies) == 1)
        except ValueError as exc:
            raise PhaseError(f"field 'config.optimization': {exc}") from None
        h = res.history.copy()
        h[PARAM_JSON] = [json.dumps(rec) for rec in h[res.params].to_dict("records")]
        histories.append(h)
        notes.append(f"{strat['type']}: {res.message}")
    hist = pd.concat(histories, ignore_index=True)
    hist["trial_id"] = np.arange(len(hist))
    hist["rank"] = rank_trials(hist["objective"].to_numpy(), hist["trial_id"].to_numpy())
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
    common = {"split": split, "train_period": f"{close.index[0].date()}..{close.index[-1].date()}",
              "symbols": ", ".join(close.columns), "search": "; ".join(notes)}
    meta = {
        "best_parameters": {**common, "strategy": b["strategy"], "parameters": b[PARAM_JSON],
                            "objective": res.objective, "best_value": py_scalar(b["objective"]),
                            "preview": md_table(best.drop(columns=[PARAM_JSON]))},
        "top_parameter_sets": {**common, "rows": len(top), "preview": md_table(top.drop(columns=[PARAM_JSON]), top_n)},
        "optimization_history": {**common, "rows": len(hist), "valid_trials": valid,
                                 "objective_mean": float(np.nanmean(hist["objective"])) if valid else float("nan"),
                                 "preview": md_table(ranked.drop(columns=[PARAM_JSON]))},
    }
    return PhaseResult(
        outputs={"best_parameters": best, "top_parameter_sets": top, "optimization_history": hist},
        metadata=meta, metrics=metrics,
    )


def params_from_row(row: pd.Series) -> tuple[str, dict]:
    """(strategy, parameters) of a row of best_parameters / top_parameter_sets."""
    if PARAM_JSON not in row.index:
        raise PhaseError("input has no 'params' column (is it a parameter_search output?)")
    return str(row["strategy"]), json.loads(row[PARAM_JSON])


def evaluate_sets(close: pd.DataFrame, sets: pd.DataFrame, config: BacktestConfig,
                  labels: list[str] | None = None) -> pd.DataFrame:
    """Daily returns (dates x sets) of parameter-set rows, one vectorized run per strategy."""
    from admf_assets.engine.backtest import run_grid

    parsed = [params_from_row(r) for _, r in sets.iterrows()]
    multi = len({s for s, _ in parsed}) > 1
    labels = labels or [f"#{i + 1} " + (f"{s} " if multi else "") + "(" + ", ".join(str(v) for v in p.values()) + ")"
                        for i, (s, p) in enumerate(parsed)]
    cols: dict[int, pd.Series] = {}
    for strategy in dict.fromkeys(s for s, _ in parsed):
        idx = [i for i, (s, _) in enumerate(parsed) if s == strategy]
        res = run_grid(close, strategy, pd.DataFrame([parsed[i][1] for i in idx]), config)
        for j, i in enumerate(idx):
            cols[i] = res.returns.iloc[:, j]
    out = pd.concat([cols[i] for i in range(len(parsed))], axis=1)
    out.columns = labels
    return out
