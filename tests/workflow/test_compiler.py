"""Compiled Dagster definitions: asset keys, dependencies, policies, checks, load failures."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from admf_assets.workflow.compiler import compile_all, compile_workflow
from admf_assets.workflow.errors import WorkflowError

REPO = Path(__file__).resolve().parents[2]
WF = REPO / "workflows"


def _graph_of(compiled):
    from admf_assets import runtime

    defs = dg.Definitions(assets=[*compiled.assets, *compiled.sources], resources=runtime.resources())
    return defs.get_repository_def().asset_graph


def _s(keys):
    return sorted(k.to_user_string() for k in keys)


def test_every_shipped_workflow_compiles_with_a_unique_id():
    compiled = compile_all(WF)
    assert [c.graph.workflow_id for c in compiled] == sorted(p.stem for p in WF.glob("*.yaml"))


def test_basic_research_asset_graph_is_exactly_the_workflow_dag():
    c = compile_workflow("basic_research", WF)
    ag = _graph_of(c)
    p = "basic_research/"
    deps = {k.to_user_string(): _s(ag.get(k).parent_keys) for k in ag.get_all_asset_keys()
            if k.path[0] == "basic_research"}
    opt = [p + "parameter_optimization/" + n for n in ("best_parameters", "optimization_history", "top_10_parameter_sets")]
    ana = [p + "performance_analysis/" + n for n in ("correlations", "drawdowns", "performance_metrics")]
    val = [p + "validation/" + n for n in ("performance_report", "validation_results")]
    assert deps == {
        # the market data the data phase reads: the partitions (lineage) and their observed version
        p + "data/bars": [p + "data/market_snapshot", "market/clean_bars"],
        p + "data/market_snapshot": [],
        **{k: [p + "data/bars"] for k in opt},
        **{k: sorted([p + "data/bars", p + "parameter_optimization/best_parameters",
                      p + "parameter_optimization/top_10_parameter_sets"]) for k in ana},
        **{k: sorted([p + "data/bars", p + "parameter_optimization/best_parameters"]) for k in val},
        p + "report/report": sorted([p + "data/bars", *opt, *ana, *val]),
    }
    for k in ag.get_all_asset_keys():
        if k.path[0] == "basic_research":
            node = ag.get(k)
            assert node.group_name == "basic_research"
            assert node.description
    assert c.job.name == "basic_research"


def test_policies_checks_and_tags_come_from_the_yaml():
    c = compile_workflow("basic_research", WF)
    by_name = {a.node_def.name: a for a in c.assets}
    opt = by_name["basic_research__parameter_optimization"]
    rp = opt.node_def.retry_policy
    assert rp.max_retries == 2 and rp.delay == 5 and rp.backoff == dg.Backoff.EXPONENTIAL
    checks = {s.name: s for s in opt.check_specs}
    assert set(checks) == {"n_valid_trials_min"} and checks["n_valid_trials_min"].blocking
    val = by_name["basic_research__validation"]
    vchecks = {s.name: s for s in val.check_specs}
    assert set(vchecks) == {"max_drawdown_min", "n_trades_min"}
    assert not any(s.blocking for s in vchecks.values())  # the phase is not critical
    # only one phase has a timeout, so the run has no total limit (execution.timeout sets one)
    assert "dagster/max_runtime" not in c.job.tags
    # a config change changes the code version (the UI marks the asset unsynced)
    versions = {a.node_def.name: set(a.code_versions_by_key.values()) for a in c.assets}
    assert versions["basic_research__parameter_optimization"] != versions["basic_research__validation"]


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


GOOD = """\
workflow: {name: Tiny}
data: {symbols: [SPY], start_date: 2021-01-01, end_date: 2021-12-31, split: {test_start: 2021-10-01}}
phases:
  - name: opt
    type: optimization
    config: {optimization: {parameters: {fast_period: [5], slow_period: [20]}}}
    pool: research
    on_failure: continue_with_warning
"""


def test_pool_and_optional_outputs(tmp_path):
    c = compile_workflow(str(_write(tmp_path, "tiny.yaml", GOOD)))
    opt = next(a for a in c.assets if a.node_def.name == "tiny__opt")
    assert opt.node_def.pools == {"research"}
    # continue_with_warning: outputs are optional, so a failure skips only the dependents
    assert all(not out.is_required for out in opt.node_def.output_defs)


def test_reserved_workflow_id_is_rejected(tmp_path):
    with pytest.raises(WorkflowError, match="workflow.id.*'market_data' is reserved"):
        compile_workflow(str(_write(tmp_path, "market_data.yaml", GOOD)))


def test_broken_workflow_file_makes_the_code_location_fail_with_its_message(tmp_path):
    _write(tmp_path, "good.yaml", GOOD)
    _write(tmp_path, "broken.yaml", GOOD.replace("type: optimization", "type: optimisation"))
    with pytest.raises(WorkflowError) as err:
        compile_all(tmp_path)
    line = "broken.yaml: phase 'opt': field 'type': unknown phase type 'optimisation' (did you mean 'optimization'?)"
    assert line in str(err.value)
    env = {**os.environ, "ADMF_WORKFLOWS_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "home")}
    p = subprocess.run([sys.executable, "-c", "import definitions"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert line in p.stderr.strip().splitlines()[-1]


def test_executor_comes_from_the_yaml_and_can_be_overridden():
    from admf_assets.runner import workflow_defs

    defs, c = workflow_defs("basic_research")
    assert defs.resolve_job_def("basic_research").executor_def.name == "in_process"
    defs, c = workflow_defs("basic_research", "multiprocess")
    ex = defs.resolve_job_def("basic_research").executor_def
    assert ex.name == "multiprocess_forkserver"


def test_the_total_time_limit(tmp_path):
    # every phase has a timeout: the limit is their sum times the attempts plus the retry delays
    timed = GOOD.replace("    pool: research\n", "    pool: research\n    timeout: 60\n    retries: {count: 2, delay: 5, backoff: exponential}\n")
    timed = timed.replace("phases:\n", "reporting: {enabled: false}\nphases:\n  - {name: data, type: data_preparation, timeout: 10}\n")
    c = compile_workflow(str(_write(tmp_path, "timed.yaml", timed)))
    assert c.job.tags["dagster/max_runtime"] == str(10 + 3 * 60 + 5 + 15)
    # an explicit workflow limit wins (minutes, hours or seconds)
    c = compile_workflow(str(_write(tmp_path, "limited.yaml", GOOD + "execution: {timeout_minutes: 2}\n")))
    assert c.job.tags["dagster/max_runtime"] == "120"
    c = compile_workflow(str(_write(tmp_path, "limited2.yaml", GOOD + "infrastructure: {timeout: 30}\n")))
    assert c.job.tags["dagster/max_runtime"] == "30"
