"""Every invalid case gives one line naming the file, the phase and the field."""

from __future__ import annotations

import pytest

from admf_assets.workflow.errors import WorkflowError, WorkflowValidationError
from admf_assets.workflow.validate import load_workflow
from admf_assets.phases import KINDS

AVAILABLE = ", ".join(k.name for k in KINDS.available())


def _one(errors_of, path) -> str:
    lines = errors_of(path)
    assert len(lines) == 1, lines
    assert "\n" not in lines[0]
    return lines[0]


def test_unknown_phase_type_suggests_closest(write, base, errors_of):
    p = write(base + "  - {name: extra, type: optimisation}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'extra': field 'type': unknown phase type 'optimisation' (did you mean 'optimization'?); "
        f"available: {AVAILABLE}"
    )


def test_phase_type_not_available_yet(write, base, errors_of):
    p = write(base + "  - {name: wf, type: live_simulation, depends_on: [opt]}\n")
    assert _one(errors_of, p) == f"{p}: phase 'wf': field 'type': phase type 'live_simulation' is not available yet"


def test_unavailable_type_alias_names_canonical_type(write, base, errors_of):
    p = write(base + "  - {name: pt, type: paper_trading}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'pt': field 'type': phase type 'paper_trading' (live_simulation) is not available yet"
    )


def test_disabled_phase_of_unavailable_type_is_accepted(write, base):
    p = write(base + "  - {name: wf, type: live_simulation, enabled: false}\n")
    spec = load_workflow(p)
    assert spec.graph.disabled == ("wf",)
    assert "wf" not in spec.graph.order


def test_misspelled_output_in_input_reference(write, base, errors_of):
    p = write(base.replace("inputs: [opt.best_parameters]", "inputs: [opt.best_paramters]"))
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'inputs': unknown input 'opt.best_paramters' (did you mean 'opt.best_parameters'?): "
        "phase 'opt' outputs best_parameters, top_5_parameter_sets, optimization_history"
    )


def test_misspelled_phase_in_input_reference(write, base, errors_of):
    p = write(base.replace("inputs: [opt.best_parameters]", "inputs: [otp.best_parameters]"))
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'inputs': unknown input 'otp.best_parameters' (did you mean 'opt.best_parameters'?)"
    )


def test_unknown_depends_on_phase(write, base, errors_of):
    p = write(base + "    depends_on: [optt]\n")
    assert _one(errors_of, p) == f"{p}: phase 'bt': field 'depends_on': unknown phase 'optt' (did you mean 'opt'?)"


def test_depends_on_takes_phase_names(write, base, errors_of):
    p = write(base + "    depends_on: [opt.best_parameters]\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'depends_on': depends_on takes phase names (got 'opt.best_parameters'); "
        "put 'phase.output' references in inputs"
    )


def test_duplicate_phase_names(write, base, errors_of):
    p = write(base + "  - {name: opt, type: backtest, inputs: [opt.best_parameters]}\n")
    assert _one(errors_of, p) == f"{p}: phase 'opt': field 'name': duplicate phase name 'opt' (phases #1, #3)"


def test_dependency_cycle_prints_path(write, base, errors_of):
    p = write(base + """\
  - {name: a, type: analysis, inputs: [opt.best_parameters, c.performance_metrics]}
  - {name: b, type: analysis, inputs: [opt.best_parameters], depends_on: [a]}
  - {name: c, type: analysis, inputs: [opt.best_parameters], depends_on: [b]}
""")
    assert _one(errors_of, p) == f"{p}: phase 'a': field 'inputs': dependency cycle: a -> b -> c -> a"


def test_self_dependency_is_a_cycle(write, base, errors_of):
    p = write(base + "    depends_on: [bt]\n")
    assert _one(errors_of, p) == f"{p}: phase 'bt': field 'depends_on': dependency cycle: bt -> bt"


def test_disabled_phase_still_needed(write, base, errors_of):
    p = write(base.replace("    outputs: [best_parameters,", "    enabled: false\n    outputs: [best_parameters,"))
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'inputs': needs 'opt.best_parameters', but phase 'opt' is disabled (enabled: false)"
    )


def test_disabled_phase_no_longer_needed_is_fine(write, base):
    text = base.replace("    outputs: [best_parameters,", "    enabled: false\n    outputs: [best_parameters,")
    text = text.replace("    inputs: [opt.best_parameters]\n", "    config: {parameters: {fast_period: 5, slow_period: 20}}\n")
    spec = load_workflow(write(text))
    assert spec.graph.order == ("data", "bt", "report")
    assert spec.graph.disabled == ("opt",)


def test_missing_required_config_key(write, base, errors_of):
    text = base.replace("""        parameters:
          fast_period: [5, 10]
          slow_period: [20, 30]
""", "        method: grid\n")
    p = write(text)
    assert _one(errors_of, p) == (
        f"{p}: phase 'opt': field 'config.optimization.parameters': required for phase type 'parameter_search' "
        "with method 'grid': a mapping of parameter name -> values (sampler methods use each strategy's default "
        "search space)"
    )


def test_wrong_value_type_in_config(write, base, errors_of):
    p = write(base + "    config: {include_transaction_costs: 'yes'}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'config.include_transaction_costs': Input should be a valid boolean (got 'yes')"
    )


def test_wrong_value_type_of_number(write, base, errors_of):
    p = write(base + "    config: {cost_bps: five}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'config.cost_bps': "
        "Input should be a valid number, unable to parse string as a number (got 'five')"
    )


def test_wrong_value_type_of_retries(write, base, errors_of):
    p = write(base + "    retries: three\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'retries': expected a number of retries or {{count, delay, backoff, jitter}} (got 'three')"
    )


def test_unknown_phase_key_suggests_closest(write, base, errors_of):
    p = write(base + "    ouputs: [validation_results]\n")
    assert _one(errors_of, p) == f"{p}: phase 'bt': field 'ouputs': unknown key 'ouputs' (did you mean 'outputs'?)"


def test_unknown_nested_key_suggests_closest(write, base, errors_of):
    p = write(base + "    retries: {count: 2, backof: linear}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'retries.backof': unknown key 'backof' (did you mean 'backoff'?)"
    )


def test_unknown_config_key_suggests_closest(write, base, errors_of):
    p = write(base + "    config: {slipage_bps: 3}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'config.slipage_bps': unknown key 'slipage_bps' (did you mean 'slippage_bps'?)"
    )


def test_unknown_top_level_section(write, base, errors_of):
    p = write(base + "reportng: {title: x}\n")
    assert _one(errors_of, p) == f"{p}: field 'reportng': unknown key 'reportng' (did you mean 'reporting'?)"


def test_invalid_literal_value_suggests(write, base, errors_of):
    p = write(base + "    on_failure: retyr\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'on_failure': invalid value 'retyr'; "
        "expected one of: abort, continue_with_warning, retry (did you mean 'retry'?)"
    )


def test_phase_name_must_be_asset_key_safe(write, base, errors_of):
    p = write(base.replace("name: bt", "name: 'out of sample'"))
    assert _one(errors_of, p) == (
        f"{p}: phase 'out of sample': field 'name': invalid phase name 'out of sample': use only letters, digits "
        "and '_' (it becomes part of a Dagster asset key), e.g. 'out_of_sample'"
    )


def test_unknown_output_name(write, base, errors_of):
    p = write(base + "    outputs: [validation_results, equity_curv]\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'outputs[1]': unknown output 'equity_curv' for phase type 'backtest' "
        "(did you mean 'equity_curve'?); valid: validation_results, performance_report"
    )


def test_two_names_for_the_same_output(write, base, errors_of):
    p = write(base + "    outputs: [validation_results, metrics]\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'outputs[1]': outputs 'validation_results' and 'metrics' "
        "are the same output (validation_results)"
    )


def test_unknown_optimization_method(write, base, errors_of):
    p = write(base.replace("        parameters:\n", "        method: gird\n        parameters:\n", 1))
    assert _one(errors_of, p) == (
        f"{p}: phase 'opt': field 'config.optimization.method': unknown optimization method 'gird' "
        "(did you mean 'grid'?) (available: grid, random, bayesian, robust_optimization, return_maximization, "
        "cmaes, nsga2, differential_evolution; aliases: tpe, genetic, cma_es, de)"
    )


@pytest.mark.parametrize("method, canonical", [("bayesian", "bayesian"), ("tpe", "bayesian"), ("cmaes", "cmaes"),
                                               ("cma_es", "cmaes"), ("differential_evolution", "differential_evolution"),
                                               ("genetic", "nsga2"), ("NSGA-II", "nsga2")])
def test_sampler_methods_validate_with_their_canonical_name(write, base, method, canonical):
    p = write(base.replace("        parameters:\n", f"        method: {method}\n        parameters:\n", 1)
              .replace("fast_period: [5, 10]", "fast_period: [5, 15]"))
    opt = load_workflow(str(p)).graph.phases["opt"].config["optimization"]
    assert opt["method"] == canonical and opt["n_trials"] == 100  # the default budget of a sampler


def test_random_search_needs_n_trials(write, base, errors_of):
    p = write(base.replace("        parameters:\n", "        method: random\n        parameters:\n", 1))
    assert _one(errors_of, p) == (
        f"{p}: phase 'opt': field 'config.optimization.n_trials': required for method 'random'"
    )


def test_unknown_objective(write, base, errors_of):
    p = write(base.replace("        parameters:\n", "        objective: sharp_ratio\n        parameters:\n", 1))
    line = _one(errors_of, p)
    assert line.startswith(
        f"{p}: phase 'opt': field 'config.optimization.objective': unknown objective 'sharp_ratio' "
        "(did you mean 'sharpe_ratio'?); known: sharpe_ratio, sortino_ratio, "
    ), line


def test_unknown_analyzer_suggests_canonical_name(write, base, errors_of):
    p = write(base + "  - {name: an, type: analysis, inputs: [opt.best_parameters], config: {analyzers: [drawdwn]}}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'an': field 'config.analyzers[0]': unknown analyzer 'drawdwn' (did you mean 'drawdown_analysis'?); "
        "available: drawdown_analysis, correlation_analysis, regime_performance, monte_carlo_simulation, "
        "market_condition_analysis"
    )


def test_analysis_output_needs_its_analyzer(write, base, errors_of):
    p = write(base + "  - {name: an, type: analysis, inputs: [opt.best_parameters], outputs: [regime_breakdown]}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'an': field 'outputs[0]': output 'regime_breakdown' needs analyzer 'regime_performance' "
        "in config.analyzers (configured: drawdown_analysis, correlation_analysis)"
    )


def test_backtest_without_parameters_or_input(write, base, errors_of):
    p = write(base.replace("    inputs: [opt.best_parameters]\n", ""))
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'inputs': phase type 'backtest' needs best_parameters from an upstream phase: "
        "e.g. inputs: ['opt.best_parameters'] (or set config.parameters)"
    )


def test_analysis_without_parameter_input(write, base, errors_of):
    p = write(base + "  - {name: an, type: analysis}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'an': field 'inputs': phase type 'analysis' needs best_parameters or top_parameter_sets "
        "from an upstream phase: e.g. inputs: ['opt.best_parameters']"
    )


def test_fixed_parameters_and_input_conflict(write, base, errors_of):
    p = write(base + "    config: {parameters: {fast_period: 5}}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'config.parameters': fixed config.parameters and the input 'opt.best_parameters' "
        "both give best_parameters; remove one"
    )


def test_ambiguous_upstream(write, base, errors_of):
    p = write(base.replace("  - name: bt\n", """\
  - name: opt2
    type: optimization
    config: {parameters: {fast_period: [3, 4]}}
  - name: bt
""").replace("inputs: [opt.best_parameters]", "inputs: [opt.best_parameters, opt2.best_parameters]"))
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'inputs': ambiguous best_parameters: opt.best_parameters, opt2.best_parameters; "
        "keep exactly one in inputs / depends_on"
    )


def test_unknown_success_metric(write, base, errors_of):
    p = write(base + "    success_criteria: {sharp_ratio: {min: 0.5}}\n")
    line = _one(errors_of, p)
    assert line.startswith(
        f"{p}: phase 'bt': field 'success_criteria.sharp_ratio': unknown metric 'sharp_ratio' for phase type "
        "'backtest' (did you mean 'sharpe_ratio'?); known: total_return, annual_return, "
    )


def test_bad_success_criterion_shape(write, base, errors_of):
    p = write(base + "    success_criteria: {sharpe_ratio: {min: 2, max: 1}}\n")
    assert _one(errors_of, p) == (
        f"{p}: phase 'bt': field 'success_criteria.sharpe_ratio.min': min 2.0 is greater than max 1.0"
    )


def test_two_timeouts(write, base, errors_of):
    p = write(base + "    timeout: 60\n    timeout_hours: 1\n")
    assert _one(errors_of, p) == f"{p}: phase 'bt': field 'timeout_hours': give only one of timeout, timeout_hours"


def test_negative_timeout(write, base, errors_of):
    p = write(base + "    timeout: -3\n")
    assert _one(errors_of, p) == f"{p}: phase 'bt': field 'timeout': Input should be greater than 0 (got -3)"


def test_data_section_error_names_the_field_only(write, base, errors_of):
    p = write(base.replace("end_date: 2023-12-31", "end_date: 2019-12-31"))
    assert _one(errors_of, p) == f"{p}: field 'data.end_date': end_date 2019-12-31 must be after start_date 2020-01-01"


def test_split_outside_the_date_range(write, base, errors_of):
    p = write(base.replace("  end_date: 2023-12-31\n", "  end_date: 2023-12-31\n  split: {test_start: 2025-01-01}\n"))
    assert _one(errors_of, p) == (
        f"{p}: field 'data.split': split.test_start 2025-01-01 must lie strictly between "
        "start_date 2020-01-01 and end_date 2023-12-31"
    )


def test_two_split_kinds(write, base, errors_of):
    p = write(base.replace("  end_date: 2023-12-31\n",
                           "  end_date: 2023-12-31\n  split: {test_start: 2022-01-01, test_fraction: 0.2}\n"))
    assert _one(errors_of, p) == (
        f"{p}: field 'data.split.test_fraction': give only one of test_start, train_end, test_fraction "
        "(got test_start, test_fraction)"
    )


def test_missing_data_section(write, base, errors_of):
    p = write(base.split("phases:\n", 1)[1].join(["phases:\n", ""]))
    assert _one(errors_of, p) == (
        f"{p}: field 'data': required: phase 'opt' (type parameter_search) needs market data; "
        "give data: {symbols, start_date, end_date}"
    )


def test_invalid_date_in_yaml(write, base, errors_of):
    p = write(base.replace("start_date: 2020-01-01", "start_date: 2020-13-01"))
    assert _one(errors_of, p) == f"{p}:3:15: invalid value '2020-13-01': month must be in 1..12"


def test_yaml_syntax_error_has_line_and_column(write, errors_of):
    p = write("phases:\n  - name: a\n   type: b\n")
    assert _one(errors_of, p) == (
        f"{p}:3:4: YAML syntax error: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection)"
    )


def test_yaml_duplicate_key(write, base, errors_of):
    p = write(base + "    inputs: [opt.best_parameters]\n")
    assert _one(errors_of, p) == f"{p}:17:5: duplicate key 'inputs' (first at line 16)"


def test_empty_file(write, errors_of):
    p = write("# nothing\n")
    assert _one(errors_of, p) == f"{p}: the file is empty"


def test_reserved_implicit_names(write, base, errors_of):
    p = write(base.replace("name: bt", "name: report"))
    assert _one(errors_of, p) == (
        f"{p}: phase 'report': field 'name': the name 'report' is reserved for the implicit report phase; "
        "rename this phase, add an explicit report phase, or set reporting.enabled: false"
    )


def test_unknown_phase_in_phase_resources(write, base, errors_of):
    p = write(base + "infrastructure:\n  phase_resources:\n    otp: {max_workers: 2}\n")
    assert _one(errors_of, p) == f"{p}: field 'infrastructure.phase_resources.otp': unknown phase 'otp' (did you mean 'opt'?)"


def test_invalid_workflow_id(write, base, errors_of):
    p = write("workflow: {id: 'my flow'}\n" + base)
    assert _one(errors_of, p) == (
        f"{p}: field 'workflow.id': invalid workflow id 'my flow': use only letters, digits and '_' "
        "(it prefixes every asset key), e.g. 'my_flow'"
    )


def test_unknown_workflow_name(tmp_path, write, errors_of):
    write("phases: []\n", "workflows/basic_research.yaml")
    lines = errors_of("basic_reserch", workflows_dir=tmp_path / "workflows")
    assert lines == [
        f"{tmp_path / 'workflows' / 'basic_reserch.yaml'}: unknown workflow 'basic_reserch' "
        f"(did you mean 'basic_research'?); workflows in {tmp_path / 'workflows'}: basic_research"
    ]


def test_several_problems_are_reported_together(write, base):
    p = write(base + "    config: {cost_bps: five, data_split: tset}\n"
              "  - {name: an, type: analysis, inputs: [opt.best_parameters], config: {analyzers: [montecarlo]}}\n")
    with pytest.raises(WorkflowValidationError) as info:
        load_workflow(p)
    err = info.value
    assert isinstance(err, WorkflowError)
    assert str(err).splitlines() == err.lines() == [
        f"{p}: phase 'bt': field 'config.cost_bps': Input should be a valid number, "
        "unable to parse string as a number (got 'five')",
        f"{p}: phase 'bt': field 'config.data_split': invalid value 'tset'; expected one of: train, test, all "
        "(did you mean 'test'?)",
        f"{p}: phase 'an': field 'config.analyzers[0]': unknown analyzer 'montecarlo' "
        "(did you mean 'monte_carlo_simulation'?); available: drawdown_analysis, correlation_analysis, "
        "regime_performance, monte_carlo_simulation, market_condition_analysis",
    ]
    assert (err.file, err.phase, err.field) == (str(p), "bt", "config.cost_bps")


def test_phase_level_errors_stop_before_config_errors(write, base, errors_of):
    # stage order: phase models first; config problems are reported once the phases are well-formed
    p = write(base + "    config: {cost_bps: five}\n  - {name: x, type: backtest, inputs: [opt.best_parameters], retries: -1}\n")
    assert errors_of(p) == [f"{p}: phase 'x': field 'retries.count': Input should be greater than or equal to 0 (got -1)"]


def test_unknown_strategy(write, base, errors_of):
    p = write(base.replace("      optimization:\n", "      strategies: [{type: momentun}]\n      optimization:\n", 1))
    (line,) = errors_of(p)
    assert line.startswith(
        f"{p}: phase 'opt': field 'config.strategies[0].type': unknown strategy 'momentun' "
        "(did you mean 'momentum'?); known: "
    )
    assert "mean_reversion" in line


def test_unknown_strategy_parameter(write, base, errors_of):
    p = write(base.replace("fast_period: [5, 10]", "fast_periods: [5, 10]"))
    assert errors_of(p) == [
        f"{p}: phase 'opt': field 'config.optimization.parameters.fast_periods': strategy 'momentum' has no "
        "parameter 'fast_periods' (did you mean 'fast_period'?); its parameters: fast_period, slow_period, "
        "signal_threshold"
    ]


def test_unknown_fixed_backtest_parameter(write, base, errors_of):
    p = write(base.replace("    inputs: [opt.best_parameters]\n",
                           "    config: {strategy: momentum, parameters: {fast_period: 5, slow: 20, lookback: 3}}\n"))
    assert errors_of(p) == [
        f"{p}: phase 'bt': field 'config.parameters.lookback': strategy 'momentum' has no parameter 'lookback'; "
        "its parameters: fast_period, slow_period, signal_threshold"
    ]


def test_invalid_pool_names_in_phase_and_phase_resources(write, base, errors_of):
    p = write(base + "    pool: bad pool\ninfrastructure: {phase_resources: {opt: {pool: 'x y'}}}\n")
    assert errors_of(p) == [
        f"{p}: phase 'bt': field 'pool': invalid pool name 'bad pool': use letters, digits, '_', '-', '.', '/'",
        f"{p}: field 'infrastructure.phase_resources.opt.pool': invalid pool name 'x y': "
        "use letters, digits, '_', '-', '.', '/'",
    ]
