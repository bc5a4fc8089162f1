"""external (script, shell): a user's own script as a phase, run through Dagster Pipes.

    - name: score
      type: external
      inputs: [parameter_optimization.top_10_parameter_sets]
      config:
        script: scripts/score_sets.py        # relative to the workflow file; .py runs with this Python
        args: [--min-trades, 5]               # passed as arguments, verbatim: never through a shell
        params: {threshold: 0.5}              # JSON, in pipes.extras["params"]
        metrics: [mean_score]                 # metadata the script reports, usable in success_criteria
      outputs: [scores]                       # tables the script writes (default: result)
      success_criteria: {mean_score: {min: 0}}

The script (``dagster-pipes`` is installed with dagster) opens the session and finds its
inputs as Parquet files and where to write its outputs in ``pipes.extras``::

    from dagster_pipes import open_dagster_pipes
    import pandas as pd
    with open_dagster_pipes() as pipes:
        sets = pd.read_parquet(pipes.extras["inputs"]["parameter_optimization.top_10_parameter_sets"])
        out = pipes.extras["outputs"]["scores"]
        sets.assign(score=1.0).to_parquet(out["path"])
        pipes.report_asset_materialization(asset_key=out["asset_key"], metadata={"mean_score": 1.0})
        pipes.log.info("scored")

Each output it wrote becomes the phase's asset (Parquet + DuckDB view like every table) with
the metadata it reported; its log lines, stdout and stderr are in the run's log.  A non-zero
exit is one line naming the command and its status (with its last stderr line).
``command: [program, arg, ...]`` runs another program (found on PATH, or a path relative to
the workflow file) the same way.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field, StrictStr, field_validator

from admf_assets.phases.kind import ConfigEnv, Output, PhaseContext, PhaseError, PhaseKind, PhaseResult, PhaseView, \
    StrictModel

NAME = re.compile(r"^[A-Za-z0-9_]+$")
#: a script shipped with the project: describes its inputs (the example config, and a template)
EXAMPLE_SCRIPT = Path(__file__).resolve().parents[2] / "workflows" / "scripts" / "describe_inputs.py"
BASE_METRICS = ("exit_code", "seconds", "rows")


class Config(StrictModel):
    __key_aliases__ = ("arguments",)

    #: a script path (relative to the workflow file's folder); ``.py`` runs with this Python
    script: StrictStr | None = None
    args: list[StrictStr | int | float | bool] = Field(default_factory=list)
    #: instead of script + args: [program, arg, ...] (program on PATH or a relative path)
    command: list[StrictStr | int | float] | None = None
    env: dict[StrictStr, StrictStr | int | float | bool] = Field(default_factory=dict)
    #: the working directory (default: the workflow file's folder)
    cwd: StrictStr | None = None
    #: JSON-safe values handed to the script as ``pipes.extras["params"]``
    params: dict[StrictStr, Any] = Field(default_factory=dict)
    #: metadata keys the script reports (a number each) that success_criteria may name
    metrics: list[StrictStr] = Field(default_factory=list)
    #: the tables the script writes (the phase's ``outputs``)
    outputs: list[StrictStr] = Field(default_factory=lambda: ["result"])

    @field_validator("args", "command", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError("give a list of arguments (each passed as is, never through a shell), "
                             "e.g. [--threshold, 0.5]")
        return v


class External(PhaseKind):
    name = "external"
    aliases = ("script", "shell", "external_script", "shell_script")
    description = ("A user's script or program, run as a subprocess through Dagster Pipes: its inputs as Parquet "
                   "files, the tables it writes as the phase's outputs, the metadata and logs it reports in Dagster.")
    Config = Config
    phase_keys = ("outputs",)
    example_config = {"script": str(EXAMPLE_SCRIPT), "args": ["--label", "suite run"], "metrics": ["n_inputs"]}
    outputs = (Output("result", "The table the command wrote", aliases=()),)
    metrics = BASE_METRICS

    # ------------------------------------------------------------------ validation
    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        base = _base_dir(env)
        updates: dict[str, Any] = {}
        if (cfg.script is None) == (cfg.command is None):
            env.problem("script", "give script (a file, plus args) or command ([program, arg, ...]), one of them")
            return cfg
        if cfg.script is not None:
            path = (base / cfg.script).resolve() if not Path(cfg.script).is_absolute() else Path(cfg.script)
            if not path.is_file():
                env.problem("script", f"no such file: {path}")
            updates["script"] = str(path)
        else:
            if not cfg.command:
                env.problem("command", "an empty command")
                return cfg
            program = str(cfg.command[0])
            if "/" in program:
                path = (base / program).resolve() if not Path(program).is_absolute() else Path(program)
                if not path.is_file():
                    env.problem("command", f"no such program: {path}")
                program = str(path)
            elif shutil.which(program) is None:
                env.problem("command", f"'{program}' is not on PATH")
            updates["command"] = [program, *map(str, cfg.command[1:])]
        cwd = Path(cfg.cwd) if cfg.cwd else base
        cwd = (base / cwd).resolve() if not cwd.is_absolute() else cwd
        if not cwd.is_dir():
            env.problem("cwd", f"no such directory: {cwd}")
        updates["cwd"] = str(cwd)
        for i, name in enumerate(cfg.outputs):
            if not NAME.match(name):
                env.problem(f"outputs[{i}]", f"invalid output name {name!r}: use letters, digits and '_'")
        if not cfg.outputs:
            env.problem("outputs", "an external phase writes at least one table")
        for i, m in enumerate(cfg.metrics):
            if m in BASE_METRICS:
                env.problem(f"metrics[{i}]", f"'{m}' is always reported; list only what the script reports")
        return cfg.model_copy(update=updates)

    def bind(self, cfg: Config) -> PhaseKind:
        return _BoundExternal(cfg)

    # ------------------------------------------------------------------ running
    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        names = [o.name for o in ctx.outputs]
        command = _command(cfg)
        shown = " ".join(command[1:] if cfg.script is not None and command[0] == sys.executable else command)
        with tempfile.TemporaryDirectory(prefix="admf-external-") as tmp:
            folder = Path(tmp)
            (folder / "inputs").mkdir()
            (folder / "outputs").mkdir()
            inputs = {}
            for u in ctx.upstream:
                if isinstance(u.value, pd.DataFrame):
                    path = folder / "inputs" / f"{u.phase}__{u.output}.parquet"
                    u.value.to_parquet(path, index=False)
                    inputs[u.ref] = str(path)
            outputs = {n: str(folder / "outputs" / f"{n}.parquet") for n in names}
            if ctx.launch is None:  # pragma: no cover - phase_context always provides one
                raise PhaseError("no way to launch an external command in this context")
            done = ctx.launch(command, inputs=inputs, outputs=outputs, params=dict(cfg.params),
                              env={k: str(v) for k, v in cfg.env.items()}, cwd=cfg.cwd)
            if done.exit_code != 0:
                last = f": {done.stderr_tail[-1]}" if done.stderr_tail else ""
                raise PhaseError(f"command `{shown}` exited with status {done.exit_code}{last} "
                                 "(its full output is in the run's log)")
            tables = {}
            for n in names:
                path = Path(outputs[n])
                if not path.is_file():
                    raise PhaseError(f"command `{shown}` did not write output '{n}' (a Parquet file at "
                                     f"pipes.extras['outputs']['{n}']['path'])")
                try:
                    tables[n] = pd.read_parquet(path)
                except Exception as exc:  # noqa: BLE001 - any unreadable file is the script's mistake
                    raise PhaseError(f"output '{n}' written by `{shown}` is not a readable Parquet file: "
                                     f"{str(exc).splitlines()[0]}") from None
        canonical = {o.name: o.canonical for o in ctx.outputs}
        metadata = {canonical[n]: {**dict(done.metadata.get(n, {})), "command": shown, "rows": len(tables[n]),
                                   "exit_code": 0, "inputs": len(inputs)} for n in names}
        metrics: dict[str, Any] = {"exit_code": 0, "seconds": round(done.seconds, 4),
                                   "rows": int(sum(len(t) for t in tables.values()))}
        for m in cfg.metrics:
            metrics[m] = _reported(done.metadata, m, shown)
        return PhaseResult(outputs={canonical[n]: t for n, t in tables.items()}, metadata=metadata, metrics=metrics)

    def sections(self, view: PhaseView) -> list[dict]:
        out = []
        for name, table in view.outputs.items():
            if table is not None and hasattr(table, "empty") and not table.empty:
                out.append({"title": f"{view.phase}: {name} (external)", "table": table, "max_rows": 20,
                            "detail": True})
        return out


class _BoundExternal(External):
    """An external phase as configured: its outputs are the tables it writes, its metrics the
    numbers it reports."""

    def __init__(self, cfg: Config):
        label = Path(cfg.script).name if cfg.script else str((cfg.command or ["command"])[0])
        self.outputs = tuple(Output(n, f"Table written by {label}") for n in cfg.outputs)  # type: ignore[misc]
        self.metrics = (*BASE_METRICS, *cfg.metrics)  # type: ignore[misc]


def _base_dir(env: ConfigEnv) -> Path:
    info = env.workflow
    if info is not None and info.path:
        return Path(info.path).resolve().parent
    return Path.cwd()


def _command(cfg: Config) -> list[str]:
    if cfg.script is not None:
        args = [str(a) if not isinstance(a, bool) else str(a).lower() for a in cfg.args]
        prefix = [sys.executable] if cfg.script.endswith(".py") else []
        return [*prefix, cfg.script, *args]
    return [str(c) for c in (cfg.command or [])]


def _reported(metadata: dict, name: str, shown: str) -> float:
    for per in metadata.values():
        if name in per:
            value = getattr(per[name], "value", per[name])
            try:
                return float(value)
            except (TypeError, ValueError):
                raise PhaseError(f"command `{shown}` reported {name} = {value!r}, not a number (config.metrics)") \
                    from None
    raise PhaseError(f"command `{shown}` did not report metric '{name}' (config.metrics): report it with "
                     f"pipes.report_asset_materialization(metadata={{'{name}': ...}})")


KIND = External()

__all__ = ["KIND", "Config", "External"]
