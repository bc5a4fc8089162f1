"""Parquet files as the stored truth, DuckDB views over them for queries.

Layout under the storage root::

    tables/<key>/<part>/.../<name>.parquet            unpartitioned asset
    tables/<key>/<part>/.../<name>/<partition>.parquet partitioned asset, one file per partition
    research.duckdb                                   schema <first key part>, view <rest joined by __>

Why not write into one DuckDB file: DuckDB allows one writing process per file, and any other
open connection (even read-only, e.g. an analyst's notebook) makes writes fail after the
IO manager's retries run out.  Parquet files are written by each process independently and
atomically (temp file + rename), so parallel backfills and open notebooks never block a run;
the DuckDB file holds only view definitions, created once per table and skipped (then retried
on the next write or by ``admf db``) when another process holds the file.

The root may also be an fsspec URL (``s3://bucket/admf``, ``gcs://...``, ``memory://admf``):
tables are then written through fsspec (to a temporary name, then moved: an object store's
move is one whole object, so readers still see the old table or the new one) and read back
the same way.  The DuckDB catalog file is local only: for a URL root there is no
``research.duckdb``; :meth:`TableStore.connect` gives an in-memory DuckDB connection with the
fsspec filesystem registered and a view per table (what ``admf db`` uses).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from admf_assets.settings import storage_path

_IDENT = re.compile(r"[^A-Za-z0-9_]")


def _ident(text: str) -> str:
    return _IDENT.sub("_", text)


def is_local(path) -> bool:
    return isinstance(path, Path)


def write_parquet_atomic(data: pd.DataFrame | pa.Table, path) -> None:
    """Write a frame or Arrow table to ``path`` so that readers see the old file or the new
    one, never half of one (temporary file in the same folder, then an atomic rename; on an
    fsspec filesystem a move of the finished temporary object)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        if is_local(path):
            pq.write_table(table, tmp)
            os.replace(tmp, path)
        else:
            with tmp.open("wb") as f:
                pq.write_table(table, f)
            tmp.rename(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(data: bytes, path) -> None:
    """``data`` to ``path`` (local or fsspec), readers seeing the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path) if is_local(path) else tmp.rename(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_table(path, columns: list[str] | None = None) -> pa.Table:
    if is_local(path):
        return pq.read_table(str(path), columns=columns)
    with path.open("rb") as f:
        return pq.read_table(f, columns=columns)


def _url(path) -> str:
    return path.as_posix() if is_local(path) else str(path)


class TableStore:
    """Paths, reads and view registration for tables stored under one root."""

    def __init__(self, root: str | os.PathLike, duckdb_path: str | os.PathLike | None = None):
        self.root = storage_path(root)
        self.local = is_local(self.root)
        self.tables = self.root / "tables"
        #: the DuckDB catalog file (local roots only; None for an fsspec URL root)
        self.duckdb_path = Path(duckdb_path) if duckdb_path else (self.root / "research.duckdb" if self.local else None)

    # ------------------------------------------------------------------ paths
    def table_path(self, key: Sequence[str]) -> Path:
        return self.tables.joinpath(*key)

    def file_path(self, key: Sequence[str]) -> Path:
        return self.table_path(key).with_suffix(".parquet")

    def partition_path(self, key: Sequence[str], partition: str) -> Path:
        return self.partition_paths(key, [partition])[0]

    def partition_paths(self, key: Sequence[str], partitions: Iterable[str]) -> list[Path]:
        """``partition_path`` of each partition, the table's folder resolved once (thousands of
        market days on every ``admf run``)."""
        folder = self.table_path(key)
        return [folder / f"{p}.parquet" for p in partitions]

    def stored_partitions(self, key: Sequence[str]) -> set[str]:
        d = self.table_path(key)
        if not d.is_dir():
            return set()
        return {p.name[: -len(".parquet")] for p in d.iterdir()
                if p.name.endswith(".parquet") and not p.name.startswith(".")}

    # ------------------------------------------------------------------ writes
    def write(self, key: Sequence[str], df: pd.DataFrame, views: bool = True) -> Path:
        path = self.file_path(key)
        write_parquet_atomic(df, path)
        if views:
            self.register_view(key)
        return path

    def write_partitions(self, key: Sequence[str], df: pd.DataFrame, labels: Sequence[str],
                         partitions: Sequence[str], views: bool = True) -> dict[str, int]:
        """Write one file per partition: the rows of ``df`` whose label (one per row) is that
        partition; a partition without rows gets an empty file with the same columns.
        Returns the row count of each partition."""
        labels = np.asarray(labels, dtype=object)
        order = np.argsort(labels, kind="stable")
        table = pa.Table.from_pandas(df.iloc[order], preserve_index=False)  # one conversion
        sorted_labels = labels[order]
        counts = {}
        for pk in partitions:
            lo, hi = np.searchsorted(sorted_labels, pk, "left"), np.searchsorted(sorted_labels, pk, "right")
            write_parquet_atomic(table.slice(lo, hi - lo), self.partition_path(key, pk))
            counts[pk] = int(hi - lo)
        marker = self.table_path(key) / PARTITIONED_MARKER
        if partitions and not marker.exists():
            marker.write_text("")  # the folder is one partitioned table (admf db rebuilds its view)
        if partitions and views:
            self.register_view(key, partitioned=True)
        return counts

    def drop_partitions(self, key: Sequence[str], partitions: Iterable[str]) -> None:
        """Delete stored partitions (keys a static partitions definition no longer has)."""
        for pk in partitions:
            self.partition_path(key, pk).unlink(missing_ok=True)

    # ------------------------------------------------------------------ reads
    def read(self, key: Sequence[str], columns: list[str] | None = None) -> pd.DataFrame:
        path = self.file_path(key)
        if not path.exists():
            raise FileNotFoundError(f"{'/'.join(key)} has not been materialized yet ({path} missing)")
        return self.read_file(path, columns)

    def read_file(self, path, columns: list[str] | None = None) -> pd.DataFrame:
        if is_local(path):
            return pd.read_parquet(path, columns=columns)
        with path.open("rb") as f:
            return pd.read_parquet(f, columns=columns)

    def size(self, path) -> int | None:
        """Bytes of a stored file, None when it does not exist."""
        return path.stat().st_size if path.exists() else None

    def read_partitions(self, key: Sequence[str], partitions: Iterable[str],
                        columns: list[str] | None = None) -> pd.DataFrame:
        partitions = list(partitions)
        files = self.partition_paths(key, partitions)
        missing = [p for p, f in zip(partitions, files) if not f.exists()]
        if missing:
            raise MissingPartitionsError(key, missing)
        if not partitions:
            return pd.DataFrame(columns=columns) if columns else pd.DataFrame()
        with ThreadPoolExecutor(max_workers=4) as pool:  # pyarrow releases the GIL while reading
            tables = list(pool.map(lambda f: _read_table(f, columns), files))
        tables = [t for t in tables if t.num_rows] or tables[:1]
        table = pa.concat_tables(tables, promote_options="default")
        return table.to_pandas()

    # ------------------------------------------------------------------ DuckDB catalog
    def view_name(self, key: Sequence[str]) -> tuple[str, str]:
        schema = _ident(key[0]) if len(key) > 1 else "main"
        name = _ident("__".join(key[1:]) if len(key) > 1 else key[0])
        return schema, name

    def view_sql(self, key: Sequence[str], partitioned: bool) -> str:
        schema, name = self.view_name(key)
        src = _url(self.table_path(key) / "*.parquet") if partitioned else _url(self.file_path(key))
        src = src.replace("'", "''")
        return (f'CREATE SCHEMA IF NOT EXISTS "{schema}"; '
                f'CREATE OR REPLACE VIEW "{schema}"."{name}" AS '
                f"SELECT * FROM read_parquet('{src}', union_by_name = true)")

    def _marker(self, key: Sequence[str]) -> Path:
        schema, name = self.view_name(key)
        return self.root / ".views" / f"{schema}.{name}.sql"

    def register_view(self, key: Sequence[str], partitioned: bool = False) -> bool:
        """Create the DuckDB view for ``key`` once.  Returns False when the catalog file is
        held by another process (the view is then created by a later write or ``admf db``),
        or when the root is an fsspec URL (no catalog file: see :meth:`connect`)."""
        if not self.local:
            return False
        sql = self.view_sql(key, partitioned)
        marker = self._marker(key)
        if marker.exists() and marker.read_text() == sql:
            return True
        marker.parent.mkdir(parents=True, exist_ok=True)
        pending = marker.with_suffix(".pending")
        pending.write_text(sql)
        return self.sync_views()

    def sync_views(self) -> bool:
        """Apply every pending view definition; False if the DuckDB file is busy."""
        import duckdb

        pend = sorted((self.root / ".views").glob("*.pending")) if (self.root / ".views").is_dir() else []
        if not pend:
            return True
        try:
            con = duckdb.connect(str(self.duckdb_path))
        except duckdb.Error:
            return False  # held by another process: leave pending
        try:
            for p in pend:
                try:
                    sql = p.read_text()
                except FileNotFoundError:  # applied meanwhile by another process
                    continue
                try:
                    con.execute(sql)
                except duckdb.Error as exc:  # e.g. an unreadable Parquet file: one line, the rest still apply
                    raise RuntimeError(f"view {p.stem}: {str(exc).splitlines()[0]}") from None
                done = p.with_suffix(".sql")
                done.write_text(sql)
                p.unlink(missing_ok=True)
        finally:
            con.close()
        return True

    def stored_tables(self) -> list[tuple[list[str], bool]]:
        """Every stored table: (asset key, partitioned), from the files under ``tables/``."""
        out: list[tuple[list[str], bool]] = []
        if not self.tables.is_dir():
            return out
        if self.local:
            walk = ((Path(d).relative_to(self.tables), dirs, files) for d, dirs, files in os.walk(self.tables))
        else:
            fs, base = self.tables.fs, self.tables.path.rstrip("/")
            walk = ((Path(str(d)[len(base):].lstrip("/")), dirs, files) for d, dirs, files in fs.walk(base))
        for rel, dirnames, filenames in walk:
            pq_files = [f for f in filenames if f.endswith(".parquet") and not f.startswith(".")]
            if not pq_files:
                continue
            if (_is_partition_dir(pq_files) or PARTITIONED_MARKER in filenames) and not dirnames:
                out.append((list(rel.parts), True))
            else:
                out.extend(([*rel.parts, f[: -len(".parquet")]], False) for f in pq_files)
        return out

    def rebuild_views(self) -> list[str]:
        """Recreate views for every stored table (used by ``admf db``); returns view names.
        With an fsspec URL root there is no catalog file: the names only (see :meth:`connect`)."""
        names = []
        for key, partitioned in self.stored_tables():
            names.append(".".join(self.view_name(key)))
            if self.local:
                self._marker(key).parent.mkdir(parents=True, exist_ok=True)
                self._marker(key).with_suffix(".pending").write_text(self.view_sql(key, partitioned))
        if self.local and not self.sync_views():
            raise RuntimeError(f"{self.duckdb_path} is open in another process; close it and retry")
        return names

    def connect(self):
        """A read-only DuckDB connection with a view per stored table: the catalog file of a
        local root, else an in-memory database reading the fsspec filesystem directly."""
        import duckdb

        if self.local:
            return duckdb.connect(str(self.duckdb_path), read_only=True)
        con = duckdb.connect()
        con.register_filesystem(self.root.fs)
        for key, partitioned in self.stored_tables():
            con.execute(self.view_sql(key, partitioned))
        return con


_DATE_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.parquet$")
#: written into the folder of a partitioned table whose partition keys are not dates
PARTITIONED_MARKER = ".partitioned"


def _is_partition_dir(files: list[str]) -> bool:
    return all(_DATE_FILE.match(f) for f in files)


_DATE_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class MissingPartitionsError(LookupError):
    def __init__(self, key: Sequence[str], missing: list[str]):
        self.key = list(key)
        self.missing = sorted(missing)
        if all(_DATE_KEY.match(k) for k in self.missing):
            super().__init__(
                f"{'/'.join(key)}: {len(self.missing)} partition(s) not materialized: "
                f"{summarize_dates(self.missing)}. Backfill them with: "
                f"admf backfill --start {self.missing[0]} --end {self.missing[-1]}"
            )
        else:
            shown = ", ".join(self.missing[:6]) + (f", ... ({len(self.missing) - 6} more)" if len(self.missing) > 6 else "")
            super().__init__(f"{'/'.join(key)}: {len(self.missing)} partition(s) not materialized: {shown}; "
                             f"materialize them first (admf run, or the asset's partitions in the UI)")


def summarize_dates(keys: list[str], limit: int = 4) -> str:
    """'2022-01-03..2022-01-07, 2022-03-01' style summary of sorted date keys (runs of weekdays)."""
    if not keys:
        return "none"
    idx = pd.DatetimeIndex(sorted(keys))
    runs, start, prev = [], idx[0], idx[0]
    for d in idx[1:]:
        if (d - prev).days > 3 or len(pd.bdate_range(prev, d)) > 2:
            runs.append((start, prev))
            start = d
        prev = d
    runs.append((start, prev))
    parts = [f"{a.date()}" if a == b else f"{a.date()}..{b.date()}" for a, b in runs[:limit]]
    if len(runs) > limit:
        parts.append(f"... ({len(runs) - limit} more ranges)")
    return ", ".join(parts)
