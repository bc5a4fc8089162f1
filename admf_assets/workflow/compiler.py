"""Workflow graph -> Dagster: one multi-asset per phase, one asset per output, one job.

| YAML                         | Dagster                                                       |
| ---------------------------- | ------------------------------------------------------------- |
| workflow id                  | asset-key prefix, asset group, job name                       |
| phase output                 | asset ``[workflow, phase, output]`` (Parquet + DuckDB view)   |
| inputs / depends_on          | ``AssetIn`` (loaded values) / ``deps`` (lineage, ordering)    |
| retries, delay, backoff      | ``RetryPolicy`` (user errors are not retried)                 |
| timeout                      | enforced in the step, retried under the retry policy          |
| execution.timeout            | the job's ``dagster/max_runtime``, also enforced in each step |
|                              | (default: when every phase has a timeout, their sum x attempts) |
| pool / resource class        | asset ``pool`` (concurrency pools)                            |
| success_criteria             | asset checks; blocking when the phase is ``critical``         |
| on_failure: continue_with_warning | the step fails, dependents skip, independent phases run |
| enabled: "<condition>"       | outputs optional: false -> not run, an observation records why |
| executor / max_concurrent    | the job's executor                                            |
| kind + effective config      | ``code_version``, chained through the upstream phases' ones   |
| output content               | ``DataVersion`` (a hash): identical results leave dependents fresh |
| market data read             | an observable ``market_snapshot`` asset (see snapshots.py)    |
| partitioned outputs          | ``partitions(config)``: market days -> a daily (weekday)      |
|                              | partitioned multi-asset (a backfill of many days is one run); |
|                              | static keys (walk-forward folds) -> a static one. The other   |
|                              | outputs are a second multi-asset that reads them all          |
| a kind's own checks          | asset checks (``checks(config)``), blocking as it declares    |
| workflow schedule / events   | a schedule / a sensor on the market data (automation.py)      |

The compiler knows phase kinds only through their protocol (``node.kind``): storage of each
output, the assets outside the workflow a kind reads, ``run``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

import admf_assets
from admf_assets import executors, settings, snapshots, timeouts
from admf_assets.automation import workflow_schedules, workflow_sensors
from admf_assets.lineage import lineage_rows
from admf_assets.pipes import launcher
from admf_assets.phases import expressions
from admf_assets.progress import Throttle, progress_message
from admf_assets.phases.kind import FilePath, Image, Link, MarketDays, Markdown, PhaseError, describe_partitions
from admf_assets.versions import content_version

from . import ids
from .context import phase_context
from .errors import WorkflowError
from .graph import PhaseNode, WorkflowGraph
from .loader import load_workflow
from .profile import PhaseProfile

#: schemas of the DuckDB catalog the project writes itself, and the catalog's own name
#: (research.duckdb: a schema of that name makes every view ambiguous)
RESERVED_IDS = {"market", "market_data", "monitoring", "research"}
# data versions on outputs (Dagster's content-based versioning) are labelled beta
warnings.filterwarnings("ignore", message=".*data_version.*", category=dg.BetaWarning)

#: metadata of a phase's failure: True when the phase is optional (on_failure: continue_with_warning)
OPTIONAL_FAILURE = "admf/optional_phase"
_BACKOFF = {"exponential": dg.Backoff.EXPONENTIAL, "linear": dg.Backoff.LINEAR}
_JITTER = {"full": dg.Jitter.FULL, "plus_minus": dg.Jitter.PLUS_MINUS}
_IO_MANAGER = {"table": "io_manager", "array": "array_io_manager"}
PREVIEW_ROWS = 20
SIGNIFICANT_DIGITS = 6  #: metadata floats are rounded to this (stored tables keep every digit)


@dataclass
class CompiledWorkflow:
    graph: WorkflowGraph
    assets: list[dg.AssetsDefinition]
    job: dg.UnresolvedAssetJobDefinition
    schedules: tuple = ()  #: the workflow's schedule (``workflow.schedule``)
    sensors: tuple = ()  #: its market-data sensor (``workflow.run_on_new_market_data``)
    partitions_def: dg.PartitionsDefinition | None = None  #: of its partitioned assets
    #: the market data each market-reading phase reads, and its observable source assets
    snapshots: list = None  # type: ignore[assignment]
    sources: list = None  # type: ignore[assignment]
    #: the run settings UI-launched runs of these assets get (executors.RunSettings)
    run_settings: Any = None

    def asset_key(self, phase: str, output: str) -> dg.AssetKey:
        return dg.AssetKey([self.graph.workflow_id, phase, output])


def _key(graph: WorkflowGraph, phase: str, output: str) -> dg.AssetKey:
    return dg.AssetKey([graph.workflow_id, phase, output])


def _ident(key: dg.AssetKey) -> str:
    return key.to_python_identifier()


def code_version(node: PhaseNode, upstream: dict[str, str] | None = None) -> str:
    """Kind, kind version, effective config and the platform version, plus the code versions of
    the upstream phases (``upstream``: phase -> code version): a change marks the phase and
    everything downstream of it unsynced (Dagster's own stale status is not transitive)."""
    blob = json.dumps({"kind": node.type, "kind_version": node.kind.version, "config": node.config,
                       "admf": admf_assets.__version__, "upstream": dict(sorted((upstream or {}).items()))},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def code_versions(graph: WorkflowGraph) -> dict[str, str]:
    """Every phase's chained code version, in graph order."""
    out: dict[str, str] = {}
    for name in graph.order:
        node = graph.phases[name]
        out[name] = code_version(node, {u: out[u] for u in node.upstream_phases})
    return out


def _retry_policy(node: PhaseNode) -> dg.RetryPolicy | None:
    r = node.retries
    if r is None or r.count <= 0:
        return None
    return dg.RetryPolicy(max_retries=r.count, delay=r.delay or None,
                          backoff=_BACKOFF.get(r.backoff), jitter=_JITTER.get(r.jitter or ""))


def _check_name(metric: str, bound: str) -> str:
    return f"{metric}_{bound}"


# ------------------------------------------------------------------ metadata
def round_sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits (0.123456789 -> 0.123457)."""
    return float(f"{x:.{digits}g}") if math.isfinite(x) and x != 0 else x


def _json_safe(value: Any) -> Any:
    """Floats rounded, NaN/inf as null/strings, numpy scalars as Python (for JSON metadata)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return None if math.isnan(x) else (str(x) if math.isinf(x) else round_sig(x))
    return json.loads(json.dumps(value, default=str))


def to_metadata(value: Any) -> dg.MetadataValue | None:
    """A kind's plain metadata value as Dagster metadata (DataFrames become previews).

    Floats are rounded to :data:`SIGNIFICANT_DIGITS` significant digits (the stored tables
    keep the exact values); NaN gives None (the entry is left out); +-inf is text;
    :class:`Image` becomes Markdown with an inline PNG, which the UI draws."""
    if value is None:
        return None
    if isinstance(value, dg.MetadataValue):
        return value
    if isinstance(value, (bool, np.bool_)):
        return dg.MetadataValue.bool(bool(value))
    if isinstance(value, (int, np.integer)):
        return dg.MetadataValue.int(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isnan(x):
            return None
        return dg.MetadataValue.float(round_sig(x)) if math.isfinite(x) else dg.MetadataValue.text(str(x))
    if isinstance(value, pd.DataFrame):
        if value.empty:
            return dg.MetadataValue.md("_no rows_")
        return dg.MetadataValue.md(value.head(PREVIEW_ROWS).to_markdown(index=False, floatfmt=".4f"))
    if isinstance(value, Image):
        data = base64.b64encode(value.png()).decode("ascii")
        alt = value.alt.replace("[", "(").replace("]", ")")
        return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(value.text)
    if isinstance(value, FilePath):
        return dg.MetadataValue.path(value.path)
    if isinstance(value, Link):
        return dg.MetadataValue.url(value.url)
    if isinstance(value, (dict, list, tuple)):
        return dg.MetadataValue.json(_json_safe(value))
    return dg.MetadataValue.text(str(value))


def _metadata(values: dict) -> dict:
    out = {}
    for k, v in values.items():
        m = to_metadata(v)
        if m is not None:
            out[k] = m
    return out


# ------------------------------------------------------------------ partitions
WEEKENDS = ["0 0 * * 6", "0 0 * * 0"]  #: the market calendar's exclusions (admf_assets.market)


def partitions_def(parts: Any) -> dg.PartitionsDefinition | None:
    """A kind's ``partitions(config)`` as a Dagster partitions definition: market days are the
    market data's weekday calendar from their start (to their end, inclusive); static keys (the
    folds of a walk-forward) a static definition."""
    if parts is None:
        return None
    if isinstance(parts, tuple):
        return dg.StaticPartitionsDefinition(list(parts))
    if isinstance(parts, MarketDays):
        end = pd.Timestamp(parts.end) + pd.Timedelta(days=1) if parts.end is not None else None
        return dg.DailyPartitionsDefinition(start_date=str(parts.start), end_date=str(end.date()) if end is not None
                                            else None, exclusions=WEEKENDS)
    raise TypeError(f"unsupported partitions {parts!r}")


def _partition_keys(context) -> tuple[str, ...]:
    return tuple(context.partition_keys) if context.has_partition_key_range or context.has_partition_key else ()


def _undefined(metrics: dict) -> str | None:
    """The metrics a phase could not define (NaN): named once instead of shown as 'nan'."""
    names = [k for k, v in metrics.items() if isinstance(v, (float, np.floating)) and math.isnan(v)]
    return (", ".join(names) + ": not defined for this phase's returns or positions (NaN), "
            "so left out of the metric/ entries") if names else None


# ------------------------------------------------------------------ assets
def _out(graph: WorkflowGraph, node: PhaseNode, o, optional: bool, version: str, extra: dict | None = None) -> dg.AssetOut:
    wf = graph.workflow_id
    return dg.AssetOut(
        key=_key(graph, node.name, o.name),
        group_name=wf,
        description=(o.description or o.canonical) + f" ({node.type} phase '{node.name}' of workflow {wf})",
        is_required=not optional,
        code_version=version,
        io_manager_key=_IO_MANAGER[o.storage],
        kinds={"pandas", "parquet"},
        metadata={"phase": node.name, "phase_type": node.type,
                  "effective_config": dg.MetadataValue.json(dict(node.config)), **(extra or {})},
    )


def _phase_assets(graph: WorkflowGraph, node: PhaseNode, version: str, limit: float | None,
                  snapshot: dg.AssetKey | None) -> list[dg.AssetsDefinition]:
    """The phase's multi-asset; a phase with partitioned outputs gets a second, partitioned one
    for them (one partition per key, a backfill of several keys is one run), which the
    whole-phase outputs read in full."""
    wf = graph.workflow_id
    optional = node.optional
    ins, deps = {}, set()
    for e in node.upstream:
        key = _key(graph, e.upstream_phase, e.upstream_output)
        deps.add(key)
        up = graph.phases[e.upstream_phase]
        growing = isinstance(up.partitions, MarketDays) and node.partitions is None and \
            any(o.name == e.upstream_output and o.partitioned for o in up.outputs)
        # loaded: the report and lineage use every upstream value; of an output partitioned by
        # market day (a ledger that grows every day) a whole-phase asset reads the days stored so far
        ins[_ident(key)] = dg.AssetIn(key, metadata={"allow_missing_partitions": True} if growing else None)
    deps.update(dg.AssetKey(list(k)) for k in node.kind.reads_assets)
    if snapshot is not None:
        deps.add(snapshot)
    deps = sorted(deps - {i.key for i in ins.values()}, key=str) or None
    tags = {"admf/phase_type": node.type}
    if node.timeout_seconds:
        tags["admf/timeout_seconds"] = str(int(node.timeout_seconds))
    common = dict(retry_policy=_retry_policy(node), pool=node.pool, op_tags=tags, required_resource_keys={"storage"},
                  can_subset=optional)  # makes the check outputs optional too (Dagster ties them to subsetting)
    parted = [o for o in node.outputs if o.partitioned]
    whole = [o for o in node.outputs if not o.partitioned]
    primary = _key(graph, node.name, (whole or node.outputs)[0].name)
    check_specs = []
    for metric, crit in node.success_criteria.items():
        for bound in ("min", "max"):
            if getattr(crit, bound) is not None:
                check_specs.append(dg.AssetCheckSpec(
                    _check_name(metric, bound), asset=primary, blocking=node.critical,
                    description=f"success criterion of phase '{node.name}': {crit.describe(metric)}",
                ))
    for chk in node.checks:
        check_specs.append(dg.AssetCheckSpec(chk.name, asset=primary, blocking=chk.blocking,
                                             description=f"{node.type} phase '{node.name}': {chk.description}"))
    out: list[dg.AssetsDefinition] = []
    if parted:
        extra = {"partition_expr": node.kind.partition_column}

        @dg.multi_asset(
            name=f"{wf}__{node.name}__partitions" if whole else f"{wf}__{node.name}",
            outs={_ident(_key(graph, node.name, o.name)): _out(graph, node, o, optional, version, extra)
                  for o in parted},
            ins=ins,
            deps=deps,
            partitions_def=partitions_def(node.partitions),
            backfill_policy=dg.BackfillPolicy.single_run(),
            check_specs=(check_specs or None) if not whole else None,
            description=f"{node.type} phase '{node.name}' of workflow {graph.name}: one partition per "
                        f"{node.kind.partition_column} ({describe_partitions(node.partitions)})",
            **common,
        )
        def _partitions(context, **loaded):
            yield from _execute(context, graph, node, loaded, primary, [] if whole else check_specs, parted,
                                limit, version)

        out.append(_partitions)
    if whole:
        own = {_ident(_key(graph, node.name, o.name)): dg.AssetIn(_key(graph, node.name, o.name)) for o in parted}

        @dg.multi_asset(
            name=f"{wf}__{node.name}",
            outs={_ident(_key(graph, node.name, o.name)): _out(graph, node, o, optional, version) for o in whole},
            ins={**ins, **own},
            deps=deps,
            check_specs=check_specs or None,
            description=node.description or f"{node.type} phase '{node.name}' of workflow {graph.name}",
            **common,
        )
        def _phase(context, **loaded):
            yield from _execute(context, graph, node, loaded, primary, check_specs, whole, limit, version)

        out.append(_phase)
    return out


def _execute(context, graph: WorkflowGraph, node: PhaseNode, loaded: dict, primary, check_specs, outputs,
             limit: float | None = None, version: str | None = None):
    values = {e.upstream_ref: loaded.get(_ident(_key(graph, e.upstream_phase, e.upstream_output)))
              for e in node.upstream}
    ctx = phase_context(graph, node, values, store=context.resources.storage.store(),
                        reports_dir=settings.reports_dir(), run_id=context.run_id, log=context.log,
                        lineage=lambda: _lineage(context, graph, node), partition_keys=_partition_keys(context),
                        launch=launcher(context, graph, node),
                        progress=Throttle(lambda done, total, unit: context.log.info(
                            progress_message(done, total, unit))))
    where = f"{graph.source or graph.workflow_id}: phase '{node.name}'"
    try:  # runs launched from the UI too: never write over another file's workflow id
        ids.claim(graph.workflow_id, graph.path, settings.storage_root(), graph.source)
    except WorkflowError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    gate: dict = {}
    if node.condition is not None:
        gate = _gate(graph, node, values, where)
        if not gate["condition_value"]:
            context.log.info(f"{where}: skipped, its condition is false: {node.condition} "
                             f"({', '.join(f'{k[4:]} = {v}' for k, v in gate.items() if k.startswith('ref '))})")
            for o in outputs:
                context.log_event(dg.AssetObservation(asset_key=_key(graph, node.name, o.name),
                                                      metadata=_metadata({**gate, "skipped": True}),
                                                      tags=_skip_tags(version)))
            return
    partitioned = outputs[0].partitioned
    # metrics go on the first whole-phase output (or the first partitioned one, when the phase has only those)
    reports_metrics = not partitioned or all(o.partitioned for o in node.outputs)
    if not partitioned and any(o.partitioned for o in node.outputs):
        from dataclasses import replace

        ctx = replace(ctx, partitioned={o.canonical: loaded[_ident(_key(graph, node.name, o.name))]
                                        for o in node.outputs if o.partitioned})
    try:
        with PhaseProfile() as prof:
            run = (lambda: node.kind.run_partitions(ctx)) if partitioned else (lambda: node.kind.run(ctx))
            result = _run_with_limits(context, graph, node, run, limit)
    except PhaseError as exc:
        # the step fails either way (the UI shows it red, its dependents are skipped); with
        # continue_with_warning the phases that do not depend on it still run, and the run's
        # outcome says "finished with failed optional phases" (admf exit status 3)
        optional = node.on_failure == "continue_with_warning"
        raise dg.Failure(description=f"{where}: {exc}", allow_retries=False,
                         metadata={OPTIONAL_FAILURE: optional}) from None
    measured = _metadata(prof.metadata())
    produced = [o for o in outputs if o.canonical in result.outputs]
    for o in outputs:
        if o.canonical not in result.outputs:
            if not node.optional:
                raise dg.Failure(description=f"{where}: produced no '{o.name}'", allow_retries=False)
            context.log.info(f"{where}: '{o.name}' not produced this run; its dependents skip")
            context.log_event(dg.AssetObservation(asset_key=_key(graph, node.name, o.name),
                                                  metadata=_metadata({**result.metadata.get(o.canonical, {}),
                                                                      "skipped": True}),
                                                  tags=_skip_tags(version)))
            continue
        if node.optional and _ident(_key(graph, node.name, o.name)) not in context.selected_output_names:
            continue  # a subset run (only optional phases can be subset)
        value = result.outputs[o.canonical]
        meta = _metadata({**gate, **result.metadata.get(o.canonical, {})})
        meta.update(measured)
        if o is produced[0] and reports_metrics:
            meta.update({f"metric/{k}": v for k, v in _metadata(result.metrics).items()})
            undefined = _undefined(result.metrics)
            if undefined:
                meta["metrics_undefined"] = dg.MetadataValue.text(undefined)
        yield dg.Output(value, output_name=_ident(_key(graph, node.name, o.name)), metadata=meta,
                        data_version=dg.DataVersion(content_version(value)))
    if outputs[0] not in produced:
        return  # the checks' asset was not materialized
    own = {c.name: c for c in node.checks}
    for spec in check_specs:
        if node.optional and spec.key not in context.selected_asset_check_keys:
            continue
        if spec.name in own:
            yield _kind_check(node, primary, own[spec.name], result.checks.get(spec.name))
            continue
        metric, bound = spec.name.rsplit("_", 1)
        crit = node.success_criteria[metric]
        value = result.metrics.get(metric)
        passed, reason = crit.evaluate(bound, value, metric)  # this check's own bound only
        yield dg.AssetCheckResult(
            asset_key=primary, check_name=spec.name, passed=bool(passed), description=reason,
            severity=dg.AssetCheckSeverity.ERROR if node.critical else dg.AssetCheckSeverity.WARN,
            metadata={"value": _check_value(value), "criterion": crit.describe(metric)},
        )


def _kind_check(node: PhaseNode, primary, check, outcome) -> dg.AssetCheckResult:
    """The result of a check the kind evaluates itself (a missing outcome fails it)."""
    severity = dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN
    if outcome is None:
        return dg.AssetCheckResult(asset_key=primary, check_name=check.name, passed=False, severity=severity,
                                   metadata={"status": f"phase '{node.name}' did not report this check"})
    return dg.AssetCheckResult(asset_key=primary, check_name=check.name, passed=bool(outcome.passed),
                               severity=severity, metadata=_metadata(dict(outcome.metadata)),
                               description=check.description)


#: tag of a "skipped" observation: the code version it was decided with (staleness.py)
SKIP_CODE_VERSION_TAG = "admf/code_version"


def _skip_tags(version: str | None) -> dict[str, str]:
    return {SKIP_CODE_VERSION_TAG: version} if version else {}


def _run_with_limits(context, graph: WorkflowGraph, node: PhaseNode, run, limit: float | None):
    """``run()`` (the kind's run) within the phase's timeout and what is left of the workflow's
    total limit ``limit`` (counted from the run's start; see timeouts.py)."""
    where = graph.source or graph.workflow_id
    left = None
    if limit:
        record = context.instance.get_run_record_by_id(context.run_id)
        started = record.start_time if record and record.start_time else time.time()
        left = limit - (time.time() - started)
        if left <= 0:
            raise dg.Failure(description=f"{where}: the run exceeded the workflow's total time limit of "
                             f"{timeouts.format_seconds(limit)} s before phase '{node.name}'",
                             allow_retries=False)
    own = node.timeout_seconds
    seconds = min(s for s in (own, left) if s) if (own or left) else None
    try:
        with timeouts.time_limit(seconds):
            return run()
    except timeouts.PhaseTimeout:
        if own and seconds == own:
            raise dg.Failure(description=f"{where}: phase '{node.name}' exceeded its timeout of "
                             f"{timeouts.format_seconds(own)} s", allow_retries=True) from None
        raise dg.Failure(description=f"{where}: phase '{node.name}' was stopped: the run exceeded the "
                         f"workflow's total time limit of {timeouts.format_seconds(limit)} s",
                         allow_retries=False) from None


def _check_value(value: Any) -> Any:
    if value is None:
        return "not reported"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return v if math.isfinite(v) else str(v)


def _gate(graph: WorkflowGraph, node: PhaseNode, values: dict, where: str) -> dict:
    """Evaluate ``enabled: "<condition>"`` on the loaded upstream values -> its metadata."""
    expr = expressions.parse(node.condition)
    try:
        refs = expressions.reference_values(expr, lambda r: values[graph.declared_ref(r.phase, r.output)])
        result = expressions.evaluate(expr, refs)
    except expressions.ExpressionError as exc:
        raise dg.Failure(description=f"{where}: field 'enabled': {exc}", allow_retries=False) from None
    return expressions.condition_metadata(expr, refs, result)


def _lineage(context, graph: WorkflowGraph, node: PhaseNode) -> list[dict]:
    """Latest materialization of every other asset of the workflow and of the shared assets
    its phases read (for the report): time, run, code and data version, execution time and
    peak memory of the phase (``lineage.lineage_rows``)."""
    assets = [(name, _key(graph, name, o.name), False) for name in graph.order if name != node.name
              for o in graph.phases[name].outputs]
    readers: dict[tuple, list[str]] = {}
    for n in graph.order:
        for k in graph.phases[n].kind.reads_assets:
            readers.setdefault(tuple(k), []).append(n)
    assets += [(f"shared, read by {', '.join(names)}", dg.AssetKey(list(k)), True) for k, names in readers.items()]
    return lineage_rows(context.instance, assets)


# ------------------------------------------------------------------ workflows
def compile_graph(graph: WorkflowGraph, executor: str | None = None) -> CompiledWorkflow:
    """``executor`` overrides the workflow's own choice (``in_process`` / ``multiprocess``)."""
    if graph.workflow_id in RESERVED_IDS:
        raise WorkflowError(file=graph.source, field="workflow.id",
                            message=f"'{graph.workflow_id}' is reserved; choose another workflow id")
    versions = code_versions(graph)
    limit = timeouts.total_limit((_Limits(n, _retry_policy(n)) for n in graph.phases.values()),
                                 explicit=graph.timeout_seconds)
    snaps = {s.phase: s for s in snapshots.snapshots_of(graph)}
    assets = [a for name in graph.order
              for a in _phase_assets(graph, graph.phases[name], versions[name], limit,
                                     snaps[name].key if name in snaps else None)]
    tags = {"admf/workflow": graph.workflow_id}
    if limit:
        tags["dagster/max_runtime"] = str(math.ceil(limit))
    settings_ = executors.RunSettings(executor or graph.executor, graph.max_concurrent, tags)
    # market days partition the job itself (a schedule tick or a new market day requests its
    # partition); static keys (folds) do not: every run materializes all of them (runner tags)
    parts = partitions_def(graph.partitions) if isinstance(graph.partitions, MarketDays) else None
    job = dg.define_asset_job(
        graph.workflow_id,
        selection=dg.AssetSelection.groups(graph.workflow_id),
        executor_def=executors.admf_executor(settings_),
        tags=tags,
        partitions_def=parts,
        description=f"{graph.name}: {graph.description}".strip(": "),
    )
    compiled = CompiledWorkflow(graph=graph, assets=assets, job=job, partitions_def=parts,
                                snapshots=list(snaps.values()),
                                sources=[snapshots.snapshot_asset(s) for s in snaps.values()], run_settings=settings_)
    compiled.schedules = workflow_schedules(compiled)
    compiled.sensors = workflow_sensors(compiled)
    return compiled


@dataclass(frozen=True)
class _Limits:
    node: PhaseNode
    retry_policy: dg.RetryPolicy | None

    @property
    def timeout_seconds(self) -> float | None:
        return self.node.timeout_seconds


def compile_workflow(path_or_name, workflows_dir=None, executor: str | None = None) -> CompiledWorkflow:
    return compile_graph(load_workflow(path_or_name, workflows_dir).graph, executor)


def compile_all(directory: str | os.PathLike | None = None) -> list[CompiledWorkflow]:
    """Every ``*.yaml`` in the workflows folder (templates/ excluded); the first broken file
    raises its one-line WorkflowError, which makes the code location fail with that message."""
    d = Path(directory) if directory else settings.workflows_dir()
    if not d.is_dir():
        return []
    out, seen = [], {}
    for path in sorted(d.glob("*.y*ml")):
        compiled = compile_workflow(str(path), d)
        wid = compiled.graph.workflow_id
        if wid.lower() in seen:  # ids are schema names: case does not tell them apart
            raise WorkflowError(file=str(path), field="workflow.id",
                                message=f"workflow id '{wid}' is also used by {seen[wid.lower()]}")
        seen[wid.lower()] = str(path)
        out.append(compiled)
    return out
