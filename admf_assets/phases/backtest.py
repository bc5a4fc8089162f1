"""backtest: one parameter set (the best from a search, or fixed in the config) -- or a deployed
configuration: an ensemble's ``optimal_ensemble_weights``, another backtest's
``production_configuration`` -- on a data split, with transaction costs.  Indicators are
computed over all history up to each bar (so the test period starts warmed up) but every
reported number comes from the split's own returns.

An ensemble is backtested as it is deployed (``engine.ledger``): its members' positions netted
per symbol with the unconditional weights, rebalanced daily -- what a paper_trading ledger of
the same weights earns.  ``generate_deployment_config`` (or listing ``production_configuration``)
writes that configuration, at the risk-managed exposure, as a table a paper_trading phase deploys.

With an input ``<risk phase>.risk_recommendations`` (``dynamic_risk_management``, on by default
when the input is connected) the strategy runs at the recommended exposure: the symbol weights
are scaled by it, the rest of the capital stays in cash, so every return and cost scales by it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, StrictBool, StrictStr, field_validator

from admf_assets.engine import charts, ledger
from admf_assets.engine import report as rep
from admf_assets.engine import riskbudget
from admf_assets.engine.analysis import equity_curve, underwater
from admf_assets.engine.backtest import run_backtest
from admf_assets.engine.insights import relative_change
from admf_assets.engine.metrics import METRIC_COLUMNS, compute_metrics
from admf_assets.engine.paramsets import (PARAMS_COLUMN, evaluate_sets, parameter_set, params_json,
                                         trading_overrides, with_trading)
from admf_assets.phases.common import (BARS, DataSplitName, TradingSettings, check_fixed_parameters,
                                       check_has_valid_combination, check_param_values, check_strategy_params,
                                       close_matrix, known_strategy, split_mask, trading_config)
from admf_assets.phases.deployment import deployment_from
from admf_assets.phases.kind import ConfigEnv, Consumes, Image, Insight, Output, PhaseContext, PhaseError, PhaseKind, \
    PhaseResult, PhaseView

DEFAULT_STRATEGY = "momentum"
#: what the backtest can take its configuration from (one of them)
TESTED_INPUTS = ("best_parameters", "optimal_ensemble_weights", "production_configuration")
#: seed 001's strategy-construction switches this backtest has no model for -> why
UNMODELLED = {
    "include_market_impact": "there is no market-impact model; costs are cost_bps + slippage_bps per unit "
                             "traded (raise slippage_bps to stress them)",
    "realistic_execution_delays": "positions decided at a close are filled at that close and earn from the next "
                                  "bar (the engine's one-bar lag); there is no further delay model",
    "regime_aware_position_sizing": "positions are sized by `sizing` (fixed or vol_target); regime-dependent "
                                    "weights come from an ensemble_optimization with regime_conditional: true",
}


class Config(TradingSettings):
    data_split: DataSplitName = "test"
    include_transaction_costs: StrictBool = True
    initial_capital: float = Field(default=100_000.0, gt=0)
    generate_detailed_report: StrictBool = True
    parameters: dict[StrictStr, Any] | None = None
    strategy: StrictStr | None = None
    #: apply the exposure scale of an input risk_recommendations (None: when one is connected)
    dynamic_risk_management: StrictBool | None = None
    #: write the tested configuration as ``production_configuration`` (a paper_trading input)
    generate_deployment_config: StrictBool = False
    include_market_impact: StrictBool | None = None  #: seed 001: no model (a warning)
    realistic_execution_delays: StrictBool | None = None  #: seed 001: no model (a warning)
    regime_aware_position_sizing: StrictBool | None = None  #: seed 001: no model (a warning)

    @field_validator("parameters")
    @classmethod
    def _scalars(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_fixed_parameters(v)


class Backtest(PhaseKind):
    name = "backtest"
    aliases = ("out_of_sample_backtest",)
    description = ("Backtest one parameter set on a data split (the reserved test period by default) "
                   "with transaction costs.")
    Config = Config
    example_config = {"parameters": {"fast_period": 10, "slow_period": 40}}
    outputs = (
        Output("validation_results", "Out-of-sample metrics",
               aliases=("backtest_results", "performance", "metrics", "final_strategy_performance"),
               columns=("strategy", PARAMS_COLUMN, "split", "start", "end", "n_bars", "total_costs",
                        *METRIC_COLUMNS)),
        Output("performance_report", "Daily returns / equity curve of the backtest",
               aliases=("final_performance_report", "equity_curve", "detailed_report", "returns"),
               columns=("date", "return", "equity", "drawdown", "exposure", "split", "value"), time_series=True),
        Output("production_configuration", "The tested configuration as deployed: members, weights, behaviour "
               "settings at the risk-managed exposure, costs, and its config_id (a paper_trading input)",
               aliases=("deployment_config", "deployment_configuration"), default=False,
               columns=("config_id", "label", "deployment", "member", "strategy", PARAMS_COLUMN, "weight",
                        "exposure_scale", "cost_bps", "slippage_bps", "tested_split", "tested_sharpe_ratio",
                        "tested_max_drawdown", "expected_daily_mean", "expected_daily_std")),
    )
    unproduced_outputs = {
        "implementation_guide": "the production_configuration table and the HTML report describe the deployment; "
                                "deploy it with a paper_trading phase (inputs: [<this phase>.production_configuration])",
        "monitoring_recommendations": "a paper_trading phase deploying production_configuration monitors it: its "
                                      "tracking and volatility checks test the ledger against this backtest's returns",
    }
    consumes = (BARS, Consumes(TESTED_INPUTS, required=True, unless_config="parameters", exclusive=True),
                Consumes(("risk_recommendations",), required=False, required_if="dynamic_risk_management"))
    metrics = (*METRIC_COLUMNS, "total_costs", "n_days")

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        if cfg.strategy is not None or cfg.parameters:
            spec = known_strategy(cfg.strategy or DEFAULT_STRATEGY, "strategy", env)
            check_strategy_params([spec], cfg.parameters or {}, "parameters", env)
            fixed = {k: v for k, v in (cfg.parameters or {}).items() if spec is not None and spec.canonical_param(k)}
            if spec is not None and not env.problems and check_param_values([spec], fixed, "parameters", env):
                check_has_valid_combination(spec, {k: [v] for k, v in fixed.items()}, "parameters", env)
        for key, why in UNMODELLED.items():
            if getattr(cfg, key) is not None:
                env.warn(key, f"ignored: {why}")
        return cfg.model_copy(update=dict.fromkeys(UNMODELLED))

    def default_outputs(self, config: Any) -> list[str]:
        out = super().default_outputs(config)
        if getattr(config, "generate_deployment_config", False):
            out.append("production_configuration")
        return out

    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        bars = ctx.need("bars")
        close = close_matrix(bars)  # all history: indicators warm up before the split
        mask = split_mask(bars, close.index, cfg.data_split)
        scale, scale_meta = self._exposure(ctx, cfg, close.index[mask])
        deployed, notes = self._deployed(ctx)
        searched: dict = {}  # trading settings the search chose for the set (a searched stop loss, ...)
        if deployed is not None:  # an ensemble / a production configuration, traded as deployed
            deployed = _at_exposure(deployed, cfg.trading(), list(close.columns), scale)
            config = deployed.config(cfg.trading())
            strategy, params_text = deployed.label or "deployment", _members_json(deployed)
            r_all, held = ledger.backtest_deployment(close, deployed, cfg.trading())
            r = r_all[mask]
            gross = ledger.backtest_deployment(close, deployed, cfg.trading(costs=False))[0][mask]
            pos = held.T[mask][:, :, None]
            for note in notes:
                ctx.log.info(note)
        else:
            if cfg.parameters:
                strategy, params = cfg.strategy or DEFAULT_STRATEGY, dict(cfg.parameters)
            else:
                best = ctx.need("best_parameters")
                if best.empty:
                    raise PhaseError("input best_parameters is empty")
                try:
                    strategy, params = parameter_set(best.iloc[0])
                    searched = trading_overrides(best.iloc[0])
                except ValueError as exc:
                    raise PhaseError(f"input best_parameters: {exc}") from None
            params_text = params_json(params)
            config = with_trading(cfg.trading(), searched)
            try:
                res = run_backtest(close, strategy, params, riskbudget.with_exposure(config, close.columns, scale))
            except ValueError as exc:
                raise PhaseError(f"field 'config': {exc}") from None
            r = res.returns.iloc[:, 0][mask]
            gross_cfg = riskbudget.with_exposure(with_trading(cfg.trading(costs=False), searched), close.columns,
                                                 scale)
            gross = run_backtest(close, strategy, params, gross_cfg).returns.iloc[:, 0][mask]
            pos = res.positions[mask] if res.positions is not None else None
        m = compute_metrics(r.to_frame("strategy"), periods_per_year=config.periods_per_year, positions=pos).iloc[0]
        metrics = {k: (v.item() if hasattr(v, "item") else v) for k, v in m.items()}
        metrics["n_days"] = int(mask.sum())
        metrics["total_costs"] = float((gross - r).sum())  # fraction of equity paid, summed over bars
        start = _period_start(bars, cfg.data_split)
        period = (f"{start.date()} close (equity 1.0) .. {r.index[-1].date()}, {len(r)} daily returns from "
                  f"{r.index[0].date()}" if start is not None else f"{r.index[0].date()}..{r.index[-1].date()}")
        results = pd.DataFrame([{
            "strategy": strategy, PARAMS_COLUMN: params_text, "split": cfg.data_split,
            "start": r.index[0], "end": r.index[-1], "n_bars": int(mask.sum()),
            "cost_bps": config.cost_bps, "slippage_bps": config.slippage_bps, "exposure_scale": scale,
            "total_costs": metrics["total_costs"], **m.to_dict(),
            "initial_capital": cfg.initial_capital,
            "final_value": cfg.initial_capital * (1.0 + float(m["total_return"])),
        }])
        exposure = scale * np.abs(pos.astype(float)).mean(axis=tuple(range(1, pos.ndim))) if pos is not None \
            else np.nan
        report = pd.DataFrame({
            "date": r.index, "return": r.to_numpy(), "equity": equity_curve(r).to_numpy(),
            "drawdown": underwater(r).to_numpy(), "exposure": exposure, "split": cfg.data_split,
        })
        report["value"] = cfg.initial_capital * report["equity"]  # account value from initial_capital
        costs = cfg.include_transaction_costs
        common = {"split": cfg.data_split, "period": period, "strategy": strategy,
                  "parameters": params_text, **({"notes": "; ".join(notes)} if notes else {}),
                  **({"searched_trading": params_json(searched)} if searched else {}),
                  "costs": f"{config.cost_bps} bps + {config.slippage_bps} bps slippage" if costs else "none",
                  **scale_meta}
        summary = results.T.reset_index().rename(columns={"index": "field", 0: "value"}).astype(str)
        eq = pd.Series(report["equity"].to_numpy(), index=pd.DatetimeIndex(report["date"]))
        dd = pd.Series(report["drawdown"].to_numpy(), index=eq.index)
        if start is not None and start < eq.index[0]:
            eq = pd.concat([pd.Series([1.0], index=pd.DatetimeIndex([start])), eq])
            dd = pd.concat([pd.Series([0.0], index=pd.DatetimeIndex([start])), dd])
        chart = Image(charts.equity_drawdown({f"{cfg.data_split} ({strategy})": eq}, dd,
                                             f"Equity and drawdown, {cfg.data_split} period"),
                      alt="equity and drawdown")
        meta = {
            "validation_results": {**common, "equity_and_drawdown": chart, "preview": summary},
            "performance_report": {**common, "rows": len(report), "equity_and_drawdown": chart,
                                   "preview": report.head(10)},
        }
        outputs = {"validation_results": results, "performance_report": report}
        if ctx.wants("production_configuration"):
            if deployed is None:  # one parameter set, with the trading settings it was tested with
                behaviour = {k: v for k, v in config.__dict__.items() if k in ledger.BEHAVIOUR_KEYS}
                deployed = _at_exposure(ledger.Deployment((ledger.Member(strategy, params),),
                                                          _plain(behaviour), strategy),
                                        cfg.trading(), list(close.columns), scale)
            prod = _production(deployed, results.iloc[0], r, scale)
            outputs["production_configuration"] = prod
            meta["production_configuration"] = {
                **common, "config_id": deployed.config_id, "deployed": deployed.describe(),
                "deploy_with": f"a paper_trading phase with inputs: [{ctx.phase}.production_configuration]",
                "preview": prod.drop(columns=["deployment"])}
        return PhaseResult(outputs=outputs, metadata=meta, metrics=metrics)

    @staticmethod
    def _deployed(ctx: PhaseContext) -> tuple[ledger.Deployment | None, list[str]]:
        """The deployment an ensemble's weights or a production configuration describe (None:
        a parameter set, from best_parameters or the config)."""
        found = [u for u in ctx.upstream if u.consumed and u.canonical in TESTED_INPUTS[1:]]
        if not found or ctx.config.parameters:
            return None, []
        src = found[0]
        return deployment_from(src.canonical, src.value, dict(src.config), src.ref)

    @staticmethod
    def _exposure(ctx: PhaseContext, cfg: Config, dates: pd.DatetimeIndex) -> tuple[float, dict[str, Any]]:
        """The exposure scale to run at (1.0 without risk recommendations) and its metadata."""
        recs = ctx.inputs.get("risk_recommendations")
        if recs is None:
            return 1.0, {}
        if cfg.dynamic_risk_management is False:
            ctx.log.info("risk_recommendations connected but dynamic_risk_management is false: exposure 1.0")
            return 1.0, {"exposure_scale": 1.0, "risk_management": "off (dynamic_risk_management: false)"}
        try:
            scale, start, end = riskbudget.exposure_scale(recs)
        except ValueError as exc:
            raise PhaseError(f"input {exc}") from None
        meta: dict[str, Any] = {"exposure_scale": scale,
                                "risk_management": f"exposure scaled by {scale:.4g} (risk_recommendations)"}
        if len(dates) and pd.notna(start) and pd.notna(end):
            meta["exposure_measured_on"] = f"{start.date()}..{end.date()}"
            if start <= dates[-1] and end >= dates[0]:
                msg = (f"the exposure scale was measured on {start.date()}..{end.date()}, which overlaps this "
                       f"backtest's {dates[0].date()}..{dates[-1].date()}: its numbers are in-sample")
                ctx.log.warning(msg)
                meta["exposure_in_sample"] = msg
        return scale, meta

    def sections(self, view: PhaseView) -> list[dict]:
        perf = view.outputs.get("performance_report")
        oos = None
        if perf is not None and len(perf):
            oos = pd.Series(perf["return"].to_numpy(), index=pd.DatetimeIndex(perf["date"]), name="out-of-sample")
        vr = view.outputs.get("validation_results")
        oos_metrics = vr.drop(columns=[PARAMS_COLUMN], errors="ignore").iloc[0].to_dict() \
            if vr is not None and len(vr) else None
        bars = view.inputs.get("bars")
        start = _period_start(bars, view.config.data_split) if bars is not None else None
        if not view.config.generate_detailed_report:  # the metrics only, no curves or episodes
            return rep.performance_sections(oos_metrics, None, None, oos_start=start)
        is_r, note = self._in_sample(view)
        return rep.performance_sections(oos_metrics, is_r, oos, cost_note=note, oos_start=start)

    def insights(self, view: PhaseView) -> list[Insight]:
        vr = view.outputs.get("validation_results")
        if vr is None or not len(vr):
            return []
        m = vr.iloc[0]
        cfg: Config = view.config
        where = {"test": "Out of sample", "train": "In sample", "all": "Over all data"}[cfg.data_split]
        costs = _cost_words(cfg)
        start = _period_start(view.inputs.get("bars"), cfg.data_split)
        span = (f"from the {start.date()} close to {pd.Timestamp(m['end']).date()}" if start is not None
                else f"{pd.Timestamp(m['start']).date()} .. {pd.Timestamp(m['end']).date()}")
        out = [
            Insight("performance", f"{where} ({span}, {int(m['n_bars'])} daily returns) the tested set returned "
                                   f"{m['total_return']:.2%} with a Sharpe ratio of {m['sharpe_ratio']:.2f} and a "
                                   f"max drawdown of {m['max_drawdown']:.2%}, {costs}.",
                    value=float(m["sharpe_ratio"]), key="sharpe_ratio", label=f"{where} Sharpe ratio"),
            Insight("performance", "", value=float(m["total_return"]), key="total_return",
                    label=f"{where} total return"),
            Insight("performance", "", value=float(m["max_drawdown"]), key="max_drawdown",
                    label=f"{where} max drawdown"),
        ]
        if cfg.include_transaction_costs:
            out.append(Insight("performance", "", value=float(m["total_costs"]), key="total_costs",
                               label=f"Costs paid ({where.lower()}, % of equity)"))
        trades = m.get("n_trades")
        if trades is not None and np.isfinite(trades) and trades < 10:
            out.append(Insight("robustness", f"Only {int(trades)} trade(s) {where.lower()}: the numbers rest on "
                                             f"very few decisions.", severity="warning"))
        if cfg.data_split == "test":
            is_r, _ = self._in_sample(view)
            if is_r is not None and len(is_r):
                ism = compute_metrics(is_r.to_frame("is"), periods_per_year=cfg.trading().periods_per_year).iloc[0]
                a, b = float(ism["sharpe_ratio"]), float(m["sharpe_ratio"])
                change = relative_change(a, b)
                sev = "warning" if (b <= 0 < a) or (np.isfinite(change) and change < -0.5) else \
                    ("good" if np.isfinite(change) and change >= -0.2 else "info")
                words = f" ({change:+.0%})" if np.isfinite(change) else ""
                out.append(Insight(
                    "decay", f"Sharpe ratio {a:.2f} in sample against {b:.2f} out of sample{words}; annual return "
                             f"{ism['annual_return']:.2%} against {m['annual_return']:.2%}; both {costs}.",
                    value=change if np.isfinite(change) else None, key="sharpe_decay" if np.isfinite(change) else None,
                    label="Sharpe ratio change out of sample", severity=sev))
        return out

    @staticmethod
    def _in_sample(view: PhaseView) -> tuple[pd.Series | None, str | None]:
        """The in-sample returns of the tested set on the search's data split (the train split
        when there was no search), computed with THIS backtest's trading settings: the same
        cost model, mode, sizing, exits and exposure scale as the out-of-sample numbers beside
        them."""
        bars = view.inputs.get("bars")
        if bars is None or view.config.data_split != "test":
            return None, None
        best = view.inputs.get("best_parameters")
        search_cfg = view.input_configs.get("best_parameters") or {}
        if view.config.parameters:
            sets = [(view.config.strategy or DEFAULT_STRATEGY, dict(view.config.parameters))]
        elif best is not None and len(best):
            sets = [parameter_set(best.iloc[0])]
        else:
            return None, None
        split = search_cfg.get("data_split", "train")
        if split == "test":
            return None, None
        close = close_matrix(bars, split)
        vr = view.outputs.get("validation_results")
        scale = float(vr["exposure_scale"].iloc[0]) if vr is not None and "exposure_scale" in vr.columns else 1.0
        searched = trading_overrides(best.iloc[0]) if not view.config.parameters and best is not None and len(best) \
            else {}
        trading = riskbudget.with_exposure(with_trading(view.config.trading(), searched), close.columns,
                                           scale)  # as out of sample
        r = evaluate_sets(close, sets, trading, labels=["in-sample"]).iloc[:, 0]
        note = f"In sample and out of sample are both computed {_cost_words(view.config)}"
        if search_cfg:
            ranked = trading_config(search_cfg)
            note += (" (the search ranked its trials with the same costs)." if ranked.cost_bps + ranked.slippage_bps
                     == view.config.trading().cost_bps + view.config.trading().slippage_bps
                     else " (the search ranked its trials before costs, so its own scores are higher).")
        else:
            note += "."
        return r, note


def _plain(settings: dict) -> dict:
    """Behaviour settings as JSON-able values (symbol weights as a mapping or a list)."""
    out = {}
    for k, v in settings.items():
        if isinstance(v, np.ndarray):
            v = [float(x) for x in v]
        elif isinstance(v, (np.floating, np.integer)):
            v = v.item()
        out[k] = v
    return out


def _at_exposure(dep: ledger.Deployment, base, symbols: list[str], scale: float) -> ledger.Deployment:
    """``dep`` running at exposure ``scale``: its symbol weights times ``scale`` (the rest in cash)."""
    if float(scale) == 1.0:
        return dep
    w = riskbudget.with_exposure(dep.config(base), symbols, scale).weights
    weights = {str(sym): float(x) for sym, x in zip(symbols, np.asarray(w, dtype=float))}
    return ledger.Deployment(dep.members, {**_plain(dict(dep.settings)), "weights": weights},
                             f"{dep.label or 'deployment'} at exposure {scale:.4g}")


def _members_json(dep: ledger.Deployment) -> str:
    return json.dumps([{"strategy": m.strategy, "params": json.loads(params_json(dict(m.params))),
                        "weight": round(float(m.weight), 10)} for m in dep.members], sort_keys=True)


def _production(dep: ledger.Deployment, tested: pd.Series, r: pd.Series, scale: float) -> pd.DataFrame:
    """One row per member of the deployed configuration, each carrying the whole deployment
    (``deployment``, JSON: what a paper_trading phase trades) and the tested numbers."""
    common = {"config_id": dep.config_id, "label": dep.label, "deployment": dep.to_json(),
              "exposure_scale": float(scale), "cost_bps": float(tested["cost_bps"]),
              "slippage_bps": float(tested["slippage_bps"]), "tested_split": str(tested["split"]),
              "tested_sharpe_ratio": float(tested["sharpe_ratio"]), "tested_max_drawdown": float(tested["max_drawdown"]),
              "expected_daily_mean": float(r.mean()), "expected_daily_std": float(r.std(ddof=1))}
    return pd.DataFrame([{**common, "member": i, "strategy": m.strategy, PARAMS_COLUMN: params_json(dict(m.params)),
                          "weight": float(m.weight)} for i, m in enumerate(dep.members)])


def _cost_words(cfg: Config) -> str:
    t = cfg.trading()
    if not cfg.include_transaction_costs or t.cost_bps + t.slippage_bps == 0:
        return "before costs"
    return f"after {t.cost_bps:g} bps commission + {t.slippage_bps:g} bps slippage per trade"


def _period_start(bars: pd.DataFrame, split: str) -> pd.Timestamp | None:
    """The close at which a test-split backtest's equity is its starting value: the first test
    date (its return, from the last train close, belongs to neither period)."""
    if split != "test" or bars is None or "split" not in bars.columns:
        return None
    test = bars.loc[bars["split"] == "test", "date"]
    return pd.Timestamp(test.min()) if len(test) else None


KIND = Backtest()

__all__ = ["KIND", "Backtest", "Config"]
