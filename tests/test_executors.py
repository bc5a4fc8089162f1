"""The code location's default executor gives a run of one workflow's assets that workflow's
executor and tags (the UI runs Dagster's implicit asset job, not the workflow's job)."""

import textwrap

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob

from admf_assets import executors
from admf_assets.defs import build_defs
from admf_assets.workflow.compiler import compile_workflow

WF = """\
workflow: {{name: {wid}}}
data: {{symbols: [SPY], start_date: 2021-01-04, end_date: 2021-06-30, split: {{test_start: 2021-05-03}}}}
phases:
  - name: opt
    type: optimization
    config: {{optimization: {{parameters: {{fast_period: [5], slow_period: [20]}}}}}}
infrastructure: {{executor: {executor}, max_concurrent: 3}}
execution: {{timeout: 120}}
"""


def test_the_default_executor_picks_the_workflows_settings(tmp_path):
    compiled = []
    for wid, ex in (("wf_mp", "multiprocess"), ("wf_ip", "in_process")):
        p = tmp_path / f"{wid}.yaml"
        p.write_text(textwrap.dedent(WF.format(wid=wid, executor=ex)))
        compiled.append(compile_workflow(str(p)))
    defs = build_defs(compiled)
    asset_job = defs.resolve_implicit_global_asset_job_def()
    by_group = {c.graph.workflow_id: c.run_settings for c in compiled}
    default = executors.RunSettings()

    def settings(*workflows):
        keys = {k for c in compiled if c.graph.workflow_id in workflows for a in c.assets for k in a.keys}
        return executors._settings_for(InMemoryJob(asset_job.get_subset(asset_selection=keys)), default, by_group)

    mp = settings("wf_mp")
    assert mp.kind == "multiprocess" and mp.max_concurrent == 3
    assert mp.tags == {"admf/workflow": "wf_mp", "dagster/max_runtime": "120"}
    assert settings("wf_ip").kind == "in_process" and settings("wf_ip").tags["admf/workflow"] == "wf_ip"
    assert settings("wf_mp", "wf_ip") is default  # assets of two workflows: the plain default
    # the workflow's own job carries the same executor choice
    assert defs.resolve_job_def("wf_mp").executor_def.name == "multiprocess_forkserver"
    assert isinstance(defs.resolve_job_def("wf_ip").executor_def, dg.ExecutorDefinition)
