"""Market-data source resource: ``synthetic`` (default, no files or network), ``sample`` (real
S&P 500 and NASDAQ bars shipped with the ``arch`` package) or ``files``."""

from __future__ import annotations

from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from admf_assets.engine import marketdata, sample, synthetic


class MarketDataSource(dg.ConfigurableResource):
    """Where raw daily bars come from.

    * ``synthetic``: deterministic regime-switching market (see ``admf_assets.engine.synthetic``)
      for ``symbols`` from ``seed``; the true regime of each day is available via
      :meth:`true_regimes`.
    * ``sample``: real daily bars of ``SP500`` and ``NASDAQ``, 1999-01-04..2018-12-31 (see
      ``admf_assets.engine.sample``); ``symbols`` empty means both.
    * ``files``: ``path`` is a directory with one CSV or Parquet file per symbol
      (``SPY.csv``...) with columns Date, Open, High, Low, Close, Volume (any case; an
      adjusted close column is used when present).
    """

    kind: Literal[marketdata.SOURCES] = "synthetic"  # type: ignore[valid-type]
    #: the universe; empty: the 20 synthetic symbols, both sample symbols, or every file
    symbols: list[str] = Field(default_factory=list)
    seed: int = 42
    path: str | None = None

    def universe(self) -> list[str]:
        if self.kind == "files" and not self.symbols:
            return sorted(marketdata.symbol_files(self._dir()))
        if not self.symbols:
            return list(sample.SAMPLE_SYMBOLS if self.kind == "sample" else synthetic.DEFAULT_SYMBOLS)
        return list(self.symbols)

    def _dir(self) -> str:
        if not self.path:
            raise marketdata.MarketDataError("market source kind 'files' needs 'path' (a directory)")
        return self.path

    def load(self, start, end) -> pd.DataFrame:
        """Raw bars (long layout) for every symbol of the universe with start <= date <= end."""
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        if self.kind == "synthetic":
            return synthetic.synthetic_bars(self.universe(), start, end, seed=self.seed)
        if self.kind == "sample":
            return sample.sample_bars(self.universe(), start, end)
        files = marketdata.symbol_files(self._dir())
        wanted = self.universe()
        missing = [s for s in wanted if s.upper() not in files]
        if missing:
            raise marketdata.MarketDataError(
                f"{self.path}: no file for symbol(s) {', '.join(missing)} "
                f"(found: {', '.join(sorted(files)) or 'none'})"
            )
        frames = []
        for sym in wanted:
            bars = marketdata.read_symbol_file(files[sym.upper()], sym)
            frames.append(bars[(bars["date"] >= start) & (bars["date"] <= end)])
        out = pd.concat(frames, ignore_index=True) if frames else synthetic.empty_bars()
        return out.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)

    def true_regimes(self, start, end) -> pd.Series:
        if self.kind != "synthetic":
            raise ValueError("true regime labels exist only for the synthetic source")
        return synthetic.synthetic_regimes(start, end, seed=self.seed)
