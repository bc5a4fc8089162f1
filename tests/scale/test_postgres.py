"""The instance on a real PostgreSQL server (dagster-postgres): what admf writes, a market
backfill and a workflow run recorded there, and an Optuna RDB storage on the same server."""

from __future__ import annotations

import dagster as dg
import optuna
import pandas as pd

from admf_assets import instance, runner, settings


def test_new_home_is_configured_for_postgres(pg_home, postgres_db):
    text = (pg_home / "dagster.yaml").read_text()
    assert "env: ADMF_POSTGRES_URL" in text
    password = postgres_db.split(":")[2].split("@")[0]
    assert password not in text  # the secret stays in the environment
    with dg.DagsterInstance.get() as inst:
        assert type(inst.run_storage).__name__ == "PostgresRunStorage"
        assert type(inst.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert instance.describe(pg_home).startswith("PostgreSQL (postgresql+psycopg2://admf:***@127.0.0.1:")


def test_backfill_and_workflow_run_are_recorded_in_postgres(pg_home, postgres_db, sql, two_branches):
    with dg.DagsterInstance.get() as inst:
        back = runner.backfill("2023-01-02", "2023-03-31", inst)
        assert back.success, back.failures
        out = runner.run_workflow(str(two_branches), inst)
        assert out.success, out.failures
        assert out.report_path and out.materialized == 9

    runs = dict(sql(postgres_db, "SELECT pipeline_name, status FROM runs"))
    assert runs == {"market_data": "SUCCESS", "two_branches": "SUCCESS"}
    partitions = sql(postgres_db, "SELECT count(DISTINCT partition) FROM event_logs "
                                  "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = :k",
                     k='["market", "clean_bars"]')[0][0]
    assert partitions == len(pd.bdate_range("2023-01-02", "2023-03-31"))  # every weekday of 2023-Q1
    keys = {r[0] for r in sql(postgres_db, "SELECT asset_key FROM event_logs "
                                           "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")}
    assert '["two_branches", "validation", "performance_report"]' in keys
    assert not (pg_home / "history" / "runs.db").exists()  # nothing went to SQLite

    # another process's view of the instance: the same history
    with dg.DagsterInstance.from_config(str(pg_home)) as again:
        ev = again.get_latest_materialization_event(dg.AssetKey(["two_branches", "search", "best_parameters"]))
        assert ev is not None and ev.run_id == out.run_id


def test_optuna_storage_lives_beside_the_instance_on_the_same_server(pg_home, postgres_db, sql):
    url = instance.optuna_storage_url()
    assert url == postgres_db + "_optuna"  # same server, its own database (alembic_version clash)
    assert instance.ensure_database(url) is True
    assert instance.ensure_database(url) is False
    study = optuna.create_study(storage=url, study_name="shared", sampler=optuna.samplers.TPESampler(seed=3))
    study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 0.5) ** 2, n_trials=6)
    other = optuna.load_study(study_name="shared", storage=optuna.storages.RDBStorage(url))
    assert len(other.trials) == 6 and other.best_value == study.best_value
    assert sql(url, "SELECT count(*) FROM trials")[0][0] == 6
    with dg.DagsterInstance.get() as inst:  # the instance's database is untouched
        assert inst.get_runs_count() == 0
    assert settings.dagster_home() == pg_home
