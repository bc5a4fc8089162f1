"""Steps on two real Celery workers (``admf worker``) with a Redis broker on loopback and the
instance on PostgreSQL: the workflow's two parallel branches run on different workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from admf_assets import distributed, runner

WORKERS = ("w1", "w2")


def _wait_for_workers(names, timeout=180.0) -> set[str]:
    app = distributed.make_app()
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        seen = {host.split("@")[0] for reply in replies for host in reply}
        if set(names) <= seen:
            return seen
        time.sleep(0.5)
    raise AssertionError(f"Celery workers {sorted(set(names) - seen)} did not answer within {timeout:.0f}s")


@pytest.fixture
def celery_workers(pg_home, redis_url, monkeypatch, tmp_path):
    """Two `admf worker` processes (one step at a time each) on a flushed Redis database."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    monkeypatch.setenv(distributed.BROKER_ENV, redis_url)
    monkeypatch.setenv(distributed.BACKEND_ENV, redis_url)
    procs, logs = [], []
    for name in WORKERS:
        log = open(tmp_path / f"{name}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-m", "admf_assets.cli", "worker", "--name", name],
                                      env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    try:
        _wait_for_workers(WORKERS)
        yield procs
    finally:
        for p in procs:  # the worker and its pool: the process group each one leads
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for log in logs:
            log.close()


def _worker_of_each_step(inst: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    out = {}
    for rec in inst.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        meta = rec.dagster_event.engine_event_data.metadata
        if "Celery worker" in meta:
            out[rec.step_key] = meta["Celery worker"].value.split("@")[0]
    return out


def test_parallel_branches_run_on_different_celery_workers(celery_workers, pg_home, two_branches, sql,
                                                          postgres_db):
    with dg.DagsterInstance.get() as inst:
        back = runner.backfill("2023-01-02", "2023-03-31", inst)  # in process, into PostgreSQL
        assert back.success, back.failures
        out = runner.run_workflow(str(two_branches), inst, executor="celery")
        assert out.success, out.failures
        assert out.materialized == 9 and out.report_path
        ran_on = _worker_of_each_step(inst, out.run_id)
        stats = inst.get_run_step_stats(out.run_id)

    wf = "two_branches__"
    assert set(ran_on) == {wf + p for p in ("data", "search", "analysis", "validation", "report")}
    assert set(ran_on.values()) <= set(WORKERS)
    # the two branches were ready together after the search and are submitted in the same tick;
    # a worker reserves only the task it runs, so the idle one takes the other branch
    assert ran_on[wf + "analysis"] != ran_on[wf + "validation"]
    assert {s.step_key: s.status.value for s in stats}[wf + "report"] == "SUCCESS"
    # every worker wrote its step's events into the PostgreSQL instance
    assert sql(postgres_db, "SELECT status FROM runs WHERE run_id = :r", r=out.run_id)[0][0] == "SUCCESS"


def test_a_run_without_any_worker_stops_at_once(pg_home, redis_url, monkeypatch, two_branches):
    import redis

    from admf_assets.settings import SettingError

    redis.Redis.from_url(redis_url).flushdb()
    monkeypatch.setenv(distributed.BROKER_ENV, redis_url)
    monkeypatch.setenv(distributed.BACKEND_ENV, redis_url)
    with dg.DagsterInstance.get() as inst:
        with pytest.raises(SettingError, match="no Celery worker answers on redis://127.0.0.1:"):
            runner.run_workflow(str(two_branches), inst, executor="celery")
        assert inst.get_runs_count() == 0  # refused before any run was created
