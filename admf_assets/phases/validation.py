"""validation (statistical_validation): is the best of a search luck?  A verdict from the search's
own trials -- deflated Sharpe ratio with N = the trials it ran, probability of backtest
overfitting over every trial's returns -- plus block-bootstrap Monte Carlo and bootstrap
confidence intervals, an optional walk-forward, and configurable acceptance criteria.

    - name: validation
      type: validation
      depends_on: [parameter_optimization]        # its best_parameters and optimization_history
      config:
        validation_method: [monte_carlo, bootstrap, deflated_sharpe, pbo, walk_forward]
        n_simulations: 1000
        confidence_level: 0.95
        acceptance_criteria: {min_deflated_sharpe: 0.95, max_pbo: 0.5, min_sharpe_ratio: 1.0,
                              max_drawdown: 0.15, min_win_rate: 0.45}
      critical: true                               # a failed verdict blocks the phases downstream

Every statistic is computed on the data the search selected on (its ``data_split``, default
train) with its cost model, so the selected strategy and the trials it beat are compared like
with like.  The trials' returns are recomputed from ``optimization_history`` (or replayed from
a ``signal_capture`` of them when one is connected).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, StrictInt, StrictStr, field_validator, model_validator

from admf_assets.engine import charts, labels
from admf_assets.engine import validation as val
from admf_assets.engine import walkforward as wf
from admf_assets.engine.backtest import run_backtest
from admf_assets.engine.capture import from_frame, replay
from admf_assets.engine.metrics import compute_metrics
from admf_assets.engine.paramsets import evaluate_sets, parameter_set, parameter_sets, trading_overrides, with_trading
from admf_assets.engine.strategies import get_strategy, normalize_params
from admf_assets.phases import walk_forward as wf_kind
from admf_assets.phases.common import (BARS, DataSplitName, TradingSettings, check_strategy_params, close_matrix,
                                       check_fixed_parameters, inherited_trading, known_strategy, renamed_keys,
                                       split_mask)
from admf_assets.phases.kind import ConfigEnv, Consumes, Criterion, Image, Insight, Output, PhaseContext, PhaseError, \
    PhaseKind, PhaseResult, PhaseView, StrictModel, Verdict
from admf_assets.suggest import closest

METHODS = ("monte_carlo", "bootstrap", "deflated_sharpe", "pbo", "walk_forward")
DEFAULT_METHODS = ("monte_carlo", "bootstrap", "deflated_sharpe", "pbo")
METHOD_ALIASES = {
    **{m: m for m in METHODS},
    "monte_carlo_simulation": "monte_carlo", "mc": "monte_carlo",
    "bootstrap_ci": "bootstrap", "bootstrap_sharpe": "bootstrap",
    "deflated_sharpe_ratio": "deflated_sharpe", "dsr": "deflated_sharpe", "probabilistic_sharpe": "deflated_sharpe",
    "psr": "deflated_sharpe",
    "probability_of_backtest_overfitting": "pbo", "cscv": "pbo",
    "walk_forward_validation": "walk_forward", "walk_forward_analysis": "walk_forward",
}
SET_INPUTS = ("best_parameters", "optimization_history")
#: return series a validation can judge instead of a search's best set, and their return column
RETURN_SOURCES = {"oos_equity": "return", "performance_report": "return", "ensemble_returns": "ensemble"}
#: statistics a return series (no trials, no positions) cannot give
NOT_FOR_RETURNS = ("pbo", "pbo_prob_oos_loss", "trade_win_rate", "walk_forward_efficiency", "walk_forward_oos_sharpe")


class Acceptance(StrictModel):
    """Thresholds of the verdict; ``null`` switches a criterion off.  A criterion whose method is
    not run is not part of the verdict."""

    __key_aliases__ = ("min_dsr", "min_psr")

    min_sharpe_ratio: float | None = None  #: annualized, of the validated returns
    max_drawdown: float | None = Field(default=None, gt=0, le=1)  #: depth, 0.15 = 15 % below the peak
    min_win_rate: float | None = Field(default=None, ge=0, le=1)  #: the platform's win_rate (winning bars)
    min_deflated_sharpe: float | None = Field(default=0.95, ge=0, le=1)
    min_probabilistic_sharpe: float | None = Field(default=None, ge=0, le=1)
    max_pbo: float | None = Field(default=0.5, ge=0, le=1)
    min_walk_forward_efficiency: float | None = 0.5
    max_mc_prob_loss: float | None = Field(default=None, ge=0, le=1)  #: Monte Carlo P(total return < 0)
    min_sharpe_ci_low: float | None = None  #: lower end of the bootstrap interval of the Sharpe ratio

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, v: Any) -> Any:
        return renamed_keys(v, {"min_dsr": "min_deflated_sharpe", "min_psr": "min_probabilistic_sharpe"})


#: criterion -> (statistic, rule, method that computes it (None: always), description)
CRITERIA = {
    "min_sharpe_ratio": ("sharpe_ratio", "min", None, "annualized Sharpe ratio"),
    "max_drawdown": ("max_drawdown", "min", None, "maximum drawdown"),
    "min_win_rate": ("win_rate", "min", None, "share of winning bars"),
    "min_deflated_sharpe": ("deflated_sharpe_ratio", "min", "deflated_sharpe", "deflated Sharpe ratio"),
    "min_probabilistic_sharpe": ("probabilistic_sharpe_ratio", "min", "deflated_sharpe", "probabilistic Sharpe ratio"),
    "max_pbo": ("pbo", "max", "pbo", "probability of backtest overfitting"),
    "min_walk_forward_efficiency": ("walk_forward_efficiency", "min", "walk_forward", "walk-forward efficiency"),
    "max_mc_prob_loss": ("mc_prob_loss", "max", "monte_carlo", "Monte Carlo probability of a loss"),
    "min_sharpe_ci_low": ("bootstrap_sharpe_ci_low", "min", "bootstrap", "bootstrap Sharpe lower bound"),
}


class Config(TradingSettings):
    """Trading settings: those of the search that ran the trials, with the keys this phase sets
    on top (applied to the validated set and to every trial alike)."""

    __key_aliases__ = ("tests", "methods", "validation_tests", "thresholds", "metrics")

    validation_method: list[StrictStr] = Field(default_factory=lambda: list(DEFAULT_METHODS))
    n_simulations: StrictInt = Field(default=1000, ge=10)
    n_bootstrap: StrictInt = Field(default=10_000, ge=100)
    confidence_level: float = Field(default=0.95, gt=0, lt=1)
    block_size: StrictInt = Field(default=5, ge=1)
    resample: Literal["returns", "trades"] = "returns"
    seed: StrictInt = 42
    data_split: DataSplitName | None = None  #: default: the search's split
    benchmark_sharpe: float = 0.0  #: annualized SR* of the PSR and the minimum track record
    trials: Literal["count", "effective"] = "count"
    pbo_partitions: StrictInt = Field(default=16, ge=2, le=20)
    pbo_metric: Literal["sharpe_ratio", "mean_return"] = "sharpe_ratio"
    acceptance_criteria: Acceptance = Field(default_factory=Acceptance)
    walk_forward: wf_kind.Windows = Field(default_factory=wf_kind.Windows)
    strategy: StrictStr | None = None
    parameters: dict[StrictStr, Any] | None = None
    metrics: list[StrictStr] | None = None  # seed 000 lists the metrics to report: every one is

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, v: Any) -> Any:
        for alias in ("tests", "methods", "validation_tests"):
            v = renamed_keys(v, {alias: "validation_method"})
        v = renamed_keys(v, {"thresholds": "acceptance_criteria"})
        if isinstance(v, dict) and isinstance(v.get("validation_method"), str):
            v = {**v, "validation_method": [v["validation_method"]]}
        return v

    @field_validator("pbo_partitions")
    @classmethod
    def _even(cls, n: int) -> int:
        if n % 2:
            raise ValueError(f"must be even (got {n})")
        return n

    @field_validator("parameters")
    @classmethod
    def _scalars(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_fixed_parameters(v)


class Validation(PhaseKind):
    name = "validation"
    aliases = ("statistical_validation", "comprehensive_validation", "robustness_validation")
    description = ("Is it luck? Deflated Sharpe ratio over the search's trials, probability of backtest "
                   "overfitting, Monte Carlo and bootstrap intervals, walk-forward; an is_valid verdict.")
    Config = Config
    example_config = {"validation_method": list(METHODS), "n_simulations": 200, "n_bootstrap": 500,
                      "walk_forward": {"train_period_days": 60, "test_period_days": 30}}
    outputs = (
        Output("validation_summary", "The verdict and every statistic with its interval, threshold and pass/fail",
               aliases=("validation_results", "validated_strategy", "validation_report", "statistical_tests"),
               columns=("method", "statistic", "value", "ci_low", "ci_high", "threshold", "rule", "passed",
                        "description")),
        Output("monte_carlo_simulations", "One row per resampled path: Sharpe ratio, max drawdown, total return",
               aliases=("monte_carlo", "monte_carlo_distribution"), enabled_by=("validation_method", "monte_carlo"),
               columns=("sim", "sharpe_ratio", "max_drawdown", "total_return")),
        Output("pbo_combinations", "CSCV: per combination of in-sample blocks, the in-sample best trial and its "
               "out-of-sample rank", aliases=("pbo", "cscv"), enabled_by=("validation_method", "pbo"),
               columns=("combination", "is_blocks", "best_trial", "is_performance", "oos_performance", "oos_rank",
                        "logit", "overfit")),
        Output("walk_forward_results", "Walk-forward folds of the search's space over the validated period",
               aliases=("walk_forward",), enabled_by=("validation_method", "walk_forward"),
               columns=wf.FOLD_COLUMNS),
    )
    consumes = (BARS,
                Consumes(("best_parameters", *RETURN_SOURCES), required=True, unless_config="parameters"),
                Consumes(("best_parameters",), required=False, together_with=("optimization_history",)),
                Consumes(("optimization_history",), required=False),
                Consumes(("compressed_signals",), required=False), Consumes(("signal_metadata",), required=False))
    metrics = ("is_valid", "n_failed_criteria", "sharpe_ratio", "max_drawdown", "win_rate", "total_return",
               "trade_win_rate", "n_trades", "probabilistic_sharpe_ratio", "deflated_sharpe_ratio",
               "expected_max_sharpe", "n_trials", "effective_trials", "trials_sharpe_std", "min_track_record_years",
               "min_backtest_years", "pbo", "pbo_prob_oos_loss", "performance_degradation", "mc_sharpe_ci_low",
               "mc_sharpe_ci_high", "mc_max_drawdown_ci_low", "mc_total_return_ci_low", "mc_total_return_ci_high",
               "mc_prob_loss", "bootstrap_sharpe_ci_low", "bootstrap_sharpe_ci_high", "walk_forward_efficiency",
               "walk_forward_oos_sharpe")
    default_criteria = {"is_valid": {"min": 1}}

    # ------------------------------------------------------------------ validation
    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        methods: list[str] = []
        for i, m in enumerate(cfg.validation_method):
            canon = METHOD_ALIASES.get(str(m).strip().lower())
            if canon is None:
                best = closest(m, METHOD_ALIASES)
                hint = f" (did you mean '{METHOD_ALIASES[best]}'?)" if best else ""
                env.warn(f"validation_method[{i}]", f"ignored: '{m}' is not a validation method{hint}; "
                                                    f"methods: {', '.join(METHODS)}")
            elif canon not in methods:
                methods.append(canon)
        if not methods:
            env.warn("validation_method", f"no known method given: running {', '.join(DEFAULT_METHODS)}")
            methods = list(DEFAULT_METHODS)
        if cfg.parameters is not None or cfg.strategy is not None:
            spec = known_strategy(cfg.strategy or "momentum", "strategy", env)
            check_strategy_params([spec], cfg.parameters or {}, "parameters", env)
            if "pbo" in methods:
                env.warn("validation_method", "ignored: pbo needs the trials of a search (the parameters are fixed)")
                methods.remove("pbo")
        if cfg.metrics is not None:
            env.warn("metrics", "ignored: every statistic is reported (see validation_summary)")
        if cfg.resample == "trades" and "monte_carlo" not in methods:
            env.warn("resample", "ignored: no monte_carlo method")
        set_ = cfg.acceptance_criteria.model_fields_set
        for name in set_:
            method = CRITERIA[name][2]
            if method is not None and method not in methods and getattr(cfg.acceptance_criteria, name) is not None:
                env.warn(f"acceptance_criteria.{name}", f"ignored: method '{method}' is not in validation_method")
        if "walk_forward" in methods and env.data is not None:
            w = cfg.walk_forward
            days = len(wf.trading_days(env.data.start_date, env.data.end_date))
            need = w.train_period_days + w.gap_days + w.test_period_days
            if days < need:
                env.problem("walk_forward.train_period_days",
                            f"the data has {days} trading days; one fold needs train {w.train_period_days} "
                            f"+ gap {w.gap_days} + test {w.test_period_days} = {need}")
        return cfg.model_copy(update={"validation_method": methods})

    def criteria(self, cfg: Config) -> list[val.Criterion]:
        out = []
        for name, (stat, op, method, _) in CRITERIA.items():
            thr = getattr(cfg.acceptance_criteria, name)
            if thr is None or (method is not None and method not in cfg.validation_method):
                continue
            if name == "max_drawdown":  # a depth in the YAML, a negative drawdown in every table
                out.append(val.Criterion(name, stat, "min", -float(thr)))
            else:
                out.append(val.Criterion(name, stat, op, float(thr)))
        return out

    # ------------------------------------------------------------------ running
    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        methods = set(cfg.validation_method)
        sub = self._subject(ctx, cfg)
        r, positions, sets, notes, trading = sub.returns, sub.positions, sub.sets, sub.notes, sub.trading
        ppy = trading.periods_per_year
        dates = r.index
        m = compute_metrics(r.to_frame("validated"), ppy, positions=positions).iloc[0]
        values: dict[str, float] = {k: float(m[k]) for k in ("sharpe_ratio", "max_drawdown", "win_rate", "total_return")}
        twr, n_trades = val.trade_win_rate(r.to_numpy(), positions) if positions is not None else (np.nan, np.nan)
        values.update(trade_win_rate=twr, n_trades=float(n_trades))
        rows: list[dict] = []
        outputs: dict[str, pd.DataFrame] = {}

        def add(method, stat, value, description, ci=(np.nan, np.nan)):
            rows.append({"method": method, "statistic": stat, "value": float(value), "ci_low": float(ci[0]),
                         "ci_high": float(ci[1]), "description": description})

        for stat, desc in (("sharpe_ratio", "annualized Sharpe ratio"), ("total_return", "total return"),
                           ("max_drawdown", "maximum drawdown"), ("win_rate", "share of winning bars"),
                           ("trade_win_rate", "share of winning trades"), ("n_trades", "trades")):
            add("performance", stat, values[stat], desc)

        # trial returns: the search's trials on the same data, same cost model
        trial_r = None
        if sets:
            trial_r, source = self._trial_returns(ctx, sub.close, sets, trading, sub.set_trading)
            trial_r = trial_r.to_numpy()[sub.mask]
            notes.append(f"trial returns: {source}")
        mom = val.sharpe_moments(r.to_numpy())
        n_obs = mom.n
        sr_bench = cfg.benchmark_sharpe / math.sqrt(ppy)
        n_trials = len(sets) if sets else 1
        eff = float(n_trials)
        var_trials = 0.0
        if trial_r is not None and trial_r.shape[1] > 1:
            sd = trial_r.std(axis=0, ddof=1)
            sr_trials = np.where(sd > 0, trial_r.mean(axis=0) / np.where(sd > 0, sd, 1.0), 0.0)
            var_trials = float(np.var(sr_trials, ddof=1))
            eff = val.effective_number_of_trials(trial_r)
        n_used = eff if cfg.trials == "effective" else float(n_trials)
        values.update(n_trials=float(n_trials), effective_trials=eff,
                      trials_sharpe_std=math.sqrt(var_trials) * math.sqrt(ppy))
        if "deflated_sharpe" in methods:
            psr = val.probabilistic_sharpe_ratio(mom.sr, n_obs, sr_bench, mom.skew, mom.kurtosis)
            sr0 = val.expected_max_sharpe(max(n_used, 1.0), var_trials)
            dsr = val.probabilistic_sharpe_ratio(mom.sr, n_obs, sr0, mom.skew, mom.kurtosis)
            trl = val.min_track_record_length(mom.sr, sr_bench, mom.skew, mom.kurtosis, cfg.confidence_level) / ppy
            btl = val.min_backtest_length(max(n_used, 1.0), values["sharpe_ratio"]) \
                if values["sharpe_ratio"] > 0 and n_used > 1 else float("nan")
            values.update(probabilistic_sharpe_ratio=psr, deflated_sharpe_ratio=dsr,
                          expected_max_sharpe=sr0 * math.sqrt(ppy), min_track_record_years=trl,
                          min_backtest_years=btl)
            add("deflated_sharpe", "probabilistic_sharpe_ratio", psr,
                f"P(true Sharpe > {cfg.benchmark_sharpe:g}) from {n_obs} returns (skew {mom.skew:.2f}, "
                f"kurtosis {mom.kurtosis:.2f})")
            selected = n_trials > 1
            trials_text = f"{n_used:.1f} effective" if cfg.trials == "effective" else f"{n_trials}"
            if selected:
                add("deflated_sharpe", "expected_max_sharpe", sr0 * math.sqrt(ppy),
                    f"annualized Sharpe the best of {trials_text} skill-less trials reaches by luck (trial Sharpe "
                    f"std {values['trials_sharpe_std']:.2f})")
            add("deflated_sharpe", "deflated_sharpe_ratio", dsr,
                f"P(true Sharpe > 0) after selecting the best of {trials_text} trials" if selected else
                "no selection among trials: the probabilistic Sharpe ratio against 0")
            if selected:
                add("deflated_sharpe", "n_trials", n_trials, "trials the search ran")
                add("deflated_sharpe", "effective_trials", eff, "independent trials equivalent (mean correlation)")
            add("deflated_sharpe", "min_track_record_years", trl,
                f"years of returns needed for {cfg.confidence_level:.0%} confidence that the Sharpe exceeds "
                f"{cfg.benchmark_sharpe:g}")
            if selected:
                add("deflated_sharpe", "min_backtest_years", btl,
                    f"years of data so that {trials_text} skill-less trials are not expected to reach this Sharpe")
        if "pbo" in methods:
            values.update(self._pbo(cfg, trial_r, add, outputs, notes))
        if "monte_carlo" in methods:
            resample = cfg.resample if positions is not None else "returns"
            if resample != cfg.resample:
                notes.append("monte_carlo: the returns are resampled (a return series has no trades)")
            mc = val.monte_carlo(r.to_numpy(), cfg.n_simulations, cfg.confidence_level, cfg.seed, cfg.block_size,
                                 resample, positions=positions, periods_per_year=ppy)
            s = mc.summary.set_index("statistic")
            values.update(mc_sharpe_ci_low=s.loc["sharpe_ratio", "ci_low"], mc_sharpe_ci_high=s.loc["sharpe_ratio", "ci_high"],
                          mc_max_drawdown_ci_low=s.loc["max_drawdown", "ci_low"],
                          mc_total_return_ci_low=s.loc["total_return", "ci_low"],
                          mc_total_return_ci_high=s.loc["total_return", "ci_high"],
                          mc_prob_loss=s.loc["total_return", "prob_below_zero"])
            how = (f"{cfg.n_simulations} paths, {resample} resampled"
                   + (f" in blocks of ~{cfg.block_size} bars" if resample == "returns" else " as whole trades"))
            for stat in ("sharpe_ratio", "max_drawdown", "total_return"):
                add("monte_carlo", f"mc_{stat}", s.loc[stat, "median"], f"median over {how}; interval "
                    f"{cfg.confidence_level:.0%}", (s.loc[stat, "ci_low"], s.loc[stat, "ci_high"]))
            add("monte_carlo", "mc_prob_loss", values["mc_prob_loss"], "share of paths ending with a loss")
            outputs["monte_carlo_simulations"] = mc.simulations
        if "bootstrap" in methods:
            b = val.bootstrap_sharpe(r.to_numpy(), cfg.n_bootstrap, cfg.confidence_level, cfg.seed + 1,
                                     cfg.block_size, periods_per_year=ppy)
            values.update(bootstrap_sharpe_ci_low=b["ci_low"], bootstrap_sharpe_ci_high=b["ci_high"])
            add("bootstrap", "bootstrap_sharpe_ci_low", b["ci_low"],
                f"lower end of the {cfg.confidence_level:.0%} bootstrap interval of the Sharpe ratio "
                f"({cfg.n_bootstrap} resamples)", (b["ci_low"], b["ci_high"]))
            add("bootstrap", "analytic_sharpe_interval", b["sharpe_ratio"],
                "Sharpe ratio with its non-normal standard-error interval", (b["analytic_ci_low"],
                                                                             b["analytic_ci_high"]))
        if "walk_forward" in methods:
            values.update(self._walk_forward(ctx, cfg, sub.close.loc[dates[0]:] if sub.close is not None else None,
                                             trading, add, outputs, notes))

        criteria = []
        for c in self.criteria(cfg):  # what this input cannot measure is not part of the verdict
            if c.statistic in NOT_FOR_RETURNS and sub.kind == "returns" and not np.isfinite(values.get(c.statistic, np.nan)):
                notes.append(f"{c.name}: not applicable to a return series (no trials)")
            else:
                criteria.append(c)
        if sub.kind == "returns" and "pbo" in methods:
            notes.append("pbo: not computed (a return series has no trials)")
        ok, verdict = val.judge(values, criteria)
        failed = verdict.loc[~verdict["passed"]]
        why = "; ".join(f"{r.statistic} {_fmt(r.value)} fails {r.rule}" for r in failed.itertuples())
        table = pd.DataFrame(rows)
        thr = {c.statistic: c for c in criteria}
        table["threshold"] = [thr[s].threshold if s in thr else np.nan for s in table["statistic"]]
        table["rule"] = [thr[s].text if s in thr else "" for s in table["statistic"]]
        table["passed"] = [bool(verdict.set_index("statistic").loc[s, "passed"]) if s in thr else None
                           for s in table["statistic"]]
        head = pd.DataFrame([{"method": "verdict", "statistic": "is_valid", "value": float(ok), "ci_low": np.nan,
                              "ci_high": np.nan, "threshold": 1.0, "rule": "every criterion passes", "passed": ok,
                              "description": ("valid: " if ok else "not valid: ") +
                                             (why or "every criterion passes ("
                                              + ", ".join(c.text for c in criteria) + ")")}])
        summary = pd.concat([head, table], ignore_index=True)[list(self.outputs[0].columns)]
        summary["passed"] = summary["passed"].astype(object)
        outputs = {"validation_summary": summary, **outputs}
        values.update(is_valid=float(ok), n_failed_criteria=float(len(failed)))
        metrics = {k: _num(values.get(k, float("nan"))) for k in self.metrics}
        period = f"{dates[0].date()}..{dates[-1].date()}"
        meta = {"validation_summary": {
            "verdict": "VALID" if ok else "NOT VALID", "reason": why or "every criterion passes",
            "validated": sub.label, "period": period,
            "methods": ", ".join(cfg.validation_method), "notes": "; ".join(notes),
            **{f"criterion/{r.criterion}": f"{_fmt(r.value)} {'PASS' if r.passed else 'FAIL'} ({r.rule})"
               for r in verdict.itertuples()},
            "preview": summary}}
        if "monte_carlo_simulations" in outputs:
            meta["monte_carlo_simulations"] = {"paths": cfg.n_simulations, "resample": cfg.resample,
                                               "block_size": cfg.block_size, "seed": cfg.seed,
                                               "distribution": Image(charts.histogram(
                                                   mc.simulations["sharpe_ratio"], "Sharpe ratio of resampled paths",
                                                   markers=_mc_markers(summary)), alt="Monte Carlo Sharpe ratios"),
                                               "preview": mc.summary}
        for name, fill in (("pbo_combinations", {"pbo": values.get("pbo"), "partitions": cfg.pbo_partitions}),
                           ("walk_forward_results", {"walk_forward_efficiency": values.get("walk_forward_efficiency")})):
            if not ctx.wants(name):
                continue
            if name not in outputs:  # declared, but this input cannot give it: an empty table that says why
                outputs[name] = pd.DataFrame(columns=list(self.output(name).columns))
                fill = {**fill, "note": "not computed: " + next((n for n in notes if n.startswith(name.split("_")[0])),
                                                               "see validation_summary notes")}
            meta[name] = {"rows": len(outputs[name]), **fill}
        return PhaseResult(outputs=outputs, metadata=meta, metrics=metrics)

    # ------------------------------------------------------------------ pieces
    def _subject(self, ctx: PhaseContext, cfg: Config) -> "_Subject":
        """What is validated: the search's best set with its trials, a fixed set, or a return
        series (a walk-forward's stitched out-of-sample account, a backtest's returns)."""
        search_cfg = ctx.upstream_config("optimization_history") or ctx.upstream_config("best_parameters") or {}
        trading = inherited_trading(dict(search_cfg), cfg)
        fixed = cfg.parameters is not None or cfg.strategy is not None
        if not fixed and ctx.inputs.get("best_parameters") is None:
            for canonical, column in RETURN_SOURCES.items():
                frame = ctx.inputs.get(canonical)
                if frame is None:
                    continue
                where = "as given"
                if "split" in frame.columns:  # weights fit on train: the test rows unless told otherwise
                    split = cfg.data_split or "test"
                    if split != "all":
                        frame = frame[frame["split"] == split]
                    where = f"on the {split} split"
                elif cfg.data_split is not None:
                    where += f" (data_split {cfg.data_split} does not apply to it)"
                if len(frame) < 20:
                    raise PhaseError(f"input {canonical} has {len(frame)} returns {where}; validation needs at least 20")
                r = pd.Series(frame[column].to_numpy(dtype=np.float64), index=pd.DatetimeIndex(frame["date"]),
                              name="returns")
                notes = [f"the returns of {canonical} {where}; no trials: the deflated Sharpe ratio is the "
                         f"probabilistic one"]
                return _Subject("returns", r, None, [], None, None, trading, notes, f"{canonical} ({where})")
            raise PhaseError("needs best_parameters (with optimization_history) or a return series upstream")
        bars = ctx.need("bars")
        split = cfg.data_split or search_cfg.get("data_split", "train")
        close_all = close_matrix(bars)
        mask_all = split_mask(bars, close_all.index, split)
        if mask_all.sum() < 20:
            raise PhaseError(f"the {split} split has {int(mask_all.sum())} bars; validation needs at least 20")
        close = close_all.loc[:close_all.index[mask_all][-1]]  # history up to the split's end: warm-up
        mask = mask_all[: len(close)]
        set_trading: list[dict] = []
        searched: dict = {}
        if fixed:
            chosen, sets, notes = (cfg.strategy or "momentum", dict(cfg.parameters or {})), [], ["fixed parameters: no trials"]
        else:
            best, hist = ctx.need("best_parameters"), ctx.need("optimization_history")
            if best.empty or hist.empty:
                raise PhaseError(f"input {'best_parameters' if best.empty else 'optimization_history'} is empty")
            try:
                chosen = parameter_set(best.iloc[0])
                hist = hist.sort_values("trial_id") if "trial_id" in hist.columns else hist
                sets = parameter_sets(hist)
                set_trading = [trading_overrides(r) for _, r in hist.iterrows()]
                searched = trading_overrides(best.iloc[0])
            except ValueError as exc:
                raise PhaseError(f"inputs best_parameters / optimization_history: {exc}") from None
            notes = [f"{len(sets)} trials from optimization_history"]
            if searched:
                notes.append("searched trading settings of each trial applied: "
                             + ", ".join(f"{k} {v:g}" for k, v in searched.items()) + " for the validated set")
        try:
            bt = run_backtest(close, chosen[0], chosen[1], with_trading(trading, searched))
        except ValueError as exc:
            raise PhaseError(f"the validated parameter set: {exc}") from None
        r = bt.returns.iloc[:, 0][mask]
        label = f"{chosen[0]} {chosen[1]} on the {split} split"
        return _Subject("search" if sets else "fixed", r, bt.positions[mask], sets, close, mask, trading, notes, label,
                        set_trading)

    def _trial_returns(self, ctx: PhaseContext, close: pd.DataFrame, sets: list, trading,
                       set_trading: list | None = None) -> tuple[pd.DataFrame, str]:
        """Daily returns of every trial (with its searched trading settings): replayed from
        captured signals when they hold every trial in the search's mode and no trial searched
        trading settings, else recomputed."""
        wide, table = ctx.inputs.get("compressed_signals"), ctx.inputs.get("signal_metadata")
        per_trial = bool(set_trading) and any(set_trading)
        if wide is not None and table is not None and len(table) and not per_trial:
            try:
                cap = from_frame(wide, table)
                ids = _captured_ids(cap.columns, sets)
                modes = set(cap.columns["mode"])
                if ids is not None and modes == {trading.mode} and close.index.isin(cap.index).all():
                    cut = cap.select(ids)
                    cut = type(cut)(cut.index[cut.index <= close.index[-1]], cut.symbols,
                                    cut.positions[: int((cut.index <= close.index[-1]).sum())], cut.columns)
                    rets = replay(cut, close.loc[cut.index], trading)
                    return rets.reindex(close.index).fillna(0.0), f"replayed {len(ids)} captured signals"
            except (ValueError, KeyError):
                pass
        try:
            return (evaluate_sets(close, sets, trading, trading=set_trading if per_trial else None),
                    f"recomputed {len(sets)} trials" + (" with their searched trading settings" if per_trial else ""))
        except ValueError as exc:
            raise PhaseError(f"optimization_history: {exc}") from None

    def _pbo(self, cfg: Config, trial_r, add, outputs, notes) -> dict:
        nan = float("nan")
        if trial_r is None or trial_r.shape[1] < 2:
            notes.append("pbo: not computed (fewer than 2 trials)")
            return {"pbo": nan, "pbo_prob_oos_loss": nan, "performance_degradation": nan}
        s = cfg.pbo_partitions
        while s > 2 and trial_r.shape[0] // s < 5:  # blocks of at least 5 bars
            s -= 2
        if trial_r.shape[0] // s < 2:
            notes.append("pbo: not computed (too few bars)")
            return {"pbo": nan, "pbo_prob_oos_loss": nan, "performance_degradation": nan}
        if s != cfg.pbo_partitions:
            notes.append(f"pbo: {s} blocks (the period is too short for {cfg.pbo_partitions})")
        res = val.probability_of_backtest_overfitting(trial_r, s, cfg.pbo_metric)
        outputs["pbo_combinations"] = res.table()
        add("pbo", "pbo", res.pbo, f"share of the {len(res.logit)} in/out-of-sample splits ({s} blocks) where the "
                                   f"in-sample best trial ranks below the out-of-sample median")
        add("pbo", "pbo_prob_oos_loss", res.prob_oos_loss, "share of splits where the in-sample best loses out of sample")
        add("pbo", "performance_degradation", res.degradation_slope,
            f"slope of out-of-sample on in-sample {cfg.pbo_metric.replace('_', ' ')} of the in-sample best "
            f"(R^2 {res.degradation_r2:.2f})")
        return {"pbo": res.pbo, "pbo_prob_oos_loss": res.prob_oos_loss, "performance_degradation": res.degradation_slope}

    def _walk_forward(self, ctx, cfg: Config, close: pd.DataFrame, trading, add, outputs, notes) -> dict:
        nan = float("nan")
        search_cfg = wf_kind.upstream_search(ctx, SET_INPUTS)
        if search_cfg is None or close is None:
            notes.append("walk_forward: not run (no search upstream to re-optimise)")
            return {"walk_forward_efficiency": nan, "walk_forward_oos_sharpe": nan}
        w = cfg.walk_forward
        folds = wf.plan_folds(close.index, w.train_period_days, w.test_period_days, w.step, w.window, w.gap_days)
        if not folds:
            raise PhaseError(f"field 'config.walk_forward': the validated period has {len(close)} bars; one fold "
                             f"needs {w.train_period_days + w.gap_days + w.test_period_days}")
        spec = wf_kind.search_spec(search_cfg)
        try:
            results = [wf.run_fold(close, f, spec, trading) for f in folds]
        except ValueError as exc:
            raise PhaseError(f"walk_forward: {exc}") from None
        table = pd.DataFrame([res.row for res in results])
        oos = wf.stitch(close, folds, [parameter_set(row) for _, row in table.iterrows()], trading,
                        wf_kind.fold_trading(table))
        _, stability = wf.parameter_evolution(table)
        s = wf.summarize(table, oos, stability, spec.objective, trading.periods_per_year)
        outputs["walk_forward_results"] = table
        add("walk_forward", "walk_forward_efficiency", s["walk_forward_efficiency"],
            f"mean out-of-sample over mean in-sample {s['efficiency_metric'].replace('_', ' ')} over {len(folds)} folds")
        add("walk_forward", "walk_forward_oos_sharpe", s["oos_sharpe_ratio"],
            "Sharpe ratio of the stitched out-of-sample account")
        return {"walk_forward_efficiency": s["walk_forward_efficiency"], "walk_forward_oos_sharpe": s["oos_sharpe_ratio"]}

    # ------------------------------------------------------------------ report
    def sections(self, view: PhaseView) -> list[dict]:
        summary = view.outputs.get("validation_summary")
        if summary is None or not len(summary):
            return []
        head = summary.iloc[0]
        s = summary.set_index("statistic")["value"]
        cards = {k: s[k] for k in ("sharpe_ratio", "deflated_sharpe_ratio", "expected_max_sharpe", "pbo",
                                   "walk_forward_efficiency", "n_trials") if k in s.index}
        out = [{"title": f"{view.phase}: {'VALID' if head['passed'] else 'NOT VALID'} -- is it luck?",
                "text": str(head["description"]).capitalize() + ".", "metrics": cards},
               {"title": f"{view.phase}: statistics", "table": summary, "max_rows": 60}]
        sims = view.outputs.get("monte_carlo_simulations")
        if sims is not None and len(sims):
            out.append({"title": f"{view.phase}: Monte Carlo distribution of the Sharpe ratio",
                        "text": f"{len(sims)} resampled paths of the validated returns.",
                        "chart_svg": charts.histogram_svg(sims["sharpe_ratio"], "Sharpe ratio of resampled paths",
                                                          markers=_mc_markers(summary)),
                        "detail": True})
        combos = view.outputs.get("pbo_combinations")
        if combos is not None and len(combos):
            out.append({"title": f"{view.phase}: CSCV logits",
                        "text": "Relative out-of-sample rank (logit) of the in-sample best trial per split; "
                                "logit <= 0 means it did no better than the median trial out of sample.",
                        "chart_svg": charts.histogram_svg(combos["logit"], "Out-of-sample logit of the in-sample best",
                                                          markers={"median trial": 0.0}),
                        "detail": True})
        folds = view.outputs.get("walk_forward_results")
        if folds is not None and len(folds):
            cols = ["fold", "train_start", "train_end", "test_start", "test_end", "params", "is_objective",
                    "oos_objective", "efficiency"]
            out.append({"title": f"{view.phase}: walk-forward folds", "table": folds[cols],
                        "chart_svg": charts.fold_timeline_svg(folds, "Train and test windows"), "detail": True})
        return out

    def verdict(self, view: PhaseView) -> Verdict | None:
        summary = view.outputs.get("validation_summary")
        if summary is None or not len(summary):
            return None
        head = summary.iloc[0]
        judged = summary[summary["rule"].astype(str).ne("") & summary["statistic"].ne("is_valid")]
        criteria = tuple(Criterion(str(r.statistic), float(r.value) if np.isfinite(r.value) else None,
                                   str(r.rule).split(" ", 1)[-1], bool(r.passed), str(r.description))
                         for r in judged.itertuples())
        return Verdict(bool(head["passed"]), str(head["description"]), criteria)

    def insights(self, view: PhaseView) -> list[Insight]:
        summary = view.outputs.get("validation_summary")
        if summary is None or not len(summary):
            return []
        s = summary.set_index("statistic")
        out: list[Insight] = []
        if "deflated_sharpe_ratio" in s.index:
            dsr, sr = float(s.loc["deflated_sharpe_ratio", "value"]), float(s.loc["sharpe_ratio", "value"])
            if "n_trials" in s.index:
                n, sr0 = int(s.loc["n_trials", "value"]), float(s.loc["expected_max_sharpe", "value"])
                text = (f"Deflated Sharpe ratio {dsr:.2f}: the best of {n} trials has a Sharpe ratio of {sr:.2f}, "
                        f"and the best of {n} skill-less trials would reach {sr0:.2f} by luck alone.")
            else:
                text = f"Probabilistic Sharpe ratio {dsr:.2f}: P(true Sharpe > 0) for a Sharpe ratio of {sr:.2f}."
            out.append(Insight("overfitting", text, value=dsr, key="deflated_sharpe_ratio",
                               severity="good" if dsr >= 0.95 else ("warning" if dsr < 0.5 else "info")))
        if "pbo" in s.index and np.isfinite(s.loc["pbo", "value"]):
            pbo = float(s.loc["pbo", "value"])
            out.append(Insight("overfitting", f"Probability of backtest overfitting {pbo:.0%}: in that share of the "
                                              f"in/out-of-sample splits the in-sample best ranked below the median "
                                              f"trial out of sample.", value=pbo, key="pbo",
                               severity="warning" if pbo > 0.5 else ("good" if pbo <= 0.1 else "info")))
        if "mc_prob_loss" in s.index:
            p = float(s.loc["mc_prob_loss", "value"])
            out.append(Insight("risk", f"Monte Carlo: {p:.0%} of resampled paths end with a loss; max drawdown "
                                       f"{s.loc['mc_max_drawdown', 'ci_low']:.2%} at the interval's worst end.",
                               value=p, key="mc_prob_loss", severity="warning" if p > 0.25 else "info"))
        return out


def _mc_markers(summary: pd.DataFrame) -> dict[str, float]:
    s = summary.set_index("statistic")
    out = {"observed": float(s.loc["sharpe_ratio", "value"])}
    if "mc_sharpe_ratio" in s.index:
        out.update({"interval low": float(s.loc["mc_sharpe_ratio", "ci_low"]),
                    "interval high": float(s.loc["mc_sharpe_ratio", "ci_high"])})
    return out


for _name, _label, _unit, _kind, _doc in (
        ("is_valid", "Valid", "1 = every criterion passes", "count", ""),
        ("deflated_sharpe_ratio", "Deflated Sharpe ratio", "probability", "ratio",
         "P(true Sharpe > 0) after the selection among the search's trials (Bailey & Lopez de Prado)"),
        ("probabilistic_sharpe_ratio", "Probabilistic Sharpe ratio", "probability", "ratio",
         "P(true Sharpe > benchmark) given skew, kurtosis and length"),
        ("pbo", "Probability of backtest overfitting", "", "percent", "CSCV over every trial's returns"),
        ("pbo_prob_oos_loss", "P(in-sample best loses out of sample)", "", "percent", "CSCV"),
        ("effective_trials", "Effective trials", "", "ratio", "rho + (1 - rho) M"),
        ("trials_sharpe_std", "Trials' Sharpe dispersion", "std, annualised", "ratio", ""),
        ("min_track_record_years", "Minimum track record", "years", "ratio", ""),
        ("min_backtest_years", "Minimum backtest length", "years", "ratio", ""),
        ("mc_prob_loss", "Monte Carlo probability of loss", "", "percent", "share of resampled paths ending below 1.0"),
        ("trade_win_rate", "Winning trades", "", "percent", "share of round trips with a positive return")):
    labels.register_label(_name, _label, _unit, _kind, _doc)


@dataclass
class _Subject:
    kind: str  #: search | fixed | returns
    returns: pd.Series  #: the validated daily returns
    positions: np.ndarray | None  #: their held positions (bars x symbols x 1)
    sets: list  #: the search's trials (strategy, parameters), in trial order
    close: pd.DataFrame | None  #: closes up to the validated period's end
    mask: np.ndarray | None  #: the validated bars among ``close``'s
    trading: Any
    notes: list
    label: str
    set_trading: list = field(default_factory=list)  #: each trial's searched trading settings ({} when none)


def _captured_ids(columns: pd.DataFrame, sets: list) -> list[str] | None:
    """The captured strategy id of every trial (matched on strategy and normalised parameters),
    or None when some trial was not captured."""
    import json

    index: dict[tuple, str] = {}
    per = columns.drop_duplicates("strategy_id")
    for sid, strat, params in zip(per["strategy_id"], per["strategy"], per["params"]):
        index[(strat, _key(strat, json.loads(params)))] = sid
    ids = []
    for strat, params in sets:
        sid = index.get((strat, _key(strat, params)))
        if sid is None:
            return None
        ids.append(sid)
    return ids


def _key(strategy: str, params: dict) -> tuple:
    spec = get_strategy(strategy)
    row = normalize_params(spec, pd.DataFrame([params]), check=False).iloc[0].to_dict()
    return tuple(sorted((k, float(v) if isinstance(v, (int, float, np.number)) else v) for k, v in row.items()))


def _num(v) -> float:
    v = float(v)
    return v if not math.isinf(v) else float("nan")


def _fmt(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


KIND = Validation()

__all__ = ["KIND", "Acceptance", "Config", "Validation", "METHODS", "CRITERIA"]
