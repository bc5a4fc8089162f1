"""Scheduled and event-driven workflows: the schedule and the market-data sensor of a compiled
workflow, and which market days its partitioned phases (a ledger) still have to book.

| YAML (``workflow:``)            | Dagster                                                      |
| ------------------------------- | ------------------------------------------------------------ |
| ``schedule: "0 22 * * 1-5"``    | ``<id>__schedule``: the workflow's job on that cron, in       |
| ``timezone: America/New_York``  | ``timezone`` (default UTC)                                   |
| ``run_on_new_market_data: true``| ``<id>__on_new_market_data``: a sensor that runs the job when |
|                                 | market partitions the workflow reads are newly materialized  |

Both are off until switched on in the UI (``default_status`` STOPPED) and need the Dagster
daemon (``admf ui`` starts it).  A workflow with a partitioned phase (a paper-trading ledger,
one partition per market day) is booked forward: a tick requests the ledger days not booked
yet whose market data is stored (normally exactly the newest one), never a day already
booked; with nothing to book the schedule skips.  The sensor starts watching when it is
switched on (its first tick only records where the market data's event log is).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from admf_assets import settings
from admf_assets.market import CLEAN_KEY

__all__ = ["check_cron", "LAUNCHED_BY", "RANGE_START", "RANGE_END", "workflow_schedules", "workflow_sensors", "pending_days",
           "PlannedRun", "plan_runs", "range_tags", "whole_phase_keys", "new_market_days"]

LAUNCHED_BY = "admf/launched_by"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
#: materialization records read per sensor tick (the rest on the next tick)
SENSOR_BATCH = 5000


def check_cron(text: str) -> bool:
    """Whether Dagster's schedule parser accepts the cron string (``workflow.schedule``)."""
    from dagster._utils.schedules import is_valid_cron_string

    return bool(is_valid_cron_string(text))


def _store():
    from resources.storage import TableStore

    return TableStore(settings.storage_root())


def whole_phase_keys(graph) -> list[dg.AssetKey]:
    """The workflow's unpartitioned assets (what runs without a partition)."""
    return [dg.AssetKey(list(graph.asset_key(a))) for a in graph.assets() if not a.partitioned]


def pending_days(compiled, store=None, current_time=None) -> dict[str, list[str]]:
    """Per partitioned phase, the partition keys (market days) some of its outputs have not
    booked yet and whose market data is stored, in order."""
    parts = compiled.partitions_def
    if parts is None:
        return {}
    store = store or _store()
    graph = compiled.graph
    keys = parts.get_partition_keys(current_time=current_time)
    market = store.stored_partitions(list(CLEAN_KEY.path))
    out = {}
    for name in graph.order:
        outs = [o for o in graph.phases[name].outputs if o.partitioned]
        if not outs:
            continue
        booked = set.intersection(*(store.stored_partitions(list(graph.asset_key(o))) for o in outs))
        days = [k for k in keys if k not in booked and k in market]
        if days:
            out[name] = days
    return out


@dataclass(frozen=True)
class PlannedRun:
    """One run that books ``first``..``last`` (consecutive market days) for some partitioned
    phases; ``selection``: the assets to materialize (None: the whole workflow)."""

    first: str
    last: str
    days: int
    selection: tuple[dg.AssetKey, ...] | None

    @property
    def tags(self) -> dict[str, str]:
        return range_tags(self.first, self.last)


def plan_runs(compiled, store=None, current_time=None) -> list[PlannedRun]:
    """The runs that book what the partitioned phases have not booked yet, each with the rest of
    the workflow: one run per stretch of consecutive days, selecting only the phases missing it
    (a day a phase has booked is never booked again); upstream phases first."""
    pending = pending_days(compiled, store, current_time)
    if not pending:
        return []
    graph = compiled.graph
    order = {k: i for i, k in enumerate(compiled.partitions_def.get_partition_keys(current_time=current_time))}
    groups: dict[tuple[str, str], list[str]] = {}
    for phase, days in pending.items():
        for seg in _stretches(days, order):
            groups.setdefault(seg, []).append(phase)
    partitioned = [n for n in graph.order if any(o.partitioned for o in graph.phases[n].outputs)]
    position = {n: i for i, n in enumerate(graph.order)}
    runs = []
    for (first, last), phases in sorted(groups.items(), key=lambda kv: (min(position[p] for p in kv[1]), kv[0])):
        selection = None
        if set(phases) != set(partitioned):
            selection = tuple(whole_phase_keys(graph)) + tuple(
                dg.AssetKey(list(graph.asset_key(o))) for p in phases for o in graph.phases[p].outputs)
        runs.append(PlannedRun(first, last, order[last] - order[first] + 1, selection))
    return runs


def _stretches(days: list[str], order: dict[str, int]) -> list[tuple[str, str]]:
    """``days`` as (first, last) runs of consecutive partition keys."""
    out, first, prev = [], days[0], days[0]
    for d in days[1:]:
        if order[d] != order[prev] + 1:
            out.append((first, prev))
            first = d
        prev = d
    out.append((first, prev))
    return out


def range_tags(first: str, last: str) -> dict[str, str]:
    return {RANGE_START: first, RANGE_END: last}


def _requests(compiled, runs: list[PlannedRun], whole: bool, run_key: str | None,
              launched_by: str) -> list[dg.RunRequest]:
    """Run requests for the planned runs or, with none and ``whole``, for the whole-phase
    assets alone."""
    tags = {LAUNCHED_BY: launched_by, "admf/workflow": compiled.graph.workflow_id}
    out = []
    for run in runs:
        key = f"{run_key}:{run.first}:{run.last}" if run_key else None
        selection = list(run.selection) if run.selection is not None else None
        if run.first == run.last:
            out.append(dg.RunRequest(run_key=key, partition_key=run.first, tags=tags, asset_selection=selection))
        else:
            out.append(dg.RunRequest(run_key=key, tags={**tags, **run.tags}, asset_selection=selection))
    if not out and whole:
        selection = whole_phase_keys(compiled.graph) if compiled.partitions_def is not None else None
        if selection != []:
            out.append(dg.RunRequest(run_key=run_key, asset_selection=selection, tags=tags))
    return out


# ------------------------------------------------------------------ schedule
def workflow_schedules(compiled) -> tuple[dg.ScheduleDefinition, ...]:
    g = compiled.graph
    if not g.schedule:
        return ()
    partitioned = compiled.partitions_def is not None

    def _tick(context: dg.ScheduleEvaluationContext):
        if not partitioned:
            yield dg.RunRequest(tags={LAUNCHED_BY: "schedule", "admf/workflow": g.workflow_id})
            return
        runs = plan_runs(compiled, current_time=context.scheduled_execution_time)
        requests = _requests(compiled, runs, False, None, "schedule")
        yield from requests or [dg.SkipReason("no new market day to book (every stored market day is booked)")]

    what = "books the market days not booked yet" if partitioned else "runs the workflow"
    return (dg.ScheduleDefinition(
        name=f"{g.workflow_id}__schedule", cron_schedule=g.schedule, execution_timezone=g.timezone,
        job=compiled.job, execution_fn=_tick, default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"workflow.schedule of {g.source or g.workflow_id}: {what} on '{g.schedule}' ({g.timezone}); "
                    "off until switched on",
    ),)


# ------------------------------------------------------------------ market-data sensor
def _market_windows(graph) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(first, last) market day each whole-phase phase reads (a change there re-runs them)."""
    out = []
    for node in graph.phases.values():
        if node.partitions is None:
            r = node.kind.market_range(node.settings)
            if r is not None:
                out.append((pd.Timestamp(r[0]), pd.Timestamp(r[1])))
    return out


def new_market_days(instance: dg.DagsterInstance, cursor: int) -> tuple[set[str], int]:
    """Market days (clean-bars partitions) materialized after the event-log ``cursor``, and
    the new cursor."""
    days: set[str] = set()
    newest = cursor
    page = None
    while True:
        res = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=CLEAN_KEY, after_storage_id=cursor), limit=SENSOR_BATCH, cursor=page,
            ascending=True)
        for rec in res.records:
            newest = max(newest, rec.storage_id)
            if rec.partition_key:
                days.add(rec.partition_key)
        if not res.has_more:
            break
        page = res.cursor
    return days, newest


def workflow_sensors(compiled) -> tuple[dg.SensorDefinition, ...]:
    g = compiled.graph
    if not g.run_on_new_market_data:
        return ()
    windows = _market_windows(g)

    def _tick(context: dg.SensorEvaluationContext):
        if context.cursor is None:  # switched on: watch from now on
            latest = context.instance.fetch_materializations(CLEAN_KEY, limit=1)
            start = latest.records[0].storage_id if latest.records else 0
            context.update_cursor(str(start))
            return dg.SkipReason("watching the market data from now on")
        days, newest = new_market_days(context.instance, int(context.cursor))
        if not days:
            return dg.SkipReason("no market partition materialized since the last tick")
        touched = any(lo <= pd.Timestamp(d) <= hi for d in days for lo, hi in windows)
        runs = plan_runs(compiled) if compiled.partitions_def is not None else []
        requests = _requests(compiled, runs, touched, f"market@{newest}", "sensor")
        context.update_cursor(str(newest))
        if not requests:
            return dg.SkipReason(f"{len(days)} new market day(s), none read by this workflow")
        return requests

    return (dg.SensorDefinition(
        name=f"{g.workflow_id}__on_new_market_data", job=compiled.job, evaluation_fn=_tick,
        minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"workflow.run_on_new_market_data of {g.source or g.workflow_id}: runs the workflow when market "
                    "partitions it reads are newly materialized" + (" and books each new market day of its ledger"
                                                                    if compiled.partitions_def is not None else "")
                    + "; off until switched on",
    ),)
