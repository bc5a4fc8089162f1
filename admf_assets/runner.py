"""Launching runs from the command line into the shared instance (the one the UI shows).

A workflow is loaded once (by the caller) and handed over as its resolved graph; in process it
is compiled from that graph.  The multiprocess and Celery executors rebuild the job in each
step's worker from the workflow file (``workflow_job``), as Dagster reconstructs jobs by
reference, with the launcher's settings (see :mod:`admf_assets.workers`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

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
#: the name under which ``_reconstructable`` returns Dagster's implicit asset job of the code location
ASSET_JOB = "__ASSET_JOB"


def _reconstructable(rebuild: tuple[str, tuple]):
    """A reconstructable job: ``RECONSTRUCTORS[name](*args)``, or the code location's implicit
    asset job (what the UI's asset graph runs), by its pointer to ``definitions.defs``."""
    name, args = rebuild
    if name == ASSET_JOB:
        from pathlib import Path

        from dagster._core.definitions.reconstruct import ReconstructableRepository

        root = str(Path(__file__).resolve().parent.parent)
        repo = ReconstructableRepository.for_module("definitions", "defs", working_directory=root)
        return repo.get_reconstructable_job(ASSET_JOB)
    assert name in RECONSTRUCTORS
    return dg.build_reconstructable_job("admf_assets.runner", name, reconstructable_args=args)


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
            kind: str, log_level: str, selection: Sequence[dg.AssetKey] | None = None,
            parent: dg.DagsterRun | None = None, steps: dict | None = None) -> tuple[str, bool, list, list[str]]:
    """:func:`_launch_run`; a failed run is recorded in the alerts table (admf_assets.alerts)."""
    out = _launch_run(job, rebuild, instance, tags, kind, log_level, selection, parent, steps)
    if not out[1]:
        from admf_assets.alerts import record_run

        record_run(instance, out[0])
    return out


def _launch_run(job: dg.JobDefinition | None, rebuild: tuple[str, tuple], instance: dg.DagsterInstance, tags: dict,
                kind: str, log_level: str, selection: Sequence[dg.AssetKey] | None = None,
                parent: dg.DagsterRun | None = None, steps: dict | None = None) -> tuple[str, bool, list, list[str]]:
    """Run ONE run in ``instance``: ``job`` in this process, or (multiprocess, or a re-execution
    of ``parent`` from failure) the job that ``RECONSTRUCTORS[rebuild[0]](*rebuild[1])`` builds.
    ``selection``: the assets to materialize (default: the whole job).  The terminal shows admf's
    progress lines (``steps``: labels, order, partitions; see :mod:`admf_assets.progress`), or
    Dagster's whole event log when ``log_level`` is INFO or DEBUG (``--verbose``)."""
    from admf_assets import recovery

    tags = {"admf/launched_by": "admf-cli", **tags, **recovery.process_tags()}
    run_config = {"loggers": progress.run_loggers(log_level.upper() in ("INFO", "DEBUG"), **(steps or {}))}
    if kind.startswith("in") and parent is None:
        if job is None:
            job = RECONSTRUCTORS[rebuild[0]](*rebuild[1])
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False, run_config=run_config,
                                        asset_selection=list(selection) if selection is not None else None)
        return result.run_id, result.success, list(result.all_events), _failures(result)
    from admf_assets import runtime, workers

    runtime.check_executor(kind, instance)
    recon = _reconstructable(rebuild)
    options = None
    if parent is not None:
        options = dg.ReexecutionOptions.from_failure(parent.run_id, instance)
        run_config = {**parent.run_config, **run_config}
    with workers.preloading(*rebuild):  # the forkserver this run starts compiles the job once
        if kind.startswith("multi"):
            workers.start_forkserver()
        with dg.execute_job(recon, instance=instance, tags=tags, raise_on_error=False, run_config=run_config,
                            reexecution_options=options,
                            asset_selection=list(selection) if selection is not None else None) as result:
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
    run_id, success, _, failures = _launch(None, rebuild, instance, tags, kind, log_level, steps=steps)
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
    booked: tuple[str, str, int] | None = None  #: partitioned phases: first, last day booked, days

    @property
    def status(self) -> str:
        """``ok``, ``optional_failed`` (finished; only optional phases failed) or ``failed``."""
        if self.success:
            return "ok"
        return "optional_failed" if self.optional_only else "failed"


def run_workflow(workflow: Any, instance: dg.DagsterInstance, executor: str | None = None,
                 log_level: str = "WARNING", selection: Sequence[dg.AssetKey] | None = None,
                 tags: dict | None = None, defs: dg.Definitions | None = None) -> WorkflowOutcome:
    """Run a workflow (its resolved graph, or a name / path to load) as ONE run; ``selection``:
    the assets to materialize (default: all of them); ``defs``: its ``workflow_defs`` when the
    caller built them already (for this executor)."""
    graph = _graph(workflow)
    claim_workflow_id(graph)
    kind = _kind(executor, graph.executor)
    tags = {"admf/workflow": graph.workflow_id, **(tags or {})}
    if graph.path is not None:
        tags["admf/workflow_file"] = str(graph.path)
    if graph.partition_keys and _selects_partitioned(graph, selection):  # every fold in this one run
        tags.update({RANGE_START: graph.partition_keys[0], RANGE_END: graph.partition_keys[-1]})
    job = None
    if kind.startswith("in"):
        if defs is None:
            defs, _ = workflow_defs(graph, kind)
        job = defs.resolve_job_def(graph.workflow_id)
    elif graph.path is None:
        raise ValueError(f"a workflow given as text runs in process only (write it to a file for {kind})")
    from admf_assets.workers import launch_settings

    runs, booked = [({}, selection)], None
    if graph.partitions is not None and graph.partition_keys is None:  # market days (a ledger): book the new ones
        from admf_assets.workflow.compiler import compile_graph

        runs, booked = _partition_runs(compile_graph(graph, kind), selection)
    rebuild = ("workflow_job", (str(graph.path), kind, launch_settings(graph.path) if graph.path else ""))
    t0 = time.perf_counter()
    events, failures, success, steps = [], [], True, None
    for run_tags, sel in runs:  # one run, or one per stretch of consecutive days to book
        steps = _steps(graph, sel)
        run_id, ok, evs, fails = _launch(job, rebuild, instance, {**tags, **run_tags}, kind, log_level, sel,
                                         steps=steps)
        events += evs
        failures += fails
        success = success and ok
        if not ok:
            break
    out = _outcome(graph, run_id, success, events, failures, time.perf_counter() - t0, steps)
    return replace(out, booked=booked) if booked else out


def _step_phases(graph) -> dict[str, tuple[str, str]]:
    """Step key -> (phase, the name the terminal shows: the phase; its fold partitions' step
    "P folds"), in graph order."""
    out = {}
    for name in graph.order:
        if any(o.partitioned for o in graph.phases[name].outputs):
            out[f"{graph.workflow_id}__{name}__partitions"] = (name, f"{name} folds")
        if any(not o.partitioned for o in graph.phases[name].outputs):
            out[f"{graph.workflow_id}__{name}"] = (name, name)
    return out


def _steps(graph, selection: Sequence[dg.AssetKey] | None = None, keys: Sequence[str] | None = None) -> dict:
    """The progress lines' ``steps`` of a run of ``graph``: every step's label; in ``order`` the
    steps the run plans (those materializing ``selection``, or the step ``keys`` given)."""
    labels = {k: label for k, (_, label) in _step_phases(graph).items()}
    if keys is None and selection is not None:
        wanted = {(k.path[1], any(o.partitioned and o.name == k.path[-1] for o in graph.phases[k.path[1]].outputs))
                  for k in selection if len(k.path) == 3 and k.path[1] in graph.phases}
        keys = [f"{graph.workflow_id}__{p}__partitions" if parted else f"{graph.workflow_id}__{p}"
                for p, parted in wanted]
    order = [k for k in labels if keys is None or k in set(keys)]
    return {"labels": labels, "order": order}


def _selects_partitioned(graph, selection: Sequence[dg.AssetKey] | None) -> bool:
    """Whether the run materializes a partitioned output (walk-forward folds): all of them do
    when ``selection`` is None."""
    parted = {dg.AssetKey(list(graph.asset_key(o))) for o in graph.assets() if o.partitioned}
    return bool(parted) and (selection is None or bool(parted & set(selection)))


#: tags of a failed run that its re-execution keeps (the rest is Dagster's or per process)
_KEPT_TAGS = ("admf/workflow", "admf/workflow_file", "dagster/max_runtime", RANGE_START, RANGE_END)


def reexecute(parent: dg.DagsterRun, instance: dg.DagsterInstance, executor: str | None = None,
              log_level: str = "WARNING", workflow: Any = None) -> WorkflowOutcome:
    """Re-execute a failed run from failure (Dagster's ``ReexecutionOptions.from_failure``): a new
    run with ``parent`` as its parent, running only the steps that did not succeed.  The job is
    rebuilt from the code as it is now: the parent's workflow file (``workflow``: its graph, when
    the caller has loaded it), the market-data job, or the implicit asset job."""
    graph = _graph(workflow) if workflow is not None else None
    kind = _kind(executor, getattr(graph, "executor", None))
    from admf_assets.workers import launch_settings

    if parent.job_name == "market_data":
        rebuild = ("market_job", (kind, launch_settings()))
    elif parent.job_name == ASSET_JOB:
        rebuild = (ASSET_JOB, ())
    else:
        path = graph.path if graph is not None else parent.tags.get("admf/workflow_file")
        if path is None:
            raise ValueError(f"run {parent.run_id} has no workflow file to rebuild its job from")
        rebuild = ("workflow_job", (str(path), kind, launch_settings(path)))
    tags = {k: parent.tags[k] for k in _KEPT_TAGS if k in parent.tags}
    # the tags the UI's own "Re-execute from failure" sets (run lists group re-executions by them)
    tags.update({"dagster/parent_run_id": parent.run_id,
                 "dagster/root_run_id": parent.root_run_id or parent.run_id,
                 "dagster/is_resume_retry": "true"})
    steps = None
    if graph is not None:  # the progress lines count the steps that did not succeed
        steps = _steps(graph, keys=list(dg.ReexecutionOptions.from_failure(parent.run_id, instance).step_selection))
    t0 = time.perf_counter()
    run_id, success, events, failures = _launch(None, rebuild, instance, tags, kind, log_level, parent=parent,
                                                steps=steps)
    return _outcome(graph, run_id, success, events, failures, time.perf_counter() - t0, steps)


def _outcome(graph, run_id: str, success: bool, events: list, failures: list[str], run_seconds: float,
             steps: dict | None = None) -> WorkflowOutcome:
    """The outcome of a run of ``graph`` (None: a run of no one workflow); ``steps``: those it
    planned (default: every step of the workflow)."""
    report_path, n = None, 0
    for ev in events:
        if ev.event_type_value != "ASSET_MATERIALIZATION":
            continue
        n += 1
        mat = ev.event_specific_data.materialization
        if "report_path" in mat.metadata:
            report_path = mat.metadata["report_path"].value
    if graph is None:
        return WorkflowOutcome(run_id, success, failures, report_path, _compute_seconds(events), run_seconds, n)
    planned = (steps or _steps(graph))["order"]
    phase_of = {k: p for k, (p, _) in _step_phases(graph).items()}
    started = {ev.step_key for ev in events if ev.event_type_value == "STEP_START"}
    failed_steps = {ev.step_key for ev in events if ev.event_type_value == "STEP_FAILURE"}
    failed = list(dict.fromkeys(phase_of[k] for k in planned if k in failed_steps))
    skipped = list(dict.fromkeys(phase_of[k] for k in planned if k not in started and phase_of[k] not in failed))
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


def _partition_runs(compiled, selection=None) -> tuple[list[tuple[dict, list | None]], tuple[str, str, int] | None]:
    """(tags, asset selection) of each run of a workflow with outputs partitioned by market day
    (a ledger): the runs that book the days not booked yet (each with the rest of the workflow),
    or the rest alone when every day is booked; ``selection`` (``--phase``...) narrows the rest."""
    from admf_assets import automation

    planned = automation.plan_runs(compiled)
    if not planned:
        rest = automation.whole_phase_keys(compiled.graph)
        if selection is not None:
            rest = [k for k in rest if k in set(selection)]
        return [({}, rest)], None
    runs = [(r.tags, list(r.selection) if r.selection is not None else None) for r in planned]
    return runs, (min(r.first for r in planned), max(r.last for r in planned), max(r.days for r in planned))


def _compute_seconds(events) -> float:
    """Sum of the phases' own compute time (each phase reports it on every output)."""
    per_step: dict[str, float] = {}
    for ev in events:
        if ev.event_type_value == "ASSET_MATERIALIZATION":
            md = ev.event_specific_data.materialization.metadata
            if "compute_seconds" in md:
                per_step[ev.step_key] = float(md["compute_seconds"].value)
    return sum(per_step.values())
