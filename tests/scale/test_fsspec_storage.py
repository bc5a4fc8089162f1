"""The storage root on a non-local fsspec filesystem (``memory://``): the stored tables, a market
backfill and a workflow run, queries through DuckDB, and what cannot work there."""

from __future__ import annotations

import uuid

import dagster as dg
import fsspec
import pandas as pd
import pytest

from admf_assets import cli, runner, settings
from admf_assets.settings import SettingError
from resources.storage import TableStore


@pytest.fixture
def memory_root(monkeypatch, tmp_path):
    root = f"memory://admf-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADMF_STORAGE", root)
    monkeypatch.delenv("ADMF_POSTGRES_URL", raising=False)
    monkeypatch.delenv("ADMF_EXECUTOR", raising=False)
    settings.ensure_dagster_home()
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_table_store_on_memory_filesystem(memory_root):
    store = TableStore(memory_root)
    assert not store.local and store.duckdb_path is None
    frame = pd.DataFrame({"date": pd.to_datetime(["2023-01-02", "2023-01-02", "2023-01-03"]),
                          "symbol": ["A", "B", "A"], "close": [1.0, 2.0, 3.0]})
    store.write(["wf", "phase", "out"], frame)
    pd.testing.assert_frame_equal(store.read(["wf", "phase", "out"]), frame)
    assert store.size(store.file_path(["wf", "phase", "out"])) > 0
    labels = frame["date"].dt.strftime("%Y-%m-%d").to_numpy()
    counts = store.write_partitions(["market", "bars"], frame, labels, ["2023-01-02", "2023-01-03", "2023-01-04"])
    assert counts == {"2023-01-02": 2, "2023-01-03": 1, "2023-01-04": 0}
    assert store.stored_partitions(["market", "bars"]) == {"2023-01-02", "2023-01-03", "2023-01-04"}
    back = store.read_partitions(["market", "bars"], ["2023-01-02", "2023-01-03"])
    assert back["close"].tolist() == [1.0, 2.0, 3.0]
    fs = fsspec.filesystem("memory")
    assert not [p for p in fs.find(memory_root) if p.endswith(".tmp")]  # no temporary file left
    assert sorted(store.stored_tables()) == [(["market", "bars"], True), (["wf", "phase", "out"], False)]
    con = store.connect()  # DuckDB reading the fsspec filesystem
    assert con.execute("SELECT sum(close) FROM market.bars").fetchone()[0] == 6.0
    assert con.execute('SELECT count(*) FROM wf."phase__out"').fetchone()[0] == 3


def test_backfill_and_workflow_on_memory_root(memory_root, two_branches, capsys, tmp_path):
    with dg.DagsterInstance.get() as inst:
        assert runner.backfill("2023-01-02", "2023-03-31", inst).success
        out = runner.run_workflow(str(two_branches), inst)
    assert out.success, out.failures
    assert out.report_path.startswith(memory_root + "/reports/two_branches/")
    fs = fsspec.filesystem("memory")
    assert fs.cat(out.report_path).startswith(b"<!DOCTYPE html>")
    assert fs.exists(f"{memory_root}/reports/two_branches/latest.html")
    store = TableStore(memory_root)
    best = store.read(["two_branches", "search", "best_parameters"])
    assert len(best) == 1
    assert not (tmp_path / "home" / "admf_storage").exists()  # nothing went to the local default
    # `admf db` on a URL root: views built in memory over the fsspec files
    capsys.readouterr()
    assert cli.main(["db"]) == 0  # the catalog: one view per stored table
    printed = capsys.readouterr().out
    assert f"DuckDB catalog: in memory, over {memory_root}" in printed
    assert "two_branches.validation__performance_report" in printed
    assert cli.main(["db", "SELECT count(DISTINCT date) AS days FROM market.clean_bars"]) == 0
    assert str(len(pd.bdate_range("2023-01-02", "2023-03-31"))) in capsys.readouterr().out
    # queries only, on a URL root as on a local one
    assert cli.main(["db", "CREATE TABLE t AS SELECT 1"]) == 2
    assert "refused: CREATE statements are not allowed" in capsys.readouterr().err


def test_memory_root_refuses_step_processes(memory_root, two_branches):
    with dg.DagsterInstance.get() as inst:
        with pytest.raises(SettingError, match="memory:// storage root lives in one process"):
            runner.run_workflow(str(two_branches), inst, executor="multiprocess")
