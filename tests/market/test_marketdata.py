"""Engine-level market data: synthetic source, file reading errors, cleaning, quality rules."""

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine import marketdata, synthetic
from admf_assets.engine.marketdata import MarketDataError


# ----------------------------------------------------------------------------- synthetic
def test_synthetic_is_deterministic_and_range_independent():
    a = synthetic.synthetic_bars(["SPY", "QQQ"], "2015-01-01", "2016-12-31", seed=7)
    b = synthetic.synthetic_bars(["QQQ", "SPY", "TLT"], "2016-03-01", "2016-03-31", seed=7)
    sub = a[(a.date >= "2016-03-01") & (a.date <= "2016-03-31")].reset_index(drop=True)
    b = b[b.symbol != "TLT"].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub, b)
    c = synthetic.synthetic_bars(["SPY"], "2015-01-01", "2015-12-31", seed=8)
    assert not np.allclose(a[a.symbol == "SPY"].close.iloc[:len(c)].to_numpy(), c.close.to_numpy())


def test_synthetic_bars_are_valid_weekday_ohlcv():
    df = synthetic.synthetic_bars(synthetic.DEFAULT_SYMBOLS, "2010-01-01", "2020-12-31")
    assert set(df.symbol) == set(synthetic.DEFAULT_SYMBOLS)
    assert (df.date.dt.dayofweek < 5).all()
    assert not any(len(v) for v in marketdata.check_bars(df).values())
    assert (df.volume > 0).all()
    # correlated through the market factor
    rets = df.pivot(index="date", columns="symbol", values="close").pct_change().dropna()
    corr = rets.corr().to_numpy()
    assert corr[np.triu_indices_from(corr, 1)].mean() > 0.3


def test_true_regimes_follow_the_known_transition_matrix():
    reg = synthetic.synthetic_regimes("2000-01-03", "2035-12-31")
    codes = (reg == "volatile_chop").to_numpy().astype(int)
    counts = np.zeros((2, 2))
    np.add.at(counts, (codes[:-1], codes[1:]), 1)
    est = counts / counts.sum(axis=1, keepdims=True)
    assert np.allclose(est, synthetic.TRANSITION_MATRIX, atol=0.015)
    assert set(reg.unique()) == set(synthetic.REGIME_NAMES)
    # the volatile regime is visibly more volatile
    bars = synthetic.synthetic_bars(["SPY"], "2000-01-03", "2035-12-31").set_index("date")
    r = np.log(bars.close).diff()
    vol = r.groupby(reg.reindex(r.index)).std()
    assert vol["volatile_chop"] > 2 * vol["calm_trend"]


# ----------------------------------------------------------------------------- files
CSV_OK = "Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10.5,100\n2024-01-03,10.5,11,10,10.8,120\n"


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_csv_case_insensitive_and_adjusted_close(tmp_path):
    p = _write(tmp_path, "spy.csv", "date,OPEN,high,Low,close,Adj Close,volume\n"
               "2024-01-02,10,12,9,10,5,100\n")
    df = marketdata.read_symbol_file(p)
    assert df.symbol.tolist() == ["SPY"]
    assert df.close.iloc[0] == 5 and df.open.iloc[0] == 5 and df.high.iloc[0] == 6 and df.low.iloc[0] == 4.5


@pytest.mark.parametrize("text, expected", [
    ("", "SPY.csv: file is empty"),
    ("Date,Open,High,Low,Close,Volume\n", "SPY.csv: file has a header but no rows"),
    ("Date,Open,High,Low,Close\n2024-01-02,1,1,1,1\n", "SPY.csv: missing column Volume (found: Date, Open, High, Low, Close)"),
    (CSV_OK + "2024-13-45,1,1,1,1,1\n", "SPY.csv: row 3 (line 4), column 'Date': cannot parse '2024-13-45' as a date"),
    (CSV_OK + "2024-01-04,1,1,1,abc,1\n", "SPY.csv: row 3 (line 4), column 'Close': 'abc' is not a number"),
])
def test_bad_csv_gives_one_clear_message(tmp_path, text, expected):
    p = _write(tmp_path, "SPY.csv", text)
    with pytest.raises(MarketDataError) as err:
        marketdata.read_symbol_file(p)
    msg = str(err.value)
    assert expected in msg and "\n" not in msg
    assert str(p) in msg


def test_parquet_files_are_read_too(tmp_path):
    df = pd.DataFrame({"Date": pd.to_datetime(["2024-01-02"]), "Open": [1.0], "High": [2.0],
                       "Low": [0.5], "Close": [1.5], "Volume": [10]})
    df.to_parquet(tmp_path / "QQQ.parquet")
    files = marketdata.symbol_files(tmp_path)
    out = marketdata.read_symbol_file(files["QQQ"])
    assert out.close.tolist() == [1.5] and out.symbol.tolist() == ["QQQ"]


# ----------------------------------------------------------------------------- cleaning
def _bars(rows):
    return pd.DataFrame(rows, columns=marketdata.BAR_COLUMNS).assign(date=lambda d: pd.to_datetime(d.date))


def test_cleaning_counts_every_change_and_never_drops_silently():
    raw = _bars([
        ("2024-01-03", "A", 10, 11, 9, 10, 100),
        ("2024-01-02", "A", 10, 11, 9, 10, 100),
        ("2024-01-02", "A", 10, 12, 9, 11, 100),      # duplicate of the row above: last kept
        ("2024-01-04", "A", 10, 11, 9, np.nan, 100),  # missing close: dropped
        ("2024-01-05", "A", 10, 11, 9, -1, 100),      # non-positive close: dropped
        ("2024-01-08", "A", np.nan, 11, 9, 10, 100),  # missing open -> close
        ("2024-01-09", "A", 10, 9.5, 9, 10.2, 100),   # high too low -> 10.2
        ("2024-01-10", "A", 10, 11, 10.5, 10.8, -5),  # low too high -> 10, volume -> 0
    ])
    clean, rep = marketdata.clean_bars(raw)
    assert rep.counts == {"duplicates_removed": 1, "missing_close_dropped": 1, "nonfinite_close_dropped": 0,
                          "nonpositive_close_dropped": 1, "open_repaired": 1,
                          "high_repaired": 1, "low_repaired": 1, "volume_repaired": 1}
    assert rep.rows_in == 8 and rep.rows_out == 5 == len(clean)
    assert rep.rows_in - rep.rows_out == 3  # every dropped row is counted
    assert clean.date.is_monotonic_increasing
    assert clean.loc[clean.date == "2024-01-02", "close"].item() == 11
    assert clean.loc[clean.date == "2024-01-09", "high"].item() == 10.2
    row = clean[clean.date == "2024-01-10"].iloc[0]
    assert row.low == 10 and row.volume == 0 and row.repaired
    assert clean.repaired.sum() == 3
    assert not any(len(v) for v in marketdata.check_bars(clean).values())
    assert len(rep.examples) == 7


@pytest.mark.parametrize("row, failing", [
    (("2024-01-02", "A", 10, 11, 9, np.nan, 1), {"no_missing_close"}),
    (("2024-01-02", "A", 10, 9.9, 9, 10, 1), {"high_ge_open_close"}),
    (("2024-01-02", "A", 10, 11, 10.1, 10.5, 1), {"low_le_open_close"}),
    (("2024-01-02", "A", 10, 11, -1, 10, 1), {"positive_prices"}),
    (("2024-01-02", "A", 10, np.inf, 9, 10, 1), {"finite_prices"}),
    (("2024-01-02", "A", 10, 11, 9, np.inf, 1), {"finite_prices", "high_ge_open_close"}),
])
def test_each_quality_rule_catches_its_kind_of_bad_row(row, failing):
    good = ("2024-01-03", "A", 10, 11, 9, 10, 1)
    res = marketdata.check_bars(_bars([good, row]))
    assert {k for k, v in res.items() if len(v)} == failing
    assert all(len(res[k]) == 1 for k in failing)


def test_duplicate_rule():
    res = marketdata.check_bars(_bars([("2024-01-02", "A", 10, 11, 9, 10, 1)] * 2))
    assert len(res["unique_date_symbol"]) == 2
    assert all(len(v) == 0 for k, v in res.items() if k != "unique_date_symbol")


# ----------------------------------------------------------------------------- time zones, inf, gaps
def test_mixed_utc_offsets_keep_each_rows_own_date(tmp_path):
    """A daylight-saving change inside the file (or offsets of different sources) used to crash
    with 'Can only use .dt accessor'; each row keeps its wall-clock date."""
    p = _write(tmp_path, "SPY.csv", "Date,Open,High,Low,Close,Volume\n"
               "2021-03-12T16:00:00-05:00,1,2,0.5,1.5,10\n"
               "2021-03-15T16:00:00-04:00,1,2,0.5,1.6,10\n"
               "2021-03-16,1,2,0.5,1.7,10\n"
               "2021-03-17T23:30:00+09:00,1,2,0.5,1.8,10\n"
               "2021-03-18T00:00:00Z,1,2,0.5,1.9,10\n")
    df = marketdata.read_symbol_file(p)
    assert df.date.dt.strftime("%Y-%m-%d").tolist() == ["2021-03-12", "2021-03-15", "2021-03-16", "2021-03-17",
                                                        "2021-03-18"]
    assert df.close.tolist() == [1.5, 1.6, 1.7, 1.8, 1.9]
    one_zone = marketdata.parse_dates(pd.Series(["2021-03-12T16:00:00-05:00", "2021-03-19T16:00:00-05:00"]))
    assert one_zone.dt.strftime("%Y-%m-%d %H:%M").tolist() == ["2021-03-12 16:00", "2021-03-19 16:00"]
    bad = _write(tmp_path, "QQQ.csv", "Date,Open,High,Low,Close,Volume\n2021-03-12T16:00:00-05:00,1,2,0.5,1.5,10\n"
                 "2021-03-15T16:00:00-04:00,1,2,0.5,1.6,10\nsoon,1,2,0.5,1.6,10\n")
    with pytest.raises(MarketDataError, match=r"QQQ.csv: row 3 \(line 4\), column 'Date': cannot parse 'soon' as a date"):
        marketdata.read_symbol_file(bad)


def test_infinite_prices_are_dropped_or_repaired_and_counted(tmp_path):
    p = _write(tmp_path, "SPY.csv", "Date,Open,High,Low,Close,Volume\n"
               "2021-03-15,1,2,0.5,1.5,10\n"
               "2021-03-16,1,2,0.5,inf,10\n"       # close inf: dropped like a missing close
               "2021-03-17,1,inf,0.5,1.5,10\n"     # high inf: repaired to max(open, close)
               "2021-03-18,-inf,2,-inf,1.5,inf\n")  # open, low, volume repaired
    raw = marketdata.read_symbol_file(p)
    assert np.isinf(raw.close).sum() == 1  # read as numbers, not rejected
    clean, rep = marketdata.clean_bars(raw)
    assert rep.counts["nonfinite_close_dropped"] == 1
    assert (rep.counts["high_repaired"], rep.counts["open_repaired"], rep.counts["low_repaired"],
            rep.counts["volume_repaired"]) == (1, 1, 1, 1)
    assert rep.rows_in - rep.rows_out == 1
    assert np.isfinite(clean[["open", "high", "low", "close", "volume"]].to_numpy()).all()
    assert clean.loc[clean.date == "2021-03-17", "high"].item() == 1.5
    assert not any(len(v) for v in marketdata.check_bars(clean).values())
    assert "nonfinite_close" in set(rep.examples.issue)


def test_runs_of_missing_weekdays_longer_than_a_week_are_gaps():
    cal = [str(d.date()) for d in pd.bdate_range("2021-01-04", "2021-06-30")]
    full = pd.bdate_range("2021-01-04", "2021-06-30")
    gap = (full >= "2021-03-01") & (full <= "2021-04-30")  # two months missing
    spy = pd.DataFrame({"date": full[~gap], "symbol": "SPY"})
    holiday = pd.DataFrame({"date": full[(full != "2021-01-18") & (full != "2021-01-19")], "symbol": "QQQ"})
    short = pd.DataFrame({"date": full[(full < "2021-02-01") | (full > "2021-02-05")], "symbol": "TLT"})  # 5 days
    bars = pd.concat([spy, holiday, short], ignore_index=True)
    gaps = marketdata.calendar_gaps(bars, cal, ["SPY", "QQQ", "TLT", "GLD"])
    assert gaps.to_dict("records") == [
        {"first": "2021-01-04", "last": "2021-06-30", "weekdays": 128, "symbols": "GLD"},
        {"first": "2021-03-01", "last": "2021-04-30", "weekdays": 45, "symbols": "SPY"},
    ]
    assert marketdata.describe_gaps(gaps) == (
        "2 run(s) of missing weekdays longer than a week: 2021-01-04..2021-06-30 (128 weekdays; GLD), "
        "2021-03-01..2021-04-30 (45 weekdays; SPY)")
    everyone = marketdata.calendar_gaps(spy, cal, ["SPY"])
    assert everyone.symbols.tolist() == ["all symbols"]
    assert marketdata.calendar_gaps(pd.concat([holiday, short]), cal).empty
