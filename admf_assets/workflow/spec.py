"""pydantic models of a workflow YAML file.

Top-level sections: ``workflow``, ``template`` (see templates.py), ``data``, ``phases``,
``infrastructure``, ``reporting``, ``execution``.  Every model forbids unknown keys
(the error names the key and the closest allowed one).  These models hold what the user
wrote, after template merging; the resolved DAG with implicit phases, effective configs
and output names lives in graph.py (``WorkflowSpec.graph``).
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from admf_assets.engine.split import DEFAULT_TEST_FRACTION
from admf_assets.phases.common import MarketSourceName, SplitConfig, check_dates
from admf_assets.phases.kind import StrictModel

from .guards import MAX_NAME_LENGTH

__all__ = [
    "NAME_PATTERN",
    "DEFAULT_TEST_FRACTION",
    "StrictModel",
    "WorkflowInfo",
    "SplitConfig",
    "DataSpec",
    "RetrySpec",
    "Criterion",
    "PhaseSpec",
    "PhaseResources",
    "Infrastructure",
    "Execution",
    "WorkflowSpec",
    "slugify",
]

#: phase names, output names and workflow ids become parts of Dagster asset keys
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")
POOL_PATTERN = re.compile(r"^[A-Za-z0-9_./-]+$")
#: worker threads a phase may ask for
MAX_WORKERS = 256


def _check_pool(cls, v: str | None) -> str | None:
    """Validator shared by phases and phase_resources: a Dagster concurrency-pool name."""
    if v is not None and not POOL_PATTERN.match(v):
        raise ValueError(f"invalid pool name {v!r}: use letters, digits, '_', '-', '.', '/'")
    return v

def _timeout_in_seconds(v: dict) -> dict:
    """``timeout`` / ``timeout_minutes`` / ``timeout_hours`` -> ``timeout`` (seconds)."""
    given = [k for k in ("timeout", "timeout_minutes", "timeout_hours") if v.get(k) is not None]
    if len(given) > 1:
        raise ValueError(f"[{given[1]}] give only one of {', '.join(given)}")
    for key, factor in (("timeout_minutes", 60.0), ("timeout_hours", 3600.0)):
        if key in v:
            raw = v.pop(key)
            if raw is not None:
                if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                    raise ValueError(f"[{key}] must be a number of {key.split('_')[1]} (got {raw!r})")
                v["timeout"] = float(raw) * factor
    return v


def check_name_length(name: str, what: str) -> None:
    """Phase names and workflow ids become folder and file names and DuckDB identifiers."""
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"the {what} '{name[:20]}...' is {len(name)} characters long; at most {MAX_NAME_LENGTH} "
                         "(it names folders, files and DuckDB tables)")


def slugify(text: str) -> str:
    """``'Basic Research-Pipeline'`` -> ``'basic_research_pipeline'`` (only [a-z0-9_])."""
    slug = re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")
    return slug or "workflow"


# ---------------------------------------------------------------------- workflow
class WorkflowInfo(StrictModel):
    """The ``workflow:`` section."""

    type: StrictStr = "multi_phase"
    name: StrictStr | None = None
    description: StrictStr = ""
    version: StrictStr = "1"
    id: StrictStr | None = None
    # ADMF-PC: per-phase error policies (applied by the loader); checkpointing, monitoring and
    # resource_management are warned about and removed by the loader (Dagster replaces them)
    error_handling: dict[str, Any] | None = None
    #: cron string (or {cron, timezone}): a Dagster schedule for the workflow's job (off until
    #: switched on in the UI); see workflow/automation.py
    schedule: StrictStr | None = None
    timezone: StrictStr = "UTC"
    #: a sensor (off until switched on) runs the job when market partitions it reads change
    run_on_new_market_data: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _schedule_mapping(cls, v: Any) -> Any:
        if isinstance(v, dict) and isinstance(v.get("schedule"), dict):
            from .automation_spec import schedule_mapping

            v = schedule_mapping(v)
        return v

    @field_validator("schedule")
    @classmethod
    def _cron_ok(cls, v: str | None) -> str | None:
        from .automation_spec import check_cron

        return check_cron(v)

    @field_validator("timezone")
    @classmethod
    def _timezone_ok(cls, v: str) -> str:
        from .automation_spec import check_timezone

        return check_timezone(v)

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str | None) -> str | None:
        if v is not None and not NAME_PATTERN.match(v):
            raise ValueError(
                f"invalid workflow id {v!r}: use only letters, digits and '_' "
                f"(it prefixes every asset key), e.g. '{slugify(v)}'"
            )
        if v is not None:
            check_name_length(v, "workflow id")
        return v


# -------------------------------------------------------------------------- data
class DataSpec(StrictModel):
    """The ``data:`` section: symbols, date range, train/test split, and the market-data source
    the workflow needs (``source``; checked against ADMF_MARKET_SOURCE before it runs)."""

    symbols: list[StrictStr] = Field(min_length=1)
    start_date: date
    end_date: date
    split: SplitConfig = Field(default_factory=SplitConfig)
    source: MarketSourceName | None = None

    @field_validator("symbols", mode="before")
    @classmethod
    def _one_symbol(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("symbols")
    @classmethod
    def _symbols_ok(cls, v: list[str]) -> list[str]:
        out = [s.strip() for s in v]
        if any(not s for s in out):
            raise ValueError("empty symbol")
        seen: set[str] = set()
        dup: set[str] = set()
        for s in out:  # linear: a universe may list thousands of symbols
            (dup if s in seen else seen).add(s)
        if dup:
            raise ValueError(f"duplicate symbols: {', '.join(sorted(dup))}")
        return out

    @field_validator("split", mode="before")
    @classmethod
    def _split_none(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("end_date")
    @classmethod
    def _end_after_start(cls, v: date, info: ValidationInfo) -> date:
        start = info.data.get("start_date")
        if start is not None and start >= v:
            raise ValueError(f"end_date {v} must be after start_date {start}")
        return v

    @field_validator("split")
    @classmethod
    def _split_inside(cls, v: SplitConfig, info: ValidationInfo) -> SplitConfig:
        start, end = info.data.get("start_date"), info.data.get("end_date")
        if start is not None and end is not None and start < end:
            check_dates(start, end, v)
        return v


# ------------------------------------------------------------------------ phases
class RetrySpec(StrictModel):
    """``retries: 3`` or ``retries: {count: 3, delay: 10, backoff: exponential, jitter: full}``.

    ``delay`` in seconds before the first retry; ``backoff`` how it grows;
    ``jitter``: ``full`` / ``plus_minus`` (``true`` means ``full``).
    """

    __key_aliases__ = ("max_retries",)

    count: StrictInt = Field(ge=0)
    delay: float = Field(default=0.0, ge=0.0)
    backoff: Literal["constant", "linear", "exponential"] = "constant"
    jitter: Literal["full", "plus_minus"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"count": v}
        if not isinstance(v, dict):
            raise ValueError(f"expected a number of retries or {{count, delay, backoff, jitter}} (got {v!r})")
        if isinstance(v, dict):
            v = dict(v)
            if "max_retries" in v:
                if "count" in v:
                    raise ValueError("[count] give count or max_retries, not both")
                v["count"] = v.pop("max_retries")
            if v.get("jitter") is True:
                v["jitter"] = "full"
            elif v.get("jitter") is False:
                v["jitter"] = None
        return v


class Criterion(StrictModel):
    """A success criterion on one metric: ``{min: x}``, ``{max: y}`` or both; a bare number is a minimum."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return {"min": v}
        if not isinstance(v, dict):
            raise ValueError(f"expected {{min: x}}, {{max: y}} or a number (a minimum) (got {v!r})")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> "Criterion":
        if self.min is None and self.max is None:
            raise ValueError("give min and/or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"[min] min {self.min} is greater than max {self.max}")
        return self

    def describe(self, metric: str) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g} <= {metric} <= {self.max:g}"
        if self.min is not None:
            return f"{metric} >= {self.min:g}"
        return f"{metric} <= {self.max:g}"

    def passes(self, value: float) -> bool:
        """Both bounds hold (each inclusive: a value exactly on a bound passes)."""
        return all(self.evaluate(b, value)[0] for b in ("min", "max") if getattr(self, b) is not None)

    def evaluate(self, bound: str, value: Any, metric: str = "value") -> tuple[bool, str]:
        """The ONE bound ``bound`` ('min' or 'max') on ``value``: (passed, a one-line reason).

        Inclusive: ``{min: 10}`` passes 10 and fails 9.99.  A metric the phase did not report
        (None) or that is not a finite number fails, saying so."""
        limit = getattr(self, bound)
        if limit is None:
            raise ValueError(f"criterion on {metric} has no {bound} bound")
        if value is None:
            return False, f"metric '{metric}' was not reported by the phase"
        try:
            v = float(value)
        except (TypeError, ValueError):
            return False, f"metric '{metric}' is not a number (got {value!r})"
        if math.isnan(v):
            return False, f"metric '{metric}' is NaN (not computable on this data)"
        ok = v >= limit if bound == "min" else v <= limit
        rel = (">=" if ok else "<") if bound == "min" else ("<=" if ok else ">")
        return ok, f"{metric} = {v:.6g} {rel} {bound} {limit:g}"


_ON_FAILURE_ALIASES = {"abort_workflow": "abort", "fail": "abort", "continue": "continue_with_warning"}


class PhaseSpec(StrictModel):
    """One entry of ``phases:`` as written (after template merging)."""

    __key_aliases__ = ("timeout_minutes", "timeout_hours", "resource_class", "container_count")

    name: StrictStr
    type: StrictStr
    description: StrictStr | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[StrictStr] = Field(default_factory=list)
    depends_on: list[StrictStr] = Field(default_factory=list)
    outputs: list[StrictStr] | None = None
    #: true / false, or a condition "${phase.output.field} > 1" (the phase runs when it is true)
    enabled: StrictBool | StrictStr = True
    retries: RetrySpec | None = None
    timeout: float | None = Field(default=None, gt=0, description="seconds")
    pool: StrictStr | None = None
    max_workers: StrictInt | None = Field(default=None, ge=1, le=MAX_WORKERS)
    critical: StrictBool = False
    success_criteria: dict[StrictStr, Criterion] = Field(default_factory=dict)
    on_failure: Literal["abort", "continue_with_warning", "retry"] = "abort"
    # keys of the kinds that declare them (PhaseKind.phase_keys)
    condition: StrictStr | None = None
    if_true: dict[str, Any] | None = None
    if_false: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        v = _timeout_in_seconds(dict(v))
        # resource_class is another name for pool
        if "resource_class" in v:
            rc = v.pop("resource_class")
            if v.get("pool") not in (None, rc):
                raise ValueError(f"[resource_class] pool {v['pool']!r} and resource_class {rc!r} disagree; give one")
            v["pool"] = rc
        # ADMF-PC: container_count -> max_workers
        if "container_count" in v:
            cc = v.pop("container_count")
            if v.get("max_workers") not in (None, cc):
                raise ValueError("[container_count] give container_count or max_workers, not both")
            # containers of a cluster, read as threads of this machine: at most MAX_WORKERS
            v["max_workers"] = min(cc, MAX_WORKERS) if isinstance(cc, int) and not isinstance(cc, bool) else cc
        # ADMF-PC: a phase-level `method` belongs to the phase config
        if "method" in v:
            method = v.pop("method")
            cfg = v.get("config")
            cfg = dict(cfg) if isinstance(cfg, dict) else ({} if cfg is None else cfg)
            if isinstance(cfg, dict):
                if "method" in cfg and cfg["method"] != method:
                    raise ValueError("[method] `method` is given both on the phase and in its config")
                cfg["method"] = method
            v["config"] = cfg
        if v.get("config") is None and "config" in v:
            v["config"] = {}
        for key in ("inputs", "depends_on", "outputs"):
            if isinstance(v.get(key), str):
                v[key] = [v[key]]
        if isinstance(v.get("on_failure"), str):
            v["on_failure"] = _ON_FAILURE_ALIASES.get(v["on_failure"], v["on_failure"])
        return v

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not NAME_PATTERN.match(v):
            raise ValueError(
                f"invalid phase name {v!r}: use only letters, digits and '_' "
                f"(it becomes part of a Dagster asset key), e.g. '{slugify(v)}'"
            )
        check_name_length(v, "phase name")
        return v

    _pool_ok = field_validator("pool")(_check_pool)

    @field_validator("success_criteria", mode="before")
    @classmethod
    def _criteria_none(cls, v: Any) -> Any:
        return {} if v is None else v


# ---------------------------------------------------------------- infrastructure
class PhaseResources(StrictModel):
    """Resources of one phase: ``max_workers`` (threads of the phase's evaluation; ADMF-PC's
    ``container_count`` is read as it), ``memory_limit_gb`` (the engine sizes its chunks so the
    evaluation stays under it; validation refuses what cannot fit), ``pool`` (a Dagster
    concurrency pool).  Kinds that use neither get an "ignored" warning."""

    __key_aliases__ = ("container_count",)

    max_workers: StrictInt | None = Field(default=None, ge=1, le=MAX_WORKERS)
    memory_limit_gb: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    pool: StrictStr | None = None

    _pool_ok = field_validator("pool")(_check_pool)

    @model_validator(mode="before")
    @classmethod
    def _container_count(cls, v: Any) -> Any:
        if isinstance(v, dict) and "container_count" in v:
            v = dict(v)
            cc = v.pop("container_count")
            if v.get("max_workers") not in (None, cc):
                raise ValueError("[container_count] give container_count or max_workers, not both")
            # containers of a cluster, read as threads of this machine: at most MAX_WORKERS
            v["max_workers"] = min(cc, MAX_WORKERS) if isinstance(cc, int) and not isinstance(cc, bool) else cc
        return v


Executor = Literal["in_process", "multiprocess", "celery"]


class _RunLimits(StrictModel):
    """``timeout`` (also ``timeout_minutes``, ``timeout_hours``): the workflow's total time limit,
    in seconds (the job's ``dagster/max_runtime``)."""

    __key_aliases__ = ("timeout_minutes", "timeout_hours")

    timeout: float | None = Field(default=None, gt=0, description="seconds")

    @model_validator(mode="before")
    @classmethod
    def _timeout_aliases(cls, v: Any) -> Any:
        return _timeout_in_seconds(dict(v)) if isinstance(v, dict) else v


class Infrastructure(_RunLimits):
    """The ``infrastructure:`` section."""

    phase_resources: dict[StrictStr, PhaseResources] = Field(default_factory=dict)
    executor: Executor | None = None
    max_concurrent: StrictInt | None = Field(default=None, ge=1)

    @field_validator("phase_resources", mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        return {} if v is None else v


class Execution(_RunLimits):
    """The optional ``execution:`` section (same keys as in ``infrastructure:``)."""

    executor: Executor | None = None
    max_concurrent: StrictInt | None = Field(default=None, ge=1)


# ---------------------------------------------------------------------- workflow
class WorkflowSpec(StrictModel):
    """A whole workflow file, validated.

    ``load_workflow`` returns it with ``source``, ``workflow_id``, ``warnings`` and the
    resolved ``graph`` filled in.
    """

    workflow: WorkflowInfo = Field(default_factory=WorkflowInfo)
    template: StrictStr | None = None
    data: DataSpec | None = None
    phases: list[PhaseSpec] = Field(min_length=1)
    infrastructure: Infrastructure = Field(default_factory=Infrastructure)
    #: the config defaults of the report phase (see phases/report.py), plus ``enabled``
    reporting: dict[str, Any] | None = None
    execution: Execution | None = None

    _source: str | None = PrivateAttr(default=None)
    _path: Any = PrivateAttr(default=None)
    _workflow_id: str = PrivateAttr(default="workflow")
    _warnings: list[str] = PrivateAttr(default_factory=list)
    _graph: Any = PrivateAttr(default=None)

    @field_validator("workflow", "infrastructure", mode="before")
    @classmethod
    def _none_section(cls, v: Any) -> Any:
        return {} if v is None else v

    @property
    def source(self) -> str | None:
        """The file the workflow was read from (as displayed in messages)."""
        return self._source

    @property
    def path(self) -> Any:
        """The absolute path of the file (None for text or a parsed document)."""
        return self._path

    @property
    def workflow_id(self) -> str:
        """Asset-key prefix and group name: ``workflow.id`` or the slugified file stem."""
        return self._workflow_id

    @property
    def name(self) -> str:
        return self.workflow.name or self._workflow_id

    @property
    def description(self) -> str:
        return self.workflow.description

    @property
    def warnings(self) -> list[str]:
        return list(self._warnings)

    @property
    def graph(self) -> Any:
        """The resolved :class:`~admf_assets.workflow.graph.WorkflowGraph`."""
        if self._graph is None:
            raise RuntimeError("the workflow graph is built by load_workflow()")
        return self._graph

    def _run_setting(self, key: str) -> Any:
        """``execution.<key>``, else ``infrastructure.<key>``, else None."""
        for section in (self.execution, self.infrastructure):
            if section is not None and getattr(section, key) is not None:
                return getattr(section, key)
        return None

    @property
    def executor(self) -> str:
        """in_process (default), multiprocess or celery."""
        return self._run_setting("executor") or "in_process"

    @property
    def max_concurrent(self) -> int | None:
        return self._run_setting("max_concurrent")

    @property
    def timeout(self) -> float | None:
        """The workflow's total time limit in seconds (``execution.timeout``...), or None."""
        return self._run_setting("timeout")

    def phase(self, name: str) -> PhaseSpec:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(name)
