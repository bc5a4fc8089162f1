"""The resolved workflow DAG: what the compiler turns into Dagster assets.

``build_graph(spec, file, kinds)`` normalises a validated :class:`~.spec.WorkflowSpec`, knowing
the phase kinds only through their protocol (``admf_assets.phases.kind``):

* **implicit phases** -- a kind with ``implicit`` gets a phase when the workflow declares none
  of that kind: ``when="needed"`` if an enabled phase auto-consumes one of its outputs (the
  ``data`` phase, built from the ``data:`` section), ``when="always"`` unless its section says
  ``enabled: false`` (the ``report`` phase, configured by ``reporting:``).  The section's keys
  are the config defaults of every phase of that kind.
* **configs** -- validated by the kind's ``Config`` model, then ``effective_config``
  (defaults applied, normalised, JSON-safe in ``PhaseNode.config``).
* **outputs** -- a phase with no ``outputs`` gets its kind's default outputs; declared names
  are resolved to canonical names through the kind's aliases (``top_10_parameter_sets`` ->
  ``top_parameter_sets`` with ``n = 10``).  Each output is one asset, keyed
  ``(workflow_id, phase, declared_name)``.
* **edges** -- ``inputs: ['p.out']`` is one edge, ``inputs: ['p']`` and ``depends_on: ['p']``
  are edges to every output of ``p``; auto-consumed outputs (market bars) are connected to
  their single enabled provider; a ``consumes_all`` kind depends on everything upstream.
* checks: references, disabled upstreams, required inputs of the kind, ambiguity, cycles
  (printed as ``a -> b -> a``), success-criteria metric names, resource names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Mapping

from pydantic import ValidationError

from admf_assets.phases.expressions import Expression, ExpressionError
from admf_assets.phases.expressions import parse as parse_condition
from admf_assets.phases.kind import ConfigEnv, Consumes, MarketDays, PhaseKind, Registry, WorkflowInfo, \
    describe_partitions

from admf_assets.settings import SettingError

from . import limits
from .errors import ErrorCollector, WorkflowError, pydantic_errors, suggest
from .spec import Criterion, DataSpec, PhaseSpec, RetrySpec, WorkflowSpec

__all__ = [
    "OutputAsset",
    "Edge",
    "PhaseNode",
    "WorkflowGraph",
    "build_graph",
    "DEFAULT_RETRY_COUNT",
]

#: retries used for ``on_failure: retry`` when the phase gives no ``retries``
DEFAULT_RETRY_COUNT = 2

EdgeKind = Literal["input", "depends_on", "implicit", "reference"]


@dataclass(frozen=True)
class OutputAsset:
    """One output of a phase = one asset."""

    phase: str
    name: str  #: as declared in the YAML (or the default name); the asset key's last part
    canonical: str  #: the kind's canonical output name
    params: Mapping[str, Any] = field(default_factory=dict)  #: e.g. {"n": 10} for top_10_...
    description: str = ""
    storage: str = "table"
    partitioned: bool = False  #: one asset partition per key of the phase's ``partitions``

    @property
    def ref(self) -> str:
        return f"{self.phase}.{self.name}"


@dataclass(frozen=True)
class Edge:
    """One upstream asset of a phase."""

    reference: str  #: as written: 'p.out', 'p' (inputs/depends_on) or 'p.out' for implicit edges
    upstream_phase: str
    upstream_output: str  #: the upstream asset's (declared) output name
    canonical: str  #: its canonical output name
    kind: EdgeKind  #: input | depends_on | implicit | reference (read by a condition)
    consumed: bool  #: the phase's kind loads this value (else: ordering / lineage only)

    @property
    def upstream_ref(self) -> str:
        return f"{self.upstream_phase}.{self.upstream_output}"


@dataclass(frozen=True)
class PhaseNode:
    """An enabled phase, resolved."""

    name: str
    type: str  #: canonical kind name (parameter_search, analysis, ...)
    declared_type: str  #: as written in the YAML (optimization, ...)
    description: str
    implicit: bool  #: added by normalisation (data / report)
    config: Mapping[str, Any]  #: effective config: defaults applied, normalised, JSON-safe
    outputs: tuple[OutputAsset, ...]
    upstream: tuple[Edge, ...]
    retries: RetrySpec | None
    timeout_seconds: float | None
    pool: str | None
    max_workers: int | None
    memory_limit_gb: float | None
    critical: bool
    success_criteria: Mapping[str, Criterion]
    on_failure: str  #: abort | continue_with_warning | retry
    kind: PhaseKind = field(repr=False, compare=False, default=None)  # type: ignore[assignment]
    settings: Any = field(repr=False, compare=False, default=None)  #: the kind's typed effective config
    condition: str | None = None  #: ``enabled: "<expression>"``: run only when it is true
    optional: bool = False  #: its outputs may be left out (condition, may_skip, continue_with_warning)
    #: how its partitioned outputs are partitioned (``kind.MarketDays`` or static keys, e.g.
    #: walk-forward folds), or None
    partitions: Any = None
    checks: tuple = ()  #: the kind's own asset checks (``kind.Check``)

    @property
    def upstream_phases(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for e in self.upstream:
            seen.setdefault(e.upstream_phase, None)
        return tuple(seen)

    def output(self, name: str) -> OutputAsset:
        for o in self.outputs:
            if o.name == name or o.canonical == name:
                return o
        raise KeyError(f"phase {self.name!r} has no output {name!r}")

    def inputs_for(self, canonical: str) -> tuple[Edge, ...]:
        return tuple(e for e in self.upstream if e.canonical == canonical)

    def input_for(self, canonical: str) -> Edge | None:
        """The single consumed upstream edge providing ``canonical`` (validation guarantees <= 1)."""
        hits = [e for e in self.upstream if e.canonical == canonical and e.consumed]
        return hits[0] if hits else None


@dataclass(frozen=True)
class WorkflowGraph:
    workflow_id: str  #: asset-key prefix and group name
    name: str
    description: str
    version: str
    source: str | None  #: the file as shown in messages
    phases: Mapping[str, PhaseNode]  #: enabled phases, in topological order
    order: tuple[str, ...]
    disabled: tuple[str, ...]
    data: DataSpec | None
    executor: str  #: in_process | multiprocess | celery
    max_concurrent: int | None
    path: Any = None  #: the absolute path of the file, when loaded from one
    warnings: tuple[str, ...] = ()  #: "ignored" keys found by the kinds, one line each
    schedule: str | None = None  #: cron string: a Dagster schedule for the workflow's job
    timezone: str = "UTC"  #: the schedule's time zone
    run_on_new_market_data: bool = False  #: a sensor runs the job when its market partitions change
    timeout_seconds: float | None = None  #: the workflow's total time limit (execution.timeout)

    @property
    def info(self) -> WorkflowInfo:
        return WorkflowInfo(id=self.workflow_id, name=self.name, description=self.description,
                            version=self.version, source=self.source,
                            path=str(self.path) if self.path is not None else None)

    @property
    def partitions(self) -> Any:
        """The partitions of the workflow's partitioned assets (one per workflow: a Dagster job
        has one partitions definition), or None."""
        return next((n.partitions for n in self.phases.values() if n.partitions is not None), None)

    def assets(self) -> list[OutputAsset]:
        return [o for name in self.order for o in self.phases[name].outputs]

    def asset_key(self, asset: OutputAsset) -> tuple[str, str, str]:
        return (self.workflow_id, asset.phase, asset.name)

    def asset_keys(self) -> list[tuple[str, str, str]]:
        return [self.asset_key(a) for a in self.assets()]

    def edges(self) -> list[tuple[str, Edge]]:
        """(downstream phase, edge) for every edge, in topological order."""
        return [(name, e) for name in self.order for e in self.phases[name].upstream]

    def declared_ref(self, phase: str, output: str) -> str:
        """'phase.output' of the asset a reference names (an output alias resolves to the
        declared name)."""
        node = self.phases[phase]
        for o in node.outputs:
            if o.name == output:
                return o.ref
        hit = node.kind.resolve_output(output)
        return node.output(hit[0]).ref if hit else f"{phase}.{output}"

    def downstream(self, phase: str) -> tuple[str, ...]:
        return tuple(n for n in self.order if phase in self.phases[n].upstream_phases)

    @property
    def partition_keys(self) -> tuple[str, ...] | None:
        """The static partition keys of the workflow's partitioned assets (walk-forward folds: a
        run materializes them all), or None (none, or market days: runs book the days not booked)."""
        parts = self.partitions
        return parts if isinstance(parts, tuple) and parts else None

    def market_ranges(self) -> list[tuple[Any, Any]]:
        """(first, last) date of the shared market data each phase reads."""
        out = []
        for node in self.phases.values():
            r = node.kind.market_range(node.settings)
            if r is not None:
                out.append(r)
        return out

    def market_sources(self) -> dict[str, str]:
        """Phase -> the market-data source it declares it needs (``data.source``)."""
        out = {}
        for name, node in self.phases.items():
            src = node.kind.market_source(node.settings)
            if src is not None:
                out[name] = src
        return out

    def describe(self) -> str:
        lines = [f"workflow {self.workflow_id} ({self.name}): {len(self.order)} phases, {len(self.assets())} assets"]
        for name in self.order:
            node = self.phases[name]
            outs = ", ".join(o.name if o.name == o.canonical else f"{o.name} [{o.canonical}]" for o in node.outputs)
            tag = " (implicit)" if node.implicit else ""
            lines.append(f"  {name}: {node.type}{tag} -> {outs}")
            for e in node.upstream:
                lines.append(f"    <- {e.upstream_ref} ({e.kind}{'' if e.consumed else ', order only'})")
        return "\n".join(lines)


# ====================================================================== building
@dataclass
class _Draft:
    spec: PhaseSpec
    kind: PhaseKind
    implicit: bool
    config: Any = None  #: the kind's typed effective config (None: invalid)
    outputs: list[OutputAsset] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    edge_fields: dict[str, str] = field(default_factory=dict)  # upstream phase -> field
    condition: Expression | None = None  #: a string ``enabled``


def _valid_outputs_text(kind: PhaseKind) -> str:
    parts = []
    for o in kind.outputs:
        text = o.name
        if o.pattern_hint:
            text += f" (or {o.pattern_hint})"
        parts.append(text)
    return ", ".join(parts)


def _section(spec: WorkflowSpec, name: str) -> Any:
    return getattr(spec, name, None)


def _section_defaults(value: Any) -> dict[str, Any]:
    """A workflow section as config defaults of its kind (``enabled`` is the section's own)."""
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return {k: v for k, v in dict(value).items() if k != "enabled"}


def build_graph(spec: WorkflowSpec, file: str | None, kinds: Registry) -> WorkflowGraph:
    """Resolve ``spec`` into a :class:`WorkflowGraph`; raise WorkflowError(s) on problems.

    Each stage reports all of its problems at once, then stops."""
    errs = ErrorCollector(file)
    phases = list(spec.phases)
    _check_unique_names(phases, errs)
    errs.raise_if_any()
    kind_of = {p.name: kinds.lookup(p.type) for p in phases}
    disabled = tuple(p.name for p in phases if p.enabled is False)
    drafts = _declared_drafts(phases, kind_of, kinds, errs)
    drafts = _with_implicit_phases(spec, drafts, phases, kind_of, kinds, errs)
    errs.raise_if_any()
    warnings = _configure(spec, drafts, file, errs, kinds)
    for name, d in drafts.items():
        if d.config is not None:
            warnings += _resolve_outputs(name, d, errs, file)
    errs.raise_if_any()
    broken = _connect(drafts, phases, kind_of, disabled, errs)
    for name, d in drafts.items():
        if d.config is not None and name not in broken:
            _check_consumption(name, d, drafts, errs)
            warnings += _ignored_inputs(name, d, file)
    errs.raise_if_any()
    order = _topological_order(drafts, errs)
    errs.raise_if_any()
    nodes = _nodes(spec, drafts, order, errs)
    errs.raise_if_any()
    return WorkflowGraph(
        workflow_id=spec.workflow_id,
        name=spec.name,
        description=spec.description,
        version=spec.workflow.version,
        source=spec.source,
        phases=MappingProxyType(nodes),
        order=tuple(order),
        disabled=disabled,
        data=spec.data,
        executor=spec.executor,
        max_concurrent=spec.max_concurrent,
        path=getattr(spec, "path", None),
        warnings=tuple(warnings),
        schedule=spec.workflow.schedule,
        timezone=spec.workflow.timezone,
        run_on_new_market_data=spec.workflow.run_on_new_market_data,
        timeout_seconds=spec.timeout,
    )


def _check_unique_names(phases: list[PhaseSpec], errs: ErrorCollector) -> None:
    """Duplicates, and names equal once case is ignored (DuckDB identifiers are
    case-insensitive: 'opt' and 'Opt' would map to one table name and one would be lost)."""
    by_name: dict[str, list[int]] = {}
    by_folded: dict[str, list[str]] = {}
    for i, p in enumerate(phases):
        by_name.setdefault(p.name, []).append(i + 1)
        folded = by_folded.setdefault(p.name.lower(), [])
        if p.name not in folded:
            folded.append(p.name)
    for name, where in by_name.items():
        if len(where) > 1:
            errs.add(f"duplicate phase name '{name}' (phases #{', #'.join(map(str, where))})",
                     phase=name, field="name")
    for names in by_folded.values():
        if len(names) > 1:
            errs.add(f"phase names {' and '.join(repr(n) for n in names)} differ only in case; DuckDB table "
                     "names ignore case, so one phase's tables could not be queried: rename one",
                     phase=names[-1], field="name")


def _declared_drafts(phases: list[PhaseSpec], kind_of: dict[str, PhaseKind | None], kinds: Registry,
                     errs: ErrorCollector) -> dict[str, _Draft]:
    """The enabled phases as written; phase-level keys only some kinds accept are checked."""
    drafts: dict[str, _Draft] = {}
    for p in phases:
        kind = kind_of[p.name]
        if p.enabled is not False:
            assert kind is not None and kind.available  # checked by the loader
            drafts[p.name] = _Draft(spec=p, kind=kind, implicit=False)
            if isinstance(p.enabled, str):
                try:
                    drafts[p.name].condition = parse_condition(p.enabled)
                except ExpressionError as exc:
                    errs.add(f"invalid condition: {exc}", phase=p.name, field="enabled")
        for key in ("condition", "if_true", "if_false"):
            if kind is not None and getattr(p, key) is not None and key not in kind.phase_keys:
                owners = kinds.accepting(key)
                errs.add(f"'{key}' is only for phase type{'s' if len(owners) > 1 else ''} "
                         f"{', '.join(repr(o) for o in owners) or '(none)'}", phase=p.name, field=key)
    return drafts


def _with_implicit_phases(spec: WorkflowSpec, drafts: dict[str, _Draft], phases: list[PhaseSpec],
                          kind_of: dict[str, PhaseKind | None], kinds: Registry,
                          errs: ErrorCollector) -> dict[str, _Draft]:
    """Add the phase of each kind with ``implicit`` that the workflow needs but does not declare
    (a ``needed`` one first, an ``always`` one last)."""
    names = [p.name for p in phases]
    for kind in kinds:
        imp = kind.implicit
        if imp is None or not kind.available or any(k is kind for k in kind_of.values()):
            continue
        section = _section(spec, imp.section)
        needers: list[str] = []
        if imp.when == "needed":
            provides = set(kind.output_names)
            needers = [n for n, d in drafts.items()
                       if any(r.auto and provides & set(r.outputs) for r in d.kind.consumes)]
            if not needers:
                continue
        else:
            enabled = section.get("enabled", True) if isinstance(section, dict) else True
            if not isinstance(enabled, bool):
                errs.add(f"expected true or false (got {enabled!r})", field=f"{imp.section}.enabled")
                continue
            if not enabled:
                continue
        if imp.phase in names:
            extra = f", or set {imp.section}.enabled: false" if imp.when == "always" else ""
            errs.add(f"the name '{imp.phase}' is reserved for the implicit {kind.name} phase; rename this phase"
                     f"{',' if extra else ' or'} add an explicit {kind.name} phase{extra}",
                     phase=imp.phase, field="name")
        elif imp.section_required and section is None:
            who = f"phase '{needers[0]}' (type {drafts[needers[0]].kind.name})" if needers else "this workflow"
            errs.add(f"required: {who} needs {imp.what or imp.phase}; give {imp.section}: {imp.hint}",
                     field=imp.section)
        else:
            pspec = PhaseSpec(name=imp.phase, type=kind.name, description=imp.description)
            draft = _Draft(pspec, kind, True)
            drafts = {imp.phase: draft, **drafts} if imp.when == "needed" else {**drafts, imp.phase: draft}
    return drafts


def _configure(spec: WorkflowSpec, drafts: dict[str, _Draft], file: str | None, errs: ErrorCollector,
               kinds: Registry = ()) -> list[str]:
    """Each phase's config: its kind's section defaults, then its own keys, validated by the
    kind's Config model and ``effective_config``.  Returns the kinds' "ignored" warnings."""
    warnings: list[str] = []
    info = WorkflowInfo(id=spec.workflow_id, name=spec.workflow.name or spec.workflow_id,
                        description=spec.description, version=spec.workflow.version, source=spec.source,
                        path=str(spec.path) if getattr(spec, "path", None) is not None else None)
    checked_sections: set[str] = set()
    for name, d in drafts.items():
        raw = dict(d.spec.config)
        for key in d.kind.phase_keys:  # phase-level keys of this kind are part of its config
            value = getattr(d.spec, key, None)
            if value is not None:
                if key in raw:
                    errs.add(f"'{key}' is given both on the phase and in its config", phase=name, field=key)
                raw[key] = value
        imp = d.kind.implicit
        defaults: dict[str, Any] = {}
        if imp is not None:
            section = _section(spec, imp.section)
            defaults = _section_defaults(section)
            if defaults and isinstance(section, dict) and imp.section not in checked_sections:
                checked_sections.add(imp.section)
                try:  # report a bad section key against the section, not the phase
                    d.kind.Config.model_validate(defaults)
                except ValidationError as exc:
                    errs.extend(pydantic_errors(exc, model=d.kind.Config, file=file, prefix=imp.section))
                    continue
            raw = {**defaults, **raw}
        try:
            cfg = d.kind.Config.model_validate(raw)
        except ValidationError as exc:
            errs.extend(pydantic_errors(exc, model=d.kind.Config, file=file, phase=name, prefix="config"))
            continue
        env = ConfigEnv(data=spec.data, workflow=info)
        try:
            cfg = d.kind.effective_config(cfg, env)
        except SettingError:
            raise  # an ADMF_* environment variable, not this file: the CLI reports it in one line
        except ValueError as exc:  # a kind's own check that raised instead of reporting
            env.problem("", str(exc))
        for fld, msg in env.problems:
            errs.add(msg, **_where(name, d, fld, defaults if imp is not None else {}))
        for fld, msg in env.warnings:
            warnings.append(WorkflowError(msg, file=file, **_where(name, d, fld, {})).format())
        if not env.problems:
            d.config = cfg
            d.kind = d.kind.bind(cfg)
            limits.check_phase(name, d.spec, d.kind, cfg, env, spec, errs, warnings, kinds)
    return warnings


def _where(name: str, d: _Draft, fld: str, section_defaults: dict[str, Any]) -> dict[str, Any]:
    """Phase and field of a kind's problem, where the user wrote it: a value the phase took from
    its kind's workflow section (``data.start_date``) against that section, a phase-level key
    (``if_true``) as itself, anything else under ``config``."""
    top = fld.split(".")[0].split("[")[0]
    if top and top in section_defaults and top not in d.spec.config:
        return {"phase": None, "field": f"{d.kind.implicit.section}.{fld}"}
    if top in d.kind.phase_keys and top not in d.spec.config:  # a phase-level key (if_true: ...)
        return {"phase": name, "field": fld}
    return {"phase": name, "field": f"config.{fld}" if fld else "config"}


def _connect(drafts: dict[str, _Draft], phases: list[PhaseSpec], kind_of: dict[str, PhaseKind | None],
             disabled: tuple[str, ...], errs: ErrorCollector) -> set[str]:
    """Edges from ``inputs`` / ``depends_on``, auto-consumed outputs and ``consumes_all``;
    returns the phases with a bad reference (their follow-on checks are skipped)."""
    broken: set[str] = set()
    for name, d in drafts.items():
        refs = [(fld, ref, fld) for fld in ("inputs", "depends_on") for ref in getattr(d.spec, fld)]
        if d.condition is not None:
            refs += [("enabled", r.asset, "reference") for r in d.condition.refs]
        if d.config is not None:
            refs += [(fld, ref, "reference") for ref, fld in d.kind.references(d.config)]
        for fld, ref, how in refs:
            before = len(errs.errors)
            _resolve_reference(name, d, fld, ref, drafts, disabled, errs, how)
            if len(errs.errors) > before:
                broken.add(name)
    for name, d in drafts.items():
        for rule in d.kind.consumes:
            if rule.auto and not any(e.canonical in rule.outputs for e in d.edges):
                _auto_edge(name, d, rule, drafts, phases, kind_of, errs)
        if d.kind.consumes_all and not d.spec.inputs and not d.spec.depends_on:
            for other, od in drafts.items():
                if other == name or od.kind.consumes_all:
                    continue
                for o in od.outputs:
                    _add_edge(d, Edge(o.ref, other, o.name, o.canonical, "implicit", True), "inputs")
    return broken


def _nodes(spec: WorkflowSpec, drafts: dict[str, _Draft], order: list[str],
           errs: ErrorCollector) -> dict[str, PhaseNode]:
    """Resolved phases in order, with criteria checked against the kinds' metrics and the
    infrastructure section's resources applied."""
    all_names = {p.name for p in spec.phases} | set(drafts)
    for res_name in spec.infrastructure.phase_resources:
        if res_name not in all_names:
            errs.add(f"unknown phase '{res_name}'{suggest(res_name, all_names)}",
                     field=f"infrastructure.phase_resources.{res_name}")
    nodes: dict[str, PhaseNode] = {}
    for name in order:
        d = drafts[name]
        p = d.spec
        for metric in p.success_criteria:
            if metric not in d.kind.metrics:
                errs.add(f"unknown metric '{metric}' for phase type '{d.kind.name}'"
                         f"{suggest(metric, d.kind.metrics)}; known: {', '.join(d.kind.metrics)}",
                         phase=name, field=f"success_criteria.{metric}")
        criteria = {m: Criterion.model_validate(dict(c)) for m, c in d.kind.default_criteria.items()}
        criteria.update(p.success_criteria)
        partitions = _partitions(name, d, nodes, errs)
        res = spec.infrastructure.phase_resources.get(name)
        retries = p.retries
        if retries is None and p.on_failure == "retry":
            retries = RetrySpec(count=DEFAULT_RETRY_COUNT)
        nodes[name] = PhaseNode(
            name=name,
            type=d.kind.name,
            declared_type=p.type,
            description=p.description or d.kind.description,
            implicit=d.implicit,
            config=MappingProxyType(d.config.model_dump(mode="json")),
            outputs=tuple(d.outputs),
            upstream=tuple(d.edges),
            retries=retries,
            timeout_seconds=p.timeout,
            pool=p.pool or (res.pool if res else None),
            max_workers=p.max_workers or (res.max_workers if res else None),
            memory_limit_gb=res.memory_limit_gb if res else None,
            critical=p.critical,
            success_criteria=MappingProxyType(criteria),
            on_failure=p.on_failure,
            kind=d.kind,
            settings=d.config,
            checks=tuple(d.kind.checks(d.config)),
            condition=d.condition.text if d.condition is not None else None,
            optional=(p.on_failure == "continue_with_warning" or d.condition is not None
                      or d.kind.may_skip(d.config)),
            partitions=partitions,
        )
    return nodes


def _partitions(name: str, d: _Draft, nodes: dict[str, PhaseNode], errs: ErrorCollector) -> Any:
    """How the phase's partitioned outputs are partitioned (market days, or static keys), when
    it declares any.  A workflow is one Dagster job, and a job has one partitions definition:
    every partitioned phase of it must agree."""
    if not any(o.partitioned for o in d.outputs):
        return None
    parts = d.kind.partitions(d.config)
    if not isinstance(parts, MarketDays):
        parts = tuple(parts or ()) or None
    if parts is None:
        errs.add("this phase has no partitions for its per-partition outputs", phase=name, field="outputs")
        return None
    whole = [o for o in d.kind.outputs if not o.partitioned]
    if d.spec.success_criteria and whole and all(o.partitioned for o in d.outputs):
        errs.add(f"success criteria are checked on a whole-phase output; add one to outputs "
                 f"(e.g. '{whole[0].name}')", phase=name, field="success_criteria")
    for other in nodes.values():
        if other.partitions is not None and other.partitions != parts:
            errs.add(f"its partitions ({describe_partitions(parts)}) differ from phase '{other.name}''s "
                     f"({describe_partitions(other.partitions)}); one workflow holds one set of partitions: "
                     "make them the same or use a separate workflow", phase=name, field="config")
            break
    return parts


def _resolve_outputs(name: str, d: _Draft, errs: ErrorCollector, file: str | None = None) -> list[str]:
    """The phase's output assets; returns "ignored" warnings for outputs the kind knows but does
    not produce (``PhaseKind.unproduced_outputs``: names the seeds list)."""
    kind = d.kind
    warnings: list[str] = []
    cfg = d.config
    declared = d.spec.outputs
    if declared is None:
        names = kind.default_outputs(cfg)
        fld_of = {n: "outputs" for n in names}
    else:
        names = list(declared)
        fld_of = {n: f"outputs[{i}]" for i, n in reversed(list(enumerate(names)))}
        if not names:
            errs.add("a phase needs at least one output (leave `outputs` out for the defaults: "
                     f"{', '.join(kind.default_outputs(cfg))})", phase=name, field="outputs")
    seen: dict[str, str] = {}
    updates: dict[str, Any] = {}
    for out_name in names:
        fld = fld_of[out_name]
        hit = kind.resolve_output(out_name)
        if hit is None and str(out_name) in kind.unproduced_outputs:
            warnings.append(WorkflowError(f"ignored: output '{out_name}' is not produced: "
                                          f"{kind.unproduced_outputs[str(out_name)]}", file=file, phase=name,
                                          field=fld).format())
            continue
        if hit is None:
            errs.add(f"unknown output '{out_name}' for phase type '{kind.name}'"
                     f"{suggest(out_name, kind.output_spellings())}; valid: {_valid_outputs_text(kind)}",
                     phase=name, field=fld)
            continue
        canonical, params = hit
        if canonical in seen:
            if seen[canonical] == out_name:
                errs.add(f"output '{out_name}' is listed twice", phase=name, field=fld)
            else:
                errs.add(f"outputs '{seen[canonical]}' and '{out_name}' are the same output ({canonical})",
                         phase=name, field=fld)
            continue
        seen[canonical] = out_name
        out = kind.output(canonical)
        if out.count_field is not None and out.count_field in type(cfg).model_fields:
            configured = getattr(cfg, out.count_field, None)
            if "n" in params and configured is not None and configured != params["n"]:
                errs.add(f"{out.count_field} {configured} contradicts output '{out_name}'", phase=name,
                         field=f"config.{out.count_field}")
            params = {"n": params.get("n", configured or out.count_default)}
            updates[out.count_field] = params["n"]
        if out.enabled_by is not None and out.enabled_by[0] in type(cfg).model_fields:
            list_field, value = out.enabled_by
            configured_values = list(getattr(cfg, list_field, None) or ())
            if value not in configured_values:
                errs.add(f"output '{out_name}' needs {list_field[:-1] if list_field.endswith('s') else list_field} "
                         f"'{value}' in config.{list_field} (configured: {', '.join(map(str, configured_values))})",
                         phase=name, field=fld)
        d.outputs.append(OutputAsset(name, out_name, canonical, MappingProxyType(params), out.description,
                                     out.storage, out.partitioned))
    if declared is not None and names and any(not o.partitioned for o in d.outputs):
        # the whole-phase outputs are computed from the partitioned ones: those always exist
        for out in kind.outputs:
            if out.partitioned and out.default and out.name not in seen:
                d.outputs.append(OutputAsset(name, out.name, out.name, MappingProxyType({}), out.description,
                                             out.storage, True))
    for out in kind.outputs:  # a count the YAML did not set takes its default
        if out.count_field is not None and out.count_field in type(cfg).model_fields and \
                out.count_field not in updates and getattr(cfg, out.count_field) is None:
            updates[out.count_field] = out.count_default
    if updates:
        d.config = cfg.model_copy(update=updates)
    if names and warnings and not d.outputs:
        errs.add(f"none of the listed outputs is produced; valid: {_valid_outputs_text(kind)}", phase=name,
                 field="outputs")
    return warnings


def _unless(d: _Draft, canonical: str) -> bool:
    """True when a consume rule for ``canonical`` is satisfied by the config instead."""
    return any(canonical in r.outputs and r.unless_config is not None
               and getattr(d.config, r.unless_config, None) not in (None, {}, [])
               for r in d.kind.consumes)


def _add_edge(d: _Draft, edge: Edge, fld: str) -> None:
    for i, e in enumerate(d.edges):
        if (e.upstream_phase, e.upstream_output) == (edge.upstream_phase, edge.upstream_output):
            if e.kind != "reference" or edge.kind == "reference":
                return
            del d.edges[i]  # read by a condition AND given as an input: the input (consumed) wins
            break
    consumed = edge.canonical in d.kind.consumed_outputs() or d.kind.consumes_all
    if edge.kind == "reference":  # read by the condition / the kind's own references, by 'phase.output'
        consumed = False
    if consumed and d.config is not None and _unless(d, edge.canonical):
        consumed = False
    d.edges.append(Edge(edge.reference, edge.upstream_phase, edge.upstream_output,
                        edge.canonical, edge.kind, consumed))
    d.edge_fields.setdefault(edge.upstream_phase, fld)


def _auto_edge(name: str, d: _Draft, rule: Consumes, drafts: dict[str, _Draft], phases: list[PhaseSpec],
               kind_of: dict[str, PhaseKind | None], errs: ErrorCollector) -> None:
    """Connect an auto-consumed output to its single enabled provider."""
    wanted = set(rule.outputs)
    providers = [n for n, od in drafts.items() if n != name and wanted & set(od.kind.output_names)]
    if len(providers) == 1:
        src = drafts[providers[0]]
        out = next((o for o in src.outputs if o.canonical in wanted), None)
        if out is None:
            errs.add(f"needs {' or '.join(rule.outputs)} from phase '{providers[0]}', which does not list it in "
                     "its outputs: add it there", phase=name, field="inputs")
            return
        _add_edge(d, Edge(out.ref, out.phase, out.name, out.canonical, "implicit", True), "inputs")
        return
    what = " or ".join(rule.outputs)
    if not providers:
        off = [p.name for p in phases if p.enabled is False and kind_of[p.name] is not None
               and wanted & set(kind_of[p.name].output_names)]
        if off:
            provider_kind = kind_of[off[0]]
            noun = (provider_kind.implicit.what if provider_kind.implicit and provider_kind.implicit.what else what)
            errs.add(f"needs {noun}, but {provider_kind.name} phase '{off[0]}' is disabled (enabled: false)",
                     phase=name, field="inputs")
        return
    kind_name = drafts[providers[0]].kind.name
    first = next(o for o in drafts[providers[0]].outputs if o.canonical in wanted)
    errs.add(f"several {kind_name} phases ({', '.join(providers)}); name one in inputs, e.g. '{first.ref}'",
             phase=name, field="inputs")


def _resolve_reference(name: str, d: _Draft, fld: str, ref: str, drafts: dict[str, _Draft],
                       disabled: tuple[str, ...], errs: ErrorCollector, how: str = "") -> None:
    ref = ref.strip()
    all_refs = [o.ref for dn, dd in drafts.items() for o in dd.outputs if dn != name]
    all_phases = [n for n in drafts if n != name]
    up, _, out = ref.partition(".")
    if not up or (out == "" and "." in ref) or "." in out:
        errs.add(f"invalid reference '{ref}': use 'phase' or 'phase.output'", phase=name, field=fld)
        return
    if fld == "depends_on" and out:
        errs.add(f"depends_on takes phase names (got '{ref}'); put 'phase.output' references in inputs",
                 phase=name, field=fld)
        return
    if up in disabled:
        errs.add(f"needs '{ref}', but phase '{up}' is disabled (enabled: false)", phase=name, field=fld)
        return
    if up not in drafts:
        what = "input" if fld == "inputs" else "phase"
        errs.add(f"unknown {what} '{ref}'{suggest(ref, all_refs + all_phases if out else all_phases + all_refs)}",
                 phase=name, field=fld)
        return
    kind: EdgeKind = "reference" if how == "reference" else ("input" if fld == "inputs" else "depends_on")
    src = drafts[up]
    if not out:
        for o in src.outputs:
            _add_edge(d, Edge(ref, up, o.name, o.canonical, kind, True), fld)
        if up == name:  # a self reference with no outputs resolved yet still is a cycle
            d.edge_fields.setdefault(up, fld)
        return
    match = next((o for o in src.outputs if o.name == out), None)
    if match is None:
        hit = src.kind.resolve_output(out)
        if hit is not None:
            match = next((o for o in src.outputs if o.canonical == hit[0]), None)
    if match is None:
        candidates = [o.ref for o in src.outputs]
        hint = suggest(ref, candidates) or suggest(ref, all_refs)
        errs.add(f"unknown input '{ref}'{hint}: phase '{up}' outputs "
                 f"{', '.join(o.name for o in src.outputs) or 'nothing'}", phase=name, field=fld)
        return
    _add_edge(d, Edge(ref, up, match.name, match.canonical, kind, True), fld)


def _check_consumption(name: str, d: _Draft, drafts: dict[str, _Draft], errs: ErrorCollector) -> None:
    kind = d.kind
    for rule in kind.consumes:
        fixed = rule.unless_config is not None and getattr(d.config, rule.unless_config, None) not in (None, {}, [])
        providers = [e for e in d.edges if e.canonical in rule.outputs]
        if fixed:
            explicit = [e for e in providers if e.kind == "input"]
            if explicit:
                errs.add(f"fixed config.{rule.unless_config} and the input '{explicit[0].reference}' "
                         f"both give {explicit[0].canonical}; remove one", phase=name,
                         field=f"config.{rule.unless_config}")
            continue
        inputs = [e for e in providers if e.consumed]  # a config field's reference is read, not an input
        ambiguous = False
        for canonical in rule.outputs:
            hits = [e for e in inputs if e.canonical == canonical]
            if len(hits) > 1:
                ambiguous = True
                errs.add(f"ambiguous {canonical}: {', '.join(e.upstream_ref for e in hits)}; "
                         "keep exactly one in inputs / depends_on", phase=name, field="inputs")
        if rule.exclusive and len(inputs) > 1 and not ambiguous:
            errs.add(f"give one of {', '.join(rule.outputs)}, not {len(inputs)}: "
                     f"{', '.join(e.upstream_ref for e in inputs)}", phase=name, field="inputs")
            continue
        for need in rule.together_with if providers else ():
            if not any(e.canonical == need and e.consumed for e in d.edges):
                src = drafts.get(providers[0].upstream_phase)
                same = [o.ref for o in src.outputs if o.canonical == need] if src is not None else []
                hint = f"e.g. inputs: ['{same[0]}']" if same else f"phase '{providers[0].upstream_phase}' does not output it"
                errs.add(f"phase type '{kind.name}' takes {providers[0].canonical} together with {need}: {hint}",
                         phase=name, field="inputs")
        wanted = not rule.required and rule.is_required(d.config)  # made required by config.<required_if>
        if rule.is_required(d.config) and not providers:
            available = [o.ref for dn, dd in drafts.items() if dn != name
                         for o in dd.outputs if o.canonical in rule.outputs]
            what = " or ".join(rule.outputs)
            hint = f"e.g. inputs: ['{available[0]}']" if available else "no phase of this workflow produces it"
            extra = f" (or set config.{rule.unless_config})" if rule.unless_config else ""
            extra += f" (config.{rule.required_if} is true)" if wanted else ""
            errs.add(f"phase type '{kind.name}' needs {what} from an upstream phase: {hint}{extra}",
                     phase=name, field="inputs")


def _ignored_inputs(name: str, d: _Draft, file: str | None) -> list[str]:
    """One "ignored" line per input the kind does not read but knows the seeds give it
    (``PhaseKind.ignored_inputs``): it only orders the phases."""
    out = []
    for i, e in enumerate(d.edges):
        why = d.kind.ignored_inputs.get(e.canonical)
        if e.kind == "input" and not e.consumed and why:
            out.append(WorkflowError(f"ignored: input '{e.reference}' is not read: {why}", file=file, phase=name,
                                     field="inputs").format())
    return out


def _topological_order(drafts: dict[str, _Draft], errs: ErrorCollector) -> list[str]:
    """Kahn's algorithm, ties broken by declaration order; report a cycle path if any."""
    position = {n: i for i, n in enumerate(drafts)}
    deps = {n: {e.upstream_phase for e in d.edges} | ({n} if n in d.edge_fields else set())
            for n, d in drafts.items()}
    deps = {n: {u for u in ds if u in drafts} for n, ds in deps.items()}
    order: list[str] = []
    done: set[str] = set()
    remaining = dict(deps)
    while remaining:
        ready = sorted((n for n, ds in remaining.items() if ds <= done), key=position.__getitem__)
        if not ready:
            break
        n = ready[0]
        order.append(n)
        done.add(n)
        del remaining[n]
    if remaining:
        cycle = _find_cycle(remaining, position)[:-1]  # each depends on the next
        flow = list(reversed(cycle))  # data flow direction: each feeds the next
        first = min(range(len(flow)), key=lambda i: position[flow[i]])
        flow = flow[first:] + flow[:first]
        head, feeder = flow[0], flow[-1]
        fld = drafts[head].edge_fields.get(feeder, "inputs")
        errs.add(f"dependency cycle: {' -> '.join(flow + [head])}", phase=head, field=fld)
    return order


def _find_cycle(deps: dict[str, set[str]], position: dict[str, int]) -> list[str]:
    """A cycle as [a, b, ..., a] where each phase depends on the next."""
    start = min(deps, key=position.__getitem__)
    path: list[str] = []
    on_path: dict[str, int] = {}
    node = start
    while node not in on_path:
        on_path[node] = len(path)
        path.append(node)
        nxt = sorted((u for u in deps[node] if u in deps), key=position.__getitem__)
        node = nxt[0]
    return path[on_path[node]:] + [node]
