"""The built-in real market data (ADMF_MARKET_SOURCE=sample: S&P 500 and NASDAQ from arch), the
configurable calendar start (ADMF_MARKET_START) and the environment's one-line errors."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from admf_assets import market, runtime
from admf_assets.engine import marketdata
from admf_assets.engine.sample import SAMPLE_FIRST, SAMPLE_LAST, SAMPLE_SYMBOLS, sample_bars
from admf_assets.runner import RANGE_END, RANGE_START
from admf_assets.settings import SettingError
from resources import DuckDBParquetIOManager, MarketDataSource, StorageResource
from resources.storage import TableStore


def test_sample_bars_are_the_arch_data():
    import arch.data.nasdaq
    import arch.data.sp500

    bars = sample_bars(list(SAMPLE_SYMBOLS), SAMPLE_FIRST, SAMPLE_LAST)
    assert list(bars.columns) == marketdata.BAR_COLUMNS
    assert bars.groupby("symbol").size().to_dict() == {"NASDAQ": 5031, "SP500": 5031}
    for sym, mod in (("SP500", arch.data.sp500), ("NASDAQ", arch.data.nasdaq)):
        raw = mod.load()
        assert (raw["Adj Close"] == raw["Close"]).all()  # index levels: no adjustment to apply
        mine = bars[bars.symbol == sym].set_index("date")
        assert mine.index.equals(pd.DatetimeIndex(raw.index))
        assert (mine["close"].to_numpy() == raw["Close"].to_numpy()).all()
    days = pd.DatetimeIndex(bars["date"].unique())
    assert days[0] == SAMPLE_FIRST and days[-1] == SAMPLE_LAST
    for holiday in ("2001-09-11", "2001-09-14", "2012-10-29", "2018-12-25", "2018-12-05"):
        assert pd.Timestamp(holiday) not in days  # exchange closures are absent, not filled
    assert bars[(bars.date == "2008-10-15") & (bars.symbol == "SP500")]["close"].round(2).item() == 907.84
    _, report = marketdata.clean_bars(bars)
    assert report.counts["duplicates_removed"] == 0 and report.counts["missing_close_dropped"] == 0


def test_sample_errors_are_one_line():
    with pytest.raises(marketdata.MarketDataError, match="has the symbols SP500, NASDAQ; not SPY"):
        sample_bars(["SPY"], "2010-01-01", "2010-02-01")
    with pytest.raises(marketdata.MarketDataError, match=r"covers 1999-01-04..2018-12-31; asked for 2018-12-01"):
        sample_bars(["SP500"], "2018-12-01", "2019-01-31")
    assert len(sample_bars(["sp500"], "1999-01-01", "1999-01-08")) == 5  # case-insensitive, New Year


def test_environment_selects_the_sample_source_and_the_calendar_start(monkeypatch):
    monkeypatch.delenv("ADMF_MARKET_START", raising=False)
    monkeypatch.delenv("ADMF_SYMBOLS", raising=False)
    monkeypatch.setenv("ADMF_MARKET_SOURCE", "sample")
    src = runtime.market_source()
    assert src.kind == "sample" and src.universe() == ["SP500", "NASDAQ"]
    assert runtime.market_start() == "1999-01-01"
    monkeypatch.setenv("ADMF_SYMBOLS", "nasdaq")
    assert runtime.market_source().universe() == ["NASDAQ"]
    monkeypatch.setenv("ADMF_MARKET_START", "2003-06-02")
    assert runtime.market_start() == "2003-06-02"
    monkeypatch.delenv("ADMF_MARKET_SOURCE")
    monkeypatch.delenv("ADMF_MARKET_START")
    assert runtime.market_source().kind == "synthetic" and runtime.market_start() == "2010-01-01"
    assert market.MARKET_START == "2010-01-01"  # this test process: the default


@pytest.mark.parametrize("var, value, text", [
    ("ADMF_MARKET_SOURCE", "smaple", "ADMF_MARKET_SOURCE='smaple': use one of synthetic, sample, files"),
    ("ADMF_MARKET_START", "2010-13-01", "ADMF_MARKET_START='2010-13-01': expected a date"),
    ("ADMF_MARKET_START", "2999-01-01", "cannot start in the future"),
])
def test_bad_environment_values_are_one_line(monkeypatch, var, value, text):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingError, match=text.replace("(", r"\(").replace(")", r"\)")):
        runtime.market_start() if var == "ADMF_MARKET_START" else runtime.market_source()


def test_cli_reports_a_bad_environment_value_in_one_line(monkeypatch, capsys, tmp_path):
    from admf_assets import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADMF_MARKET_SOURCE", "bogus")
    assert cli.main(["run", "basic_research", "--no-backfill"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("admf: error: ") and "\n" not in err
    assert err.endswith("ADMF_MARKET_SOURCE='bogus': use one of synthetic, sample, files")
    assert cli.main(["backfill", "--start", "2012-01-02", "--end", "2012-01-06"]) == 2
    assert capsys.readouterr().err.strip() == ("admf: error: ADMF_MARKET_SOURCE='bogus': use one of synthetic, "
                                               "sample, files")


def test_calendar_start_is_read_when_the_market_module_loads(monkeypatch):
    import subprocess
    import sys

    code = "from admf_assets import market; print(market.market_partitions.get_first_partition_key())"
    for env, first in (({"ADMF_MARKET_SOURCE": "sample"}, "1999-01-01"),
                       ({"ADMF_MARKET_START": "2004-03-01"}, "2004-03-01"),
                       ({}, "2010-01-01")):
        environ = {k: v for k, v in __import__("os").environ.items()
                   if k not in ("ADMF_MARKET_SOURCE", "ADMF_MARKET_START")}
        out = subprocess.run([sys.executable, "-c", code], env={**environ, **env}, capture_output=True, text=True,
                             check=True)
        assert out.stdout.strip() == first


def test_a_backfill_of_sample_data_materializes_holidays_empty(tmp_path):
    source = MarketDataSource(kind="sample")
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*market.ASSETS, *market.CHECKS],
            resources={"io_manager": DuckDBParquetIOManager(storage_root=str(tmp_path)),
                       "storage": StorageResource(storage_root=str(tmp_path)), "market_source": source},
            instance=instance, tags={RANGE_START: "2018-12-20", RANGE_END: "2018-12-31"}, raise_on_error=False)
        assert result.success
        keys = instance.get_materialized_partitions(market.CLEAN_KEY)
    assert "2018-12-25" in keys and len(keys) == 8  # every weekday, the holiday too
    store = TableStore(tmp_path)
    bars = store.read_partitions(list(market.CLEAN_KEY.path), sorted(keys))
    assert sorted(bars["symbol"].unique()) == ["NASDAQ", "SP500"]
    assert pd.Timestamp("2018-12-25") not in set(bars["date"]) and len(bars) == 2 * 7
