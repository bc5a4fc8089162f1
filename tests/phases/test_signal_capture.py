"""signal_capture: captured members replay to exactly the engine's returns, the compact format
and its metadata, capture of a search's parameter sets, and the one-line messages."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine.backtest import BacktestConfig, run_backtest
from admf_assets.engine.capture import from_frame, replay
from admf_assets.phases import KINDS
from admf_assets.phases.common import close_matrix
from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.loader import load_workflow, load_workflow_dict

KIND = KINDS["signal_capture"]
GRID = {"strategies": [{"type": "momentum", "parameters": {"fast_period": [5, 10, 20], "slow_period": [30, 60]}},
                       {"type": "mean_reversion", "parameters": {"lookback": [10, 20], "entry_z": [1.5, 2.0]}}]}


@pytest.fixture(scope="module")
def captured(kit, tmp_path_factory):
    store = kit.write_market(tmp_path_factory.mktemp("capture"))
    graph = kit.workflow_for(KIND, config=GRID)
    results = kit.execute(graph, store)
    return results["target"], results["data"].outputs["bars"]


def test_replaying_each_member_reproduces_the_engine_returns_exactly(captured):
    res, bars = captured
    wide, table = res.outputs["compressed_signals"], res.outputs["signal_metadata"]
    cap = from_frame(wide, table)
    close = close_matrix(bars)
    config = BacktestConfig(cost_bps=5, slippage_bps=2, stop_loss=0.05)
    replayed = replay(cap, close, config)
    members = table.drop_duplicates("strategy_id")
    assert len(members) == 6 + 4
    for _, m in members.iterrows():
        direct = run_backtest(close, m["strategy"], json.loads(m["params"]), config).returns.iloc[:, 0]
        np.testing.assert_array_equal(replayed[m["strategy_id"]].to_numpy(), direct.to_numpy())


def test_compact_format_and_metadata(captured):
    res, bars = captured
    wide, table = res.outputs["compressed_signals"], res.outputs["signal_metadata"]
    n_bars = bars["date"].nunique()
    signal_cols = [c for c in wide.columns if c != "date"]
    assert len(wide) == n_bars and len(signal_cols) == 10 * 2  # 10 strategies x 2 symbols
    assert all(wide[c].dtype == np.int8 for c in signal_cols)
    assert set(np.unique(wide[signal_cols].to_numpy())) <= {-1, 0, 1}
    assert list(table["column"]) == signal_cols
    assert (table["dtype"] == "int8").all() and (table["bytes"] == n_bars).all()
    assert res.metrics["compression_ratio"] == pytest.approx(8.0)
    assert res.metrics["bytes"] == n_bars * 20 and res.metrics["n_strategies"] == 10
    meta = res.metadata["compressed_signals"]
    assert meta["shape"] == f"{n_bars} rows x 20 columns" and meta["compression_ratio_vs_float64"] == 8.0


def test_compression_off_stores_float64(kit, tmp_path):
    store = kit.write_market(tmp_path)
    graph = kit.workflow_for(KIND, config={**GRID, "signal_compression": False})
    res = kit.execute(graph, store)["target"]
    wide = res.outputs["compressed_signals"]
    assert all(wide[c].dtype == np.float64 for c in wide.columns if c != "date")
    assert res.metrics["compression_ratio"] == pytest.approx(1.0)


def _search_then_capture(extra: str = "") -> str:
    return f"""\
data: {{symbols: [SPY, QQQ], start_date: 2021-01-04, end_date: 2022-06-30, split: {{test_start: 2022-01-03}}}}
phases:
  - name: opt
    type: optimization
    config:
      mode: long_short
      optimization: {{parameters: {{fast_period: [5, 10, 20], slow_period: [30, 60]}}}}
    outputs: [best_parameters, top_3_parameter_sets, optimization_history]
  - name: signals
    type: signal_generation
    inputs: [opt.top_3_parameter_sets]
{extra}reporting: {{enabled: false}}
"""


def test_capture_of_a_search_takes_its_sets_and_its_mode(kit, tmp_path):
    store = kit.write_market(tmp_path / "m")
    p = tmp_path / "wf.yaml"
    p.write_text(_search_then_capture())
    graph = load_workflow(p).graph
    assert graph.phases["signals"].type == "signal_capture"
    results = kit.execute(graph, store)
    top = results["opt"].outputs["top_parameter_sets"]
    table = results["signals"].outputs["signal_metadata"]
    members = table.drop_duplicates("strategy_id")
    assert [json.loads(p) for p in members["params"]] == [json.loads(p) for p in top["params"]]
    assert (members["mode"] == "long_short").all()  # the search's mode, so replay matches what it ranked
    wide = results["signals"].outputs["compressed_signals"]
    assert pd.DatetimeIndex(wide["date"]).min() == pd.Timestamp("2021-01-04")  # the whole range, not the train split


def test_ignored_seed_keys_warn_in_one_line_each(tmp_path):
    p = tmp_path / "wf.yaml"
    p.write_text(_search_then_capture("    config: {capture_all_signals: true, include_regime_context: true}\n"))
    spec = load_workflow(p)
    assert spec.warnings == [f"{p}: phase 'signals': field 'config.include_regime_context': ignored: captured "
                             "positions carry no context; join regime labels at replay"]


@pytest.mark.parametrize("config, line", [
    ({}, "phase 'cap': field 'inputs': phase type 'signal_capture' needs top_parameter_sets or optimization_history "
         "or best_parameters or regime_optimized_strategies from an upstream phase: no phase of this workflow "
         "produces it (or set config.strategies)"),
    ({"strategies": [{"type": "momentun"}]},
     "phase 'cap': field 'config.strategies[0].type': unknown strategy 'momentun' (did you mean 'momentum'?)"),
    ({"strategies": [{"type": "momentum", "parameters": {"fastest": [5]}}]},
     "phase 'cap': field 'config.strategies[0].parameters.fastest': strategy 'momentum' has no parameter 'fastest'"),
])
def test_bad_configs_are_one_line(config, line):
    doc = {"data": {"symbols": ["SPY"], "start_date": "2021-01-04", "end_date": "2021-12-31"},
           "phases": [{"name": "cap", "type": "signal_capture", "config": config}], "reporting": {"enabled": False}}
    with pytest.raises(WorkflowError) as info:
        load_workflow_dict(doc, source="wf.yaml")
    assert info.value.lines()[0].startswith(f"wf.yaml: {line}"), info.value.lines()


def test_an_explicit_input_and_a_grid_contradict_each_other(tmp_path):
    p = tmp_path / "wf.yaml"
    p.write_text(_search_then_capture("    config: {strategy: momentum, parameters: {fast_period: [5]}}\n"))
    with pytest.raises(WorkflowError) as info:
        load_workflow(p)
    assert str(info.value) == (f"{p}: phase 'signals': field 'config.strategies': fixed config.strategies and the "
                               "input 'opt.top_3_parameter_sets' both give top_parameter_sets; remove one")
