"""A user strategy registered in a plugin module is usable from workflow YAML."""

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.validate import load_workflow

PLUGIN = '''
from admf_assets.engine.strategies import register_strategy

@register_strategy("user_sma_trend", params={"window": 50, "band": 0.0}, replace=True,
                   constraint=lambda p: p["window"] >= 2)
def user_sma_trend(ind, params, mode):
    sma = ind.grid("sma", params["window"])
    return ind.close[:, :, None] > sma * (1 + params["band"].to_numpy())
'''

WF = """\
data: {symbols: [SPY], start_date: 2021-01-01, end_date: 2021-12-31}
phases:
  - name: opt
    type: optimization
    config:
      strategies: [{type: user_sma_trend}]
      optimization: {parameters: {window: [10, 20, 50], band: [0.0, 0.01]}}
"""


def test_plugin_strategy_from_yaml(tmp_path, monkeypatch):
    (tmp_path / "my_strategies.py").write_text(textwrap.dedent(PLUGIN))
    wf = tmp_path / "wf.yaml"
    wf.write_text(WF)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ADMF_PLUGINS", "my_strategies")
    spec = load_workflow(str(wf))
    assert spec.graph.phases["opt"].config["strategies"][0]["type"] == "user_sma_trend"

    from admf_assets.engine.search import search

    rng = np.random.default_rng(1)
    close = pd.DataFrame({"SPY": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))},
                         index=pd.bdate_range("2021-01-01", periods=300))
    res = search(close, "user_sma_trend", {"window": [10, 20, 50], "band": [0.0, 0.01]})
    assert len(res.history) == 6
    sys.modules.pop("my_strategies", None)


def test_broken_plugin_is_one_clear_line(tmp_path, monkeypatch):
    wf = tmp_path / "wf.yaml"
    wf.write_text(WF)
    monkeypatch.setenv("ADMF_PLUGINS", "no_such_plugin_module")
    with pytest.raises(WorkflowError) as err:
        load_workflow(str(wf))
    assert str(err.value) == (f"{wf}: field 'ADMF_PLUGINS': cannot import 'no_such_plugin_module': "
                              "ModuleNotFoundError: No module named 'no_such_plugin_module'")
