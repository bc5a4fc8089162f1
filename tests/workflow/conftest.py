from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.validate import load_workflow

FIXTURES = Path(__file__).parent / "fixtures"
SEED = FIXTURES / "seed"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated_dirs(monkeypatch, tmp_path):
    """No test depends on the caller's environment or current directory."""
    monkeypatch.delenv("ADMF_WORKFLOWS_DIR", raising=False)
    monkeypatch.delenv("ADMF_TEMPLATES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def write(tmp_path):
    """write(text, name='wf.yaml') -> path of a workflow file in a temporary folder."""

    def _write(text: str, name: str = "wf.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


def error_lines(path, **kwargs) -> list[str]:
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, **kwargs)
    return info.value.lines()


# a valid two-phase workflow that test cases extend
BASE = """\
data:
  symbols: [SPY]
  start_date: 2020-01-01
  end_date: 2023-12-31
phases:
  - name: opt
    type: optimization
    config:
      optimization:
        parameters:
          fast_period: [5, 10]
          slow_period: [20, 30]
    outputs: [best_parameters, top_5_parameter_sets, optimization_history]
  - name: bt
    type: backtest
    inputs: [opt.best_parameters]
"""


@pytest.fixture
def base() -> str:
    return BASE


@pytest.fixture
def errors_of():
    """errors_of(path) -> the error lines that loading ``path`` raises."""
    return error_lines


@pytest.fixture
def register_kind():
    """register_kind(kind) -> kind, registered for this test only."""
    from admf_assets.phases import KINDS

    added = []

    def _register(kind):
        added.append(KINDS.register(kind).name)
        return kind

    yield _register
    for name in added:
        KINDS.unregister(name)
