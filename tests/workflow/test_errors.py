from __future__ import annotations

import copy
import random
from pathlib import Path

import yaml

from admf_assets.workflow.errors import WorkflowError, WorkflowValidationError, suggest
from admf_assets.workflow.loader import load_workflow_dict


def test_one_line_with_the_parts_that_apply():
    assert str(WorkflowError("bad", file="wf.yaml", phase="opt", field="config.x")) == \
        "wf.yaml: phase 'opt': field 'config.x': bad"
    assert str(WorkflowError("bad", file="wf.yaml", field="data.symbols")) == "wf.yaml: field 'data.symbols': bad"
    assert str(WorkflowError("bad", file="wf.yaml", line=3, column=7)) == "wf.yaml:3:7: bad"
    assert str(WorkflowError("multi\nline   text")) == "multi line text"
    e = WorkflowError("m", file="f", phase="p", field="x")
    assert (e.file, e.phase, e.field, e.message, e.errors) == ("f", "p", "x", "m", [e])


def test_aggregated_error_is_one_line_per_problem():
    a = WorkflowError("first", file="f", phase="p", field="x")
    b = WorkflowError("second", file="f", field="y")
    agg = WorkflowValidationError([a, b])
    assert str(agg) == "f: phase 'p': field 'x': first\nf: field 'y': second"
    assert agg.errors == [a, b] and agg.lines() == [str(a), str(b)]
    assert (agg.file, agg.phase, agg.field) == ("f", "p", "x")


def test_suggest():
    assert suggest("optimisation", ["optimization", "analysis"]) == " (did you mean 'optimization'?)"
    assert suggest("zzz", ["optimization"]) == ""


def _paths(o, pre=()):
    yield pre
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _paths(v, pre + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from _paths(v, pre + (i,))


VALUES = [None, 0, -1, 1.5, "x", "", True, [], {}, [1, "a"], {"a": 1}, "2020-01-01", [None], {"min": "x"},
          "opt.best_parameters", "data", "report", 10**12, float("nan")]


def test_mutated_workflows_never_escape_as_other_exceptions():
    """Random damage to the shipped workflow gives WorkflowError lines, never a traceback."""
    base = yaml.safe_load((Path(__file__).resolve().parents[2] / "workflows" / "basic_research.yaml").read_text())
    rng = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(400):
        doc = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice([p for p in _paths(doc) if p])
            target = doc
            for part in path[:-1]:
                target = target[part]
            value = copy.deepcopy(rng.choice(VALUES))
            if isinstance(target, dict) and rng.random() < 0.3:
                target[rng.choice(["extra", "enabled", "inputs", "outputs", "config", "type", "name"])] = value
            else:
                target[path[-1]] = value
        try:
            load_workflow_dict(doc, source="f.yaml", default_id="f")
            outcomes["ok"] += 1
        except WorkflowError as exc:
            outcomes["error"] += 1
            for line in exc.lines():
                assert "\n" not in line and line.startswith("f.yaml")
    # most damage is caught (parameter values of the wrong type or range too, since they are checked
    # against the strategies at validation); some leaves a valid workflow
    assert outcomes["error"] > 200 and outcomes["ok"] > 5
