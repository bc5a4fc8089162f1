"""Details of the spec, the normalisation rules and the catalog."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from admf_assets.phases import KINDS
from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.loader import load_workflow_text
from admf_assets.workflow.spec import Criterion, SplitConfig
from admf_assets.workflow.validate import load_workflow

DATA = "data: {symbols: [SPY], start_date: 2020-01-01, end_date: 2023-12-31}\n"
OPT = "  - {name: opt, type: optimization, config: {parameters: {fast_period: [5, 10]}}}\n"


def _load(text: str, source: str = "wf.yaml"):
    return load_workflow_text(text, source)


def test_retry_forms_timeouts_and_resource_names():
    g = _load(DATA + "phases:\n" + OPT + """\
  - name: a
    type: backtest
    inputs: [opt.best_parameters]
    retries: 3
    timeout_minutes: 2
    resource_class: heavy
  - name: b
    type: backtest
    inputs: [opt.best_parameters]
    retries: {max_retries: 4, delay: 1.5, backoff: linear, jitter: true}
    timeout_hours: 1
    container_count: 8
    pool: gpu/a
  - name: c
    type: backtest
    inputs: [opt.best_parameters]
    on_failure: retry
    timeout: 90
  - name: d
    type: backtest
    inputs: [opt.best_parameters]
    on_failure: continue_with_warning
""").graph
    a, b, c, d = (g.phases[n] for n in "abcd")
    assert (a.retries.count, a.retries.delay, a.retries.backoff, a.retries.jitter) == (3, 0.0, "constant", None)
    assert (b.retries.count, b.retries.delay, b.retries.backoff, b.retries.jitter) == (4, 1.5, "linear", "full")
    assert (a.timeout_seconds, b.timeout_seconds, c.timeout_seconds, d.timeout_seconds) == (120.0, 3600.0, 90.0, None)
    assert (a.pool, b.pool, b.max_workers) == ("heavy", "gpu/a", 8)
    assert (c.on_failure, c.retries.count) == ("retry", 2)  # on_failure: retry without retries -> 2
    assert (d.on_failure, d.retries) == ("continue_with_warning", None)


def test_phase_level_method_goes_into_the_config():
    g = _load(DATA + "phases:\n  - {name: opt, type: optimization, method: random, "
                     "config: {parameters: {fast_period: [3, 50], signal_threshold: {low: 0.001, high: 0.1, log: true}}, "
                     "optimization: {n_trials: 25, seed: 7}}}\n").graph
    opt = g.phases["opt"].config["optimization"]
    assert (opt["method"], opt["n_trials"], opt["seed"]) == ("random", 25, 7)
    # random search: a two-number list is a range; integers stay integers
    assert opt["parameters"] == {
        "fast_period": {"low": 3, "high": 50, "step": None, "log": False, "type": "int"},
        "signal_threshold": {"low": 0.001, "high": 0.1, "step": None, "log": True, "type": "float"},
    }


def test_grid_ranges_are_expanded():
    g = _load(DATA + "phases:\n  - {name: opt, type: optimization, config: {strategy: ma_crossover, top_n: 3, "
                     "parameters: {fast: {low: 2, high: 8, step: 3}, signal_threshold: {low: 0.0, high: 0.02, step: 0.01}}}}\n").graph
    cfg = g.phases["opt"].config
    # parameter and strategy aliases of the engine's registry are accepted as written
    assert cfg["optimization"]["parameters"] == {"fast": {"values": [2, 5, 8]},
                                                 "signal_threshold": {"values": [0.0, 0.01, 0.02]}}
    assert cfg["strategies"] == [{"type": "ma_crossover", "optimization_target": True, "parameters": {}}]
    # default outputs; top_n from the config
    out = g.phases["opt"].output("top_parameter_sets")
    assert (out.name, dict(out.params), cfg["top_n"]) == ("top_parameter_sets", {"n": 3}, 3)


def test_grid_float_range_without_step_is_an_error():
    with pytest.raises(WorkflowError) as info:
        _load(DATA + "phases:\n  - {name: opt, type: optimization, config: {parameters: {signal_threshold: {low: 0.0, high: 1.0}}}}\n")
    assert str(info.value) == ("wf.yaml: phase 'opt': field 'config.optimization.parameters.signal_threshold': "
                               "a grid needs a finite set: give a list of values or a `step`")


def test_top_n_contradicting_output_name():
    with pytest.raises(WorkflowError) as info:
        _load(DATA + "phases:\n  - {name: opt, type: optimization, outputs: [top_10_strategies], "
                     "config: {top_n: 5, parameters: {fast_period: [5]}}}\n")
    assert str(info.value) == "wf.yaml: phase 'opt': field 'config.top_n': top_n 5 contradicts output 'top_10_strategies'"


def test_output_aliases_resolve_to_canonical_names():
    g = _load(DATA + "phases:\n"
              "  - {name: opt, type: parameter_optimization, config: {parameters: {fast_period: [5]}}, "
              "outputs: [top_100_strategies, trials, best_parameters]}\n"
              "  - {name: an, type: analysis, inputs: [opt.top_parameter_sets], "
              "config: {analyzers: [monte_carlo, drawdown]}, outputs: [risk_metrics, drawdown_analysis]}\n"
              "  - {name: bt, type: backtest, inputs: [opt.best_parameters], outputs: [equity_curve]}\n").graph
    assert [(o.name, o.canonical, dict(o.params)) for o in g.phases["opt"].outputs] == [
        ("top_100_strategies", "top_parameter_sets", {"n": 100}),
        ("trials", "optimization_history", {}),
        ("best_parameters", "best_parameters", {}),
    ]
    # a reference by canonical name finds the declared alias
    assert g.phases["an"].input_for("top_parameter_sets").upstream_output == "top_100_strategies"
    assert [(o.name, o.canonical) for o in g.phases["an"].outputs] == [
        ("risk_metrics", "risk_assessment"), ("drawdown_analysis", "drawdowns")]
    assert g.phases["an"].config["analyzers"] == ["monte_carlo_simulation", "drawdown_analysis"]
    assert [(o.name, o.canonical) for o in g.phases["bt"].outputs] == [("equity_curve", "performance_report")]


def test_analysis_default_outputs_follow_its_analyzers():
    g = _load(DATA + "phases:\n" + OPT +
              "  - {name: an, type: analysis, inputs: [opt], config: {analyzers: [regime_performance, correlation]}}\n"
              ).graph
    assert [o.name for o in g.phases["an"].outputs] == ["performance_metrics", "regime_breakdown", "correlations"]
    # bare phase reference: every output of opt, the consumed ones flagged
    assert [(e.upstream_output, e.consumed) for e in g.phases["an"].upstream] == [
        ("best_parameters", True), ("top_parameter_sets", True), ("optimization_history", False), ("bars", True)]


def test_parallel_branches_and_convergence_are_plain_dags():
    g = _load(DATA + "phases:\n" + OPT + """\
  - {name: bt_costly, type: backtest, inputs: [opt.best_parameters], config: {cost_bps: 20}}
  - {name: bt_free, type: backtest, inputs: [opt.best_parameters], config: {include_transaction_costs: false}}
  - name: summary
    type: report
    inputs: [bt_costly.validation_results, bt_free.validation_results]
""").graph
    assert g.order == ("data", "opt", "bt_costly", "bt_free", "summary")  # explicit report: no implicit one
    assert g.downstream("opt") == ("bt_costly", "bt_free")
    assert g.phases["summary"].upstream_phases == ("bt_costly", "bt_free")
    assert [e.upstream_ref for e in g.phases["summary"].upstream] == [
        "bt_costly.validation_results", "bt_free.validation_results"]


def test_admf_parallel_phases_layout_is_flattened():
    g = _load(DATA + """\
workflow:
  parallel_phases:
    fast:
      phases:
        - {name: opt_fast, type: optimization, config: {parameters: {fast_period: [3, 5]}}}
    slow:
      phases:
        - {name: opt_slow, type: optimization, config: {parameters: {fast_period: [20, 30]}}}
  convergence_phase:
    name: compare
    type: analysis
    inputs: ["fast.opt_fast.top_parameter_sets", "slow.opt_slow.best_parameters"]
""").graph
    assert g.order == ("data", "opt_fast", "opt_slow", "compare", "report")
    assert [e.reference for e in g.phases["compare"].upstream][:2] == [
        "opt_fast.top_parameter_sets", "opt_slow.best_parameters"]


def test_explicit_data_preparation_phase_replaces_the_implicit_one():
    g = _load(DATA + """\
phases:
  - {name: prep, type: data_preparation, config: {symbols: [QQQ, IWM], split: {train_end: 2022-06-30}}, outputs: [cleaned_data]}
  - {name: opt, type: optimization, config: {parameters: {fast_period: [5]}}}
""").graph
    assert g.order == ("prep", "opt", "report")
    assert dict(g.phases["prep"].config) == {
        "symbols": ["QQQ", "IWM"], "start_date": "2020-01-01", "end_date": "2023-12-31",
        "split": {"train_end": "2022-06-30"}}
    assert [(e.upstream_ref, e.canonical, e.kind) for e in g.phases["opt"].upstream] == [
        ("prep.cleaned_data", "bars", "implicit")]


def test_two_data_phases_need_an_explicit_choice():
    with pytest.raises(WorkflowError) as info:
        _load(DATA + "phases:\n  - {name: p1, type: data_preparation}\n  - {name: p2, type: data_preparation}\n" + OPT)
    assert str(info.value) == ("wf.yaml: phase 'opt': field 'inputs': several data_preparation phases (p1, p2); "
                               "name one in inputs, e.g. 'p1.bars'")
    g = _load(DATA + "phases:\n  - {name: p1, type: data_preparation}\n  - {name: p2, type: data_preparation}\n"
              "  - {name: opt, type: optimization, inputs: [p2.bars], config: {parameters: {fast_period: [5]}}}\n").graph
    assert g.phases["opt"].upstream_phases == ("p2",)


def test_disabled_data_phase_is_named():
    with pytest.raises(WorkflowError) as info:
        _load(DATA + "phases:\n  - {name: prep, type: data_preparation, enabled: false}\n" + OPT)
    assert str(info.value) == ("wf.yaml: phase 'opt': field 'inputs': needs market data, "
                               "but data_preparation phase 'prep' is disabled (enabled: false)")


def test_reporting_can_turn_the_implicit_report_off():
    g = _load(DATA + "phases:\n" + OPT + "reporting: {enabled: false}\n").graph
    assert g.order == ("data", "opt")


def test_workflow_id_from_file_stem_or_explicit(tmp_path):
    text = DATA + "phases:\n" + OPT
    (tmp_path / "My Study-2.yaml").write_text(text)
    assert load_workflow(tmp_path / "My Study-2.yaml").workflow_id == "my_study_2"
    (tmp_path / "x.yaml").write_text("workflow: {id: Momentum_v2, name: Momentum}\n" + text)
    spec = load_workflow(tmp_path / "x.yaml")
    assert (spec.workflow_id, spec.name, spec.graph.asset_keys()[0]) == ("Momentum_v2", "Momentum", ("Momentum_v2", "data", "bars"))
    assert load_workflow_text("workflow: {name: Hello World}\n" + text).workflow_id == "hello_world"


def test_execution_section_and_infrastructure():
    spec = _load(DATA + "phases:\n" + OPT + "infrastructure: {executor: multiprocess, max_concurrent: 2}\n")
    assert (spec.executor, spec.max_concurrent) == ("multiprocess", 2)
    spec = _load(DATA + "phases:\n" + OPT + "infrastructure: {executor: multiprocess}\nexecution: {executor: in_process}\n")
    assert spec.graph.executor == "in_process"  # execution: wins


def test_data_split_forms_and_test_start_index():
    days = [date(2021, 12, 30), date(2021, 12, 31), date(2022, 1, 3), date(2022, 1, 4)]
    assert SplitConfig(test_start=date(2022, 1, 1)).test_start_index(days) == 2
    assert SplitConfig(train_end=date(2021, 12, 31)).test_start_index(days) == 2
    assert SplitConfig(test_fraction=0.5).test_start_index(days) == 2
    assert SplitConfig().test_fraction == 0.3 and SplitConfig().test_start_index(days) == 2  # ceil(1.2) = 2 test days
    spec = _load("data: {symbols: SPY, start_date: 2020-01-01, end_date: 2023-12-31, split: 0.25}\nphases:\n" + OPT)
    assert (spec.data.symbols, spec.data.split.as_config()) == (["SPY"], {"test_fraction": 0.25})
    spec = _load("data: {symbols: [SPY], start_date: '2020-01-01', end_date: '2023-12-31', split: '2023-01-02'}\n"
                 "phases:\n" + OPT)
    assert spec.data.split.as_config() == {"test_start": "2023-01-02"}


def test_criterion():
    c = Criterion.model_validate(0.5)
    assert (c.min, c.max, c.describe("sharpe_ratio")) == (0.5, None, "sharpe_ratio >= 0.5")
    c = Criterion(min=0.0, max=0.2)
    assert [c.passes(v) for v in (-0.1, 0.1, 0.3, float("nan"))] == [False, True, False, False]


def test_yaml_tags_are_not_constructed():
    with pytest.raises(WorkflowError) as info:
        _load("phases: !!python/object/apply:os.system ['echo hacked']\n")
    assert str(info.value).startswith("wf.yaml:1:9: YAML syntax error: could not determine a constructor "
                                      "for the tag 'tag:yaml.org,2002:python/object/apply:os.system'")


def test_effective_configs_are_json_serialisable():
    spec = load_workflow(Path(__file__).resolve().parents[2] / "workflows" / "basic_research.yaml")
    for node in spec.graph.phases.values():
        json.dumps(dict(node.config))


def test_every_kind_config_has_valid_defaults():
    # the kind's Config model is the one place its defaults live
    for kind in KINDS.available():
        kind.Config()
        kind.Config.model_validate(dict(kind.example_config))


def test_kind_lookups():
    assert KINDS.lookup("Grid_Search").name == "parameter_search"
    assert KINDS.lookup("walk_forward_validation").name == "walk_forward"
    assert KINDS.lookup("live_simulation").available is False
    assert KINDS.lookup("optimisation") is None
    pt = KINDS["parameter_search"]
    assert pt.resolve_output("top_25_parameter_sets") == ("top_parameter_sets", {"n": 25})
    assert pt.resolve_output("all_results") == ("optimization_history", {})
    assert pt.resolve_output("top_x_strategies") is None
    available = [k.name for k in KINDS.available()]
    assert {"data_preparation", "parameter_search", "analysis", "backtest", "report"} <= set(available)
    assert available[0] == "data_preparation" and available[-1] == "report"


def test_no_dagster_import_in_the_workflow_package():
    pkg = Path(__file__).resolve().parents[2] / "admf_assets" / "workflow"
    for path in pkg.glob("*.py"):
        if path.name == "compiler.py":
            continue
        text = path.read_text()
        assert "import dagster" not in text and "from dagster" not in text, path


def test_search_metrics_cover_the_engine_metrics():
    metrics = pytest.importorskip("admf_assets.engine.metrics")
    assert set(metrics.METRIC_COLUMNS) <= set(KINDS["parameter_search"].metrics)
