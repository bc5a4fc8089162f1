"""The Dagster instance configuration admf writes and checks: SQLite under ``DAGSTER_HOME``
(default) or PostgreSQL (``ADMF_POSTGRES_URL``), plus where an Optuna RDB storage goes.

* ``ADMF_POSTGRES_URL=postgresql+psycopg2://user:password@host:5432/admf_dagster``: when admf creates a
  ``DAGSTER_HOME`` (no ``dagster.yaml`` yet) it writes a ``dagster.yaml`` whose run, event-log
  and schedule storage is that database (``storage: postgres: postgres_url: {env:
  ADMF_POSTGRES_URL}``: the password stays in the environment, not in the file) and creates the
  database when the role may.  A bare ``postgresql://`` is given the ``+psycopg2`` driver in
  admf's processes (SQLAlchemy 2.1 would pick psycopg 3, which dagster-postgres does not
  support); spell it out for processes admf does not start.  Every process of the deployment (``admf``, ``admf ui``, Celery
  workers) then reads the same instance.
* ``ADMF_OPTUNA_STORAGE``: the SQLAlchemy URL of an Optuna RDB storage.  When unset and
  ``ADMF_POSTGRES_URL`` is set, :func:`optuna_storage_url` is the same server with the database
  ``<dagster database>_optuna``: Optuna and Dagster both keep their schema version in an
  ``alembic_version`` table, so they cannot share one database (measured: Optuna refuses a
  database Dagster has set up), but one server holds both.

Nothing here imports dagster (the CLI starts faster); SQLAlchemy is imported only to create a
database.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from admf_assets.errors import SettingError

POSTGRES_ENV = "ADMF_POSTGRES_URL"
OPTUNA_ENV = "ADMF_OPTUNA_STORAGE"
HEADER = "# Written by admf on first use; edit freely."

_COMMON = """\
telemetry:
  enabled: false
nux:
  enabled: false  # the UI's "Join the Dagster community" dialog
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 300
# Dagster's default launcher plus a health check of the run's process, so run monitoring marks
# a run whose process died (kill -9) failed instead of leaving it STARTED.
run_launcher:
  module: admf_assets.recovery
  class: RunLauncher
concurrency:
  pools:
    default_limit: 2
"""

_POSTGRES = f"""\
# Runs, event logs and schedules in PostgreSQL; the URL (with its password) is read from the
# environment variable {POSTGRES_ENV} by every process that opens this instance.
storage:
  postgres:
    postgres_url:
      env: {POSTGRES_ENV}
"""


def dagster_yaml(postgres: bool) -> str:
    """The ``dagster.yaml`` admf writes into a new ``DAGSTER_HOME``."""
    return HEADER + "\n" + _COMMON + (_POSTGRES if postgres else "")


#: dagster-postgres 0.29 needs psycopg2 (its NOTIFY statements fail on psycopg 3), and
#: SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3 (dagster-io/dagster#33958)
DRIVER_SCHEME = "postgresql+psycopg2"


def postgres_url() -> str | None:
    """``ADMF_POSTGRES_URL`` as a psycopg2 SQLAlchemy URL (a bare ``postgresql://`` gets the
    ``+psycopg2`` driver), None when unset; a one-line SettingError when it is no PostgreSQL URL."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", DRIVER_SCHEME) or not parts.hostname \
            or not parts.path.strip("/"):
        raise SettingError(f"{POSTGRES_ENV}={redact(url)!r}: expected "
                           f"{DRIVER_SCHEME}://USER:PASSWORD@HOST:PORT/DATABASE")
    return urlunsplit(parts._replace(scheme=DRIVER_SCHEME))


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and ``admf info``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def hide_password(text: str) -> str:
    """``text`` with the password of ``ADMF_POSTGRES_URL`` (if any) replaced by ``***``."""
    url = os.environ.get(POSTGRES_ENV, "")
    password = urlsplit(url).password if url else None
    return text.replace(url, redact(url)).replace(password, "***") if password else text


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database of the same server."""
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


def database_name(url: str) -> str:
    return urlsplit(url).path.strip("/")


def optuna_storage_url() -> str | None:
    """Where an Optuna RDB storage lives: ``ADMF_OPTUNA_STORAGE``, else the instance's
    PostgreSQL server with the database ``<dagster database>_optuna``, else None (no shared
    storage configured)."""
    explicit = os.environ.get(OPTUNA_ENV, "").strip()
    if explicit:
        return explicit
    url = postgres_url()
    if url is None:
        return None
    return with_database(url, database_name(url) + "_optuna")


def ensure_database(url: str) -> bool:
    """Create the database of ``url`` on its server when it does not exist (True when it was
    created).  The role needs CREATEDB; a one-line SettingError names the server otherwise."""
    import sqlalchemy as sa

    name = database_name(url)
    admin = sa.create_engine(with_database(url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as con:
            if con.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                return False
            con.execute(sa.text(f'CREATE DATABASE "{name}"'))
            return True
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise SettingError(f"PostgreSQL at {redact(url)}: cannot create database '{name}': {reason}") from None
    finally:
        admin.dispose()


def storage_kind(config: dict | None) -> str:
    """``postgres``, ``sqlite`` (no storage section: Dagster's default) or ``other``."""
    storage = (config or {}).get("storage")
    if not storage:
        keys = set(config or {}) & {"run_storage", "event_log_storage", "schedule_storage"}
        if not keys:
            return "sqlite"
        classes = " ".join(str((config[k] or {}).get("class", "")) for k in keys)
        return "postgres" if "Postgres" in classes else ("sqlite" if "Sqlite" in classes else "other")
    return "postgres" if "postgres" in storage else ("sqlite" if "sqlite" in storage else "other")


def read_config(home: Path) -> dict:
    import yaml

    path = home / "dagster.yaml"
    try:
        loaded = yaml.safe_load(path.read_text()) if path.exists() else {}
    except yaml.YAMLError as exc:
        raise SettingError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return loaded if isinstance(loaded, dict) else {}


def ensure_config(home: Path) -> str:
    """Write ``home/dagster.yaml`` when missing (PostgreSQL when ``ADMF_POSTGRES_URL`` is set),
    then check that the file and the environment agree; returns the storage kind."""
    url = postgres_url()
    if url is not None:
        os.environ[POSTGRES_ENV] = url  # the driver spelled out for Dagster in this process and its children
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        if url is not None:
            ensure_database(url)
        tmp = cfg.with_suffix(".yaml.tmp")
        tmp.write_text(dagster_yaml(postgres=url is not None))
        os.replace(tmp, cfg)
    config = read_config(home)
    kind = storage_kind(config)
    if url is not None and kind != "postgres":
        raise SettingError(
            f"{POSTGRES_ENV} is set but {cfg} keeps the instance in {kind}: use a new DAGSTER_HOME "
            f"(admf writes a PostgreSQL dagster.yaml there) or add its 'storage: postgres' section "
            f"(README: Instance on PostgreSQL)")
    if url is None and POSTGRES_ENV in _env_references(config):
        raise SettingError(f"{cfg} reads the PostgreSQL URL from {POSTGRES_ENV}, which is not set")
    return kind


def _env_references(node) -> set[str]:
    """Environment variables a Dagster config names with ``{env: NAME}``."""
    if isinstance(node, dict):
        out = {node["env"]} if set(node) == {"env"} and isinstance(node["env"], str) else set()
        for v in node.values():
            out |= _env_references(v)
        return out
    if isinstance(node, list):
        return set().union(*(_env_references(v) for v in node)) if node else set()
    return set()


def describe(home: Path) -> str:
    """One line for ``admf info``: where runs and events are stored."""
    kind = storage_kind(read_config(home))
    if kind == "postgres":
        url = os.environ.get(POSTGRES_ENV)
        return f"PostgreSQL ({redact(url) if url else 'see dagster.yaml'})"
    if kind == "sqlite":
        return f"SQLite under {home}"
    return f"custom storage (see {home / 'dagster.yaml'})"
