"""The basic research workflow end to end in a temporary DAGSTER_HOME, through the CLI's runner."""

import base64
import json
import math
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADMF_STORAGE", raising=False)
    monkeypatch.setenv("ADMF_SYMBOLS", "SPY,QQQ")
    monkeypatch.delenv("ADMF_WORKFLOWS_DIR", raising=False)
    from admf_assets import settings

    settings.ensure_dagster_home()
    return tmp_path / "home"


def test_basic_research_end_to_end(home):
    from admf_assets import runner, settings
    from admf_assets.workflow.validate import load_workflow

    graph = load_workflow("basic_research", REPO / "workflows").graph
    with dg.DagsterInstance.get() as instance:
        gap = runner.missing_market_range(graph)
        assert gap == ("2021-01-01", "2023-12-29")
        assert runner.backfill(*gap, instance).success
        assert runner.missing_market_range(graph) is None
        out = runner.run_workflow("basic_research", instance)
        assert out.success, out.failures
        assert out.materialized == 10
        run = instance.get_run_by_id(out.run_id)
        assert run.job_name == "basic_research"
        checks = {e.check_name: e for e in instance.get_records_for_run(
            out.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
            for e in [e.event_log_entry.dagster_event.event_specific_data]}
        assert checks["n_valid_trials_min"].passed and checks["n_valid_trials_min"].metadata["value"].value == 45

    store = settings.storage_root() / "tables" / "basic_research"
    bars = pd.read_parquet(store / "data" / "bars.parquet")
    test_start = pd.Timestamp("2023-01-02")  # first trading day on/after the split date 2023-01-01
    assert bars.loc[bars.split == "test", "date"].min() == test_start
    assert bars.loc[bars.split == "train", "date"].max() < test_start

    # the search saw only the train period
    best = pd.read_parquet(store / "parameter_optimization" / "best_parameters.parquet")
    assert best.train_end.iloc[0] < test_start
    hist = pd.read_parquet(store / "parameter_optimization" / "optimization_history.parquet")
    assert len(hist) == 45  # 4 x 4 x 3 grid minus fast >= slow
    top = pd.read_parquet(store / "parameter_optimization" / "top_10_parameter_sets.parquet")
    assert len(top) == 10 and top["rank"].tolist() == list(range(1, 11))
    assert top.iloc[0].params == best.iloc[0].params

    # out-of-sample numbers come only from test-period returns, with costs
    perf = pd.read_parquet(store / "validation" / "performance_report.parquet")
    assert perf.date.min() > test_start and perf.date.max() == pd.Timestamp("2023-12-29")
    assert (perf.split == "test").all()
    res = pd.read_parquet(store / "validation" / "validation_results.parquet").iloc[0]
    assert res.start > test_start and res.n_bars == len(perf) == 259
    assert res.cost_bps == 5.0 and res.slippage_bps == 2.0
    assert res.total_return == pytest.approx((1 + perf["return"]).prod() - 1, rel=1e-12)

    # recompute the out-of-sample returns independently with pandas: the position decided at the
    # close of t earns t -> t+1; the 7 bps of costs are paid on the trade at the close of t
    # (first order: the engine charges them like vectorbt, on the order value)
    params = json.loads(res.params)
    close = bars.pivot(index="date", columns="symbol", values="close")
    f = close.rolling(params["fast_period"]).mean()
    s = close.rolling(params["slow_period"]).mean()
    pos = ((f - s) / s > params["signal_threshold"]).astype(float)
    held = pos.shift(1).fillna(0.0)
    gross = (held * close.pct_change().fillna(0.0)).mean(axis=1)
    cost = (pos.diff().abs().fillna(pos.abs()) * 7e-4).mean(axis=1)
    expected = (gross - cost).loc[perf.date]
    assert expected.to_numpy() == pytest.approx(perf["return"].to_numpy(), abs=2e-5)
    # (a one-bar timing error in returns or costs would differ by >= 3.5e-4 somewhere)

    # every table is queryable in DuckDB
    con = duckdb.connect(str(settings.duckdb_path()), read_only=True)
    try:
        n = con.execute("select count(*) from basic_research.parameter_optimization__optimization_history").fetchall()[0][0]
    finally:
        con.close()
    assert n == 45

    # the report: one autoescaped HTML file whose path is in the metadata
    assert out.report_path and Path(out.report_path).is_file()
    html = Path(out.report_path).read_text()
    assert "Basic Research Pipeline" in html and "<svg" in html and "Out-of-sample" in html
    assert (Path(out.report_path).parent / "latest.html").read_text() == html

    # ... leading with its verdict (none: no validation phase), then the phases; linked to its run
    assert html.index("<h2>Executive summary</h2>") < html.index("<h2>parameter_optimization</h2>")
    assert '<p class="headline">Not validated</p>' in html
    assert f'href="http://127.0.0.1:3000/runs/{out.run_id}"' in html
    assert "<dt>market data source</dt><dd>synthetic</dd>" in html

    # the key charts are images in the asset metadata; floats rounded; no NaN; time and memory per phase
    with dg.DagsterInstance.get() as instance:
        def meta(*key):
            return instance.get_latest_materialization_event(dg.AssetKey(["basic_research", *key])) \
                .asset_materialization.metadata

        for key, name in ((("validation", "validation_results"), "equity_and_drawdown"),
                          (("parameter_optimization", "optimization_history"), "heatmap"),
                          (("data", "bars"), "prices"),
                          (("performance_analysis", "performance_metrics"), "best_equity_and_drawdown")):
            md = meta(*key)[name]
            assert isinstance(md, dg.MarkdownMetadataValue), key
            assert md.value.startswith("![") and "](data:image/png;base64," in md.value, key
            png = base64.b64decode(md.value.split("base64,", 1)[1].rstrip(")"))
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 100_000, key
        md = meta("validation", "validation_results")
        assert md["compute_seconds"].value > 0 and md["peak_rss_mb"].value > 50 and "rss_increase_mb" in md
        for k, v in md.items():
            if isinstance(v, dg.FloatMetadataValue):
                assert math.isfinite(v.value) and float(f"{v.value:.6g}") == v.value, k
        assert "metric/n_trades" in md
        assert "nan" not in {str(v.value) for v in meta("performance_analysis", "performance_metrics").values()}
