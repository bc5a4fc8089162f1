"""What ``admf run`` materializes: the stale phases, as Dagster's own stale status says.

The status of every asset comes from Dagster's ``CachingStaleStatusResolver``, the same one
behind the UI's "Unsynced" labels and "Materialize unsynced".  An asset is stale when

* it was never materialized (MISSING);
* its code version changed: kind, kind version, effective config, platform version, chained
  through the upstream phases' code versions, so a config change makes the phase and all of its
  downstream unsynced at once (compiler.code_version);
* the data version of an input changed: every output's data version is a hash of its content,
  so a phase recomputed with identical results leaves its downstream fresh; the market data a
  phase reads is the observable ``market_snapshot`` asset (snapshots.py).

``admf run WF`` runs in waves: one run of the stale phases whose inputs can no longer change
(a stale phase waits while a phase between it and another stale phase may still get new
data).  Then the statuses are resolved again; a wave that produced new data makes its
dependents stale and they run next, one that reproduced the same data ends it.  A config edit
is one wave; re-ingested market data is two (the data phase, then whatever its new bars change).

``--phase P`` and ``--from P`` select phases explicitly; their upstream assets must have been
materialized (they are read from storage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import dagster as dg
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
from dagster._core.definitions.data_version import (
    CachingStaleStatusResolver,
    StaleCauseCategory,
    StaleStatus,
)
from dagster._core.definitions.temporal_context import TemporalContext
from dagster._time import get_current_datetime

from admf_assets import runner, snapshots
from admf_assets.suggest import suggest

__all__ = ["PhaseStatus", "Planner", "SelectionError", "next_wave", "downstream_of"]


class SelectionError(ValueError):
    """A ``--phase`` / ``--from`` that cannot run (one line for the user)."""


@dataclass(frozen=True)
class PhaseStatus:
    phase: str
    state: str  #: fresh | stale | missing | skipped (an upstream phase produced nothing)
    reason: str = ""
    #: outputs its last run did not produce ("skipped" observations: a false condition, a branch
    #: not taken)
    skipped_outputs: frozenset = frozenset()

    @property
    def to_run(self) -> bool:
        return self.state in ("stale", "missing")


def status_resolver(instance: dg.DagsterInstance, asset_graph) -> CachingStaleStatusResolver:
    """Dagster's stale-status resolver over ``asset_graph`` as the instance is now."""
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=asset_graph)
    return CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)


def downstream_of(graph, phases: Iterable[str]) -> set[str]:
    """``phases`` and every phase downstream of them."""
    out = set(phases)
    for name in graph.order:  # topological: upstreams come first
        if out & set(graph.phases[name].upstream_phases):
            out.add(name)
    return out


def upstream_of(graph, phase: str) -> set[str]:
    """Every phase ``phase`` depends on, directly or not."""
    out: set[str] = set()
    todo = list(graph.phases[phase].upstream_phases)
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(graph.phases[p].upstream_phases)
    return out


def next_wave(graph, stale: set[str]) -> list[str]:
    """The stale phases to run now, in graph order: those with no phase upstream of them that is
    fresh now but downstream of a stale one (its data may still change, so they wait for it)."""
    pending = downstream_of(graph, stale) - stale
    return [p for p in graph.order if p in stale and not (upstream_of(graph, p) & pending)]


@dataclass
class Planner:
    """Statuses, selections and runs of one workflow (its resolved graph) in one instance."""

    graph: object
    instance: dg.DagsterInstance
    executor: str | None = None
    cli_name: str | None = None  #: the workflow as the user named it (in suggested commands)
    _compiled: object = field(default=None, init=False, repr=False)
    _defs: object = field(default=None, init=False, repr=False)
    _asset_graph: object = field(default=None, init=False, repr=False)
    _last: dict | None = field(default=None, init=False, repr=False)  #: the statuses last resolved

    # ------------------------------------------------------------------ definitions
    def _load(self):
        """Compile the workflow and build its Definitions once (statuses and runs share them)."""
        if self._compiled is None:
            kind = runner._kind(self.executor, self.graph.executor)
            self._defs, self._compiled = runner.workflow_defs(self.graph, kind)
            self._asset_graph = self._defs.resolve_asset_graph()
        return self._compiled

    @property
    def compiled(self):
        return self._load()

    def keys(self, phases: Iterable[str]) -> list[dg.AssetKey]:
        c = self.compiled
        return [c.asset_key(p, o.name) for p in phases for o in self.graph.phases[p].outputs]

    # ------------------------------------------------------------------ market data
    def reads_market(self, phases: Iterable[str] | None = None) -> bool:
        wanted = set(self.graph.order if phases is None else phases)
        return any(s.phase in wanted for s in self.compiled.snapshots)

    def observe_market(self, store=None) -> list[dg.AssetKey]:
        """Record the current version of the market data each phase reads (when it changed)."""
        return snapshots.observe(self.instance, self.compiled.snapshots, store or _store())

    # ------------------------------------------------------------------ statuses
    def statuses(self) -> dict[str, PhaseStatus]:
        """Every phase's status: missing or stale when any of its outputs is."""
        self._load()
        resolver = status_resolver(self.instance, self._asset_graph)
        snaps = {s.key for s in self.compiled.snapshots}
        queryer = resolver.instance_queryer
        # one query for every asset record instead of one per asset
        queryer.prefetch_asset_records([*self.keys(self.graph.order), *snaps, *self._asset_graph.get_all_asset_keys()])
        out = {}
        for name in self.graph.order:
            state, reason = "fresh", ""
            keys = self.keys([name])
            skips = [_skip_record(self.instance, queryer, k) for k in keys]
            for key, skip in zip(keys, skips):
                if skip is not None:  # Dagster sees no provenance in a skip: its code version and times
                    st, why = self._skip_status(queryer, key, skip)
                else:
                    st, why = self._resolved(resolver, key, snaps)
                if st != "fresh":
                    state, reason = st, why
                    break
            skipped = frozenset(o.name for o, skip in zip(self.graph.phases[name].outputs, skips) if skip is not None)
            out[name] = PhaseStatus(name, state, reason, skipped_outputs=skipped)
        self._last = _explain_chained(self.graph, _skip_below_skipped(self.graph, out))
        return self._last

    def _resolved(self, resolver, key: dg.AssetKey, snaps) -> tuple[str, str]:
        """Dagster's status of an output; a partitioned one (walk-forward folds: static
        partitions) is missing or stale when any of its partitions is (Dagster calls a
        partitioned asset asked about without a partition fresh)."""
        asset = self._asset_graph.get(key)
        parts = asset.partitions_def.get_partition_keys() if asset.is_partitioned else [None]
        for pk in parts:
            status = resolver.get_status(key, pk)
            if status == StaleStatus.MISSING:
                return "missing", "never materialized" if pk is None else f"partition {pk} never materialized"
            if status == StaleStatus.STALE:
                return "stale", _reason(resolver.get_stale_causes(key, pk), snaps)
        return "fresh", ""

    def _skip_status(self, queryer, key: dg.AssetKey, skip) -> tuple[str, str]:
        """An output its phase's last run did not produce (a false condition, the branch not
        taken): fresh while the code version is the one it was decided with and nothing upstream
        has a newer event."""
        from admf_assets.workflow.compiler import SKIP_CODE_VERSION_TAG

        tags = skip.event_log_entry.asset_observation.tags or {}
        if tags.get(SKIP_CODE_VERSION_TAG) != self._asset_graph.get(key).code_version:
            return "stale", "config changed"
        for parent in sorted(self._asset_graph.get(key).parent_keys, key=str):
            if self._asset_graph.get(parent).is_partitioned:
                continue  # market partitions: their snapshot is the dependency that counts
            if _latest_id(self.instance, queryer, parent) > skip.storage_id:
                return "stale", f"new data in {'.'.join(parent.path[-2:])}"
        return "fresh", ""

    def up_to_date_line(self) -> str:
        """``workflow wf: 10 assets up to date`` (and which of them no run made: outputs a false condition
        or a branch not taken left out, and the phases waiting for them), from the statuses last
        resolved."""
        statuses = self._last if self._last is not None else self.statuses()
        own = [p for p, s in statuses.items() if s.state == "fresh" and s.skipped_outputs]
        waiting = [p for p, s in statuses.items() if s.state == "skipped"]
        n = len(self.graph.assets())
        line = f"workflow {self.graph.workflow_id}: {n} assets up to date"
        if own or waiting:
            held = sum(len(statuses[p].skipped_outputs) for p in own) + \
                sum(len(self.graph.phases[p].outputs) for p in waiting)
            line += f" ({held} not made: a false condition or a branch not taken in {', '.join(own)}"
            if waiting:
                line += f"; {', '.join(waiting)} {'waits' if len(waiting) == 1 else 'wait'} for it"
            line += ")"
        return line

    def stale(self) -> dict[str, PhaseStatus]:
        """The phases to materialize: stale or never materialized (not those below a phase whose
        last run produced nothing, e.g. its condition was false)."""
        return {p: s for p, s in self.statuses().items() if s.to_run}

    # ------------------------------------------------------------------ explicit selections
    def select(self, phases: Sequence[str] | None, from_phases: Sequence[str] | None) -> list[str] | None:
        """The phases ``--phase`` / ``--from`` name (``--from P``: P and its downstream), in
        graph order; None when neither is given."""
        if not phases and not from_phases:
            return None
        for name in [*(phases or []), *(from_phases or [])]:
            if name not in self.graph.phases:
                hint = suggest(name, self.graph.order)
                raise SelectionError(f"{self.graph.source}: no phase '{name}' in workflow "
                                     f"{self.graph.workflow_id}{hint} (phases: {', '.join(self.graph.order)})")
        wanted = set(phases or []) | downstream_of(self.graph, from_phases or [])
        return [p for p in self.graph.order if p in wanted]

    def check_inputs(self, selected: Sequence[str]) -> None:
        """Raise :class:`SelectionError` naming the first upstream asset outside ``selected``
        that was never materialized, with the command that produces it."""
        chosen = set(selected)
        statuses = None
        for name in selected:
            for e in self.graph.phases[name].upstream:
                if e.upstream_phase in chosen:
                    continue
                statuses = statuses or self.statuses()
                up = statuses[e.upstream_phase]
                if up.state in ("missing", "skipped") or e.upstream_output in up.skipped_outputs:
                    key = self.compiled.asset_key(e.upstream_phase, e.upstream_output).to_user_string()
                    why = ("has never been materialized" if up.state == "missing" else
                           f"was not produced by the last run of phase '{e.upstream_phase}' (it was skipped)")
                    raise SelectionError(
                        f"{self.graph.source}: phase '{name}' needs {key}, which {why}; "
                        f"produce it with: admf run {self._cli_name()} --phase {e.upstream_phase} "
                        f"(or run the whole workflow: admf run {self._cli_name()})")

    def _cli_name(self) -> str:
        return str(self.cli_name or self.graph.source or self.graph.workflow_id)

    # ------------------------------------------------------------------ running
    def run(self, phases: Sequence[str] | None, log_level: str = "WARNING", tags: dict | None = None):
        """One run of ``phases`` (all assets of the workflow's job when None)."""
        selection = None if phases is None else self.keys(phases)
        self._load()
        return runner.run_workflow(self.graph, self.instance, executor=self.executor, log_level=log_level,
                                   selection=selection, tags=tags, defs=self._defs)

    def run_stale(self, log_level: str = "WARNING", say: Callable[[str], None] = print):
        """Run waves of stale phases until nothing is stale; returns the combined outcome, or
        None when everything was up to date."""
        done: set[str] = set()
        outcomes = []
        for _ in range(len(self.graph.order) + 1):
            stale = self.stale()
            wave = [p for p in next_wave(self.graph, set(stale)) if p not in done]
            if not wave:
                break
            say(_wave_line(self.graph, stale, wave, first=not outcomes))
            out = self.run(wave, log_level, tags={"admf/selection": "stale"})
            outcomes.append(out)
            done.update(wave)
            if not out.success:
                break
        return combine(outcomes) if outcomes else None


# ---------------------------------------------------------------------- helpers for the CLI
def _store():
    from admf_assets import settings
    from resources.storage import TableStore

    return TableStore(settings.storage_root())


def observe_workflows(instance: dg.DagsterInstance, directory=None) -> list[dg.AssetKey]:
    """Record the market snapshots of every workflow in the workflows directory that changed
    (after a backfill: the workflows reading re-ingested dates become unsynced).  Files that do
    not load are skipped here (``admf validate`` reports them)."""
    from admf_assets.workflow.errors import WorkflowError

    snaps = []
    for graph in _workflow_graphs(directory):
        try:
            snaps += snapshots.snapshots_of(graph)
        except WorkflowError:
            continue
    return snapshots.observe(instance, snaps, _store())


def _workflow_graphs(directory=None):
    from admf_assets import settings
    from admf_assets.workflow.errors import WorkflowError
    from admf_assets.workflow.loader import load_workflow

    d = directory or settings.workflows_dir()
    for path in sorted(d.glob("*.y*ml")) if d.is_dir() else []:
        try:
            yield load_workflow(str(path)).graph
        except WorkflowError:
            continue


def find_run(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun | None:
    """The run with this id, or the newest run whose id starts with it."""
    run = instance.get_run_by_id(run_id)
    if run is not None or len(run_id) < 4:
        return run
    for record in instance.get_run_records(limit=2000):
        if record.dagster_run.run_id.startswith(run_id):
            return record.dagster_run
    return None


def workflow_of(run: dg.DagsterRun):
    """The resolved graph of the workflow a run belongs to (None for market-data and mixed
    runs), loaded from the file the run recorded, else found by id in the workflows directory."""
    from admf_assets.workflow.errors import WorkflowError
    from admf_assets.workflow.loader import load_workflow

    wid = run.tags.get("admf/workflow")
    if run.job_name in ("market_data", "__ASSET_JOB") and not wid:
        return None
    path = run.tags.get("admf/workflow_file")
    if path:
        try:
            return load_workflow(path).graph
        except WorkflowError as exc:
            raise ValueError(str(exc)) from None
    wid = wid or run.job_name
    for graph in _workflow_graphs():
        if graph.workflow_id == wid:
            return graph
    raise ValueError(f"run {run.run_id} is a run of workflow '{wid}', which is not in the workflows directory")


def _reason(causes, snapshot_keys: set[dg.AssetKey]) -> str:
    if not causes:
        return "stale"
    c = causes[0]
    if c.category == StaleCauseCategory.CODE:
        return "config changed"
    dep = c.dependency.asset_key if c.dependency is not None else None
    if c.category == StaleCauseCategory.DATA and dep in snapshot_keys:
        return "market data changed"
    if c.category == StaleCauseCategory.DATA and dep is not None:
        return f"new data in {dep.path[-2]}.{dep.path[-1]}" if len(dep.path) >= 3 else f"new data in {dep.to_user_string()}"
    return f"its inputs changed ({c.reason})"


def _latest_observation(instance, queryer, key: dg.AssetKey):
    """The asset's latest observation when it is newer than its latest materialization, else
    None (one query, only when the asset's last run did not end with a materialization)."""
    record = queryer.get_asset_record(key)
    entry = record.asset_entry if record is not None else None
    if entry is None:
        return None
    mat = entry.last_materialization_record
    if mat is not None and entry.last_run_id == mat.run_id:
        return None
    records = instance.fetch_observations(key, limit=1).records
    obs = records[0] if records else None
    return obs if obs is not None and obs.storage_id > (mat.storage_id if mat else 0) else None


def _latest_id(instance, queryer, key: dg.AssetKey) -> int:
    """Storage id of the asset's latest materialization or observation (0: none)."""
    obs = _latest_observation(instance, queryer, key)
    if obs is not None:
        return obs.storage_id
    record = queryer.get_asset_record(key)
    return (record.asset_entry.last_materialization_storage_id or 0) if record is not None else 0


def _skip_record(instance, queryer, key: dg.AssetKey):
    """The asset's latest observation if it says "skipped" (its phase ran and produced no value
    for it) and nothing was materialized since, else None."""
    obs = _latest_observation(instance, queryer, key)
    return obs if obs is not None and "skipped" in obs.event_log_entry.asset_observation.metadata else None


def _skip_below_skipped(graph, statuses: dict[str, PhaseStatus]) -> dict[str, PhaseStatus]:
    """A phase reading an output that a fresh upstream phase did not produce (its condition was
    false, the branch not taken) cannot run: it is 'skipped' until that output is made."""
    out = dict(statuses)
    for name in graph.order:
        if not out[name].to_run:
            continue
        for e in graph.phases[name].upstream:
            u = out[e.upstream_phase]
            if u.state == "skipped" or (u.state == "fresh" and e.upstream_output in u.skipped_outputs):
                out[name] = PhaseStatus(name, "skipped", f"upstream phase '{e.upstream_phase}' produced nothing")
                break
    return out


def _explain_chained(graph, statuses: dict[str, PhaseStatus]) -> dict[str, PhaseStatus]:
    """A phase whose code version changed only because an upstream phase's did says so."""
    changed = {p for p, s in statuses.items() if s.reason == "config changed"}
    out = dict(statuses)
    for p in changed:
        roots = sorted(upstream_of(graph, p) & changed, key=graph.order.index)
        own = [r for r in roots if not (upstream_of(graph, r) & changed)]
        if own:
            out[p] = PhaseStatus(p, "stale", f"upstream config changed ({', '.join(own)})")
    return out


def _wave_line(graph, stale: dict[str, PhaseStatus], wave: list[str], first: bool) -> str:
    """``running workflow wf: 2 of 5 phases (config changed: bt; never materialized: bt2)``, the
    header of each run ``admf run`` starts (later waves: ``2 more phases``)."""
    if first:
        return f"running workflow {graph.workflow_id}: {len(wave)} of {len(graph.order)} phases ({_why(stale, wave)})"
    return f"running workflow {graph.workflow_id}: {len(wave)} more phase{'s' * (len(wave) != 1)} ({_why(stale, wave)})"


def _why(statuses: dict[str, PhaseStatus], phases: list[str]) -> str:
    """The phases grouped by their reason: ``config changed: bt; never materialized: bt2``."""
    by: dict[str, list[str]] = {}
    for p in phases:
        by.setdefault(statuses[p].reason or statuses[p].state, []).append(p)
    return "; ".join(f"{reason}: {', '.join(ps)}" for reason, ps in by.items())


def combine(outcomes: list):
    """One WorkflowOutcome for several runs (the last run's id and report)."""
    last = outcomes[-1]
    report = next((o.report_path for o in reversed(outcomes) if o.report_path), None)
    failures = [f for o in outcomes for f in o.failures]
    return runner.WorkflowOutcome(
        run_id=last.run_id, success=all(o.success for o in outcomes), failures=failures, report_path=report,
        compute_seconds=sum(o.compute_seconds for o in outcomes), run_seconds=sum(o.run_seconds for o in outcomes),
        materialized=sum(o.materialized for o in outcomes),
        failed=[p for o in outcomes for p in o.failed], skipped=[p for o in outcomes for p in o.skipped],
        optional_only=all(o.success or o.optional_only for o in outcomes) and not all(o.success for o in outcomes))
