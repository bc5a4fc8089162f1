"""Trading settings in the YAML reach the engine's BacktestConfig."""

from admf_assets.phases.common import trading_config as backtest_config
from admf_assets.workflow.validate import load_workflow

WF = """\
data: {symbols: [SPY, QQQ], start_date: 2021-01-01, end_date: 2021-12-31}
phases:
  - name: opt
    type: optimization
    config:
      mode: long_short
      sizing: vol_target
      target_vol: 0.15
      weights: {SPY: 0.7, QQQ: 0.3}
      stop_loss: 0.05
      max_holding: 20
      strategies: [{type: mean_reversion}]
      optimization: {method: random, n_trials: 20, parameters: {lookback: [10, 60], entry_z: [1.5, 2.5]}}
  - name: bt
    type: backtest
    inputs: [opt.best_parameters]
    config: {cost_bps: 3, slippage_bps: 1, trailing_stop: 0.1}
"""


def test_settings_flow_into_the_engine_config(tmp_path):
    p = tmp_path / "wf.yaml"
    p.write_text(WF)
    g = load_workflow(str(p)).graph
    opt = backtest_config(dict(g.phases["opt"].config))
    assert (opt.mode, opt.sizing, opt.target_vol, opt.stop_loss, opt.max_holding) == (
        "long_short", "vol_target", 0.15, 0.05, 20)
    assert opt.weights == {"SPY": 0.7, "QQQ": 0.3}
    assert opt.cost_bps == 0.0  # the search runs without costs unless include_transaction_costs
    bt = backtest_config(dict(g.phases["bt"].config))
    assert (bt.cost_bps, bt.slippage_bps, bt.trailing_stop, bt.mode) == (3.0, 1.0, 0.1, "long_only")
