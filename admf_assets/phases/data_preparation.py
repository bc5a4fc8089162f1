"""data_preparation: the workflow's symbols and dates from the partitioned clean bars, with the
train/test split as a column (``split`` = 'train' | 'test').

Every phase that trades needs these bars; when a workflow declares no data_preparation phase,
one named ``data`` is added from the ``data:`` section.  The section's keys are the defaults
of every data_preparation phase, so ``config: {symbols: [QQQ]}`` overrides one of them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from pydantic import StrictStr, field_validator, model_serializer

from admf_assets.engine import charts
from admf_assets.engine.sample import SAMPLE_SYMBOLS
from admf_assets.phases.common import MarketSourceName, SplitConfig, check_calendar, check_dates, check_universe
from admf_assets.phases.kind import ConfigEnv, Image, Implicit, Output, PhaseContext, PhaseError, PhaseKind, \
    PhaseResult, PhaseView, StrictModel

COLUMNS = ["date", "symbol", "open", "high", "low", "close", "volume"]
MARKET_KEY = ("market", "clean_bars")

class Config(StrictModel):
    """Overrides of the workflow's data section for one data_preparation phase."""

    symbols: list[StrictStr] | None = None
    start_date: date | None = None
    end_date: date | None = None
    split: SplitConfig | None = None
    #: the market-data source the workflow needs; a run with another ADMF_MARKET_SOURCE stops
    source: MarketSourceName | None = None

    @field_validator("symbols", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_serializer(mode="wrap")
    def _without_unset_source(self, handler) -> dict[str, Any]:
        out = handler(self)
        if out.get("source") is None:  # no source declared: configs (and code versions) as before
            out.pop("source", None)
        return out


class DataPreparation(PhaseKind):
    name = "data_preparation"
    aliases = ("data_prep", "data_loading")
    description = ("Clean daily bars of the workflow's symbols and dates, read from the partitioned "
                   "market data; the data section's train/test split travels with them.")
    Config = Config
    outputs = (
        Output("bars", "Daily OHLCV bars, one row per symbol and date, with the train/test split",
               aliases=("cleaned_data", "clean_data", "market_data", "data"),
               columns=(*COLUMNS, "split"), time_series=True),
    )
    metrics = ("n_rows", "n_symbols", "n_dates", "missing_fraction")
    implicit = Implicit(phase="data", when="needed", section="data", section_required=True,
                        what="market data", hint="{symbols, start_date, end_date}",
                        description="Market data of the workflow's symbols and dates (from the data section)")
    reads_assets = (MARKET_KEY,)

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        for key in ("symbols", "start_date", "end_date"):
            if not getattr(cfg, key):
                env.problem(key, f"no {key}: set data.{key} (or config.{key} of this phase)")
        split = cfg.split or SplitConfig()
        if cfg.start_date and cfg.end_date and not env.problems:
            try:
                check_dates(cfg.start_date, cfg.end_date, split)
            except ValueError as exc:
                env.problem("start_date", str(exc))
            for fld, msg in check_calendar(cfg.start_date, cfg.end_date, cfg.source):
                env.problem(fld, msg)
        if cfg.symbols:
            check_universe(cfg.symbols, env, cfg.source)
        return cfg.model_copy(update={"split": split, "symbols": list(cfg.symbols or [])})

    def market_range(self, cfg: Config) -> tuple[date, date]:
        return cfg.start_date, cfg.end_date

    def market_source(self, cfg: Config) -> str | None:
        return cfg.source

    def run(self, ctx: PhaseContext) -> PhaseResult:
        from admf_assets.market import missing_partitions, required_partitions
        from admf_assets.runtime import market_source_kind
        from resources.storage import summarize_dates

        cfg: Config = ctx.config
        current = market_source_kind()
        if cfg.source is not None and cfg.source != current:
            raise PhaseError(f"field 'data.source': this workflow needs the market source '{cfg.source}': run it "
                             f"with ADMF_MARKET_SOURCE={cfg.source} (the current source is '{current}')")
        symbols = [s.upper() for s in cfg.symbols]
        start, end = pd.Timestamp(cfg.start_date), pd.Timestamp(cfg.end_date)
        try:
            missing = missing_partitions(ctx.store, start, end)
        except ValueError as exc:
            raise PhaseError(str(exc)) from None
        if missing:
            raise PhaseError(
                f"market data for {len(missing)} weekday(s) is not materialized: {summarize_dates(missing)}. "
                f"Backfill first: admf backfill --start {missing[0]} --end {missing[-1]} "
                f"(or run the workflow with `admf run`, which backfills what is missing)"
            )
        keys = required_partitions(start, end)
        bars = ctx.store.read_partitions(list(MARKET_KEY), keys, columns=COLUMNS)
        bars = bars[bars["symbol"].isin(symbols)]
        absent = [s for s in symbols if s not in set(bars["symbol"])]
        if absent:
            hint = ""
            if set(absent) <= set(SAMPLE_SYMBOLS) and current != "sample":
                hint = f" ({', '.join(SAMPLE_SYMBOLS)} are the built-in real sample: ADMF_MARKET_SOURCE=sample)"
            raise PhaseError(
                f"symbol(s) {', '.join(absent)} have no bars between {start.date()} and {end.date()}; "
                f"set ADMF_SYMBOLS / the market source to include them and backfill again{hint}"
            )
        bars, meta, metrics = prepare_bars(bars, symbols, cfg.split)
        meta["market_source"] = current
        return PhaseResult(outputs={"bars": bars}, metadata={"bars": meta}, metrics=metrics)

    def header(self, view: PhaseView) -> dict[str, Any]:
        bars = view.outputs.get("bars")
        if bars is None or not len(bars):
            return {}
        dates = pd.DatetimeIndex(bars["date"].unique()).sort_values()
        test = pd.DatetimeIndex(bars.loc[bars["split"] == "test", "date"].unique()).sort_values()
        out = {"symbols": sorted(bars["symbol"].unique()), "start": dates[0].date(), "end": dates[-1].date(),
               "n_bars": len(dates)}
        if len(test):
            train = dates[dates < test[0]]
            out["train"] = f"{train[0].date()} .. {train[-1].date()} ({len(train)} bars)" if len(train) else None
            out["test"] = (f"{test[0].date()} .. {test[-1].date()} ({len(test)} bars; equity starts at the "
                           f"{test[0].date()} close, so {len(test) - 1} test returns)")
        return out

    def sections(self, view: PhaseView) -> list[dict]:
        return []  # the data range is in the report header


def prepare_bars(bars: pd.DataFrame, symbols: list[str], split: SplitConfig) -> tuple[pd.DataFrame, dict, dict]:
    """Sorted bars with the ``split`` column, their metadata and metrics."""
    bars = bars.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    dates = pd.DatetimeIndex(sorted(bars["date"].unique()))
    i = split.test_start_index(list(dates))
    test_start = dates[i] if i < len(dates) else None
    bars["split"] = np.where(bars["date"] >= test_start, "test", "train") if test_start is not None else "train"
    n_train = int((dates < test_start).sum()) if test_start is not None else len(dates)
    if n_train == 0 or n_train == len(dates):
        raise PhaseError(
            f"the split leaves {'no train' if n_train == 0 else 'no test'} dates in "
            f"{dates[0].date()}..{dates[-1].date()} (field 'data.split')"
        )
    full = bars.pivot(index="date", columns="symbol", values="close")
    missing_fraction = float(full.isna().to_numpy().mean())
    metrics = {"n_rows": len(bars), "n_symbols": len(symbols), "n_dates": len(dates),
               "missing_fraction": missing_fraction}
    meta = {
        "rows": len(bars),
        "symbols": ", ".join(symbols),
        "first_date": str(dates[0].date()),
        "last_date": str(dates[-1].date()),
        "test_start": str(test_start.date()),
        "train_dates": n_train,
        "test_dates": len(dates) - n_train,
        "missing_fraction": missing_fraction,
        "prices": Image(charts.line_chart({s: full[s] / full[s].dropna().iloc[0] for s in list(full.columns)[:8]
                                           if full[s].notna().any()},
                                          "Close prices, normalised to 1.0 at the first bar", baseline=1.0,
                                          shade_from=test_start, shade_label="test"), alt="normalised close prices"),
        "preview": bars.head(10),
    }
    return bars, meta, metrics


KIND = DataPreparation()

__all__ = ["KIND", "COLUMNS", "Config", "DataPreparation", "prepare_bars"]
