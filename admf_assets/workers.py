"""What a step worker needs to rebuild a run's job fast and exactly as the launcher built it.

The multiprocess executor (a forkserver process per step) and the Celery executor (a worker
process per step, possibly on another machine) rebuild the job of a run from a reference:
``admf_assets.runner.workflow_job(path, executor, launch)``.  Three things make that right and
cheap:

* **The launcher's settings travel with the run** (``launch``: a JSON text of the storage root
  and the market / plugin settings of :data:`LAUNCH_SETTINGS`, plus the workflow file's
  digest).  A forkserver child otherwise sees the environment of the moment the forkserver
  started (the first run of the process), and a Celery worker the environment it was started
  with, so outputs could land in another storage root than the launcher's.  Secrets (the
  PostgreSQL URL, the broker URL) never travel: each process reads its own.
* **The workflow file is the one the run started with**: a file changed since is a clear
  error instead of a run whose steps come from two versions of the YAML.
* **Per-process cache + forkserver preload**: a compiled job is kept per (file, executor,
  launch) in the process; the forkserver imports the whole project once (:data:`PRELOAD`) and,
  when ``ADMF_PRELOAD_JOB`` names a job, compiles it before forking, so a step's process starts
  with every module imported and the job built (measured in ``bench/bench_multiprocess.py``).
  Celery workers import the project once when they start (``admf_assets.celery_app``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

#: environment variables a step's process takes from the run's launcher
LAUNCH_SETTINGS = ("ADMF_MARKET_SOURCE", "ADMF_MARKET_PATH", "ADMF_SYMBOLS", "ADMF_SEED",
                   "ADMF_MARKET_START", "ADMF_PLUGINS", "ADMF_WORKFLOWS_DIR", "ADMF_TEMPLATES_DIR")
#: set by the runner for the forkserver it is about to start: ``[reconstructor, args]`` (JSON)
PRELOAD_ENV = "ADMF_PRELOAD_JOB"

#: what the forkserver imports before it forks step processes: the whole project (phases,
#: engine, resources, the compiler), so no step pays for imports
PRELOAD = ["pandas", "numpy", "pyarrow", "dagster", "admf_assets.runner", "admf_assets.defs",
           "admf_assets.workers"]

_JOBS: dict[tuple, object] = {}


def file_digest(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def launch_settings(path: str | os.PathLike | None = None) -> str:
    """The launcher's settings (and the workflow file's digest) as the JSON a worker applies."""
    from admf_assets import settings

    env = {k: os.environ[k] for k in LAUNCH_SETTINGS if k in os.environ}
    env["ADMF_STORAGE"] = str(settings.storage_root())
    out = {"env": env}
    if path is not None:
        out["digest"] = file_digest(path)
    return json.dumps(out, sort_keys=True)


def apply_launch(launch: str) -> dict:
    """Make this process's environment the launcher's (for the settings that travel)."""
    data = json.loads(launch) if launch else {}
    env = data.get("env", {})
    if env:
        for k in LAUNCH_SETTINGS:
            if k in env:
                os.environ[k] = env[k]
            else:
                os.environ.pop(k, None)
        os.environ["ADMF_STORAGE"] = env["ADMF_STORAGE"]
    return data


def check_digest(path: str, launch_data: dict) -> None:
    want = launch_data.get("digest")
    if want and file_digest(path) != want:
        from admf_assets.workflow.errors import WorkflowError

        raise WorkflowError(file=str(path), message="the workflow file changed after this run started; "
                                                    "start the run again")


def cached(key: tuple, build: Callable[[], object]) -> object:
    """``build()`` once per ``key`` in this process (and in the forked children of a process
    that built it)."""
    if key not in _JOBS:
        _JOBS[key] = build()
    return _JOBS[key]


@contextlib.contextmanager
def preloading(reconstructor: str, args: tuple):
    """While launching a run: a forkserver started meanwhile compiles this job before forking
    (its environment is this process's at its start)."""
    before = os.environ.get(PRELOAD_ENV)
    os.environ[PRELOAD_ENV] = json.dumps([reconstructor, list(args)])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PRELOAD_ENV, None)
        else:
            os.environ[PRELOAD_ENV] = before


def start_forkserver() -> None:
    """Start this process's forkserver now, without waiting for it: its imports (and the job it
    preloads) overlap the run's set-up instead of delaying the first step.  Dagster's executor
    then finds it running (a process keeps one forkserver)."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["dagster._core.executor.multiprocess", *PRELOAD])  # what the executor would ask for
    forkserver.ensure_running()


def _warm() -> None:
    """In a forkserver (imported through PRELOAD): build the job ``ADMF_PRELOAD_JOB`` names, the
    way Dagster will ask for it, so every forked step finds it built.  Any failure is left to
    the step itself (it rebuilds and reports the error where the user sees it)."""
    spec = os.environ.get(PRELOAD_ENV)
    if not spec:
        return
    try:
        import dagster as dg

        name, args = json.loads(spec)
        recon = dg.build_reconstructable_job("admf_assets.runner", name, reconstructable_args=tuple(args))
        recon.get_definition()  # fills our cache and Dagster's per-process one
    except Exception:  # noqa: BLE001 - the step reports it
        pass


# The runner sets ADMF_PRELOAD_JOB only around a run's launch, after it imported this module,
# so this runs in the forkserver that launch starts (PRELOAD imports this module last).
if os.environ.get(PRELOAD_ENV):
    _warm()
