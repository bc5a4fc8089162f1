"""Failures and their recovery: enforced timeouts (with retries), the workflow's total time
limit, retry policies, and a run killed with kill -9 re-executed from failure by Dagster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from admf_assets import cli, recovery, runner

REPO = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).resolve().parent / "plugins"

WF = """\
workflow: {{name: Recovery, id: {wid}}}
data: {{symbols: [SPY], start_date: 2021-01-04, end_date: 2021-06-30, split: {{test_start: 2021-05-03}}}}
phases:
  - name: opt
    type: optimization
    config: {{optimization: {{parameters: {{fast_period: [5, 10], slow_period: [20, 30]}}}}}}
  - name: slow
    type: test_sleep
    depends_on: [opt]
{slow}
  - name: after
    type: test_sleep
    depends_on: [slow]
    config: {{state: {state}}}
{after}
reporting: {{enabled: false}}
{extra}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory, admf_env, plugin_kinds):
    root = tmp_path_factory.mktemp("recovery")
    with admf_env(root, backfill=("2021-01-04", "2021-06-30"), ADMF_PLUGINS="admf_test_kinds") as (instance, mp), \
            plugin_kinds():
        # appended, not prepended: Dagster drops sys.path[0] (the script's folder) when it loads
        # the code location by module
        mp.setattr(sys, "path", [*sys.path, str(PLUGINS)])
        yield root, instance


def write(root: Path, wid: str, slow: str, after: str = "", extra: str = "") -> tuple[str, Path]:
    """The workflow ``wid``: data -> opt -> slow -> after; ``slow`` / ``after``: YAML lines of
    those phases (``STATE`` is replaced by the folder of their marker files); ``extra``: more
    top-level YAML."""
    state = root / f"state_{wid}"
    path = root / f"{wid}.yaml"

    def indent(text):
        return "\n".join("    " + line for line in text.strip().splitlines()).replace("STATE", str(state))

    path.write_text(WF.format(wid=wid, slow=indent(slow), after=indent(after), state=state, extra=extra))
    return str(path), state


def materializations(instance, wid: str) -> dict[str, int]:
    out = {}
    for phase, output in [("data", "bars"), ("opt", "best_parameters"), ("slow", "done"), ("after", "done")]:
        key = dg.AssetKey([wid, phase, output])
        out[phase] = len(instance.fetch_materializations(key, limit=100).records)
    return out


def events(instance, run_id: str, kind: dg.DagsterEventType) -> list:
    return [r.event_log_entry for r in instance.get_records_for_run(run_id, of_type=kind).records]


def test_a_phase_over_its_timeout_fails_with_the_message_then_resumes_from_failure(env, capsys):
    root, instance = env
    wf, state = write(root, "rec_timeout", "config: {seconds: 30, sleep_once: true, state: STATE}\ntimeout: 1")
    t0 = time.perf_counter()
    assert cli.main(["run", wf]) == 1
    assert time.perf_counter() - t0 < 25  # stopped after 1 s, not after its 30 s sleep
    err = capsys.readouterr().err
    assert f"{wf}: phase 'slow' exceeded its timeout of 1 s" in err
    failed = recovery.last_run(instance, "rec_timeout")
    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert materializations(instance, "rec_timeout") == {"data": 1, "opt": 1, "slow": 0, "after": 0}

    # re-executed from failure by id (prefix): the phases that succeeded are not re-run
    assert cli.main(["resume", failed.run_id[:8]]) == 0
    out = capsys.readouterr().out
    assert f"re-execution of {failed.run_id}" in out
    assert materializations(instance, "rec_timeout") == {"data": 1, "opt": 1, "slow": 1, "after": 1}
    child = recovery.last_run(instance, "rec_timeout")
    assert child.parent_run_id == failed.run_id and child.root_run_id == failed.run_id
    assert child.tags["dagster/parent_run_id"] == failed.run_id
    assert child.status == dg.DagsterRunStatus.SUCCESS


def test_timeouts_are_retried_under_the_retry_policy(env, capsys):
    root, instance = env
    wf, state = write(root, "rec_retry_timeout",
                      "config: {seconds: 30, sleep_once: true, state: STATE}\ntimeout: 1\nretries: {count: 1, delay: 0}")
    assert cli.main(["run", wf]) == 0, capsys.readouterr().err
    run = recovery.last_run(instance, "rec_retry_timeout")
    retried = events(instance, run.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert len(retried) == 1
    assert "phase 'slow' exceeded its timeout of 1 s" in str(retried[0].dagster_event.event_specific_data.error)
    assert (state / "slow.attempts").read_text() == "2"
    assert materializations(instance, "rec_retry_timeout")["after"] == 1


def test_a_phase_failing_twice_succeeds_under_its_retry_policy(env, capsys):
    root, instance = env
    wf, state = write(root, "rec_flaky", "config: {fail_times: 2, state: STATE}\nretries: {count: 2, delay: 0}")
    assert cli.main(["run", wf]) == 0, capsys.readouterr().err
    run = recovery.last_run(instance, "rec_flaky")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert len(events(instance, run.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 2
    assert (state / "slow.attempts").read_text() == "3"
    assert materializations(instance, "rec_flaky") == {"data": 1, "opt": 1, "slow": 1, "after": 1}


def test_the_total_time_limit_ends_the_run(env, capsys):
    root, instance = env
    # `slow` has no timeout of its own but sleeps 30 s: the workflow's 8 s limit stops it
    wf, _ = write(root, "rec_limit", "config: {seconds: 30}", extra="execution: {timeout: 8}")
    t0 = time.perf_counter()
    assert cli.main(["run", wf]) == 1
    assert time.perf_counter() - t0 < 28
    err = capsys.readouterr().err
    assert f"{wf}: phase 'slow' was stopped: the run exceeded the workflow's total time limit of 8 s" in err
    run = recovery.last_run(instance, "rec_limit")
    assert run.status == dg.DagsterRunStatus.FAILURE and run.tags["dagster/max_runtime"] == "8"


def _admf(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "admf_assets.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_run_then_resume_reruns_only_what_did_not_finish(env):
    root, instance = env
    wf, state = write(root, "rec_kill", "config: {seconds: 120, sleep_once: true, state: STATE}")
    env_vars = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    proc = _admf("run", wf, env=env_vars)
    started = state / "slow.started"
    deadline = time.time() + 240
    while not started.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the slow phase never started"
        time.sleep(0.2)
    killed = recovery.last_run(instance, "rec_kill")
    assert killed.status == dg.DagsterRunStatus.STARTED and recovery.process_alive(killed.tags)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    t_kill = time.perf_counter()
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.STARTED  # nobody noticed yet
    assert materializations(instance, "rec_kill") == {"data": 1, "opt": 1, "slow": 0, "after": 0}

    resume = _admf("run", wf, "--resume", env=env_vars)
    out, err = resume.communicate(timeout=300)
    took = time.perf_counter() - t_kill
    assert resume.returncode == 0, err
    assert f"admf: run {killed.run_id} had lost its process (killed?): marked failed" in err
    assert f"re-executing run {killed.run_id} (rec_kill) from failure" in out
    print(f"kill -9 -> completed --resume: {took:.1f}s")

    dead = instance.get_run_by_id(killed.run_id)
    assert dead.status == dg.DagsterRunStatus.FAILURE
    child = recovery.last_run(instance, "rec_kill")
    assert child.parent_run_id == killed.run_id and child.status == dg.DagsterRunStatus.SUCCESS
    # data and opt had completed: not re-materialized; slow (killed) and after ran once
    assert materializations(instance, "rec_kill") == {"data": 1, "opt": 1, "slow": 1, "after": 1}


def test_process_liveness_from_run_tags():
    assert recovery.process_alive(recovery.process_tags()) is True
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    tags = recovery.process_tags(p.pid)
    p.wait()
    assert recovery.process_alive(tags) is False
    assert recovery.process_alive({**recovery.process_tags(), "admf/host": "elsewhere"}) is None
    assert recovery.process_alive({}) is None
    # a reused pid (another start time) is not the run's process
    assert recovery.process_alive({**recovery.process_tags(), "admf/pid_start": "1"}) is False


def test_runs_of_the_implicit_asset_job_get_the_workflows_settings(env, monkeypatch):
    """What the UI's asset graph launches (Dagster's __ASSET_JOB) runs with the workflow's tags
    and records its process, like a run of the workflow's own job."""
    root, instance = env
    write(root, "rec_ui", "config: {seconds: 0}", extra="execution: {timeout: 600}")
    monkeypatch.setenv("ADMF_WORKFLOWS_DIR", str(root))
    monkeypatch.delitem(sys.modules, "definitions", raising=False)  # load the code location afresh
    keys = [dg.AssetKey(["rec_ui", *k.split("/")]) for k in
            ("data/bars", "opt/best_parameters", "opt/top_parameter_sets", "opt/optimization_history",
             "slow/done", "after/done")]
    recon = runner._reconstructable((runner.ASSET_JOB, ()))
    with dg.execute_job(recon, instance=instance, asset_selection=keys) as result:
        assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.job_name == "__ASSET_JOB"
    assert run.tags["admf/workflow"] == "rec_ui" and run.tags["dagster/max_runtime"] == "600"
    assert recovery.process_alive(run.tags) is True  # this process ran it


def _started_run(instance, tags) -> str:
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._core.utils import make_new_run_id

    run = DagsterRun(job_name="rec_fake", run_id=make_new_run_id(), status=dg.DagsterRunStatus.STARTED, tags=tags)
    instance.add_run(run)
    return run.run_id


def test_run_monitoring_marks_a_run_whose_process_died_failed(env):
    """The daemon's run monitoring (admf ui) asks the instance's run launcher whether a run's
    worker is alive; admf's launcher answers from the run's process tags."""
    import logging

    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    root, instance = env
    assert isinstance(instance.run_launcher, recovery.RunLauncher)  # from the dagster.yaml admf writes
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_tags = recovery.process_tags(p.pid)
    p.wait()
    dead = _started_run(instance, dead_tags)
    alive = _started_run(instance, recovery.process_tags())
    for run_id in (dead, alive):
        monitor_started_run(instance, None, instance.get_run_record_by_id(run_id), logging.getLogger("test"))
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.STARTED
    # the next admf command marks the same kind of run failed without a daemon
    again = _started_run(instance, dead_tags)
    assert recovery.mark_dead_runs(instance) == [again]
    assert instance.get_run_by_id(again).status == dg.DagsterRunStatus.FAILURE
    instance.report_run_failed(instance.get_run_by_id(alive))  # leave no run STARTED behind
