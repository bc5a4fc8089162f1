"""Walk-forward folds as partitions, compiled and run by Dagster: every fold in one run, one
fold re-run alone, the stitched outputs reading every fold."""

from __future__ import annotations

import textwrap

import dagster as dg
import pandas as pd
import pytest

from admf_assets import runner
from admf_assets.workflow.compiler import compile_workflow
from resources.storage import PARTITIONED_MARKER, TableStore

WF = """\
workflow: {{name: WF, id: {wid}}}
data: {{symbols: [SPY, QQQ], start_date: 2021-01-04, end_date: 2022-06-30}}
phases:
  - name: opt
    type: optimization
    config:
      optimization:
        parameters: {{fast_period: [5, 10], slow_period: [20, 40]}}
  - name: wfo
    type: walk_forward
    inputs: [opt.best_parameters]
    config:
      walk_forward: {{train_period_days: 120, test_period_days: 60, gap_days: 2}}
{extra}
reporting: {{enabled: {report}}}
"""
FOLDS = ["fold_01", "fold_02", "fold_03", "fold_04"]


def _wf(root, wid, extra="", report="false"):
    p = root / f"{wid}.yaml"
    p.write_text(WF.format(wid=wid, extra=textwrap.indent(textwrap.dedent(extra), "    "), report=report))
    return str(p)


@pytest.fixture(scope="module")
def env(tmp_path_factory, admf_env):
    root = tmp_path_factory.mktemp("wf_runs")
    with admf_env(root, symbols="SPY,QQQ", backfill=("2021-01-04", "2022-06-30")) as (instance, _):
        from admf_assets import settings

        yield root, instance, TableStore(settings.storage_root())


def test_folds_compile_to_a_partitioned_multi_asset(tmp_path):
    c = compile_workflow(_wf(tmp_path, "wfc", extra="outputs: [walk_forward_results, parameter_evolution]"))
    by_name = {a.node_def.name: a for a in c.assets}
    parts = by_name["wfc__wfo__partitions"]
    assert parts.partitions_def.get_partition_keys() == FOLDS
    assert {k.path[-1] for k in parts.keys} == {"fold_results", "fold_returns", "fold_trials"}  # always there
    whole = by_name["wfc__wfo"]
    assert whole.partitions_def is None
    assert {k.path[-1] for k in whole.keys} == {"walk_forward_results", "parameter_evolution"}
    assert {k.path[-1] for k in whole.dependency_keys} >= {"fold_results", "bars", "best_parameters"}
    assert c.graph.partition_keys == tuple(FOLDS)


def test_every_fold_runs_in_one_run_and_is_stored_per_partition(env):
    root, instance, store = env
    out = runner.run_workflow(_wf(root, "wfr", report="true"), instance)
    assert out.success, out.failures
    recs = instance.get_records_for_run(out.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    parts = {(r.event_log_entry.dagster_event.asset_key.path[-1], r.event_log_entry.dagster_event.partition)
             for r in recs}
    assert {("fold_results", k) for k in FOLDS} <= parts
    assert ("walk_forward_results", None) in parts and ("oos_equity", None) in parts
    key = ["wfr", "wfo", "fold_results"]
    assert store.stored_partitions(key) == set(FOLDS)
    assert (store.table_path(key) / PARTITIONED_MARKER).exists()
    one = pd.read_parquet(store.partition_path(key, "fold_02"))
    assert one["fold"].tolist() == ["fold_02"]
    table = store.read(["wfr", "wfo", "walk_forward_results"])
    assert table["fold"].tolist() == FOLDS
    assert (pd.to_datetime(table["train_end"]) < pd.to_datetime(table["test_start"])).all()
    oos = store.read(["wfr", "wfo", "oos_equity"])
    assert pd.to_datetime(oos["date"]).min() == pd.to_datetime(table["test_start"]).min()
    assert set(oos["fold"]) == set(FOLDS)
    assert out.report_path and "walk-forward" in open(out.report_path).read()
    assert "wfr.wfo__fold_results" in store.rebuild_views()  # `admf db` sees one partitioned table


def test_one_fold_re_runs_alone(env):
    root, instance, store = env
    path = _wf(root, "wfone")
    assert runner.run_workflow(path, instance).success
    key = ["wfone", "wfo", "fold_results"]
    before = {k: store.partition_path(key, k).stat().st_mtime_ns for k in FOLDS}
    defs, compiled = runner.workflow_defs(path)
    selection = [k for a in compiled.assets if a.partitions_def is not None for k in a.keys]
    job = defs.resolve_job_def("wfone")
    res = job.execute_in_process(instance=instance, partition_key="fold_03", asset_selection=selection,
                                 raise_on_error=False)
    assert res.success
    mats = [(e.asset_key.path[-1], e.partition) for e in res.get_asset_materialization_events()]
    assert sorted(mats) == [("fold_results", "fold_03"), ("fold_returns", "fold_03"), ("fold_trials", "fold_03")]
    after = {k: store.partition_path(key, k).stat().st_mtime_ns for k in FOLDS}
    assert [k for k in FOLDS if after[k] != before[k]] == ["fold_03"]


def test_partitioned_phases_of_one_workflow_must_share_their_folds(tmp_path, errors_of):
    second = ("  - name: wfo2\n    type: walk_forward\n    inputs: [opt.best_parameters]\n"
              "    config: {walk_forward: {train_period_days: 60, test_period_days: 60}}\n")
    text = WF.format(wid="two", report="false", extra="").replace("reporting:", second + "reporting:")
    p = tmp_path / "two.yaml"
    p.write_text(text)
    lines = errors_of(p)
    assert len(lines) == 1 and "phase 'wfo2'" in lines[0] and "differ from phase 'wfo'" in lines[0]


def test_a_range_too_short_for_one_fold_names_the_field(tmp_path, errors_of):
    p = tmp_path / "short.yaml"
    p.write_text(WF.format(wid="short", report="false", extra="").replace("train_period_days: 120",
                                                                          "train_period_days: 400"))
    (line,) = errors_of(p)
    assert "phase 'wfo'" in line and "config.walk_forward.train_period_days" in line
    assert "one fold needs train 400 + gap 2 + test 60 = 462" in line


def test_folds_a_new_plan_no_longer_has_are_removed(env):
    root, instance, store = env
    path = _wf(root, "wfshrink")
    assert runner.run_workflow(path, instance).success
    key = ["wfshrink", "wfo", "fold_results"]
    assert store.stored_partitions(key) == set(FOLDS)
    text = open(path).read().replace("train_period_days: 120", "train_period_days: 180")
    open(path, "w").write(text)
    assert runner.run_workflow(path, instance).success
    assert store.stored_partitions(key) == set(FOLDS[:3])  # the DuckDB view shows the current plan only
