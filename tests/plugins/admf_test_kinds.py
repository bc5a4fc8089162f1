"""A test-only phase kind, registered through ``ADMF_PLUGINS=admf_test_kinds`` (with this folder
on ``PYTHONPATH``): a phase that sleeps, fails a number of times first, and leaves marker files
that tests wait for.  Used by the timeout, retry and kill/resume tests (in this process and in
``admf`` subprocesses)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from admf_assets.phases import KINDS
from admf_assets.phases.kind import Output, PhaseContext, PhaseKind, PhaseResult, StrictModel


class Config(StrictModel):
    seconds: float = 0.0  #: how long to sleep
    sleep_once: bool = False  #: sleep only when the phase's ``started`` marker does not exist yet
    fail_times: int = 0  #: raise on the first N attempts (counted in ``state``)
    state: str | None = None  #: folder for the marker files (``<phase>.started``, ``<phase>.attempts``)
    value: int = 0  #: part of the output (an edit changes the content)


class SleepKind(PhaseKind):
    name = "test_sleep"
    description = "Test only: sleeps, fails its first attempts, writes marker files."
    Config = Config
    outputs = (Output("done", "One row: the attempt that succeeded", columns=("phase", "attempt", "value")),)
    metrics = ("attempt",)

    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        state = Path(cfg.state) if cfg.state else None
        attempt = 1
        first = True
        if state is not None:
            state.mkdir(parents=True, exist_ok=True)
            counter = state / f"{ctx.phase}.attempts"
            attempt = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(attempt))
            started = state / f"{ctx.phase}.started"
            first = not started.exists()
            started.write_text(str(time.time()))
        if attempt <= cfg.fail_times:
            raise RuntimeError(f"planned failure of attempt {attempt}")
        if cfg.seconds and (first or not cfg.sleep_once):
            time.sleep(cfg.seconds)
        done = pd.DataFrame({"phase": [ctx.phase], "attempt": [attempt], "value": [cfg.value]})
        return PhaseResult(outputs={"done": done}, metrics={"attempt": attempt})


KINDS.register(SleepKind(), replace=True)
