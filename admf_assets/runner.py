"""Launching runs from the command line into the shared instance (the one the UI shows).

A workflow is loaded once (by the caller) and handed over as its resolved graph; in process it
is compiled from that graph.  The multiprocess and Celery executors rebuild the job in each
step's worker from the workflow file (``workflow_job``), as Dagster reconstructs jobs by
reference, with the launcher's settings (see :mod:`admf_assets.workers`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import dagster as dg
import pandas as pd

from admf_assets import progress

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


# ----------------------------------------------------------------------------- jobs
def market_job(executor: str | None = None, launch: str = "") -> dg.JobDefinition:
    """The market-data job, with resources from the environment as it is now (not as it was
    when some earlier import of definitions.py happened); in a step worker, the launcher's."""
    from admf_assets import workers
    from admf_assets.defs import build_defs

    workers.apply_launch(launch)
    return workers.cached(("market_job", executor, launch),
                          lambda: build_defs([], executor=executor).resolve_job_def("market_data"))


def workflow_defs(path_or_name: Any, executor: str | None = None) -> tuple[dg.Definitions, Any]:
    """Definitions holding the market assets and one compiled workflow (a graph, a name or a path)."""
    from admf_assets.defs import build_defs
    from admf_assets.workflow.compiler import compile_graph

    compiled = compile_graph(_graph(path_or_name), executor)
    return build_defs([compiled], executor=executor), compiled


def workflow_job(path: str, executor: str | None = None, launch: str = "") -> dg.JobDefinition:
    """Reconstructor for step workers: the workflow's job from its file, built with the
    launcher's settings, once per process."""
    from admf_assets import workers

    data = workers.apply_launch(launch)
    workers.check_digest(path, data)

    def build() -> dg.JobDefinition:
        defs, compiled = workflow_defs(path, executor)
        return defs.resolve_job_def(compiled.graph.workflow_id)

    return workers.cached(("workflow_job", path, executor, launch), build)


#: module-level job builders the multiprocess executor can reconstruct in its workers
RECONSTRUCTORS: dict[str, Callable[..., dg.JobDefinition]] = {"market_job": market_job, "workflow_job": workflow_job}


def _graph(path_or_name: Any):
    from admf_assets.workflow.graph import WorkflowGraph
    from admf_assets.workflow.loader import load_workflow

    if isinstance(path_or_name, WorkflowGraph):
        return path_or_name
    return load_workflow(path_or_name).graph


# ----------------------------------------------------------------------------- launching
@dataclass
class RunOutcome:
    run_id: str
    success: bool
    failures: list[str]


def _kind(executor: str | None, default: str | None = None) -> str:
    return (executor or default or os.environ.get("ADMF_EXECUTOR") or "in_process").lower()


def _launch(job: dg.JobDefinition | None, rebuild: tuple[str, tuple], instance: dg.DagsterInstance, tags: dict,
            kind: str, log_level: str, steps: dict | None = None) -> tuple[str, bool, list, list[str]]:
    """Run ONE run in ``instance``: ``job`` in this process, or (multiprocess) the job that
    ``RECONSTRUCTORS[rebuild[0]](*rebuild[1])`` builds in each step's worker.  The terminal shows
    admf's progress lines (``steps``: labels, order, partitions; see :mod:`admf_assets.progress`),
    or Dagster's whole event log when ``log_level`` is INFO or DEBUG (``--verbose``)."""
    tags = {"admf/launched_by": "admf-cli", **tags}
    run_config = {"loggers": progress.run_loggers(log_level.upper() in ("INFO", "DEBUG"), **(steps or {}))}
    if kind.startswith("in"):
        if job is None:
            job = RECONSTRUCTORS[rebuild[0]](*rebuild[1])
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False, run_config=run_config)
        return result.run_id, result.success, list(result.all_events), _failures(result)
    from admf_assets import runtime, workers

    name, args = rebuild
    assert name in RECONSTRUCTORS
    runtime.check_executor(kind, instance)
    recon = dg.build_reconstructable_job("admf_assets.runner", name, reconstructable_args=args)
    with workers.preloading(name, args):  # the forkserver this run starts compiles the job once
        if kind.startswith("multi"):
            workers.start_forkserver()
        with dg.execute_job(recon, instance=instance, tags=tags, raise_on_error=False,
                            run_config=run_config) as result:
            return result.run_id, result.success, list(result.all_events), _failures(result)


def run_job(job_name: str, instance: dg.DagsterInstance, tags: dict | None = None,
            executor: str | None = None, log_level: str = "WARNING") -> RunOutcome:
    """Run the market-data job as ONE run recorded in ``instance``."""
    if job_name != "market_data":
        raise ValueError(f"unknown job {job_name!r}")
    from admf_assets.workers import launch_settings

    kind = _kind(executor)
    tags = tags or {}
    partitions = 0
    if RANGE_START in tags:
        from admf_assets.market import partition_keys_between

        partitions = len(partition_keys_between(tags[RANGE_START], tags[RANGE_END]))
    steps = {"labels": {"market__raw_bars": "market/raw_bars", "market__clean_bars": "market/clean_bars",
                        "clean_bars_quality": "market/clean_bars checks"},
             "order": ["market__raw_bars", "market__clean_bars", "clean_bars_quality"], "partitions": partitions}
    rebuild = ("market_job", (kind, launch_settings()))
    run_id, success, _, failures = _launch(None, rebuild, instance, tags, kind, log_level, steps)
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
                why = f": {data.description}" if getattr(data, "description", None) else ""
                out.append(f"check {data.check_name} on {data.asset_key.to_user_string()} failed{why}")
    return out


# ----------------------------------------------------------------------------- market data
def partition_range(start, end) -> tuple[str, str, list[str]]:
    """Clamp [start, end] to the market partitions; returns first key, last key, all keys."""
    from admf_assets.market import market_partitions, partition_keys_between

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


def backfill(start, end, instance: dg.DagsterInstance, executor: str | None = None,
             log_level: str = "WARNING") -> RunOutcome:
    first, last, _ = partition_range(start, end)
    return run_job("market_data", instance, tags={RANGE_START: first, RANGE_END: last},
                   executor=executor, log_level=log_level)


def check_market_source(graph) -> None:
    """ValueError (one line) when a phase needs another market source than ADMF_MARKET_SOURCE."""
    from admf_assets.runtime import market_source_kind

    current = market_source_kind()
    for phase, needed in graph.market_sources().items():
        if needed != current:
            raise ValueError(f"phase '{phase}': data.source: this workflow needs the market source '{needed}': "
                             f"run it with ADMF_MARKET_SOURCE={needed} (the current source is '{current}')")


def missing_market_range(graph) -> tuple[str, str] | None:
    """First and last weekday of market data the workflow's phases read but the store lacks
    (after checking the market source the workflow needs)."""
    from admf_assets import settings
    from admf_assets.market import missing_partitions
    from resources.storage import TableStore

    check_market_source(graph)
    store = TableStore(settings.storage_root())
    missing = []
    for start, end in graph.market_ranges():
        missing += missing_partitions(store, start, end)
    return (min(missing), max(missing)) if missing else None


# ----------------------------------------------------------------------------- workflows
@dataclass
class WorkflowOutcome:
    run_id: str
    success: bool
    failures: list[str]
    report_path: str | None
    compute_seconds: float
    run_seconds: float
    materialized: int
    failed: list[str] = field(default_factory=list)  #: phases that failed, in graph order
    skipped: list[str] = field(default_factory=list)  #: phases that never started (upstream failed)
    optional_only: bool = False  #: every failed phase has on_failure: continue_with_warning

    @property
    def status(self) -> str:
        """``ok``, ``optional_failed`` (finished; only optional phases failed) or ``failed``."""
        if self.success:
            return "ok"
        return "optional_failed" if self.optional_only else "failed"


def run_workflow(workflow: Any, instance: dg.DagsterInstance, executor: str | None = None,
                 log_level: str = "WARNING") -> WorkflowOutcome:
    """Run a workflow (its resolved graph, or a name / path to load) as ONE run."""
    graph = _graph(workflow)
    claim_workflow_id(graph)
    kind = _kind(executor, graph.executor)
    tags = {"admf/workflow": graph.workflow_id}
    if graph.partition_keys:  # every partition (walk-forward folds) in this one run
        tags.update({RANGE_START: graph.partition_keys[0], RANGE_END: graph.partition_keys[-1]})
    job = None
    if kind.startswith("in"):
        defs, compiled = workflow_defs(graph, kind)
        job = defs.resolve_job_def(graph.workflow_id)
    elif graph.path is None:
        raise ValueError(f"a workflow given as text runs in process only (write it to a file for {kind})")
    from admf_assets.workers import launch_settings

    step_of = {f"{graph.workflow_id}__{name}": name for name in graph.order}
    steps = {"labels": step_of, "order": list(step_of)}
    rebuild = ("workflow_job", (str(graph.path), kind, launch_settings(graph.path) if graph.path else ""))
    t0 = time.perf_counter()
    run_id, success, events, failures = _launch(job, rebuild, instance, tags, kind, log_level, steps)
    run_seconds = time.perf_counter() - t0
    report_path, n = None, 0
    for ev in events:
        if ev.event_type_value != "ASSET_MATERIALIZATION":
            continue
        n += 1
        mat = ev.event_specific_data.materialization
        if "report_path" in mat.metadata:
            report_path = mat.metadata["report_path"].value
    started = {ev.step_key for ev in events if ev.event_type_value == "STEP_START"}
    failed_steps = {ev.step_key for ev in events if ev.event_type_value == "STEP_FAILURE"}
    failed = [step_of[k] for k in step_of if k in failed_steps]
    skipped = [step_of[k] for k in step_of if k not in started]
    optional = bool(failed) and all(graph.phases[p].on_failure == "continue_with_warning" for p in failed) \
        and not any(f.startswith("check ") and not _warn_only(graph, f) for f in failures)
    return WorkflowOutcome(run_id, success, failures, report_path, _compute_seconds(events),
                           run_seconds, n, failed, skipped, optional)


def _warn_only(graph, failure: str) -> bool:
    """A failed check of a non-critical phase only warns (it did not stop anything)."""
    parts = failure.split(" on ", 1)[-1].split("/")
    return len(parts) > 1 and parts[1] in graph.phases and not graph.phases[parts[1]].critical


def claim_workflow_id(graph) -> None:
    """Record the graph's file as the owner of its workflow id in the storage root; a
    WorkflowError (one line naming both files) when another file owns it."""
    from admf_assets import settings
    from admf_assets.workflow import ids

    ids.claim(graph.workflow_id, graph.path, settings.storage_root(), graph.source)


def _compute_seconds(events) -> float:
    """Sum of the phases' own compute time (each phase reports it on every output)."""
    per_step: dict[str, float] = {}
    for ev in events:
        if ev.event_type_value == "ASSET_MATERIALIZATION":
            md = ev.event_specific_data.materialization.metadata
            if "compute_seconds" in md:
                per_step[ev.step_key] = float(md["compute_seconds"].value)
    return sum(per_step.values())
