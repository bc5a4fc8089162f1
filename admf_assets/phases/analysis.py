"""analysis: in-sample analysis of the searched parameter sets -- drawdowns, correlations between
the top sets, performance by volatility regime, Monte Carlo and VaR of the best set.

Each analyzer fills one output; an output whose analyzer is not configured does not exist.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import Field, StrictInt, StrictStr

from admf_assets.engine import analysis as an
from admf_assets.engine import report as rep
from admf_assets.engine import risk
from admf_assets.engine.charts import sparkline
from admf_assets.engine.metrics import METRIC_COLUMNS, compute_metrics
from admf_assets.engine.paramsets import PARAMS_COLUMN, evaluate_sets, parameter_sets
from admf_assets.phases.common import BARS, DataSplitName, TradingSettings, close_matrix
from admf_assets.phases.kind import ConfigEnv, Consumes, Output, PhaseContext, PhaseError, PhaseKind, PhaseResult, \
    PhaseView
from admf_assets.suggest import closest

#: canonical analyzer -> (aliases, the output it fills)
ANALYZERS: dict[str, tuple[tuple[str, ...], str]] = {
    "drawdown_analysis": (("drawdown", "drawdowns"), "drawdowns"),
    "correlation_analysis": (("correlation", "correlations"), "correlations"),
    "regime_performance": (("regime_analysis_performance",), "regime_breakdown"),
    "monte_carlo_simulation": (("monte_carlo",), "risk_assessment"),
}
ANALYZER_ALIASES = {alias: canon for canon, (aliases, _) in ANALYZERS.items() for alias in (canon, *aliases)}


class Config(TradingSettings):
    analyzers: list[StrictStr] = Field(default_factory=lambda: ["drawdown_analysis", "correlation_analysis"],
                                       min_length=1)
    data_split: DataSplitName = "train"
    n_simulations: StrictInt = Field(default=1000, ge=1)
    seed: StrictInt = 42
    block_size: StrictInt = Field(default=5, ge=1)
    top_drawdowns: StrictInt = Field(default=10, ge=1)
    regime_window: StrictInt = Field(default=20, ge=2)
    confidence_levels: list[float] = Field(default_factory=lambda: [0.95, 0.99], min_length=1)


class Analysis(PhaseKind):
    name = "analysis"
    aliases = ("performance_analysis",)
    description = ("Analyse the performance of the selected parameter sets "
                   "(drawdowns, correlation, regime performance, Monte Carlo).")
    Config = Config
    outputs = (
        Output("performance_metrics", "Summary metrics table", aliases=("metrics_summary",),
               columns=("label", "strategy", PARAMS_COLUMN, *METRIC_COLUMNS)),
        Output("drawdowns", "Drawdown periods and depths", aliases=("drawdown_analysis",),
               enabled_by=("analyzers", "drawdown_analysis"), columns=("depth",)),
        Output("correlations", "Return correlations between parameter sets / symbols",
               aliases=("correlation_analysis", "correlation_matrix"),
               enabled_by=("analyzers", "correlation_analysis"), columns=("label",)),
        Output("regime_breakdown", "Performance by market regime", aliases=("regime_performance",),
               enabled_by=("analyzers", "regime_performance"), columns=("regime",)),
        Output("risk_assessment", "Monte Carlo risk assessment", aliases=("monte_carlo", "risk_metrics"),
               enabled_by=("analyzers", "monte_carlo_simulation"), columns=("metric", "source")),
    )
    consumes = (BARS, Consumes(("best_parameters", "top_parameter_sets")))
    metrics = (*METRIC_COLUMNS, "mean_correlation", "max_correlation", "probability_of_loss", "var_95", "cvar_95")
    example_config = {"analyzers": list(ANALYZERS)}
    #: the parameter sets' evaluation (run_grid) uses the workers and sizes its chunks from the limit
    resource_keys = ("memory_limit_gb", "max_workers")

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        analyzers: list[str] = []
        for i, a in enumerate(cfg.analyzers):
            canon = ANALYZER_ALIASES.get(a.strip().lower())
            if canon is None:
                best = closest(a, ANALYZER_ALIASES)
                hint = f" (did you mean '{ANALYZER_ALIASES[best]}'?)" if best is not None else ""
                env.problem(f"analyzers[{i}]", f"unknown analyzer '{a}'{hint}; available: {', '.join(ANALYZERS)}")
            elif canon not in analyzers:
                analyzers.append(canon)
        return cfg.model_copy(update={"analyzers": analyzers})

    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        bars = ctx.need("bars")
        sets = ctx.inputs.get("top_parameter_sets")
        best = ctx.inputs.get("best_parameters")
        if sets is None or sets.empty:
            sets = best
        if sets is None or sets.empty:
            raise PhaseError("needs best_parameters or top_parameter_sets from a parameter_search phase")
        if best is not None and not best.empty and sets is not best:
            sets = pd.concat([best[sets.columns.intersection(best.columns)], sets], ignore_index=True)
            sets = sets.drop_duplicates(subset=["strategy", PARAMS_COLUMN]).reset_index(drop=True)
        close = close_matrix(bars, cfg.data_split)
        trading = cfg.trading()
        try:
            rets = evaluate_sets(close, parameter_sets(sets), trading, workers=ctx.workers,
                                 memory_limit_bytes=ctx.memory_limit_bytes)
        except ValueError as exc:
            raise PhaseError(str(exc)) from None
        best_r = rets.iloc[:, 0].rename("best")
        outputs, meta = {}, {}
        perf = compute_metrics(rets, periods_per_year=trading.periods_per_year)
        perf.insert(0, "label", list(rets.columns))
        perf.insert(1, "strategy", sets["strategy"].to_numpy())
        perf.insert(2, PARAMS_COLUMN, sets[PARAMS_COLUMN].to_numpy())
        perf = perf.reset_index(drop=True)
        outputs["performance_metrics"] = perf
        meta["performance_metrics"] = {"split": cfg.data_split, "sets": len(perf),
                                       "best_equity_curve": sparkline(an.equity_curve(best_r)),
                                       "preview": perf.drop(columns=PARAMS_COLUMN).head(10)}
        metrics: dict[str, Any] = {k: float(perf.iloc[0][k]) for k in METRIC_COLUMNS}  # of the best set
        if ctx.wants("drawdowns"):
            dd = an.drawdown_analysis(best_r, top_n=cfg.top_drawdowns).reset_index()
            outputs["drawdowns"] = dd
            meta["drawdowns"] = {"episodes": len(dd), "worst": float(dd["depth"].min()) if len(dd) else 0.0,
                                 "preview": dd.head(10)}
        if ctx.wants("correlations"):
            corr = an.correlation_analysis(rets)
            summary = an.correlation_summary(corr) if corr.shape[0] > 1 else {}
            mean_corr = float(corr.attrs.get("mean_offdiag", float("nan")))
            table = corr.reset_index(names="label")
            outputs["correlations"] = table
            meta["correlations"] = {"mean_offdiagonal": mean_corr, "preview": table.head(10)}
            meta["correlations"].update({k: str(v) for k, v in summary.items() if k not in ("mean",)})
            metrics["mean_correlation"] = mean_corr
            if summary:
                metrics["max_correlation"] = float(summary["max_offdiag"])
        if ctx.wants("regime_breakdown"):
            market = close.pct_change().mean(axis=1).fillna(0.0)
            regimes = an.volatility_regimes(market, window=cfg.regime_window)
            rb = an.regime_performance(best_r, regimes).reset_index(names="regime")
            outputs["regime_breakdown"] = rb
            meta["regime_breakdown"] = {"classifier": "causal rolling volatility vs its expanding median",
                                        "preview": rb.head(10)}
        if ctx.wants("risk_assessment"):
            mc = an.monte_carlo(best_r, n_sims=cfg.n_simulations, seed=cfg.seed, block_size=cfg.block_size)
            mc = mc.rename_axis("metric").reset_index().assign(source="monte_carlo")
            var = risk.var_cvar(best_r, levels=tuple(sorted({0.95, *cfg.confidence_levels})))
            metrics["probability_of_loss"] = float(mc.set_index("metric").loc["total_return", "prob_loss"])
            v95 = var[var["level"] == 0.95].iloc[0]
            metrics["var_95"], metrics["cvar_95"] = float(v95["var"]), float(v95["cvar"])
            var = var.assign(source="var_cvar", metric="daily_loss")
            ra = pd.concat([mc, var], ignore_index=True)
            outputs["risk_assessment"] = ra
            meta["risk_assessment"] = {"simulations": cfg.n_simulations, "preview": ra.head(10)}
        return PhaseResult(outputs=outputs, metadata=meta, metrics=metrics)

    def sections(self, view: PhaseView) -> list[dict]:
        out = []
        for name in ("performance_metrics", "drawdowns", "regime_breakdown", "risk_assessment"):
            df = view.outputs.get(name)
            if df is not None and len(df):
                out.append({"title": f"{view.phase}: {name}", "table": df.drop(columns=[PARAMS_COLUMN],
                                                                                 errors="ignore"),
                            "detail": True})
        corr = view.outputs.get("correlations")
        if corr is not None and "label" in corr.columns:
            out += rep.correlation_sections(corr.set_index("label"))
        return out


KIND = Analysis()

__all__ = ["KIND", "ANALYZERS", "Analysis", "Config"]
