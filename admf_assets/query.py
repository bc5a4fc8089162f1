"""``admf db``: the read-only query surface over the stored tables.

The connection is DuckDB's own sandbox, set up before any user text runs:

* the catalog file (``research.duckdb``) is opened ``read_only``: CREATE, DROP, INSERT, ATTACH
  of a new database... are refused by DuckDB;
* ``enable_external_access = false`` with ``allowed_directories`` = the storage root's
  ``tables/`` folder: DuckDB opens no other file (``read_text('/etc/passwd')``, ``glob('/root/*')``,
  ``COPY ... TO '/tmp/x'``, ``EXPORT DATABASE``, URLs are refused by its file system layer);
* no extension is installed or autoloaded (``INSTALL httpfs`` cannot reach the network);
* ``lock_configuration = true``: no ``SET`` can undo any of this.

DuckDB's file check does not tell reading from writing: inside an allowed directory
``COPY (SELECT 1) TO '<tables>/x.parquet'`` would succeed and overwrite a stored table (tried with
the installed DuckDB).  So the statements are also classified by DuckDB's own parser
(``duckdb.extract_statements``) and only queries (``StatementType.SELECT``: SELECT, WITH, FROM,
VALUES, SHOW, DESCRIBE, SUMMARIZE) run; every statement of the text is checked before the first
one runs.  Every refusal and every DuckDB error is raised as :class:`QueryError` with a
one-line message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

__all__ = ["QueryError", "connect_read_only", "check_statements", "run_query"]

#: DuckDB settings given when the database starts (the rest are SET before user text runs)
_START_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}


class QueryError(Exception):
    """A refused statement or a DuckDB error; ``str()`` is one line."""


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect_read_only(duckdb_path: str | Path, tables_dir: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only, sandboxed connection to the catalog: files outside ``tables_dir`` cannot be
    opened, no extension can be installed or loaded, no setting can be changed."""
    path = Path(duckdb_path)
    if not path.exists():
        raise QueryError(f"no DuckDB catalog at {path} yet: nothing is stored (run `admf backfill` or a workflow)")
    allowed = str(Path(tables_dir).resolve()).rstrip("/") + "/"  # a directory prefix, never 'tables_x'
    try:
        con = duckdb.connect(str(path), read_only=True, config=dict(_START_CONFIG))
    except duckdb.Error as exc:
        msg = _one_line(exc)
        if "lock" in msg.lower():
            msg = f"{path} is being written by another process (a run creating its views); retry in a moment"
        raise QueryError(msg) from None
    try:
        con.execute(f"SET allowed_directories = [{_quote(allowed)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as exc:  # pragma: no cover - the installed DuckDB lacks a setting
        con.close()
        raise QueryError(f"cannot sandbox the DuckDB connection: {_one_line(exc)}") from None
    return con


def check_statements(sql: str) -> list[Any]:
    """The parsed statements of ``sql``; a QueryError for a syntax error or any statement that is
    not a query (checked for all of them before anything runs)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(_one_line(exc)) from None
    if not statements:
        raise QueryError("no statement given")
    for st in statements:
        if st.type != duckdb.StatementType.SELECT:
            kind = st.type.name
            text = " ".join(st.query.split())
            text = text if len(text) <= 60 else text[:57] + "..."
            raise QueryError(f"refused: {kind} statements are not allowed, the query surface is read-only "
                             f"(SELECT, WITH, SHOW, DESCRIBE, SUMMARIZE run): {text}")
    return statements


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """Run every statement of ``sql`` (queries only); returns each result rendered as DuckDB
    prints it (a box table)."""
    statements = check_statements(sql)
    out = []
    for st in statements:
        try:
            rel = con.sql(st.query)
            if rel is not None:
                out.append(str(rel))  # runs the query: errors (a missing file...) surface here
        except duckdb.Error as exc:
            raise QueryError(_one_line(exc)) from None
    return out
