"""analysis: in-sample analysis of the searched parameter sets -- drawdowns, correlations between
the top sets, performance by volatility regime, Monte Carlo and VaR of the best set -- and an
assessment of the market itself (``market_condition_analysis``: volatility regime, trend
strength, correlation structure; needs no parameter sets).

Each analyzer fills one output; an output whose analyzer is not configured does not exist.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, StrictInt, StrictStr, model_validator

from admf_assets.engine import analysis as an
from admf_assets.engine import charts
from admf_assets.engine import report as rep
from admf_assets.engine import risk
from admf_assets.engine.metrics import METRIC_COLUMNS, compute_metrics
from admf_assets.engine.paramsets import PARAMS_COLUMN, evaluate_sets, parameter_sets
from admf_assets.phases.common import BARS, DataSplitName, TradingSettings, canonical_list, close_matrix
from admf_assets.phases.kind import ConfigEnv, Consumes, Image, Insight, Output, PhaseContext, PhaseError, PhaseKind, \
    PhaseResult, PhaseView
from admf_assets.suggest import suggest

#: canonical analyzer -> (aliases, the output it fills)
ANALYZERS: dict[str, tuple[tuple[str, ...], str]] = {
    "drawdown_analysis": (("drawdown", "drawdowns"), "drawdowns"),
    "correlation_analysis": (("correlation", "correlations"), "correlations"),
    "regime_performance": (("regime_analysis_performance",), "regime_breakdown"),
    "monte_carlo_simulation": (("monte_carlo",), "risk_assessment"),
    "market_condition_analysis": (("market_conditions", "market_assessment"), "market_conditions"),
}
#: analyzers that read the market only (no parameter-set input needed)
MARKET_ONLY = frozenset({"market_condition_analysis"})
#: seed 001 lists the aspects of the market assessment; all are always computed
MARKET_ASPECTS = ("volatility_regime", "trend_strength", "correlation_structure")
ANALYZER_ALIASES = {alias: canon for canon, (aliases, _) in ANALYZERS.items() for alias in (canon, *aliases)}


class Config(TradingSettings):
    __key_aliases__ = ("market_condition_analysis",)

    analyzers: list[StrictStr] = Field(default_factory=lambda: ["drawdown_analysis", "correlation_analysis"],
                                       min_length=1)
    data_split: DataSplitName = "train"
    n_simulations: StrictInt = Field(default=1000, ge=1)
    seed: StrictInt = 42
    block_size: StrictInt = Field(default=5, ge=1)
    top_drawdowns: StrictInt = Field(default=10, ge=1)
    regime_window: StrictInt = Field(default=20, ge=2)
    confidence_levels: list[float] = Field(default_factory=lambda: [0.95, 0.99], min_length=1)
    market_aspects: list[StrictStr] = Field(default_factory=lambda: list(MARKET_ASPECTS))

    @model_validator(mode="before")
    @classmethod
    def _market_condition_list(cls, v: Any) -> Any:
        """Seed 001: ``market_condition_analysis: [volatility_regime, trend_strength, ...]`` is
        the analyzer ``market_condition_analysis`` with those aspects."""
        if isinstance(v, dict) and "market_condition_analysis" in v:
            v = dict(v)
            aspects = v.pop("market_condition_analysis")
            if aspects is True or aspects is None:
                aspects = list(MARKET_ASPECTS)
            if not isinstance(aspects, list):
                raise ValueError("[market_condition_analysis] expected a list of aspects: "
                                 + ", ".join(MARKET_ASPECTS))
            v["market_aspects"] = aspects
            if "analyzers" not in v:
                v["analyzers"] = ["market_condition_analysis"]
            elif "market_condition_analysis" not in v["analyzers"]:
                v["analyzers"] = [*v["analyzers"], "market_condition_analysis"]
        return v


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
        Output("market_conditions", "One row: market volatility and its regime, trend strength and direction, "
               "correlation structure (of the analysed split)", aliases=("market_assessment",),
               enabled_by=("analyzers", "market_condition_analysis"),
               columns=("volatility", "recent_volatility", "volatility_regime", "trend_strength", "trend_direction",
                        "mean_correlation", "correlation_structure")),
        Output("recommended_strategy_types", "Strategy families ranked by a stated rule of thumb on the market "
               "conditions", aliases=("strategy_recommendations",),
               enabled_by=("analyzers", "market_condition_analysis"), columns=("strategy", "score", "rank", "reason")),
    )
    consumes = (BARS, Consumes(("best_parameters", "top_parameter_sets"),
                               needed=lambda cfg: any(a not in MARKET_ONLY for a in cfg.analyzers)))
    metrics = (*METRIC_COLUMNS, "mean_correlation", "max_correlation", "probability_of_loss", "var_95", "cvar_95",
               "market_volatility", "trend_strength")
    example_config = {"analyzers": list(ANALYZERS)}
    #: the parameter sets' evaluation (run_grid) uses the workers and sizes its chunks from the limit
    resource_keys = ("memory_limit_gb", "max_workers")

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        analyzers = canonical_list(cfg.analyzers, ANALYZER_ALIASES, ANALYZERS, "analyzer", "analyzers", env)
        for i, a in enumerate(cfg.market_aspects):
            if a not in MARKET_ASPECTS:
                env.problem(f"market_aspects[{i}]", f"unknown market aspect '{a}'{suggest(a, MARKET_ASPECTS)}; "
                                                    f"known: {', '.join(MARKET_ASPECTS)}")
        return cfg.model_copy(update={"analyzers": analyzers})

    def default_outputs(self, config: Config) -> list[str]:
        names = super().default_outputs(config)
        if all(a in MARKET_ONLY for a in config.analyzers):  # no parameter sets: no set metrics
            names = [n for n in names if n != "performance_metrics"]
        return names

    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        bars = ctx.need("bars")
        assessment = self._market(ctx, close_matrix(bars, cfg.data_split)) if ctx.wants("market_conditions") \
            or ctx.wants("recommended_strategy_types") else None
        if all(a in MARKET_ONLY for a in cfg.analyzers) and not ctx.wants("performance_metrics"):
            return assessment
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
                                       "best_equity_and_drawdown": Image(charts.equity_drawdown(
                                           {f"best set, {cfg.data_split}": an.equity_curve(best_r)},
                                           an.underwater(best_r), f"Best set, {cfg.data_split} period"),
                                           alt="equity and drawdown of the best set"),
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
        if assessment is not None:
            outputs.update(assessment.outputs)
            meta.update(assessment.metadata)
            metrics.update({k: v for k, v in assessment.metrics.items() if k not in metrics})
        return PhaseResult(outputs=outputs, metadata=meta, metrics=metrics)

    @staticmethod
    def _market(ctx: PhaseContext, close: pd.DataFrame) -> PhaseResult:
        cfg: Config = ctx.config
        try:
            cond = an.market_conditions(close, window=cfg.regime_window)
        except ValueError as exc:
            raise PhaseError(str(exc)) from None
        table = pd.DataFrame([cond])
        rec = an.recommend_strategy_types(cond)
        note = {"split": cfg.data_split, "period": f"{cond['start']}..{cond['end']}",
                "volatility": "annualized std of the equal-weighted mean daily return",
                "trend_strength": "R^2 of a line through the log market equity",
                "aspects": ", ".join(cfg.market_aspects)}
        metrics = {k: float("nan") for k in (*METRIC_COLUMNS, "mean_correlation", "max_correlation",
                                             "probability_of_loss", "var_95", "cvar_95")}
        metrics.update({"market_volatility": cond["volatility"], "trend_strength": cond["trend_strength"],
                        "mean_correlation": cond["mean_correlation"]})
        return PhaseResult(outputs={"market_conditions": table, "recommended_strategy_types": rec},
                           metadata={"market_conditions": {**note, **{k: v for k, v in cond.items()}},
                                     "recommended_strategy_types": {**note, "rule": "momentum: trend strength; "
                                                                    "mean_reversion: 1 - trend strength; breakout: "
                                                                    "rising volatility", "preview": rec}},
                           metrics=metrics)

    def sections(self, view: PhaseView) -> list[dict]:
        out = []
        titles = {"market_conditions": "Market conditions", "recommended_strategy_types": "Recommended strategy types",
                  "performance_metrics": "Performance of the analysed sets", "drawdowns": "Drawdowns of the best set",
                  "regime_breakdown": "Performance by volatility regime",
                  "risk_assessment": "Monte Carlo and value at risk of the best set"}
        split = view.config.data_split
        for name in ("market_conditions", "recommended_strategy_types", "performance_metrics", "drawdowns",
                     "regime_breakdown", "risk_assessment"):
            df = view.outputs.get(name)
            if df is not None and len(df):
                sec = {"title": titles[name], "text": f"On the {split} split, with this phase's trading settings.",
                       "table": df.drop(columns=[PARAMS_COLUMN], errors="ignore"), "detail": True}
                if name == "regime_breakdown" and "sharpe_ratio" in df.columns:
                    sec["chart_svg"] = charts.bar_chart_svg(df.set_index("regime")["sharpe_ratio"],
                                                            "Sharpe ratio by regime", height=220)
                out.append(sec)
        corr = view.outputs.get("correlations")
        if corr is not None and "label" in corr.columns:
            out += rep.correlation_sections(corr.set_index("label"))
        return out

    def insights(self, view: PhaseView) -> list[Insight]:
        out: list[Insight] = []
        corr = view.outputs.get("correlations")
        if corr is not None and "label" in corr.columns and len(corr) > 1:
            summ = an.correlation_summary(corr.set_index("label"))
            mean = float(summ["mean_offdiag"])
            if np.isfinite(mean):
                one_bet = mean >= 0.8
                out.append(Insight("robustness", f"The {summ['n_series']} analysed parameter sets have a mean return "
                                                 f"correlation of {mean:.2f} (lowest pair {summ['min_offdiag']:.2f})"
                                                 + (": they are close to one bet, not a diversified choice."
                                                    if one_bet else "."),
                                   value=mean, key="mean_correlation", severity="warning" if one_bet else "info"))
        rb = view.outputs.get("regime_breakdown")
        if rb is not None and len(rb) > 1 and "sharpe_ratio" in rb.columns:
            parts = [f"{r.sharpe_ratio:.2f} in {r.regime} bars ({r.fraction:.0%} of the time)"
                     for r in rb.itertuples()]
            sr = rb["sharpe_ratio"].to_numpy(dtype=float)
            flips = bool(np.nanmax(sr) > 0 > np.nanmin(sr))
            out.append(Insight("regimes", "In-sample Sharpe ratio of the best set: " + "; ".join(parts)
                                          + (": it earns in one regime and loses in another." if flips else "."),
                               severity="warning" if flips else "info"))
        ra = view.outputs.get("risk_assessment")
        if ra is not None and len(ra):
            mc = ra[(ra["source"] == "monte_carlo") & (ra["metric"] == "total_return")]
            if len(mc) and np.isfinite(mc["prob_loss"].iloc[0]):
                p = float(mc["prob_loss"].iloc[0])
                out.append(Insight("risk", f"Block-bootstrap Monte Carlo of the best set's in-sample returns: "
                                           f"{p:.0%} of the simulated paths lose money; 5th percentile of the total "
                                           f"return {mc['p05'].iloc[0]:.2%}.", value=p, key="probability_of_loss",
                                   severity="warning" if p > 0.2 else "info"))
        dd = view.outputs.get("drawdowns")
        if dd is not None and len(dd):
            worst = dd.iloc[0]
            out.append(Insight("risk", f"Worst in-sample drawdown of the best set: {worst['depth']:.2%} "
                                       f"(peak {pd.Timestamp(worst['peak_date']).date()}, "
                                       f"{int(worst['duration_bars'])} bars under water)."))
        return out


KIND = Analysis()

__all__ = ["KIND", "ANALYZERS", "Analysis", "Config"]
