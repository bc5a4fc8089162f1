"""Names the seeds give that a kind knows but does not produce or read: one "ignored" line each
at validate (``PhaseKind.unproduced_outputs`` / ``ignored_inputs``), never an asset."""

from __future__ import annotations

from admf_assets.workflow.validate import load_workflow


def test_an_output_a_kind_does_not_produce_is_one_ignored_line_and_no_asset(write, base):
    text = base.replace("outputs: [best_parameters, top_5_parameter_sets, optimization_history]",
                        "outputs: [best_parameters, regime_switching_rules]")
    spec = load_workflow(write(text))
    lines = [w for w in spec.warnings if "regime_switching_rules" in w]
    assert len(lines) == 1 and "phase 'opt': field 'outputs[1]': ignored: output 'regime_switching_rules' is not " \
                               "produced: regime_optimized_strategies holds" in lines[0], spec.warnings
    assert [o.name for o in spec.graph.phases["opt"].outputs] == ["best_parameters"]


def test_only_unproduced_outputs_is_an_error(write, base, errors_of):
    text = base.replace("outputs: [best_parameters, top_5_parameter_sets, optimization_history]",
                        "outputs: [ensemble_weights]").replace("inputs: [opt.best_parameters]", "inputs: [opt]")
    lines = errors_of(write(text))
    assert any("phase 'opt': field 'outputs': none of the listed outputs is produced" in ln for ln in lines), lines


def test_an_input_a_kind_does_not_read_is_one_ignored_line(write, base):
    text = base.replace("  - name: bt\n    type: backtest\n    inputs: [opt.best_parameters]\n", """\
  - name: cap
    type: signal_capture
    inputs: [opt.top_5_parameter_sets]
  - name: ens
    type: ensemble_optimization
    method: signal_replay
    inputs: [cap.compressed_signals]
    config: {optimization: {method: equal_weight}, n_bootstrap: 0}
  - name: wfo
    type: walk_forward
    inputs: [ens.optimal_ensemble_weights, opt.best_parameters]
    config: {walk_forward: {train_period_days: 252, test_period_days: 126}}
""")
    spec = load_workflow(write(text))
    lines = [w for w in spec.warnings if "phase 'wfo'" in w]
    assert len(lines) == 1 and "field 'inputs': ignored: input 'ens.optimal_ensemble_weights' is not read" in lines[0]
    ens = spec.graph.phases["ens"]  # signal_metadata came with the captured signals by itself
    assert {e.upstream_ref for e in ens.upstream} >= {"cap.compressed_signals", "cap.signal_metadata"}
