"""paper_trading (live_simulation, shadow_trading): a forward ledger of a deployed configuration,
one asset partition per market day, booked after that day's close (seed 001 "Staged
Deployment Pipeline").

    - name: paper_trading
      type: live_simulation
      inputs: [parameter_optimization.best_parameters]   # or an ensemble's optimal_ensemble_weights,
                                                         # or another ledger's performance_validation
      config:
        duration_days: 30                                # a check passes once 30 days are booked
        monitoring: {deviation_alerts: true}             # blocking deviation checks
    - name: shadow_trading
      type: live_simulation
      inputs: [paper_trading.performance_validation]     # the same deployed configuration
      config: {shadow_mode: true, comparison_baseline: buy_and_hold}

Each new clean-bars partition (a market day) adds one partition to each output: the
positions held over the day (decided at the previous close), the fills at its close with
their costs, and the day's P&L (``engine.ledger``: the engine's own conventions, so the
ledger earns exactly what the backtest of the same configuration earns).  A run books the
days it is asked for and nothing else: earlier days are never rewritten.  The ledger is
tracked against the deployed configuration's backtest returns before the ledger starts (the
expected distribution): asset checks ``tracking_deviation`` and ``volatility_deviation``
(blocking with ``deviation_alerts``), and ``duration_days``.  Nothing is sent to a broker.
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, StrictBool, StrictInt, StrictStr, field_validator

from admf_assets.engine import charts, ledger
from admf_assets.engine.metrics import compute_metrics
from admf_assets.phases.deployment import DEPLOYED_INPUTS, deployment_from
from admf_assets.phases.common import (BARS, DataSplitName, TradingSettings, check_strategy_params, close_matrix,
                                       is_scalar, known_strategy, split_mask)
from admf_assets.phases.kind import Check, CheckOutcome, ConfigEnv, Consumes, MarketDays, Output, PhaseContext, \
    PhaseError, PhaseKind, PhaseResult, PhaseView, StrictModel
from resources.storage import MissingPartitionsError

from admf_assets.phases.data_preparation import MARKET_KEY  # noqa: E402 - the market table both read

BAR_COLUMNS = ["date", "symbol", "close"]
DEFAULT_STRATEGY = "momentum"
BASELINE_ALIASES = {"buy_and_hold": "buy_and_hold", "buy_hold": "buy_and_hold", "benchmark": "buy_and_hold"}
#: fewer expected (backtest) returns than this cannot describe a distribution
MIN_EXPECTED_RETURNS = 20
NO_BROKER = ("this platform does not connect to a broker: paper_trading books a simulated ledger "
             "(shadow_mode: true runs a baseline beside it)")


class Monitoring(StrictModel):
    """Seed 001's ``monitoring`` block of a paper-trading stage."""

    #: the deviation checks are blocking (a failure stops the phases downstream, fails the run
    #: and is recorded as an alert); false: they only warn
    deviation_alerts: StrictBool = True
    real_time_alerts: StrictBool | None = None
    performance_tracking: StrictBool | None = None


class Config(TradingSettings):
    __key_aliases__ = ("duration", "baseline")

    include_transaction_costs: StrictBool = True
    initial_capital: float = Field(default=100_000.0, gt=0)
    #: first market day of the ledger (default: the first weekday after data.end_date)
    start_date: date | None = None
    #: last market day (default: none, a new partition every market day)
    end_date: date | None = None
    #: first bar of the history the strategy warms up on (default: data.start_date)
    history_start: date | None = None
    duration_days: StrictInt = Field(default=30, ge=1)
    #: a fixed deployment instead of an input (like a backtest's)
    strategy: StrictStr | None = None
    parameters: dict[StrictStr, Any] | None = None
    shadow_mode: StrictBool = False
    #: buy_and_hold (default in shadow mode), {strategy, parameters}, or 'phase.output' of a
    #: deployable configuration in this workflow
    comparison_baseline: StrictStr | dict[StrictStr, Any] | None = None
    #: the deviation checks fail beyond this many standard deviations of the expected
    #: distribution (block-bootstrap paths of the backtest's daily returns; 0.27 % two-sided at 3)
    deviation_threshold: float = Field(default=3.0, gt=0)
    n_bootstrap: StrictInt = Field(default=2000, ge=100)
    bootstrap_block: StrictInt = Field(default=10, ge=1)
    seed: StrictInt = 42
    #: the deviation checks start once this many days are booked
    min_days: StrictInt = Field(default=5, ge=1)
    #: which backtest returns are the expected distribution (always before start_date)
    expected_split: DataSplitName = "test"
    monitoring: Monitoring = Field(default_factory=Monitoring)
    real_time_data: StrictBool | None = None
    paper_trading_only: StrictBool = True

    @field_validator("parameters")
    @classmethod
    def _scalars(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, value in (v or {}).items():
            if not is_scalar(value):
                raise ValueError(f"[{key}] a fixed parameter must be a number, string or boolean (got {value!r})")
        return v

    @field_validator("monitoring", mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        return {} if v is None else v


def _next_weekday(d: date) -> date:
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d


def _last_weekday_before_today() -> date:
    d = date.today() - timedelta(days=1)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return d


def _is_reference(text: str) -> bool:
    head, dot, tail = text.partition(".")
    return bool(dot and head and tail and "." not in tail and " " not in text)


class PaperTrading(PhaseKind):
    name = "paper_trading"
    aliases = ("live_simulation", "shadow_trading", "paper_trade", "forward_test")
    description = ("A forward ledger of a deployed configuration: one partition per market day with the positions "
                   "held, the fills at the close with costs and the P&L, tracked against the backtest's expected "
                   "returns (no broker: a simulation).")
    Config = Config
    partition_column = "date"  #: a ledger row's market day is its partition
    example_config = {"start_date": "2022-02-01", "end_date": "2022-06-30", "duration_days": 40,
                      "expected_split": "train", "shadow_mode": True, "comparison_baseline": "buy_and_hold"}
    outputs = (
        Output("ledger", "One row per market day and symbol: the position held over the day (decided at the previous "
               "close), the fill at the day's close, its cost and the P&L",
               aliases=("paper_ledger", "positions", "fills", "trades"),
               columns=("date", "symbol", "book", "config_id", "decided_at", "position", "asset_return", "close",
                        "target_position", "trade", "fill_price", "shares", "traded_notional", "cost", "pnl"),
               time_series=True, partitioned=True),
        Output("performance_validation", "One row per market day: the account (return, costs, value, drawdown) and "
               "its tracking against the backtest's expected daily returns",
               aliases=("paper_performance", "performance_tracking", "daily_performance"),
               columns=("date", "config_id", "deployment", "return", "costs", "value", "pnl", "cumulative_return",
                        "drawdown", "day", "expected_mean", "expected_std", "daily_z", "tracking_z",
                        "volatility_ratio", "volatility_z", "deviation"),
               time_series=True, partitioned=True),
        Output("comparative_results", "Shadow mode: per market day the deployed and the baseline configuration side "
               "by side (returns, values, excess)",
               aliases=("shadow_comparison", "comparison", "comparative_performance"),
               columns=("date", "deployed_return", "baseline_return", "excess_return", "deployed_value",
                        "baseline_value", "cumulative_excess", "tracking_error", "baseline"),
               time_series=True, partitioned=True),
    )
    consumes = (BARS, Consumes(DEPLOYED_INPUTS, required=True, unless_config="parameters", exclusive=True),
                Consumes(("performance_report",), required=False))
    reads_assets = (MARKET_KEY,)  # the day's clean bars (the history is read from the store)
    metrics = ("days_booked", "days_remaining", "total_return", "sharpe_ratio", "max_drawdown", "total_costs",
               "n_trades", "tracking_z", "volatility_ratio", "volatility_z", "expected_daily_mean",
               "expected_daily_std", "excess_return_vs_baseline")

    # ------------------------------------------------------------------ validation
    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        data = env.data
        updates: dict[str, Any] = {}
        start = cfg.start_date
        if start is None:
            if data is None:
                env.problem("start_date", "set the ledger's first day (or give the workflow a data section: it "
                                          "starts the weekday after data.end_date)")
                return cfg
            start = data.end_date + timedelta(days=1)
        start = _next_weekday(start)
        updates["start_date"] = start
        history = cfg.history_start or (data.start_date if data is not None else None)
        if history is not None and history >= start:
            env.problem("history_start", f"history_start {history} must be before the ledger's start {start}")
        updates["history_start"] = history
        if cfg.end_date is not None and cfg.end_date < start:
            env.problem("end_date", f"end_date {cfg.end_date} is before the ledger's start {start}")
        if data is not None and start <= data.end_date:
            env.warn("start_date", f"the ledger starts {start}, before the research data ends (data.end_date "
                                   f"{data.end_date}): the deployed configuration was fit on some of its days")
        if cfg.strategy is not None or cfg.parameters:
            spec = known_strategy(cfg.strategy or DEFAULT_STRATEGY, "strategy", env)
            check_strategy_params([spec], cfg.parameters or {}, "parameters", env)
        updates["comparison_baseline"] = self._baseline(cfg, env)
        if not cfg.paper_trading_only:
            env.problem("paper_trading_only", NO_BROKER)
        if cfg.real_time_data is not None:
            env.warn("real_time_data", "ignored: there is no real-time feed; the ledger books each market day "
                                       "when its clean-bars partition is materialized")
        if cfg.monitoring.real_time_alerts is not None:
            env.warn("monitoring.real_time_alerts", "ignored: failed checks and runs are recorded by the alerts "
                                                    "sensor (admf db \"SELECT * FROM monitoring.alerts\")")
        if cfg.monitoring.performance_tracking is not None:
            env.warn("monitoring.performance_tracking", "ignored: performance_validation always tracks the ledger")
        return cfg.model_copy(update=updates)

    def _baseline(self, cfg: Config, env: ConfigEnv) -> Any:
        b = cfg.comparison_baseline
        if not cfg.shadow_mode:
            if b is not None:
                env.warn("comparison_baseline", "ignored: set shadow_mode: true to run a baseline beside the "
                                                "deployed configuration")
            return b
        if b is None:
            return "buy_and_hold"
        if isinstance(b, dict):
            extra = sorted(set(b) - {"strategy", "parameters"})
            if extra or "strategy" not in b:
                env.problem("comparison_baseline", "a fixed baseline is {strategy: NAME, parameters: {...}}")
                return b
            spec = known_strategy(str(b["strategy"]), "comparison_baseline.strategy", env)
            params = b.get("parameters") or {}
            if not isinstance(params, dict) or not all(is_scalar(v) for v in params.values()):
                env.problem("comparison_baseline.parameters", "expected a mapping of scalar parameters")
            else:
                check_strategy_params([spec], params, "comparison_baseline.parameters", env)
            return {"strategy": str(b["strategy"]), "parameters": dict(params)}
        text = b.strip()
        if text.lower() in BASELINE_ALIASES:
            return BASELINE_ALIASES[text.lower()]
        if _is_reference(text):
            return text
        env.problem("comparison_baseline", f"unknown baseline '{b}': use buy_and_hold, {{strategy, parameters}} or "
                                           "'phase.output' (a best_parameters, optimal_ensemble_weights or "
                                           "performance_validation output of this workflow)")
        return b

    def references(self, cfg: Config) -> tuple[tuple[str, str], ...]:
        b = cfg.comparison_baseline
        if cfg.shadow_mode and isinstance(b, str) and _is_reference(b):
            return ((b, "comparison_baseline"),)
        return ()

    def bind(self, cfg: Config) -> PhaseKind:
        return self if cfg.shadow_mode else _WITHOUT_SHADOW

    def market_range(self, cfg: Config) -> tuple[date, date] | None:
        if cfg.start_date is None:
            return None
        end = cfg.end_date or _last_weekday_before_today()
        return (cfg.history_start or cfg.start_date, end) if end >= cfg.start_date else None

    def partitions(self, cfg: Config) -> MarketDays:
        return MarketDays(cfg.start_date, cfg.end_date)

    def checks(self, cfg: Config) -> tuple[Check, ...]:
        thr = cfg.deviation_threshold
        blocking = cfg.monitoring.deviation_alerts
        return (
            Check("duration_days", f"paper trading lasts {cfg.duration_days} market days: passes once the ledger "
                                   "has booked them (a warning until then)"),
            Check("tracking_deviation", f"the ledger's cumulative return is within {thr:g} standard deviations of "
                                        "the backtest's (block-bootstrap paths of its daily returns of the same length; "
                                        f"from day {cfg.min_days})", blocking=blocking),
            Check("volatility_deviation", f"the ledger's daily volatility is within {thr:g} standard deviations of "
                                          f"the backtest's (log volatility of the same paths; from day {cfg.min_days})",
                  blocking=blocking),
        )

    # ------------------------------------------------------------------ running
    def run_partitions(self, ctx: PhaseContext) -> PhaseResult:
        """Books the days in ``ctx.partition_keys`` (none: every day it can) in one pass: a day
        continues the account of the day before it (its own rows carry their ``date``)."""
        cfg: Config = ctx.config
        bars = ctx.need("bars")
        if cfg.history_start is None:  # no data section: the history starts with the research bars
            cfg = cfg.model_copy(update={"history_start": pd.Timestamp(bars["date"].min()).date()})
        deployment, notes = self._deployment(ctx, cfg)
        symbols = sorted(bars["symbol"].unique())
        keys = self._keys(ctx, cfg)
        close = self._history(ctx, cfg, symbols, keys[-1])
        start = pd.Timestamp(cfg.start_date)
        trading = cfg.trading()
        try:
            booked = ledger.book(close, deployment, trading, start, capital=cfg.initial_capital)
        except ValueError as exc:
            raise PhaseError(f"field 'config': {exc}") from None
        self._same_deployment(ctx, deployment)
        expected = self._expected(ctx, cfg, bars, close, deployment, trading, start)
        daily = self._tracking(booked.daily, expected, cfg)
        daily.insert(3, "deployment", deployment.to_json())
        daily.insert(4, "strategy", deployment.describe())
        rows = booked.rows
        outputs = {"ledger": rows, "performance_validation": daily}
        comparison = None
        if cfg.shadow_mode:
            base = self._baseline_deployment(ctx, cfg, deployment)
            other = ledger.book(close, base, trading, start, capital=cfg.initial_capital, book_name="baseline")
            rows = pd.concat([rows, other.rows], ignore_index=True).sort_values(["date", "book", "symbol"],
                                                                                 kind="stable", ignore_index=True)
            comparison = _compare(booked.daily, other.daily, base.describe(), trading.periods_per_year)
            outputs = {"ledger": rows, "performance_validation": daily, "comparative_results": comparison}
        tracked = ledger.tracking(daily["return"].to_numpy(), expected.to_numpy(), n_boot=cfg.n_bootstrap,
                                  block=cfg.bootstrap_block, seed=cfg.seed)
        metrics = self._metrics(daily, comparison, tracked, cfg, trading.periods_per_year)
        checks = self._checks(daily, expected, tracked, cfg)
        wanted = set(keys)
        outputs = {k: v[v["date"].dt.strftime("%Y-%m-%d").isin(wanted)].reset_index(drop=True)
                   for k, v in outputs.items()}
        meta = self._metadata(cfg, deployment, notes, daily, keys, metrics, comparison)
        for line in notes:
            ctx.log.warning(line)
        return PhaseResult(outputs=outputs, metadata={k: meta for k in outputs}, metrics=metrics, checks=checks)

    # ------------------------------------------------------------------ pieces of run
    def _deployment(self, ctx: PhaseContext, cfg: Config) -> tuple[ledger.Deployment, list[str]]:
        """What is traded and the notes about what of the source could not be followed."""
        behaviour = {k: v for k, v in cfg.model_dump(include=set(ledger.BEHAVIOUR_KEYS)).items()}
        explicit = {k: behaviour[k] for k in ledger.BEHAVIOUR_KEYS if k in cfg.model_fields_set}
        if cfg.parameters:
            member = ledger.Member(cfg.strategy or DEFAULT_STRATEGY, dict(cfg.parameters))
            return ledger.Deployment((member,), behaviour, member.strategy), []
        found = [u for u in ctx.upstream if u.consumed and u.canonical in DEPLOYED_INPUTS]
        if not found:
            raise PhaseError(f"needs a deployed configuration: one of {', '.join(DEPLOYED_INPUTS)} (none is connected)")
        src = found[0]
        dep, notes = deployment_from(src.canonical, src.value, dict(src.config), src.ref)
        settings = {**dep.settings, **explicit}
        return ledger.Deployment(dep.members, settings, dep.label), notes

    def _baseline_deployment(self, ctx: PhaseContext, cfg: Config, deployed: ledger.Deployment) -> ledger.Deployment:
        b = cfg.comparison_baseline
        if b == "buy_and_hold":
            return ledger.Deployment.buy_and_hold(deployed.settings)
        if isinstance(b, dict):
            return ledger.Deployment((ledger.Member(b["strategy"], dict(b.get("parameters") or {})),),
                                     deployed.settings, b["strategy"])
        phase, _, out = str(b).partition(".")
        hit = next((u for u in ctx.upstream if u.phase == phase and (u.output == out or u.canonical == out)), None)
        if hit is None or hit.value is None:
            raise PhaseError(f"field 'comparison_baseline': '{b}' was not loaded")
        if hit.canonical not in DEPLOYED_INPUTS:
            raise PhaseError(f"field 'comparison_baseline': '{b}' is a {hit.canonical} table, not a deployable "
                             f"configuration ({', '.join(DEPLOYED_INPUTS)})")
        dep, _ = deployment_from(hit.canonical, hit.value, dict(hit.config), hit.ref)
        return dep

    def _keys(self, ctx: PhaseContext, cfg: Config) -> list[str]:
        """The ledger days of this run: the run's partitions, or (outside Dagster) every day from
        the start to end_date / the last stored market day."""
        if ctx.partition_keys:
            return sorted(ctx.partition_keys)
        stored = sorted(ctx.store.stored_partitions(list(MARKET_KEY))) if ctx.store is not None else []
        end = str(cfg.end_date) if cfg.end_date else (stored[-1] if stored else str(cfg.start_date))
        keys = [d.strftime("%Y-%m-%d") for d in pd.bdate_range(cfg.start_date, end)]
        if not keys:
            raise PhaseError(f"no market days from {cfg.start_date} to {end}")
        return keys

    def _history(self, ctx: PhaseContext, cfg: Config, symbols: list[str], last: str) -> pd.DataFrame:
        """Closes (dates x symbols) from history_start to ``last``, every weekday's partition stored."""
        keys = [d.strftime("%Y-%m-%d") for d in pd.bdate_range(cfg.history_start, last)]
        try:
            bars = ctx.store.read_partitions(list(MARKET_KEY), keys, columns=BAR_COLUMNS)
        except MissingPartitionsError as exc:
            raise PhaseError(str(exc)) from None
        bars = bars[bars["symbol"].isin(symbols)]
        if bars.empty:
            raise PhaseError(f"no market bars of {', '.join(symbols)} between {cfg.history_start} and {last}")
        close = close_matrix(bars)
        missing = [s for s in symbols if s not in close.columns]
        if missing:
            raise PhaseError(f"no market bars of {', '.join(missing)} between {cfg.history_start} and {last}")
        return close[symbols]

    def _same_deployment(self, ctx: PhaseContext, deployment: ledger.Deployment) -> None:
        """The ledger follows one configuration: a different one than the day before is refused."""
        prev = ctx.previous("performance_validation")
        if prev is None or not len(prev):
            return
        before = str(prev["config_id"].iloc[-1])
        if before != deployment.config_id:
            day = pd.Timestamp(prev["date"].iloc[-1]).date()
            raise PhaseError(f"the deployed configuration changed since the ledger's last booked day ({day}: "
                             f"{before}, now {deployment.config_id}: {deployment.describe()}); a ledger follows one "
                             "configuration: start a new one (a later config.start_date) to deploy another")

    def _expected(self, ctx: PhaseContext, cfg: Config, bars: pd.DataFrame, close: pd.DataFrame,
                  deployment: ledger.Deployment, trading, start: pd.Timestamp) -> pd.Series:
        """The expected daily returns: the connected backtest's, else the deployed configuration's
        engine returns on ``expected_split`` of the research data; only days before the ledger."""
        report = ctx.inputs.get("performance_report")
        if report is not None and len(report):
            r = pd.Series(report["return"].to_numpy(dtype=float), index=pd.DatetimeIndex(report["date"]))
            source = "the connected backtest's performance_report"
        else:
            research = close.loc[close.index <= pd.Timestamp(bars["date"].max())]
            full = ledger.book(research, deployment, trading, research.index[0], capital=cfg.initial_capital)
            r = full.daily.set_index("date")["return"]
            mask = split_mask(bars, pd.DatetimeIndex(r.index), cfg.expected_split)
            r = r[mask]
            r = r.iloc[1:] if cfg.expected_split in ("all", "train") else r  # the opening trade is no return
            source = f"the deployed configuration's backtest on the {cfg.expected_split} split"
        r = r[r.index < start]
        if len(r) < MIN_EXPECTED_RETURNS:
            raise PhaseError(f"the expected distribution needs at least {MIN_EXPECTED_RETURNS} daily returns before "
                             f"the ledger's start {start.date()}; {source} has {len(r)} (field "
                             "'config.expected_split': try all)")
        r.attrs["source"] = source
        return r

    def _tracking(self, daily: pd.DataFrame, expected: pd.Series, cfg: Config) -> pd.DataFrame:
        d = daily.copy()
        path = ledger.tracking_path(d["return"].to_numpy(dtype=float), expected.to_numpy(dtype=float),
                                    n_boot=cfg.n_bootstrap, block=cfg.bootstrap_block, seed=cfg.seed)
        n = np.arange(1, len(d) + 1)
        d["day"] = n
        d["expected_mean"] = float(expected.mean())
        d["expected_std"] = float(expected.std(ddof=1))
        for key, values in path.items():
            d[key] = values
        worst = np.fmax(np.abs(path["tracking_z"]), np.abs(path["volatility_z"]))
        d["deviation"] = (n >= cfg.min_days) & (worst > cfg.deviation_threshold)
        d["days_remaining"] = np.maximum(cfg.duration_days - n, 0)
        return d

    def _metrics(self, daily: pd.DataFrame, comparison: pd.DataFrame | None, t: ledger.Tracking, cfg: Config,
                 ppy: int) -> dict[str, Any]:
        r = daily.set_index("date")["return"]
        m = compute_metrics(r.to_frame("ledger"), periods_per_year=ppy).iloc[0] if len(r) > 1 else None
        excess = float("nan")
        if comparison is not None and len(comparison):
            excess = float(comparison["cumulative_excess"].iloc[-1])
        return {
            "days_booked": int(len(daily)),
            "days_remaining": int(max(cfg.duration_days - len(daily), 0)),
            "total_return": float(daily["cumulative_return"].iloc[-1]),
            "sharpe_ratio": float(m["sharpe_ratio"]) if m is not None else float("nan"),
            "max_drawdown": float(daily["drawdown"].min()),
            "total_costs": float(daily["costs"].sum()),
            "n_trades": int(daily["n_trades"].sum()),
            "tracking_z": t.tracking_z,
            "volatility_ratio": t.volatility_ratio,
            "volatility_z": t.volatility_z,
            "expected_daily_mean": t.expected_mean,
            "expected_daily_std": t.expected_std,
            "excess_return_vs_baseline": excess,
        }

    def _checks(self, daily: pd.DataFrame, expected: pd.Series, t: ledger.Tracking,
                cfg: Config) -> dict[str, CheckOutcome]:
        n = t.n
        booked = {"days_booked": n, "first_day": str(pd.Timestamp(daily["date"].iloc[0]).date()),
                  "last_day": str(pd.Timestamp(daily["date"].iloc[-1]).date())}
        out = {"duration_days": CheckOutcome(n >= cfg.duration_days, {
            **booked, "duration_days": cfg.duration_days, "days_remaining": max(cfg.duration_days - n, 0)})}
        common = {**booked, "expected_from": expected.attrs.get("source", ""), "n_expected": t.n_expected,
                  "expected_daily_mean": t.expected_mean, "expected_daily_std": t.expected_std,
                  "threshold": cfg.deviation_threshold}
        if n < cfg.min_days:
            note = f"not tested yet: {n} of min_days {cfg.min_days} booked"
            out["tracking_deviation"] = CheckOutcome(True, {**common, "status": note})
            out["volatility_deviation"] = CheckOutcome(True, {**common, "status": note})
            return out
        for name, z, extra in (("tracking_deviation", t.tracking_z, {"p_value": t.tracking_p,
                                                                     "realized_daily_mean": t.realized_mean}),
                               ("volatility_deviation", t.volatility_z, {"p_value": t.volatility_p,
                                                                         "volatility_ratio": t.volatility_ratio})):
            key = name.split("_")[0] + "_z"
            if not math.isfinite(z):  # e.g. a ledger that has not moved yet has no volatility
                out[name] = CheckOutcome(True, {**common, key: z, "status": "not defined yet"})
            else:
                out[name] = CheckOutcome(abs(z) <= cfg.deviation_threshold, {**common, key: z, **extra})
        return out

    def _metadata(self, cfg: Config, deployment: ledger.Deployment, notes: list[str], daily: pd.DataFrame,
                  keys: list[str], metrics: dict, comparison: pd.DataFrame | None) -> dict[str, Any]:
        last = daily.iloc[-1]
        meta: dict[str, Any] = {
            "deployment": deployment.describe(), "config_id": deployment.config_id,
            "ledger_start": str(cfg.start_date), "days_booked": metrics["days_booked"],
            "days_this_run": len(keys), "run_first_day": keys[0], "run_last_day": keys[-1],
            "value": float(last["value"]), "total_return": metrics["total_return"],
            "tracking_z": metrics["tracking_z"], "duration_days": cfg.duration_days,
            "equity": charts.sparkline(daily["value"]), "no_broker": "simulated fills only",
        }
        if notes:
            meta["notes"] = " | ".join(notes)
        if comparison is not None and len(comparison):
            meta["baseline"] = str(comparison["baseline"].iloc[0])
            meta["excess_return_vs_baseline"] = metrics["excess_return_vs_baseline"]
        return meta

    # ------------------------------------------------------------------ report
    def sections(self, view: PhaseView) -> list[dict]:
        out = []
        perf = view.outputs.get("performance_validation")
        if perf is None or not len(perf):
            return out
        perf = perf.sort_values("date")
        last = perf.iloc[-1]
        out.append({"title": f"{view.phase}: paper ledger", "text": (
            f"{last['strategy']} booked from {pd.Timestamp(perf['date'].iloc[0]).date()} to "
            f"{pd.Timestamp(last['date']).date()} ({len(perf)} market days, simulated fills; no broker)."),
            "metrics": {"value": float(last["value"]), "total_return": float(last["cumulative_return"]),
                        "max_drawdown": float(perf["drawdown"].min()), "tracking_z": float(last["tracking_z"]),
                        "costs": float(perf["costs"].sum())}})
        series = {"deployed": pd.Series(perf["value"].to_numpy(), index=pd.DatetimeIndex(perf["date"]))}
        comp = view.outputs.get("comparative_results")
        if comp is not None and len(comp):
            comp = comp.sort_values("date")
            series["baseline"] = pd.Series(comp["baseline_value"].to_numpy(), index=pd.DatetimeIndex(comp["date"]))
        out.append({"title": f"{view.phase}: account value", "chart_svg": charts.line_chart_svg(series, "Value")})
        cols = ["date", "return", "value", "tracking_z", "volatility_z", "deviation"]
        out.append({"title": f"{view.phase}: last days", "table": perf[cols].tail(10), "detail": True})
        if comp is not None and len(comp):
            out.append({"title": f"{view.phase}: shadow comparison", "table": comp.tail(10), "detail": True})
        return out


class _PaperTradingWithoutShadow(PaperTrading):
    """A ledger without a baseline: no comparative_results."""

    outputs = tuple(o for o in PaperTrading.outputs if o.name != "comparative_results")

    def bind(self, cfg: Config) -> PhaseKind:
        return KIND.bind(cfg)


_WITHOUT_SHADOW = _PaperTradingWithoutShadow()


def _compare(deployed: pd.DataFrame, baseline: pd.DataFrame, label: str, ppy: int) -> pd.DataFrame:
    a = deployed.set_index("date")
    b = baseline.set_index("date").reindex(a.index)
    excess = a["return"] - b["return"]
    te = excess.expanding(min_periods=2).std(ddof=1) * math.sqrt(ppy)
    return pd.DataFrame({
        "date": a.index, "deployed_return": a["return"].to_numpy(), "baseline_return": b["return"].to_numpy(),
        "excess_return": excess.to_numpy(), "deployed_value": a["value"].to_numpy(),
        "baseline_value": b["value"].to_numpy(),
        "cumulative_excess": (a["cumulative_return"] - b["cumulative_return"]).to_numpy(),
        "tracking_error": te.to_numpy(), "baseline": label,
    })


KIND = PaperTrading()

__all__ = ["KIND", "Config", "PaperTrading", "NO_BROKER"]
