"""The YAML examples of the product spec (seed 001), copied verbatim into fixtures/seed/."""

from __future__ import annotations

import shutil

import pytest
import yaml

from admf_assets.workflow.loader import load_workflow_dict
from admf_assets.workflow.templates import deep_merge
from admf_assets.workflow.validate import load_workflow


def _copy(tmp_path, name):
    from pathlib import Path

    src = Path(__file__).parent / "fixtures" / "seed" / f"{name}.yaml"
    dst = tmp_path / f"{name}.yaml"
    shutil.copy(src, dst)
    return dst


def test_fixture_is_the_seed_text_verbatim():
    from pathlib import Path

    seed = Path("/work/shared/seeds/001_7472eaee49f5c456.txt")
    fixture = (Path(__file__).parent / "fixtures" / "seed" / "basic_multi_phase.yaml").read_text(encoding="utf-8")
    assert fixture.startswith("# config/basic_multi_phase.yaml\nworkflow:\n")
    if seed.exists():  # the shared seed folder is not part of the repository
        assert fixture in seed.read_text(encoding="utf-8")


def test_basic_multi_phase_loads_as_written(tmp_path):
    spec = load_workflow(_copy(tmp_path, "basic_multi_phase"))
    g = spec.graph
    assert spec.workflow_id == g.workflow_id == "basic_multi_phase"
    assert g.name == "Basic Research Pipeline"
    assert g.order == ("data", "parameter_optimization", "performance_analysis", "validation", "report")
    assert {n: g.phases[n].type for n in g.order} == {
        "data": "data_preparation",
        "parameter_optimization": "parameter_search",
        "performance_analysis": "analysis",
        "validation": "backtest",
        "report": "report",
    }
    assert [n for n in g.order if g.phases[n].implicit] == ["data", "report"]
    assert [(a.phase, a.name, a.canonical) for a in g.assets()] == [
        ("data", "bars", "bars"),
        ("parameter_optimization", "best_parameters", "best_parameters"),
        ("parameter_optimization", "top_10_parameter_sets", "top_parameter_sets"),
        ("parameter_optimization", "optimization_history", "optimization_history"),
        ("performance_analysis", "performance_metrics", "performance_metrics"),
        ("performance_analysis", "regime_breakdown", "regime_breakdown"),
        ("performance_analysis", "risk_assessment", "risk_assessment"),
        ("validation", "validation_results", "validation_results"),
        ("validation", "final_performance_report", "performance_report"),
        ("report", "report", "report"),
    ]
    assert g.asset_keys()[2] == ("basic_multi_phase", "parameter_optimization", "top_10_parameter_sets")
    assert g.phases["parameter_optimization"].output("top_10_parameter_sets").params == {"n": 10}
    edges = {(d, e.upstream_ref, e.kind) for d, e in g.edges()}
    non_report = {x for x in edges if x[0] != "report"}
    assert non_report == {
        ("parameter_optimization", "data.bars", "implicit"),
        ("performance_analysis", "parameter_optimization.best_parameters", "input"),
        ("performance_analysis", "data.bars", "implicit"),
        ("validation", "parameter_optimization.best_parameters", "input"),
        ("validation", "data.bars", "implicit"),
    }
    report_edges = [e.upstream_ref for e in g.phases["report"].upstream]
    assert report_edges == [f"{a.phase}.{a.name}" for a in g.assets() if a.phase != "report"]
    assert len(g.edges()) == 5 + 9


def test_basic_multi_phase_effective_configs(tmp_path):
    g = load_workflow(_copy(tmp_path, "basic_multi_phase")).graph
    data = g.phases["data"].config
    assert dict(data) == {
        "symbols": ["SPY"],
        "start_date": "2022-01-01",
        "end_date": "2023-12-31",
        "split": {"test_fraction": 0.3},  # no split given: the default
    }
    opt = g.phases["parameter_optimization"].config
    assert opt["optimization"] == {
        "method": "grid",
        "parameters": {
            "fast_period": {"values": [5, 10, 15, 20]},
            "slow_period": {"values": [20, 30, 40, 50]},
            "signal_threshold": {"values": [0.01, 0.02, 0.05]},
        },
        "param_definitions": None,
        "objective": "sharpe_ratio",
        "direction": "maximize",
        "n_trials": None,
        "n_iterations": None,
        "n_generations": None,
        "population_size": None,
        "batch_size": None,
        "seed": 42,
        "constraints": None,
        "risk_penalty": 0.0,
        "risk_measure": "max_drawdown",
        "group_by_regime": False,
        "n_trials_per_regime": None,
        "min_regime_days": 60,
        "storage": None,
        "resume": True,
        "importance": "ped_anova",
        "max_workers": 1,
        "container_count": None,
    }
    assert opt["strategies"] == [{"type": "momentum", "optimization_target": True, "parameters": {}}]
    assert opt["data_split"] == "train" and opt["top_n"] == 10
    assert g.phases["performance_analysis"].config["analyzers"] == [
        "drawdown_analysis", "regime_performance", "correlation_analysis", "monte_carlo_simulation"]
    val = g.phases["validation"].config
    assert (val["data_split"], val["include_transaction_costs"], val["generate_detailed_report"]) == ("test", True, True)
    assert (val["cost_bps"], val["slippage_bps"]) == (5.0, 2.0)
    rep = g.phases["report"].config
    assert dict(rep) == {
        "title": "Basic Research Pipeline",
        "output_path": "reports/multi_phase_research/",
        "include_phase_reports": True,
        "generate_summary_report": True,
    }
    # infrastructure.phase_resources reach the phases
    assert [(g.phases[n].max_workers, g.phases[n].memory_limit_gb) for n in
            ("parameter_optimization", "performance_analysis", "validation")] == [(16, 32.0), (4, 8.0), (1, 4.0)]
    assert g.executor == "in_process"


NOT_AVAILABLE = {
    "parallel_research": [
        ("alt_data_integration", "phase type 'data_integration' is not available yet"),
    ],
    "data_dependencies": [
        ("data_preprocessing", "phase type 'data_processing' is not available yet"),
    ],
    "data_transformation": [
        ("signal_processing", "phase type 'transformation' is not available yet"),
    ],
    "production_deployment": [  # paper and shadow trading exist; live trading never will
        ("gradual_rollout", "phase type 'live_trading' is not offered: this platform does not connect to a broker "
                            "(simulate the deployment with type paper_trading, and shadow_mode: true for a baseline "
                            "beside it)"),
    ],
}


@pytest.mark.parametrize("name", sorted(NOT_AVAILABLE))
def test_other_seed_workflows_fail_naming_the_unavailable_type(tmp_path, errors_of, name):
    path = _copy(tmp_path, name)
    assert errors_of(path) == [f"{path}: phase '{ph}': field 'type': {msg}" for ph, msg in NOT_AVAILABLE[name]]


def test_the_pre_deployment_validation_phase_config_is_accepted(tmp_path):
    """Seed 001's comprehensive_validation: validation_tests (none of them a statistical method
    here: each is reported as ignored) and acceptance_criteria min_sharpe_ratio / max_drawdown /
    min_win_rate."""
    from admf_assets.phases import KINDS
    from admf_assets.phases.kind import ConfigEnv

    doc = yaml.safe_load(_copy(tmp_path, "production_deployment").read_text(encoding="utf-8"))
    phase = doc["phases"][0]
    kind = KINDS.lookup(phase["type"])
    env = ConfigEnv()
    cfg = kind.effective_config(kind.Config.model_validate(phase["config"]), env)
    assert kind.name == "validation" and not env.problems
    assert len(env.warnings) == 6  # five test names that are not methods, and the defaults used instead
    assert (cfg.acceptance_criteria.min_sharpe_ratio, cfg.acceptance_criteria.max_drawdown,
            cfg.acceptance_criteria.min_win_rate) == (1.0, 0.15, 0.45)
    assert kind.resolve_output("validated_strategy") == ("validation_summary", {})


def test_the_institutional_walk_forward_phase_config_is_accepted(tmp_path, errors_of):
    """Seed 001's walk-forward phase (504 / 126 / 63 days, validation_metrics, three outputs)
    validates; the workflow's other phases still use keys this platform does not have."""
    path = _copy(tmp_path, "institutional_research")
    lines = errors_of(path)
    assert lines and not [line for line in lines if "phase 'walk_forward_validation'" in line]


#: the basic example gives its backtest phase resources, which one parameter set does not use
BACKTEST_RESOURCES = [
    f"phase 'validation': field 'infrastructure.phase_resources.validation.{key}': ignored: phase type 'backtest' "
    f"does not use {key} (it applies to: {users})"
    for key, users in (("memory_limit_gb", "parameter_search, signal_capture, analysis"),
                       ("max_workers", "parameter_search, analysis"))]


def test_the_adaptive_seed_names_what_it_still_lacks(tmp_path, errors_of):
    """Seed 001's adaptive workflow (with a data section): the conditional, the market assessment
    and the ensemble kinds exist; what is left is named in its branch's fields."""
    text = _copy(tmp_path, "adaptive_conditional").read_text(encoding="utf-8")
    path = tmp_path / "adaptive.yaml"
    path.write_text("data: {symbols: [SPY, QQQ], start_date: 2021-01-01, end_date: 2023-12-31}\n" + text,
                    encoding="utf-8")
    lines = errors_of(path)
    assert lines and all("phase 'strategy_selection': field 'if_" in line for line in lines), lines
    assert not any("not available yet" in line for line in lines)


FRAGMENTS = {
    "checkpointing": ["field 'workflow.checkpointing': ignored: every phase output is a Dagster materialization; "
                      "resume by re-executing from the failure"],
    "resource_management": ["field 'workflow.resource_management': ignored: use infrastructure.phase_resources "
                            "(max_workers, memory_limit_gb, pool) and infrastructure.max_concurrent"],
    "monitoring": ["field 'workflow.monitoring': ignored: progress, logs and timings are in the Dagster UI"],
    "workflow_analytics": ["field 'reporting.workflow_analytics': ignored: run timings and lineage are in the Dagster UI"],
    "error_handling": [
        "field 'workflow.error_handling.phase_error_policies.parameter_optimization.fallback_method': not supported; ignored",
        "field 'workflow.error_handling.phase_error_policies.walk_forward_validation': no phase "
        "'walk_forward_validation' in this workflow (did you mean 'validation'?); ignored",
        "field 'workflow.error_handling.phase_error_policies.final_validation': no phase 'final_validation' "
        "in this workflow (did you mean 'validation'?); ignored",
        "field 'workflow.error_handling.global_error_policy': ignored: a failed run keeps what it materialized; "
        "re-execute from the failure in Dagster",
    ],
}


@pytest.mark.parametrize("name", sorted(FRAGMENTS))
def test_section_fragments_alone_have_no_phases(tmp_path, errors_of, name):
    path = _copy(tmp_path, name)
    assert errors_of(path) == [f"{path}: field 'phases': required: a list of phases"]


@pytest.mark.parametrize("name", sorted(FRAGMENTS))
def test_section_fragments_load_inside_the_basic_workflow(tmp_path, name):
    """The guide's section snippets (checkpointing, monitoring, ...) are accepted in a workflow;
    what Dagster replaces is reported as a warning, error policies are applied to the phases."""
    basic = yaml.safe_load(_copy(tmp_path, "basic_multi_phase").read_text(encoding="utf-8"))
    fragment = yaml.safe_load(_copy(tmp_path, name).read_text(encoding="utf-8"))
    spec = load_workflow_dict(deep_merge(basic, fragment), source="merged.yaml", default_id="merged")
    assert spec.graph.order == ("data", "parameter_optimization", "performance_analysis", "validation", "report")
    assert spec.warnings == [f"merged.yaml: {w}" for w in FRAGMENTS[name] + BACKTEST_RESOURCES]
    if name == "error_handling":
        node = spec.graph.phases["parameter_optimization"]
        assert node.on_failure == "retry"
        assert node.retries is not None and node.retries.count == 2


def test_the_staged_deployment_seed_paper_and_shadow_stages(tmp_path):
    """Seed 001's paper and shadow trading stages as written, after a research phase in place of
    the validation stage this branch lacks (and without the live stage, which is refused): their
    keys validate, what a simulation cannot honour is one warning line each, and the seed's
    comparison_baseline name is one error line naming the field."""
    seed = yaml.safe_load(_copy(tmp_path, "production_deployment").read_text(encoding="utf-8"))
    stages = {p["name"]: p for p in seed["phases"]}
    research = {"name": "pre_deployment_validation", "type": "optimization",
                "config": {"optimization": {"parameters": {"fast_period": [5, 10], "slow_period": [20, 40]}}}}
    paper = dict(stages["paper_trading"], inputs=["pre_deployment_validation.best_parameters"])
    shadow = stages["shadow_trading"]
    doc = {"workflow": seed["workflow"], "data": {"symbols": ["SPY"], "start_date": "2022-01-03",
                                                  "end_date": "2023-12-29"},
           "phases": [research, paper, shadow]}
    lines = []
    try:
        load_workflow_dict(doc, source="deploy.yaml")
    except Exception as exc:  # noqa: BLE001 - a WorkflowError: its lines are the assertion
        lines = exc.lines()
    assert lines == ["deploy.yaml: phase 'shadow_trading': field 'config.comparison_baseline': unknown baseline "
                     "'current_production_strategy': use buy_and_hold, {strategy, parameters} or 'phase.output' (a "
                     "best_parameters, optimal_ensemble_weights or performance_validation output of this workflow)"]
    shadow["config"]["comparison_baseline"] = "buy_and_hold"
    spec = load_workflow_dict(doc, source="deploy.yaml")
    g = spec.graph
    assert [g.phases[n].type for n in ("paper_trading", "shadow_trading")] == ["paper_trading", "paper_trading"]
    assert g.phases["shadow_trading"].upstream[0].upstream_ref == "paper_trading.performance_validation"
    assert [o.name for o in g.phases["shadow_trading"].outputs] == ["ledger", "performance_validation",
                                                                     "comparative_results"]
    assert g.phases["paper_trading"].config["start_date"] == "2024-01-01"  # the weekday after the data
    assert {c.name: c.blocking for c in g.phases["paper_trading"].checks} == {
        "duration_days": False, "tracking_deviation": True, "volatility_deviation": True}
    assert spec.warnings == [
        "deploy.yaml: phase 'paper_trading': field 'config.real_time_data': ignored: there is no real-time feed; "
        "the ledger books each market day when its clean-bars partition is materialized",
        "deploy.yaml: phase 'paper_trading': field 'config.monitoring.real_time_alerts': ignored: failed checks and "
        "runs are recorded by the alerts sensor (admf db \"SELECT * FROM monitoring.alerts\")",
        "deploy.yaml: phase 'paper_trading': field 'config.monitoring.performance_tracking': ignored: "
        "performance_validation always tracks the ledger",
    ]
