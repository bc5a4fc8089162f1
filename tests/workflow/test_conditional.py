"""Conditional phases and conditions in ``enabled:`` at validate time: the seed's forms load,
every mistake is one line naming the file, phase and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from admf_assets.workflow.validate import load_workflow

REPO = Path(__file__).resolve().parents[2]

HEAD = """\
data:
  symbols: [SPY, QQQ]
  start_date: 2021-01-01
  end_date: 2023-12-31
  split: {test_start: 2023-01-01}
phases:
  - name: initial_assessment
    type: analysis
    config:
      market_condition_analysis: [volatility_regime, trend_strength, correlation_structure]
    outputs: [market_conditions, recommended_strategy_types]
"""

SELECTION = """\
  - name: strategy_selection
    type: conditional
    condition: "{condition}"
    if_true:
      type: optimization
      config:
        strategies: [{{type: mean_reversion}}]
        optimization: {{parameters: {{lookback_period: [10, 20]}}}}
    if_false:
      type: {false_type}
      config:
        strategies: [{{type: momentum}}]
        optimization: {{method: {method}, parameters: {{fast_period: [5, 10], slow_period: [30, 50]}}}}
    outputs: [selected_strategies, optimization_results, branch_decision]
"""


def _wf(write, condition="${initial_assessment.market_conditions.volatility} > 0.25", false_type="optimization",
        method="grid", extra=""):
    return write(HEAD + SELECTION.format(condition=condition, false_type=false_type, method=method) + extra)


def test_the_seed_form_validates_and_resolves_the_branch_outputs(write):
    g = load_workflow(_wf(write)).graph
    node = g.phases["strategy_selection"]
    assert node.type == "conditional"
    assert [(o.name, o.canonical) for o in node.outputs] == [
        ("selected_strategies", "top_parameter_sets"), ("optimization_results", "optimization_history"),
        ("branch_decision", "branch_decision")]
    ref = [e for e in node.upstream if e.upstream_phase == "initial_assessment"]
    assert [(e.upstream_output, e.kind) for e in ref] == [("market_conditions", "reference")]
    assert node.config["if_true"]["type"] == "parameter_search"  # the branch's effective config
    assert node.config["if_false"]["config"]["optimization"]["method"] == "grid"
    assert not node.optional  # both branches exist: the outputs are always produced


def test_the_shipped_adaptive_workflow_validates():
    g = load_workflow(REPO / "workflows" / "adaptive_research.yaml").graph
    assert g.order[:1] == ("data",) and "strategy_selection" in g.order and g.order[-1] == "report"
    ens = g.phases["ensemble_construction"]
    assert ens.settings.regime_conditional
    assert {e.canonical for e in ens.upstream if e.consumed} >= {"compressed_signals", "signal_metadata",
                                                                   "regime_classifications", "bars"}


@pytest.mark.parametrize("condition,fragment", [
    ("__import__('os').system('id')", "attribute access is not allowed: '__import__('os').system'"),
    ("__import__('os')", "calling '__import__' is not allowed"),
    ("${initial_assessment.market_conditions.volatility}.real > 0", "attribute access"),
    ("[x for x in (1,)]", "comprehension"),
    ("open('/etc/passwd')", "calling 'open'"),
    ("${initial_assessment.market_conditions} > 1", "invalid reference"),
])
def test_hostile_conditions_fail_validation_in_one_line(write, errors_of, condition, fragment):
    lines = errors_of(_wf(write, condition=condition))
    assert len(lines) == 1, lines
    assert "phase 'strategy_selection'" in lines[0] and "field 'condition'" in lines[0] and fragment in lines[0]


def test_a_reference_to_an_unknown_output_or_phase_is_named(write, errors_of):
    lines = errors_of(_wf(write, condition="${initial_assessment.market_condition.volatility} > 1"))
    assert len(lines) == 1 and "field 'condition'" in lines[0] and "did you mean" in lines[0], lines
    lines = errors_of(_wf(write, condition="${nowhere.market_conditions.volatility} > 1"))
    assert len(lines) == 1 and "unknown phase 'nowhere.market_conditions'" in lines[0], lines


def test_branch_errors_name_the_branch_field(write, errors_of):
    lines = errors_of(_wf(write, method="gridd"))
    assert len(lines) == 1, lines
    assert "field 'if_false.config.optimization.method'" in lines[0] and "did you mean 'grid'" in lines[0]
    lines = errors_of(_wf(write, false_type="optimisation"))
    assert len(lines) == 1 and "field 'if_false.type'" in lines[0] and "did you mean" in lines[0], lines


def test_condition_on_another_kind_and_missing_condition(write, errors_of):
    path = write(HEAD + """\
  - name: opt
    type: optimization
    condition: "1 > 0"
    config: {optimization: {parameters: {fast_period: [5], slow_period: [30]}}}
""")
    lines = errors_of(path)
    assert any("phase 'opt'" in l and "field 'condition'" in l and "only for phase type 'conditional'" in l
               for l in lines), lines
    path = write(HEAD + """\
  - name: sel
    type: conditional
    if_true: {type: optimization, config: {optimization: {parameters: {fast_period: [5], slow_period: [30]}}}}
""")
    lines = errors_of(path)
    assert len(lines) == 1 and "field 'condition'" in lines[0] and "required" in lines[0], lines


def test_enabled_takes_a_condition(write, errors_of):
    gated = """\
  - name: opt
    type: optimization
    config: {optimization: {parameters: {fast_period: [5, 10], slow_period: [30]}}}
  - name: refine
    type: optimization
    enabled: "${opt.best_parameters.sharpe_ratio} > 1.0"
    config: {optimization: {parameters: {fast_period: [6, 8], slow_period: [30]}}}
"""
    g = load_workflow(write(HEAD + gated)).graph
    node = g.phases["refine"]
    assert node.condition == "${opt.best_parameters.sharpe_ratio} > 1.0" and node.optional
    assert [(e.upstream_ref, e.kind, e.consumed) for e in node.upstream if e.upstream_phase == "opt"] == [
        ("opt.best_parameters", "reference", False)]
    bad = gated.replace("> 1.0", "> __import__('os')")
    lines = errors_of(write(HEAD + bad))
    assert len(lines) == 1 and "phase 'refine'" in lines[0] and "field 'enabled'" in lines[0], lines
    cycle = gated.replace("${opt.best_parameters.sharpe_ratio}", "${refine.best_parameters.sharpe_ratio}")
    lines = errors_of(write(HEAD + cycle))
    assert any("cycle" in l for l in lines), lines


def test_adaptive_weighting_needs_a_regime_input_only_when_set(write):
    ens = """\
  - name: capture
    type: signal_capture
    config: {strategies: [{type: momentum, parameters: {fast_period: [5, 10], slow_period: [30]}}]}
  - name: ens
    type: ensemble_optimization
    inputs: [capture.compressed_signals, capture.signal_metadata]
    config: {method: inverse_volatility, n_trials: 10}
"""
    g = load_workflow(write(HEAD + ens)).graph
    assert any("config.n_trials" in w and "ignored" in w for w in g.warnings), g.warnings
