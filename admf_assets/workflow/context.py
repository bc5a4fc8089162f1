"""What a phase sees when it runs: the :class:`~admf_assets.phases.kind.PhaseContext` built
from the resolved graph and the loaded upstream values (no Dagster here: the compiler adds
the run id, the log and the lineage; tests run kinds directly with the same context)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from admf_assets.phases.kind import OutputRef, PhaseContext, PhaseView, Upstream

from .graph import PhaseNode, WorkflowGraph

__all__ = ["upstream_of", "phase_views", "phase_context"]


def upstream_of(graph: WorkflowGraph, node: PhaseNode, loaded: Mapping[str, Any]) -> tuple[Upstream, ...]:
    """Every upstream edge of ``node`` with its value (``loaded``: 'phase.output' -> value)."""
    out = []
    for e in node.upstream:
        up = graph.phases[e.upstream_phase]
        out.append(Upstream(phase=e.upstream_phase, output=e.upstream_output, canonical=e.canonical, kind=up.type,
                            config=up.config, consumed=e.consumed, value=loaded.get(e.upstream_ref)))
    return tuple(out)


def phase_views(graph: WorkflowGraph, node: PhaseNode, loaded: Mapping[str, Any]) -> list[PhaseView]:
    """The upstream phases of ``node`` whose outputs are loaded, in graph order, as report views."""
    views = []
    for name in graph.order:
        up = graph.phases[name]
        if name == node.name or name not in node.upstream_phases:
            continue
        outputs = {o.canonical: loaded[o.ref] for o in up.outputs if o.ref in loaded}
        inputs, configs = {}, {}
        for e in up.upstream:
            if e.consumed and e.upstream_ref in loaded:
                inputs[e.canonical] = loaded[e.upstream_ref]
                configs[e.canonical] = graph.phases[e.upstream_phase].config
        views.append(PhaseView(phase=name, kind=up.kind, config=up.settings, outputs=outputs, inputs=inputs,
                               input_configs=configs, workflow=graph.info))
    return views


def previous_partition(store: Any, key: tuple[str, ...], before: str | None) -> Any:
    """The stored partition of ``key`` just before the partition key ``before`` (the latest
    stored one when ``before`` is None), or None."""
    if store is None:
        return None
    stored = sorted(k for k in store.stored_partitions(list(key)) if before is None or k < before)
    return store.read_partitions(list(key), [stored[-1]]) if stored else None


def phase_context(graph: WorkflowGraph, node: PhaseNode, loaded: Mapping[str, Any], *, store: Any = None,
                  reports_dir: Path | None = None, run_id: str = "", log: Any = None,
                  lineage: Callable[[], list[dict]] = list, partition_keys: tuple[str, ...] = (),
                  launch: Callable[..., Any] | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> PhaseContext:
    """``launch``: how the phase runs an external command (the compiler's Dagster Pipes client);
    outside a Dagster run a one-step Dagster materialization does it (``workflow.pipes``)."""
    kwargs: dict[str, Any] = {"log": log} if log is not None else {}
    if progress is not None:
        kwargs["progress"] = progress
    keys = {o.canonical: (graph.workflow_id, node.name, o.name) for o in node.outputs}
    first = partition_keys[0] if partition_keys else None

    def previous(canonical: str) -> Any:
        return previous_partition(store, keys[canonical], first) if canonical in keys else None

    if launch is None:
        def launch(*args, **kw):  # noqa: E306 - Dagster only when a command is launched
            from admf_assets.pipes import launch_standalone

            return launch_standalone(graph, node, *args, **kw)

    return PhaseContext(
        workflow=graph.info,
        phase=node.name,
        kind=node.kind,
        config=node.settings,
        outputs=tuple(OutputRef(o.name, o.canonical, o.params) for o in node.outputs),
        upstream=upstream_of(graph, node, loaded),
        store=store,
        reports_dir=reports_dir or Path("."),
        run_id=run_id,
        lineage=lineage,
        views=lambda: phase_views(graph, node, loaded),
        partition_keys=tuple(partition_keys),
        previous=previous,
        launch=launch,
        max_workers=node.max_workers,
        memory_limit_gb=node.memory_limit_gb,
        **kwargs,
    )
