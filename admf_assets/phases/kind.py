"""The phase-kind protocol: everything one kind of phase declares about itself.

A phase kind is ONE module of this package holding a :class:`PhaseKind` subclass and an
instance of it named ``KIND``; ``admf_assets/phases/__init__.py`` registers it with one
line.  The workflow layer (YAML loading, the resolved graph, the Dagster compiler) knows
kinds only through the attributes and hooks below, never by name, the way Optuna's
trial loop knows samplers only through ``BaseSampler``.

What a kind declares:

* ``name``, ``aliases``, ``description`` -- how the YAML may name it;
* ``Config`` -- a pydantic model, the ONE place its defaults live; the YAML ``config:``
  of a phase is validated by it (unknown keys are errors that name the closest key);
* ``effective_config(config, env)`` -- semantic checks and normalisation beyond pydantic
  (problems and "ignored" warnings go to ``env``); returns the config the phase runs with;
* ``outputs`` -- :class:`Output` (name, aliases, description, columns, storage, ...);
  ``unproduced_outputs`` -- names a seed lists that the kind does not produce, with why
  (one "ignored" warning each, not an unknown-output error); ``ignored_inputs`` -- the same
  for inputs a seed gives it that it does not read;
* ``consumes`` -- :class:`Consumes` rules: which upstream outputs it loads;
  ``consumes_all`` for a kind that loads everything upstream (the report);
* ``metrics`` -- the names ``success_criteria`` may use; ``run`` reports them;
* ``implicit`` -- when the workflow gets a phase of this kind without declaring one;
* ``reads_assets`` / ``market_range`` -- assets outside the workflow it reads;
* ``resource_keys`` / ``demand(config, env)`` -- which phase resources its run honours
  (``memory_limit_gb``, ``max_workers``; others draw an "ignored" warning) and the memory and
  time it will need, estimated before anything runs (too much is refused at validation);
* ``run(ctx) -> PhaseResult`` -- loads nothing itself: it gets its inputs in ``ctx``,
  calls the engine and returns DataFrames, metadata and metrics;
* ``phase_keys`` -- phase-level YAML keys only this kind accepts; the workflow layer moves
  them into the kind's config (``condition``, ``if_true`` ...);
* ``references(config)`` -- upstream outputs the phase reads beyond ``inputs`` (the
  ``${phase.output.field}`` references of a condition): loaded, and lineage;
* ``bind(config)`` -- the kind as configured, for a kind whose outputs, inputs or metrics
  depend on its config (a conditional takes its branches'); ``may_skip(config)`` -- ``run``
  may leave outputs out (then they are optional and their dependents skip);
* ``partitions(config)`` -- a kind whose outputs are marked ``partitioned`` says how they are
  partitioned, before any data is read: :class:`MarketDays` (one asset partition per market
  day from a start date: a forward ledger that grows every day) or a tuple of static keys
  (walk-forward folds: each re-runs alone, the UI shows each one's status).  The partitioned
  outputs are computed by ``run_partitions(ctx)`` for the keys in ``ctx.partition_keys``;
  by default it calls ``run_partition(ctx)`` once per key (``ctx.partition_key``), and a kind
  whose keys depend on each other (a ledger's days) overrides it.  ``run`` computes the other
  (whole-phase) outputs and gets the partitioned ones, every partition, in ``ctx.partitioned``;
* ``checks(config)`` -- asset checks the kind itself evaluates (:class:`Check`); ``run``
  reports each in ``PhaseResult.checks`` (:class:`CheckOutcome`);
* ``default_criteria`` -- success criteria every phase of the kind gets (a verdict check);
* ``sections(view)`` / ``header(view)`` -- what it contributes to the HTML report;
* ``verdict(view)`` -- a :class:`Verdict` (is the strategy valid, and why) for kinds that
  judge (validation); ``insights(view)`` -- :class:`Insight` s for the executive summary
  (important parameters, overfitting and robustness warnings, regime dependence, decay
  out of sample), each with the number behind it.

Nothing here imports Dagster: metadata values are plain Python (numbers, strings,
DataFrames shown as previews, :class:`Markdown`, :class:`FilePath`, :class:`Link`,
:class:`Image`); the compiler turns them into Dagster metadata (floats rounded to 6
significant digits, NaN left out).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict

__all__ = [
    "StrictModel",
    "PhaseError",
    "Output",
    "Consumes",
    "Implicit",
    "MarketDays",
    "Check",
    "CheckOutcome",
    "ExternalRun",
    "ConfigEnv",
    "ResourceDemand",
    "WorkflowInfo",
    "OutputRef",
    "Upstream",
    "PhaseContext",
    "PhaseResult",
    "PhaseView",
    "Markdown",
    "FilePath",
    "Link",
    "Image",
    "Criterion",
    "Verdict",
    "Insight",
    "PhaseKind",
    "PlannedKind",
    "Registry",
    "describe_partitions",
    "run_partitions",
    "run_phase",
]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, defaults are validated.

    ``defer_build``: pydantic builds a model's validator when it first validates, so a
    workflow pays for the kinds it uses, not for all of them at import (0.1 s of every
    ``admf`` command here)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)
    #: extra accepted spellings (shown in "unknown key" suggestions)
    __key_aliases__: ClassVar[tuple[str, ...]] = ()


class PhaseError(Exception):
    """A problem the user can fix (a config that does not suit the data, missing market data...).

    The compiler reports it as one line prefixed with the workflow file and the phase."""


# ------------------------------------------------------------------ declarations
@dataclass(frozen=True)
class Output:
    """One canonical output of a kind; each output of a phase is one asset.

    ``pattern`` (a regex with a group ``n``) accepts numbered aliases such as
    ``top_10_parameter_sets``; the number sets the config field ``count_field``
    (``count_default`` when the YAML gives none).  ``enabled_by = (field, value)``: the
    output exists only when ``value`` is in the config list ``field`` (an analysis output
    and its analyzer).  ``storage``: ``table`` (Parquet with a DuckDB view) or ``array``
    (wide compact Parquet, no view).  ``time_series``: one row per ``date`` (and symbol);
    the kind suite checks that no row sees later data.
    """

    name: str
    description: str
    aliases: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    pattern: str | None = None
    pattern_hint: str = ""  #: how the pattern reads in messages (``top_<N>_parameter_sets``)
    count_field: str | None = None
    count_default: int | None = None
    enabled_by: tuple[str, str] | None = None
    default: bool = True
    storage: Literal["table", "array"] = "table"
    time_series: bool = False
    #: one asset partition per key of the kind's ``partitions(config)`` (a ledger's market day, a
    #: walk-forward fold), produced by ``run_partitions``; the kind's other outputs are computed
    #: once from all of them
    partitioned: bool = False

    def match(self, name: str) -> dict[str, Any] | None:
        """Parameters of ``name`` as a spelling of this output (``{}``), or None."""
        if name == self.name or name in self.aliases:
            return {}
        if self.pattern:
            m = re.match(self.pattern, name)
            if m:
                return {"n": int(m.group("n"))}
        return None

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Consumes:
    """The kind loads one upstream output among ``outputs``.

    ``required``: validation fails when no upstream phase provides one, unless the config
    field ``unless_config`` is set (then an explicit input would contradict it); ``needed``
    (a function of the effective config) narrows ``required`` to the configs that use the
    input (an analysis whose analyzers need no parameter sets); ``required_if``: a config
    field (dotted: ``optimization.group_by_regime``) that makes an optional input required when
    it is true.  ``auto``: when the YAML
    names no provider, the single enabled phase producing it is connected (market bars from
    the data phase).  ``together_with``: outputs that must be connected too whenever one of
    ``outputs`` is (a search's best set together with all of its trials).  At most one
    upstream asset per canonical name.
    """

    outputs: tuple[str, ...]
    required: bool = True
    unless_config: str | None = None
    auto: bool = False
    needed: Callable[[Any], bool] | None = None
    required_if: str | None = None
    #: at most one of ``outputs`` may be connected (one deployed configuration, not two)
    exclusive: bool = False
    together_with: tuple[str, ...] = ()

    def is_required(self, config: Any) -> bool:
        """Whether ``config`` needs a provider: ``required_if`` set to true makes it required,
        ``needed(config)`` false makes a required input optional."""
        if config is None:
            return self.required
        if self.required_if is not None and _dotted(config, self.required_if) is True:
            return True
        return self.required and (self.needed is None or bool(self.needed(config)))


def _dotted(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
    return obj


@dataclass(frozen=True)
class Implicit:
    """A phase of this kind is added when the workflow declares none.

    ``when``: ``needed`` -- when an enabled phase auto-consumes one of its outputs;
    ``always`` -- unless the section says ``enabled: false``.  ``section``: the workflow
    section whose keys are the defaults of every phase of this kind (``data``,
    ``reporting``); ``section_required``: the implicit phase needs it (``what`` and
    ``hint`` word the message).
    """

    phase: str
    when: Literal["needed", "always"]
    section: str
    description: str
    section_required: bool = False
    what: str = ""
    hint: str = ""


@dataclass(frozen=True)
class MarketDays:
    """The partitions of a kind's ``partitioned`` outputs: one per market day (the weekday
    calendar of the market data) from ``start`` to ``end`` (None: open-ended, a new
    partition every market day)."""

    start: date
    end: date | None = None

    def describe(self) -> str:
        return f"market days from {self.start}" + (f" to {self.end}" if self.end else "")


@dataclass(frozen=True)
class Check:
    """An asset check a kind evaluates itself (beyond the YAML's ``success_criteria``).

    ``blocking``: a failure (severity error) stops the phases downstream in that run and
    fails the run; otherwise a failure is a warning."""

    name: str
    description: str
    blocking: bool = False


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExternalRun:
    """What an external command run through Dagster Pipes gave back (``PhaseContext.launch``)."""

    exit_code: int
    metadata: Mapping[str, Mapping[str, Any]]  #: output name -> metadata the command reported
    seconds: float
    stderr_tail: tuple[str, ...] = ()  #: the last lines it wrote to stderr


@dataclass
class ConfigEnv:
    """What ``effective_config`` may read, and where it reports problems and warnings.

    ``data``: the workflow's ``data:`` section (symbols, start_date, end_date, split) or
    None; ``workflow``: its id and name.  Fields are dotted under the phase's ``config``.
    """

    data: Any = None
    workflow: "WorkflowInfo | None" = None
    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def problem(self, field_: str, message: str) -> None:
        self.problems.append((field_, message))

    def warn(self, field_: str, message: str) -> None:
        self.warnings.append((field_, message))


@dataclass(frozen=True)
class ResourceDemand:
    """What a phase will need, from its config and the data section, before it runs.

    ``estimate``: an :class:`admf_assets.engine.estimate.Estimate`; ``what`` names the work in
    messages (``the grid search``); ``field``: the config field to change (``optimization``);
    ``advice``: how to need less (``use method: random with n_trials, ...``)."""

    estimate: Any
    what: str
    field: str
    advice: str
    unit: str = "combinations"  #: what the estimate counts ("trials" for a random search)


@dataclass(frozen=True)
class WorkflowInfo:
    id: str
    name: str
    description: str = ""
    version: str = "1"
    source: str | None = None
    path: str | None = None  #: the workflow file's absolute path, when loaded from a file


# ------------------------------------------------------------------ run time
@dataclass(frozen=True)
class OutputRef:
    """One output the phase produces in this workflow."""

    name: str  #: as declared (the asset key's last part)
    canonical: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Upstream:
    """One upstream asset loaded for the phase."""

    phase: str
    output: str  #: its declared name
    canonical: str
    kind: str
    config: Mapping[str, Any]  #: the upstream phase's effective config
    consumed: bool  #: the kind loads it (else: lineage / ordering only)
    value: Any

    @property
    def ref(self) -> str:
        return f"{self.phase}.{self.output}"


@dataclass(frozen=True)
class PhaseView:
    """What a kind's report hooks see of one materialized upstream phase."""

    phase: str
    kind: "PhaseKind"
    config: Any  #: its typed config
    outputs: Mapping[str, Any]  #: canonical -> loaded value
    inputs: Mapping[str, Any]  #: canonical -> loaded value of what it consumed
    input_configs: Mapping[str, Mapping[str, Any]]  #: canonical -> config of the providing phase
    workflow: WorkflowInfo


@dataclass
class PhaseContext:
    workflow: WorkflowInfo
    phase: str
    kind: "PhaseKind"
    config: Any  #: the kind's Config instance (effective)
    outputs: tuple[OutputRef, ...]
    upstream: tuple[Upstream, ...] = ()
    store: Any = None  #: resources.storage.TableStore of the storage root
    reports_dir: Path = Path(".")
    run_id: str = ""
    log: Any = logging.getLogger("admf.phase")
    lineage: Callable[[], list[dict]] = list  #: latest materializations upstream (the report)
    views: Callable[[], list[PhaseView]] = list  #: the upstream phases as report views
    #: partitioned outputs: the partition keys this run materializes, in order (empty outside a
    #: Dagster run: a kind with market-day partitions then computes every day it can)
    partition_keys: tuple[str, ...] = ()
    #: ``previous(canonical)``: this phase's own output as stored for the latest partition
    #: before ``partition_keys[0]`` (None when there is none)
    previous: Callable[[str], Any] = lambda canonical: None
    #: ``launch(command, extras, env, cwd)`` runs an external command with Dagster Pipes -> ExternalRun
    launch: Callable[..., ExternalRun] | None = None
    partition_key: str | None = None  #: in ``run_partition``: the partition being computed
    #: in ``run``: the phase's own partitioned outputs, every partition (canonical -> frame)
    partitioned: Mapping[str, Any] = field(default_factory=dict)
    #: infrastructure.phase_resources of the phase (None: not set): worker threads of the
    #: evaluation, and the memory its evaluation may use (the engine sizes its chunks from it)
    max_workers: int | None = None
    memory_limit_gb: float | None = None
    #: progress(done, total, unit) for long evaluations (the terminal shows a bar; throttled)
    progress: Callable[[int, int, str], None] = lambda done, total, unit: None

    @property
    def workers(self) -> int:
        return int(self.max_workers or 1)

    @property
    def memory_limit_bytes(self) -> float | None:
        return None if self.memory_limit_gb is None else float(self.memory_limit_gb) * 1e9

    @property
    def inputs(self) -> dict[str, Any]:
        """Canonical output name -> value, for the consumed upstream assets."""
        return {u.canonical: u.value for u in self.upstream if u.consumed}

    def need(self, canonical: str) -> Any:
        for u in self.upstream:
            if u.consumed and u.canonical == canonical:
                return u.value
        raise PhaseError(f"needs an input providing '{canonical}' (none is connected)")

    def upstream_config(self, canonical: str) -> Mapping[str, Any] | None:
        """The effective config of the phase providing the consumed input ``canonical``."""
        return next((u.config for u in self.upstream if u.consumed and u.canonical == canonical), None)

    def wants(self, canonical: str) -> bool:
        return any(o.canonical == canonical for o in self.outputs)

    def output_param(self, canonical: str, name: str, default: Any = None) -> Any:
        for o in self.outputs:
            if o.canonical == canonical:
                return o.params.get(name, default)
        return default


@dataclass
class PhaseResult:
    outputs: dict[str, Any]  #: canonical output name -> DataFrame
    metadata: dict[str, dict] = field(default_factory=dict)  #: canonical name -> metadata
    metrics: dict[str, Any] = field(default_factory=dict)  #: what success criteria check
    checks: dict[str, CheckOutcome] = field(default_factory=dict)  #: the kind's own checks (``checks``)


@dataclass(frozen=True)
class Markdown:
    text: str


@dataclass(frozen=True)
class FilePath:
    path: str


@dataclass(frozen=True)
class Link:
    url: str


@dataclass(frozen=True)
class Image:
    """A picture for the Dagster UI's metadata: PNG bytes, or a chart with a ``png()``
    method (``engine.charts.Chart``), or a matplotlib ``Figure``.  The compiler shows it
    as Markdown with an inline PNG (the UI renders ``data:`` images)."""

    image: Any
    alt: str = "chart"

    def png(self) -> bytes:
        img = self.image
        if isinstance(img, (bytes, bytearray)):
            return bytes(img)
        if hasattr(img, "png"):
            return img.png()
        if hasattr(img, "savefig"):
            import io

            buf = io.BytesIO()
            img.savefig(buf, format="png", dpi=80, metadata={"Software": None})
            return buf.getvalue()
        raise TypeError(f"kind.Image needs PNG bytes, a chart or a matplotlib figure, got {type(img).__name__}")


# ------------------------------------------------------------------ judgements
@dataclass(frozen=True)
class Criterion:
    """One acceptance criterion of a verdict: ``value`` against ``threshold`` (as text,
    e.g. ``">= 0.95"``)."""

    name: str
    value: float | None
    threshold: str
    passed: bool
    description: str = ""


@dataclass(frozen=True)
class Verdict:
    """A kind's judgement of the strategy: ``valid`` (None = not judged) and why."""

    valid: bool | None
    reason: str
    criteria: tuple[Criterion, ...] = ()
    phase: str = ""


@dataclass(frozen=True)
class Insight:
    """One finding for the executive summary, worded with the number behind it.

    ``topic``: performance | decay | overfitting | robustness | parameters | regimes |
    risk (the summary's order) or any other word; ``severity``: info | warning | good;
    ``key`` + ``value``: also a headline card (``key`` names the value's format in
    ``engine.labels``, ``label`` overrides the card's wording)."""

    topic: str
    text: str
    value: float | None = None
    key: str | None = None
    label: str | None = None
    severity: Literal["info", "warning", "good"] = "info"
    phase: str = ""


# ------------------------------------------------------------------ the protocol
class PhaseKind:
    """Base class of every phase kind (see the module docstring)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    available: ClassVar[bool] = True
    #: why a kind that is not available is refused (default: "is not available yet")
    reason: ClassVar[str] = ""
    #: bumped when the kind's computation changes (part of the assets' code version)
    version: ClassVar[str] = "1"
    Config: ClassVar[type[StrictModel]] = StrictModel
    #: a minimal config that runs (docs and the kind test suite)
    example_config: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    outputs: ClassVar[tuple[Output, ...]] = ()
    consumes: ClassVar[tuple[Consumes, ...]] = ()
    consumes_all: ClassVar[bool] = False
    metrics: ClassVar[tuple[str, ...]] = ()
    implicit: ClassVar[Implicit | None] = None
    #: asset keys outside the workflow that the phase reads (lineage)
    reads_assets: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: output names the seeds list that this kind does not produce -> why (listed, they draw one
    #: "ignored" warning each instead of an unknown-output error)
    unproduced_outputs: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: upstream outputs the seeds give this kind as inputs that it does not read -> why (one
    #: "ignored" warning each; the input still orders the phases)
    ignored_inputs: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: phase-level YAML keys only this kind accepts
    phase_keys: ClassVar[tuple[str, ...]] = ()
    #: success criteria every phase of this kind gets (the YAML's own override them), e.g.
    #: ``{"is_valid": {"min": 1}}``: an asset check, blocking when the phase is critical
    default_criteria: ClassVar[Mapping[str, Mapping[str, float]]] = MappingProxyType({})
    #: the column of a partitioned output that holds the partition key (filled by the runner)
    partition_column: ClassVar[str] = "partition"
    #: phase resources its run honours: "memory_limit_gb", "max_workers"
    resource_keys: ClassVar[tuple[str, ...]] = ()

    # -------------------------------------------------------------- validation
    def effective_config(self, config: Any, env: ConfigEnv) -> Any:
        """Check and normalise a validated config; report problems with ``env.problem``."""
        return config

    def market_range(self, config: Any) -> tuple[Any, Any] | None:
        """First and last date of the shared market data the phase reads, if any."""
        return None

    def demand(self, config: Any, env: ConfigEnv) -> ResourceDemand | None:
        """Memory and time the run will need (None: small, or not knowable before it runs)."""
        return None

    def references(self, config: Any) -> tuple[tuple[str, str], ...]:
        """(``'phase.output'``, field) of upstream outputs read beyond ``inputs`` (the field
        names where the reference is written, for messages)."""
        return ()

    def bind(self, config: Any) -> "PhaseKind":
        """The kind as configured by ``config`` (default: itself)."""
        return self

    def may_skip(self, config: Any) -> bool:
        """True when ``run`` may return without some declared outputs."""
        return False

    def market_source(self, config: Any) -> str | None:
        """The market-data source (ADMF_MARKET_SOURCE) the phase needs, if it declares one."""
        return None

    def partitions(self, config: Any) -> "MarketDays | tuple[str, ...] | None":
        """How the kind's ``partitioned`` outputs are partitioned for an effective config, known
        before any data is read: market days, the static keys (one asset partition each), or None."""
        return None

    def checks(self, config: Any) -> tuple[Check, ...]:
        """The asset checks the kind evaluates itself (``run`` reports each in ``checks``)."""
        return ()

    # -------------------------------------------------------------- running
    def run(self, ctx: PhaseContext) -> PhaseResult:  # pragma: no cover - abstract
        """Every output that is not ``partitioned``; ``ctx.partitioned`` holds the partitioned
        ones (all partitions) when the kind has any."""
        raise NotImplementedError(f"phase kind {self.name!r} has no run()")

    def run_partition(self, ctx: PhaseContext) -> PhaseResult:  # pragma: no cover - abstract
        """The ``partitioned`` outputs for one partition, ``ctx.partition_key``."""
        raise NotImplementedError(f"phase kind {self.name!r} has no run_partition()")

    def run_partitions(self, ctx: PhaseContext) -> PhaseResult:
        """The ``partitioned`` outputs for every key in ``ctx.partition_keys``: by default
        ``run_partition`` for each key, the frames stacked with the key in ``partition_column``.
        Metadata: the key's own for one key; for several (one run materializing many partitions
        records the same metadata on each) the keys and a preview of the stacked rows.
        Metrics: the last key's."""
        from dataclasses import replace

        import pandas as pd

        frames: dict[str, list] = {}
        last = PhaseResult(outputs={})
        keys = list(ctx.partition_keys)
        for key in keys:
            last = self.run_partition(replace(ctx, partition_key=key))
            for name, frame in last.outputs.items():
                frame = frame.copy()
                frame[self.partition_column] = key
                frames.setdefault(name, []).append(frame)
        outputs = {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}
        if len(keys) == 1:
            meta = {name: {self.partition_column: keys[0], **last.metadata.get(name, {})} for name in outputs}
        else:
            meta = {name: {"partitions": len(keys), "keys": f"{keys[0]}..{keys[-1]}", "rows": len(frame),
                           "preview": frame} for name, frame in outputs.items()}
        return PhaseResult(outputs=outputs, metadata=meta, metrics=dict(last.metrics))

    # -------------------------------------------------------------- report
    def header(self, view: PhaseView) -> dict[str, Any]:
        """Facts for the report's header (the data range, ...)."""
        return {}

    def sections(self, view: PhaseView) -> list[dict]:
        """Report sections (dicts for ``engine.report.render_report``); default: one
        table per output.  A section with ``"detail": True`` is left out when the report
        is configured with ``include_phase_reports: false``."""
        out = []
        for o in self.outputs:
            value = view.outputs.get(o.name)
            if value is not None and hasattr(value, "empty") and not value.empty:
                out.append({"title": f"{view.phase}: {o.name}", "table": value, "detail": True})
        return out

    def verdict(self, view: PhaseView) -> Verdict | None:
        """Whether the strategy passes this phase's acceptance criteria (kinds that judge)."""
        return None

    def insights(self, view: PhaseView) -> list[Insight]:
        """Findings for the report's executive summary, each with its number."""
        return []

    # -------------------------------------------------------------- helpers
    def unavailable(self, written: str) -> str:
        """The one-line message for an enabled phase of this (unavailable) kind, written ``written``."""
        alias = f" ({self.name})" if self.name != written.strip().lower() else ""
        return f"phase type '{written}'{alias} " + (self.reason or "is not available yet")

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def output(self, canonical: str) -> Output:
        for o in self.outputs:
            if o.name == canonical:
                return o
        raise KeyError(f"phase kind {self.name!r} has no output {canonical!r}")

    def resolve_output(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """Canonical name and parameters of a declared output name (aliases first)."""
        for o in self.outputs:
            if name in o.spellings:
                return o.name, {}
        for o in self.outputs:
            params = o.match(name)
            if params is not None:
                return o.name, params
        return None

    def output_spellings(self) -> list[str]:
        return [s for o in self.outputs for s in o.spellings]

    def consumed_outputs(self) -> frozenset[str]:
        return frozenset(n for rule in self.consumes for n in rule.outputs)

    def default_outputs(self, config: Any) -> list[str]:
        """Outputs marked ``default``; those ``enabled_by`` a config list follow it, in its order."""
        plain, enabled = [], []
        for o in self.outputs:
            if not o.default:
                continue
            if o.enabled_by is None:
                plain.append(o.name)
                continue
            fld, value = o.enabled_by
            values = list(getattr(config, fld, None) or ())
            if value in values:
                enabled.append((values.index(value), o.name))
        return plain + [name for _, name in sorted(enabled)]

    def __repr__(self) -> str:
        return f"<phase kind {self.name}>"


def run_partitions(kind: PhaseKind, ctx: PhaseContext, keys) -> PhaseResult:
    """The kind's partitioned outputs for ``keys`` (``kind.run_partitions`` with them in
    ``ctx.partition_keys``)."""
    from dataclasses import replace

    return kind.run_partitions(replace(ctx, partition_keys=tuple(keys)))


def describe_partitions(parts: Any) -> str:
    """A kind's ``partitions(config)`` in words (for messages and descriptions)."""
    if isinstance(parts, MarketDays):
        return parts.describe()
    keys = tuple(parts or ())
    return f"{keys[0]}..{keys[-1]}, {len(keys)}" if keys else "none"


def run_phase(kind: PhaseKind, ctx: PhaseContext) -> PhaseResult:
    """A whole phase without Dagster: its partitioned outputs (every static key; for market
    days ``ctx.partition_keys``, empty = every day the kind can book), then ``run`` with them
    when it has other outputs; one result holding every output."""
    if not any(o.partitioned for o in kind.outputs):
        return kind.run(ctx)
    parts = kind.partitions(ctx.config)
    keys = ctx.partition_keys if isinstance(parts, MarketDays) or parts is None else tuple(parts)
    from dataclasses import replace

    done = run_partitions(kind, ctx, keys)
    if all(o.partitioned for o in kind.outputs):
        return done
    rest = kind.run(replace(ctx, partitioned=done.outputs))
    return PhaseResult(outputs={**done.outputs, **rest.outputs}, metadata={**done.metadata, **rest.metadata},
                       metrics={**done.metrics, **rest.metrics}, checks={**done.checks, **rest.checks})


class PlannedKind(PhaseKind):
    """A kind named in the design documents that is not implemented yet: a workflow using
    it fails validation with "phase type 'x' is not available yet" -- or, for a kind the
    platform will not offer, with ``reason``."""

    available = False

    def __init__(self, name: str, aliases: Iterable[str] = (), description: str = "",
                 phase_keys: Iterable[str] = (), reason: str = ""):
        self.name = name  # type: ignore[misc]
        self.aliases = tuple(aliases)  # type: ignore[misc]
        self.description = description  # type: ignore[misc]
        self.phase_keys = tuple(phase_keys)  # type: ignore[misc]
        self.reason = reason  # type: ignore[misc]


class Registry:
    """The registered kinds, in registration order (the order shown to users)."""

    def __init__(self) -> None:
        self._kinds: dict[str, PhaseKind] = {}
        self._aliases: dict[str, str] = {}

    def register(self, kind: PhaseKind, *, replace: bool = False) -> PhaseKind:
        """Add a kind; an implemented kind replaces a planned one of the same name."""
        if not kind.name:
            raise ValueError(f"{kind!r} has no name")
        old = self._kinds.get(kind.name)
        if old is not None and old.available and not replace:
            raise ValueError(f"phase kind {kind.name!r} is already registered")
        spellings = [s.lower() for s in (kind.name, *kind.aliases)]
        for s in spellings:
            owner = self._aliases.get(s)
            if owner is not None and owner != kind.name and self._kinds[owner].available and not replace:
                raise ValueError(f"phase kind name {s!r} is already used by {owner!r}")
        if old is not None:
            for s in [a for a, k in self._aliases.items() if k == kind.name]:
                del self._aliases[s]
        self._kinds[kind.name] = kind
        for s in spellings:
            self._aliases[s] = kind.name
        return kind

    def unregister(self, name: str) -> None:
        """Remove a registered kind (a plugin's or a test's) and its spellings."""
        self._kinds.pop(name, None)
        for s in [a for a, k in self._aliases.items() if k == name]:
            del self._aliases[s]

    def load(self, *modules: str) -> None:
        """Import each module and register its ``KIND``."""
        import importlib

        for mod in modules:
            self.register(importlib.import_module(mod).KIND)

    def plan(self, name: str, *aliases: str, description: str = "", phase_keys: Iterable[str] = (),
             reason: str = "") -> None:
        """A kind that is not available; ``reason`` replaces "is not available yet" in the message."""
        if name in self._kinds:
            return  # implemented already
        kind = PlannedKind(name, aliases, description, phase_keys, reason)
        self._kinds[name] = kind
        for s in (name, *aliases):
            self._aliases.setdefault(s.lower(), name)

    def lookup(self, name: Any) -> PhaseKind | None:
        """The kind for a name or alias (case-insensitive), or None."""
        canon = self._aliases.get(str(name).strip().lower())
        return self._kinds[canon] if canon else None

    def __getitem__(self, name: str) -> PhaseKind:
        return self._kinds[name]

    def __contains__(self, name: str) -> bool:
        return name in self._kinds

    def __iter__(self):
        return iter(self._kinds.values())

    def available(self) -> list[PhaseKind]:
        return [k for k in self._kinds.values() if k.available]

    def spellings(self) -> list[str]:
        return sorted(self._aliases)

    def accepting(self, phase_key: str) -> list[str]:
        """Kinds that accept a phase-level key (``condition``...)."""
        return [k.name for k in self._kinds.values() if phase_key in k.phase_keys]
