"""The `admf` command as a user types it: one clear line on bad input, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _admf(*args, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADMF_", "DAGSTER_"))}
    env["DAGSTER_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "admf_assets.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_validate_ok_and_bad_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {symbols: [SPY], start_date: 2021-01-01, end_date: 2021-12-31}\n"
                   "phases:\n  - name: opt\n    type: optimization\n    config: {optimization: {parameters: {fast_period: [5]}}}\n"
                   "  - name: bt\n    type: backtest\n    inputs: [opt.best_parameter]\n")
    p = _admf("validate", "workflows/basic_research.yaml", str(bad), home=tmp_path / "h")
    assert p.returncode == 1
    assert "OK workflows/basic_research.yaml: 5 phases, 10 assets" in p.stdout
    line = next(ln for ln in p.stderr.splitlines() if ln.startswith(str(bad)))
    assert line.startswith(f"{bad}: phase 'bt': field 'inputs': unknown input 'opt.best_parameter'")
    assert "(did you mean 'opt.best_parameters'?)" in line
    assert "Traceback" not in p.stderr


def test_run_unknown_workflow_and_missing_data_without_backfill(tmp_path):
    p = _admf("run", "no_such_workflow", home=tmp_path / "h")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "no_such_workflow" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = _admf("run", "basic_research", "--no-backfill", home=tmp_path / "h")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "phase 'data': market data for 781 weekday(s) is not materialized: 2021-01-01..2023-12-29" in p.stderr
    assert "admf backfill --start 2021-01-01 --end 2023-12-29" in p.stderr


def test_backfill_rejects_a_reversed_range(tmp_path):
    p = _admf("backfill", "--start", "2024-02-01", "--end", "2024-01-01", home=tmp_path / "h")
    assert p.returncode == 2
    assert p.stderr.strip() == "admf: error: --end 2024-01-01 is before --start 2024-02-01"


def test_optuna_lists_a_workflows_studies_and_the_dashboard_command(tmp_path):
    """`admf optuna WF` finds the workflow's journal under the storage root and opens optuna-dashboard on it
    (``--print``: list the studies and print the command instead)."""
    import optuna

    from admf_assets.engine.studies import journal_path, open_storage

    home = tmp_path / "h"
    path = journal_path(home / "admf_storage", "basic_research", "parameter_optimization", "abc", "momentum")
    study = optuna.create_study(study_name="basic_research/parameter_optimization/momentum@abc",
                                storage=open_storage(path))
    study.add_trial(optuna.trial.create_trial(params={"x": 1.0}, distributions={
        "x": optuna.distributions.FloatDistribution(0, 2)}, value=0.5))
    p = _admf("optuna", "basic_research", "--print", home=home)
    assert p.returncode == 0, p.stderr
    assert f"Optuna storage: {path}" in p.stdout
    assert "basic_research/parameter_optimization/momentum@abc: 1 trials" in p.stdout
    assert p.stdout.strip().splitlines()[-1].endswith(f"optuna-dashboard {path} --host 127.0.0.1 --port 8080")
    p = _admf("optuna", "no_such_workflow", home=home)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "no_such_workflow" in p.stderr
    p = _admf("optuna", "basic_research", "--print", "--phase", "other", home=home)
    assert p.returncode == 2 and "no Optuna studies recorded for phase 'other' of workflow 'basic_research'" in p.stderr
    p = _admf("optuna", "basic_research", "--print", home=tmp_path / "empty")
    assert p.returncode == 2 and "no Optuna studies recorded for workflow 'basic_research' yet" in p.stderr
