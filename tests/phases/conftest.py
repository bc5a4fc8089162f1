"""Fixtures for the kind tests: run phase kinds directly (no Dagster) on synthetic market data written to a table store.

``workflow_for(kind)`` builds the smallest workflow that can run ``kind`` with its
``example_config``: its required inputs are provided by the first registered kind producing
them (with that kind's example config, recursively).  ``execute(graph, store)`` runs the
phases in graph order with the same :func:`~admf_assets.workflow.context.phase_context` the
Dagster compiler uses, and returns every phase's result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine import marketdata, synthetic
from admf_assets.market import partition_keys_between
from admf_assets.phases import KINDS
from admf_assets.phases.kind import PhaseKind, PhaseResult, PhaseView, run_phase
from admf_assets.workflow.context import phase_context, phase_views
from admf_assets.workflow.graph import WorkflowGraph
from admf_assets.workflow.loader import load_workflow_dict
from resources.storage import TableStore

SYMBOLS = ["SPY", "QQQ"]
START, END = "2021-01-04", "2022-06-30"
TEST_START = "2022-01-03"
CUT = pd.Timestamp("2022-03-31")  # perturbations start after this date (inside the test split)


def write_market(root: Path, perturb_after: pd.Timestamp | None = None, seed: int = 7) -> TableStore:
    """Clean synthetic bars for SYMBOLS in a store's market partitions; ``perturb_after``
    scales every price and volume after that date by random factors (a different future)."""
    store = TableStore(root)
    bars = synthetic.synthetic_bars(SYMBOLS, START, END)
    if perturb_after is not None:
        rng = np.random.default_rng(seed)
        late = bars["date"] > perturb_after
        f = np.exp(np.cumsum(rng.normal(0, 0.03, int(late.sum()))))
        for col in ("open", "high", "low", "close"):
            bars.loc[late, col] = bars.loc[late, col].to_numpy() * f
        bars.loc[late, "volume"] = bars.loc[late, "volume"].to_numpy() * rng.uniform(0.2, 5.0, int(late.sum()))
    clean, _ = marketdata.clean_bars(bars)
    keys = partition_keys_between(START, END)
    labels = clean["date"].dt.strftime("%Y-%m-%d").to_numpy()
    store.write_partitions(["market", "clean_bars"], clean, labels, keys, views=False)
    return store


def _provider(canonical_outputs: tuple[str, ...], exclude: PhaseKind) -> PhaseKind:
    for kind in KINDS.available():
        if kind is not exclude and not kind.consumes_all and set(canonical_outputs) & set(kind.output_names):
            return kind
    raise LookupError(f"no registered kind produces any of {canonical_outputs}")


def _phases_for(kind: PhaseKind, name: str, phases: dict[str, dict], outputs: list[str] | None = None) -> None:
    deps = []
    for rule in kind.consumes:
        if rule.auto or not rule.required:
            continue
        if rule.unless_config and kind.example_config.get(rule.unless_config):
            continue
        provider = _provider(rule.outputs, kind)
        if provider.name not in phases:
            _phases_for(provider, provider.name, phases)
        deps.append(provider.name)
    phases[name] = {"name": name, "type": kind.name, "config": dict(kind.example_config), "depends_on": deps}
    if outputs is not None:
        phases[name]["outputs"] = outputs


def workflow_for(kind: PhaseKind, *, report: bool = False, config: dict | None = None) -> WorkflowGraph:
    """The smallest workflow running ``kind`` (as phase ``target``) with every output declared."""
    phases: dict[str, dict] = {}
    if kind.consumes_all:  # the report: give it a search and a backtest to report on
        for other in ("parameter_search", "backtest"):
            _phases_for(KINDS[other], other, phases)
        phases["backtest"]["config"] = {}
        phases["backtest"]["depends_on"] = ["parameter_search"]
    declared = [o.name for o in kind.outputs]
    _phases_for(kind, "target", phases, declared)
    if config is not None:
        phases["target"]["config"] = config
    if kind.implicit is not None and kind.implicit.when == "needed":
        phases["target"]["depends_on"] = []
    doc = {
        "workflow": {"name": f"suite {kind.name}", "id": f"suite_{kind.name}"},
        "data": {"symbols": SYMBOLS, "start_date": START, "end_date": END, "split": {"test_start": TEST_START}},
        "phases": list(phases.values()),
        "reporting": {"enabled": report or kind.consumes_all},
    }
    return load_workflow_dict(doc, source=f"<suite {kind.name}>").graph


def execute(graph: WorkflowGraph, store: TableStore, reports_dir: Path | None = None) -> dict[str, PhaseResult]:
    results: dict[str, PhaseResult] = {}
    loaded: dict[str, object] = {}
    for name in graph.order:
        node = graph.phases[name]
        ctx = phase_context(graph, node, loaded, store=store, reports_dir=reports_dir or store.root / "reports")
        res = run_phase(node.kind, ctx)
        results[name] = res
        for o in node.outputs:
            loaded[o.ref] = res.outputs[o.canonical]
    return results


def views(graph: WorkflowGraph, results: dict[str, PhaseResult]) -> list[PhaseView]:
    """Every phase of ``graph`` as a report view (as a report downstream of all would see it)."""
    loaded = {o.ref: results[n].outputs[o.canonical] for n in graph.order for o in graph.phases[n].outputs}
    everyone = graph.phases[graph.order[-1]]
    from dataclasses import replace

    from admf_assets.workflow.graph import Edge

    fake = replace(everyone, name="__all__", upstream=tuple(
        Edge(o.ref, n, o.name, o.canonical, "implicit", True) for n in graph.order for o in graph.phases[n].outputs))
    return phase_views(graph, fake, loaded)


@pytest.fixture(scope="session")
def kit():
    """The harness functions and constants (test modules cannot import conftest)."""
    import types

    return types.SimpleNamespace(write_market=write_market, workflow_for=workflow_for, execute=execute, views=views,
                                 CUT=CUT, SYMBOLS=SYMBOLS, START=START, END=END, TEST_START=TEST_START)
