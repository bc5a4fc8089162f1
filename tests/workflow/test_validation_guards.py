"""What used to pass `admf validate` and then fail at run time (or never): each bad file gives
one line naming file, phase and field, at `admf validate` and at `admf run`, and nothing is
written."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from admf_assets import cli
from admf_assets.engine.marketdata import last_market_day
from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.loader import load_workflow, load_workflow_dict, load_workflow_text

BAD = Path(__file__).parent / "fixtures" / "bad"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty DAGSTER_HOME; tests assert nothing appears in it."""
    h = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(h))
    monkeypatch.delenv("ADMF_STORAGE", raising=False)
    monkeypatch.setenv("ADMF_MEMORY_AVAILABLE_GB", "16")  # the same numbers on every machine
    for var in ("ADMF_SYMBOLS", "ADMF_MARKET_SOURCE", "ADMF_MARKET_PATH"):
        monkeypatch.delenv(var, raising=False)
    return h


def _written(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")) if home.exists() else []


def _refused(capsys, home, path) -> list[str]:
    """The lines of `admf validate` (status 1); `admf run` gives the same lines (status 2)
    and writes nothing."""
    assert cli.main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert cli.main(["run", str(path)]) == 2
    out, run_err = capsys.readouterr()
    assert run_err.splitlines() == lines
    assert _written(home) == []
    return lines


def _copy(tmp_path, name):
    target = tmp_path / name
    shutil.copy(BAD / name, target)
    return target


LAST = last_market_day().date()

CASES = {
    "bad_params.yaml": [
        "phase 'words': field 'config.optimization.parameters.fast_period': strategy 'momentum': parameter "
        "'fast_period' must be a whole number of bars (got 'five') (value #1 of 2)",
        "phase 'fraction': field 'config.optimization.parameters.fast_period': strategy 'momentum': parameter "
        "'fast_period' must be a whole number of bars (got 5.5)",
        "phase 'negative': field 'config.optimization.parameters.slow_period': strategy 'momentum': parameter "
        "'slow_period' must be >= 2 (got -20) (value #1 of 2)",
        "phase 'boolean': field 'config.optimization.parameters.fast_period': strategy 'momentum': parameter "
        "'fast_period' must be a whole number of bars (got True)",
        "phase 'not_a_number': field 'config.optimization.parameters.signal_threshold': strategy 'momentum': "
        "parameter 'signal_threshold' must be a finite number (got nan)",
    ],
    "bad_params_2.yaml": [
        "phase 'infinite': field 'config.optimization.parameters.signal_threshold': strategy 'momentum': parameter "
        "'signal_threshold' must be a finite number (got inf) (value #2 of 2)",
        "phase 'huge_window': field 'config.optimization.parameters.slow_period': strategy 'momentum': parameter "
        "'slow_period' must be <= 10,000 (got 100000000)",
        "phase 'empty': field 'config.optimization.parameters.fast_period': empty list of values",
        "phase 'longer_than_data': field 'config.optimization.parameters.slow_period': strategy 'momentum': every "
        "slow_period (800 and up) is longer than the data (546 bars): no bar would get a signal",
        "phase 'fixed': field 'config.parameters': no valid parameter combination for strategy 'momentum': it "
        "needs fast_period < slow_period, and its only combination breaks it",
    ],
    "impossible_grid.yaml": [
        "phase 'opt': field 'config.optimization.parameters': no valid parameter combination for strategy "
        "'momentum': it needs fast_period < slow_period, and all 4 combinations break it",
    ],
    "calendar.yaml": [
        "field 'data.start_date': start_date 2005-01-03 is before the market-data calendar starts (2010-01-01)",
        f"field 'data.end_date': end_date 2099-12-31 is after the last complete market day ({LAST}): there is no "
        "market data for it yet",
        "field 'data.symbols': 1 symbol(s) not in the synthetic source: NOPE; it has 20: DIA, EEM, EFA, GLD, HYG, "
        "IWM, LQD, QQQ, ...",
    ],
    "huge_search.yaml": [
        "phase 'opt': field 'config.optimization': the random search (1,000,000,000 trials x 546 bars x 2 "
        "symbol(s)) needs about 1.1 TB of memory, more than the 16.0 GB this machine has available: use fewer "
        "n_trials, or fewer symbols or a shorter date range (about {fits} trials fit)",
    ],
    "deep_nesting.yaml": ["nested too deeply to read (a workflow may nest at most 50 levels; it needs about 8)"],
    "nested_60.yaml": ["field 'phases[0].config.optimization.parameters.fast_period ...': nested deeper than 50 "
                       "levels (a workflow needs about 8); flatten it"],
    "alias_bomb.yaml": ["field 'data.symbols[9]': expands to more than 1,000,000 values through YAML aliases "
                        "(*name); write the values out or use fewer aliases"],
    "recursive_alias.yaml": ["field 'phases[0].config.optimization.parameters.fast_period': a YAML alias refers "
                             "to the mapping or list that contains it (a cycle)"],
    "nul_name.yaml": ["field 'workflow.name': contains a NUL byte (\\0); remove it (names and text end up in file "
                      "names and the report)"],
    "case_collision.yaml": ["phase 'Opt': field 'name': phase names 'opt' and 'Opt' differ only in case; DuckDB "
                            "table names ignore case, so one phase's tables could not be queried: rename one"],
    "long_name.yaml": [f"phase '{'p' * 300}': field 'name': the phase name 'pppppppppppppppppppp...' is 300 "
                       "characters long; at most 64 (it names folders, files and DuckDB tables)"],
    "small_alias_bomb.yaml": [*(f"field 'data.symbols[{i}]': Input should be a valid string (got a list)"
                                for i in range(5)),
                              "... and 7 more problems (fix the ones above first)"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_files_are_refused_in_one_line_each_before_anything_runs(name, tmp_path, home, capsys):
    path = _copy(tmp_path, name)
    lines = _refused(capsys, home, path)
    fits = re.search(r"about ([\d,]+) trials fit", lines[0])  # the estimate's own arithmetic
    assert lines == [f"{path}: {line}".replace("{fits}", fits.group(1) if fits else "") for line in CASES[name]]
    if fits:
        assert 10_000_000 < int(fits.group(1).replace(",", "")) < 20_000_000  # ~16 GB / ~1.1 KB per trial


def test_the_old_runtime_failure_of_an_impossible_grid_is_now_a_validation_error(tmp_path, home):
    """Before: the run started, the search raised and a traceback followed."""
    with pytest.raises(WorkflowError) as info:
        load_workflow(_copy(tmp_path, "impossible_grid.yaml"))
    assert "all 4 combinations break it" in str(info.value)


def test_a_random_search_with_no_valid_draw_is_refused_with_its_seed(home):
    text = """\
data: {symbols: [SPY], start_date: 2021-01-01, end_date: 2023-12-31}
phases:
  - name: opt
    type: optimization
    config: {optimization: {method: random, n_trials: 50, seed: 7,
                            parameters: {fast_period: [60, 90], slow_period: [10, 50]}}}
"""
    with pytest.raises(WorkflowError) as info:
        load_workflow_text(text, "r.yaml")
    assert str(info.value) == ("r.yaml: phase 'opt': field 'config.optimization.parameters': no valid parameter "
                               "combination for strategy 'momentum': it needs fast_period < slow_period, and all 50 "
                               "trials drawn (seed 7) break it")


@pytest.mark.parametrize("method", ["bayesian", "cmaes", "differential_evolution", "nsga2"])
def test_a_sampler_space_with_no_valid_set_is_refused_at_validate(home, method):
    """A sampler's box where every fast_period >= slow_period: seeded draws find no valid set,
    so validation says so instead of a run of nothing but infeasible trials."""
    text = f"""\
data: {{symbols: [SPY], start_date: 2021-01-01, end_date: 2023-12-31}}
phases:
  - name: opt
    type: optimization
    config: {{optimization: {{method: {method}, n_trials: 40, seed: 3,
                            parameters: {{fast_period: [60, 90], slow_period: [10, 50]}}}}}}
"""
    with pytest.raises(WorkflowError) as info:
        load_workflow_text(text, "s.yaml")
    assert str(info.value) == ("s.yaml: phase 'opt': field 'config.optimization.parameters': no valid parameter "
                               "combination for strategy 'momentum': it needs fast_period < slow_period, and all "
                               "10,000 trials drawn (seed 3) break it")


def test_a_sampler_budget_too_large_for_the_machine_is_refused(home):
    text = """\
data: {symbols: [SPY, QQQ], start_date: 2021-01-01, end_date: 2023-12-31}
phases:
  - name: opt
    type: optimization
    config: {optimization: {method: bayesian, n_trials: 1000000000,
                            parameters: {fast_period: [2, 50], slow_period: [10, 200]}}}
"""
    with pytest.raises(WorkflowError) as info:
        load_workflow_text(text, "b.yaml")
    msg = str(info.value)
    assert msg.startswith("b.yaml: phase 'opt': field 'config.optimization': the bayesian search (1,000,000,000 "
                          "trials x 546 bars x 2 symbol(s)) needs about 1.0 TB of memory, more than the 16.0 GB")
    assert "use fewer n_trials" in msg


def test_symbols_of_a_files_source(tmp_path, home, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for sym in ("SPY", "QQQ"):
        (data / f"{sym}.csv").write_text("Date,Open,High,Low,Close,Volume\n2021-01-04,1,1,1,1,1\n")
    monkeypatch.setenv("ADMF_MARKET_SOURCE", "files")
    monkeypatch.setenv("ADMF_MARKET_PATH", str(data))
    text = ("data: {symbols: [SPY, TLT], start_date: 2021-01-04, end_date: 2021-12-31}\n"
            "phases: [{name: bt, type: backtest, config: {parameters: {fast_period: 5, slow_period: 20}}}]\n")
    with pytest.raises(WorkflowError) as info:
        load_workflow_text(text, "f.yaml")
    assert str(info.value) == (f"f.yaml: field 'data.symbols': 1 symbol(s) not in the files in ADMF_MARKET_PATH="
                               f"{data}: TLT; it has 2: QQQ, SPY")
    monkeypatch.setenv("ADMF_MARKET_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(WorkflowError, match="ADMF_MARKET_PATH: .*nowhere: market data directory does not exist"):
        load_workflow_text(text, "f.yaml")


def test_a_declared_data_phase_names_its_own_config_field(home):
    text = """\
data: {symbols: [SPY], start_date: 2021-01-01, end_date: 2021-12-31}
phases:
  - {name: prep, type: data_preparation, config: {symbols: [ZZZ]}}
  - {name: bt, type: backtest, config: {parameters: {fast_period: 5, slow_period: 20}}}
"""
    with pytest.raises(WorkflowError) as info:
        load_workflow_text(text, "d.yaml")
    assert str(info.value).startswith("d.yaml: phase 'prep': field 'config.symbols': 1 symbol(s) not in the "
                                      "synthetic source: ZZZ;")


def test_a_file_name_too_long_for_a_workflow_id(tmp_path, home, capsys):
    path = tmp_path / f"{'w' * 100}.yaml"
    shutil.copy(BAD.parent / "seed" / "basic_multi_phase.yaml", path)
    lines = _refused(capsys, home, path)
    assert lines == [f"{path}: field 'workflow.id': the workflow id 'wwwwwwwwwwwwwwwwwwww...' (from the file name) "
                     "is 100 characters long; at most 64: set a short workflow.id"]


# ------------------------------------------------------------------ scale
def _symbols_doc(symbols):
    return {"data": {"symbols": symbols, "start_date": "2021-01-04", "end_date": "2021-12-31"},
            "phases": [{"name": "bt", "type": "backtest",
                        "config": {"parameters": {"fast_period": 5, "slow_period": 20}}}]}


def test_a_40000_symbol_list_validates_in_linear_time(home, monkeypatch):
    """It took 19 s (a quadratic duplicate check).  Compared, not timed: ten times the symbols
    must cost about ten times as much (a quadratic step would make it a hundred)."""
    symbols = [f"S{i:05d}" for i in range(40_000)]
    monkeypatch.setenv("ADMF_SYMBOLS", ",".join(symbols))  # the source has them all

    def cost(n):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            spec = load_workflow_dict(_symbols_doc(symbols[:n]), source="s.yaml", default_id="s")
            best = min(best, time.perf_counter() - t0)
        assert len(spec.graph.phases["data"].config["symbols"]) == n
        return best

    small, large = cost(4_000), cost(40_000)
    assert large / small < 30, (small, large)
    with pytest.raises(WorkflowError, match=r"duplicate symbols: S00007"):
        load_workflow_dict(_symbols_doc(symbols + ["S00007"]), source="s.yaml", default_id="s")


# ------------------------------------------------------------------ one id, one file
WF = """\
data: {symbols: [SPY], start_date: 2021-01-04, end_date: 2021-12-31}
phases: [{name: bt, type: backtest, config: {parameters: {fast_period: 5, slow_period: 20}}}]
reporting: {enabled: false}
"""


def test_a_copy_elsewhere_with_the_id_of_a_workflows_file_is_refused(tmp_path, home, capsys, monkeypatch):
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "basic_research.yaml").write_text(WF)
    monkeypatch.setenv("ADMF_WORKFLOWS_DIR", str(folder))
    copy = tmp_path / "elsewhere" / "basic-research.yaml"  # slugifies to the same id
    copy.parent.mkdir()
    copy.write_text(WF)
    lines = _refused(capsys, home, copy)
    assert lines == [f"{copy}: field 'workflow.id': workflow id 'basic_research' is also the id of "
                     f"{folder / 'basic_research.yaml'} (its tables, asset history and reports); running this file "
                     "would replace them: give this file its own id, e.g. `workflow: {id: basic_research_copy}`"]
    explicit = tmp_path / "elsewhere" / "mine.yaml"  # an explicit id, differing only in case
    explicit.write_text("workflow: {id: Basic_Research}\n" + WF)
    assert cli.main(["validate", str(explicit)]) == 1
    assert "workflow id 'Basic_Research' is also the id of" in capsys.readouterr().err
    own = tmp_path / "elsewhere" / "own.yaml"
    own.write_text("workflow: {id: basic_research_copy}\n" + WF)
    assert cli.main(["validate", str(own)]) == 0
    # the folder's own file is fine
    assert cli.main(["validate", str(folder / "basic_research.yaml")]) == 0


def test_the_storage_root_remembers_which_file_owns_an_id(tmp_path, home):
    from admf_assets import settings
    from admf_assets.workflow import ids
    from admf_assets.workflow.spec import slugify

    first, second = tmp_path / "a" / "study.yaml", tmp_path / "b" / "study.yaml"
    for p in (first, second):
        p.parent.mkdir()
        p.write_text(WF)
    root = settings.storage_root()
    ids.claim("study", first, root, str(first))
    ids.claim("study", first, root, str(first))  # idempotent
    with pytest.raises(WorkflowError) as info:
        load_workflow(second)
    assert str(info.value) == (f"{second}: field 'workflow.id': workflow id 'study' already holds the results of "
                               f"{first} in {root} (tables, asset history, reports); running this file would replace "
                               "them: give this file its own id, e.g. `workflow: {id: study_copy}`")
    with pytest.raises(WorkflowError):
        ids.claim("STUDY", second, root, str(second))  # ids compared without case
    first.unlink()  # moved away: the id is handed over
    assert load_workflow(second).workflow_id == "study"
    ids.claim("study", second, root, str(second))
    assert ids.declared_id(second, slugify) == "study"
