"""A Bayesian (TPE) search that several processes run on ONE Optuna study in an RDB storage.

:func:`optimize_shared` is :func:`admf_assets.engine.optimize.optimize` for ``method="tpe"``
with ``workers`` processes: it queues the study's trial budget (``shared_study.prepare``),
runs ``workers - 1`` spawned processes (started together: the search waits until they have
imported the project, ``seconds["start"]``) and itself as workers (``shared_study.run_worker``,
each scoring its batches exactly as ``optimize`` does: the same objectives, constraints,
told values and trial attributes), and returns the study's COMPLETE trials as an
:class:`~admf_assets.engine.optimize.OptimizeResult`.  Other machines may join the same study
with :func:`worker_main` while it runs.  A killed worker loses nothing: its trials are run
again by the others (see :mod:`admf_assets.engine.shared_study`); ``OptimizeResult.message``
says how many were retried.

With one worker the search is reproducible from its seed; with several, which worker samples
which trial depends on timing (each worker's sampler is seeded ``seed + worker``).
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
import warnings
from typing import Any, Callable, Mapping, Sequence

import optuna
from optuna.trial import TrialState

from . import shared_study as ss
from .optimize import (Constraint, Dim, Objective, OptimizeResult, _best_and_front, _Search, _STATE_KEY,
                       default_batch_size, trials_frame)
from .studies import describe_storage

__all__ = ["optimize_shared", "worker_main", "StrategyValid", "START_SECONDS"]

#: how long the search waits for its spawned workers to start before it runs without the late ones
START_SECONDS = 60.0


def _scorer(evaluate, dims, objectives, constraints, fixed, valid, n_trials, session) -> tuple[_Search, Callable]:
    s = _Search(evaluate, list(dims), list(objectives), list(constraints), dict(fixed or {}), valid, "tpe",
                n_trials, None, None)
    s.session = session

    def batch(params: list[dict]) -> ss.BatchResult:
        t0 = time.perf_counter()
        metrics = s.evaluate_params(params)
        secs = time.perf_counter() - t0
        obj, viol = s.score(metrics)
        told = s.told(obj, viol, True)
        user = [s.attrs(m, o, secs, len(params), 0.0) for m, o in zip(metrics, obj)]
        system = [{f"{_STATE_KEY}{k}": float(x) for k, x in zip(s.constraint_keys, v)} for v in viol]
        s.batch += 1
        return ss.BatchResult([t if len(t) > 1 else t[0] for t in told], user, system)

    return s, batch


def worker_main(url: str, study_name: str, evaluate, dims: Sequence[Dim], objectives: Sequence[Objective], *,
                n_trials: int, constraints: Sequence[Constraint] = (), fixed: Mapping[str, Any] | None = None,
                valid=None, batch_size: int | None = None, worker: int = 0, seed: int = 0,
                session: str = "") -> ss.WorkerStats:
    """One worker of a shared search (in this process): runs queued trials until none is left."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        _, batch = _scorer(evaluate, dims, objectives, constraints, fixed, valid, n_trials, session)
        return ss.run_worker(url, study_name, {d.name: d.distribution() for d in dims}, batch,
                             batch_size=batch_size or default_batch_size("tpe"), worker=worker, seed=seed)


def _child(queue, url, study_name, evaluate, dims, objectives, kw) -> None:
    queue.put(("ready", kw["worker"]))  # imported and unpickled: the workers start together
    stats = worker_main(url, study_name, evaluate, dims, objectives, **kw)
    queue.put(("done", stats))


def optimize_shared(evaluate: Callable, dims: Sequence[Dim], objectives: Sequence[Objective], *, n_trials: int,
                    url: str, study_name: str, workers: int = 2, seed: int = 0,
                    constraints: Sequence[Constraint] = (), fixed: Mapping[str, Any] | None = None,
                    valid=None, batch_size: int | None = None, attrs: Mapping[str, Any] | None = None,
                    resume: bool = True, log: Callable[[str], None] | None = None) -> OptimizeResult:
    """Run the TPE search on the study ``study_name`` at ``url`` with ``workers`` processes until
    it holds ``n_trials`` COMPLETE trials (see the module docstring); ``evaluate``, ``valid``,
    the objectives and constraints must pickle (they travel to the spawned workers)."""
    if len(objectives) != 1:
        raise ValueError("a shared study optimizes one objective (method 'bayesian')")
    if not dims:
        raise ValueError("method 'bayesian' needs at least one searched parameter (a range or several values)")
    workers = max(1, int(workers))
    t0 = time.perf_counter()
    storage = ss.open_rdb(url)
    directions = [o.direction for o in objectives]
    if not resume:
        try:
            optuna.delete_study(study_name=study_name, storage=storage)
        except KeyError:
            pass
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    before = ss.prepare(storage, study_name, directions, int(n_trials),
                        {k: v for k, v in (attrs or {}).items()})
    study = optuna.load_study(study_name=study_name, storage=storage)
    if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in directions]:
        raise ValueError(f"study {study_name!r} exists with other directions; use another study name")
    session = uuid.uuid4().hex[:12]
    kw = dict(n_trials=int(n_trials), constraints=list(constraints), fixed=dict(fixed or {}), valid=valid,
              batch_size=batch_size, seed=int(seed), session=session)
    ctx = mp.get_context("spawn")  # no fork of a process that holds database connections and threads
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(queue, url, study_name, evaluate, list(dims), list(objectives),
                                              {**kw, "worker": w}), name=f"admf-search-worker-{w}", daemon=True)
             for w in range(1, workers)]
    for p in procs:
        p.start()
    messages = []
    deadline = time.monotonic() + START_SECONDS
    while sum(m[0] == "ready" for m in messages) < len(procs) and time.monotonic() < deadline:
        if not any(p.is_alive() for p in procs):
            break
        try:
            messages.append(queue.get(timeout=0.2))
        except Exception:  # noqa: BLE001 - queue.Empty: keep waiting
            pass
    t_ready = time.perf_counter() - t0
    stats = [worker_main(url, study_name, evaluate, dims, objectives, **kw, worker=0)]
    for p in procs:
        p.join()
    while not queue.empty():
        messages.append(queue.get_nowait())
    stats += [m[1] for m in messages if m[0] == "done"]
    dead = [p.name for p in procs if p.exitcode != 0]
    after = ss.budget(study, int(n_trials))
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    total = time.perf_counter() - t0
    keys = _Search(evaluate, list(dims), list(objectives), list(constraints), dict(fixed or {}), valid, "tpe",
                   int(n_trials), None, None).constraint_keys
    trials = trials_frame(done, dims, objectives, keys, session)
    best, pareto = _best_and_front(trials, objectives)
    evaluated = sum(s.told for s in stats)
    retried = sum(s.retries_run for s in stats)
    engine = sum(s.seconds["evaluate"] for s in stats)
    msg = (f"bayesian on a shared study: {len(done)} trials ({before.complete} from the study, {evaluated} "
           f"evaluated by {workers} workers: " + ", ".join(f"{s.told}" for s in sorted(stats, key=lambda s: s.worker))
           + f"; {retried} re-run after a worker died" + (f"; workers that died: {', '.join(dead)}" if dead else "")
           + ")")
    if after.complete < int(n_trials):
        msg += f"; {int(n_trials) - after.complete} trials failed {ss.MAX_RETRY + 1} times and were given up"
    if log is not None:
        log(msg)
    return OptimizeResult(trials=trials, objectives=list(objectives), constraints=list(constraints), dims=list(dims),
                          fixed=dict(fixed or {}), method="tpe", best=best, pareto=pareto,
                          n_resumed=before.complete, n_evaluated=evaluated,
                          engine_calls=sum(s.batches for s in stats),
                          seconds={"engine": round(engine, 4), "total": round(total, 4), "start": round(t_ready, 4),
                                   "storage": 0.0, "sampler": round(sum(s.seconds["sample"] for s in stats), 4)},
                          study_name=study_name, storage=describe_storage(url), message=msg)


class StrategyValid:
    """``optimize.strategy_valid(strategy)`` as an object that pickles (for spawned workers)."""

    def __init__(self, strategy: str):
        self.strategy = strategy
        self._fn = None

    def __call__(self, frame):
        if self._fn is None:
            from .optimize import strategy_valid

            self._fn = strategy_valid(self.strategy)
        return self._fn(frame)

    def __getstate__(self):
        return {"strategy": self.strategy, "_fn": None}
