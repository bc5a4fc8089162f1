"""The walk_forward kind: fold dates from the workflow's dates, the upstream search re-run per
fold with its settings, the train-only data split, the seed forms."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from admf_assets.engine import search as engine_search
from admf_assets.engine.backtest import BacktestConfig
from admf_assets.phases import KINDS
from admf_assets.phases.common import close_matrix
from admf_assets.phases.kind import ConfigEnv
from admf_assets.workflow.loader import load_workflow_dict
from admf_assets.workflow.spec import DataSpec

KIND = KINDS["walk_forward"]
GRID = {"fast_period": [5, 10, 20], "slow_period": [30, 50]}


@pytest.fixture(scope="module")
def store(tmp_path_factory, kit):
    return kit.write_market(tmp_path_factory.mktemp("walk_forward"))


def _run(kit, store, wf_config, search_config=None):
    doc = {"workflow": {"name": "wf", "id": "wf"},
           "data": {"symbols": kit.SYMBOLS, "start_date": kit.START, "end_date": kit.END,
                    "split": {"test_start": kit.TEST_START}},
           "phases": [{"name": "opt", "type": "optimization",
                       "config": search_config or {"optimization": {"parameters": GRID}}},
                      {"name": "wfo", "type": "walk_forward", "inputs": ["opt.best_parameters"], "config": wf_config}],
           "reporting": {"enabled": False}}
    spec = load_workflow_dict(doc, source="<wf>")
    return spec, kit.execute(spec.graph, store)


def test_folds_are_planned_from_the_workflow_dates_and_respect_the_gap(kit, store):
    spec, results = _run(kit, store, {"walk_forward": {"train_period_days": 120, "test_period_days": 60,
                                                       "gap_days": 3}})
    node = spec.graph.phases["wfo"]
    table = results["wfo"].outputs["walk_forward_results"]
    assert tuple(table["fold"]) == node.partitions == ("fold_01", "fold_02", "fold_03", "fold_04")
    days = pd.bdate_range(kit.START, kit.END)
    for _, f in table.iterrows():
        assert days.get_loc(f["test_start"]) - days.get_loc(f["train_end"]) == 4  # 3 days of embargo between
        assert days.get_loc(f["train_end"]) - days.get_loc(f["train_start"]) == 119
        assert f["n_train_bars"] == 120 and f["n_test_bars"] == 60
    oos = results["wfo"].outputs["oos_equity"]
    assert oos["date"].iloc[0] == table["test_start"].iloc[0] and oos["date"].iloc[-1] == table["test_end"].iloc[-1]


def test_each_fold_re_runs_the_upstream_search_with_its_settings(kit, store):
    search = {"mode": "long_short", "optimization": {"parameters": GRID, "objective": "sortino_ratio"}}
    _, results = _run(kit, store, {"walk_forward": {"train_period_days": 120, "test_period_days": 60}}, search)
    table = results["wfo"].outputs["walk_forward_results"]
    trials = results["wfo"].outputs["fold_trials"]
    close = close_matrix(results["data"].outputs["bars"])
    f = table.iloc[1]
    train = close.loc[f["train_start"]:f["train_end"]]
    ref = engine_search.search(train, "momentum", GRID, objective="sortino_ratio",
                               config=BacktestConfig(mode="long_short"))
    mine = trials[trials["fold"] == f["fold"]].sort_values("trial_id")
    pd.testing.assert_series_equal(mine["objective"].reset_index(drop=True),
                                   ref.history["objective"].reset_index(drop=True), check_names=False)
    assert json.loads(f["params"]) == {**ref.best_params}
    assert (table["objective"] == "sortino_ratio").all()


def test_train_split_only_keeps_every_fold_before_the_test_split(kit, store):
    _, results = _run(kit, store, {"data_split": "train",
                                   "walk_forward": {"train_period_days": 100, "test_period_days": 40,
                                                    "window": "anchored"}})
    table = results["wfo"].outputs["walk_forward_results"]
    assert (pd.to_datetime(table["test_end"]) < pd.Timestamp(kit.TEST_START)).all()
    assert (table["train_start"] == table["train_start"].iloc[0]).all()  # anchored: expanding windows
    assert list(table["n_train_bars"]) == [100 + 40 * k for k in range(len(table))]


def test_seed_001_form_validates_with_warnings_for_what_is_not_computed(kit):
    env = ConfigEnv(data=DataSpec(symbols=["SPY"], start_date="2018-01-01", end_date="2023-12-31"))
    cfg = KIND.effective_config(KIND.Config.model_validate({
        "walk_forward": {"train_period_days": 504, "test_period_days": 126, "step_days": 63},
        "validation_metrics": ["performance_consistency", "parameter_stability",
                               "regime_adaptation_effectiveness", "ensemble_weight_stability"]}), env)
    assert not env.problems
    assert env.warnings == [("validation_metrics[3]", "ignored: 'ensemble_weight_stability' is not computed "
                                                      "(computed: performance_consistency, parameter_stability, "
                                                      "regime_adaptation_effectiveness)")]
    keys = KIND.partitions(cfg)
    assert keys[0] == "fold_01" and len(keys) == (1565 - 504 - 126) // 63 + 1
    # top-level window keys belong to walk_forward; expanding = anchored
    cfg = KIND.Config.model_validate({"train_period_days": 300, "window": "expanding", "embargo_days": 2})
    assert (cfg.walk_forward.train_period_days, cfg.walk_forward.window, cfg.walk_forward.gap_days) == \
        (300, "anchored", 2)
