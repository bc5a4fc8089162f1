"""The resolved workflow DAG: what a compiler turns into Dagster assets.

``build_graph(spec, file)`` normalises a validated :class:`~.spec.WorkflowSpec`:

* **implicit data phase** -- when no phase has type ``data_preparation`` and some enabled
  phase needs market data, a phase ``data`` (type data_preparation, output ``bars``)
  is added, built from the ``data:`` section; every phase whose type needs market data
  and has no ``bars`` input gets an edge to the (single enabled) data_preparation phase.
* **implicit report phase** -- when no phase has type ``report``, a phase ``report`` is
  added (configured by the ``reporting:`` section; ``reporting: {enabled: false}`` turns
  it off).  A report phase with neither ``inputs`` nor ``depends_on`` depends on every
  output of every other enabled phase.
* **outputs** -- a phase with no ``outputs`` gets its type's default outputs; declared
  names are resolved to canonical names through the catalog aliases
  (``top_10_parameter_sets`` -> ``top_parameter_sets`` with ``n = 10``).  Each output is
  one asset, keyed ``(workflow_id, phase, declared_name)``.
* **edges** -- ``inputs: ['p.out']`` is one edge, ``inputs: ['p']`` and
  ``depends_on: ['p']`` are edges to every output of ``p``.
* checks: references, disabled upstreams, required inputs of the type, ambiguity,
  cycles (printed as ``a -> b -> a``), success-criteria metric names, resource names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Mapping

from . import catalog
from .errors import ErrorCollector, suggest
from .phase_config import validate_config
from .spec import Criterion, DataSpec, PhaseSpec, RetrySpec, WorkflowSpec

__all__ = [
    "OutputAsset",
    "Edge",
    "PhaseNode",
    "WorkflowGraph",
    "build_graph",
    "IMPLICIT_DATA_PHASE",
    "IMPLICIT_REPORT_PHASE",
    "DEFAULT_RETRY_COUNT",
]

IMPLICIT_DATA_PHASE = "data"
IMPLICIT_REPORT_PHASE = "report"
#: retries used for ``on_failure: retry`` when the phase gives no ``retries``
DEFAULT_RETRY_COUNT = 2

EdgeKind = Literal["input", "depends_on", "implicit"]


@dataclass(frozen=True)
class OutputAsset:
    """One output of a phase = one asset."""

    phase: str
    name: str  #: as declared in the YAML (or the default name); the asset key's last part
    canonical: str  #: the catalog's canonical output name
    params: Mapping[str, Any] = field(default_factory=dict)  #: e.g. {"n": 10} for top_10_...
    description: str = ""

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
    kind: EdgeKind  #: input | depends_on | implicit
    consumed: bool  #: the phase type loads this value (else: ordering / lineage only)

    @property
    def upstream_ref(self) -> str:
        return f"{self.upstream_phase}.{self.upstream_output}"


@dataclass(frozen=True)
class PhaseNode:
    """An enabled phase, resolved."""

    name: str
    type: str  #: canonical phase type (parameter_search, analysis, ...)
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
    needs_market_data: bool

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
        """The single consumed upstream edge providing ``canonical`` (validation guarantees ≤ 1)."""
        hits = [e for e in self.upstream if e.canonical == canonical and e.consumed]
        return hits[0] if hits else None


@dataclass(frozen=True)
class WorkflowGraph:
    workflow_id: str  #: asset-key prefix and group name
    name: str
    description: str
    version: str
    source: str | None
    phases: Mapping[str, PhaseNode]  #: enabled phases, in topological order
    order: tuple[str, ...]
    disabled: tuple[str, ...]
    data: DataSpec | None
    executor: str  #: in_process | multiprocess
    max_concurrent: int | None

    def assets(self) -> list[OutputAsset]:
        return [o for name in self.order for o in self.phases[name].outputs]

    def asset_key(self, asset: OutputAsset) -> tuple[str, str, str]:
        return (self.workflow_id, asset.phase, asset.name)

    def asset_keys(self) -> list[tuple[str, str, str]]:
        return [self.asset_key(a) for a in self.assets()]

    def edges(self) -> list[tuple[str, Edge]]:
        """(downstream phase, edge) for every edge, in topological order."""
        return [(name, e) for name in self.order for e in self.phases[name].upstream]

    def downstream(self, phase: str) -> tuple[str, ...]:
        return tuple(n for n in self.order if phase in self.phases[n].upstream_phases)

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
    ptype: catalog.PhaseType
    implicit: bool
    config: dict[str, Any] | None = None
    outputs: list[OutputAsset] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    edge_fields: dict[str, str] = field(default_factory=dict)  # upstream phase -> field


def _valid_outputs_text(ptype: catalog.PhaseType) -> str:
    parts = []
    for o in ptype.outputs:
        text = o.name
        if o.pattern:
            text += " (or top_<N>_parameter_sets)"
        parts.append(text)
    return ", ".join(parts)


def build_graph(spec: WorkflowSpec, file: str | None) -> "WorkflowGraph":
    """Resolve ``spec`` into a :class:`WorkflowGraph`; raise WorkflowError(s) on problems."""
    errs = ErrorCollector(file)
    phases = list(spec.phases)
    names = [p.name for p in phases]

    # ---------------------------------------------------------------- duplicates
    for name in dict.fromkeys(names):
        where = [i + 1 for i, n in enumerate(names) if n == name]
        if len(where) > 1:
            errs.add(f"duplicate phase name '{name}' (phases #{', #'.join(map(str, where))})",
                     phase=name, field="name")
    errs.raise_if_any()

    types = {p.name: catalog.lookup_phase_type(p.type) for p in phases}
    disabled = tuple(p.name for p in phases if not p.enabled)
    drafts: dict[str, _Draft] = {}
    for p in phases:
        if p.enabled:
            pt = types[p.name]
            assert pt is not None and pt.available  # checked by the loader
            drafts[p.name] = _Draft(spec=p, ptype=pt, implicit=False)
        if p.type and types[p.name] is not None and types[p.name].name != "conditional":
            for key in ("condition", "if_true", "if_false"):
                if getattr(p, key) is not None:
                    errs.add(f"'{key}' is only for phase type 'conditional'", phase=p.name, field=key)

    # ------------------------------------------------------ implicit data phase
    dp_all = [p.name for p in phases if types[p.name] is not None and types[p.name].name == "data_preparation"]
    needers = [n for n, d in drafts.items() if d.ptype.needs_market_data]
    if needers and not dp_all:
        if IMPLICIT_DATA_PHASE in drafts or IMPLICIT_DATA_PHASE in names:
            errs.add(f"the name '{IMPLICIT_DATA_PHASE}' is reserved for the implicit data_preparation phase; "
                     "rename this phase or add an explicit data_preparation phase",
                     phase=IMPLICIT_DATA_PHASE, field="name")
        elif spec.data is None:
            errs.add(f"required: phase '{needers[0]}' (type {drafts[needers[0]].ptype.name}) needs market data; "
                     "give data: {symbols, start_date, end_date}", field="data")
        else:
            dspec = PhaseSpec(name=IMPLICIT_DATA_PHASE, type="data_preparation",
                              description="Market data of the workflow's symbols and dates (from the data section)")
            drafts = {IMPLICIT_DATA_PHASE: _Draft(dspec, catalog.PHASE_TYPES["data_preparation"], True), **drafts}

    # ---------------------------------------------------- implicit report phase
    reporting = spec.reporting
    report_all = [p.name for p in phases if types[p.name] is not None and types[p.name].name == "report"]
    report_defaults: dict[str, Any] = {"title": spec.workflow.name or spec.workflow_id}
    if reporting is not None:
        for key in ("title", "output_path", "include_phase_reports", "generate_summary_report"):
            value = getattr(reporting, key)
            if value is not None:
                report_defaults[key] = value
    if not report_all and (reporting is None or reporting.enabled):
        if IMPLICIT_REPORT_PHASE in names:
            errs.add(f"the name '{IMPLICIT_REPORT_PHASE}' is reserved for the implicit report phase; "
                     "rename this phase, add an explicit report phase, or set reporting.enabled: false",
                     phase=IMPLICIT_REPORT_PHASE, field="name")
        else:
            rspec = PhaseSpec(name=IMPLICIT_REPORT_PHASE, type="report", description="HTML report of the workflow")
            drafts[IMPLICIT_REPORT_PHASE] = _Draft(rspec, catalog.PHASE_TYPES["report"], True)
    errs.raise_if_any()

    # ------------------------------------------------------------------ configs
    for name, d in drafts.items():
        raw = dict(d.spec.config)
        if d.ptype.name == "report":
            raw = {**report_defaults, **raw}
        eff, problems = validate_config(d.ptype, raw, spec.data, file=file, phase=name)
        errs.extend(problems)
        d.config = eff

    # ------------------------------------------------------------------ outputs
    for name, d in drafts.items():
        if d.config is None:
            continue
        _resolve_outputs(name, d, errs)
    errs.raise_if_any()

    # -------------------------------------------------------------- references
    broken: set[str] = set()  # phases with a bad reference: skip follow-on checks
    for name, d in drafts.items():
        for fld in ("inputs", "depends_on"):
            for ref in getattr(d.spec, fld):
                before = len(errs.errors)
                _resolve_reference(name, d, fld, ref, drafts, disabled, errs)
                if len(errs.errors) > before:
                    broken.add(name)

    # ---------------------------------------------------------- implicit edges
    dp_enabled = [n for n, d in drafts.items() if d.ptype.name == "data_preparation"]
    for name, d in drafts.items():
        if d.ptype.needs_market_data and not any(e.canonical == "bars" for e in d.edges):
            if len(dp_enabled) == 1:
                src = drafts[dp_enabled[0]]
                bars = next(o for o in src.outputs if o.canonical == "bars")
                _add_edge(d, Edge(bars.ref, bars.phase, bars.name, "bars", "implicit", True), "inputs")
            elif not dp_enabled and dp_all:
                errs.add(f"needs market data, but data_preparation phase '{dp_all[0]}' is disabled (enabled: false)",
                         phase=name, field="inputs")
            elif len(dp_enabled) > 1:
                errs.add(f"several data_preparation phases ({', '.join(dp_enabled)}); name one in inputs, "
                         f"e.g. '{dp_enabled[0]}.bars'", phase=name, field="inputs")
        if d.ptype.consumes_all and not d.spec.inputs and not d.spec.depends_on:
            for other, od in drafts.items():
                if other == name or od.ptype.consumes_all:
                    continue
                for o in od.outputs:
                    _add_edge(d, Edge(o.ref, other, o.name, o.canonical, "implicit", True), "inputs")

    # ----------------------------------------------------- what each type needs
    for name, d in drafts.items():
        if d.config is None or name in broken:
            continue
        _check_consumption(name, d, drafts, errs)
    errs.raise_if_any()

    # ----------------------------------------------------------------- ordering
    order = _topological_order(drafts, errs)
    errs.raise_if_any()

    # -------------------------------------------------------- criteria, resources
    all_names = set(names) | set(drafts)
    for res_name in spec.infrastructure.phase_resources:
        if res_name not in all_names:
            errs.add(f"unknown phase '{res_name}'{suggest(res_name, all_names)}",
                     field=f"infrastructure.phase_resources.{res_name}")
    nodes: dict[str, PhaseNode] = {}
    for name in order:
        d = drafts[name]
        p = d.spec
        for metric in p.success_criteria:
            if metric not in d.ptype.metrics:
                errs.add(f"unknown metric '{metric}' for phase type '{d.ptype.name}'"
                         f"{suggest(metric, d.ptype.metrics)}; known: {', '.join(d.ptype.metrics)}",
                         phase=name, field=f"success_criteria.{metric}")
        res = spec.infrastructure.phase_resources.get(name)
        retries = p.retries
        if retries is None and p.on_failure == "retry":
            retries = RetrySpec(count=DEFAULT_RETRY_COUNT)
        nodes[name] = PhaseNode(
            name=name,
            type=d.ptype.name,
            declared_type=p.type,
            description=p.description or d.ptype.description,
            implicit=d.implicit,
            config=MappingProxyType(dict(d.config or {})),
            outputs=tuple(d.outputs),
            upstream=tuple(d.edges),
            retries=retries,
            timeout_seconds=p.timeout,
            pool=p.pool or (res.pool if res else None),
            max_workers=p.max_workers or (res.max_workers if res else None),
            memory_limit_gb=res.memory_limit_gb if res else None,
            critical=p.critical,
            success_criteria=MappingProxyType(dict(p.success_criteria)),
            on_failure=p.on_failure,
            needs_market_data=d.ptype.needs_market_data,
        )
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
    )


def _resolve_outputs(name: str, d: _Draft, errs: ErrorCollector) -> None:
    pt = d.ptype
    cfg = d.config or {}
    declared = d.spec.outputs
    if declared is None:
        names = list(pt.default_outputs)
        if pt.name == "analysis":
            names += [catalog.ANALYZER_OUTPUTS[a] for a in cfg.get("analyzers", [])]
        fld_of = {n: "outputs" for n in names}
    else:
        names = list(declared)
        fld_of = {n: f"outputs[{i}]" for i, n in reversed(list(enumerate(names)))}
        if not names:
            errs.add("a phase needs at least one output (leave `outputs` out for the defaults: "
                     f"{', '.join(pt.default_outputs)})", phase=name, field="outputs")
    seen: dict[str, str] = {}
    for out_name in names:
        fld = fld_of[out_name]
        hit = catalog.resolve_output(pt, out_name)
        if hit is None:
            errs.add(f"unknown output '{out_name}' for phase type '{pt.name}'"
                     f"{suggest(out_name, pt.output_alias_names())}; valid: {_valid_outputs_text(pt)}",
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
        if canonical == "top_parameter_sets":
            n_cfg = cfg.get("top_n")
            if "n" in params and n_cfg is not None and n_cfg != params["n"]:
                errs.add(f"top_n {n_cfg} contradicts output '{out_name}'", phase=name, field="config.top_n")
            params = {"n": params.get("n", n_cfg or catalog.DEFAULT_TOP_N)}
            if d.config is not None:
                d.config["top_n"] = params["n"]
        if pt.name == "analysis":
            needs = {v: k for k, v in catalog.ANALYZER_OUTPUTS.items()}.get(canonical)
            if needs is not None and needs not in cfg.get("analyzers", []):
                errs.add(f"output '{out_name}' needs analyzer '{needs}' in config.analyzers "
                         f"(configured: {', '.join(cfg.get('analyzers', []))})", phase=name, field=fld)
        desc = next(o.description for o in pt.outputs if o.name == canonical)
        d.outputs.append(OutputAsset(name, out_name, canonical, MappingProxyType(params), desc))
    if pt.name == "parameter_search" and d.config is not None and d.config.get("top_n") is None:
        d.config["top_n"] = catalog.DEFAULT_TOP_N


def _add_edge(d: _Draft, edge: Edge, fld: str) -> None:
    for e in d.edges:
        if (e.upstream_phase, e.upstream_output) == (edge.upstream_phase, edge.upstream_output):
            return
    consumed = edge.canonical in d.ptype.consumed_outputs() or d.ptype.consumes_all
    if consumed and d.ptype.name == "backtest" and edge.canonical == "best_parameters" \
            and (d.config or {}).get("parameters") is not None:
        consumed = False
    d.edges.append(Edge(edge.reference, edge.upstream_phase, edge.upstream_output,
                        edge.canonical, edge.kind, consumed))
    d.edge_fields.setdefault(edge.upstream_phase, fld)


def _resolve_reference(name: str, d: _Draft, fld: str, ref: str, drafts: dict[str, _Draft],
                       disabled: tuple[str, ...], errs: ErrorCollector) -> None:
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
    kind: EdgeKind = "input" if fld == "inputs" else "depends_on"
    src = drafts[up]
    if not out:
        for o in src.outputs:
            _add_edge(d, Edge(ref, up, o.name, o.canonical, kind, True), fld)
        if up == name:  # a self reference with no outputs resolved yet still is a cycle
            d.edge_fields.setdefault(up, fld)
        return
    match = next((o for o in src.outputs if o.name == out), None)
    if match is None:
        hit = catalog.resolve_output(src.ptype, out)
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
    pt = d.ptype
    cfg = d.config or {}
    rules = list(pt.consumes)
    if pt.needs_market_data:
        rules.append(catalog.ConsumeRule(("bars",), required=False))
    for rule in rules:
        fixed = rule.unless_config is not None and cfg.get(rule.unless_config) is not None
        providers = [e for e in d.edges if e.canonical in rule.outputs]
        if fixed:
            explicit = [e for e in providers if e.kind == "input"]
            if explicit:
                errs.add(f"fixed config.{rule.unless_config} and the input '{explicit[0].reference}' "
                         f"both give {explicit[0].canonical}; remove one", phase=name,
                         field=f"config.{rule.unless_config}")
            continue
        for canonical in rule.outputs:
            hits = [e for e in providers if e.canonical == canonical]
            if len(hits) > 1:
                errs.add(f"ambiguous {canonical}: {', '.join(e.upstream_ref for e in hits)}; "
                         "keep exactly one in inputs / depends_on", phase=name, field="inputs")
        if rule.required and not providers:
            available = [o.ref for dn, dd in drafts.items() if dn != name
                         for o in dd.outputs if o.canonical in rule.outputs]
            what = " or ".join(rule.outputs)
            hint = f"e.g. inputs: ['{available[0]}']" if available else "no phase of this workflow produces it"
            extra = f" (or set config.{rule.unless_config})" if rule.unless_config else ""
            errs.add(f"phase type '{pt.name}' needs {what} from an upstream phase: {hint}{extra}",
                     phase=name, field="inputs")


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
