"""workflow.schedule / timezone / run_on_new_market_data: checked at validate, one line each."""

from __future__ import annotations

import pytest

from admf_assets.workflow.compiler import compile_graph
from admf_assets.workflow.validate import load_workflow


@pytest.mark.parametrize("section, line", [
    ('schedule: "0 25 * * 1-5"', "field 'workflow.schedule': invalid cron schedule '0 25 * * 1-5': expected five "
                                 "fields, minute hour day-of-month month day-of-week, e.g. \"0 22 * * 1-5\" (22:00 "
                                 "on weekdays)"),
    ('schedule: "0 22 * * 1-5"\n  timezone: Mars/Olympus', "field 'workflow.timezone': unknown time zone "
                                                         "'Mars/Olympus': use an IANA name such as 'UTC', "
                                                         "'America/New_York', 'Europe/London'"),
    ("schedule: {cron: \"0 22 * * 1-5\", every: day}", "field 'workflow.schedule': unknown key 'every'; allowed: "
                                                       "cron, timezone"),
    ("run_on_new_market_data: yes please", "field 'workflow.run_on_new_market_data'"),
])
def test_bad_automation_keys_are_one_line(write, base, errors_of, section, line):
    path = write(f"workflow:\n  {section}\n" + base)
    lines = errors_of(path)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: {line}"), lines


def test_a_schedule_with_its_time_zone_compiles_to_a_stopped_schedule(write, base):
    path = write('workflow:\n  schedule: {cron: "15  22 * * 1-5", timezone: Europe/London}\n'
                 "  run_on_new_market_data: true\n" + base)
    graph = load_workflow(path).graph
    assert (graph.schedule, graph.timezone, graph.run_on_new_market_data) == ("15 22 * * 1-5", "Europe/London", True)
    compiled = compile_graph(graph)
    (sched,), (sensor,) = compiled.schedules, compiled.sensors
    assert (sched.name, sched.cron_schedule, sched.execution_timezone) == ("wf__schedule", "15 22 * * 1-5",
                                                                          "Europe/London")
    assert sched.default_status.value == "STOPPED" and sensor.default_status.value == "STOPPED"
    assert sched.job_name == sensor.job_name == "wf"


def test_no_automation_keys_no_schedule_or_sensor(write, base):
    compiled = compile_graph(load_workflow(write(base)).graph)
    assert compiled.schedules == () and compiled.sensors == () and compiled.partitions_def is None


def test_the_schedule_and_the_sensor_are_in_the_code_location_stopped(write, base):
    """What the UI lists under Automation: the workflow's schedule and market-data sensor next to
    market_data_daily and admf_alerts, the workflow's two stopped until switched on."""
    from admf_assets.defs import build_defs

    path = write('workflow:\n  schedule: "30 23 * * 1-5"\n  run_on_new_market_data: true\n' + base)
    defs = build_defs([compile_graph(load_workflow(path).graph)])
    sched = defs.resolve_schedule_def("wf__schedule")
    sensor = defs.resolve_sensor_def("wf__on_new_market_data")
    assert sched.default_status.value == sensor.default_status.value == "STOPPED"
    assert sched.job_name == sensor.job_name == "wf"
    names = {s.name for s in defs.schedules} | {s.name for s in defs.sensors}
    assert {"market_data_daily", "admf_alerts"} <= names
