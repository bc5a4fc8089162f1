"""Fixtures for the scale-out tests against real servers on loopback.

``bash .ci/run`` starts a throwaway PostgreSQL server and a Redis broker on 127.0.0.1 (see
``.ci/services``) and exports their URLs; on a developer machine run
``eval "$(bash .ci/services start)"`` first (needs Debian's ``postgresql`` / ``redis-server``
installed; as root ``--install`` installs them).  Without the variables these tests skip and
say so; a variable that is set but whose server does not answer is a failure.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TWO_BRANCHES = HERE / "two_branches.yaml"
HOW = 'start the loopback servers with: eval "$(bash .ci/services start)" (bash .ci/run does it)'


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The SQLAlchemy URL of a PostgreSQL superuser on the test server (its ``postgres`` DB)."""
    url = os.environ.get("ADMF_TEST_POSTGRES_URL")
    if not url:
        pytest.skip(f"no PostgreSQL server: ADMF_TEST_POSTGRES_URL is not set; {HOW}")
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            con.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        pytest.fail(f"ADMF_TEST_POSTGRES_URL is set but the server does not answer: {exc.orig}")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def postgres_db(postgres_server):
    """A fresh database on the test server (URL), dropped afterwards."""
    import sqlalchemy as sa

    from admf_assets.instance import with_database

    name = f"admf_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(postgres_server, name)
    finally:
        with admin.connect() as con:
            con.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            con.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}_optuna" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_home(monkeypatch, tmp_path, postgres_db):
    """A new DAGSTER_HOME whose instance admf puts on the fresh PostgreSQL database."""
    from admf_assets import settings

    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("ADMF_POSTGRES_URL", postgres_db)
    monkeypatch.delenv("ADMF_STORAGE", raising=False)
    monkeypatch.delenv("ADMF_EXECUTOR", raising=False)
    settings.ensure_dagster_home()
    return home


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("ADMF_TEST_REDIS_URL")
    if not url:
        pytest.skip(f"no Redis broker: ADMF_TEST_REDIS_URL is not set; {HOW}")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.fail(f"ADMF_TEST_REDIS_URL is set but Redis does not answer: {exc}")
    return url


@pytest.fixture
def sql():
    """sql(url, text, **params) -> rows: look into Dagster's tables directly."""
    import sqlalchemy as sa

    def _query(url: str, text: str, **params):
        engine = sa.create_engine(url)
        try:
            with engine.connect() as con:
                return con.execute(sa.text(text), params).fetchall()
        finally:
            engine.dispose()

    return _query


@pytest.fixture
def two_branches() -> Path:
    """search -> (analysis | backtest) -> report, on 2023-Q1 bars of SPY and QQQ."""
    return TWO_BRANCHES
