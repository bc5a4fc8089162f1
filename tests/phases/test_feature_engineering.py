"""feature_engineering: each feature against an independent per-window computation, causality,
and the one-line validation messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from admf_assets.engine.features import compute_features
from admf_assets.phases import KINDS
from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.loader import load_workflow_dict

KIND = KINDS["feature_engineering"]


def _frames(n=120, seed=3):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2022-01-03", periods=n, name="date")
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, 3)), axis=0)), index=idx,
                         columns=["A", "B", "C"])
    volume = pd.DataFrame(rng.uniform(1e5, 1e6, (n, 3)), index=idx, columns=close.columns)
    return close, volume


def test_features_match_a_direct_computation_at_every_row():
    close, volume = _frames()
    L = 10
    f = compute_features(close, volume, ["momentum", "volatility", "volume", "correlation", "trend"], [L])
    rets = close.pct_change()
    market = rets.mean(axis=1)
    for t in [L + 1, 40, 119]:  # rows after the warm-up, computed from the raw window
        for sym in close.columns:
            row = f[(f["date"] == close.index[t]) & (f["symbol"] == sym)].iloc[0]
            c = close[sym].to_numpy()
            assert row["momentum_10"] == pytest.approx(c[t] / c[t - L] - 1, rel=1e-12)
            r = rets[sym].to_numpy()[t - L + 1: t + 1]
            assert row["volatility_10"] == pytest.approx(np.std(r, ddof=1) * np.sqrt(252), rel=1e-9)
            v = volume[sym].to_numpy()[t - L + 1: t + 1]
            assert row["volume_z_10"] == pytest.approx((v[-1] - v.mean()) / np.std(v, ddof=1), rel=1e-9)
            m = market.to_numpy()[t - L + 1: t + 1]
            assert row["correlation_10"] == pytest.approx(np.corrcoef(r, m)[0, 1], rel=1e-9)
            assert row["trend_10"] == pytest.approx(c[t] / c[t - L + 1: t + 1].mean() - 1, rel=1e-12)
    # the warm-up rows are empty, not partially filled
    first = f[f["date"] == close.index[L - 1]]
    assert first["volatility_10"].isna().all() and first["momentum_10"].isna().all()
    assert f[f["date"] == close.index[L]]["momentum_10"].notna().all()


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=30, max_value=100), seed=st.integers(0, 10_000))
def test_no_feature_value_sees_a_later_bar(cut, seed):
    close, volume = _frames()
    rng = np.random.default_rng(seed)
    close2, volume2 = close.copy(), volume.copy()
    close2.iloc[cut + 1:] *= rng.uniform(0.5, 2.0, close2.iloc[cut + 1:].shape)
    volume2.iloc[cut + 1:] *= rng.uniform(0.1, 10.0, volume2.iloc[cut + 1:].shape)
    fams, lbs = ["momentum", "volatility", "volume", "correlation", "trend"], [3, 5, 20]
    a = compute_features(close, volume, fams, lbs)
    b = compute_features(close2, volume2, fams, lbs)
    upto = close.index[cut]
    pd.testing.assert_frame_equal(a[a.date <= upto], b[b.date <= upto], check_exact=True)


def _wf(config: dict):
    return {"data": {"symbols": ["SPY"], "start_date": "2021-01-04", "end_date": "2021-12-31"},
            "phases": [{"name": "fe", "type": "feature_engineering", "config": config}],
            "reporting": {"enabled": False}}


def test_seed_config_validates_and_is_normalised():
    g = load_workflow_dict(_wf({"features": ["momentum", "volatility", "volume", "correlation"],
                                "lookback_periods": [100, 5, 10, 20, 50, 5]}), source="wf.yaml").graph
    cfg = g.phases["fe"].config
    assert cfg["features"] == ["momentum", "volatility", "volume", "correlation"]
    assert cfg["lookback_periods"] == [5, 10, 20, 50, 100]
    assert [(e.upstream_ref, e.consumed) for e in g.phases["fe"].upstream] == [("data.bars", True)]


@pytest.mark.parametrize("config, line", [
    ({"features": ["momentun"]},
     "wf.yaml: phase 'fe': field 'config.features[0]': unknown feature 'momentun' (did you mean 'momentum'?); "
     "available: momentum, volatility, volume, correlation, trend"),
    ({"features": ["volatility"], "lookback_periods": [1, 5]},
     "wf.yaml: phase 'fe': field 'config.lookback_periods': feature 'volatility' needs lookbacks of at least 2 bars "
     "(got 1)"),
    ({"lookback_periods": [0]},
     "wf.yaml: phase 'fe': field 'config.lookback_periods[0]': a lookback must be between 1 and 2520 bars (got 0)"),
    ({"lookbacks": [5]},
     "wf.yaml: phase 'fe': field 'config.lookbacks': unknown key 'lookbacks'"),
])
def test_bad_configs_are_one_line(config, line):
    with pytest.raises(WorkflowError) as info:
        load_workflow_dict(_wf(config), source="wf.yaml")
    lines = info.value.lines()
    assert lines[0].startswith(line), lines


def test_other_phases_can_take_the_features_as_input():
    doc = _wf({})
    doc["phases"].append({"name": "opt", "type": "optimization", "inputs": ["fe.features"],
                          "config": {"parameters": {"fast_period": [5], "slow_period": [20]}}})
    g = load_workflow_dict(doc, source="wf.yaml").graph
    edges = {e.upstream_ref: e.consumed for e in g.phases["opt"].upstream}
    assert edges == {"fe.features": False, "data.bars": True}  # lineage now; consumed by kinds that read it
    assert g.order.index("fe") < g.order.index("opt")


def test_run_on_bars_adds_the_split_and_reports_its_size(kit, tmp_path):
    store = kit.write_market(tmp_path)
    graph = kit.workflow_for(KIND, config={"features": ["momentum", "volatility"], "lookback_periods": [5, 20]})
    res = kit.execute(graph, store)["target"]
    table = res.outputs["features"]
    assert list(table.columns) == ["date", "symbol", "split", "momentum_5", "momentum_20", "volatility_5",
                                   "volatility_20"]
    assert set(table["split"]) == {"train", "test"}
    assert table.loc[table.date >= kit.TEST_START, "split"].eq("test").all()
    assert res.metrics["n_features"] == 4 and res.metrics["n_rows"] == len(table)
    # NaN only in the warm-up: 20 returns are needed for the 20-bar volatility
    per_symbol = table.groupby("symbol")["volatility_20"].apply(lambda s: int(s.isna().sum()))
    assert per_symbol.tolist() == [20, 20]
