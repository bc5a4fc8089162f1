"""The terminal of admf runs: phase lines with times, progress bars, throttled progress events."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd

from admf_assets.engine.backtest import run_grid
from admf_assets.engine.strategies import expand_grid
from admf_assets.progress import ProgressPrinter, Throttle, parse_progress, progress_message, run_loggers


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _record(step, event=None, message="", level=logging.DEBUG, partition=None):
    rec = logging.LogRecord("dagster", level, __file__, 1, message, None, None)
    ev = SimpleNamespace(event_type_value=event, partition=partition) if event else None
    rec.dagster_meta = {"step_key": step, "dagster_event": ev, "orig_message": message}
    return rec


def _printer(tty, **kw):
    stream, clock = io.StringIO(), _Clock()
    p = ProgressPrinter(stream=stream, labels={"wf__data": "data", "wf__opt": "opt"}, order=["wf__data", "wf__opt"],
                        tty=tty, clock=clock, **kw)
    return p, stream, clock


def test_a_line_per_phase_with_its_time():
    p, out, clock = _printer(tty=False)
    p.emit(_record("wf__data", "STEP_START"))
    clock.t = 1.25
    p.emit(_record("wf__data", "STEP_SUCCESS"))
    p.emit(_record("wf__opt", "STEP_START"))
    p.emit(_record("wf__opt", "STEP_OUTPUT"))  # everything else stays in the event log
    p.emit(_record("wf__opt", None, "Loading file from: x"))
    p.emit(_record("wf__opt", None, "cleaning changed 3 rows", level=logging.WARNING))
    clock.t = 4.0
    p.emit(_record("wf__opt", "STEP_FAILURE", level=logging.ERROR))
    assert out.getvalue().splitlines() == [
        "  [1/2] data: started",
        "  [1/2] data: done in 1.2 s",
        "  [2/2] opt: started",
        "      opt: warning: cleaning changed 3 rows",
        "  [2/2] opt: FAILED after 2.8 s",
    ]


def test_progress_bar_on_a_terminal_and_sparse_lines_elsewhere():
    p, out, clock = _printer(tty=True)
    for done in (1, 2, 10):
        clock.t += 1
        p.emit(_record("wf__opt", None, progress_message(done * 100, 1000, "momentum combinations")))
    p.emit(_record("wf__opt", "STEP_SUCCESS"))
    text = out.getvalue()
    assert "\r\x1b[K      opt [##..................] 100/1,000 momentum combinations" in text
    assert "\r\x1b[K      opt [####................] 200/1,000 momentum combinations" in text
    assert "\r\x1b[K      opt [####################] 1,000/1,000 momentum combinations" in text
    assert text.endswith("\r\x1b[K  [1/2] opt: done in 0.0 s\n")  # the bar is cleared before the next line
    p, out, clock = _printer(tty=False, partitions=781)
    for i in range(1, 782):
        clock.t = i * 0.05  # 39 s in all: a line every 10 s, none for the last partition
        p.emit(_record("wf__data", "ASSET_MATERIALIZATION", partition=f"p{i}"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0] == "      data: 201/781 partitions stored (26 %)"


def test_throttle_reports_at_most_every_interval_and_always_the_end():
    clock, seen = _Clock(), []
    t = Throttle(lambda d, n, u: seen.append(d), interval=20.0, clock=clock)
    for i in range(1, 101):
        clock.t = float(i)
        t(i, 100, "combinations")
    assert seen == [1, 21, 41, 61, 81, 100]
    assert parse_progress(progress_message(3, 7, "x y")) == (3, 7, "x y") and parse_progress("other") is None


def test_the_grid_reports_its_progress_per_chunk():
    rng = np.random.default_rng(3)
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (300, 2)), axis=0)), columns=["A", "B"],
                         index=pd.bdate_range("2021-01-04", periods=300))
    params = expand_grid("momentum", {"fast_period": [2, 3, 4, 5, 6], "slow_period": list(range(10, 30))})
    calls = []
    run_grid(close, "momentum", params, chunk_size=25, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(25, 100), (50, 100), (75, 100), (100, 100)]


def test_run_loggers_pick_the_terminal_or_the_event_log():
    assert run_loggers(True) == {"console": {"config": {"log_level": "DEBUG"}}}
    assert run_loggers(False, {"a": "b"}, ["a"], 5) == {
        "admf_progress": {"config": {"labels": {"a": "b"}, "order": ["a"], "partitions": 5}}}
