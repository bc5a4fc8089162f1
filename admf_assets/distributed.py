"""Steps on Celery workers (dagster-celery) with a Redis (or any Celery) broker.

* ``ADMF_EXECUTOR=celery`` (or ``--executor celery``, or ``infrastructure.executor: celery``):
  a run's orchestration stays in the launching process; each step is a Celery task that a
  worker (``admf worker``) picks up, rebuilds the job (:mod:`admf_assets.workers`) and runs.
* ``ADMF_CELERY_BROKER``: the broker URL, default ``redis://127.0.0.1:6379/0``;
  ``ADMF_CELERY_BACKEND``: the result backend, default the broker.  Both are read from the
  environment by the executor at run time and by the workers at start (never stored in a run).
* Requirements (checked before a run starts): the instance on PostgreSQL (``ADMF_POSTGRES_URL``,
  every worker writes its step's events there) and a storage root every worker reaches (the
  run's root travels with it; one machine: any local folder; several: a shared file system or
  an fsspec URL such as ``s3://``).
* Scheduling: each worker reserves only the task it runs (``task_acks_late`` with a prefetch
  multiplier of 1), so steps that are ready together spread over idle workers instead of
  queuing behind a busy one.  Which worker ran a step is in the run's log ("Executing steps
  ... in celery worker", metadata ``Celery worker``).
"""

from __future__ import annotations

import os
import sys
import warnings

BROKER_ENV = "ADMF_CELERY_BROKER"
BACKEND_ENV = "ADMF_CELERY_BACKEND"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
QUEUE = "dagster"  # dagster-celery's queue

#: Celery settings of both sides (executor and workers): a worker holds one task per process
SETTINGS = {
    "task_acks_late": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}


def _ensure_env() -> None:
    os.environ.setdefault(BROKER_ENV, DEFAULT_BROKER)
    os.environ.setdefault(BACKEND_ENV, os.environ[BROKER_ENV])


def executor_def():
    """dagster-celery's executor, its broker and backend read from the environment at run time."""
    from dagster_celery import celery_executor

    # dagster-celery registers its one task again for every step it submits (same code): Celery
    # 5.7 warns each time; nothing is wrong
    warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")
    _ensure_env()
    return celery_executor.configured(
        {"broker": {"env": BROKER_ENV}, "backend": {"env": BACKEND_ENV}, "config_source": dict(SETTINGS)},
        name="celery",
    )


def executor_instance(retries_enabled: bool = True):
    """The Celery executor itself (what ``executor_def()`` builds at run time), for the admf
    executors that wrap it: the same broker, backend and settings."""
    from dagster._core.execution.retries import RetryMode
    from dagster_celery.executor import CeleryExecutor

    warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")
    _ensure_env()
    return CeleryExecutor(retries=RetryMode.ENABLED if retries_enabled else RetryMode.DISABLED,
                          broker=os.environ[BROKER_ENV], backend=os.environ[BACKEND_ENV],
                          config_source=dict(SETTINGS))


def make_app():
    """The Celery app of ``admf worker`` (the same broker, backend and settings as the executor)."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app as dagster_make_app

    _ensure_env()
    return dagster_make_app(CeleryExecutor.for_cli(
        broker=os.environ[BROKER_ENV], backend=os.environ[BACKEND_ENV], config_source=dict(SETTINGS),
    ).app_args())


def check_ready(instance, ping_seconds: float = 1.0) -> None:
    """A one-line SettingError unless the instance is shared (PostgreSQL or another server) and
    at least one worker answers on the broker (a run with no worker would wait forever)."""
    from admf_assets.errors import SettingError
    from admf_assets.instance import redact

    storage = type(instance.run_storage).__name__
    if "Sqlite" in storage:
        raise SettingError("the celery executor needs the Dagster instance on PostgreSQL, where every "
                           "worker records its steps: set ADMF_POSTGRES_URL (README: Instance on PostgreSQL)")
    _ensure_env()
    broker = redact(os.environ[BROKER_ENV])
    app = make_app()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
            replies = app.control.ping(timeout=ping_seconds, connection=conn) or []
    except Exception as exc:  # noqa: BLE001 - any broker failure: one line
        raise SettingError(f"the Celery broker {broker} does not answer ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'no reply'})") from None
    if not replies:
        raise SettingError(f"no Celery worker answers on {broker}: start one with `admf worker --name w1` "
                           f"(same ADMF_CELERY_BROKER and ADMF_POSTGRES_URL)")


def worker_argv(name: str, concurrency: int = 1, loglevel: str = "WARNING") -> list[str]:
    """The command line of one Celery worker serving admf's steps."""
    return [sys.executable, "-m", "celery", "-A", "admf_assets.celery_app", "worker",
            "-n", f"{name}@%h", "-c", str(concurrency), "-Q", QUEUE, "--prefetch-multiplier=1",
            "-l", loglevel, "--without-gossip", "--without-mingle"]
