"""Seed 001's institutional pipeline (workflows/institutional_research.yaml) end to end through
the runner at a reduced CI size: the same 8 phases, kinds and keys on a shorter range with
smaller budgets (``reduced``; bench/bench_institutional.py runs it at the seed's sizes)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "workflows" / "institutional_research.yaml"
#: the reduced size: 3 symbols, 2018-2020, budgets in the tens (the seed: 6 symbols, 2018-2023,
#: 10000 random trials, 200 per regime, 100 generations of 50)
SYMBOLS = ["SPY", "TLT", "GLD"]
START, END = "2018-01-01", "2020-12-31"


def reduced(doc: dict) -> dict:
    """The workflow document at the CI size (same phases, kinds and keys)."""
    doc = json.loads(json.dumps(doc, default=str))
    doc["data"].update({"symbols": SYMBOLS, "start_date": START, "end_date": END})
    ph = {p["name"]: p for p in doc["phases"]}
    ph["broad_parameter_search"]["config"]["optimization"]["n_trials"] = 48
    ph["regime_analysis"]["config"]["regime_detection"]["n_regimes"] = [2]
    ph["regime_analysis"]["config"]["search_reps"] = 1
    ph["regime_specific_optimization"]["config"]["optimization"]["n_trials_per_regime"] = 8
    ens = ph["ensemble_optimization"]["config"]
    ens["optimization"].update({"n_generations": 4, "population_size": 10})
    ens.update({"n_bootstrap": 2, "stability_trials": 10})
    ph["walk_forward_validation"]["config"]["walk_forward"].update(
        {"train_period_days": 252, "test_period_days": 126, "step_days": 126})
    ph["risk_analysis"]["config"]["stress_scenarios"][1]["date_range"] = ["2020-06-01", "2020-12-31"]
    doc["reporting"] = {"enabled": False}
    return doc


def load(doc: dict):
    from admf_assets.workflow.loader import load_workflow_dict

    return load_workflow_dict(doc, source=str(WORKFLOW), default_id="institutional_research")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("institutional")
    mp.setenv("DAGSTER_HOME", str(root / "home"))
    mp.delenv("ADMF_STORAGE", raising=False)
    mp.setenv("ADMF_SYMBOLS", ",".join(SYMBOLS))
    from admf_assets import settings
    from admf_assets.engine import marketdata, synthetic
    from admf_assets.market import partition_keys_between
    from resources.storage import TableStore

    settings.ensure_dagster_home()
    # the clean market partitions written straight into the store (what a backfill stores)
    clean, _ = marketdata.clean_bars(synthetic.synthetic_bars(SYMBOLS, START, END))
    TableStore(settings.storage_root()).write_partitions(
        ["market", "clean_bars"], clean, clean["date"].dt.strftime("%Y-%m-%d").to_numpy(),
        partition_keys_between(START, END), views=False)
    yield root
    mp.undo()


def test_the_seed_keys_no_phase_honours_are_one_warning_each():
    spec = load(yaml.safe_load(WORKFLOW.read_text(encoding="utf-8")))
    where = [(w.split("phase '")[1].split("'")[0], w.split("field '")[1].split("'")[0]) for w in spec.warnings]
    assert len(where) == len(set(where)), spec.warnings  # one line per key
    assert set(where) >= {
        ("regime_specific_optimization", "config.ensemble_optimization"),
        ("regime_specific_optimization", "outputs[1]"), ("regime_specific_optimization", "outputs[2]"),
        ("signal_capture", "config.include_regime_context"), ("signal_capture", "outputs[2]"),
        ("walk_forward_validation", "inputs"), ("walk_forward_validation", "config.validation_metrics[3]"),
        ("risk_analysis", "config.risk_analysis"), ("risk_analysis", "config.tail_risk_analysis.extreme_scenario_modeling"),
        ("strategy_construction", "config.include_market_impact"),
        ("strategy_construction", "config.realistic_execution_delays"),
        ("strategy_construction", "config.regime_aware_position_sizing"),
        ("strategy_construction", "outputs[2]"), ("strategy_construction", "outputs[3]"),
    }, spec.warnings
    g = spec.graph
    assert [n for n in g.order if n not in ("data", "report")] == [
        "broad_parameter_search", "regime_analysis", "regime_specific_optimization", "signal_capture",
        "ensemble_optimization", "walk_forward_validation", "risk_analysis", "strategy_construction"]
    assert g.phases["broad_parameter_search"].settings.optimization.n_trials == 10000
    assert g.phases["walk_forward_validation"].partitions[0] == "fold_01"


def _meta(instance, *key):
    ev = instance.get_latest_materialization_event(dg.AssetKey(list(key)))
    return None if ev is None else {k: getattr(v, "value", v) for k, v in ev.asset_materialization.metadata.items()}


def test_the_institutional_pipeline_materializes_at_a_reduced_size(home):
    from admf_assets import runner, settings

    graph = load(reduced(yaml.safe_load(WORKFLOW.read_text(encoding="utf-8")))).graph
    with dg.DagsterInstance.get() as instance:
        out = runner.run_workflow(graph, instance)
        assert out.success, out.failures
        folds = len(graph.phases["walk_forward_validation"].partitions)
        per_fold = [o for o in graph.phases["walk_forward_validation"].outputs if o.partitioned]
        assert out.materialized == len(graph.asset_keys()) + (folds - 1) * len(per_fold)  # one per fold
        tables = settings.storage_root() / "tables" / "institutional_research"

        def table(phase, output):
            folder = tables / phase / output
            return pd.read_parquet(folder) if folder.is_dir() else pd.read_parquet(folder.with_suffix(".parquet"))

        weights = table("ensemble_optimization", "optimal_ensemble_weights")
        inc = weights[weights["included"]]
        for _, w in inc.groupby("regime")["weight"]:  # the seed's constraints, in every regime
            assert w.sum() == pytest.approx(1.0) and w.min() >= 0.05 - 1e-9 and w.max() <= 0.4 + 1e-9
        folds = table("walk_forward_validation", "walk_forward_results")
        assert len(folds) == len(graph.phases["walk_forward_validation"].partitions) >= 2
        stress = table("risk_analysis", "stress_test_results").set_index("scenario")
        assert list(stress.index) == ["covid_crash", "rate_hike_cycle", "tech_selloff"]
        assert stress.loc["covid_crash", "n_bars"] > 30  # inside the walk-forward's out-of-sample period
        oos = table("walk_forward_validation", "oos_equity")
        assert pd.Timestamp(oos["date"].min()) < pd.Timestamp("2020-02-01")
        recs = table("risk_analysis", "risk_recommendations")
        scale = float(recs["scale"].iloc[-1])
        final = table("strategy_construction", "final_strategy_performance").iloc[0]
        assert final["exposure_scale"] == pytest.approx(scale) and final["split"] == "test"
        prod = table("strategy_construction", "production_configuration")
        all_w = inc[inc["regime"] == "all"]
        assert sorted(prod["weight"].round(12)) == sorted(all_w["weight"].round(12))
        assert np.isfinite(final["sharpe_ratio"])
        meta = _meta(instance, "institutional_research", "strategy_construction", "final_strategy_performance")
        assert meta is not None and "metric/sharpe_ratio" in meta
