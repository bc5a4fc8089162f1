"""analysis: in-sample analysis of the searched parameter sets (drawdowns, correlations between
the top sets, performance by volatility regime, Monte Carlo and VaR of the best set)."""

from __future__ import annotations

import pandas as pd

from admf_assets.engine import analysis as an
from admf_assets.engine import risk
from admf_assets.engine.charts import sparkline
from admf_assets.engine.metrics import METRIC_COLUMNS, compute_metrics
from admf_assets.phases.base import PhaseContext, PhaseError, PhaseResult, close_matrix, md_table
from admf_assets.phases.parameter_search import backtest_config, evaluate_sets


def run(ctx: PhaseContext) -> PhaseResult:
    cfg = ctx.config
    bars = ctx.need("bars")
    sets = ctx.inputs.get("top_parameter_sets")
    best = ctx.inputs.get("best_parameters")
    if sets is None or sets.empty:
        sets = best
    if sets is None or sets.empty:
        raise PhaseError("needs best_parameters or top_parameter_sets from a parameter_search phase")
    if best is not None and not best.empty and sets is not best:
        sets = pd.concat([best[sets.columns.intersection(best.columns)], sets], ignore_index=True)
        sets = sets.drop_duplicates(subset=["strategy", "params"]).reset_index(drop=True)
    split = cfg.get("data_split", "train")
    close = close_matrix(bars, split)
    config = backtest_config(cfg)
    rets = evaluate_sets(close, sets, config)
    best_r = rets.iloc[:, 0].rename("best")
    wanted = {o.canonical for o in ctx.node.outputs}
    outputs, meta = {}, {}
    perf = compute_metrics(rets, periods_per_year=config.periods_per_year)
    perf.insert(0, "label", list(rets.columns))
    perf.insert(1, "strategy", sets["strategy"].to_numpy())
    perf.insert(2, "params", sets["params"].to_numpy())
    perf = perf.reset_index(drop=True)
    outputs["performance_metrics"] = perf
    meta["performance_metrics"] = {"split": split, "sets": len(perf),
                                   "best_equity_curve": sparkline(an.equity_curve(best_r)),
                                   "preview": md_table(perf.drop(columns="params"))}
    metrics = {k: float(perf.iloc[0][k]) for k in METRIC_COLUMNS}  # of the best set
    if "drawdowns" in wanted:
        dd = an.drawdown_analysis(best_r, top_n=int(cfg.get("top_drawdowns", 10))).reset_index()
        outputs["drawdowns"] = dd
        meta["drawdowns"] = {"episodes": len(dd), "worst": float(dd["depth"].min()) if len(dd) else 0.0,
                             "preview": md_table(dd)}
    if "correlations" in wanted:
        corr = an.correlation_analysis(rets)
        summary = an.correlation_summary(corr) if corr.shape[0] > 1 else {}
        mean_corr = float(corr.attrs.get("mean_offdiag", float("nan")))
        outputs["correlations"] = corr.reset_index(names="label")
        meta["correlations"] = {"mean_offdiagonal": mean_corr, "preview": md_table(corr.reset_index(names="label"))}
        meta["correlations"].update({k: str(v) for k, v in summary.items() if k not in ("mean",)})
        metrics["mean_correlation"] = mean_corr
        if summary:
            metrics["max_correlation"] = float(summary["max_offdiag"])
    if "regime_breakdown" in wanted:
        market = close.pct_change().mean(axis=1).fillna(0.0)
        regimes = an.volatility_regimes(market, window=int(cfg.get("regime_window", 20)))
        rb = an.regime_performance(best_r, regimes).reset_index(names="regime")
        outputs["regime_breakdown"] = rb
        meta["regime_breakdown"] = {"classifier": "causal rolling volatility vs its expanding median",
                                    "preview": md_table(rb)}
    if "risk_assessment" in wanted:
        mc = an.monte_carlo(best_r, n_sims=int(cfg.get("n_simulations", 1000)), seed=int(cfg.get("seed", 42)),
                            block_size=int(cfg.get("block_size", 5)))
        mc = mc.rename_axis("metric").reset_index().assign(source="monte_carlo")
        var = risk.var_cvar(best_r, levels=tuple(sorted({0.95, *cfg.get("confidence_levels", (0.95, 0.99))})))
        metrics["probability_of_loss"] = float(mc.set_index("metric").loc["total_return", "prob_loss"])
        v95 = var[var["level"] == 0.95].iloc[0]
        metrics["var_95"], metrics["cvar_95"] = float(v95["var"]), float(v95["cvar"])
        var = var.assign(source="var_cvar", metric="daily_loss")
        ra = pd.concat([mc, var], ignore_index=True)
        outputs["risk_assessment"] = ra
        meta["risk_assessment"] = {"simulations": int(cfg.get("n_simulations", 1000)), "preview": md_table(ra)}
    return PhaseResult(outputs=outputs, metadata=meta, metrics=metrics)
