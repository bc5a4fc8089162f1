"""infrastructure.phase_resources have effects: memory_limit_gb bounds the evaluation's peak
memory (measured: the peak RSS of a subprocess), max_workers is the number of threads that
evaluate the grid (same numbers as one), what cannot fit is refused at validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pytest

from admf_assets.engine import backtest as engine_backtest
from admf_assets.engine.estimate import chunk_combinations, search_estimate
from admf_assets.phases import KINDS
from admf_assets.workflow.errors import WorkflowError
from admf_assets.workflow.loader import load_workflow_dict

REPO = Path(__file__).resolve().parents[2]

#: a phase-sized search: 20 symbols x 2,555 train bars x 600 combinations (49 distinct windows)
PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import optuna  # imported where a search runs: loaded before the baseline, the probe measures the data
    from admf_assets.engine import synthetic
    from admf_assets.phases.data_preparation import prepare_bars
    from admf_assets.phases.common import SplitConfig
    from admf_assets.workflow.context import phase_context
    from admf_assets.workflow.loader import load_workflow_dict

    limit = json.loads(sys.argv[1])
    symbols = list(synthetic.DEFAULT_SYMBOLS)
    bars = synthetic.synthetic_bars(symbols, "2010-01-04", "2023-12-29")
    bars, _, _ = prepare_bars(bars, symbols, SplitConfig(test_fraction=0.3))
    doc = {"workflow": {"id": "probe"},
           "data": {"symbols": symbols, "start_date": "2010-01-04", "end_date": "2023-12-29"},
           "phases": [{"name": "opt", "type": "optimization", "config": {"optimization": {"parameters": {
               "fast_period": list(range(2, 26)), "slow_period": list(range(30, 55))}}}}],
           "reporting": {"enabled": False}}
    if limit is not None:
        doc["infrastructure"] = {"phase_resources": {"opt": {"memory_limit_gb": limit}}}
    graph = load_workflow_dict(doc, source="probe.yaml").graph
    node = graph.phases["opt"]
    ctx = phase_context(graph, node, {"data.bars": bars})

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    import gc; gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the current RSS
        fh.write("5")
    base = status("VmRSS:")
    res = node.kind.run(ctx)
    print(json.dumps({"base": base, "peak": status("VmHWM:"), "best": res.outputs["best_parameters"].params.iloc[0],
                      "sharpe": float(res.metrics["sharpe_ratio"]), "trials": int(res.metrics["n_trials"])}))
""")


def _probe(limit_gb):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADMF_", "DAGSTER_"))}
    p = subprocess.run([sys.executable, "-c", PROBE, json.dumps(limit_gb)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
def test_memory_limit_bounds_the_phases_peak_memory():
    limit_gb = 0.045
    limited, default = _probe(limit_gb), _probe(None)
    used, used_default = limited["peak"] - limited["base"], default["peak"] - default["base"]
    assert used <= limit_gb * 1e9, f"peak {used / 1e6:.1f} MB above the start with a {limit_gb * 1e3:.0f} MB limit"
    assert used_default > limit_gb * 1e9, "the default chunks would not exceed the limit: the test shows nothing"
    assert (limited["best"], limited["sharpe"], limited["trials"]) == (default["best"], default["sharpe"], 600)


def test_chunks_follow_the_budget():
    est = search_estimate(540, 2550, 20, 3, distinct_windows=6)
    assert chunk_combinations(30e6, 540, 2550, 20, 6) < est.default_chunk
    assert chunk_combinations(30e6, 540, 2550, 20, 6, workers=2) == chunk_combinations(30e6, 540, 2550, 20, 6) // 2
    assert chunk_combinations(10e9, 540, 2550, 20, 6) == est.default_chunk  # never bigger than the default
    with pytest.raises(ValueError, match=r"a memory limit of 1.0 MB is too small .* it needs at least"):
        chunk_combinations(1e6, 540, 2550, 20, 6)


def test_max_workers_threads_evaluate_the_grid_with_the_same_numbers(kit, tmp_path, monkeypatch):
    threads: set[str] = set()
    real = engine_backtest.raw_positions

    def spy(*a, **k):
        threads.add(threading.current_thread().name)
        return real(*a, **k)

    monkeypatch.setattr(engine_backtest, "raw_positions", spy)
    results = {}
    for workers in (1, 2):
        cfg = {"optimization": {"parameters": {"fast_period": list(range(2, 30)), "slow_period": list(range(31, 60)),
                                               "signal_threshold": [0.0, 0.01]}}}
        graph = _with_workers(kit.workflow_for(KINDS["parameter_search"], config=cfg), workers)
        threads.clear()
        store = kit.write_market(tmp_path / f"workers_{workers}")  # its own Optuna study: nothing resumed
        results[workers] = kit.execute(graph, store)["target"]
        if workers == 2:
            assert {t for t in threads if t.startswith("admf-grid")}, threads  # chunks ran in worker threads
        else:
            assert threads == {"MainThread"}
    h1, h2 = (results[w].outputs["optimization_history"] for w in (1, 2))
    timing = ["duration"]  # wall time of the trial's batch, the only column allowed to differ
    pd.testing.assert_frame_equal(h1.drop(columns=timing), h2.drop(columns=timing))  # bit for bit


def _with_workers(graph, workers):
    from dataclasses import replace
    from types import MappingProxyType

    phases = dict(graph.phases)
    phases["target"] = replace(phases["target"], max_workers=workers)
    return replace(graph, phases=MappingProxyType(phases))


# ------------------------------------------------------------------ validation
TEN = ["SPY", "QQQ", "IWM", "TLT", "GLD", "EFA", "EEM", "LQD", "HYG", "DIA"]


def _doc(resources=None, timeout=None, n_trials=None, kind="optimization", extra=None, symbols=("SPY", "QQQ")):
    phase = {"name": "opt", "type": kind,
             "config": {"optimization": {"parameters": {"fast_period": [5, 10, 20], "slow_period": [50, 100]}}}}
    if n_trials:
        phase["config"]["optimization"].update(method="random", n_trials=n_trials,
                                               parameters={"fast_period": [2, 50], "slow_period": [60, 400]})
    if timeout:
        phase["timeout"] = timeout
    phases = [phase] + (extra or [])
    doc = {"data": {"symbols": list(symbols), "start_date": "2015-01-01", "end_date": "2023-12-31"},
           "phases": phases, "reporting": {"enabled": False}}
    if resources:
        doc["infrastructure"] = {"phase_resources": resources}
    return doc


def _load(doc):
    return load_workflow_dict(doc, source="r.yaml", default_id="r")


def test_a_limit_below_one_combination_at_a_time_is_refused(monkeypatch):
    """memory_limit_gb: 0.001 used to run as if absent."""
    monkeypatch.setenv("ADMF_MEMORY_AVAILABLE_GB", "16")
    with pytest.raises(WorkflowError) as info:
        _load(_doc({"opt": {"memory_limit_gb": 0.001}}))
    assert str(info.value) == (
        "r.yaml: phase 'opt': field 'infrastructure.phase_resources.opt.memory_limit_gb': memory_limit_gb 0.001 "
        "(1.0 MB) is too small: the grid search (6 combinations x 1,642 bars x 2 symbol(s)) needs at least 8.5 MB "
        "even one combination at a time; raise memory_limit_gb or use a sampler (method: bayesian or random with "
        "n_trials), or fewer values per parameter, or fewer symbols or a shorter date range")
    node = _load(_doc({"opt": {"memory_limit_gb": 0.05, "max_workers": 2}})).graph.phases["opt"]
    assert (node.memory_limit_gb, node.max_workers) == (0.05, 2)


def test_a_search_longer_than_its_timeout_is_refused_and_a_long_one_warned(monkeypatch):
    monkeypatch.setenv("ADMF_MEMORY_AVAILABLE_GB", "16")
    with pytest.raises(WorkflowError) as info:
        _load(_doc(timeout=60, n_trials=2_000_000, symbols=TEN))
    assert str(info.value) == (
        "r.yaml: phase 'opt': field 'config.optimization': the random search (2,000,000 trials x 1,642 bars x 10 "
        "symbol(s)) would take about 1.1 h, longer than the phase's timeout (1.0 min): use fewer n_trials, or fewer "
        "symbols or a shorter date range, or raise the timeout")
    spec = _load(_doc(n_trials=2_000_000, symbols=TEN))
    assert spec.warnings == ["r.yaml: phase 'opt': field 'config.optimization': the random search (2,000,000 trials "
                             "x 1,642 bars x 10 symbol(s)) will take about 1.1 h (memory about 2.4 GB); use fewer "
                             "n_trials, or fewer symbols or a shorter date range to shorten it"]
    # two workers halve the estimate: under the hour, no warning
    assert _load(_doc({"opt": {"max_workers": 2}}, n_trials=2_000_000, symbols=TEN)).warnings == []


def test_resources_a_kind_does_not_use_are_warned_about_and_container_count_is_max_workers():
    bt = {"name": "bt", "type": "backtest", "inputs": ["opt.best_parameters"], "container_count": 8}
    spec = _load(_doc({"bt": {"memory_limit_gb": 2}, "opt": {"container_count": 4}}, extra=[bt]))
    assert spec.graph.phases["opt"].max_workers == 4 and spec.graph.phases["bt"].max_workers == 8
    assert spec.warnings == [
        "r.yaml: phase 'bt': field 'container_count': taken as max_workers (at most 256): the threads of the "
        "phase's evaluation on this machine (no containers are started; scale out with a Dagster executor)",
        "r.yaml: field 'infrastructure.phase_resources.opt.container_count': taken as max_workers (at most 256): the "
        "threads of the phase's evaluation on this machine (no containers are started; scale out with a Dagster "
        "executor)",
        "r.yaml: phase 'bt': field 'infrastructure.phase_resources.bt.memory_limit_gb': ignored: phase type "
        "'backtest' does not use memory_limit_gb (it applies to: parameter_search, signal_capture, analysis)",
        "r.yaml: phase 'bt': field 'max_workers': ignored: phase type 'backtest' does not use max_workers (it "
        "applies to: parameter_search, analysis)",
    ]
    many = _load(_doc({"opt": {"container_count": 1000}}))  # a cluster's containers: capped threads
    assert many.graph.phases["opt"].max_workers == 256
    with pytest.raises(WorkflowError, match="give container_count or max_workers, not both"):
        _load(_doc({"opt": {"container_count": 4, "max_workers": 2}}))
    with pytest.raises(WorkflowError, match="less than or equal to 256"):
        _load(_doc({"opt": {"max_workers": 10**12}}))
