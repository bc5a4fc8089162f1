"""Compiled workflows running for real on a small backfilled market: failure policies and checks."""

import re
import textwrap

import dagster as dg
import pytest

from admf_assets import runner
from admf_assets.phases.kind import Output, PhaseError, PhaseKind

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


@pytest.fixture(scope="module")
def backfilled(env):
    """The module's market data, backfilled once (the first test that needs it)."""
    root, instance = env
    assert runner.backfill("2021-01-04", "2021-09-30", instance).success
    return env


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


def test_tiny_workflow_runs_and_critical_criterion_blocks_downstream(backfilled):
    root, instance = backfilled
    ok = runner.run_workflow(_wf(root, "tiny"), instance)
    assert ok.success, ok.failures
    # the search's progress is in the event log (the terminal draws it as a bar)
    assert "progress: 4/4 momentum combinations" in {e.user_message for e in instance.all_logs(ok.run_id)}
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


def test_non_critical_criterion_only_warns(backfilled):
    root, instance = backfilled
    out = runner.run_workflow(_wf(root, "warned", extra="success_criteria:\n  n_valid_trials: {min: 100}\n"), instance)
    assert out.success
    assert any(k.startswith("warned/bt/") for k in _materialized(instance, out.run_id))


class _Flaky(PhaseKind):
    """A phase that fails at run time with a user error (a service down, data a check cannot see)."""

    name = "flaky_for_tests"
    description = "fails when it runs"
    outputs = (Output("table", "never written", columns=("x",)),)

    def run(self, ctx):
        raise PhaseError("the quote service did not answer (field 'config')")


@pytest.fixture
def flaky(register_kind):
    return register_kind(_Flaky())


#: a workflow's first lines: its data and a small search named ``opt`` (a format string)
HEAD = """\
workflow: {{name: {name}, id: {wid}}}
data: {{symbols: [SPY], start_date: 2021-01-04, end_date: 2021-09-30, split: {{test_start: 2021-07-01}}}}
phases:
  - name: opt
    type: optimization
    config:
      optimization: {{parameters: {{fast_period: [5, 10], slow_period: [20, 30]}}}}
"""

SOFT = HEAD + """\
  - name: quotes
    type: flaky_for_tests
    on_failure: {on_failure}
  - name: needs_quotes
    type: backtest
    inputs: [opt.best_parameters]
    depends_on: [quotes]
  - name: bt
    type: backtest
    inputs: [opt.best_parameters]
reporting: {{enabled: false}}
"""


def test_continue_with_warning_skips_only_dependents_and_says_so(backfilled, flaky, capsys):
    root, instance = backfilled
    path = root / "soft.yaml"
    path.write_text(SOFT.format(name="Soft", wid="soft", on_failure="continue_with_warning"))
    out = runner.run_workflow(str(path), instance)
    assert (out.success, out.status, out.failed, out.skipped) == (False, "optional_failed", ["quotes"],
                                                                  ["needs_quotes"])
    assert _materialized(instance, out.run_id) == {"soft/data/bars", "soft/opt/best_parameters",
                                                   "soft/opt/top_parameter_sets", "soft/opt/optimization_history",
                                                   "soft/bt/validation_results", "soft/bt/performance_report"}
    # the terminal: the failed phase, its message, what was skipped, a distinct exit status
    from admf_assets import cli

    # --force: every phase again (a stale-only run would run just the failed phase and its dependent)
    assert cli.main(["run", str(path), "--no-backfill", "--force"]) == cli.EXIT_OPTIONAL_FAILED == 3
    stdout, stderr = capsys.readouterr()
    assert "quotes: FAILED after" in stdout and "bt: done in" in stdout
    lines = stderr.splitlines()
    assert lines[0] == f"  {path}: phase 'quotes': the quote service did not answer (field 'config')"
    assert lines[1] == "  skipped (they need a failed phase): needs_quotes"
    assert re.match(r"run \S+ finished with failed optional phases \(on_failure: continue_with_warning\): failed "
                    r"quotes; 6 assets materialized \(exit status 3\)$", lines[2]), lines
    assert len(lines) == 3 and "dagster - ERROR" not in stderr and "Traceback" not in stderr

    path.write_text(SOFT.format(name="Soft", wid="soft", on_failure="abort"))
    assert cli.main(["run", str(path), "--no-backfill"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.splitlines()[-1].endswith(" FAILED") and "Traceback" not in stderr


def test_the_terminal_shows_a_line_per_phase_and_the_event_log_only_with_verbose(backfilled, capsys):
    root, instance = backfilled
    from admf_assets import cli

    capsys.readouterr()
    path = _wf(root, "shown")
    assert cli.main(["run", path, "--no-backfill"]) == 0
    out, err = capsys.readouterr()
    started = [ln for ln in out.splitlines() if ln.endswith(": started")]
    done = [ln for ln in out.splitlines() if re.match(r"^  \[\d/3\] \w+: done in \d+\.\d s$", ln)]
    assert [ln.split("] ")[1] for ln in started] == ["data: started", "opt: started", "bt: started"]
    assert len(done) == 3 and "STEP_START" not in out + err and err == ""
    assert cli.main(["run", path, "--no-backfill", "--verbose", "--force"]) == 0  # (unchanged: nothing stale)
    out, err = capsys.readouterr()
    assert "STEP_START" in out + err and "ASSET_MATERIALIZATION" in out + err  # Dagster's event log


ANALYSIS = HEAD + """\
  - name: ana
    type: analysis
    inputs: [opt.top_parameter_sets, opt.best_parameters]
    config:
      analyzers: [drawdown_analysis, correlation_analysis, regime_performance, monte_carlo_simulation]
      n_simulations: 200
    success_criteria: {ana_criteria}
  - name: bt
    type: backtest
    inputs: [opt.best_parameters]
    success_criteria: {bt_criteria}
"""


def _independent_returns(bars, params, split=None, cost=0.0):
    """The momentum rule's daily returns recomputed with pandas (not the engine): the position
    decided at the close of t earns t -> t+1; ``cost`` per unit of position change (first order)."""
    if split is not None:
        bars = bars[bars.split == split]
    close = bars.pivot(index="date", columns="symbol", values="close")
    f = close.rolling(params["fast_period"]).mean()
    s = close.rolling(params["slow_period"]).mean()
    pos = ((f - s) / s > params["signal_threshold"]).astype(float)
    gross = (pos.shift(1).fillna(0.0) * close.pct_change().fillna(0.0)).mean(axis=1)
    return gross, (pos.diff().abs().fillna(pos.abs()) * cost).mean(axis=1)


def _checks(instance, run_id):
    evals = [r.event_log_entry.dagster_event.event_specific_data for r in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records]
    return {e.check_name: e for e in evals}


def test_every_analyzer_and_reported_metrics(backfilled):
    """VaR against its own quantile (not the 99 % row), total costs against an independent
    computation, and criteria that fail when the numbers are wrong."""
    import json

    import numpy as np
    import pandas as pd

    from admf_assets import settings

    root, instance = backfilled
    p = root / "analyzed.yaml"
    p.write_text(ANALYSIS.format(name="Analyzed", wid="analyzed", ana_criteria="{var_95: {max: 0.5}}", bt_criteria="{}"))
    out = runner.run_workflow(str(p), instance)
    assert out.success, out.failures
    mats = _materialized(instance, out.run_id)
    assert {f"analyzed/ana/{n}" for n in ("performance_metrics", "drawdowns", "correlations",
                                          "regime_breakdown", "risk_assessment")} <= mats
    tables = settings.storage_root() / "tables/analyzed"
    regimes = pd.read_parquet(tables / "ana/regime_breakdown.parquet")
    assert set(regimes.regime) <= {"calm", "volatile"} and regimes.n_bars.sum() > 0

    # independent numbers for the chosen parameter set
    bars = pd.read_parquet(tables / "data/bars.parquet")
    params = json.loads(pd.read_parquet(tables / "opt/best_parameters.parquet").params.iloc[0])
    train, _ = _independent_returns(bars, params, split="train")
    var95, var99 = -float(np.quantile(train.to_numpy(), 0.05)), -float(np.quantile(train.to_numpy(), 0.01))
    assert var99 > var95 * 1.2  # the two rows differ: reporting the 99 % row would be caught
    cvar95 = -float(train[train <= -var95].mean())
    gross, cost = _independent_returns(bars, params, cost=7e-4)
    test_dates = pd.read_parquet(tables / "bt/performance_report.parquet").date
    costs = float(cost.loc[test_dates].sum())
    assert costs > 0
    risk = pd.read_parquet(tables / "ana/risk_assessment.parquet").set_index("metric")
    p_loss = float(risk.loc["total_return", "prob_loss"])
    assert 0.0 < p_loss < 1.0

    # the same workflow with criteria that hold only for the right numbers (and two that must fail)
    crit = (f"{{var_95: {{min: {var95 - 1e-12!r}, max: {var95 + 1e-12!r}}}, "
            f"cvar_95: {{max: {var95!r}}}, "  # CVaR > VaR: it must fail
            f"probability_of_loss: {{min: {p_loss!r}, max: {p_loss!r}}}}}")  # seeded: reproduced exactly
    p.write_text(ANALYSIS.format(name="Analyzed", wid="analyzed", ana_criteria=crit,
                                 bt_criteria=f"{{total_costs: {{min: {costs * 0.99!r}, max: {costs * 1.01!r}}}, "
                                             f"n_days: {{min: {len(test_dates)}, max: {len(test_dates)}}}}}"))  # exactly on both bounds
    out = runner.run_workflow(str(p), instance)
    assert out.success, out.failures  # not critical: failed checks only warn
    checks = _checks(instance, out.run_id)
    assert {n: c.passed for n, c in checks.items()} == {
        "var_95_min": True, "var_95_max": True, "cvar_95_max": False,
        "probability_of_loss_min": True, "probability_of_loss_max": True,
        "total_costs_min": True, "total_costs_max": True, "n_days_min": True, "n_days_max": True}
    assert checks["var_95_max"].metadata["value"].value == pytest.approx(var95, abs=1e-15)
    assert checks["cvar_95_max"].metadata["value"].value == pytest.approx(cvar95, abs=1e-15)
    assert checks["total_costs_min"].metadata["value"].value == pytest.approx(costs, rel=2e-3)


def test_admf_run_reads_the_yaml_once_and_builds_definitions_once(backfilled, monkeypatch, capsys):
    """The CLI validates the file and hands the resolved graph on: no second parse, one Definitions."""
    root, instance = backfilled
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
