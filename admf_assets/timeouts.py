"""Time limits enforced inside the step, wherever the run was launched.

Dagster's own limit is the run tag ``dagster/max_runtime``, which only the daemon's run
monitoring enforces; ``admf run`` has no daemon.  So each phase's step enforces two limits
itself: the phase's ``timeout`` and what is left of the workflow's total limit (the same
number as the job's ``dagster/max_runtime``, counted from the run's start).  The limit interrupts
the phase's code with :class:`PhaseTimeout`; the compiler turns it into the failure message
(a phase timeout is retried under the phase's retry policy, the run limit is not).

In the main thread (the in-process executor, each worker of the multiprocess executor, a
run launched from the UI) a ``SIGALRM`` timer interrupts even a sleeping phase; in another
thread a watchdog raises the exception asynchronously, which interrupts Python code between
bytecodes (not a blocking C call until it returns).
"""

from __future__ import annotations

import ctypes
import math
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from dagster._core.definitions.policy import calculate_delay

__all__ = ["PhaseTimeout", "time_limit", "total_limit", "format_seconds"]


class PhaseTimeout(BaseException):
    """The phase's time is up.  A BaseException, so an ``except Exception`` in a kind's code
    cannot swallow it."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`PhaseTimeout` in this thread once ``seconds`` have passed (no limit for
    None or 0)."""
    if not seconds or seconds <= 0 or not math.isfinite(seconds):
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _alarm(seconds):
            yield
    else:
        with _watchdog(seconds):
            yield


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    armed = [True]

    def _raise(signum, frame):  # noqa: ARG001 - signal handler signature
        if armed[0]:
            raise PhaseTimeout()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    target = threading.get_ident()
    done = threading.Event()

    def _watch() -> None:
        if not done.wait(seconds):
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(PhaseTimeout))

    watcher = threading.Thread(target=_watch, name="admf-phase-timeout", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def total_limit(phases, explicit: float | None = None) -> float | None:
    """The workflow's total time limit: ``explicit`` (the workflow's ``execution.timeout``) when
    given; else, when EVERY phase has a ``timeout``, the sum over the phases of the timeout
    times its attempts (1 + retries) plus the longest retry delays its policy can wait; else
    None (a phase without a timeout has no bound, so neither has the run).  ``phases``: objects
    with ``timeout_seconds`` and ``retry_policy`` (a ``dagster.RetryPolicy`` or None)."""
    if explicit:
        return float(explicit)
    phases = list(phases)
    if not phases or not all(p.timeout_seconds for p in phases):
        return None
    total = 0.0
    for p in phases:
        policy = p.retry_policy
        retries = policy.max_retries if policy else 0
        total += p.timeout_seconds * (1 + retries)
        for attempt in range(1, retries + 1):
            delay = calculate_delay(attempt, policy.backoff, None, policy.delay or 0)
            jitter = (policy.delay or 0) if policy.jitter is not None else 0
            total += delay + jitter
    return total or None


def format_seconds(seconds: float) -> str:
    """``2`` -> ``'2'``, ``2.5`` -> ``'2.5'`` (for messages in seconds)."""
    return f"{seconds:g}"
