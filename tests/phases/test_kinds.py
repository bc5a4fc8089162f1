"""One suite over every registered phase kind (as Optuna tests every sampler with one suite).

A kind registered later is covered the moment it is registered: its default config
validates; a run on synthetic bars produces every declared output with its declared columns
and every declared metric; its time-series outputs do not change when the future does; its
report sections render."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from admf_assets.engine.report import render_report
from admf_assets.phases import KINDS
from admf_assets.phases.kind import ConfigEnv, PhaseKind
from admf_assets.workflow.spec import DataSpec


ALL = KINDS.available()
IDS = [k.name for k in ALL]


@pytest.fixture(scope="module")
def stores(tmp_path_factory, kit):
    root = tmp_path_factory.mktemp("kinds")
    return kit.write_market(root / "a"), kit.write_market(root / "b", perturb_after=kit.CUT)


@pytest.fixture(scope="module")
def runs(stores, kit):
    """Each kind run once on the original market: (graph, results)."""
    out = {}
    for kind in ALL:
        graph = kit.workflow_for(kind)
        out[kind.name] = (graph, kit.execute(graph, stores[0]))
    return out


@pytest.mark.parametrize("kind", ALL, ids=IDS)
def test_declaration_is_complete(kind: PhaseKind):
    assert kind.name and kind.description and kind.outputs, kind
    assert KINDS.lookup(kind.name) is kind
    for alias in kind.aliases:
        assert KINDS.lookup(alias) is kind, alias
    assert len(set(kind.output_spellings())) == len(kind.output_spellings()), "an output spelling is used twice"
    assert kind.metrics, "a kind reports at least one metric for success criteria"


@pytest.mark.parametrize("kind", ALL, ids=IDS)
def test_default_config_validates(kind: PhaseKind, kit):
    kind.Config()  # every field has a default: the Config model is where they live
    cfg = kind.Config.model_validate(dict(kind.example_config))
    env = ConfigEnv()
    kind.effective_config(cfg, env)
    if kind.implicit is not None and kind.implicit.section == "data":  # the data kind needs a data section
        return
    if env.problems:  # a kind may need the workflow's dates (walk-forward folds are planned from them)
        env = ConfigEnv(data=DataSpec(symbols=kit.SYMBOLS, start_date=kit.START, end_date=kit.END))
        kind.effective_config(cfg, env)
    assert env.problems == [], env.problems


@pytest.mark.parametrize("kind", ALL, ids=IDS)
def test_run_produces_every_output_column_and_metric(kind: PhaseKind, runs):
    graph, results = runs[kind.name]
    res = results["target"]
    for out in kind.outputs:
        assert out.name in res.outputs, f"{kind.name} did not produce {out.name}"
        frame = res.outputs[out.name]
        assert isinstance(frame, pd.DataFrame) and len(frame), out.name
        missing = [c for c in out.columns if c not in frame.columns]
        assert not missing, f"{kind.name}.{out.name} lacks declared columns {missing}"
        if out.time_series:
            assert "date" in frame.columns
    for metric in kind.metrics:
        assert metric in res.metrics, f"{kind.name} does not report metric {metric}"
        value = res.metrics[metric]
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (metric, value)
        assert not (isinstance(value, float) and math.isinf(value)), metric


TIME_SERIES = [k for k in ALL if any(o.time_series for o in k.outputs)]


@pytest.mark.parametrize("kind", TIME_SERIES, ids=[k.name for k in TIME_SERIES])
def test_time_series_outputs_do_not_see_the_future(kind: PhaseKind, runs, stores, kit):
    """Perturb every bar after CUT: rows dated up to CUT must not move."""
    graph, results = runs[kind.name]
    other = kit.execute(graph, stores[1])
    name, CUT = "target", kit.CUT
    checked = 0
    for out in kind.outputs:
        if not out.time_series:
            continue
        a, b = results[name].outputs[out.name], other[name].outputs[out.name]
        a = a[pd.to_datetime(a["date"]) <= CUT].reset_index(drop=True)
        b = b[pd.to_datetime(b["date"]) <= CUT].reset_index(drop=True)
        assert len(a) > 20, out.name
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=f"{kind.name}.{out.name}")
        checked += 1
        # ... and the perturbation really changed the later rows
        late_a = results[name].outputs[out.name]
        late_b = other[name].outputs[out.name]
        assert not late_a.equals(late_b), f"{out.name}: the future perturbation had no effect"
    assert checked


@pytest.mark.parametrize("kind", ALL, ids=IDS)
def test_report_sections_render(kind: PhaseKind, runs, kit):
    graph, results = runs[kind.name]
    for view in kit.views(graph, results):
        if view.kind.name != kind.name:  # a bound kind (PhaseKind.bind) is the same kind
            continue
        sections = view.kind.sections(view)
        header = view.kind.header(view)
        html = render_report({"title": f"<{kind.name}>", "sections": sections, "data": header})
        assert f"&lt;{kind.name}&gt;" in html
        for sec in sections:
            assert f"<h2>{_esc(sec['title'])}</h2>" in html
        return
    pytest.fail(f"no view of a {kind.name} phase")


@pytest.mark.parametrize("kind", ALL, ids=IDS)
def test_verdict_and_insights_hooks(kind: PhaseKind, runs, kit):
    """The executive summary's hooks: a Verdict or None; Insights whose text carries a number."""
    import re

    from admf_assets.phases.kind import Insight, Verdict

    graph, results = runs[kind.name]
    view = next(v for v in kit.views(graph, results) if v.kind.name == kind.name)  # bound kinds too
    verdict = view.kind.verdict(view)
    assert verdict is None or isinstance(verdict, Verdict)
    for ins in view.kind.insights(view):
        assert isinstance(ins, Insight) and ins.topic
        assert ins.text or (ins.key and ins.value is not None), ins
        if ins.text:
            assert re.search(r"[0-9]", ins.text), f"{kind.name}: an insight without its number: {ins.text}"


def _esc(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_the_suite_covers_every_registered_kind():
    names = {k.name for k in KINDS.available()}
    assert {"data_preparation", "feature_engineering", "signal_capture", "parameter_search", "analysis",
            "backtest", "report"} <= names
