"""Compiled workflows running for real on a small backfilled market: failure policies and checks."""

import textwrap

import dagster as dg
import pytest

from admf_assets import runner

TINY = """\
workflow: {{name: Tiny, id: {wid}}}
data: {{symbols: [SPY], start_date: 2021-01-04, end_date: 2021-09-30, split: {{test_start: 2021-07-01}}}}
phases:
  - name: opt
    type: optimization
    config:
      optimization:
        parameters: {{fast_period: {fast}, slow_period: [20, 30]}}
{extra}
  - name: bt
    type: backtest
    inputs: [opt.best_parameters]
reporting: {{enabled: false}}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory, admf_env):
    root = tmp_path_factory.mktemp("phase_runs")
    with admf_env(root) as (instance, _):
        yield root, instance


def _wf(root, wid, fast="[5, 10]", extra=""):
    p = root / f"{wid}.yaml"
    p.write_text(TINY.format(wid=wid, fast=fast, extra=textwrap.indent(extra, "    ")))
    return str(p)


def _materialized(instance, run_id):
    recs = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in recs}


def test_missing_market_data_is_a_clear_error_naming_the_dates(env):
    root, instance = env
    out = runner.run_workflow(_wf(root, "nodata"), instance)
    assert not out.success
    msg = " ".join(out.failures)
    assert "phase 'data'" in msg and "nodata.yaml" in msg
    assert "market data for 194 weekday(s) is not materialized: 2021-01-04..2021-09-30" in msg
    assert "admf backfill --start 2021-01-04 --end 2021-09-30" in msg


def test_tiny_workflow_runs_and_critical_criterion_blocks_downstream(env):
    root, instance = env
    assert runner.backfill("2021-01-04", "2021-09-30", instance).success
    ok = runner.run_workflow(_wf(root, "tiny"), instance)
    assert ok.success, ok.failures
    assert _materialized(instance, ok.run_id) == {
        "tiny/data/bars", "tiny/opt/best_parameters", "tiny/opt/top_parameter_sets",
        "tiny/opt/optimization_history", "tiny/bt/validation_results", "tiny/bt/performance_report"}
    blocked = runner.run_workflow(_wf(root, "blocked", extra=(
        "critical: true\nsuccess_criteria:\n  n_valid_trials: {min: 100}\n")), instance)
    assert not blocked.success
    assert any("check n_valid_trials_min" in f for f in blocked.failures)
    mats = _materialized(instance, blocked.run_id)
    assert "blocked/opt/best_parameters" in mats
    assert not any(k.startswith("blocked/bt/") for k in mats)  # the failed check blocked it


def test_non_critical_criterion_only_warns(env):
    root, instance = env
    out = runner.run_workflow(_wf(root, "warned", extra="success_criteria:\n  n_valid_trials: {min: 100}\n"), instance)
    assert out.success
    assert any(k.startswith("warned/bt/") for k in _materialized(instance, out.run_id))


def test_continue_with_warning_skips_only_dependents(env):
    root, instance = env
    # every combination has fast >= slow: the search fails with a user error
    path = _wf(root, "soft", fast="[40, 50]", extra="on_failure: continue_with_warning\n")
    out = runner.run_workflow(path, instance)
    assert out.success
    mats = _materialized(instance, out.run_id)
    assert mats == {"soft/data/bars"}
    hard = runner.run_workflow(_wf(root, "hard", fast="[40, 50]"), instance)
    assert not hard.success
    assert any("no valid parameter combination" in f and "phase 'opt'" in f for f in hard.failures)


ANALYSIS = """\
workflow: {name: Analyzed, id: analyzed}
data: {symbols: [SPY], start_date: 2021-01-04, end_date: 2021-09-30, split: {test_start: 2021-07-01}}
phases:
  - name: opt
    type: optimization
    config:
      optimization: {parameters: {fast_period: [5, 10], slow_period: [20, 30]}}
  - name: ana
    type: analysis
    inputs: [opt.top_parameter_sets, opt.best_parameters]
    config:
      analyzers: [drawdown_analysis, correlation_analysis, regime_performance, monte_carlo_simulation]
      n_simulations: 200
    success_criteria:
      var_95: {max: 0.5}
      probability_of_loss: {max: 1.0}
  - name: bt
    type: backtest
    inputs: [opt.best_parameters]
    success_criteria:
      total_costs: {min: 0.0}
"""


def test_every_analyzer_and_reported_metrics(env):
    root, instance = env
    assert runner.backfill("2021-01-04", "2021-09-30", instance).success
    p = root / "analyzed.yaml"
    p.write_text(ANALYSIS)
    out = runner.run_workflow(str(p), instance)
    assert out.success, out.failures
    mats = _materialized(instance, out.run_id)
    assert {f"analyzed/ana/{n}" for n in ("performance_metrics", "drawdowns", "correlations",
                                          "regime_breakdown", "risk_assessment")} <= mats
    evals = [r.event_log_entry.dagster_event.event_specific_data for r in instance.get_records_for_run(
        out.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records]
    by_name = {e.check_name: e for e in evals}
    assert set(by_name) == {"var_95_max", "probability_of_loss_max", "total_costs_min"}
    assert all(e.passed for e in evals)
    var95 = by_name["var_95_max"].metadata["value"].value
    assert 0 < var95 < 0.1  # a daily 95 % VaR of a long-only SPY strategy
    from admf_assets import settings
    import pandas as pd

    regimes = pd.read_parquet(settings.storage_root() / "tables/analyzed/ana/regime_breakdown.parquet")
    assert set(regimes.regime) <= {"calm", "volatile"} and regimes.n_bars.sum() > 0


def test_admf_run_reads_the_yaml_once_and_builds_definitions_once(env, monkeypatch, capsys):
    """The CLI validates the file and hands the resolved graph on: no second parse, one Definitions."""
    root, instance = env
    assert runner.backfill("2021-01-04", "2021-09-30", instance).success
    from admf_assets import cli, defs
    from admf_assets.workflow import loader

    calls = {"parse": 0, "defs": 0}
    real_parse, real_defs = loader.parse_yaml, defs.build_defs

    def parse(*a, **k):
        calls["parse"] += 1
        return real_parse(*a, **k)

    def build(*a, **k):
        calls["defs"] += 1
        return real_defs(*a, **k)

    monkeypatch.setattr(loader, "parse_yaml", parse)
    monkeypatch.setattr(defs, "build_defs", build)
    assert cli.main(["run", _wf(root, "once"), "--no-backfill"]) == 0
    assert calls == {"parse": 1, "defs": 1}
    assert "run " in capsys.readouterr().out
