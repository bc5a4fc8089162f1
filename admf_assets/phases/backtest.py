"""backtest: one parameter set (the best from a search, or fixed in the config) on a data split,
with transaction costs.  Indicators are computed over all history up to each bar (so the test
period starts warmed up) but every reported number comes from the split's own returns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from admf_assets.engine.analysis import equity_curve, underwater
from admf_assets.engine.backtest import run_backtest
from admf_assets.engine.charts import sparkline
from admf_assets.engine.metrics import compute_metrics
from admf_assets.phases.base import PhaseContext, PhaseError, PhaseResult, close_matrix, md_table
from admf_assets.phases.parameter_search import backtest_config, params_from_row


def split_mask(bars: pd.DataFrame, dates: pd.DatetimeIndex, split: str) -> np.ndarray:
    """Bars whose return lies entirely inside the split: for 'test', dates after the first test
    date (the first test close is the starting equity); for 'train', up to the last train date."""
    test = pd.DatetimeIndex(bars.loc[bars["split"] == "test", "date"].unique())
    first_test = test.min() if len(test) else None
    if split == "test":
        if first_test is None:
            raise PhaseError("the data split has no test dates (field 'data.split')")
        return np.asarray(dates > first_test)
    if split == "train":
        return np.asarray(dates < first_test) if first_test is not None else np.ones(len(dates), bool)
    return np.ones(len(dates), bool)


def run(ctx: PhaseContext) -> PhaseResult:
    cfg = ctx.config
    bars = ctx.need("bars")
    if cfg.get("parameters"):
        strategy, params = cfg.get("strategy") or "momentum", dict(cfg["parameters"])
    else:
        best = ctx.need("best_parameters")
        if best.empty:
            raise PhaseError("input best_parameters is empty")
        strategy, params = params_from_row(best.iloc[0])
    costs = bool(cfg.get("include_transaction_costs", True))
    config = backtest_config(cfg)
    close = close_matrix(bars)  # all history: indicators warm up before the split
    try:
        res = run_backtest(close, strategy, params, config)
    except ValueError as exc:
        raise PhaseError(f"field 'config': {exc}") from None
    split = cfg.get("data_split", "test")
    mask = split_mask(bars, close.index, split)
    r = res.returns.iloc[:, 0][mask]
    gross = run_backtest(close, strategy, params, backtest_config(cfg, costs=False)).returns.iloc[:, 0][mask]
    pos = res.positions[mask] if res.positions is not None else None
    m = compute_metrics(r.to_frame("strategy"), periods_per_year=config.periods_per_year, positions=pos).iloc[0]
    metrics = {k: (v.item() if hasattr(v, "item") else v) for k, v in m.items()}
    metrics["n_days"] = int(mask.sum())
    metrics["total_costs"] = float((gross - r).sum())  # fraction of equity paid, summed over bars
    period = f"{r.index[0].date()}..{r.index[-1].date()}"
    results = pd.DataFrame([{
        "strategy": strategy, "params": json.dumps(params), "split": split,
        "start": r.index[0], "end": r.index[-1], "n_bars": int(mask.sum()),
        "cost_bps": config.cost_bps, "slippage_bps": config.slippage_bps,
        "total_costs": metrics["total_costs"], **m.to_dict(),
    }])
    exposure = np.abs(pos.astype(float)).mean(axis=tuple(range(1, pos.ndim))) if pos is not None else np.nan
    report = pd.DataFrame({
        "date": r.index, "return": r.to_numpy(), "equity": equity_curve(r).to_numpy(),
        "drawdown": underwater(r).to_numpy(), "exposure": exposure, "split": split,
    })
    common = {"split": split, "period": period, "strategy": strategy, "parameters": json.dumps(params),
              "costs": f"{config.cost_bps} bps + {config.slippage_bps} bps slippage" if costs else "none"}
    meta = {
        "validation_results": {**common, "equity_curve": sparkline(report["equity"]), "preview": md_table(results.T.reset_index().rename(
            columns={"index": "field", 0: "value"}).astype(str), 30)},
        "performance_report": {**common, "rows": len(report),
                               "equity_curve": sparkline(report["equity"]),
                               "drawdown_curve": sparkline(report["drawdown"]),
                               "preview": md_table(report)},
    }
    return PhaseResult(outputs={"validation_results": results, "performance_report": report},
                       metadata=meta, metrics=metrics)
