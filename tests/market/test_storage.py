"""Storage: atomic Parquet writes, partition reads, DuckDB views that never block a write."""

import subprocess
import sys

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from admf_assets.engine.capture import capture_signals, capture_to_frame
from resources import DuckDBParquetIOManager
from resources.storage import MissingPartitionsError, TableStore, write_parquet_atomic


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "t.parquet"
    write_parquet_atomic(pd.DataFrame({"a": [1, 2]}), path)

    class Boom:
        pass

    with pytest.raises(Exception):
        write_parquet_atomic(pd.DataFrame({"a": [Boom()]}), path)  # not convertible to Arrow
    assert pd.read_parquet(path)["a"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]  # no temporary left behind


def test_partitions_round_trip_and_missing_ones_are_named(tmp_path):
    store = TableStore(tmp_path)
    df = pd.DataFrame({"date": pd.to_datetime(["2024-01-03", "2024-01-02", "2024-01-03"]), "x": [1, 2, 3]})
    labels = df["date"].dt.strftime("%Y-%m-%d").to_numpy()
    counts = store.write_partitions(["s", "t"], df, labels, ["2024-01-02", "2024-01-03", "2024-01-04"])
    assert counts == {"2024-01-02": 1, "2024-01-03": 2, "2024-01-04": 0}
    back = store.read_partitions(["s", "t"], ["2024-01-02", "2024-01-03", "2024-01-04"])
    assert back["x"].tolist() == [2, 1, 3]
    with pytest.raises(MissingPartitionsError) as err:
        store.read_partitions(["s", "t"], ["2024-01-04", "2024-01-05", "2024-01-08", "2024-01-10"])
    msg = str(err.value)
    assert "s/t: 3 partition(s) not materialized: 2024-01-05..2024-01-08, 2024-01-10" in msg
    assert "admf backfill --start 2024-01-05 --end 2024-01-10" in msg


def test_views_are_deferred_while_the_catalog_is_held_and_created_later(tmp_path):
    store = TableStore(tmp_path)
    store.write(["wf", "a"], pd.DataFrame({"v": [1]}))
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb,time; c=duckdb.connect({str(store.duckdb_path)!r}); "
                               "print('open', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        store.write(["wf", "b"], pd.DataFrame({"v": [2, 3]}))  # returns at once, nothing lost
        assert pd.read_parquet(store.file_path(["wf", "b"]))["v"].tolist() == [2, 3]
        assert (tmp_path / ".views" / "wf.b.pending").exists()
    finally:
        holder.kill()
        holder.wait()
    store.write(["wf", "c"], pd.DataFrame({"v": [4]}))  # the next write applies the pending view
    con = duckdb.connect(str(store.duckdb_path), read_only=True)
    try:
        assert con.execute("select sum(v) from wf.b").fetchall()[0][0] == 5
        assert con.execute("select v from wf.c").fetchall() == [(4,)]
    finally:
        con.close()


def test_array_io_manager_stores_captured_signals_compactly(tmp_path):
    rng = np.random.default_rng(0)
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (300, 2)), axis=0)),
                         index=pd.bdate_range("2020-01-01", periods=300), columns=["A", "B"])
    cap = capture_signals(close, "momentum", pd.DataFrame({"fast_period": [5, 10], "slow_period": [20, 40]}))
    wide, columns = capture_to_frame(cap)

    @dg.asset(io_manager_key="array_io_manager", key=["wf", "signals"])
    def signals() -> pd.DataFrame:
        return wide.reset_index()

    @dg.asset(key=["wf", "reader"], ins={"s": dg.AssetIn(["wf", "signals"])}, io_manager_key="array_io_manager")
    def reader(s: pd.DataFrame) -> pd.DataFrame:
        assert (s.drop(columns=s.columns[0]).dtypes == wide.dtypes.iloc[0]).all()
        return pd.DataFrame({"n": [len(s)]})

    res = dg.materialize([signals, reader], resources={
        "array_io_manager": DuckDBParquetIOManager(storage_root=str(tmp_path), register_views=False)})
    assert res.success
    stored = pd.read_parquet(tmp_path / "tables" / "wf" / "signals.parquet")
    assert str(wide.dtypes.iloc[0]) == "int8" and (stored.dtypes.iloc[1:] == "int8").all()
    assert not (tmp_path / "research.duckdb").exists()  # arrays get no views
    meta = next(e.materialization.metadata for e in res.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey(["wf", "signals"]))
    size = (tmp_path / "tables" / "wf" / "signals.parquet").stat().st_size
    assert meta["bytes_on_disk"].value == size
    # 300 rows x 4 signal columns as dense float64, against the file
    assert meta["compression_ratio_vs_float64_on_disk"].value == round(300 * 4 * 8 / size, 2)
