"""The "is it luck?" experiment, reduced and seeded (bench/bench_luck.py runs it at 100 + 100 seeds):
the best of a grid search on random walks is judged NOT valid, on a planted edge valid; and the
same verdicts from `admf`'s own path, on a `files` directory of generated CSVs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dagster as dg
import pytest

from admf_assets.engine.luck import planted_edge_bars, random_walk_bars

REPO = Path(__file__).resolve().parents[1]
SEEDS = 20


def _bench():
    spec = importlib.util.spec_from_file_location("bench_luck", REPO / "bench" / "bench_luck.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def graph(bench):
    # the verdict's default criteria use the deflated Sharpe ratio and PBO only: the Monte Carlo
    # and bootstrap intervals (run by the bench) do not change it
    return bench.workflow(validation={"validation_method": ["deflated_sharpe", "pbo"]})


def test_noise_is_judged_not_valid(bench, graph):
    res = bench.experiment(SEEDS, None, graph)
    assert (~res["is_valid"]).sum() >= 0.95 * SEEDS, res
    assert res["n_trials"].eq(40).all()
    assert (res["sharpe"] >= bench.NAIVE_SHARPE).sum() >= 3  # what the best in-sample Sharpe alone would accept


def test_a_planted_edge_is_judged_valid(bench, graph):
    res = bench.experiment(SEEDS, bench.EDGE, graph)
    assert res["is_valid"].sum() >= 0.9 * SEEDS, res


def test_the_generators_are_seeded_and_valid_bars():
    a, b = random_walk_bars(["X"], "2020-01-01", "2020-12-31", seed=3), random_walk_bars(["X"], "2020-01-01",
                                                                                           "2020-12-31", seed=3)
    assert a.equals(b) and not a.equals(random_walk_bars(["X"], "2020-01-01", "2020-12-31", seed=4))
    e = planted_edge_bars(["X", "Y"], "2020-01-01", "2020-12-31", seed=3)
    for bars in (a, e):
        assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
        assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
        assert (bars["close"] > 0).all()


WORKFLOW = """\
workflow: {{name: luck {which}, id: luck_{which}}}
data: {{symbols: [{a}, {b}], start_date: 2018-01-01, end_date: 2019-12-31}}
phases:
  - name: search
    type: optimization
    config:
      mode: long_short
      optimization:
        parameters: {{fast_period: [5, 10, 20, 30], slow_period: [40, 60, 100, 150, 200],
                     signal_threshold: [0.0, 0.01]}}
  - name: validation
    type: validation
    depends_on: [search]
    critical: true
    config: {{n_simulations: 200, n_bootstrap: 1000}}
  - name: backtest
    type: backtest
    inputs: [search.best_parameters]
    depends_on: [validation]
reporting: {{enabled: false}}
"""


def test_through_admf_on_a_files_directory(tmp_path, monkeypatch):
    """Random-walk and planted-edge CSVs read by the `files` source: the critical validation
    blocks the backtest of the noise winner and lets the edge's through.  Two years of data and
    fixed seeds keep it quick: the statistical claim is the experiment above (on two years the
    verdict's power is lower, see README "Validation")."""
    data = tmp_path / "csv"
    data.mkdir()
    frames = {"RWA": random_walk_bars(["RWA"], "2018-01-01", "2019-12-31", seed=3),
              "RWB": random_walk_bars(["RWB"], "2018-01-01", "2019-12-31", seed=4),
              "EDA": planted_edge_bars(["EDA"], "2018-01-01", "2019-12-31", seed=3),
              "EDB": planted_edge_bars(["EDB"], "2018-01-01", "2019-12-31", seed=4)}
    for sym, bars in frames.items():
        bars.drop(columns="symbol").rename(columns=str.capitalize).to_csv(data / f"{sym}.csv", index=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADMF_STORAGE", raising=False)
    monkeypatch.setenv("ADMF_MARKET_SOURCE", "files")
    monkeypatch.setenv("ADMF_MARKET_PATH", str(data))
    monkeypatch.setenv("ADMF_SYMBOLS", ",".join(frames))
    from admf_assets import runner, settings

    settings.ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:
        assert runner.backfill("2018-01-01", "2019-12-31", instance).success
        outcomes = {}
        for which, (a, b) in {"noise": ("RWA", "RWB"), "edge": ("EDA", "EDB")}.items():
            path = tmp_path / f"luck_{which}.yaml"
            path.write_text(WORKFLOW.format(which=which, a=a, b=b))
            outcomes[which] = runner.run_workflow(str(path), instance)
    noise, edge = outcomes["noise"], outcomes["edge"]
    assert not noise.success
    assert any("check is_valid_min on luck_noise/validation/validation_summary failed" in f for f in noise.failures)
    assert edge.success, edge.failures
    assert edge.materialized == 9  # bars, 3 search tables, 3 validation tables, 2 backtest tables
