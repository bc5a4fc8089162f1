"""Report settings the YAML accepts have effects: reporting.generate_summary_report adds the
summary section, backtest generate_detailed_report draws the curves (off: the metrics only)."""

from __future__ import annotations

import pytest

from admf_assets.phases import KINDS


@pytest.fixture(scope="module")
def report_run(tmp_path_factory, kit):
    store = kit.write_market(tmp_path_factory.mktemp("report_settings"))

    def run(report_cfg: dict, backtest_cfg: dict | None = None) -> str:
        graph = kit.workflow_for(KINDS["report"], config=report_cfg)
        if backtest_cfg is not None:
            graph = _with_config(graph, "backtest", backtest_cfg)
        results = kit.execute(graph, store)
        path = results["target"].outputs["report"]["path"].iloc[0]
        return open(path, encoding="utf-8").read()

    return run


def _with_config(graph, phase, update):
    from dataclasses import replace
    from types import MappingProxyType

    node = graph.phases[phase]
    settings = node.settings.model_copy(update=update)
    phases = dict(graph.phases)
    phases[phase] = replace(node, settings=settings, config=MappingProxyType(settings.model_dump(mode="json")))
    return replace(graph, phases=MappingProxyType(phases))


def test_generate_summary_report_adds_the_summary(report_run):
    on, off = report_run({"generate_summary_report": True}), report_run({"generate_summary_report": False})
    assert "Executive summary" in on and "Not validated" in on
    assert "Executive summary" not in off and "Not validated" not in off


def test_generate_detailed_report_draws_the_backtest_curves(report_run):
    detailed = report_run({}, {"generate_detailed_report": True})
    brief = report_run({}, {"generate_detailed_report": False})
    for text in (detailed, brief):
        assert "Out-of-sample metrics" in text
    assert "Equity curve" in detailed and "Equity curve" not in brief
    assert detailed.count("<svg") > brief.count("<svg")
