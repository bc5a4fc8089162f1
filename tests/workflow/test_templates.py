from __future__ import annotations

from admf_assets import settings
from admf_assets.workflow.templates import BUILTIN_TEMPLATES_DIR, deep_merge, list_templates, merge_phases
from admf_assets.workflow.validate import load_workflow


def test_builtin_templates_ship_with_the_package():
    found = list_templates()
    for name in ("regime_adaptive_grid_search_ensemble", "walk_forward_validation", "optimize_analyze_validate"):
        assert found[name] == BUILTIN_TEMPLATES_DIR / f"{name}.yaml"


def test_template_alone_gives_its_workflow(write):
    spec = load_workflow(write("template: optimize_analyze_validate\n", "my_study.yaml"))
    g = spec.graph
    assert spec.template == "optimize_analyze_validate"
    assert g.workflow_id == "my_study"  # the workflow's own file names the assets
    assert g.order == ("data", "optimization", "analysis", "backtest", "report")
    assert len(g.assets()) == 10


def test_overrides_deep_merge_and_phases_merge_by_name(write):
    spec = load_workflow(write("""\
        template: optimize_analyze_validate
        workflow:
          name: QQQ study
        data:
          symbols: [QQQ]
        phases:
          - name: optimization
            config:
              optimization:
                method: random
                n_trials: 20
          - name: analysis
            enabled: false
          - name: costs_check
            type: backtest
            inputs: [optimization.best_parameters]
            config: {cost_bps: 20}
        """))
    g = spec.graph
    assert spec.workflow.name == "QQQ study"
    assert spec.workflow.description == "Grid search on the train split, analysis, backtest on the test split"
    # data: symbols replaced, dates and split kept from the template
    assert (spec.data.symbols, str(spec.data.start_date), spec.data.split.test_fraction) == (["QQQ"], "2018-01-01", 0.3)
    opt = g.phases["optimization"].config["optimization"]
    assert (opt["method"], opt["n_trials"], opt["objective"]) == ("random", 20, "sharpe_ratio")
    # the grid lists of the template stay: under random search they are sets of choices
    assert opt["parameters"]["fast_period"] == {"values": [5, 10, 20]}
    assert g.disabled == ("analysis",)
    assert g.order == ("data", "optimization", "backtest", "costs_check", "report")
    assert g.phases["costs_check"].config["cost_bps"] == 20.0


def test_regime_template_validates_the_ensemble_out_of_sample(write):
    g = load_workflow(write("template: regime_adaptive_grid_search_ensemble\n")).graph
    assert g.order == ("data", "parameter_discovery", "regime_analysis", "signal_capture", "ensemble_optimization",
                       "validation", "report")
    consumed = {e.canonical for e in g.phases["validation"].upstream if e.consumed}
    assert consumed == {"ensemble_returns", "bars"}


def test_regime_template_runs_its_available_part_when_the_rest_is_disabled(write):
    spec = load_workflow(write("""\
        template: regime_adaptive_grid_search_ensemble
        phases:
          - {name: regime_analysis, enabled: false}
          - {name: signal_capture, enabled: false}
          - {name: ensemble_optimization, enabled: false}
          - {name: validation, enabled: false}
        """))
    g = spec.graph
    assert g.order == ("data", "parameter_discovery", "report")
    assert g.disabled == ("regime_analysis", "signal_capture", "ensemble_optimization", "validation")
    assert [a.name for a in g.phases["parameter_discovery"].outputs] == [
        "best_parameters", "top_parameter_sets", "optimization_history"]


def test_walk_forward_template_validates_the_stitched_out_of_sample_returns(write):
    g = load_workflow(write("template: walk_forward_validation\n")).graph
    assert g.order == ("data", "walk_forward", "statistical_validation", "report")
    assert g.partition_keys[0] == "fold_01" and len(g.partition_keys) == 15  # 2018-2023, 504 / 126 / 63 days
    consumed = {e.canonical for e in g.phases["statistical_validation"].upstream if e.consumed}
    assert consumed == {"oos_equity", "bars"}
    assert g.phases["statistical_validation"].config["validation_method"] == ["deflated_sharpe", "bootstrap",
                                                                               "monte_carlo"]


def test_unknown_template_suggests_closest(write, errors_of, tmp_path):
    p = write("template: walk_forward_valdation\n")
    (line,) = errors_of(p)
    assert line == (
        f"{p}: field 'template': unknown template 'walk_forward_valdation' (did you mean 'walk_forward_validation'?); "
        "available: optimize_analyze_validate, regime_adaptive_grid_search_ensemble, walk_forward_validation "
        f"(searched {settings.workflows_dir() / 'templates'}, {BUILTIN_TEMPLATES_DIR})"
    )


USER_TEMPLATE = """\
workflow: {name: Cheap backtest, id: must_not_leak}
data: {symbols: [IWM], start_date: 2019-01-01, end_date: 2022-12-31, split: {train_end: 2021-12-31}}
phases:
  - name: fixed
    type: backtest
    config: {parameters: {fast_period: 10, slow_period: 40}, strategy: momentum, data_split: all}
"""


def test_user_templates_from_the_default_folder(write):
    write(USER_TEMPLATE, "workflows/templates/cheap.yaml")  # cwd is the test's tmp folder
    spec = load_workflow(write("template: cheap\n", "mine.yaml"))
    assert spec.workflow_id == "mine"  # a template's workflow.id is not inherited
    assert spec.graph.order == ("data", "fixed", "report")
    assert spec.graph.phases["data"].config["split"] == {"train_end": "2021-12-31"}
    assert "cheap" in list_templates()


def test_user_templates_from_env_folder_shadow_builtins(write, tmp_path, monkeypatch):
    write(USER_TEMPLATE, "elsewhere/walk_forward_validation.yaml")
    monkeypatch.setenv("ADMF_TEMPLATES_DIR", str(tmp_path / "elsewhere"))
    spec = load_workflow(write("template: walk_forward_validation\n"))
    assert spec.graph.order == ("data", "fixed", "report")


def test_templates_follow_the_workflows_dir_argument(write, tmp_path):
    write(USER_TEMPLATE, "proj/wf/templates/cheap.yaml")
    write("template: cheap\n", "proj/wf/study.yaml")
    spec = load_workflow("study", workflows_dir=tmp_path / "proj" / "wf")
    assert spec.graph.order == ("data", "fixed", "report")


def test_template_cycle_is_an_error(write, errors_of, monkeypatch, tmp_path):
    write("template: b\n", "t/a.yaml")
    write("template: a\n", "t/b.yaml")
    monkeypatch.setenv("ADMF_TEMPLATES_DIR", str(tmp_path / "t"))
    p = write("template: a\n")
    assert errors_of(p) == ["t/b.yaml: field 'template': template cycle: a -> b -> a"]


def test_merge_helpers():
    assert deep_merge({"a": {"x": 1, "y": [1, 2]}, "b": 1}, {"a": {"y": [3]}, "c": 2}) == {
        "a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    merged = merge_phases(
        [{"name": "p", "type": "backtest", "config": {"cost_bps": 1, "slippage_bps": 2}}],
        [{"name": "p", "config": {"cost_bps": 9}}, {"name": "q", "type": "report"}],
    )
    assert merged == [
        {"name": "p", "type": "backtest", "config": {"cost_bps": 9, "slippage_bps": 2}},
        {"name": "q", "type": "report"},
    ]
