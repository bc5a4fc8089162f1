"""The one place Dagster ``Definitions`` are assembled: the code location (definitions.py) and
the command line's runs (runner.py) both call :func:`build_defs`."""

from __future__ import annotations

from typing import Sequence

import dagster as dg

from admf_assets import market, progress, runtime
from admf_assets.workflow.compiler import CompiledWorkflow, compile_all


def build_defs(workflows: Sequence[CompiledWorkflow] | None = None, *, executor: str | None = None) -> dg.Definitions:
    """Market data plus ``workflows`` (default: every workflow file of the workflows directory,
    compiled); resources and the default executor come from the environment as it is now."""
    if workflows is None:
        workflows = compile_all()
    return dg.Definitions(
        assets=[*market.ASSETS, *(a for w in workflows for a in w.assets)],
        asset_checks=market.CHECKS,
        jobs=[market.market_data_job, *(w.job for w in workflows)],
        schedules=[market.market_data_schedule],
        resources=runtime.resources(),
        executor=runtime.executor(executor),
        loggers=progress.LOGGERS,  # admf's terminal for CLI runs; UI runs keep Dagster's console
    )
