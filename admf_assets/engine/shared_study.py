"""One Optuna study optimized by several processes at once, on an RDB storage (PostgreSQL).

The trial budget is a queue in the study itself: WAITING trials, one per trial still to run
(``n_trials`` minus the trials already COMPLETE, RUNNING or WAITING), and workers (:func:`run_worker`, one per process, on any machine that reaches the
database) only ever run trials they pop from that queue; Optuna's storage makes a pop atomic
(``set_trial_state_values(..., RUNNING)`` succeeds for one process only).  A worker samples the
parameters of the trials it popped (the study's sampler sees every other worker's trials,
RUNNING ones included: TPE with ``constant_liar``), evaluates them as ONE batch, and tells the
results.

Killed workers: while a worker holds trials a thread records their heartbeats (Optuna's
``RDBStorage(heartbeat_interval=...)``); any other worker (or the next :func:`prepare`) fails
trials whose heartbeat is older than the grace period (``optuna.storages.fail_stale_trials``),
and Optuna's ``RetryHeartbeatStaleTrialCallback`` puts each back in the queue as a WAITING trial with
the same parameters.  So when the queue is empty and nothing runs, the study holds exactly
``n_trials`` COMPLETE trials: none lost (a killed trial is run again, at most ``max_retry``
times), none run twice (a finished trial is never retried, a popped one never popped again).
A worker waits, rather than stopping, while other workers still hold trials: if they die it
runs their retries.

>>> storage = open_rdb("sqlite:///:memory:")        # doctest: +SKIP
>>> prepare(storage, "s", ["maximize"], n_trials=100)  # doctest: +SKIP
SharedBudget(n_trials=100, complete=0, running=0, queued=100, failed=0)
"""

from __future__ import annotations

import threading
import time
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

__all__ = ["HEARTBEAT_SECONDS", "GRACE_SECONDS", "MAX_RETRY", "QUEUE_AHEAD", "SharedBudget", "BatchResult", "WorkerStats",
           "open_rdb", "prepare", "run_worker", "budget", "suggest"]

HEARTBEAT_SECONDS = 1  #: how often a worker records the heartbeat of the trials it holds
GRACE_SECONDS = 5  #: a RUNNING trial whose heartbeat is older than this is failed and retried
MAX_RETRY = 3  #: how often one trial is run again after its worker died (then it stays FAIL)

QUEUE_AHEAD = 32  #: WAITING trials kept queued on PostgreSQL (the whole budget elsewhere)

_LIVE = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
_BUDGET_KEY = "admf:shared_n_trials"
_LOCK_SPACE = zlib.crc32(b"admf shared study") & 0x7FFFFFFF


@contextmanager
def _budget_lock(study: optuna.Study):
    """Hold PostgreSQL's advisory lock of this study's budget (yields False, holding nothing, on
    other databases): counting the live trials and queueing more, or failing stale trials and
    queueing their retries, happen one process at a time."""
    storage = getattr(study._storage, "_backend", study._storage)  # Optuna wraps an RDBStorage in a cache
    engine = getattr(storage, "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        yield False
        return
    import sqlalchemy as sa

    key = {"a": _LOCK_SPACE, "b": int(study._study_id)}
    with engine.connect() as con:
        con.execute(sa.text("SELECT pg_advisory_lock(:a, :b)"), key)
        try:
            yield True
        finally:
            con.execute(sa.text("SELECT pg_advisory_unlock(:a, :b)"), key)
            con.commit()


def _top_up(study: optuna.Study, n_trials: int, ahead: int | None) -> int:
    """Queue WAITING trials up to ``ahead`` queued (all that the budget lacks when None); the
    caller holds the budget lock.  Returns how many were queued."""
    trials = study.get_trials(deepcopy=False)
    live = sum(t.state in _LIVE for t in trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    add = int(n_trials) - live
    if ahead is not None:
        add = min(add, int(ahead) - waiting)
    if add > 0:
        study.add_trials([optuna.trial.create_trial(state=TrialState.WAITING, params={}, distributions={})
                          for _ in range(add)])
    return max(add, 0)


def open_rdb(url: str, heartbeat_seconds: int = HEARTBEAT_SECONDS, grace_seconds: int = GRACE_SECONDS,
             max_retry: int | None = MAX_RETRY) -> RDBStorage:
    """Optuna's RDB storage at ``url`` with heartbeats on and stale trials retried (Optuna marks
    heartbeats experimental: the warning is silenced here, the feature is what this module is for)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RDBStorage(url, heartbeat_interval=int(heartbeat_seconds), grace_period=int(grace_seconds),
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                          engine_kwargs={"pool_pre_ping": True})


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        fail_stale_trials(study)


@dataclass(frozen=True)
class SharedBudget:
    """The state of a shared study's budget: trials COMPLETE, RUNNING (held by a worker),
    queued (WAITING), and FAILED (killed attempts: each was queued again while retries remain)."""

    n_trials: int
    complete: int
    running: int
    queued: int
    failed: int


def budget(study: optuna.Study, n_trials: int) -> SharedBudget:
    """Count the study's trials by state."""
    counts = {s: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] += 1
    return SharedBudget(int(n_trials), counts[TrialState.COMPLETE], counts[TrialState.RUNNING],
                        counts[TrialState.WAITING], counts[TrialState.FAIL])


def prepare(storage: RDBStorage, study_name: str, directions: Sequence[str], n_trials: int,
            user_attrs: Mapping[str, Any] | None = None) -> SharedBudget:
    """Create (or load) the study and queue the trials its budget still lacks; returns its state.

    Trials a killed earlier run left RUNNING are failed and queued again first, once stale.  On
    databases other than PostgreSQL call it once, before the workers start (several callers at
    once could queue too much); on PostgreSQL it holds the budget's lock.
    """
    study = optuna.create_study(storage=storage, study_name=study_name, directions=list(directions),
                                load_if_exists=True)
    for k, v in (user_attrs or {}).items():
        if study.user_attrs.get(k) != v:
            study.set_user_attr(k, v)
    study._storage.set_study_system_attr(study._study_id, _BUDGET_KEY, int(n_trials))
    with _budget_lock(study) as lazy:
        _fail_stale(study)
        _top_up(study, n_trials, QUEUE_AHEAD if lazy else None)
    return budget(study, n_trials)


@dataclass
class BatchResult:
    """What a worker's ``evaluate`` returns for a batch of parameter sets, one entry per set:
    the objective value(s) to tell (a float, or a list for several objectives; ``None`` fails
    the trial), and the user / system attributes to store on it."""

    values: list[Any]
    user_attrs: list[Mapping[str, Any]] = field(default_factory=list)
    system_attrs: list[Mapping[str, Any]] = field(default_factory=list)


@dataclass
class WorkerStats:
    """What one worker did: trials it told, batches, retried trials it ran, seconds spent
    evaluating, in the storage / sampler, and waiting for other workers."""

    worker: int
    told: int = 0
    batches: int = 0
    retries_run: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"evaluate": 0.0, "sample": 0.0, "wait": 0.0,
                                                               "total": 0.0})


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """``trial.suggest_*`` for a distribution object (a retried trial keeps its parameters)."""
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f"unsupported distribution {type(dist).__name__} for {name!r}")


class _Heartbeat:
    """A thread recording the heartbeat of the trials a worker holds."""

    def __init__(self, storage: RDBStorage, interval: float):
        self.storage, self.interval = storage, float(interval)
        self.held: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)
        self.thread.start()

    def hold(self, trial_id: int) -> None:
        self.storage.record_heartbeat(trial_id)  # at once: a trial without a heartbeat is never stale
        with self.lock:
            self.held.add(trial_id)

    def release(self, trial_ids) -> None:
        with self.lock:
            self.held.difference_update(trial_ids)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            with self.lock:
                ids = list(self.held)
            for tid in ids:
                try:
                    self.storage.record_heartbeat(tid)
                except Exception:  # noqa: BLE001 - a missed beat only risks a retry
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _pop(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """Up to ``k`` queued trials, now RUNNING for this worker (a pop succeeds in one process)."""
    got: list[optuna.trial.FrozenTrial] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if len(got) >= k:
            break
        try:
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                got.append(t)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return got


def run_worker(storage: RDBStorage | str, study_name: str, distributions: Mapping[str, BaseDistribution],
               evaluate: Callable[[list[dict]], BatchResult], *, sampler: optuna.samplers.BaseSampler | None = None,
               batch_size: int = 8, worker: int = 0, seed: int = 0,
               on_batch: Callable[[WorkerStats], None] | None = None) -> WorkerStats:
    """Run queued trials of the shared study until the queue is empty and no worker holds a
    trial (see the module docstring).  ``evaluate(params)`` scores a batch of parameter dicts;
    ``sampler`` defaults to TPE (multivariate, ``constant_liar``) seeded with ``seed + worker``.
    Returns what this worker did."""
    t_start = time.perf_counter()
    if isinstance(storage, str):
        storage = open_rdb(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = sampler or optuna.samplers.TPESampler(seed=int(seed) + int(worker), multivariate=True,
                                                    constant_liar=True)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    n_trials = storage.get_study_system_attrs(study._study_id).get(_BUDGET_KEY)
    stats = WorkerStats(worker)
    beat = _Heartbeat(storage, storage.heartbeat_interval or HEARTBEAT_SECONDS)
    try:
        while True:
            k = max(1, int(batch_size))
            popped = _pop(study, k)
            if len(popped) < k and n_trials is not None:  # the queue runs low: top it up (PostgreSQL)
                with _budget_lock(study) as lazy:
                    queued = _top_up(study, n_trials, max(QUEUE_AHEAD, 2 * k)) if lazy else 0
                if queued:
                    popped += _pop(study, k - len(popped))
            ids = [t._trial_id for t in popped]
            if not ids:
                t0 = time.perf_counter()
                with _budget_lock(study):
                    _fail_stale(study)  # trials of dead workers go back into the queue
                if not study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)):
                    break
                time.sleep(min(0.5, beat.interval))
                stats.seconds["wait"] += time.perf_counter() - t0
                continue
            t0 = time.perf_counter()
            trials = []
            for tid in ids:
                beat.hold(tid)
                trial = optuna.trial.Trial(study, tid)
                for name, dist in distributions.items():
                    suggest(trial, name, dist)
                trials.append(trial)
            stats.retries_run += sum("failed_trial" in t.system_attrs for t in popped)
            stats.seconds["sample"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            res = evaluate([dict(t.params) for t in trials])
            stats.seconds["evaluate"] += time.perf_counter() - t0
            for i, trial in enumerate(trials):
                for k, v in (res.user_attrs[i] if i < len(res.user_attrs) else {}).items():
                    trial.set_user_attr(k, v)
                for k, v in {"worker": int(worker), **(res.system_attrs[i] if i < len(res.system_attrs) else {})}.items():
                    study._storage.set_trial_system_attr(trial._trial_id, k, v)
                value = res.values[i]
                if value is None:
                    study.tell(trial, state=TrialState.FAIL)
                else:
                    study.tell(trial, value)
            beat.release(ids)
            stats.told += len(trials)
            stats.batches += 1
            if on_batch is not None:
                on_batch(stats)
    finally:
        beat.close()
        stats.seconds["total"] = time.perf_counter() - t_start
        stats.seconds = {k: round(v, 4) for k, v in stats.seconds.items()}
    return stats
