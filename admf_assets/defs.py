"""The one place Dagster ``Definitions`` are assembled: the code location (definitions.py) and
the command line's runs (runner.py) both call :func:`build_defs`."""

from __future__ import annotations

from typing import Sequence

import dagster as dg

from admf_assets import alerts, executors, market, progress, runtime, snapshots
from admf_assets.workflow.compiler import CompiledWorkflow, compile_all


def build_defs(workflows: Sequence[CompiledWorkflow] | None = None, *, executor: str | None = None) -> dg.Definitions:
    """Market data plus ``workflows`` (default: every workflow file of the workflows directory,
    compiled); resources and the default executor come from the environment as it is now.

    The default executor (used by runs of Dagster's implicit asset job, e.g. "Materialize" in
    the UI's asset graph) gives a run of one workflow's assets that workflow's settings."""
    if workflows is None:
        workflows = compile_all()
    default = executors.RunSettings(executor)
    by_group = {w.graph.workflow_id: w.run_settings for w in workflows}
    return dg.Definitions(
        assets=[*market.ASSETS, *(a for w in workflows for a in (*w.assets, *w.sources))],
        asset_checks=market.CHECKS,
        jobs=[market.market_data_job, *(w.job for w in workflows)],
        schedules=[market.market_data_schedule, *(s for w in workflows for s in w.schedules)],
        sensors=[alerts.alerts_sensor, snapshots.snapshot_sensor([s for w in workflows for s in w.snapshots]),
                 *(s for w in workflows for s in w.sensors)],
        resources=runtime.resources(),
        executor=executors.dispatching_executor(default, by_group),
        loggers=progress.LOGGERS,  # admf's terminal for CLI runs; UI runs keep Dagster's console
    )
