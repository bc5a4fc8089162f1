"""workflows/real_market_risk.yaml end to end on the built-in sample data (real S&P 500 and NASDAQ
bars), on a shortened date range so that the backfill stays small; and its one-line refusal
under the default (synthetic) source."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "workflows" / "real_market_risk.yaml"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    for var in ("ADMF_STORAGE", "ADMF_SYMBOLS", "ADMF_WORKFLOWS_DIR", "ADMF_MARKET_START"):
        monkeypatch.delenv(var, raising=False)
    from admf_assets import settings

    settings.ensure_dagster_home()
    return tmp_path / "home"


def _short_copy(tmp_path) -> Path:
    """The shipped workflow with its data range cut to 2015..mid-2016 (August 2015 inside)."""
    doc = yaml.safe_load(WORKFLOW.read_text())
    doc["data"].update(start_date="2015-01-02", end_date="2016-06-30", split={"test_start": "2016-01-01"})
    # a copy of a workflows file needs its own id (it would replace the shipped workflow's results)
    doc.setdefault("workflow", {})["id"] = "real_market_risk_short"
    path = tmp_path / "real_market_risk.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_shipped_file_validates_and_names_the_source_it_needs(home, monkeypatch):
    from admf_assets import runner
    from admf_assets.workflow.compiler import compile_workflow
    from admf_assets.workflow.validate import load_workflow

    monkeypatch.delenv("ADMF_MARKET_SOURCE", raising=False)
    spec = load_workflow(str(WORKFLOW))
    assert spec.warnings == []
    compiled = compile_workflow(str(WORKFLOW))  # what the code location does with the default source
    assert compiled.graph.market_sources() == {"data": "sample"}
    with pytest.raises(ValueError) as exc:
        runner.missing_market_range(spec.graph)
    assert str(exc.value) == ("phase 'data': data.source: this workflow needs the market source 'sample': run it "
                              "with ADMF_MARKET_SOURCE=sample (the current source is 'synthetic')")


def test_real_market_risk_end_to_end_on_the_sample_source(home, tmp_path, monkeypatch):
    from admf_assets import runner, settings
    from admf_assets.workflow.validate import load_workflow

    monkeypatch.setenv("ADMF_MARKET_SOURCE", "sample")
    graph = load_workflow(str(_short_copy(tmp_path))).graph
    with dg.DagsterInstance.get() as instance:
        gap = runner.missing_market_range(graph)
        assert gap == ("2015-01-02", "2016-06-30")
        assert runner.backfill(*gap, instance).success
        out = runner.run_workflow(graph, instance)
        assert out.success, out.failures
        assert out.materialized == 15
    assert out.report_path and Path(out.report_path).exists()

    store = settings.storage_root() / "tables" / "real_market_risk_short"
    bars = pd.read_parquet(store / "data" / "bars.parquet")
    assert sorted(bars.symbol.unique()) == ["NASDAQ", "SP500"]
    sp = bars[bars.symbol == "SP500"].set_index("date")["close"]
    assert sp.loc["2015-08-24"] == pytest.approx(1893.21, abs=0.01)  # the real close of 24 Aug 2015
    assert pd.Timestamp("2015-12-25") not in sp.index  # exchange holiday: no bar

    stress = pd.read_parquet(store / "risk_analysis" / "stress_test_results.parquet").set_index("scenario")
    assert list(stress.index) == ["dot_com_crash", "financial_crisis", "august_2011", "august_2015", "q4_2018"]
    aug = stress.loc["august_2015"]
    assert aug["n_bars"] == 21 and aug["note"] == ""
    sp_aug = sp.loc["2015-07-31":"2015-08-31"].pct_change().dropna()
    nq = bars[bars.symbol == "NASDAQ"].set_index("date")["close"].loc["2015-07-31":"2015-08-31"].pct_change()
    expected_bh = (1 + (sp_aug + nq.dropna()) / 2).prod() - 1  # equal weights, rebalanced daily
    assert aug["buy_and_hold_return"] == pytest.approx(expected_bh, rel=1e-9)
    assert aug["buy_and_hold_max_drawdown"] < -0.08  # the August 2015 sell-off
    for name in ("dot_com_crash", "financial_crisis", "august_2011", "q4_2018"):
        assert stress.loc[name, "n_bars"] == 0
        assert stress.loc[name, "note"] == "outside the data (2015-01-02..2016-06-30)"

    var = pd.read_parquet(store / "risk_analysis" / "risk_metrics.parquet")
    assert set(var.method) == {"historical", "parametric", "cornish_fisher", "garch"}
    assert set(var.level) == {0.95, 0.99, 0.999} and set(var.series) == {"strategy", "buy_and_hold"}
    assert (var["cvar"] >= var["var"] - 1e-12).all()

    recs = pd.read_parquet(store / "risk_budget" / "risk_recommendations.parquet")
    k = float(recs.loc[recs.constraint == "exposure_scale", "scale"].iloc[0])
    assert recs["measured_end"].max() < pd.Timestamp("2016-01-01")  # the train years only
    plain = pd.read_parquet(store / "validation" / "performance_report.parquet")
    managed = pd.read_parquet(store / "risk_managed_backtest" / "performance_report.parquet")
    np.testing.assert_allclose(managed["return"], k * plain["return"], rtol=1e-12, atol=1e-15)
    vr = pd.read_parquet(store / "risk_managed_backtest" / "validation_results.parquet")
    assert vr["exposure_scale"].iloc[0] == pytest.approx(k)
