"""Runs whose process died: found, marked failed, and re-executed from failure by Dagster.

Every run started by ``admf`` or by the executors of this project records the process that
runs it (tags ``admf/pid``, ``admf/host``, ``admf/pid_start``).  A run still STARTED whose
process is gone (``kill -9``, a crash, a reboot) is marked failed

* the next time any ``admf`` command opens the instance (:func:`mark_dead_runs`), and
* by Dagster's run monitoring while the daemon runs (``admf ui``): the instance's run launcher
  is :class:`RunLauncher`, a ``DefaultRunLauncher`` that can tell whether a run's worker is
  alive, which is what run monitoring asks.

A failed run is then re-executed from failure with Dagster's own re-execution
(``ReexecutionOptions.from_failure``; see ``runner.reexecute``): a new run whose parent is the
failed one (the UI links them), re-running only the steps that did not succeed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

PID_TAG = "admf/pid"
HOST_TAG = "admf/host"
START_TAG = "admf/pid_start"
WORKFLOW_TAG = "admf/workflow"
IN_PROGRESS = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
               dg.DagsterRunStatus.CANCELING]
RESUMABLE = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (Linux), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def process_tags(pid: int | None = None) -> dict[str, str]:
    """The tags naming the process that runs a run (this one by default)."""
    pid = os.getpid() if pid is None else pid
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    fields = _stat(pid)
    if fields:
        tags[START_TAG] = fields[19]  # starttime, in clock ticks since boot
    return tags


def process_alive(tags) -> bool | None:
    """Whether the process a run's tags name is alive: True, False, or None when this
    machine cannot tell (no tags, another host)."""
    pid = tags.get(PID_TAG)
    if not pid or tags.get(HOST_TAG) != socket.gethostname():
        return None
    pid = int(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _stat(pid)
    if fields is not None:
        if fields[0] in ("Z", "X"):  # zombie: killed, not yet reaped
            return False
        if tags.get(START_TAG) and fields[19] != tags[START_TAG]:
            return False  # the pid was reused by another process
    return True


def dead_message(run: dg.DagsterRun) -> str:
    return (f"the process running this run (pid {run.tags.get(PID_TAG)} on {run.tags.get(HOST_TAG)}) is gone "
            f"(killed or crashed); marked failed by admf. Re-execute it from failure: admf resume {run.run_id}")


def mark_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every in-progress run whose process is gone; returns their run ids."""
    out = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        if process_alive(run.tags) is False:
            instance.report_run_failed(run, dead_message(run))
            out.append(run.run_id)
    return out


def last_run(instance: dg.DagsterInstance, workflow_id: str) -> dg.DagsterRun | None:
    """The newest run of a workflow's assets (its job, or UI runs tagged with it)."""
    records = instance.get_run_records(dg.RunsFilter(tags={WORKFLOW_TAG: workflow_id}), limit=1)
    return records[0].dagster_run if records else None


class RunLauncher(DefaultRunLauncher):
    """Dagster's default launcher, plus a worker health check from the run's process tags, so
    that run monitoring (the daemon) marks a run failed when its process died.  Configured in
    the ``dagster.yaml`` that ``admf`` writes (``run_launcher``)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if process_alive(run.tags) is False:
            return CheckRunHealthResult(WorkerStatus.FAILED, dead_message(run))
        return CheckRunHealthResult(WorkerStatus.RUNNING)
