"""What ``admf run`` and ``admf backfill`` print while a run goes: one line per phase as it
starts and ends (with its time), a progress bar for long backfills and searches, one line
per failed phase.  Dagster's full event log still goes to the instance (the UI shows it) and
to the terminal with ``--verbose``.

* :func:`run_loggers` is the ``loggers`` run config of a CLI run: this module's Dagster logger
  (``admf_progress``) by default, Dagster's console logger at DEBUG with ``verbose``.
* A phase reports progress with ``ctx.progress(done, total, unit)``; the compiler turns it into
  a throttled log message (:func:`progress_message`, :class:`Throttle`), which is stored in the
  event log like any other and drawn as a bar here.
* A backfill's bar counts the per-partition materializations Dagster records (most of a long
  backfill's time).

Example (a terminal)::

    [1/4] data: started
    [1/4] data: done in 0.4 s
    [2/4] parameter_optimization: started
          parameter_optimization [##########..........] 2,000/4,000 momentum combinations
    [2/4] parameter_optimization: done in 3.1 s
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Callable, TextIO

import dagster as dg

__all__ = ["LOGGER_KEY", "ProgressPrinter", "Throttle", "parse_progress", "progress_logger", "progress_message",
           "run_loggers"]

LOGGER_KEY = "admf_progress"
_PREFIX = "progress: "
_PATTERN = re.compile(r"^progress: (\d+)/(\d+) (.*)$")
#: on a terminal the bar is redrawn at most this often; elsewhere one line per ``PLAIN_EVERY`` s
REDRAW_EVERY = 0.1
PLAIN_EVERY = 10.0
BAR_WIDTH = 20


def progress_message(done: int, total: int, unit: str) -> str:
    """The log message that carries a phase's progress: ``progress: 120/4000 momentum combinations``."""
    return f"{_PREFIX}{int(done)}/{int(total)} {unit}"


def parse_progress(message: str) -> tuple[int, int, str] | None:
    m = _PATTERN.match(message or "")
    return (int(m.group(1)), int(m.group(2)), m.group(3)) if m else None


class Throttle:
    """Calls ``sink(done, total, unit)`` at most every ``interval`` seconds, and always for the
    last item (``done == total``), so a progress report costs a few events per phase."""

    def __init__(self, sink: Callable[[int, int, str], None], interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):
        self.sink, self.interval, self.clock = sink, interval, clock
        self._last = float("-inf")

    def __call__(self, done: int, total: int, unit: str) -> None:
        now = self.clock()
        if done >= total or now - self._last >= self.interval:
            self._last = now
            self.sink(done, total, unit)


def _fmt_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


class ProgressPrinter(logging.Handler):
    """Turns a run's Dagster log records into the lines above.

    ``labels``: step key -> the phase name shown; ``order``: the step keys in plan order (for
    the ``[i/n]`` counters); ``partitions``: partitions of a backfill (for its bar)."""

    def __init__(self, stream: TextIO | None = None, labels: dict[str, str] | None = None,
                 order: list[str] | None = None, partitions: int = 0, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(logging.DEBUG)
        self.stream = stream or sys.stdout
        self.labels = dict(labels or {})
        self.order = list(order or [])
        self.partitions = int(partitions)
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self._started: dict[str, float] = {}
        self._number: dict[str, int] = {}
        self._stored: dict[str, int] = {}
        self._bar_open = False
        self._last_draw = float("-inf")

    # ---------------------------------------------------------------- output
    def _label(self, step: str | None) -> str:
        return self.labels.get(step or "", step or "run")

    def _counter(self, step: str | None) -> str:
        """``[i/n]``: the i-th step to start of the n planned (steps start in dependency order,
        not necessarily in the order of the YAML)."""
        if step not in self.order:
            return ""
        if step not in self._number:
            self._number[step] = len(self._number) + 1
        return f"[{self._number[step]}/{len(self.order)}] "

    def _line(self, text: str) -> None:
        if self._bar_open:
            self.stream.write("\r\033[K")
            self._bar_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _bar(self, step: str | None, done: int, total: int, unit: str) -> None:
        now = self.clock()
        final = done >= total
        if self.tty:
            if not final and now - self._last_draw < REDRAW_EVERY:
                return
            filled = int(BAR_WIDTH * done / total) if total else BAR_WIDTH
            text = (f"      {self._label(step)} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                    f"{done:,}/{total:,} {unit}")
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._bar_open = True
        else:
            if self._last_draw == float("-inf"):
                self._last_draw = now  # the first line comes PLAIN_EVERY seconds in, not at once
            if final or now - self._last_draw < PLAIN_EVERY:
                return
            self._line(f"      {self._label(step)}: {done:,}/{total:,} {unit} ({100 * done / max(total, 1):.0f} %)")
        self._last_draw = now

    # ---------------------------------------------------------------- records
    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record)
        except Exception:  # noqa: BLE001 - the terminal must never break a run
            self.handleError(record)

    def _emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        step = meta.get("step_key")
        event = meta.get("dagster_event")
        if event is None:
            message = meta.get("orig_message", record.getMessage())
            p = parse_progress(message)
            if p is not None:
                self._bar(step, *p)
            elif record.levelno >= logging.WARNING and not message.startswith("Dependencies for step"):
                self._line(f"      {self._label(step)}: warning: {' '.join(message.split())}")
            return
        kind = event.event_type_value
        now = self.clock()
        if kind == "STEP_START":
            self._started[step] = now
            self._line(f"  {self._counter(step)}{self._label(step)}: started")
        elif kind == "STEP_SUCCESS":
            took = now - self._started.get(step, now)
            self._line(f"  {self._counter(step)}{self._label(step)}: done in {_fmt_seconds(took)}")
        elif kind == "STEP_FAILURE":
            took = now - self._started.get(step, now)
            self._line(f"  {self._counter(step)}{self._label(step)}: FAILED after {_fmt_seconds(took)}")
        elif kind == "ASSET_MATERIALIZATION" and self.partitions and event.partition is not None:
            self._stored[step] = self._stored.get(step, 0) + 1
            self._bar(step, self._stored[step], self.partitions, "partitions stored")


@dg.logger(
    config_schema={
        "labels": dg.Field(dg.Permissive(), is_required=False, default_value={}),
        "order": dg.Field([str], is_required=False, default_value=[]),
        "partitions": dg.Field(int, is_required=False, default_value=0),
    },
    description="admf's terminal: a line per phase with its time, progress bars, nothing else "
                "(the event log is stored in the instance all the same).",
)
def progress_logger(init_context) -> logging.Logger:
    cfg = init_context.logger_config or {}
    logger = logging.Logger(f"admf.progress.{init_context.run_id or 'run'}", logging.DEBUG)
    logger.addHandler(ProgressPrinter(labels=cfg.get("labels"), order=cfg.get("order"),
                                      partitions=cfg.get("partitions", 0)))
    return logger


def run_loggers(verbose: bool, labels: dict[str, str] | None = None, order: list[str] | None = None,
                partitions: int = 0) -> dict[str, Any]:
    """The ``loggers`` section of a CLI run's config (see the module docstring)."""
    if verbose:
        return {"console": {"config": {"log_level": "DEBUG"}}}
    return {LOGGER_KEY: {"config": {"labels": dict(labels or {}), "order": list(order or []),
                                    "partitions": int(partitions)}}}


#: the loggers a job offers (Definitions(loggers=...)); runs without a ``loggers`` run config
#: (the UI's) keep Dagster's default console logger
LOGGERS = {"console": dg.colored_console_logger, LOGGER_KEY: progress_logger}
