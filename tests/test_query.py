"""`admf db`: queries run; every write or read outside the stored tables is refused in one line."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from admf_assets import cli
from resources.storage import TableStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("ADMF_STORAGE", raising=False)
    st = TableStore(home / "admf_storage")
    st.write(["wf", "opt", "best"], pd.DataFrame({"trial": [1, 2, 3], "score": [0.5, 1.5, 1.0]}))
    bars = pd.DataFrame({"date": pd.to_datetime(["2021-01-04", "2021-01-05"]), "symbol": ["SPY", "SPY"],
                         "close": [370.0, 372.5]})
    st.write_partitions(["market", "clean_bars"], bars, bars["date"].dt.strftime("%Y-%m-%d"),
                        ["2021-01-04", "2021-01-05"])
    return st


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _db(capsys, sql):
    code = cli.main(["db", sql])
    out, err = capsys.readouterr()
    return code, out, err


def test_queries_work_on_every_stored_table(store, capsys):
    code, out, err = _db(capsys, "SELECT max(score) AS best FROM wf.opt__best")
    assert (code, err) == (0, "")
    assert "best" in out and "1.5" in out
    code, out, err = _db(capsys, "SELECT count(*) AS n FROM market.clean_bars; SHOW ALL TABLES")
    assert code == 0, err
    assert "2" in out and "clean_bars" in out and "opt__best" in out


@pytest.mark.parametrize("sql, expected", [
    ("COPY (SELECT 1) TO '{outside}/x.csv'", "refused: COPY statements are not allowed"),
    ("COPY (SELECT 1 AS a) TO '{tables}/wf/opt/best.parquet'", "refused: COPY statements are not allowed"),
    ("SELECT 1; COPY (SELECT 1) TO '{outside}/y.csv'", "refused: COPY statements are not allowed"),
    ("EXPORT DATABASE '{outside}/dump'", "refused: EXPORT statements are not allowed"),
    ("SELECT * FROM read_text('/etc/passwd')", 'Cannot access file "/etc/passwd"'),
    ("SELECT * FROM read_csv('/etc/passwd')", 'Cannot access file "/etc/passwd"'),
    ("SELECT * FROM read_text('/etc/shadow')", 'Cannot access file "/etc/shadow"'),
    ("SELECT * FROM glob('/root/*')", 'Cannot access file "/root/*"'),
    ("SELECT * FROM read_parquet('{tables}/../research.duckdb.x')", "Cannot access file"),
    ("SELECT * FROM read_csv('https://example.com/x.csv')", "Cannot access file"),
    ("INSTALL httpfs", "refused: LOAD statements are not allowed"),
    ("LOAD httpfs", "refused: LOAD statements are not allowed"),
    ("CREATE TABLE t AS SELECT 1", "refused: CREATE statements are not allowed"),
    ("DROP VIEW wf.opt__best", "refused: DROP statements are not allowed"),
    ("ATTACH '{outside}/other.duckdb'", "refused: ATTACH statements are not allowed"),
    ("SET enable_external_access = true", "refused: SET statements are not allowed"),
    ("SELECT * FROM nowhere", "Catalog Error: Table with name nowhere does not exist!"),
    ("selec 1", 'Parser Error: syntax error at or near "selec"'),
])
def test_writes_and_reads_outside_the_tables_are_refused(store, capsys, tmp_path, sql, expected):
    outside = tmp_path / "outside"
    outside.mkdir()
    before = _tree_digest(store.tables)
    code, out, err = _db(capsys, sql.format(outside=outside, tables=store.tables))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("admf db: ") and expected in err, err
    assert "Traceback" not in err
    assert list(outside.iterdir()) == []  # nothing written anywhere
    assert _tree_digest(store.tables) == before  # no stored table touched


def test_the_sandbox_holds_even_for_statements_that_pass_the_query_check(store):
    """The settings, not the statement check, keep reads inside the tables folder and the
    configuration locked (a SELECT can still name any file)."""
    from admf_assets.query import QueryError, connect_read_only

    con = connect_read_only(store.duckdb_path, store.tables)
    try:
        for sql in ("SET enable_external_access = true", "SET allowed_directories = ['/']",
                    "CREATE TABLE x (a INT)", "SELECT * FROM read_text('/etc/passwd')"):
            with pytest.raises(Exception) as info:
                con.execute(sql)
            assert "locked" in str(info.value) or "read-only" in str(info.value) or "Cannot access" in str(info.value)
    finally:
        con.close()
    with pytest.raises(QueryError, match="no DuckDB catalog"):
        connect_read_only(store.root / "missing.duckdb", store.tables)


def test_a_query_works_while_another_process_reads_the_catalog(store):
    """An analyst's notebook holding the file read-only does not block `admf db SELECT ...`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(store.duckdb_path)!r}, read_only=True)
            print("open", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ADMF_", "DAGSTER_"))}
        env["DAGSTER_HOME"] = os.environ["DAGSTER_HOME"]
        p = subprocess.run([sys.executable, "-m", "admf_assets.cli", "db", "SELECT sum(close) AS s FROM market.clean_bars"],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "742.5" in p.stdout
        assert p.stderr.startswith("admf db: note: views not refreshed")
    finally:
        holder.kill()
        holder.wait()
