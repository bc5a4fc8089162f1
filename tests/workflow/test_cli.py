"""`admf validate FILE...` = validate.main(argv)."""

from __future__ import annotations

import shutil
from pathlib import Path

from admf_assets.workflow.validate import main, validate_paths
from admf_assets.phases import KINDS

AVAILABLE = ", ".join(k.name for k in KINDS.available())

REPO = Path(__file__).resolve().parents[2]


def test_valid_files_print_ok_and_exit_zero(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ADMF_WORKFLOWS_DIR", str(tmp_path))  # the copy is this folder's basic_research
    shutil.copy(REPO / "workflows" / "basic_research.yaml", tmp_path / "basic_research.yaml")
    shutil.copy(Path(__file__).parent / "fixtures" / "seed" / "basic_multi_phase.yaml", tmp_path / "b.yaml")
    assert main(["basic_research.yaml", "b.yaml"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "OK basic_research.yaml: 5 phases, 10 assets",
        "OK b.yaml: 5 phases, 10 assets",
    ]
    assert err.splitlines() == [  # the seed example gives its one-parameter-set backtest phase resources
        f"warning: b.yaml: phase 'validation': field 'infrastructure.phase_resources.validation.{key}': ignored: "
        f"phase type 'backtest' does not use {key} (it applies to: {users})"
        for key, users in (("memory_limit_gb", "parameter_search, signal_capture, analysis"),
                           ("max_workers", "parameter_search, analysis"))]


def test_workflow_names_are_looked_up_in_the_workflows_dir(capsys, monkeypatch):
    monkeypatch.setenv("ADMF_WORKFLOWS_DIR", str(REPO / "workflows"))
    assert main(["basic_research"]) == 0
    assert capsys.readouterr().out == f"OK {REPO / 'workflows' / 'basic_research.yaml'}: 5 phases, 10 assets\n"


def test_invalid_file_prints_error_lines_and_exits_nonzero(write, capsys):
    good = write("data: {symbols: [SPY], start_date: 2020-01-01, end_date: 2023-12-31}\n"
                 "phases:\n  - {name: opt, type: optimization, config: {parameters: {fast_period: [5, 10]}}}\n", "good.yaml")
    bad = write("phases:\n  - {name: wf, type: live_trading}\n  - {name: x, type: optimisation}\n", "bad.yaml")
    assert main([str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"OK {good}: 3 phases, 5 assets"]
    assert err.splitlines() == [
        f"{bad}: phase 'wf': field 'type': phase type 'live_trading' is not offered: this platform does not connect "
        "to a broker (simulate the deployment with type paper_trading, and shadow_mode: true for a baseline beside it)",
        f"{bad}: phase 'x': field 'type': unknown phase type 'optimisation' (did you mean 'optimization'?); "
        f"available: {AVAILABLE}",
    ]
    assert "Traceback" not in err


def test_missing_file(capsys):
    assert main(["nowhere/wf.yaml"]) == 1
    assert capsys.readouterr().err == "nowhere/wf.yaml: no such file\n"


def test_warnings_do_not_fail_validation(write, capsys):
    p = write("workflow: {monitoring: {enabled: true}}\n"
              "data: {symbols: [SPY], start_date: 2020-01-01, end_date: 2023-12-31}\n"
              "phases:\n  - {name: opt, type: optimization, config: {parameters: {fast_period: [5, 10]}}}\n")
    assert main([str(p)]) == 0
    out, err = capsys.readouterr()
    assert out == f"OK {p}: 3 phases, 5 assets\n"
    assert err == f"warning: {p}: field 'workflow.monitoring': ignored: progress, logs and timings are in the Dagster UI\n"


def test_verbose_prints_the_graph(capsys):
    assert main(["-v", str(REPO / "workflows" / "basic_research.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "workflow basic_research (Basic Research Pipeline): 5 phases, 10 assets"
    assert "  validation: backtest -> validation_results, performance_report" in out
    assert "    <- parameter_optimization.best_parameters (input)" in out


def test_usage_error_exits_2(capsys):
    try:
        main([])
    except SystemExit as exc:
        assert exc.code == 2
    else:  # pragma: no cover
        raise AssertionError("argparse should exit")
    assert "usage: admf validate" in capsys.readouterr().err


def test_validate_paths(write):
    good = write("template: optimize_analyze_validate\n", "g.yaml")
    bad = write("template: nope\n", "n.yaml")
    assert validate_paths([good]) == []
    (line,) = validate_paths([good, bad])
    assert line.startswith(f"{bad}: field 'template': unknown template 'nope'")


def test_admf_validate_takes_its_options_before_the_files(capsys):
    """`admf validate -v FILE` failed with "unrecognized arguments" (only `FILE -v` worked)."""
    from admf_assets import cli

    path = str(REPO / "workflows" / "basic_research.yaml")
    for argv in (["validate", "-v", path], ["validate", path, "-v"]):
        assert cli.main(argv) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0] == f"OK {path}: 5 phases, 10 assets"
        assert out[1] == "workflow basic_research (Basic Research Pipeline): 5 phases, 10 assets"
