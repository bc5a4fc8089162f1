"""External commands through Dagster Pipes: what ``PhaseContext.launch`` does (``graph`` and
``node`` below are the workflow's resolved graph and the phase's node).

The command runs as a subprocess (an argument list: no shell, nothing of the YAML is ever
interpreted by one) inside a Dagster Pipes session (``dagster.open_pipes_session`` with a
temporary-file context injector and message reader, as ``PipesSubprocessClient`` does).  The
script opens it with ``dagster_pipes.open_dagster_pipes()``; ``pipes.extras`` holds

* ``inputs``: ``{"phase.output": path}`` -- every upstream table as a Parquet file;
* ``outputs``: ``{name: {"path": ..., "asset_key": "wf/phase/name"}}`` -- where to write each
  output table, and the asset key to report its metadata on
  (``pipes.report_asset_materialization(asset_key=..., metadata={...})``; a phase with one
  output may leave the key out);
* ``params``, ``workflow``, ``phase``.

``pipes.log`` lines go to the run's event log; the command's stdout and stderr are forwarded
to the same log line by line (so the UI shows them and the terminal stays quiet).
"""

from __future__ import annotations

import os
import subprocess
import warnings
import threading
import time
from collections import deque
from typing import Any, Callable

import dagster as dg

from admf_assets.phases.kind import ExternalRun

warnings.filterwarnings("ignore", category=dg.PreviewWarning, module="dagster._core.pipes")

__all__ = ["launcher", "launch_standalone", "run_command"]

STDERR_TAIL = 5


def _asset_key(graph, node, output: str) -> str:
    return "/".join((graph.workflow_id, node.name, output))


def run_command(context, graph, node, command: list[str], *, inputs: dict[str, str],
                outputs: dict[str, str], params: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                cwd: str | None = None) -> ExternalRun:
    """Run ``command`` in a Pipes session of ``context`` (an asset execution context)."""
    keys = {name: _asset_key(graph, node, name) for name in outputs}
    extras = {"inputs": dict(inputs), "params": dict(params or {}), "workflow": graph.workflow_id,
              "phase": node.name, "outputs": {n: {"path": p, "asset_key": keys[n]} for n, p in outputs.items()}}
    tail: deque[str] = deque(maxlen=STDERR_TAIL)
    t0 = time.perf_counter()
    with dg.open_pipes_session(context=context, context_injector=dg.PipesTempFileContextInjector(),
                               message_reader=dg.PipesTempFileMessageReader(), extras=extras) as session:
        proc = subprocess.Popen(list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {}), **session.get_bootstrap_env_vars()})
        readers = [threading.Thread(target=_forward, args=(proc.stdout, context.log, "", None), daemon=True),
                   threading.Thread(target=_forward, args=(proc.stderr, context.log, "stderr: ", tail), daemon=True)]
        for t in readers:
            t.start()
        try:
            code = proc.wait()
        except BaseException:  # an interrupted run stops its command too
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        finally:
            for t in readers:
                t.join(timeout=5)
    seconds = time.perf_counter() - t0
    by_key = {v: k for k, v in keys.items()}
    metadata: dict[str, dict] = {name: {} for name in outputs}
    for res in session.get_results():
        key = getattr(res, "asset_key", None)
        name = by_key.get(key.to_user_string()) if key is not None else (next(iter(outputs)) if len(outputs) == 1
                                                                         else None)
        if name is not None and getattr(res, "metadata", None):
            metadata[name].update(dict(res.metadata))
    return ExternalRun(exit_code=int(code), metadata=metadata, seconds=seconds, stderr_tail=tuple(tail))


def _forward(stream, log, prefix: str, tail: deque | None) -> None:
    for line in iter(stream.readline, ""):
        line = line.rstrip("\n")
        if tail is not None and line.strip():
            tail.append(line.strip())
        log.info(f"{prefix}{line}")
    stream.close()


def launcher(context, graph, node) -> Callable[..., ExternalRun]:
    """``PhaseContext.launch`` inside a Dagster run: the command in a Pipes session of this step."""

    def launch(command: list[str], **kw) -> ExternalRun:
        return run_command(context, graph, node, command, **kw)

    return launch


def launch_standalone(graph, node, command: list[str], **kw) -> ExternalRun:
    """``PhaseContext.launch`` outside a Dagster run (a kind run directly, as the kind tests do):
    a one-step materialization on an ephemeral instance gives the Pipes session its context."""
    outputs = kw.get("outputs") or {}
    specs = [dg.AssetSpec(dg.AssetKey(_asset_key(graph, node, n).split("/"))) for n in outputs]
    box: dict[str, ExternalRun] = {}

    @dg.multi_asset(specs=specs, name=f"{graph.workflow_id}__{node.name}__standalone")
    def _step(context):
        box["run"] = run_command(context, graph, node, command, **kw)
        for spec in specs:
            yield dg.MaterializeResult(asset_key=spec.key)

    dg.materialize([_step], instance=dg.DagsterInstance.ephemeral())
    return box["run"]
