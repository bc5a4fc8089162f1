"""feature_engineering: causal features per date and symbol (returns over each lookback, rolling
volatility, volume z-score, rolling correlation to the universe mean, distance from the moving
average), for later phases to read as ``<phase>.features``.

    - name: feature_engineering
      type: feature_engineering
      config:
        features: [momentum, volatility, volume, correlation]
        lookback_periods: [5, 10, 20, 50, 100]

A value at date t uses bars up to t only; the first rows of each lookback are empty (NaN).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from pydantic import Field, StrictInt, StrictStr, field_validator

from admf_assets.engine import charts
from admf_assets.engine.features import FEATURE_ALIASES, FEATURES, compute_features, feature_columns
from admf_assets.phases.common import BARS, DataSplitName
from admf_assets.phases.kind import ConfigEnv, Output, PhaseContext, PhaseError, PhaseKind, PhaseResult, PhaseView, \
    StrictModel
from admf_assets.suggest import suggest

MAX_LOOKBACK = 2520  # ten years of bars


class Config(StrictModel):
    __key_aliases__ = ("lookbacks", "windows")

    features: list[StrictStr] = Field(default_factory=lambda: ["momentum", "volatility", "volume", "correlation"],
                                      min_length=1)
    lookback_periods: list[StrictInt] = Field(default_factory=lambda: [5, 10, 20, 50, 100], min_length=1)
    data_split: DataSplitName = "all"

    @field_validator("lookback_periods", mode="before")
    @classmethod
    def _one(cls, v):
        return [v] if isinstance(v, int) and not isinstance(v, bool) else v


class FeatureEngineering(PhaseKind):
    name = "feature_engineering"
    aliases = ("features", "feature_computation")
    description = "Causal features per date and symbol: momentum, volatility, volume z-score, correlation, trend."
    Config = Config
    outputs = (
        Output("features", "One row per date and symbol; one column per feature and lookback (NaN while warming up)",
               aliases=("feature_table", "feature_matrix", "engineered_features"),
               columns=("date", "symbol", "split"), time_series=True),
    )
    consumes = (BARS,)
    metrics = ("n_features", "n_rows", "nan_fraction")

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        families: list[str] = []
        for i, f in enumerate(cfg.features):
            key = f.strip().lower()
            canon = FEATURE_ALIASES.get(key, key)
            if canon not in FEATURES:
                env.problem(f"features[{i}]", f"unknown feature '{f}'{suggest(key, [*FEATURES, *FEATURE_ALIASES])}; "
                                              f"available: {', '.join(FEATURES)}")
            elif canon not in families:
                families.append(canon)
        lookbacks = sorted(set(cfg.lookback_periods))
        for i, L in enumerate(cfg.lookback_periods):
            if not 1 <= L <= MAX_LOOKBACK:
                env.problem(f"lookback_periods[{i}]", f"a lookback must be between 1 and {MAX_LOOKBACK} bars (got {L})")
        for fam in families:
            low = FEATURES[fam][1]
            short = [L for L in lookbacks if L < low]
            if short:
                env.problem("lookback_periods", f"feature '{fam}' needs lookbacks of at least {low} bars "
                                                f"(got {', '.join(map(str, short))})")
        return cfg.model_copy(update={"features": families, "lookback_periods": lookbacks})

    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        bars = ctx.need("bars")
        t0 = time.perf_counter()
        close = bars.pivot(index="date", columns="symbol", values="close").sort_index()
        volume = bars.pivot(index="date", columns="symbol", values="volume").sort_index()
        try:
            table = compute_features(close, volume, cfg.features, cfg.lookback_periods)
        except ValueError as exc:
            raise PhaseError(str(exc)) from None
        split = bars.set_index(["date", "symbol"])["split"]
        table.insert(2, "split", split.reindex(pd.MultiIndex.from_frame(table[["date", "symbol"]])).to_numpy())
        if cfg.data_split != "all":
            table = table[table["split"] == cfg.data_split].reset_index(drop=True)
        names = feature_columns(cfg.features, cfg.lookback_periods)
        values = table[names].to_numpy(dtype=np.float64)
        nan_fraction = float(np.isnan(values).mean()) if values.size else 0.0
        stats = _summary(table, names)
        meta = {"rows": len(table), "features": len(names), "columns": ", ".join(names),
                "nan_fraction": round(nan_fraction, 6), "seconds": round(time.perf_counter() - t0, 4),
                "summary": stats.head(20), "preview": table.dropna().head(10)}
        metrics = {"n_features": len(names), "n_rows": len(table), "nan_fraction": nan_fraction}
        return PhaseResult(outputs={"features": table}, metadata={"features": meta}, metrics=metrics)

    def sections(self, view: PhaseView) -> list[dict]:
        table = view.outputs.get("features")
        if table is None or not len(table):
            return []
        cfg: Config = view.config
        names = feature_columns(cfg.features, cfg.lookback_periods)
        out = [{"title": f"{view.phase}: features",
                "text": f"{len(names)} causal features for {table['symbol'].nunique()} symbol(s); "
                        "a value at a date uses bars up to that date only.",
                "table": _summary(table, names), "max_rows": 60}]
        vol = [n for n in names if n.startswith("volatility_")]
        if vol:
            col = vol[len(vol) // 2]
            wide = table.pivot(index="date", columns="symbol", values=col)
            series = {str(s): wide[s] for s in list(wide.columns)[:5]}
            out.append({"title": f"{view.phase}: {col}",
                        "chart_svg": charts.line_chart_svg(series, f"{col} (annualized)")})
        return out


def _summary(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    vals = table[names]
    return pd.DataFrame({"feature": names, "mean": vals.mean().to_numpy(), "std": vals.std().to_numpy(),
                         "min": vals.min().to_numpy(), "max": vals.max().to_numpy(),
                         "nan_fraction": vals.isna().mean().to_numpy()})


KIND = FeatureEngineering()

__all__ = ["KIND", "Config", "FeatureEngineering"]
