"""Launching runs from the command line into the shared instance (the one the UI shows)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import dagster as dg
import pandas as pd

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def market_defs(executor: str | None = None) -> dg.Definitions:
    """The market-data job with resources from the environment as it is now (not as it was when
    some earlier import of definitions.py happened)."""
    from admf_assets import market, runtime

    return dg.Definitions(
        assets=market.ASSETS, asset_checks=market.CHECKS, jobs=[market.market_data_job],
        resources=runtime.resources(), executor=runtime.executor(executor),
    )


def job_by_name(name: str, executor: str | None = None) -> dg.JobDefinition:
    """Module-level reconstructor so the multiprocess executor can rebuild the job in workers."""
    return market_defs(executor).resolve_job_def(name)


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    failures: list[str]


def partition_range(start, end) -> tuple[str, str, list[str]]:
    """Clamp [start, end] to the market partitions; returns first key, last key, all keys."""
    from admf_assets.market import market_partitions

    from admf_assets.market import partition_keys_between

    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if end < start:
        raise ValueError(f"--end {end.date()} is before --start {start.date()}")
    keys = partition_keys_between(start, end)
    if not keys:
        first, last = market_partitions.get_first_partition_key(), market_partitions.get_last_partition_key()
        raise ValueError(
            f"no market-data partitions between {start.date()} and {end.date()} "
            f"(partitions run weekdays {first}..{last})"
        )
    return keys[0], keys[-1], keys


def _launch(job_fn: str, args: tuple, instance: dg.DagsterInstance, tags: dict, kind: str,
            log_level: str) -> tuple[str, bool, list, list[str]]:
    """Run the job ``job_fn(*args)`` of this module as ONE run in ``instance``: in this process,
    or (multiprocess) rebuilt in each step's worker.  Returns (run id, success, events, failures)."""
    tags = {"admf/launched_by": "admf-cli", **tags}
    run_config = {"loggers": {"console": {"config": {"log_level": log_level.upper()}}}}
    if kind.startswith("in"):
        result = globals()[job_fn](*args).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, run_config=run_config)
        return result.run_id, result.success, list(result.all_events), _failures(result)
    recon = dg.build_reconstructable_job("admf_assets.runner", job_fn, reconstructable_args=args)
    with dg.execute_job(recon, instance=instance, tags=tags, raise_on_error=False,
                        run_config=run_config) as result:
        return result.run_id, result.success, list(result.all_events), _failures(result)


def _kind(executor: str | None, default: str | None = None) -> str:
    return (executor or default or os.environ.get("ADMF_EXECUTOR") or "in_process").lower()


def run_job(job_name: str, instance: dg.DagsterInstance, tags: dict | None = None,
            executor: str | None = None, log_level: str = "WARNING") -> RunOutcome:
    """Run a market-data job as ONE run recorded in ``instance``."""
    kind = _kind(executor)
    run_id, success, _, failures = _launch("job_by_name", (job_name, kind), instance, tags or {},
                                           kind, log_level)
    return RunOutcome(run_id, success, failures)


def _failures(result) -> list[str]:
    out = []
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            data = ev.event_specific_data
            ufd = getattr(data, "user_failure_data", None)
            if ufd is not None and ufd.description:  # a dg.Failure: its description is the message
                out.append(ufd.description)
                continue
            err = data.error
            msg = getattr(err, "message", str(err)).strip()
            out.append(f"{ev.step_key}: {msg.splitlines()[-1] if msg else 'failed'}")
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if not data.passed:
                out.append(f"check {data.check_name} on {data.asset_key.to_user_string()} failed")
    return out


def backfill(start, end, instance: dg.DagsterInstance, executor: str | None = None,
             log_level: str = "WARNING") -> RunOutcome:
    first, last, _ = partition_range(start, end)
    return run_job("market_data", instance, tags={RANGE_START: first, RANGE_END: last},
                   executor=executor, log_level=log_level)


# ----------------------------------------------------------------------------- workflows
def workflow_defs(path_or_name: str, executor: str | None = None) -> tuple[dg.Definitions, "object"]:
    """Definitions holding the market assets and one compiled workflow (a name or a path)."""
    from admf_assets import market, runtime
    from admf_assets.workflow.compiler import compile_workflow, workflows_dir

    compiled = compile_workflow(path_or_name, workflows_dir(), executor)
    defs = dg.Definitions(
        assets=[*market.ASSETS, *compiled.assets],
        asset_checks=market.CHECKS,
        jobs=[compiled.job],
        resources=runtime.resources(),
    )
    return defs, compiled


def workflow_job(path_or_name: str, executor: str | None = None) -> dg.JobDefinition:
    """Reconstructor for the multiprocess executor."""
    defs, compiled = workflow_defs(path_or_name, executor)
    return defs.resolve_job_def(compiled.graph.workflow_id)


@dataclass
class WorkflowOutcome:
    run_id: str
    success: bool
    failures: list[str]
    report_path: str | None
    compute_seconds: float
    run_seconds: float
    materialized: int


def missing_market_range(graph) -> tuple[str, str] | None:
    """First and last weekday of market data the workflow's data phases need but lack."""
    from admf_assets import settings
    from admf_assets.phases.data_preparation import missing_partitions
    from resources.storage import TableStore

    store = TableStore(settings.storage_root())
    missing = []
    for node in graph.phases.values():
        if node.type == "data_preparation":
            missing += missing_partitions(store, node.config["start_date"], node.config["end_date"])
    return (min(missing), max(missing)) if missing else None


def run_workflow(path_or_name: str, instance: dg.DagsterInstance, executor: str | None = None,
                 log_level: str = "WARNING") -> WorkflowOutcome:
    import time

    from admf_assets.workflow.compiler import workflows_dir
    from admf_assets.workflow.validate import load_workflow

    graph = load_workflow(path_or_name, workflows_dir()).graph  # compiled once, in _launch
    kind = _kind(executor, graph.executor)
    tags = {"admf/workflow": graph.workflow_id}
    t0 = time.perf_counter()
    run_id, success, events, failures = _launch("workflow_job", (path_or_name, kind), instance, tags,
                                                kind, log_level)
    run_seconds = time.perf_counter() - t0
    report_phase = next((n.name for n in graph.phases.values() if n.type == "report"), None)
    report_path, n = None, 0
    for ev in events:
        if ev.event_type_value != "ASSET_MATERIALIZATION":
            continue
        n += 1
        mat = ev.event_specific_data.materialization
        if mat.asset_key.path[1] == report_phase and "report_path" in mat.metadata:
            report_path = mat.metadata["report_path"].value
    return WorkflowOutcome(run_id, success, failures, report_path, _compute_seconds(events),
                           run_seconds, n)


def _compute_seconds(events) -> float:
    """Sum of the phases' own compute time (each phase reports it on every output)."""
    per_step: dict[str, float] = {}
    for ev in events:
        if ev.event_type_value == "ASSET_MATERIALIZATION":
            md = ev.event_specific_data.materialization.metadata
            if "compute_seconds" in md:
                per_step[ev.step_key] = float(md["compute_seconds"].value)
    return sum(per_step.values())
