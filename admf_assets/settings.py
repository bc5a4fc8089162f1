"""Where things live on disk: the Dagster instance, stored tables, the DuckDB catalog, reports.

* ``DAGSTER_HOME``: the instance the ``admf`` command and the UI share.  When it is not set,
  ``~/.admf/dagster_home`` is used (outside any source tree) and created on first use.
* ``ADMF_WORKFLOWS_DIR``: where workflow names are looked up (``admf run NAME``) and what the
  code location compiles; default ``./workflows`` when the current directory has one, else
  the project's own ``workflows/``.  Templates: ``workflows/templates/``.
* ``ADMF_POSTGRES_URL``: keep the instance in PostgreSQL (see :mod:`admf_assets.instance`).
* ``ADMF_UI_URL``: the Dagster webserver the HTML report links its run to (default
  ``http://127.0.0.1:3000``).
* ``ADMF_STORAGE``: root of the stored phase outputs; default ``$DAGSTER_HOME/admf_storage``.
  Under it: ``tables/`` (Parquet per asset / per partition), ``research.duckdb`` (views over
  every table, open it with the ``duckdb`` CLI or Python), ``reports/`` (HTML reports).
* ``ADMF_MARKET_SOURCE`` (:func:`market_source_kind`), ``ADMF_MARKET_PATH``, ``ADMF_SYMBOLS``,
  ``ADMF_MARKET_START`` (:func:`market_start`): the market-data source; the symbols it can
  deliver (:func:`market_universe`) and its calendar are checked by ``admf validate``.
"""

from __future__ import annotations

import os
from pathlib import Path

from admf_assets.errors import SettingError  # noqa: F401  (re-exported: admf_assets.settings.SettingError)

DEFAULT_HOME = Path("~/.admf/dagster_home")


#: the workflows shipped with the project (beside the package)
PROJECT_WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"


def dagster_home() -> Path:
    env = os.environ.get("DAGSTER_HOME")
    return Path(env).expanduser().resolve() if env else DEFAULT_HOME.expanduser().resolve()


def ensure_dagster_home() -> Path:
    """Make sure DAGSTER_HOME is set in this process, exists, and has a dagster.yaml."""
    from admf_assets import instance  # SQLite, or PostgreSQL with ADMF_POSTGRES_URL

    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    instance.ensure_config(home)
    os.environ["DAGSTER_HOME"] = str(home)
    # One "planned" event per asset for a single-run backfill instead of one per partition
    # (a Dagster switch): halves the events a long backfill writes. Trade-off: partitions of a
    # failed backfill run show as missing, not failed, in the UI (the run shows the failure).
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    return home


def storage_root():
    """``ADMF_STORAGE`` (a folder, or any fsspec URL such as ``s3://bucket/admf`` or
    ``memory://admf``: then a ``UPath``), default ``$DAGSTER_HOME/admf_storage``."""
    env = os.environ.get("ADMF_STORAGE")
    return storage_path(env) if env else dagster_home() / "admf_storage"


def storage_path(root: str | os.PathLike):
    """A local root as a resolved ``Path``; a URL with another scheme than ``file://`` (an
    fsspec filesystem: ``s3://``, ``memory://``, ...) as a ``UPath``."""
    text = str(root)
    if "://" in text and not text.startswith("file://"):
        from upath import UPath

        return UPath(text)
    return Path(text.removeprefix("file://")).expanduser().resolve()


def duckdb_path():
    """The DuckDB catalog file (a local storage root; for a URL root ``admf db`` builds the views
    in memory)."""
    return storage_root() / "research.duckdb"


def reports_dir():
    return storage_root() / "reports"


def workflows_dir() -> Path:
    """``$ADMF_WORKFLOWS_DIR``, else ``./workflows`` if it exists, else the project's ``workflows/``."""
    env = os.environ.get("ADMF_WORKFLOWS_DIR")
    if env:
        return Path(env).expanduser()
    here = Path("workflows")
    return here if here.is_dir() else PROJECT_WORKFLOWS


DEFAULT_UI_URL = "http://127.0.0.1:3000"


def ui_url() -> str:
    """``$ADMF_UI_URL`` (the Dagster webserver the report links runs to), default
    ``http://127.0.0.1:3000`` (``admf ui``'s address)."""
    return (os.environ.get("ADMF_UI_URL") or DEFAULT_UI_URL).rstrip("/")


def display_path(path: Path) -> str:
    """The path relative to the current directory when it is below it, else as is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


#: the market calendar's first day unless the source or ADMF_MARKET_START says otherwise
DEFAULT_MARKET_START = "2010-01-01"


def market_source_kind() -> str:
    """``ADMF_MARKET_SOURCE`` (default ``synthetic``), checked against the known sources."""
    from admf_assets.engine import marketdata

    kind = os.environ.get("ADMF_MARKET_SOURCE", "").strip().lower() or "synthetic"
    if kind not in marketdata.SOURCES:
        raise SettingError(f"ADMF_MARKET_SOURCE={kind!r}: use one of {', '.join(marketdata.SOURCES)}")
    return kind


def market_start(kind: str | None = None) -> str:
    """The first day of the market calendar: ``ADMF_MARKET_START``, else 1999-01-01 for the
    sample source (its data starts 1999-01-04), else 2010-01-01.  ``kind``: the source (default:
    ``ADMF_MARKET_SOURCE``)."""
    import pandas as pd

    from admf_assets.engine import sample

    env = os.environ.get("ADMF_MARKET_START", "").strip()
    if not env:
        kind = kind or market_source_kind()
        return sample.SAMPLE_CALENDAR_START if kind == "sample" else DEFAULT_MARKET_START
    try:
        day = pd.Timestamp(env)
    except ValueError:
        day = pd.NaT
    if pd.isna(day) or day != day.normalize():
        raise SettingError(f"ADMF_MARKET_START={env!r}: expected a date, YYYY-MM-DD")
    if day > pd.Timestamp.today():
        raise SettingError(f"ADMF_MARKET_START={env!r}: the calendar cannot start in the future")
    return str(day.date())


def market_universe(kind: str | None = None) -> tuple[str, list[str]]:
    """(a description of the source, the symbols it can deliver) for the source ``kind``
    (default ``ADMF_MARKET_SOURCE``), narrowed by ``ADMF_SYMBOLS``; a ValueError when the
    source is misconfigured (a files source without a readable directory)."""
    from admf_assets.engine import marketdata, sample, synthetic

    kind = kind or market_source_kind()
    narrow = [s.strip().upper() for s in os.environ.get("ADMF_SYMBOLS", "").split(",") if s.strip()]
    if kind == "files":
        path = os.environ.get("ADMF_MARKET_PATH")
        if not path:
            raise ValueError("ADMF_MARKET_SOURCE=files needs ADMF_MARKET_PATH (a directory of <SYMBOL>.csv files)")
        try:
            files = sorted(marketdata.symbol_files(path))
        except marketdata.MarketDataError as exc:
            raise ValueError(f"ADMF_MARKET_PATH: {exc}") from None
        if narrow:
            files = [s for s in files if s in set(narrow)]
        return f"the files in ADMF_MARKET_PATH={path}", files
    if kind == "sample":
        have = [s for s in sample.SAMPLE_SYMBOLS if not narrow or s in set(narrow)]
        return "the sample source" + (" narrowed by ADMF_SYMBOLS" if narrow else ""), have
    if narrow:
        return "the synthetic source narrowed by ADMF_SYMBOLS", narrow
    return "the synthetic source", list(synthetic.DEFAULT_SYMBOLS)
