"""conditional: a safe expression over upstream results picks which of two phase bodies runs.

    - name: strategy_selection
      type: conditional
      condition: "${initial_assessment.market_conditions.volatility} > 0.25"
      if_true:  {type: optimization, config: {strategies: [...], optimization: {...}}}
      if_false: {type: optimization, config: {...}}
      outputs: [selected_strategies, optimization_results]

The phase is ONE Dagster multi-asset whose outputs are the branch bodies' outputs (a declared
output must mean the same thing in both branches) plus ``branch_decision``: at run time the
condition is evaluated (``phases.expressions``: an AST whitelist, no ``eval``) on the upstream
tables it references, and only the chosen body's kind runs -- the other body never runs.  The
branch taken, the condition's value and every reference's value are in ``branch_decision``
and in the metadata of every output.  A missing branch (no ``if_false``) produces only
``branch_decision`` when taken: the other outputs are not materialized and their dependents
skip.  Both bodies are validated by ``admf validate`` like phases of their own kinds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd
from pydantic import Field, PrivateAttr, StrictStr, model_validator

from admf_assets.phases.common import BARS
from admf_assets.phases.expressions import (ExpressionError, condition_metadata, evaluate, parse, reference_values)
from admf_assets.phases.kind import ConfigEnv, Consumes, Output, OutputRef, PhaseContext, PhaseError, PhaseKind, \
    PhaseResult, PhaseView, StrictModel

BRANCHES = ("if_true", "if_false")
DECISION = Output("branch_decision", "The condition, its value, the branch taken and every reference's value",
                  aliases=("condition_result", "decision"),
                  columns=("condition", "condition_value", "branch", "branch_type", "references"))


class Branch(StrictModel):
    """One branch body: a phase of another kind, without a name of its own."""

    type: StrictStr
    description: StrictStr | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[StrictStr] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, v: Any) -> Any:
        if isinstance(v, dict) and v.get("config") is None and "config" in v:
            v = {**v, "config": {}}
        if isinstance(v, dict) and isinstance(v.get("inputs"), str):
            v = {**v, "inputs": [v["inputs"]]}
        return v


class Config(StrictModel):
    condition: StrictStr | None = None
    if_true: Branch | None = None
    if_false: Branch | None = None
    _bodies: dict = PrivateAttr(default_factory=dict)  #: branch -> (kind, typed effective config)


class Conditional(PhaseKind):
    name = "conditional"
    aliases = ("branch", "conditional_branch")
    description = "Evaluate a safe condition over upstream results and run one of two phase bodies."
    Config = Config
    phase_keys = ("condition", "if_true", "if_false")
    example_config = {"condition": "avg(${data.bars.close}) > 0 and 1 + 1 == 2",
                      "if_true": {"type": "parameter_search",
                                  "config": {"optimization": {"parameters": {"fast_period": [5, 10],
                                                                             "slow_period": [20, 40]}}}},
                      "if_false": {"type": "parameter_search",
                                   "config": {"optimization": {"parameters": {"fast_period": [10],
                                                                              "slow_period": [50]}}}}}
    outputs = (DECISION,)
    consumes = (BARS,)
    metrics = ("condition_value", "branch_taken")

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        from admf_assets.phases import KINDS  # the registry imports this module

        if cfg.condition is None:
            env.problem("condition", "required: an expression such as \"${phase.output.field} > 0.25\"")
        else:
            try:
                parse(cfg.condition)
            except ExpressionError as exc:
                env.problem("condition", f"invalid condition: {exc}")
        if cfg.if_true is None and cfg.if_false is None:
            env.problem("if_true", "give if_true and/or if_false: {type: ..., config: {...}}")
        bodies, updates = {}, {}
        for key in BRANCHES:
            body: Branch | None = getattr(cfg, key)
            if body is None:
                continue
            kind = KINDS.lookup(body.type)
            if kind is None:
                from admf_assets.suggest import suggest

                env.problem(f"{key}.type", f"unknown phase type '{body.type}'"
                                           f"{suggest(body.type.lower(), KINDS.spellings())}")
                continue
            if not kind.available:
                env.problem(f"{key}.type", f"phase type '{body.type}' is not available yet")
                continue
            if kind.phase_keys or kind.consumes_all or kind.implicit is not None:
                env.problem(f"{key}.type", f"a branch cannot be a {kind.name} phase")
                continue
            from pydantic import ValidationError

            try:
                typed = kind.Config.model_validate(body.config)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = ".".join(str(p) for p in err["loc"])
                    msg = f"unknown key '{err['loc'][-1]}'" if err["type"] == "extra_forbidden" else err["msg"]
                    env.problem(f"{key}.config{'.' + loc if loc else ''}", msg)
                continue
            sub = ConfigEnv(data=env.data, workflow=env.workflow)
            typed = kind.effective_config(typed, sub)
            for fld, msg in sub.problems:
                env.problem(f"{key}.config.{fld}" if fld else f"{key}.config", msg)
            for fld, msg in sub.warnings:
                env.warn(f"{key}.config.{fld}" if fld else f"{key}.config", msg)
            if sub.problems:
                continue
            bodies[key] = (kind, typed)
            updates[key] = body.model_copy(update={"type": kind.name, "config": typed.model_dump(mode="json")})
        names = {k: {o.name: o for o in kind.outputs} for k, (kind, _) in bodies.items()}
        if len(names) == 2:
            for out in set(names["if_true"]) & set(names["if_false"]):
                if names["if_true"][out].storage != names["if_false"][out].storage:
                    env.problem("if_false.type", f"output '{out}' is stored differently in the two branches")
        new = cfg.model_copy(update=updates)
        new._bodies = bodies
        return new

    def references(self, cfg: Config) -> tuple[tuple[str, str], ...]:
        refs = [(r.asset, "condition") for r in parse(cfg.condition).refs] if cfg.condition else []
        for key in BRANCHES:
            body = getattr(cfg, key)
            if body is not None:
                refs += [(ref, f"{key}.inputs") for ref in body.inputs]
        return tuple(refs)

    def bind(self, cfg: Config) -> PhaseKind:
        return BoundConditional(cfg) if cfg._bodies else self

    def may_skip(self, cfg: Config) -> bool:
        return any(getattr(cfg, key) is None for key in BRANCHES)

    def run(self, ctx: PhaseContext) -> PhaseResult:  # an unbound conditional has no branch to run
        raise PhaseError("no valid branch (if_true / if_false)")

    def sections(self, view: PhaseView) -> list[dict]:
        out = []
        d = view.outputs.get("branch_decision")
        if d is not None and len(d):
            row = d.iloc[0]
            out.append({"title": f"{view.phase}: branch taken",
                        "text": f"{row['condition']} = {row['condition_value']}: ran {row['branch']} "
                                f"({row['branch_type']}).", "table": d})
        for key, (kind, typed) in getattr(view.config, "_bodies", {}).items():
            taken = d is not None and len(d) and d.iloc[0]["branch"] == key
            if taken:
                sub = replace(view, kind=kind, config=typed,
                              outputs={k: v for k, v in view.outputs.items() if k != "branch_decision"})
                out += kind.sections(sub)
        return out


class BoundConditional(Conditional):
    """A conditional with validated branches: its outputs, inputs and metrics are its
    branches' (see ``PhaseKind.bind``)."""

    def __init__(self, cfg: Config):
        bodies = cfg._bodies
        outs: dict[str, Output] = {DECISION.name: DECISION}
        consumes = list(Conditional.consumes)
        metrics = list(Conditional.metrics)
        for kind, _ in bodies.values():
            for o in kind.outputs:
                outs.setdefault(o.name, o)
            consumes += [c for c in kind.consumes if c not in consumes]
            metrics += [m for m in kind.metrics if m not in metrics]
        self.outputs = tuple(outs.values())  # type: ignore[misc]
        self.consumes = tuple(consumes)  # type: ignore[misc]
        self.metrics = tuple(metrics)  # type: ignore[misc]
        self.bodies = bodies

    def bind(self, cfg: Config) -> PhaseKind:
        return BoundConditional(cfg)

    def default_outputs(self, config: Any) -> list[str]:
        names = [DECISION.name]
        for kind, typed in self.bodies.values():
            names += [n for n in kind.default_outputs(typed) if n not in names]
        return names

    def run(self, ctx: PhaseContext) -> PhaseResult:
        from admf_assets.phases import KINDS

        cfg: Config = ctx.config
        expr = parse(cfg.condition)

        def table_of(ref):
            for u in ctx.upstream:
                if u.phase != ref.phase:
                    continue
                up_kind = KINDS.lookup(u.kind)
                hit = up_kind.resolve_output(ref.output) if up_kind is not None else None
                if u.output == ref.output or (hit is not None and hit[0] == u.canonical):
                    return u.value
            raise PhaseError(f"field 'condition': {ref.text} is not loaded (no upstream edge)")

        try:
            refs = reference_values(expr, table_of)
            value = evaluate(expr, refs)
        except ExpressionError as exc:
            raise PhaseError(f"field 'condition': {exc}") from None
        branch = "if_true" if value else "if_false"
        info = condition_metadata(expr, refs, value)
        body = self.bodies.get(branch)
        decision = pd.DataFrame([{"condition": expr.text, "condition_value": str(info["condition_value"]),
                                  "branch": branch, "branch_type": body[0].name if body else "(none: skipped)",
                                  "references": "; ".join(f"{k[4:]} = {v}" for k, v in info.items()
                                                          if k.startswith("ref "))}])
        common = {**info, "branch_taken": branch, "branch_type": body[0].name if body else "none"}
        metrics = {"condition_value": float(bool(value)) if isinstance(value, bool) else float(value)
                   if isinstance(value, (int, float)) else float(bool(value)),
                   "branch_taken": 1 if branch == "if_true" else 0}
        if body is None:
            skipped = {o.canonical: {**common, "skipped": f"no {branch} branch"} for o in ctx.outputs}
            return PhaseResult(outputs={DECISION.name: decision}, metadata={**skipped, DECISION.name: common},
                               metrics=metrics)
        kind, typed = body
        other = self.bodies.get("if_false" if branch == "if_true" else "if_true")
        own_inputs = set(getattr(cfg, branch).inputs)
        other_inputs = set(getattr(cfg, "if_false" if branch == "if_true" else "if_true").inputs) if other else set()
        wanted = kind.consumed_outputs()
        upstream = tuple(replace(u, consumed=u.canonical in wanted) for u in ctx.upstream
                         if not (u.ref in other_inputs and u.ref not in own_inputs))
        sub = replace(ctx, kind=kind, config=typed, upstream=upstream,
                      outputs=tuple(OutputRef(o.name, o.canonical, o.params) for o in ctx.outputs
                                    if o.canonical in kind.output_names))
        res = kind.run(sub)
        outputs = {k: v for k, v in res.outputs.items() if any(o.canonical == k for o in ctx.outputs)}
        outputs[DECISION.name] = decision
        meta = {k: {**common, **v} for k, v in res.metadata.items()}
        meta[DECISION.name] = common
        return PhaseResult(outputs=outputs, metadata=meta, metrics={**res.metrics, **metrics})


KIND = Conditional()

__all__ = ["KIND", "Config", "Branch", "Conditional", "BoundConditional"]
