"""risk_analysis: VaR and CVaR by four methods, drawdowns, stress scenarios against buy and hold,
tail statistics and the exposure that meets a risk budget (which a backtest can apply).

    - name: risk_analysis
      type: risk_analysis
      inputs: [parameter_optimization.best_parameters]   # or <backtest>.performance_report
      config:
        data_split: all                     # the sets' returns on train | test | all
        confidence_levels: [0.95, 0.99, 0.999]
        stress_scenarios:
          - {name: financial_crisis, date_range: [2007-10, 2009-03]}
        risk_budget: {var: 0.02, level: 0.99, max_drawdown: 0.25}

The returns analysed are a backtest's ``performance_report`` when one is connected, else the
first (best) parameter set of the search evaluated on ``data_split`` (indicators warmed up on
all history, as the backtest does).  Buy and hold is the universe at full exposure with the
same symbol weights, rebalanced every bar (the engine's constant position 1, no costs).
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, StrictBool, StrictInt, StrictStr, field_validator, model_validator

from admf_assets.engine import risk, riskbudget
from admf_assets.engine.backtest import asset_returns_from_close, resolve_weights, run_backtest
from admf_assets.engine.paramsets import parameter_set, params_json, trading_overrides, with_trading
from admf_assets.engine.util import py_scalar
from admf_assets.phases.common import (BARS, TRADING_KEYS, DataSplitName, TradingSettings, close_matrix,
                                       split_mask, trading_config)
from admf_assets.phases.kind import ConfigEnv, Consumes, Insight, Output, PhaseContext, PhaseError, PhaseKind, PhaseResult, \
    PhaseView, StrictModel

_MONTH = re.compile(r"^\d{4}-\d{2}$")


def _day(value: Any, end: bool) -> date:
    """A date, or ``YYYY-MM`` (the month's first day as a start, its last day as an end)."""
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if _MONTH.match(text):
        year, month = int(text[:4]), int(text[5:])
        if not 1 <= month <= 12:
            raise ValueError(f"{text!r} is not a month (YYYY-MM)")
        return date(year, month, calendar.monthrange(year, month)[1] if end else 1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD or YYYY-MM)") from None


class StressScenario(StrictModel):
    """``{name: dotcom, date_range: [2000-03, 2002-10]}`` or ``{name, start, end}``; a month
    ``YYYY-MM`` covers the whole month."""

    name: StrictStr
    date_range: list[date | StrictStr] | None = None
    start: date | StrictStr | None = None
    end: date | StrictStr | None = None

    @model_validator(mode="after")
    def _bounds(self) -> "StressScenario":
        if self.date_range is not None:
            if self.start is not None or self.end is not None:
                raise ValueError("[date_range] give date_range or start/end, not both")
            if len(self.date_range) != 2:
                raise ValueError(f"[date_range] expected [start, end], got {len(self.date_range)} value(s)")
            start, end = self.date_range
        else:
            if self.start is None or self.end is None:
                raise ValueError("[date_range] a scenario needs date_range: [start, end] (or start and end)")
            start, end = self.start, self.end
        try:
            s, e = _day(start, end=False), _day(end, end=True)
        except ValueError as exc:
            raise ValueError(f"[date_range] {exc}") from None
        if s > e:
            raise ValueError(f"[date_range] start {s} is after end {e}")
        self.date_range, self.start, self.end = None, s, e
        return self


class RiskBudget(StrictModel):
    """Budgets the recommended exposure must meet (positive fractions; null = no budget)."""

    var: float | None = Field(default=0.02, gt=0, lt=1)  #: one-bar VaR at ``level``
    cvar: float | None = Field(default=None, gt=0, lt=1)  #: one-bar CVaR at ``level``
    level: float = Field(default=0.99, gt=0, lt=1)
    #: the VaR method of the var/cvar budgets; ``worst``: the largest of historical, parametric
    #: and Cornish-Fisher
    method: StrictStr = "historical"
    max_drawdown: float | None = Field(default=0.25, gt=0, lt=1)
    volatility: float | None = Field(default=None, gt=0)  #: annualized


class RiskSwitches(StrictModel):
    """Seed form ``risk_analysis: {var_analysis: true, ...}``: every analysis always runs."""

    var_analysis: StrictBool = True
    stress_testing: StrictBool = True
    scenario_analysis: StrictBool = True


class TailRiskSettings(StrictModel):
    """Seed form ``tail_risk_analysis: {confidence_levels: [...]}``."""

    confidence_levels: list[float] | None = None
    extreme_scenario_modeling: StrictBool | None = None


UNCONDITIONAL = ("historical", "parametric", "cornish_fisher")


class Config(TradingSettings):
    include_transaction_costs: StrictBool = True
    data_split: DataSplitName = "train"
    confidence_levels: list[float] = Field(default_factory=lambda: [0.95, 0.99, 0.999], min_length=1)
    var_methods: list[StrictStr] = Field(default_factory=lambda: list(risk.VAR_METHODS), min_length=1)
    garch_distribution: Literal[risk.GARCH_DISTRIBUTIONS] = "t"  # type: ignore[valid-type]
    stress_scenarios: list[StressScenario] = Field(default_factory=list)
    top_drawdowns: StrictInt = Field(default=10, ge=1)
    risk_budget: RiskBudget = Field(default_factory=RiskBudget)
    max_exposure: float = Field(default=1.0, gt=0)
    risk_analysis: RiskSwitches | None = None
    tail_risk_analysis: TailRiskSettings | None = None

    @field_validator("confidence_levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        for x in v:
            if not 0.0 < x < 1.0:
                raise ValueError(f"a confidence level is in (0, 1), e.g. 0.99; got {x}")
        return sorted(set(v))


class RiskAnalysis(PhaseKind):
    name = "risk_analysis"
    aliases = ("risk", "stress_testing", "tail_risk_analysis")
    description = ("VaR/CVaR (historical, parametric, Cornish-Fisher, GARCH) with a VaR backtest, drawdown "
                   "episodes, stress scenarios against buy and hold, tail statistics, and the exposure that "
                   "meets a risk budget (a backtest can apply it).")
    version = "1"
    Config = Config
    example_config = {"data_split": "all",
                      "stress_scenarios": [{"name": "early_2021", "date_range": ["2021-02", "2021-03"]},
                                           {"name": "before_the_data", "date_range": ["2019-01-01", "2019-06-30"]}]}
    outputs = (
        Output("risk_metrics", "VaR and CVaR (one-bar loss fractions) by method and confidence level, for the "
               "strategy and buy and hold, with the in-sample VaR backtest (breaches, Kupiec p-value)",
               aliases=("var_analysis", "var_cvar", "value_at_risk"),
               columns=("series", *risk.VAR_REPORT_COLUMNS)),
        Output("drawdowns", "Drawdown episodes of the strategy, deepest first (depth, start, trough, recovery, "
               "length)", aliases=("drawdown_table", "drawdown_analysis"),
               columns=("episode", *risk.DRAWDOWN_TABLE_COLUMNS)),
        Output("stress_test_results", "The strategy against buy and hold in each named stress scenario",
               aliases=("stress_tests", "scenario_analysis", "stress_scenarios"),
               columns=tuple(risk.STRESS_TEST_COLUMNS)),
        Output("tail_risk_assessment", "Tail statistics of the strategy and buy and hold (skew, kurtosis, "
               "worst days, Hill tail index, GARCH persistence)", aliases=("tail_risk", "tail_statistics"),
               columns=("series", "n_obs", "skew", "excess_kurtosis", "worst", "hill_tail_index",
                        "garch_persistence")),
        Output("risk_recommendations", "The exposure that meets each risk budget and the recommended exposure "
               "scale (row 'exposure_scale'), which a backtest applies with dynamic_risk_management",
               aliases=("risk_budget", "exposure_recommendations"),
               columns=tuple(riskbudget.RECOMMENDATION_COLUMNS)),
    )
    consumes = (BARS, Consumes(("performance_report", "oos_equity", "best_parameters", "top_parameter_sets")))
    metrics = ("var_95", "cvar_95", "var_99", "cvar_99", "garch_var_99", "max_drawdown", "longest_drawdown_bars",
               "skew", "excess_kurtosis", "worst_day", "tail_index", "recommended_exposure",
               "worst_stress_return", "worst_stress_excess_return", "n_scenarios_outside")

    # -------------------------------------------------------------- validation
    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        updates: dict[str, Any] = {}
        methods: list[str] = []
        for i, m in enumerate(cfg.var_methods):
            try:
                canon = risk.canonical_method(m)
            except ValueError as exc:
                env.problem(f"var_methods[{i}]", str(exc))
                continue
            if canon not in methods:
                methods.append(canon)
        updates["var_methods"] = methods
        budget = cfg.risk_budget
        if budget.method != "worst":
            try:
                updates["risk_budget"] = budget.model_copy(update={"method": risk.canonical_method(budget.method)})
            except ValueError as exc:
                env.problem("risk_budget.method", f"{exc} or worst")
        if cfg.tail_risk_analysis is not None:
            tail = cfg.tail_risk_analysis
            if tail.confidence_levels is not None:
                if "confidence_levels" in cfg.model_fields_set:
                    env.problem("tail_risk_analysis.confidence_levels",
                                "give confidence_levels once (here or at the top of config)")
                else:
                    try:
                        updates["confidence_levels"] = Config._levels(tail.confidence_levels)
                    except ValueError as exc:
                        env.problem("tail_risk_analysis.confidence_levels", str(exc))
            if tail.extreme_scenario_modeling is not None:
                env.warn("tail_risk_analysis.extreme_scenario_modeling",
                         "ignored: the tail statistics and stress scenarios always run")
            updates["tail_risk_analysis"] = None
        if cfg.risk_analysis is not None:
            off = [k for k, v in cfg.risk_analysis.model_dump().items() if v is False]
            msg = (f"ignored: {', '.join(off)} cannot be switched off; every analysis runs (list the outputs "
                   "you want under outputs:)") if off else "ignored: every analysis always runs"
            env.warn("risk_analysis", msg)
            updates["risk_analysis"] = None
        names = [s.name for s in cfg.stress_scenarios]
        for i, n in enumerate(names):
            if n in names[:i]:
                env.problem(f"stress_scenarios[{i}].name", f"scenario name '{n}' is used twice")
        data = env.data
        if data is not None and getattr(data, "start_date", None) and getattr(data, "end_date", None):
            for i, s in enumerate(cfg.stress_scenarios):
                if s.end < data.start_date or s.start > data.end_date:
                    env.warn(f"stress_scenarios[{i}]",
                             f"'{s.name}' ({s.start}..{s.end}) is outside the workflow's data "
                             f"({data.start_date}..{data.end_date}); its row will say so")
        return cfg.model_copy(update=updates)

    # -------------------------------------------------------------- running
    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        bars = ctx.need("bars")
        close = close_matrix(bars)
        returns, weights, source, label = self._returns(ctx, cfg, bars, close)
        if len(returns) < 2:
            raise PhaseError(f"{source} has {len(returns)} return(s); risk analysis needs at least 2")
        bh = _buy_and_hold(close, weights).reindex(returns.index).fillna(0.0).rename("buy_and_hold")
        series = {"strategy": returns.rename("strategy"), "buy_and_hold": bh}
        fits = {k: risk.garch_fit(v, cfg.garch_distribution) for k, v in series.items()}

        var_tab = pd.concat([risk.var_report(v, cfg.confidence_levels, cfg.var_methods, cfg.garch_distribution,
                                             garch=fits.get(k)).assign(series=k)
                             for k, v in series.items()], ignore_index=True)
        var_tab = var_tab[["series", *risk.VAR_REPORT_COLUMNS]]
        dd = risk.drawdown_table(returns, top_n=cfg.top_drawdowns).reset_index()
        scenarios = {s.name: (s.start.isoformat(), s.end.isoformat()) for s in cfg.stress_scenarios}
        stress = risk.stress_test(returns, bh, scenarios, data_label=label) if scenarios else \
            pd.DataFrame(columns=risk.STRESS_TEST_COLUMNS)
        for _, row in stress[stress["note"] != ""].iterrows():
            ctx.log.warning(f"stress scenario '{row['scenario']}': {row['note']}")
        tail = pd.DataFrame([_tail_row(k, v, fits.get(k)) for k, v in series.items()])

        budget = cfg.risk_budget
        budget_methods = list(UNCONDITIONAL) if budget.method == "worst" else [budget.method]
        budget_var = risk.var_report(returns, (budget.level,), budget_methods, cfg.garch_distribution,
                                     garch=fits.get("strategy"))
        recs = riskbudget.recommend_exposure(
            returns, budget_var, var_budget=budget.var, cvar_budget=budget.cvar, level=budget.level,
            method=budget.method, unconditional=UNCONDITIONAL, drawdown_budget=budget.max_drawdown,
            volatility_budget=budget.volatility, max_exposure=cfg.max_exposure)
        scale = float(recs.loc[recs["constraint"] == riskbudget.EXPOSURE_ROW, "scale"].iloc[0])

        metrics = _metrics(returns, dd, stress, scale, fits["strategy"])
        period = f"{returns.index[0].date()}..{returns.index[-1].date()}"
        common = {"returns": source, "period": period, "bars": len(returns)}
        strat = var_tab[var_tab["series"] == "strategy"]
        meta = {
            "risk_metrics": {**common, **{f"var_{m}_{lv:g}": float(v) for m, lv, v in
                                          strat[["method", "level", "var"]].itertuples(index=False)
                                          if np.isfinite(v)},
                             "garch": _garch_summary(fits.get("strategy")), "preview": var_tab.head(24)},
            "drawdowns": {**common, "episodes": len(dd), "worst": float(dd["depth"].min()) if len(dd) else 0.0,
                          "preview": dd.head(10)},
            "stress_test_results": {**common, "scenarios": len(stress),
                                    "outside_the_data": ", ".join(stress.loc[stress["n_bars"] == 0, "scenario"])
                                    or "none",
                                    "preview": stress.drop(columns=["first_bar", "last_bar"]).head(20)},
            "tail_risk_assessment": {**common, "preview": tail},
            "risk_recommendations": {**common, "exposure_scale": scale,
                                     "set_by": str(recs["note"].iloc[-1]), "preview": recs},
        }
        outputs = {"risk_metrics": var_tab, "drawdowns": dd, "stress_test_results": stress,
                   "tail_risk_assessment": tail, "risk_recommendations": recs}
        return PhaseResult(outputs=outputs, metadata=meta, metrics=metrics)

    @staticmethod
    def _returns(ctx: PhaseContext, cfg: Config, bars: pd.DataFrame,
                 close: pd.DataFrame) -> tuple[pd.Series, Any, str, str]:
        """(returns, symbol weights, what they are, how the stress notes name their range)."""
        # return series computed upstream, as they were computed there: (input, its producer, what, its period)
        for canonical, producer, what, period in (
                ("performance_report", "backtest", "the backtest's returns", "the backtest's {split} period"),
                ("oos_equity", "walk-forward", "the walk-forward's out-of-sample returns",
                 "the walk-forward's out-of-sample period")):
            frame = ctx.inputs.get(canonical)
            if frame is None or not len(frame):
                continue
            ignored = sorted(cfg.model_fields_set & {"data_split", *TRADING_KEYS})
            if ignored:
                ctx.log.warning(f"config {', '.join(ignored)} ignored: the returns are the {producer}'s "
                                f"{canonical}, as that {producer} computed them")
            upstream = ctx.upstream_config(canonical) or {}
            r = pd.Series(frame["return"].to_numpy(dtype=float), index=pd.DatetimeIndex(frame["date"]))
            return r, trading_config(upstream).weights, f"{what} ({canonical})", \
                period.format(split=upstream.get("data_split", "test"))
        sets = ctx.inputs.get("top_parameter_sets")
        best = ctx.inputs.get("best_parameters")
        table = best if best is not None and len(best) else sets
        if table is None or not len(table):
            raise PhaseError("needs a backtest's performance_report, a walk-forward's oos_equity or parameter sets "
                             "(best_parameters / top_parameter_sets) from an upstream phase")
        try:
            strategy, params = parameter_set(table.iloc[0])
            searched = trading_overrides(table.iloc[0])  # the set's searched stop, size, volatility target
        except ValueError as exc:
            raise PhaseError(f"input parameter sets: {exc}") from None
        try:
            res = run_backtest(close, strategy, params, with_trading(cfg.trading(), searched))
        except ValueError as exc:
            raise PhaseError(f"field 'config': {exc}") from None
        mask = split_mask(bars, close.index, cfg.data_split)
        r = res.returns.iloc[:, 0][mask]
        r.index = pd.DatetimeIndex(r.index)
        what = f"{strategy} {params_json({**params, **searched})} on the {cfg.data_split} split"
        return r, cfg.weights, what, f"the {cfg.data_split} split" if cfg.data_split != "all" else "the data"

    # -------------------------------------------------------------- report
    def insights(self, view: PhaseView) -> list[Insight]:
        out: list[Insight] = []
        var_tab = view.outputs.get("risk_metrics")
        if var_tab is not None and len(var_tab):
            strat = var_tab[(var_tab["series"] == "strategy") & np.isfinite(var_tab["var"].astype(float))]
            hi = strat[strat["level"] == strat["level"].max()]
            if len(hi):
                worst = hi.loc[hi["var"].astype(float).idxmax()]
                out.append(Insight("risk", f"One-day VaR at {worst['level']:.1%}: {worst['var']:.2%} of capital "
                                           f"({worst['method']}, the most severe method; CVaR {worst['cvar']:.2%})."))
        stress = view.outputs.get("stress_test_results")
        if stress is not None and len(stress) and "excess_return" in stress.columns:
            ok = stress[np.isfinite(stress["excess_return"].astype(float))]
            if len(ok):
                w = ok.loc[ok["strategy_return"].astype(float).idxmin()]
                out.append(Insight("risk", f"Worst stress scenario: {w['scenario']}, strategy {w['strategy_return']:.2%} "
                                           f"against buy and hold {w['buy_and_hold_return']:.2%}.",
                                   severity="warning" if w["excess_return"] < 0 else "info"))
        recs = view.outputs.get("risk_recommendations")
        if recs is not None and len(recs) and np.isfinite(float(recs["scale"].iloc[-1])):
            out.append(Insight("risk", f"Recommended exposure scale {float(recs['scale'].iloc[-1]):.2f} of capital "
                                       f"({len(recs) - 1} risk budget(s) checked).",
                               value=float(recs["scale"].iloc[-1]), key="exposure_scale", label="Recommended exposure"))
        return out

    def sections(self, view: PhaseView) -> list[dict]:
        out: list[dict] = []
        var_tab = view.outputs.get("risk_metrics")
        recs = view.outputs.get("risk_recommendations")
        if var_tab is not None and len(var_tab):
            strat = var_tab[var_tab["series"] == "strategy"]
            cards: dict[str, Any] = {}
            for method, level, v in strat[["method", "level", "var"]].itertuples(index=False):
                if level == 0.99 and np.isfinite(v):
                    cards[f"{method} VaR 99% (one day)"] = float(v)
            if recs is not None and len(recs):
                cards["Recommended exposure"] = float(recs["scale"].iloc[-1])
            pct = "{:.2%}"
            out.append({"title": f"{view.phase}: value at risk", "metrics": cards,
                        "formats": {**{k: pct for k in cards}, "level": "{:.1%}", "breach_rate": pct,
                                    "expected_rate": pct, "kupiec_pvalue": "{:.3g}"},
                        "text": "VaR and CVaR are one-day losses as fractions of capital. Breaches count the days "
                                "the loss exceeded the VaR (for GARCH: that day's conditional VaR); a Kupiec "
                                "p-value below 0.05 rejects the method's calibration.",
                        "table": var_tab.drop(columns=["n_obs"])})
        stress = view.outputs.get("stress_test_results")
        if stress is not None and len(stress):
            out.append({"title": f"{view.phase}: stress scenarios",
                        "text": "Total return, maximum drawdown and annualized volatility of the strategy and of "
                                "buy and hold inside each scenario.",
                        "table": stress.drop(columns=["first_bar", "last_bar"]),
                        "formats": {"strategy_worst_bar": "{:.2%}", "buy_and_hold_worst_bar": "{:.2%}"}})
        dd = view.outputs.get("drawdowns")
        if dd is not None and len(dd):
            out.append({"title": f"{view.phase}: drawdown episodes", "table": dd, "detail": True})
        tail = view.outputs.get("tail_risk_assessment")
        if tail is not None and len(tail):
            out.append({"title": f"{view.phase}: tail statistics", "table": tail, "detail": True,
                        "formats": {k: "{:.2%}" for k in ("mean", "worst", "best", "frac_beyond_3sigma",
                                                          "normal_frac_beyond_3sigma",
                                                          "garch_next_day_volatility")}})
        if recs is not None and len(recs):
            out.append({"title": f"{view.phase}: risk recommendations",
                        "text": "The exposure (fraction of capital in the strategy, the rest in cash) at which each "
                                "budget is exactly met; a backtest with the input "
                                f"{view.phase}.risk_recommendations applies the row exposure_scale.",
                        "table": recs, "formats": {k: "{:.2%}" for k in ("budget", "current", "scale",
                                                                          "at_recommended", "level")}})
        return out


# ------------------------------------------------------------------ helpers
def _buy_and_hold(close: pd.DataFrame, weights: Any) -> pd.Series:
    """The universe held at full exposure with fixed symbol weights, rebalanced every bar."""
    w = resolve_weights(list(close.columns), close.shape[1], weights)
    return pd.Series(asset_returns_from_close(close.to_numpy(dtype=float)) @ w, index=close.index)


def _tail_row(name: str, r: pd.Series, fit: risk.GarchFit | None) -> dict[str, Any]:
    t = risk.tail_risk(r)
    x = r.dropna()
    row = {"series": name, "n_obs": t["n_obs"], "mean": float(x.mean()),
           "annual_volatility": float(x.std(ddof=1) * math.sqrt(252)) if len(x) > 1 else float("nan")}
    row.update({k: v for k, v in t.items() if k != "n_obs"})
    row.update({"garch_persistence": fit.persistence if fit else float("nan"),
                "garch_half_life_bars": fit.half_life if fit else float("nan"),
                "garch_nu": fit.nu if fit and fit.nu is not None else float("nan"),
                "garch_next_day_volatility": fit.sigma_next if fit else float("nan")})
    return row


def _garch_summary(fit: risk.GarchFit | None) -> str:
    if fit is None:
        return "not fitted"
    nu = f", nu {fit.nu:.1f}" if fit.nu is not None else ""
    conv = "" if fit.converged else " (did not converge)"
    return (f"GARCH(1,1) {fit.dist}{nu}: persistence {fit.persistence:.3f}, next-day volatility "
            f"{fit.sigma_next:.4f}{conv}")


def _metrics(r: pd.Series, dd: pd.DataFrame, stress: pd.DataFrame, scale: float,
             fit: risk.GarchFit | None) -> dict[str, Any]:
    hist = risk.var_cvar(r, (0.95, 0.99), "historical").set_index("level")
    garch = risk.var_report(r, (0.99,), ("garch",), garch=fit) if fit is not None else None
    tail = risk.tail_risk(r)
    covered = stress[stress["n_bars"] > 0]
    return {
        "var_95": float(hist.loc[0.95, "var"]), "cvar_95": float(hist.loc[0.95, "cvar"]),
        "var_99": float(hist.loc[0.99, "var"]), "cvar_99": float(hist.loc[0.99, "cvar"]),
        "garch_var_99": float(garch["var"].iloc[0]) if garch is not None else float("nan"),
        "max_drawdown": float(dd["depth"].min()) if len(dd) else 0.0,
        "longest_drawdown_bars": int(dd["length_bars"].max()) if len(dd) else 0,
        "skew": py_scalar(tail["skew"]), "excess_kurtosis": py_scalar(tail["excess_kurtosis"]),
        "worst_day": py_scalar(tail["worst"]), "tail_index": py_scalar(tail["hill_tail_index"]),
        "recommended_exposure": scale,
        "worst_stress_return": float(covered["strategy_return"].min()) if len(covered) else float("nan"),
        "worst_stress_excess_return": float(covered["excess_return"].min()) if len(covered) else float("nan"),
        "n_scenarios_outside": int((stress["n_bars"] == 0).sum()),
    }


KIND = RiskAnalysis()

__all__ = ["KIND", "Config", "RiskAnalysis", "RiskBudget", "StressScenario"]
