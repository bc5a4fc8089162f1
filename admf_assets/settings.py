"""Where things live on disk: the Dagster instance, stored tables, the DuckDB catalog, reports.

* ``DAGSTER_HOME``: the instance the ``admf`` command and the UI share.  When it is not set,
  ``~/.admf/dagster_home`` is used (outside any source tree) and created on first use.
* ``ADMF_WORKFLOWS_DIR``: where workflow names are looked up (``admf run NAME``) and what the
  code location compiles; default ``./workflows`` when the current directory has one, else
  the project's own ``workflows/``.  Templates: ``workflows/templates/``.
* ``ADMF_STORAGE``: root of the stored phase outputs; default ``$DAGSTER_HOME/admf_storage``.
  Under it: ``tables/`` (Parquet per asset / per partition), ``research.duckdb`` (views over
  every table, open it with the ``duckdb`` CLI or Python), ``reports/`` (HTML reports).
* ``ADMF_MARKET_SOURCE`` (``synthetic`` | ``files``), ``ADMF_MARKET_PATH``, ``ADMF_SYMBOLS``,
  ``ADMF_SEED``: the market-data source (:func:`market_source_settings`); the symbols it can
  deliver (:func:`market_universe`) are checked by ``admf validate``.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = Path("~/.admf/dagster_home")
#: the workflows shipped with the project (beside the package)
PROJECT_WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"

_DAGSTER_YAML = """\
# Written by admf on first use; edit freely.
telemetry:
  enabled: false
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 300
concurrency:
  pools:
    default_limit: 2
"""


def dagster_home() -> Path:
    env = os.environ.get("DAGSTER_HOME")
    return Path(env).expanduser().resolve() if env else DEFAULT_HOME.expanduser().resolve()


def ensure_dagster_home() -> Path:
    """Make sure DAGSTER_HOME is set in this process, exists, and has a dagster.yaml."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        tmp = cfg.with_suffix(".yaml.tmp")
        tmp.write_text(_DAGSTER_YAML)
        os.replace(tmp, cfg)
    os.environ["DAGSTER_HOME"] = str(home)
    # One "planned" event per asset for a single-run backfill instead of one per partition
    # (a Dagster switch): halves the events a long backfill writes. Trade-off: partitions of a
    # failed backfill run show as missing, not failed, in the UI (the run shows the failure).
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    return home


def storage_root() -> Path:
    env = os.environ.get("ADMF_STORAGE")
    return Path(env).expanduser().resolve() if env else dagster_home() / "admf_storage"


def duckdb_path() -> Path:
    return storage_root() / "research.duckdb"


def reports_dir() -> Path:
    return storage_root() / "reports"


def workflows_dir() -> Path:
    """``$ADMF_WORKFLOWS_DIR``, else ``./workflows`` if it exists, else the project's ``workflows/``."""
    env = os.environ.get("ADMF_WORKFLOWS_DIR")
    if env:
        return Path(env).expanduser()
    here = Path("workflows")
    return here if here.is_dir() else PROJECT_WORKFLOWS


def display_path(path: Path) -> str:
    """The path relative to the current directory when it is below it, else as is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def market_source_settings() -> dict:
    """The market-data source the environment configures: ``kind`` (synthetic | files),
    ``symbols`` (``ADMF_SYMBOLS``, upper case; empty = the source's whole universe), ``path``
    (``ADMF_MARKET_PATH``) and ``seed`` (``ADMF_SEED``, default 42)."""
    symbols = [s.strip().upper() for s in os.environ.get("ADMF_SYMBOLS", "").split(",") if s.strip()]
    return {"kind": os.environ.get("ADMF_MARKET_SOURCE", "synthetic"), "symbols": symbols,
            "path": os.environ.get("ADMF_MARKET_PATH"), "seed": int(os.environ.get("ADMF_SEED", "42"))}


def market_universe() -> tuple[str, list[str]]:
    """(a description of the source, the symbols it can deliver); a ValueError when the
    source is misconfigured (a files source without a readable directory)."""
    from admf_assets.engine import marketdata, synthetic

    cfg = market_source_settings()
    if cfg["kind"] == "files":
        if not cfg["path"]:
            raise ValueError("ADMF_MARKET_SOURCE=files needs ADMF_MARKET_PATH (a directory of <SYMBOL>.csv files)")
        try:
            files = sorted(marketdata.symbol_files(cfg["path"]))
        except marketdata.MarketDataError as exc:
            raise ValueError(f"ADMF_MARKET_PATH: {exc}") from None
        if cfg["symbols"]:
            files = [s for s in files if s in set(cfg["symbols"])]
        return f"the files in ADMF_MARKET_PATH={cfg['path']}", files
    if cfg["kind"] != "synthetic":
        raise ValueError(f"ADMF_MARKET_SOURCE={cfg['kind']!r}: use 'synthetic' or 'files'")
    if cfg["symbols"]:
        return "the synthetic source narrowed by ADMF_SYMBOLS", list(cfg["symbols"])
    return "the synthetic source", list(synthetic.DEFAULT_SYMBOLS)
