"""The multiprocess executor's orchestration cost on a two-branch workflow, against Dagster's
floor and against the code before this change (a git ref, run from an extracted copy).

Configurations (each run in its own Python process, on one persistent SQLite instance whose
market data is backfilled once; the same 5-step shape: data -> search -> (analysis |
backtest) -> report, 2 steps at once):

* ``floor``: Dagster alone: 5 no-op assets of the same shape, multiprocess executor with a
  forkserver that preloads only ``dagster`` (what any Dagster project pays per run and step).
* ``before``: the workflow with the code of ``--before`` (default: the merge base with ``main``).
* ``after``: the workflow with this checkout.
* ``in_process``: the workflow in process (no step processes), for reference.

For each it prints the run's wall time, the phases' own compute (sum of their
``compute_seconds``), orchestration = wall - compute, the time until the first step started
(the forkserver's start: its imports and, after, the preloaded job) and the median time from
"launching subprocess" to "step started" of the other steps.  Medians over ``--repeat`` runs.

    python bench/bench_multiprocess.py [--workflow workflows/basic_research.yaml] [--repeat 3]
        [--before REF] [--home DIR (reuse a backfilled instance)]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("floor", "before", "after", "in_process")

# ----------------------------------------------------------------------------- Dagster's floor
import dagster as dg  # noqa: E402


@dg.asset
def data() -> None:
    return None


@dg.asset(deps=[data])
def search() -> None:
    return None


@dg.asset(deps=[search])
def analysis() -> None:
    return None


@dg.asset(deps=[search])
def validation() -> None:
    return None


@dg.asset(deps=[analysis, validation])
def report() -> None:
    return None


floor_job = dg.define_asset_job(
    "floor", selection=dg.AssetSelection.assets(data, search, analysis, validation, report),
    executor_def=dg.multiprocess_executor.configured(
        {"max_concurrent": 2, "start_method": {"forkserver": {"preload_modules": ["dagster"]}}}),
)
floor_defs = dg.Definitions(assets=[data, search, analysis, validation, report], jobs=[floor_job])


def floor_reconstructor() -> dg.JobDefinition:
    return floor_defs.resolve_job_def("floor")


# ----------------------------------------------------------------------------- one run (child)
def _breakdown(inst, run_id: str) -> dict:
    starting, started = {}, {}
    for rec in inst.all_logs(run_id):
        ev = rec.dagster_event
        if ev is None:
            continue
        if ev.event_type_value == "STEP_WORKER_STARTING":
            starting.setdefault(rec.step_key, rec.timestamp)
        elif ev.event_type_value == "STEP_START":
            started.setdefault(rec.step_key, rec.timestamp)
        elif ev.event_type_value == "PIPELINE_START":
            t_run = rec.timestamp
    if not starting:
        return {"first_step_s": None, "step_start_s": None}
    first = min(starting, key=starting.get)
    others = [started[k] - starting[k] for k in starting if k != first and k in started]
    return {"first_step_s": started[first] - t_run,
            "step_start_s": statistics.median(others) if others else None}


def child(config: str, workflow: str) -> dict:
    from admf_assets import runner, settings

    settings.ensure_dagster_home()
    with dg.DagsterInstance.get() as inst:
        if config == "floor":
            recon = dg.build_reconstructable_job(__name__ if __name__ != "__main__" else "bench_multiprocess",
                                                 "floor_reconstructor")
            t0 = time.perf_counter()
            with dg.execute_job(recon, instance=inst, raise_on_error=True) as res:
                wall = time.perf_counter() - t0
                out = {"wall_s": wall, "compute_s": 0.0, **_breakdown(inst, res.run_id)}
            return out
        executor = "in_process" if config == "in_process" else "multiprocess"
        t0 = time.perf_counter()
        res = runner.run_workflow(workflow, inst, executor=executor)
        wall = time.perf_counter() - t0
        assert res.success, res.failures
        return {"wall_s": wall, "compute_s": res.compute_seconds, **_breakdown(inst, res.run_id)}


# ----------------------------------------------------------------------------- driver
def _extract(ref: str, into: Path) -> Path:
    tar = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into


def _run_child(config: str, workflow: str, home: str, before_src: Path | None) -> dict:
    env = {**os.environ, "DAGSTER_HOME": home, "PYTHONPATH": str(Path(__file__).parent)}
    env.pop("ADMF_STORAGE", None)
    if config == "before":
        env["PYTHONPATH"] = f"{before_src}{os.pathsep}{env['PYTHONPATH']}"
    out = subprocess.run([sys.executable, __file__, "--child", config, "--workflow", workflow],
                         env=env, capture_output=True, text=True, cwd=str(before_src if config == "before" else REPO))
    if out.returncode:
        raise SystemExit(f"{config} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(v) -> str:
    return "   -  " if v is None else f"{v:6.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workflow", default=str(REPO / "workflows" / "basic_research.yaml"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", default=None,
                    help="git ref of the code to compare with (default: where this branch left main)")
    ap.add_argument("--home", help="a DAGSTER_HOME to reuse (its market data stays backfilled)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.workflow)))
        return

    workflow = str(Path(args.workflow).resolve())
    home = args.home or tempfile.mkdtemp(prefix="admf-bench-mp-")
    os.environ["DAGSTER_HOME"] = home
    from admf_assets import runner, settings
    from admf_assets.workflow.loader import load_workflow

    settings.ensure_dagster_home()
    graph = load_workflow(workflow).graph
    gap = runner.missing_market_range(graph)
    if gap:
        print(f"backfilling {gap[0]}..{gap[1]} into {home} (once)", flush=True)
        with dg.DagsterInstance.get() as inst:
            assert runner.backfill(gap[0], gap[1], inst).success
    configs = [c for c in args.configs.split(",") if c]
    before = args.before or subprocess.run(["git", "-C", str(REPO), "merge-base", "HEAD", "main"], check=True,
                                           capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        before_src = _extract(before, Path(tmp)) if "before" in configs else None
        if before_src is not None:  # the workflow file as the old code knows it
            rel = Path(workflow).relative_to(REPO) if Path(workflow).is_relative_to(REPO) else None
            wf_before = str(before_src / rel) if rel and (before_src / rel).exists() else workflow
        results: dict[str, list[dict]] = {c: [] for c in configs}
        for i in range(args.repeat):
            for c in configs:
                wf = wf_before if c == "before" else workflow
                results[c].append(_run_child(c, wf, home, before_src))
                print(f"  run {i + 1}/{args.repeat} {c:10s} {results[c][-1]['wall_s']:6.2f} s", flush=True)
    load = os.getloadavg()[0]
    print(f"\n{Path(workflow).name}: medians of {args.repeat} runs, {os.cpu_count()} cores, load average {load:.1f}; "
          f"before = {before[:10]}")
    print(f"{'config':12s} {'wall s':>7s} {'phases s':>9s} {'orchestration s':>16s} {'1st step s':>11s} "
          f"{'step start s':>13s}")
    med = {}
    for c, runs in results.items():
        m = {k: (statistics.median([r[k] for r in runs]) if runs[0][k] is not None else None) for k in runs[0]}
        m["orch_s"] = m["wall_s"] - m["compute_s"]
        med[c] = m
        print(f"{c:12s} {_fmt(m['wall_s']):>7s} {_fmt(m['compute_s']):>9s} {_fmt(m['orch_s']):>16s} "
              f"{_fmt(m['first_step_s']):>11s} {_fmt(m['step_start_s']):>13s}")
    if "before" in med and "after" in med:
        print(f"orchestration after / before: {med['after']['orch_s'] / med['before']['orch_s']:.2f}")
    if "floor" in med and "after" in med:
        print(f"orchestration after / Dagster's floor: {med['after']['orch_s'] / med['floor']['orch_s']:.2f}")


if __name__ == "__main__":
    main()
