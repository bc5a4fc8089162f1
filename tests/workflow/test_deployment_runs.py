"""Deployment for real on a Dagster instance: a paper ledger that grows by one partition per new
market day (through the market-data sensor and the schedule, via Dagster's test utilities),
alerts from a failing run, and an external phase through Dagster Pipes."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from admf_assets import alerts, automation, runner
from admf_assets.market import CLEAN_KEY

DEPLOY = """\
workflow:
  name: Deploy
  id: {wid}
  schedule: "30 23 * * 1-5"
  timezone: America/New_York
  run_on_new_market_data: true
data: {{symbols: [SPY, QQQ], start_date: 2023-01-02, end_date: 2023-12-29, split: {{test_start: 2023-07-03}}}}
phases:
  - name: opt
    type: optimization
    config:
      optimization:
        parameters: {{fast_period: [5, 10], slow_period: [20, 40]}}
  - name: paper
    type: live_simulation
    inputs: [opt.best_parameters]
    config: {paper}
  - name: shadow
    type: live_simulation
    inputs: [paper.performance_validation]
    config: {{shadow_mode: true, comparison_baseline: buy_and_hold, monitoring: {{deviation_alerts: false}}}}
reporting: {{enabled: false}}
"""
QUIET = "{duration_days: 3, monitoring: {deviation_alerts: false}}"


@pytest.fixture(scope="module")
def env(tmp_path_factory, admf_env):
    root = tmp_path_factory.mktemp("deploy_runs")
    with admf_env(root, symbols="SPY,QQQ", backfill=("2023-01-02", "2024-01-03")) as (instance, _):
        from admf_assets import settings

        yield root, instance, settings


def _write(root: Path, name: str, text: str) -> str:
    path = root / f"{name}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def _files(settings, wid: str, phase: str, output: str) -> dict[str, tuple[bytes, int]]:
    folder = settings.storage_root() / "tables" / wid / phase / output
    return {p.stem: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.glob("*.parquet"))}


def _execute(defs, wid, instance, request: dg.RunRequest):
    job = defs.resolve_job_def(wid)
    res = job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags,
                                 asset_selection=request.asset_selection, raise_on_error=False)
    assert res.success, runner._failures(res)
    return res


def test_the_ledger_grows_by_one_partition_per_new_market_day(env):
    root, instance, settings = env
    path = _write(root, "deploy", DEPLOY.format(wid="deploy", paper=QUIET))
    out = runner.run_workflow(path, instance)  # research, then every stored market day since the start
    assert out.success, out.failures
    assert out.booked == ("2024-01-01", "2024-01-03", 3)
    before = _files(settings, "deploy", "paper", "ledger")
    assert list(before) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    defs, compiled = runner.workflow_defs(path)
    sensor = defs.resolve_sensor_def("deploy__on_new_market_data")
    schedule = defs.resolve_schedule_def("deploy__schedule")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 23 * * 1-5", "America/New_York")

    # switched on: the first tick only starts watching
    ctx = dg.build_sensor_context(instance=instance, definitions=defs)
    first = sensor.evaluate_tick(ctx)
    assert not first.run_requests and first.cursor is not None
    # a new market day: the sensor asks for exactly that day
    assert runner.backfill("2024-01-04", "2024-01-04", instance).success
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=first.cursor))
    assert [(r.partition_key, r.asset_selection) for r in tick.run_requests] == [("2024-01-04", None)]
    _execute(defs, "deploy", instance, tick.run_requests[0])
    after = _files(settings, "deploy", "paper", "ledger")
    assert list(after) == [*before, "2024-01-04"]
    assert {k: after[k] for k in before} == before  # the earlier days: same bytes, never rewritten
    # the next day through the schedule (23:30 in New York, once that day's data is stored)
    assert runner.backfill("2024-01-05", "2024-01-05", instance).success
    when = dt.datetime(2024, 1, 5, 23, 30, tzinfo=ZoneInfo("America/New_York"))
    repo = defs.get_repository_def()
    requests = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=when, repository_def=repo))
    assert [r.partition_key for r in requests.run_requests] == ["2024-01-05"]
    _execute(defs, "deploy", instance, requests.run_requests[0])
    final = _files(settings, "deploy", "paper", "ledger")
    assert list(final) == [*after, "2024-01-05"] and {k: final[k] for k in after} == after
    for output in ("performance_validation", "comparative_results"):
        assert list(_files(settings, "deploy", "shadow", output)) == list(final)
    # nothing new: the schedule skips, the sensor too
    again = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=when, repository_def=repo))
    assert not again.run_requests and "no new market day" in again.skip_message
    idle = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=tick.cursor))
    assert not idle.run_requests
    # the ledger's checks ran on its primary asset
    evals = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey(["deploy", "paper", "ledger"]), "duration_days")])
    assert list(evals.values())[0].status.value == "SUCCEEDED"


def test_a_lagging_phase_books_its_missing_days_alone(env):
    """The shadow ledger misses days the paper ledger has: one run books them for the shadow
    only, the paper ledger's files stay as they are."""
    root, instance, settings = env
    path = _write(root, "lag", DEPLOY.format(wid="lag", paper=QUIET))
    assert runner.run_workflow(path, instance).success
    paper = _files(settings, "lag", "paper", "ledger")
    for day in ("2024-01-02", "2024-01-03"):
        for output in ("ledger", "performance_validation", "comparative_results"):
            (settings.storage_root() / "tables" / "lag" / "shadow" / output / f"{day}.parquet").unlink()
    _, compiled = runner.workflow_defs(path)
    planned = automation.plan_runs(compiled)
    assert [(r.first, r.last) for r in planned] == [("2024-01-02", "2024-01-03")]
    assert {k.to_user_string() for k in planned[0].selection} >= {"lag/shadow/ledger", "lag/opt/best_parameters"}
    assert not any(k.to_user_string().startswith("lag/paper/") for k in planned[0].selection)
    out = runner.run_workflow(path, instance)
    assert out.success and out.booked == ("2024-01-02", "2024-01-03", 2)
    assert _files(settings, "lag", "paper", "ledger") == paper
    assert list(_files(settings, "lag", "shadow", "ledger")) == list(paper)


def test_an_unpartitioned_workflow_runs_when_its_market_days_change(env):
    root, instance, _ = env
    path = _write(root, "study", """\
        workflow: {name: Research, id: study, run_on_new_market_data: true, schedule: "0 22 * * 1-5"}
        data: {symbols: [SPY], start_date: 2023-03-01, end_date: 2023-06-30}
        phases:
          - name: opt
            type: optimization
            config: {optimization: {parameters: {fast_period: [5], slow_period: [20]}}}
        reporting: {enabled: false}
        """)
    defs, _ = runner.workflow_defs(path)
    sensor = defs.resolve_sensor_def("study__on_new_market_data")
    cursor = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs)).cursor
    assert runner.backfill("2023-09-01", "2023-09-01", instance).success  # not read by this workflow
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor))
    assert not tick.run_requests and "none read by this workflow" in tick.skip_message
    assert runner.backfill("2023-05-15", "2023-05-16", instance).success  # corrected days it reads
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=tick.cursor))
    assert len(tick.run_requests) == 1 and tick.run_requests[0].asset_selection is None
    _execute(defs, "study", instance, tick.run_requests[0])
    sched = defs.resolve_schedule_def("study__schedule")
    assert sched.execution_timezone == "UTC"
    req = sched.evaluate_tick(dg.build_schedule_context(instance=instance,
                                                        repository_def=defs.get_repository_def())).run_requests
    assert len(req) == 1 and req[0].tags["admf/launched_by"] == "schedule"


def test_a_failed_blocking_check_is_an_alert(env):
    """A deviation alert (blocking) fails the run: the alerts sensor records the run and the
    check, once, in a table admf db can query."""
    root, instance, settings = env
    strict = "{duration_days: 3, min_days: 1, deviation_threshold: 0.0001}"
    path = _write(root, "alarm", DEPLOY.format(wid="alarm", paper=strict))
    defs, _ = runner.workflow_defs(path)
    res = defs.resolve_job_def("alarm").execute_in_process(
        instance=instance, partition_key="2024-01-03", raise_on_error=False)
    assert not res.success
    run = instance.get_run_by_id(res.run_id)
    failure = instance.all_logs(res.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
    failed = {e.event_specific_data.check_name for e in res.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed}
    assert "tracking_deviation" in failed
    ctx = dg.build_run_status_sensor_context(sensor_name="admf_alerts", dagster_event=failure,
                                             dagster_instance=instance, dagster_run=run)
    alerts.alerts_sensor(ctx.for_run_failure())
    table = alerts.read_alerts()
    mine = table[table["run_id"] == res.run_id]
    assert sorted(mine["alert"]) == ["check_failed"] * len(failed) + ["run_failed"]
    checks = mine[mine["alert"] == "check_failed"]
    assert set(checks["check_name"]) == failed
    assert set(checks["asset"]) == {"alarm/paper/ledger"} and set(mine["partitions"]) == {"2024-01-03"}
    assert mine[mine["alert"] == "run_failed"]["message"].iloc[0].startswith("check ")
    alerts.alerts_sensor(ctx.for_run_failure())  # seen again: recorded once
    assert (alerts.read_alerts()["run_id"] == res.run_id).sum() == len(failed) + 1
    assert "alarm run" in (settings.storage_root() / "alerts.log").read_text()

    from admf_assets.cli import main

    assert main(["db", f"SELECT alert, check_name FROM monitoring.alerts WHERE run_id = '{res.run_id}' "
                       "ORDER BY alert, check_name"]) == 0


def test_the_command_line_records_its_own_failed_runs(env, capsys):
    root, instance, _ = env
    path = _write(root, "broken", """\
        workflow: {name: Broken, id: broken}
        data: {symbols: [SPY], start_date: 2023-01-02, end_date: 2023-03-31}
        phases:
          - name: criteria
            type: backtest
            critical: true
            config: {parameters: {fast_period: 5, slow_period: 20}, data_split: all}
            success_criteria: {sharpe_ratio: {min: 50}}
        reporting: {enabled: false}
        """)
    out = runner.run_workflow(path, instance)
    assert not out.success
    rows = alerts.read_alerts()
    mine = rows[rows["run_id"] == out.run_id]
    assert set(mine["alert"]) == {"run_failed", "check_failed"}
    assert mine[mine["alert"] == "check_failed"]["check_name"].tolist() == ["sharpe_ratio_min"]
    assert capsys.readouterr().err.count("alert:") == 0  # the terminal shows the run's failure lines only


SCRIPT = """\
import os
import sys
import pandas as pd
from dagster_pipes import open_dagster_pipes

with open_dagster_pipes() as pipes:
    sets = pd.read_parquet(pipes.extras["inputs"]["opt.top_5_parameter_sets"])
    pipes.log.info(f"scoring {len(sets)} sets with threshold {pipes.extras['params']['threshold']}")
    print("a line on stdout")
    if "--fail" in sys.argv:
        print("boom: the model file is missing", file=sys.stderr)
        sys.exit(3)
    out = pipes.extras["outputs"]["scores"]
    if "--no-output" not in sys.argv:
        sets.assign(score=range(len(sets))).to_parquet(out["path"])
    pipes.report_asset_materialization(asset_key=out["asset_key"],
                                       metadata={"mean_score": 2.0, "argv": " ".join(sys.argv[1:])})
# pipes is closed: leave without interpreter finalization, where pyarrow's thread pool can abort the
# process ("terminate called without an active exception", seen once in CI), which is not under test
sys.stdout.flush()
os._exit(0)
"""

EXTERNAL = """\
workflow: {{name: Ext, id: {wid}}}
data: {{symbols: [SPY], start_date: 2023-01-02, end_date: 2023-06-30}}
phases:
  - name: opt
    type: optimization
    config: {{optimization: {{parameters: {{fast_period: [5, 10, 20], slow_period: [30, 40]}}}}}}
    outputs: [best_parameters, top_5_parameter_sets]
  - name: ext
    type: external
    inputs: [opt.top_5_parameter_sets]
    config:
      script: scripts/score.py
      args: ["--label", "a b; rm -rf /tmp/never", {extra}]
      params: {{threshold: 0.5}}
      metrics: [mean_score]
    outputs: [scores]
    success_criteria: {{mean_score: {{min: 1}}}}
reporting: {{enabled: false}}
"""


def test_an_external_script_reports_metadata_on_its_asset(env):
    root, instance, _ = env
    (root / "scripts").mkdir(exist_ok=True)
    (root / "scripts" / "score.py").write_text(SCRIPT, encoding="utf-8")
    path = _write(root, "ext", EXTERNAL.format(wid="ext", extra='"--ok"'))
    out = runner.run_workflow(path, instance)
    assert out.success, out.failures
    ev = instance.get_latest_materialization_event(dg.AssetKey(["ext", "ext", "scores"]))
    meta = ev.asset_materialization.metadata
    assert meta["mean_score"].value == 2.0
    assert meta["argv"].value == "--label a b; rm -rf /tmp/never --ok"  # one argument, never a shell
    assert meta["rows"].value == 5 and meta["metric/mean_score"].value == 2.0
    logs = " ".join(e.message or "" for e in instance.all_logs(out.run_id))
    assert "scoring 5 sets with threshold 0.5" in logs and "a line on stdout" in logs
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey(["ext", "ext", "scores"]), "mean_score_min")])
    assert list(check.values())[0].status.value == "SUCCEEDED"


def test_an_external_script_failing_is_one_line(env):
    root, instance, _ = env
    (root / "scripts").mkdir(exist_ok=True)
    (root / "scripts" / "score.py").write_text(SCRIPT, encoding="utf-8")
    out = runner.run_workflow(_write(root, "extfail", EXTERNAL.format(wid="extfail", extra='"--fail"')), instance)
    assert not out.success
    assert out.failures == [
        f"{root / 'extfail.yaml'}: phase 'ext': command `{root / 'scripts' / 'score.py'} --label a b; rm -rf "
        "/tmp/never --fail` exited with status 3: boom: the model file is missing (its full output is in the run's log)"]
    out = runner.run_workflow(_write(root, "extnone", EXTERNAL.format(wid="extnone", extra='"--no-output"')), instance)
    assert len(out.failures) == 1 and out.failures[0].endswith(
        "did not write output 'scores' (a Parquet file at pipes.extras['outputs']['scores']['path'])")
