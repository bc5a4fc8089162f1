"""Instance configuration and executor requirements that need no server: what admf writes into a
new DAGSTER_HOME, the checks between dagster.yaml and the environment (one line each), the
launcher's settings that step workers take over."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from admf_assets import cli, instance, runtime, settings, workers
from admf_assets.settings import SettingError


@pytest.fixture
def home(monkeypatch, tmp_path):
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for var in ("ADMF_POSTGRES_URL", "ADMF_OPTUNA_STORAGE", "ADMF_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    return home


def test_default_home_is_sqlite(home):
    settings.ensure_dagster_home()
    text = (home / "dagster.yaml").read_text()
    assert text.startswith(instance.HEADER) and "storage:" not in text
    assert instance.storage_kind(instance.read_config(home)) == "sqlite"
    assert instance.describe(home) == f"SQLite under {home}"


def test_postgres_url_is_checked_and_gets_the_psycopg2_driver(home, monkeypatch):
    monkeypatch.setenv("ADMF_POSTGRES_URL", "postgresql://u:secret@db.example:5432/admf")
    assert instance.postgres_url() == "postgresql+psycopg2://u:secret@db.example:5432/admf"
    monkeypatch.setenv("ADMF_POSTGRES_URL", "mysql://u:secret@db.example/admf")
    with pytest.raises(SettingError) as info:
        instance.postgres_url()
    assert "secret" not in str(info.value) and "ADMF_POSTGRES_URL='mysql://u:***@db.example/admf'" in str(info.value)
    monkeypatch.setenv("ADMF_POSTGRES_URL", "postgresql://u@db.example:5432/")
    with pytest.raises(SettingError, match="expected postgresql"):
        instance.postgres_url()


def test_optuna_storage_url(home, monkeypatch):
    assert instance.optuna_storage_url() is None
    monkeypatch.setenv("ADMF_POSTGRES_URL", "postgresql://u:p@h:5432/admf_dagster")
    assert instance.optuna_storage_url() == "postgresql+psycopg2://u:p@h:5432/admf_dagster_optuna"
    monkeypatch.setenv("ADMF_OPTUNA_STORAGE", "sqlite:///studies.db")
    assert instance.optuna_storage_url() == "sqlite:///studies.db"


def test_env_and_dagster_yaml_must_agree(home, monkeypatch):
    settings.ensure_dagster_home()  # SQLite
    monkeypatch.setenv("ADMF_POSTGRES_URL", "postgresql://u:p@127.0.0.1:1/x")
    with pytest.raises(SettingError, match="ADMF_POSTGRES_URL is set but .*dagster.yaml keeps the instance in sqlite"):
        settings.ensure_dagster_home()
    (home / "dagster.yaml").write_text(instance.dagster_yaml(postgres=True))
    monkeypatch.delenv("ADMF_POSTGRES_URL")
    with pytest.raises(SettingError, match="reads the PostgreSQL URL from ADMF_POSTGRES_URL, which is not set"):
        settings.ensure_dagster_home()


def test_unreachable_server_is_one_line_without_the_password(home, monkeypatch, capsys):
    home.mkdir()
    (home / "dagster.yaml").write_text(instance.dagster_yaml(postgres=True))
    monkeypatch.setenv("ADMF_POSTGRES_URL", "postgresql://admf:s3cret@127.0.0.1:1/admf")
    assert cli.main(["backfill", "--start", "2023-01-02", "--end", "2023-01-03"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("admf: error: cannot open the Dagster instance of ")
    assert "s3cret" not in err[0]


def test_celery_needs_a_shared_instance_and_step_processes_a_shared_storage(home, monkeypatch):
    settings.ensure_dagster_home()
    with dg.DagsterInstance.get() as inst:
        with pytest.raises(SettingError, match="celery executor needs the Dagster instance on PostgreSQL"):
            runtime.check_executor("celery", inst)
        runtime.check_executor("multiprocess", inst)  # SQLite is fine on one machine
        monkeypatch.setenv("ADMF_STORAGE", "memory://x")
        with pytest.raises(SettingError, match="memory:// storage root lives in one process"):
            runtime.check_executor("multiprocess", inst)
        runtime.check_executor("in_process", inst)
    assert runtime.executor("celery").name == "celery"
    with pytest.raises(ValueError, match="use one of in_process, multiprocess, celery"):
        runtime.executor("dask")


def test_launch_settings_travel_to_step_workers(home, monkeypatch, tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text("phases: []\n")
    monkeypatch.setenv("ADMF_STORAGE", str(tmp_path / "store"))
    monkeypatch.setenv("ADMF_SYMBOLS", "SPY")
    monkeypatch.setenv("ADMF_POSTGRES_URL", "postgresql://u:secret@h/db")
    launch = workers.launch_settings(wf)
    data = json.loads(launch)
    assert data["env"] == {"ADMF_STORAGE": str(tmp_path / "store"), "ADMF_SYMBOLS": "SPY"}
    assert "secret" not in launch  # secrets are each process's own
    # a worker started with another environment takes the launcher's settings over
    monkeypatch.setenv("ADMF_STORAGE", "/elsewhere")
    monkeypatch.delenv("ADMF_SYMBOLS")
    monkeypatch.setenv("ADMF_SEED", "7")
    workers.apply_launch(launch)
    assert os.environ["ADMF_STORAGE"] == str(tmp_path / "store") and os.environ["ADMF_SYMBOLS"] == "SPY"
    assert "ADMF_SEED" not in os.environ
    workers.check_digest(str(wf), data)
    wf.write_text("phases: [changed]\n")
    from admf_assets.workflow.errors import WorkflowError

    with pytest.raises(WorkflowError, match="changed after this run started"):
        workers.check_digest(str(wf), data)


def test_celery_broker_that_does_not_answer_is_one_line(monkeypatch):
    from types import SimpleNamespace

    from admf_assets import distributed

    monkeypatch.setenv(distributed.BROKER_ENV, "redis://:pw@127.0.0.1:1/0")
    monkeypatch.setenv(distributed.BACKEND_ENV, "redis://:pw@127.0.0.1:1/0")
    shared = SimpleNamespace(run_storage=object())  # an instance whose storage is not SQLite
    with pytest.raises(SettingError, match=r"the Celery broker redis://:\*\*\*@127.0.0.1:1/0 does not answer"):
        distributed.check_ready(shared)
