"""regime_analysis (regime_detection): market regimes per date, causal, from a Markov-switching
model (statsmodels), k-means on causal features, or change points (ruptures); their transition
probabilities, persistence, and the strategies' performance in each regime.

    - name: regime_analysis
      type: regime_analysis
      inputs: [broad_parameter_search.top_100_strategies]   # optional: performance by regime
      config:
        methods: [markov, kmeans, change_point]   # the first one labels; all are compared
        n_regimes: [2, 3, 4]                       # a list: chosen by BIC, every fit reported
        features: [volatility, trend, volume, correlation]   # kmeans

Every detector is fit on the TRAIN split and labels every date with data up to that date
(``engine.regimes``): ``regime_classifications.probability`` is the FILTERED probability of
the label, safe to trade on.  The look-ahead (smoothed) Markov probabilities are in their own
output, ``regime_smoothed_probabilities``, for analysis only.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, StrictBool, StrictInt, StrictStr, field_validator, model_validator

from admf_assets.engine import charts, synthetic
from admf_assets.engine import regimes as rg
from admf_assets.engine.analysis import regime_performance
from admf_assets.engine.metrics import METRIC_COLUMNS, TRADING_DAYS
from admf_assets.engine.paramsets import PARAMS_COLUMN, evaluate_sets, parameter_sets, set_labels
from admf_assets.phases.common import BARS, DataSplitName, TradingSettings, canonical_list, close_matrix
from admf_assets.phases.kind import ConfigEnv, Consumes, Insight, Output, PhaseContext, PhaseError, PhaseKind, \
    PhaseResult, PhaseView, StrictModel
from admf_assets.suggest import suggest

SET_OUTPUTS = ("top_parameter_sets", "best_parameters")
FEATURE_ALIASES = {"vol": "volatility", "volatility_regime": "volatility", "trend_strength": "trend",
                   "correlations": "correlation", "returns": "momentum"}
MAX_REGIMES = 6


class PerformanceAnalysis(StrictModel):
    """Seed 001's ``regime_performance_analysis`` switches (every table is always computed:
    choose tables with ``outputs``)."""

    strategy_performance_by_regime: StrictBool = True
    regime_transition_analysis: StrictBool = True
    regime_persistence_analysis: StrictBool = True


class Config(TradingSettings):
    __key_aliases__ = ("method", "classifiers", "regime_detection")

    methods: list[StrictStr] = Field(default_factory=lambda: ["markov"], min_length=1)
    n_regimes: list[StrictInt] = Field(default_factory=lambda: [2], min_length=1)
    features: list[StrictStr] = Field(default_factory=lambda: ["volatility", "trend", "volume", "correlation"],
                                      min_length=1)
    feature_window: StrictInt = Field(default=20, ge=3)
    series: StrictStr = "market"
    seed: StrictInt = 42
    search_reps: StrictInt = Field(default=5, ge=0)
    n_init: StrictInt = Field(default=10, ge=1)
    penalty: float | None = Field(default=None, gt=0)
    min_segment: StrictInt = Field(default=10, ge=2)
    refit_every: StrictInt = Field(default=5, ge=1)
    top_n: StrictInt = Field(default=10, ge=1)
    metrics: list[StrictStr] = Field(default_factory=lambda: ["sharpe_ratio", "annual_return", "max_drawdown",
                                                              "win_rate"], min_length=1)
    performance_split: DataSplitName = "all"
    true_regime_seed: StrictInt | None = None
    regime_performance_analysis: PerformanceAnalysis = Field(default_factory=PerformanceAnalysis)

    @model_validator(mode="before")
    @classmethod
    def _shortcuts(cls, v: Any) -> Any:
        """``method: x`` / ``classifiers: [...]`` are ``methods``; seed 001's nested
        ``regime_detection: {methods, n_regimes, features}`` is flattened."""
        if not isinstance(v, dict):
            return v
        v = dict(v)
        nested = v.pop("regime_detection", None)
        if isinstance(nested, dict):
            for key, value in nested.items():
                if key in v:
                    raise ValueError(f"[regime_detection] `{key}` is given both in regime_detection and at config "
                                     "top level")
                v[key] = value
        elif nested is not None:
            raise ValueError("[regime_detection] expected a mapping {methods, n_regimes, features}")
        for alias in ("method", "classifiers"):
            if alias in v:
                if "methods" in v:
                    raise ValueError(f"[{alias}] give `methods` or `{alias}`, not both")
                v["methods"] = v.pop(alias)
        if isinstance(v.get("methods"), str):
            v["methods"] = [v["methods"]]
        return v

    @field_validator("n_regimes", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) and not isinstance(v, bool) else v


class RegimeAnalysis(PhaseKind):
    name = "regime_analysis"
    aliases = ("regime_detection", "regime_classification")
    description = ("Detect market regimes (Markov switching, k-means, change points), causally, with transition "
                   "probabilities, persistence and the strategies' performance by regime.")
    Config = Config
    example_config = {"methods": ["markov", "kmeans", "change_point"], "n_regimes": [2, 3], "search_reps": 2}
    outputs = (
        Output("regime_classifications", "One row per date: regime label and id, and the FILTERED (causal) "
               "probability of the label; per-regime filtered probabilities",
               aliases=("regime_labels", "regimes", "regime_states"),
               columns=("date", "regime", "regime_id", "probability", "split"), time_series=True),
        Output("regime_transition_probabilities", "P(regime tomorrow | regime today), one row per pair",
               aliases=("transition_probabilities", "regime_transitions", "regime_transition_matrix"),
               columns=("from_regime", "to_regime", "probability")),
        Output("regime_persistence", "Per regime: expected duration, observed spells, share of time, "
               "volatility and mean return", aliases=("regime_durations", "regime_statistics"),
               columns=("regime", "regime_id", "expected_duration", "mean_spell", "n_spells", "fraction",
                        "volatility", "mean_return")),
        Output("regime_specific_performance", "Metrics of the top strategies (or of each symbol held, without a "
               "parameter-set input) in each regime", aliases=("regime_performance", "performance_by_regime"),
               columns=("regime", "label", "strategy", PARAMS_COLUMN, "n_bars", "fraction")),
        Output("regime_model_selection", "Every method x number of regimes: BIC, the chosen fit, accuracy "
               "against the true regimes when known (synthetic market)",
               aliases=("regime_method_comparison", "regime_detection_summary"),
               columns=("method", "n_regimes", "bic", "chosen", "primary", "accuracy", "smoothed_accuracy",
                        "seconds")),
        Output("regime_smoothed_probabilities", "Markov method only, LOOKS AHEAD (Kim smoother over the whole "
               "sample): for analysis, never for trading", aliases=("smoothed_probabilities",),
               columns=("date", "smoothed_regime", "smoothed_regime_id", "smoothed_probability"), default=False),
    )
    consumes = (BARS, Consumes(("features",), required=False), Consumes(SET_OUTPUTS, required=False))
    metrics = ("n_regimes", "bic", "mean_probability", "regime_changes", "mean_expected_duration", "accuracy",
               "smoothed_accuracy")

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        method_names = {s: c for c in rg.METHODS for s in (c, *[a for a, t in rg.METHOD_ALIASES.items() if t == c])}
        methods = canonical_list(cfg.methods, method_names, rg.METHODS, "regime method", "methods", env)
        for i, k in enumerate(cfg.n_regimes):
            if not 2 <= k <= MAX_REGIMES:
                env.problem(f"n_regimes[{i}]", f"between 2 and {MAX_REGIMES} (got {k})")
        feats = canonical_list(cfg.features, {**{f: f for f in rg.FEATURE_FAMILIES}, **FEATURE_ALIASES},
                               rg.FEATURE_FAMILIES, "regime feature", "features", env)
        for i, m in enumerate(cfg.metrics):
            if m not in METRIC_COLUMNS:
                env.problem(f"metrics[{i}]", f"unknown metric '{m}'{suggest(m, METRIC_COLUMNS)}; "
                                             f"known: {', '.join(METRIC_COLUMNS)}")
        if env.data is not None and cfg.series != "market" and cfg.series not in env.data.symbols:
            env.problem("series", f"'{cfg.series}' is not a symbol of data.symbols "
                                  f"({', '.join(env.data.symbols)}); use 'market' for their mean return")
        pa = cfg.regime_performance_analysis
        for key in PerformanceAnalysis.model_fields:
            if not getattr(pa, key):
                env.warn(f"regime_performance_analysis.{key}", "ignored: every table is computed; choose the "
                                                               "tables with the phase's `outputs`")
        if "kmeans" not in methods and cfg.features != Config.model_fields["features"].default_factory():
            env.warn("features", "ignored: only the kmeans method uses features")
        return cfg.model_copy(update={"methods": methods, "features": feats, "n_regimes": sorted(set(cfg.n_regimes))})

    # ------------------------------------------------------------------ run
    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        bars = ctx.need("bars")
        close = close_matrix(bars)
        split = bars.drop_duplicates("date").set_index("date")["split"].reindex(close.index)
        fit_end = int((split == "train").sum())
        rets = close.pct_change(fill_method=None)
        r = (rets.mean(axis=1) if cfg.series == "market" else rets[cfg.series]).fillna(0.0)
        r.iloc[0] = 0.0
        features = self._features(ctx, close, bars)
        truth = self._truth(close, cfg)
        tv = truth.to_numpy() if truth is not None else None
        detections: dict[str, rg.RegimeDetection] = {}
        rows = []
        for method in cfg.methods:
            t0 = time.perf_counter()
            try:
                det = rg.detect(r, method, list(cfg.n_regimes), fit_end=fit_end, features=features, seed=cfg.seed,
                                search_reps=cfg.search_reps, n_init=cfg.n_init, penalty=cfg.penalty,
                                min_size=cfg.min_segment, refit_every=cfg.refit_every,
                                periods_per_year=TRADING_DAYS)
            except ValueError as exc:
                raise PhaseError(f"field 'config.methods': {exc}") from None
            seconds = time.perf_counter() - t0
            detections[method] = det
            for f in det.candidates:
                acc = rg.label_accuracy(f.labels, tv) if tv is not None else np.nan
                sacc = rg.label_accuracy(f.smoothed_labels, tv) if tv is not None and f.smoothed is not None else np.nan
                oos = rg.label_accuracy(f.labels[fit_end:], tv[fit_end:]) if tv is not None else np.nan
                rows.append({"method": method, "n_regimes": f.n_regimes, "bic": f.bic, "chosen": f is det.best,
                             "primary": method == cfg.methods[0] and f is det.best, "accuracy": acc,
                             "smoothed_accuracy": sacc, "test_accuracy": oos, "seconds": seconds / len(det.candidates),
                             "fit_bars": fit_end})
        selection = pd.DataFrame(rows)
        best = detections[cfg.methods[0]].best
        for method, det in detections.items():
            if method != cfg.methods[0]:
                other = det.best
                agree = float(np.mean(other.label_names() == best.label_names())) if other.n_regimes == best.n_regimes \
                    else np.nan
                selection.loc[(selection["method"] == method) & selection["chosen"], "agreement_with_primary"] = agree
        classes = self._classifications(best, split)
        names = best.names
        trans = pd.DataFrame([{"from_regime": names[i], "to_regime": names[j], "probability": float(best.transition[i, j]),
                               "method": best.method} for i in range(best.n_regimes) for j in range(best.n_regimes)])
        persistence = self._persistence(best, fit_end)
        perf, perf_note = self._performance(ctx, close, classes, cfg)
        outputs = {"regime_classifications": classes, "regime_transition_probabilities": trans,
                   "regime_persistence": persistence, "regime_specific_performance": perf,
                   "regime_model_selection": selection}
        valid = best.labels >= 0
        primary = selection[selection["primary"]].iloc[0]
        metrics = {"n_regimes": best.n_regimes, "bic": float(best.bic),
                   "mean_probability": float(np.nanmean(best.probability[valid])) if valid.any() else float("nan"),
                   "regime_changes": int(np.sum(best.labels[1:][valid[1:] & valid[:-1]]
                                                != best.labels[:-1][valid[1:] & valid[:-1]])),
                   "mean_expected_duration": float(np.mean(np.minimum(best.durations, len(r)))),
                   "accuracy": float(primary["accuracy"]), "smoothed_accuracy": float(primary["smoothed_accuracy"])}
        accuracy = {f"accuracy/{m}": float(selection[(selection["method"] == m) & selection["chosen"]]["accuracy"].iloc[0])
                    for m in cfg.methods} if truth is not None else {}
        common = {"method": best.method, "n_regimes": best.n_regimes, "fit": f"train split, {fit_end} bars "
                  f"({close.index[0].date()}..{close.index[max(fit_end - 1, 0)].date()})",
                  "series": "equal-weighted mean return of " + ", ".join(close.columns) if cfg.series == "market"
                  else cfg.series}
        meta = {
            "regime_classifications": {**common, "rows": len(classes), "probability": "filtered (causal)",
                                       "regimes": ", ".join(names), **accuracy,
                                       "true_regimes": "synthetic market, seed " + str(self._seed(cfg))
                                       if truth is not None else "unknown (not the synthetic market)",
                                       "regime_ids": charts.sparkline(pd.Series(best.labels, dtype=float)),
                                       "preview": classes.tail(10)},
            "regime_transition_probabilities": {**common, "matrix": trans.pivot(index="from_regime", columns="to_regime",
                                                                                values="probability")
                                                .reindex(index=names, columns=names).reset_index()},
            "regime_persistence": {**common, "preview": persistence},
            "regime_specific_performance": {**common, "strategies": perf_note, "preview": perf.drop(
                columns=[PARAMS_COLUMN]).head(20)},
            "regime_model_selection": {**common, "criterion": "BIC (lower is better)", **accuracy,
                                       "preview": selection},
        }
        if ctx.wants("regime_smoothed_probabilities"):
            fit = detections.get("markov")
            if fit is None:
                raise PhaseError("regime_smoothed_probabilities needs the markov method in config.methods")
            outputs["regime_smoothed_probabilities"] = self._smoothed(fit.best)
            meta["regime_smoothed_probabilities"] = {**common, "warning": "looks ahead: uses the whole sample"}
        return PhaseResult(outputs=outputs, metadata=meta, metrics=metrics)

    # ------------------------------------------------------------------ pieces
    @staticmethod
    def _seed(cfg: Config) -> int:
        if cfg.true_regime_seed is not None:
            return cfg.true_regime_seed
        try:
            return int(os.environ.get("ADMF_SEED", "42"))
        except ValueError:
            return 42

    def _truth(self, close: pd.DataFrame, cfg: Config) -> pd.Series | None:
        return synthetic.truth_for(close, self._seed(cfg))

    @staticmethod
    def _features(ctx: PhaseContext, close: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame | None:
        cfg: Config = ctx.config
        if "kmeans" not in cfg.methods:
            return None
        table = ctx.inputs.get("features")
        if table is not None and len(table):
            prefixes = {"volatility": "volatility_", "trend": "trend_", "volume": "volume_z_",
                        "correlation": "correlation_", "momentum": "momentum_"}
            cols = [c for c in table.columns for f in cfg.features if str(c).startswith(prefixes[f])]
            if not cols:
                raise PhaseError(f"the features input has none of the features {', '.join(cfg.features)} "
                                 "(compute them in the feature_engineering phase)")
            out = table.groupby("date", sort=True)[cols].mean()
            out.index = pd.DatetimeIndex(out.index)
            return out.reindex(close.index)
        volume = bars.pivot(index="date", columns="symbol", values="volume").sort_index()
        volume.index = pd.DatetimeIndex(volume.index)
        return rg.regime_features(close, volume, cfg.features, window=cfg.feature_window)

    @staticmethod
    def _classifications(fit: rg.RegimeFit, split: pd.Series) -> pd.DataFrame:
        out = pd.DataFrame({"date": fit.index, "regime": fit.label_names(), "regime_id": fit.labels.astype(np.int64),
                            "probability": fit.probability, "split": split.to_numpy()})
        for j, name in enumerate(fit.names):
            out[f"probability_{name}"] = fit.probabilities[:, j]
        out["method"] = fit.method
        return out

    @staticmethod
    def _smoothed(fit: rg.RegimeFit) -> pd.DataFrame:
        lab = fit.smoothed_labels
        out = pd.DataFrame({"date": fit.index, "smoothed_regime": fit.label_names(lab),
                            "smoothed_regime_id": lab.astype(np.int64),
                            "smoothed_probability": fit.smoothed[np.arange(len(lab)), lab]})
        for j, name in enumerate(fit.names):
            out[f"smoothed_probability_{name}"] = fit.smoothed[:, j]
        return out

    @staticmethod
    def _persistence(fit: rg.RegimeFit, fit_end: int) -> pd.DataFrame:
        lab = fit.labels
        valid = lab >= 0
        change = np.r_[True, lab[1:] != lab[:-1]]
        starts = np.flatnonzero(change)
        lengths = np.diff(np.r_[starts, len(lab)])
        spell_regime = lab[starts]
        rows = []
        for j, name in enumerate(fit.names):
            spells = lengths[spell_regime == j]
            lv = fit.levels[fit.levels["regime_id"] == j].iloc[0]
            rows.append({"regime": name, "regime_id": j, "expected_duration": float(fit.durations[j]),
                         "mean_spell": float(spells.mean()) if len(spells) else np.nan, "n_spells": int(len(spells)),
                         "fraction": float(np.mean(lab[valid] == j)) if valid.any() else np.nan,
                         "volatility": float(lv["volatility"]), "mean_return": float(lv["mean_return"]),
                         "stay_probability": float(fit.transition[j, j])})
        return pd.DataFrame(rows)

    @staticmethod
    def _performance(ctx: PhaseContext, close: pd.DataFrame, classes: pd.DataFrame,
                     cfg: Config) -> tuple[pd.DataFrame, str]:
        sets_table = next((ctx.inputs[c] for c in SET_OUTPUTS if ctx.inputs.get(c) is not None
                           and len(ctx.inputs[c])), None)
        if cfg.performance_split != "all":
            close = close[(classes.set_index("date")["split"] == cfg.performance_split).reindex(close.index).to_numpy()]
        trading = cfg.trading()
        if sets_table is not None:
            try:
                sets = parameter_sets(sets_table.head(cfg.top_n))
                rets = evaluate_sets(close, sets, trading)
            except ValueError as exc:
                raise PhaseError(str(exc)) from None
            info = [(s, sets_table[PARAMS_COLUMN].iloc[i]) for i, (s, _) in enumerate(sets)]
            labels = set_labels(sets)
            note = f"top {len(sets)} parameter sets of the input"
        else:
            rets = close.pct_change(fill_method=None).fillna(0.0)
            labels = [f"buy_and_hold {c}" for c in close.columns]
            rets.columns = labels
            info = [("buy_and_hold", "{}") for _ in close.columns]
            note = "no parameter-set input: each symbol bought and held"
        regimes = classes.set_index("date")["regime"].reindex(rets.index)
        frames = []
        for j, label in enumerate(labels):
            rp = regime_performance(rets[label], regimes).reset_index()
            rp.insert(1, "label", label)
            rp.insert(2, "strategy", info[j][0])
            rp.insert(3, PARAMS_COLUMN, info[j][1])
            frames.append(rp)
        perf = pd.concat(frames, ignore_index=True)
        keep = ["regime", "label", "strategy", PARAMS_COLUMN, "n_bars", "fraction",
                *[m for m in cfg.metrics if m in perf.columns]]
        return perf[keep], note

    # ------------------------------------------------------------------ report
    def sections(self, view: PhaseView) -> list[dict]:
        classes = view.outputs.get("regime_classifications")
        out = []
        if classes is not None and len(classes):
            names = [c.removeprefix("probability_") for c in classes.columns if c.startswith("probability_")]
            series = {n: pd.Series(classes[f"probability_{n}"].to_numpy(), index=pd.DatetimeIndex(classes["date"]))
                      for n in names}
            chart_list = []
            bars = view.inputs.get("bars")
            if bars is not None and len(bars):
                close = close_matrix(bars)
                market = (close / close.bfill().iloc[0]).mean(axis=1).rename("market (equal weight)")
                labels = pd.Series(classes["regime"].to_numpy(), index=pd.DatetimeIndex(classes["date"]))
                chart_list.append(charts.regime_price_svg(market, labels, "Market by regime (filtered labels)"))
            chart_list.append(charts.line_chart_svg(series, "P(regime | data so far)"))
            out.append({"title": f"{view.phase}: regimes ({classes['method'].iloc[0]})",
                        "text": "Filtered (causal) probability of each regime: the label of a date uses data up to "
                                "that date only; the model is fit on the train split.",
                        "chart_svg": chart_list})
        for name in ("regime_model_selection", "regime_persistence", "regime_transition_probabilities",
                     "regime_specific_performance"):
            df = view.outputs.get(name)
            if df is not None and len(df):
                out.append({"title": f"{view.phase}: {name}", "table": df.drop(columns=[PARAMS_COLUMN],
                                                                               errors="ignore"),
                            "max_rows": 40, "detail": name != "regime_model_selection"})
        return out


    def insights(self, view: PhaseView) -> list[Insight]:
        perf = view.outputs.get("regime_specific_performance")
        if perf is None or not len(perf) or "sharpe_ratio" not in perf.columns:
            return []
        first = perf[perf["label"] == perf["label"].iloc[0]]
        if len(first) < 2:
            return []
        sr = first["sharpe_ratio"].to_numpy(dtype=float)
        parts = [f"{r.sharpe_ratio:.2f} in regime {r.regime} ({r.fraction:.0%} of the bars)" for r in first.itertuples()]
        flips = bool(np.nanmax(sr) > 0 > np.nanmin(sr))
        return [Insight("regimes", f"Sharpe ratio of {first['label'].iloc[0]} by detected regime: " + "; ".join(parts)
                                   + (": it earns in one regime and loses in another." if flips else "."),
                        severity="warning" if flips else "info")]


KIND = RegimeAnalysis()

__all__ = ["KIND", "Config", "RegimeAnalysis"]
