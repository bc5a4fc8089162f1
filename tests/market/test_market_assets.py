"""Market-data assets in Dagster: single-run backfills, re-materialization, checks, bad input."""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from admf_assets import market
from admf_assets.engine import marketdata
from admf_assets.runner import RANGE_END, RANGE_START
from resources import DuckDBParquetIOManager, MarketDataSource, StorageResource
from resources.storage import TableStore

SYMBOLS = ["SPY", "QQQ", "TLT"]
REPO = Path(__file__).resolve().parents[2]


def _resources(root, source=None):
    return {
        "io_manager": DuckDBParquetIOManager(storage_root=str(root)),
        "storage": StorageResource(storage_root=str(root)),
        "market_source": source or MarketDataSource(symbols=SYMBOLS),
    }


def _backfill(instance, root, start, end, source=None, extra=()):
    return dg.materialize(
        [*market.ASSETS, *market.CHECKS, *extra],
        resources=_resources(root, source),
        instance=instance,
        tags={RANGE_START: start, RANGE_END: end},
        raise_on_error=False,
    )


def _materialized_partitions(instance, key):
    return instance.get_materialized_partitions(key)


def test_definitions_load_and_validate():
    import definitions

    dg.Definitions.validate_loadable(definitions.defs)
    repo = definitions.defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"market/raw_bars", "market/clean_bars"} <= keys
    assert definitions.defs.resolve_job_def("market_data").partitions_def == market.market_partitions
    assert definitions.defs.resolve_schedule_def("market_data_daily") is not None
    checks = repo.asset_graph.get_check_keys_for_assets({market.CLEAN_KEY})
    assert {c.name for c in checks} == set(marketdata.CHECKS)


@pytest.mark.parametrize("start, end", [("2015-01-01", "2015-12-31"), ("2019-12-28", "2020-01-06"),
                                        ("2000-01-01", "2011-03-04"), ("2024-02-24", "2099-01-01"),
                                        ("2016-07-09", "2016-07-10")])
def test_partition_keys_between_are_dagsters_keys(start, end):
    """The weekday arithmetic gives exactly the keys Dagster's partition set has in the range
    (clipped to its first and last partition; a weekend alone is empty)."""
    theirs = [k for k in market.market_partitions.get_partition_keys() if start <= k <= end]
    assert market.partition_keys_between(start, end) == theirs


def test_one_year_backfill_is_one_run_with_every_partition(tmp_path):
    with dg.instance_for_test() as instance:
        res = _backfill(instance, tmp_path, "2023-01-02", "2023-12-29")
        assert res.success
        assert len(instance.get_runs()) == 1
        expected = market.market_partitions.get_partition_keys_in_range(
            dg.PartitionKeyRange("2023-01-02", "2023-12-29"))
        assert len(expected) == 260  # weekdays of 2023
        for key in (market.RAW_KEY, market.CLEAN_KEY):
            assert _materialized_partitions(instance, key) == set(expected)
        store = TableStore(tmp_path)
        bars = store.read_partitions(list(market.CLEAN_KEY.path), expected)
        assert len(bars) == 260 * len(SYMBOLS)
        assert bars.groupby("date").size().eq(len(SYMBOLS)).all()
        evals = res.get_asset_check_evaluations()
        assert len(evals) == len(marketdata.CHECKS) == 6 and all(e.passed for e in evals)
        assert all(e.metadata["partitions_checked"].value == 260 for e in evals)
        # the DuckDB catalog has a queryable view
        con = duckdb.connect(str(store.duckdb_path), read_only=True)
        try:
            n = con.execute("select count(*) from market.clean_bars where date >= DATE '2023-01-01'").fetchall()[0][0]
        finally:
            con.close()
        assert n == 260 * len(SYMBOLS)


def test_rematerializing_a_partition_replaces_exactly_its_rows(tmp_path):
    with dg.instance_for_test() as instance:
        assert _backfill(instance, tmp_path, "2023-03-01", "2023-03-31").success
        store = TableStore(tmp_path)
        key = list(market.CLEAN_KEY.path)
        keys = sorted(store.stored_partitions(key))
        before = store.read_partitions(key, keys)
        mtimes = {k: store.partition_path(key, k).stat().st_mtime_ns for k in keys}
        time.sleep(0.01)
        res = dg.materialize([*market.ASSETS, *market.CHECKS], resources=_resources(tmp_path),
                             instance=instance, partition_key="2023-03-15")
        assert res.success
        after = store.read_partitions(key, keys)
        pd.testing.assert_frame_equal(before, after)
        changed = {k for k in keys if store.partition_path(key, k).stat().st_mtime_ns != mtimes[k]}
        assert changed == {"2023-03-15"}


class _LeakySource(MarketDataSource):
    """A source delivering one bad bar, to simulate a cleaning bug letting it through."""

    bad: str = "low_high"

    def load(self, start, end):
        df = super().load(start, end)
        if self.bad == "inf":
            df.loc[df.index[0], "high"] = float("inf")
        else:
            df.loc[df.index[0], "high"] = df.loc[df.index[0], "low"] / 2
        return df


@pytest.mark.parametrize("bad, failing", [("low_high", {"high_ge_open_close"}), ("inf", {"finite_prices"})])
def test_failing_check_blocks_downstream(tmp_path, monkeypatch, bad, failing):
    monkeypatch.setattr(marketdata, "clean_bars",
                        lambda raw: (raw.assign(repaired=False), marketdata.CleaningReport(len(raw), len(raw))))

    @dg.asset(deps=[market.CLEAN_KEY], partitions_def=market.market_partitions,
              backfill_policy=dg.BackfillPolicy.single_run())
    def research(context):
        return None

    with dg.instance_for_test() as instance:
        res = _backfill(instance, tmp_path, "2023-03-01", "2023-03-03",
                        source=_LeakySource(symbols=SYMBOLS, bad=bad), extra=[research])
        assert not res.success
        failed = {e.check_name for e in res.get_asset_check_evaluations() if not e.passed}
        assert failed == failing
        assert not _materialized_partitions(instance, research.key)


def test_bad_csv_fails_the_run_with_the_message_and_writes_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "SPY.csv").write_text("Date,Open,High,Low,Close,Volume\n2023-03-01,1,2,0.5,1.5,10\n"
                                  "2023-03-02,1,2,0.5,oops,10\n")
    src = MarketDataSource(kind="files", path=str(data), symbols=["SPY"])
    with dg.instance_for_test() as instance:
        res = _backfill(instance, tmp_path / "store", "2023-03-01", "2023-03-03", source=src)
        assert not res.success
        failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
        msg = failure.event_specific_data.error.message
        assert "SPY.csv: row 2 (line 3), column 'Close': 'oops' is not a number" in msg
        assert not (tmp_path / "store" / "tables").exists()


def test_files_with_mixed_offsets_inf_prices_and_a_two_month_gap(tmp_path):
    """Mixed UTC offsets ingest (each row keeps its date), an infinite close is dropped and
    counted, and two months of missing weekdays are flagged in the metadata and the log."""
    data = tmp_path / "data"
    data.mkdir()
    days = pd.bdate_range("2023-01-02", "2023-05-31")
    gap = (days >= "2023-02-01") & (days <= "2023-03-31")
    rows = [f"{d.date()}T16:00:00{'-05:00' if d < pd.Timestamp('2023-03-13') else '-04:00'},10,11,9,10,100"
            for d in days[~gap]]
    rows[1] = rows[1].replace(",10,11,9,10,", ",10,11,9,inf,")
    (data / "SPY.csv").write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n")
    src = MarketDataSource(kind="files", path=str(data), symbols=["SPY"])
    with dg.instance_for_test() as instance:
        res = _backfill(instance, tmp_path / "store", "2023-01-02", "2023-05-31", source=src)
        assert res.success
        raw = next(e for e in res.get_asset_materialization_events() if e.asset_key == market.RAW_KEY)
        md = raw.materialization.metadata
        assert md["run_gaps_over_a_week"].value == 1
        assert "| 2023-02-01 | 2023-03-31 |         43 | all symbols |" in md["run_gaps"].value
        logs = [e.user_message for e in instance.all_logs(res.run_id) if e.level >= 30]
        assert any("1 run(s) of missing weekdays longer than a week: 2023-02-01..2023-03-31 (43 weekdays; "
                   "all symbols)" in m for m in logs), logs
        clean = next(e for e in res.get_asset_materialization_events() if e.asset_key == market.CLEAN_KEY)
        assert clean.materialization.metadata["run_nonfinite_close_dropped"].value == 1
        assert all(e.passed for e in res.get_asset_check_evaluations())
    store = TableStore(tmp_path / "store")
    keys = market.partition_keys_between("2023-01-02", "2023-05-31")
    bars = store.read_partitions(list(market.CLEAN_KEY.path), keys)
    assert len(bars) == (~gap).sum() - 1  # the infinite close dropped
    assert bars.date.dt.strftime("%Y-%m-%d").tolist() == [str(d.date()) for i, d in enumerate(days[~gap]) if i != 1]


def _cli_env(home, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADMF_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(home), "ADMF_SYMBOLS": "SPY,QQQ", **extra})
    return env


def _admf(*args, env):
    return subprocess.run([sys.executable, "-m", "admf_assets.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_cli_bad_csv_is_one_clear_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "SPY.csv").write_text("Date,Open,High,Low,Close\n2023-03-01,1,2,0.5,1.5\n")
    env = _cli_env(tmp_path / "home", ADMF_MARKET_SOURCE="files", ADMF_MARKET_PATH=str(data),
                   ADMF_SYMBOLS="SPY")
    p = _admf("backfill", "--start", "2023-03-01", "--end", "2023-03-03", env=env)
    assert p.returncode == 1
    assert "SPY.csv: missing column Volume (found: Date, Open, High, Low, Close)" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    # one line for the failure (plus the run's verdict), no Dagster event log in the terminal
    assert [ln for ln in p.stderr.splitlines() if ln.strip()][-2:][0].strip().endswith(
        "SPY.csv: missing column Volume (found: Date, Open, High, Low, Close)")
    assert len(p.stderr.strip().splitlines()) <= 3 and " - dagster - " not in p.stderr + p.stdout


def test_parallel_multiprocess_backfills_with_database_held_open(tmp_path):
    """Two processes backfill different ranges at once with the multiprocess executor while an
    analyst holds the DuckDB catalog open in a third process."""
    home = tmp_path / "home"
    env = _cli_env(home)
    first = _admf("backfill", "--start", "2022-01-03", "--end", "2022-01-07", env=env)
    assert first.returncode == 0, first.stderr
    db = home / "admf_storage" / "research.duckdb"
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb,time; c=duckdb.connect({str(db)!r}, read_only=True); "
                               "print('open', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        procs = [subprocess.Popen([sys.executable, "-m", "admf_assets.cli", "backfill", "--start", s,
                                   "--end", e, "--executor", "multiprocess"], env=env, cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for s, e in (("2022-02-01", "2022-03-31"), ("2022-04-01", "2022-05-31"))]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
    finally:
        holder.kill()
        holder.wait()
    store = TableStore(home / "admf_storage")
    keys = market.market_partitions.get_partition_keys_in_range(dg.PartitionKeyRange("2022-02-01", "2022-05-31"))
    bars = store.read_partitions(list(market.CLEAN_KEY.path), keys)
    assert len(bars) == 2 * len(keys)
    with dg.DagsterInstance.from_config(str(home)) as inst:
        assert len(inst.get_runs()) == 3
        assert set(keys) <= inst.get_materialized_partitions(market.CLEAN_KEY)
