"""walk_forward: re-optimise the parameters on each train window only and trade them on the
window after it; each fold is one partition of the phase's per-fold assets (it re-runs alone,
the UI shows its status), and the whole-phase outputs stitch the folds together.

    - name: walk_forward_validation
      type: walk_forward
      inputs: [parameter_optimization.best_parameters]   # re-run that search in every fold
      config:
        walk_forward:
          train_period_days: 504      # trading days (weekdays of the market calendar)
          test_period_days: 126
          step_days: 63               # default: test_period_days
          window: rolling             # rolling | anchored (expanding)
          gap_days: 5                 # embargo between train end and test start
    # or a search of its own: strategies + optimization, as in a parameter_search phase

The fold dates are planned from the workflow's dates when the workflow is compiled (fold
keys ``fold_01``...); the search in a fold sees the closes of its train window only.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, StrictInt, StrictStr, field_validator, model_validator

from admf_assets.engine import analysis as an
from admf_assets.engine import charts, labels
from admf_assets.engine import walkforward as wf
from admf_assets.engine.metrics import METRIC_COLUMNS, RETURN_METRICS
from admf_assets.engine.optimize import trading_param
from admf_assets.engine.paramsets import PARAMS_COLUMN
from admf_assets.engine.split import DataSplit
from admf_assets.phases import parameter_search as search_kind
from admf_assets.phases.common import BARS, StrategyEntry, TradingSettings, close_matrix, inherited_trading, \
    renamed_keys, space_from_config
from admf_assets.phases.kind import ConfigEnv, Consumes, Image, Insight, Output, PhaseContext, PhaseError, PhaseKind, \
    PhaseResult, PhaseView, StrictModel

#: the search outputs a walk-forward can take its search from (strategies, space, objective)
SEARCH_OUTPUTS = ("best_parameters", "optimization_history", "top_parameter_sets")
WINDOW_KEYS = ("train_period_days", "test_period_days", "step_days", "window", "gap_days", "embargo_days", "anchored")
#: seed names of what the phase reports; the first two are always computed
VALIDATION_METRICS = {"performance_consistency": None, "parameter_stability": None,
                      "regime_adaptation_effectiveness": "regime_performance_validation"}


def upstream_search(ctx: PhaseContext, outputs=SEARCH_OUTPUTS) -> search_kind.Config | None:
    """The effective config of the parameter_search phase providing one of ``outputs``."""
    up = next((ctx.upstream_config(c) for c in outputs if ctx.upstream_config(c) is not None), None)
    if up is None or "optimization" not in up:
        return None
    return search_kind.Config.model_validate({k: v for k, v in up.items() if k in search_kind.Config.model_fields})


def search_spec(search_cfg: search_kind.Config) -> wf.SearchSpec:
    """What a fold optimises: the search's strategies (each with the shared space and its own
    parameters), objective, method, trials and seed."""
    opt = search_cfg.optimization
    base = space_from_config(opt.parameters)
    candidates = tuple((s.type, {**base, **space_from_config(s.parameters)})
                       for s in search_cfg.strategies if s.optimization_target)
    return wf.SearchSpec(candidates=candidates, objective=opt.objective,
                         method=search_kind.ENGINE_METHOD.get(opt.method, opt.method), n_trials=opt.n_trials,
                         seed=opt.seed, direction=opt.direction, population_size=opt.population_size)


def fold_trading(table: pd.DataFrame) -> list[dict]:
    """Each fold's searched trading settings (``{}`` for none; a table without the column:
    none)."""
    if "trading" not in table.columns:
        return [{}] * len(table)
    return [json.loads(t) if isinstance(t, str) else {} for t in table["trading"]]


class Windows(StrictModel):
    """Fold windows in trading days (weekdays of the market calendar)."""

    __key_aliases__ = ("embargo_days", "anchored")

    train_period_days: StrictInt = Field(default=252, ge=2)
    test_period_days: StrictInt = Field(default=63, ge=1)
    step_days: StrictInt | None = Field(default=None, ge=1)  #: default: test_period_days
    window: Literal["rolling", "anchored"] = "rolling"
    gap_days: StrictInt = Field(default=0, ge=0)
    start_date: date | None = None  #: default: data.start_date
    end_date: date | None = None  #: default: data.end_date

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, v: Any) -> Any:
        v = renamed_keys(v, {"embargo_days": "gap_days", "anchored": "window"})
        if isinstance(v, dict) and isinstance(v.get("window"), bool):  # anchored: true | false
            v = {**v, "window": "anchored" if v["window"] else "rolling"}
        return v

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> Any:
        aliases = {"expanding": "anchored", "sliding": "rolling", "fixed": "rolling"}
        return aliases.get(v.lower(), v.lower()) if isinstance(v, str) else v

    @property
    def step(self) -> int:
        return self.step_days or self.test_period_days


class Config(TradingSettings):
    __key_aliases__ = WINDOW_KEYS

    walk_forward: Windows = Field(default_factory=Windows)
    strategies: list[StrategyEntry] | None = None
    optimization: search_kind.OptimizationSettings | None = None
    data_split: Literal["all", "train"] = "all"
    validation_metrics: list[StrictStr] = Field(default_factory=lambda: ["performance_consistency",
                                                                         "parameter_stability"])
    regime_window: StrictInt = Field(default=20, ge=2)

    @model_validator(mode="before")
    @classmethod
    def _window_keys_at_top(cls, v: Any) -> Any:
        """``train_period_days`` & co. at the top level belong to ``walk_forward``."""
        if not isinstance(v, dict) or not any(k in v for k in WINDOW_KEYS):
            return v
        v = dict(v)
        block = dict(v.get("walk_forward") or {})
        for key in WINDOW_KEYS:
            if key in v:
                if key in block:
                    raise ValueError(f"[{key}] `{key}` is given both at config top level and in config.walk_forward")
                block[key] = v.pop(key)
        v["walk_forward"] = block
        return v


class WalkForward(PhaseKind):
    name = "walk_forward"
    aliases = ("walk_forward_validation", "walk_forward_analysis", "walk_forward_optimization")
    description = ("Walk-forward optimisation: re-optimise on each train window, trade the winner on the "
                   "following test window; one partition per fold, stitched out-of-sample equity.")
    Config = Config
    example_config = {"walk_forward": {"train_period_days": 100, "test_period_days": 40, "gap_days": 2},
                      "optimization": {"parameters": {"fast_period": [5, 10], "slow_period": [20, 40]}},
                      "validation_metrics": ["performance_consistency", "parameter_stability",
                                             "regime_adaptation_effectiveness"]}
    partition_column = "fold"
    outputs = (
        Output("fold_results", "One fold: its dates, chosen parameters, in- and out-of-sample metrics",
               aliases=("fold_result",), partitioned=True,
               columns=wf.FOLD_COLUMNS + tuple(f"{p}_{k}" for p in ("is", "oos") for k in METRIC_COLUMNS)),
        Output("fold_returns", "Daily out-of-sample returns of one fold's parameters over its test window",
               aliases=("fold_oos_returns",), partitioned=True, columns=("date", "return", "fold"), time_series=True),
        Output("fold_trials", "Every trial of one fold's search on its train window",
               aliases=("fold_history", "fold_optimization_history"), partitioned=True,
               columns=("fold", "trial_id", "strategy", PARAMS_COLUMN, "objective", "rank", *METRIC_COLUMNS)),
        Output("walk_forward_results", "The fold table: every fold's dates, chosen parameters, in- and "
               "out-of-sample metrics and efficiency", aliases=("fold_table", "walk_forward_folds", "results"),
               columns=wf.FOLD_COLUMNS),
        Output("oos_equity", "The stitched out-of-sample account: each fold trades until the next one starts",
               aliases=("out_of_sample_equity", "oos_returns", "stitched_equity", "equity_curve"),
               columns=("date", "fold", "return", "equity", "drawdown", "exposure"), time_series=True),
        Output("parameter_evolution", "The chosen parameters fold by fold (stability across folds)",
               aliases=("parameter_stability",),
               columns=("fold", "test_start", "test_end", "strategy", "parameter", "value", "value_text",
                        "changed")),
        Output("walk_forward_summary", "Walk-forward efficiency, stitched out-of-sample metrics, consistency "
               "and parameter stability", aliases=("walk_forward_efficiency", "performance_consistency"),
               columns=("n_folds", "walk_forward_efficiency", "efficiency_metric", "mean_is_performance",
                        "mean_oos_performance", "profitable_fold_fraction", "parameter_stability")),
        Output("regime_performance_validation", "Out-of-sample performance by (causal) volatility regime",
               aliases=("regime_validation",), enabled_by=("validation_metrics", "regime_adaptation_effectiveness"),
               columns=("regime", "n_bars", "fraction", *RETURN_METRICS)),
    )
    ignored_inputs = {"optimal_ensemble_weights": "the folds re-optimise the parameter search on each train window "
                                                  "(give its best_parameters as an input, or config.optimization); "
                                                  "ensemble weights are not refit per fold (judge the ensemble's "
                                                  "returns with a validation phase)"}
    consumes = (BARS, Consumes(SEARCH_OUTPUTS, required=True, unless_config="optimization"))
    metrics = ("walk_forward_efficiency", "n_folds", "profitable_fold_fraction", "parameter_stability",
               "mean_is_performance", "mean_oos_performance", *RETURN_METRICS)

    # ------------------------------------------------------------------ validation
    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        update: dict[str, Any] = {}
        if cfg.optimization is not None:
            search = search_kind.KIND.effective_config(self._search_config(cfg), env)
            update["optimization"] = search.optimization
            update["strategies"] = search.strategies
        elif cfg.strategies:
            env.problem("strategies", "strategies need an optimization block (method, parameters, objective); "
                                      "leave both out to re-run the upstream search in every fold")
        kept = []
        for i, m in enumerate(cfg.validation_metrics):
            if m not in VALIDATION_METRICS:
                env.warn(f"validation_metrics[{i}]", f"ignored: '{m}' is not computed (computed: "
                                                     f"{', '.join(VALIDATION_METRICS)})")
            else:
                kept.append(m)
        update["validation_metrics"] = kept
        windows = self._dated_windows(cfg, env)
        if windows is not None:
            update["walk_forward"] = windows
        return cfg.model_copy(update=update)

    def _dated_windows(self, cfg: Config, env: ConfigEnv) -> Windows | None:
        """The windows with the schedule's first and last date filled in (the fold plan, and so
        the partition keys, depend only on them)."""
        w = cfg.walk_forward
        data = env.data
        start = w.start_date or (data.start_date if data is not None else None)
        end = w.end_date or (data.end_date if data is not None else None)
        if start is None or end is None:
            env.problem("walk_forward.start_date", "no dates: set data.start_date and data.end_date "
                                                   "(or walk_forward.start_date / end_date)")
            return None
        if start >= end:
            env.problem("walk_forward.start_date", f"start {start} is not before end {end}")
            return None
        if cfg.data_split == "train":
            days = wf.trading_days(start, end)
            split = data.split.engine() if data is not None else DataSplit()
            i = split.test_start_index(list(days))
            if i < 1:
                env.problem("data_split", "the data split leaves no train dates for the walk-forward")
                return None
            end = min(end, days[i - 1].date())
        days = wf.trading_days(start, end)
        need = w.train_period_days + w.gap_days + w.test_period_days
        if len(days) < need:
            env.problem("walk_forward.train_period_days",
                        f"{start}..{end} has {len(days)} trading days; one fold needs train {w.train_period_days} "
                        f"+ gap {w.gap_days} + test {w.test_period_days} = {need}")
            return None
        return w.model_copy(update={"start_date": start, "end_date": end})

    def partitions(self, cfg: Config) -> tuple[str, ...] | None:
        return tuple(f.key for f in self.plan(cfg)) or None

    def plan(self, cfg: Config) -> list[wf.Fold]:
        w = cfg.walk_forward
        if w.start_date is None or w.end_date is None:
            return []
        return wf.plan_folds(wf.trading_days(w.start_date, w.end_date), w.train_period_days, w.test_period_days,
                             w.step, w.window, w.gap_days)

    @staticmethod
    def _search_config(cfg: Config) -> search_kind.Config:
        trading = cfg.model_dump(include=set(TradingSettings.model_fields))
        strategies = cfg.strategies or [StrategyEntry(type="momentum")]
        return search_kind.Config(optimization=cfg.optimization, strategies=strategies, **trading)

    # ------------------------------------------------------------------ running
    def _search(self, ctx: PhaseContext) -> tuple[wf.SearchSpec, Any]:
        """What each fold optimises and the trading settings: this phase's own search, or the
        upstream search's (with this phase's explicitly set trading keys on top)."""
        cfg: Config = ctx.config
        if cfg.optimization is not None:
            search_cfg = self._search_config(cfg)
            trading = cfg.trading()
        else:
            search_cfg = upstream_search(ctx, SEARCH_OUTPUTS)
            if search_cfg is None:
                raise PhaseError("needs a parameter_search phase upstream (or its own config.optimization)")
            trading = inherited_trading(search_cfg.model_dump(), cfg)
        return search_spec(search_cfg), trading

    def _close(self, ctx: PhaseContext) -> pd.DataFrame:
        cfg: Config = ctx.config
        close = close_matrix(ctx.need("bars"), "train" if cfg.data_split == "train" else None)
        w = cfg.walk_forward
        first, last = close.index[0], close.index[-1]
        if first > pd.Timestamp(w.start_date) + pd.Timedelta(days=7) or last < pd.Timestamp(w.end_date) - pd.Timedelta(days=7):
            raise PhaseError(f"the bars cover {first.date()}..{last.date()} but the folds were planned for "
                             f"{w.start_date}..{w.end_date} (field 'config.walk_forward.start_date'; the plan "
                             f"follows data.start_date / end_date)")
        return close

    def run_partition(self, ctx: PhaseContext) -> PhaseResult:
        fold = next((f for f in self.plan(ctx.config) if f.key == ctx.partition_key), None)
        if fold is None:
            raise PhaseError(f"unknown fold '{ctx.partition_key}'")
        spec, trading = self._search(ctx)
        try:
            res = wf.run_fold(self._close(ctx), fold, spec, trading)
        except ValueError as exc:
            raise PhaseError(f"{fold.key}: {exc}") from None
        row = pd.DataFrame([res.row])
        hist = res.history.assign(fold=fold.key)
        info = {"train": f"{fold.train_start.date()}..{fold.train_end.date()}",
                "test": f"{fold.test_start.date()}..{fold.test_end.date()}",
                "strategy": res.row["strategy"], "parameters": res.row["params"],
                **({"trading_settings": res.row["trading"]} if res.row["trading"] != "{}" else {}),
                "in_sample_objective": res.row["is_objective"], "out_of_sample_objective": res.row["oos_objective"]}
        meta = {"fold_results": {**info, "preview": row.drop(columns=["params", "trading"])},
                "fold_returns": {**info, "rows": len(res.returns),
                                 "equity_curve": charts.sparkline(an.equity_curve(res.returns.set_index("date")["return"]))},
                "fold_trials": {**info, "trials": len(hist), "preview": hist.sort_values("rank").head(10)}}
        return PhaseResult(outputs={"fold_results": row, "fold_returns": res.returns, "fold_trials": hist},
                           metadata=meta)

    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        folds = self.plan(cfg)
        table = ctx.partitioned.get("fold_results")
        if table is None:
            raise PhaseError("the per-fold results are not loaded")
        table = table.sort_values("fold_number").reset_index(drop=True)
        missing = [f.key for f in folds if f.key not in set(table["fold"])]
        if missing:
            raise PhaseError(f"fold(s) {', '.join(missing)} have no results; materialize them first")
        spec, trading = self._search(ctx)
        close = self._close(ctx)
        chosen = [(r["strategy"], json.loads(r["params"])) for _, r in table.iterrows()]
        oos = wf.stitch(close, folds, chosen, trading, fold_trading(table))
        evolution, stability = wf.parameter_evolution(table)
        searched = self._searched(spec)
        summary = wf.summarize(table, oos, stability[stability["parameter"].isin(searched)] if searched else stability,
                               spec.objective, trading.periods_per_year)
        w = cfg.walk_forward
        summary.update({"window": w.window, "train_period_days": w.train_period_days,
                        "test_period_days": w.test_period_days, "step_days": w.step, "gap_days": w.gap_days,
                        "objective": spec.objective})
        summary_df = pd.DataFrame([summary])
        outputs = {"walk_forward_results": table, "oos_equity": oos, "parameter_evolution": evolution,
                   "walk_forward_summary": summary_df}
        r = oos.set_index("date")["return"]
        if ctx.wants("regime_performance_validation"):
            market = close.pct_change().mean(axis=1).fillna(0.0)
            regimes = an.volatility_regimes(market, window=cfg.regime_window).reindex(r.index)
            outputs["regime_performance_validation"] = (
                an.regime_performance(r, regimes, trading.periods_per_year)[["n_bars", "fraction", *RETURN_METRICS]]
                .reset_index(names="regime"))
        metrics = {k: summary[k] for k in ("walk_forward_efficiency", "n_folds", "profitable_fold_fraction",
                                           "parameter_stability", "mean_is_performance", "mean_oos_performance")}
        metrics.update({k: summary[f"oos_{k}"] for k in RETURN_METRICS})
        head = {"folds": len(folds), "window": w.window,
                "windows": f"train {w.train_period_days} / gap {w.gap_days} / test {w.test_period_days} / "
                           f"step {w.step} trading days",
                "out_of_sample": f"{summary['oos_start'].date()}..{summary['oos_end'].date()}",
                "walk_forward_efficiency": summary["walk_forward_efficiency"],
                "efficiency_on": summary["efficiency_metric"]}
        stab_text = {f"stability/{p}": float(s) for p, s in zip(stability["parameter"], stability["stability"])
                     if p in searched or not searched}
        meta = {
            "walk_forward_results": {**head, "folds_chart": Image(charts.fold_timeline(table, "Train and test windows"),
                                                                 alt="walk-forward folds"),
                                     "preview": table[["fold", "train_start", "train_end", "test_start",
                                                              "test_end", "strategy", "params", "is_objective",
                                                              "oos_objective", "efficiency"]]},
            "oos_equity": {**head, "rows": len(oos),
                           "equity_and_drawdown": Image(charts.equity_drawdown({"out of sample": _oos_curves(oos)[0]},
                                                                               _oos_curves(oos)[1],
                                                                               "Stitched out-of-sample account"),
                                                        alt="stitched out-of-sample equity and drawdown"),
                           "oos_sharpe_ratio": summary["oos_sharpe_ratio"],
                           "oos_total_return": summary["oos_total_return"]},
            "parameter_evolution": {**head, **stab_text, "parameter_stability": summary["parameter_stability"],
                                    "preview": stability},
            "walk_forward_summary": {**head, "preview": summary_df.T.reset_index().rename(
                columns={"index": "field", 0: "value"}).astype(str)},
        }
        if "regime_performance_validation" in outputs:
            meta["regime_performance_validation"] = {"classifier": "causal rolling volatility of the market "
                                                                   "(mean of the symbols) vs its expanding median",
                                                     "preview": outputs["regime_performance_validation"]}
        return PhaseResult(outputs=outputs, metadata=meta, metrics=metrics)

    @staticmethod
    def _searched(spec: wf.SearchSpec) -> list[str]:
        """Parameters that the search varied (fixed ones are trivially stable)."""
        names = []
        for _, space in spec.candidates:
            for k, v in space.items():
                varied = isinstance(v, dict) or (isinstance(v, (list, tuple)) and len(v) > 1)
                k = trading_param(k) or k  # trading settings under their canonical names
                if varied and k not in names:
                    names.append(k)
        if len(spec.candidates) > 1:
            names.append("strategy")
        return names

    # ------------------------------------------------------------------ report
    def sections(self, view: PhaseView) -> list[dict]:
        table, oos = view.outputs.get("walk_forward_results"), view.outputs.get("oos_equity")
        summary, evo = view.outputs.get("walk_forward_summary"), view.outputs.get("parameter_evolution")
        out = []
        if summary is not None and len(summary):
            s = summary.iloc[0]
            wfe = s["walk_forward_efficiency"]
            verdict = ("no in-sample edge to carry over" if not np.isfinite(wfe) else
                       f"{wfe:.0%} of the in-sample {s['efficiency_metric'].replace('_', ' ')} survives out of sample")
            out.append({"title": f"{view.phase}: walk-forward",
                        "text": f"{int(s['n_folds'])} folds, {s['window']} train windows of {int(s['train_period_days'])} "
                                f"trading days, tested on the next {int(s['test_period_days'])} (step "
                                f"{int(s['step_days'])}, gap {int(s['gap_days'])}); parameters re-optimised on each "
                                f"train window only. Walk-forward efficiency: {verdict}.",
                        "metrics": {"walk_forward_efficiency": wfe,
                                    "oos_sharpe_ratio": s["oos_sharpe_ratio"],
                                    "oos_total_return": s["oos_total_return"],
                                    "oos_max_drawdown": s["oos_max_drawdown"],
                                    "profitable_fold_fraction": s["profitable_fold_fraction"],
                                    "parameter_stability": s["parameter_stability"]}})
        if oos is not None and len(oos):
            eq, dd = _oos_curves(oos)
            out.append({"title": f"{view.phase}: stitched out-of-sample equity",
                        "text": "Each fold's parameters trade from its test start until the next fold starts.",
                        "chart_svg": charts.equity_drawdown_svg({"out of sample": eq}, dd,
                                                                "Stitched out-of-sample account")})
        if table is not None and len(table):
            cols = ["fold", "train_start", "train_end", "test_start", "test_end", "strategy", "params",
                    "is_objective", "oos_objective", "efficiency", "oos_total_return", "oos_max_drawdown"]
            out.append({"title": f"{view.phase}: folds", "table": table[[c for c in cols if c in table.columns]],
                        "chart_svg": charts.fold_timeline_svg(table, "Train and test windows"), "max_rows": 60})
        if evo is not None and len(evo):
            wide = evo.pivot_table(index="fold", columns="parameter", values="value_text", aggfunc="first")
            out.append({"title": f"{view.phase}: parameter evolution", "table": wide.reset_index(), "detail": True,
                        "max_rows": 60})
        reg = view.outputs.get("regime_performance_validation")
        if reg is not None and len(reg):
            out.append({"title": f"{view.phase}: out-of-sample by volatility regime", "table": reg, "detail": True})
        return out

    def insights(self, view: PhaseView) -> list[Insight]:
        summary = view.outputs.get("walk_forward_summary")
        if summary is None or not len(summary):
            return []
        s = summary.iloc[0]
        wfe, metric = float(s["walk_forward_efficiency"]), str(s["efficiency_metric"]).replace("_", " ")
        n = int(s["n_folds"])
        if np.isfinite(wfe):
            sev = "warning" if wfe < 0.5 else ("good" if wfe >= 0.8 else "info")
            text = (f"Walk-forward over {n} folds: re-optimised on each train window, the parameters kept {wfe:.0%} "
                    f"of their in-sample {metric} out of sample (mean {s['mean_is_performance']:.2f} in sample, "
                    f"{s['mean_oos_performance']:.2f} out of sample).")
        else:
            sev, text = "warning", (f"Walk-forward over {n} folds: the mean in-sample {metric} is not positive "
                                    f"({s['mean_is_performance']:.2f}), so nothing carries over.")
        out = [Insight("decay", text, value=wfe if np.isfinite(wfe) else None,
                       key="walk_forward_efficiency" if np.isfinite(wfe) else None, severity=sev),
               Insight("decay", f"The stitched out-of-sample account ({pd.Timestamp(s['oos_start']).date()}.."
                                f"{pd.Timestamp(s['oos_end']).date()}) has a Sharpe ratio of {s['oos_sharpe_ratio']:.2f} "
                                f"and a max drawdown of {s['oos_max_drawdown']:.2%}; {s['profitable_fold_fraction']:.0%} "
                                f"of the folds were profitable.",
                       value=float(s["oos_sharpe_ratio"]), key="oos_sharpe_ratio",
                       severity="warning" if s["oos_sharpe_ratio"] <= 0 else "info")]
        stab = float(s["parameter_stability"])
        if np.isfinite(stab) and n > 1:
            out.append(Insight("robustness", f"Parameter stability {stab:.0%}: the share of fold changes that kept "
                                             f"each searched parameter (1 = the same choice every fold).",
                               value=stab, key="parameter_stability", severity="warning" if stab < 0.3 else "info"))
        return out


def _oos_curves(oos: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    idx = pd.DatetimeIndex(oos["date"])
    return pd.Series(oos["equity"].to_numpy(), index=idx), pd.Series(oos["drawdown"].to_numpy(), index=idx)


for _name, _label, _unit, _kind, _doc in (
        ("walk_forward_efficiency", "Walk-forward efficiency", "out of sample / in sample", "percent",
         "mean out-of-sample over mean in-sample performance across folds (annualised)"),
        ("oos_sharpe_ratio", "Out-of-sample Sharpe ratio", "stitched folds", "ratio", ""),
        ("oos_total_return", "Out-of-sample total return", "stitched folds", "percent", ""),
        ("oos_max_drawdown", "Out-of-sample max drawdown", "stitched folds", "percent", ""),
        ("profitable_fold_fraction", "Profitable folds", "", "percent", "share of folds with a positive test return"),
        ("parameter_stability", "Parameter stability", "", "percent",
         "share of fold-to-fold changes that keep each searched parameter"),
        ("n_folds", "Folds", "", "count", ""),
        ("mean_is_performance", "Mean in-sample performance", "per fold", "ratio", ""),
        ("mean_oos_performance", "Mean out-of-sample performance", "per fold", "ratio", "")):
    labels.register_label(_name, _label, _unit, _kind, _doc)


KIND = WalkForward()

__all__ = ["KIND", "Config", "Windows", "WalkForward", "fold_trading", "search_spec", "upstream_search"]
