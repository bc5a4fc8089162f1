"""One Optuna study shared by several workers on a real PostgreSQL server (loopback): the budget
is met exactly, a killed worker's trials are run again by another (none lost, none twice), and a
workflow's bayesian search with ``max_workers: 2`` fills ONE study from two processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import optuna
import pytest
from optuna.trial import TrialState

from admf_assets import runner
from admf_assets.engine import shared_study as ss
from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.loader import load_workflow_dict

# a worker process: a toy objective whose batches take 0.4 s (time for the test to kill it mid-batch)
WORKER = textwrap.dedent("""
    import sys, time
    from optuna.distributions import FloatDistribution
    from admf_assets.engine import shared_study as ss

    def evaluate(params):
        time.sleep(0.4)
        return ss.BatchResult([-(p["x"] - 0.3) ** 2 - (p["y"] + 0.5) ** 2 for p in params],
                              [{"pid": __import__("os").getpid()} for _ in params])

    url, name, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
    storage = ss.open_rdb(url, heartbeat_seconds=1, grace_seconds=2)
    stats = ss.run_worker(storage, name, {"x": FloatDistribution(-2, 2), "y": FloatDistribution(-2, 2)},
                          evaluate, batch_size=4, worker=worker, seed=5)
    print(stats.told, stats.retries_run)
""")


def _worker(url: str, name: str, worker: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, url, name, str(worker)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_killed_worker_loses_no_trial_and_runs_none_twice(postgres_db):
    n = 40
    storage = ss.open_rdb(postgres_db, heartbeat_seconds=1, grace_seconds=2)
    assert ss.prepare(storage, "toy", ["maximize"], n) == ss.SharedBudget(n, 0, 0, ss.QUEUE_AHEAD, 0)  # 32 of 40
    study = optuna.load_study(study_name="toy", storage=storage)
    doomed = _worker(postgres_db, "toy", 0)
    deadline = time.monotonic() + 60
    while True:  # kill it while it evaluates a batch (sampled, not told), after it has told some trials
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if ss.budget(study, n).complete >= 8 and len(running) == 4 and all(len(t.params) == 2 for t in running):
            break
        assert doomed.poll() is None and time.monotonic() < deadline, doomed.communicate()
        time.sleep(0.05)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    held = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    assert held and all(t.params for t in held)  # sampled, not yet told: what must not be lost
    survivors = [_worker(postgres_db, "toy", w) for w in (1, 2)]
    outs = [p.communicate(timeout=120) for p in survivors]
    assert [p.returncode for p in survivors] == [0, 0], outs
    told = sum(int(o[0].split()[0]) for o in outs)
    retried = sum(int(o[0].split()[1]) for o in outs)

    after = ss.budget(study, n)
    assert after.complete == n and after.running == 0 and after.queued == 0
    assert after.failed == len(held) == retried  # each killed trial failed once, run again once
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert told + sum(1 for t in complete if t.user_attrs["pid"] == doomed.pid) == n
    keys = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(keys)) == n  # no parameter set evaluated twice
    by_failed = {t.system_attrs["failed_trial"]: t for t in complete if "failed_trial" in t.system_attrs}
    assert sorted(by_failed) == sorted(t.number for t in held)
    for t in held:  # the retry has the killed trial's parameters and ran in a surviving worker
        assert by_failed[t.number].params == t.params and by_failed[t.number].user_attrs["pid"] != doomed.pid


def test_prepare_tops_up_only_what_is_missing(postgres_db, tmp_path):
    storage = ss.open_rdb(postgres_db)
    assert ss.prepare(storage, "s", ["minimize"], 10).queued == 10
    assert ss.prepare(storage, "s", ["minimize"], 10).queued == 10  # again: nothing added
    assert ss.prepare(storage, "s", ["minimize"], 15).queued == 15  # a larger budget: 5 more
    # on PostgreSQL the queue stays short (workers top it up); SQLite queues the whole budget
    assert ss.prepare(storage, "big", ["minimize"], 500).queued == ss.QUEUE_AHEAD
    lite = ss.open_rdb(f"sqlite:///{tmp_path / 'studies.db'}")
    assert ss.prepare(lite, "big", ["minimize"], 100).queued == 100


WORKFLOW = {
    "workflow": {"name": "Shared search", "id": "shared_search"},
    "data": {"symbols": ["SPY", "QQQ"], "start_date": "2023-01-02", "end_date": "2023-03-31",
             "split": {"test_start": "2023-03-01"}},
    "phases": [{"name": "search", "type": "optimization", "config": {
        "strategies": [{"type": "momentum"}],
        "optimization": {"method": "bayesian", "n_trials": 24, "batch_size": 4, "max_workers": 2,
                         "parameters": {"fast_period": [2, 10], "slow_period": [12, 40]}}},
        "outputs": ["best_parameters", "optimization_history"]}],
    "reporting": {"enabled": False},
}


def test_a_workflow_search_with_two_workers_fills_one_study(pg_home, postgres_db, tmp_path, sql):
    """No optimization.storage: the study goes to the instance's PostgreSQL server (database
    <instance database>_optuna, created by admf), filled by this process and one spawned worker."""
    import yaml

    wf = tmp_path / "shared.yaml"
    wf.write_text(yaml.safe_dump(WORKFLOW))
    with dg.DagsterInstance.get() as inst:
        assert runner.backfill("2023-01-02", "2023-03-31", inst).success
        out = runner.run_workflow(str(wf), inst)
        assert out.success, out.failures
        meta = inst.get_latest_materialization_event(dg.AssetKey(["shared_search", "search", "optimization_history"]))
        meta = meta.asset_materialization.metadata
        assert meta["workers"].value == 2 and "_optuna" in meta["optuna_storage"].value
        assert "***" in meta["optuna_storage"].value  # the password hidden
    url = postgres_db.rsplit("/", 1)[0] + "/" + postgres_db.rsplit("/", 1)[1] + "_optuna"
    [(name,)] = sql(url, "SELECT study_name FROM studies")
    assert name.startswith("shared_search/search/momentum@")
    states = dict(sql(url, "SELECT state, count(*) FROM trials GROUP BY state"))
    assert states == {"COMPLETE": 24}
    study = optuna.load_study(study_name=name, storage=url)
    assert len({t.user_attrs["session"] for t in study.trials}) == 1  # one search, whichever worker ran a trial
    workers = {t.system_attrs.get("worker") for t in study.trials}
    assert workers == {0, 1}  # both processes told trials


def test_max_workers_needs_an_rdb_storage_and_a_bayesian_method(monkeypatch):
    for var in ("ADMF_POSTGRES_URL", "ADMF_OPTUNA_STORAGE"):
        monkeypatch.delenv(var, raising=False)

    def lines(opt: dict) -> list[str]:
        doc = {**WORKFLOW, "phases": [{**WORKFLOW["phases"][0], "config": {
            "strategies": [{"type": "momentum"}], "optimization": opt}}]}
        try:
            return load_workflow_dict(doc, source="w.yaml").warnings
        except WorkflowError as exc:
            return exc.lines()

    space = {"fast_period": [2, 10], "slow_period": [12, 40]}
    [err] = lines({"method": "bayesian", "n_trials": 10, "parameters": space, "max_workers": 2})
    assert "w.yaml" in err and "phase 'search'" in err and "optimization.max_workers" in err and "RDB storage" in err
    [err] = lines({"method": "bayesian", "n_trials": 10, "parameters": space, "container_count": 3,
                   "storage": "journal.log"})
    assert "optimization.max_workers" in err
    assert lines({"method": "bayesian", "n_trials": 10, "parameters": space, "container_count": 3,
                  "storage": "sqlite:///studies.db"}) == []
    [warn] = lines({"method": "grid", "parameters": space, "max_workers": 2})
    assert "optimization.max_workers" in warn and "ignored by method 'grid'" in warn
