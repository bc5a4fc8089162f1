"""Config models of the available phase types, and their effective (defaulted,
normalised, JSON-safe) configs.

``validate_config(phase_type, config, data)`` returns either the effective config dict
or a list of ``(field, message)`` problems, ``field`` being dotted under ``config``.
Defaults here must equal ``catalog.PhaseType.optional_config`` (a test checks it).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator, model_validator

from . import catalog
from .errors import WorkflowError, pydantic_errors, suggest
from .spec import DataSpec, DataSplit, StrictModel, check_dates

__all__ = ["CONFIG_MODELS", "validate_config", "MAX_GRID_SIZE"]

#: a grid larger than this is almost certainly a mistake (use method: random)
MAX_GRID_SIZE = 1_000_000

DataSplitName = Literal["train", "test", "all"]


class DataPreparationConfig(StrictModel):
    """Overrides of the workflow's data section for one data_preparation phase."""

    symbols: list[StrictStr] | None = None
    start_date: date | None = None
    end_date: date | None = None
    split: DataSplit | None = None

    @field_validator("symbols", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class StrategySpec(StrictModel):
    type: StrictStr
    optimization_target: StrictBool = True
    parameters: dict[StrictStr, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _name_only(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v


class OptimizationSettings(StrictModel):
    method: StrictStr = "grid"
    parameters: dict[StrictStr, Any] | None = None
    objective: StrictStr = "sharpe_ratio"
    direction: Literal["maximize", "minimize"] | None = None
    n_trials: StrictInt | None = Field(default=None, ge=1)
    seed: StrictInt = 42


class TradingSettings(StrictModel):
    """How positions become returns (engine BacktestConfig); shared by search, analysis and
    backtest phases."""

    mode: Literal["long_only", "long_short"] = "long_only"
    sizing: Literal["fixed", "vol_target"] = "fixed"
    target_vol: float = Field(default=0.10, gt=0)
    vol_lookback: StrictInt = Field(default=20, ge=2)
    weights: dict[StrictStr, float] | None = None
    include_transaction_costs: StrictBool = False
    cost_bps: float = Field(default=5.0, ge=0)
    slippage_bps: float = Field(default=2.0, ge=0)
    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    take_profit: float | None = Field(default=None, gt=0)
    trailing_stop: float | None = Field(default=None, gt=0, lt=1)
    max_holding: StrictInt | None = Field(default=None, ge=1)


TRADING_KEYS = tuple(TradingSettings.model_fields)


class ParameterSearchConfig(TradingSettings):
    __key_aliases__ = ("parameters", "method", "strategy")

    optimization: OptimizationSettings = Field(default_factory=OptimizationSettings)
    strategies: list[StrategySpec] = Field(default_factory=lambda: [StrategySpec(type="momentum")], min_length=1)
    data_split: DataSplitName = "train"
    top_n: StrictInt | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _shortcuts(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        v = dict(v)
        opt = v.get("optimization")
        opt = dict(opt) if isinstance(opt, dict) else ({} if opt is None else opt)
        for key in ("parameters", "method"):
            if key in v:
                if not isinstance(opt, dict):
                    break
                if key in opt:
                    raise ValueError(f"[{key}] `{key}` is given both at config top level and in config.optimization")
                opt[key] = v.pop(key)
        if "optimization" in v or opt:
            v["optimization"] = opt
        if "strategy" in v:
            if "strategies" in v:
                raise ValueError("[strategy] give `strategy` or `strategies`, not both")
            v["strategies"] = [v.pop("strategy")]
        return v


class AnalysisConfig(TradingSettings):
    analyzers: list[StrictStr] = Field(
        default_factory=lambda: ["drawdown_analysis", "correlation_analysis"], min_length=1
    )
    data_split: DataSplitName = "train"
    n_simulations: StrictInt = Field(default=1000, ge=1)
    seed: StrictInt = 42
    block_size: StrictInt = Field(default=5, ge=1)
    top_drawdowns: StrictInt = Field(default=10, ge=1)
    regime_window: StrictInt = Field(default=20, ge=2)
    confidence_levels: list[float] = Field(default_factory=lambda: [0.95, 0.99], min_length=1)


class BacktestConfig(TradingSettings):
    data_split: DataSplitName = "test"
    include_transaction_costs: StrictBool = True
    initial_capital: float = Field(default=100_000.0, gt=0)
    generate_detailed_report: StrictBool = True
    parameters: dict[StrictStr, Any] | None = None
    strategy: StrictStr | None = None

    @field_validator("parameters")
    @classmethod
    def _scalars(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, value in (v or {}).items():
            if not _is_scalar(value):
                raise ValueError(f"[{key}] a fixed parameter must be a number, string or boolean (got {value!r})")
        return v


class ReportConfig(StrictModel):
    title: StrictStr | None = None
    output_path: StrictStr | None = None
    include_phase_reports: StrictBool = True
    generate_summary_report: StrictBool = True


CONFIG_MODELS: dict[str, type[StrictModel]] = {
    "data_preparation": DataPreparationConfig,
    "parameter_search": ParameterSearchConfig,
    "analysis": AnalysisConfig,
    "backtest": BacktestConfig,
    "report": ReportConfig,
}


# ------------------------------------------------------------------ validation
Problems = list[tuple[str, str]]


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (str, int, float, bool))


def _normalise_param(name: str, spec: Any, method: str, problems: Problems) -> dict[str, Any] | None:
    """One search dimension -> ``{"values": [...]}`` or ``{"low", "high", "step", "log", "type"}``.

    grid: a list is the values; ``{low, high, step}`` is expanded (step 1 for integers).
    random: a two-number list ``[low, high]`` is a range (integers if both are integers),
    any other list is a set of choices; ``{values: [...]}`` forces choices.
    """
    field = f"optimization.parameters.{name}"
    if isinstance(spec, list):
        if not spec:
            problems.append((field, "empty list of values"))
            return None
        if not all(_is_scalar(x) for x in spec):
            problems.append((field, "values must be numbers, strings or booleans"))
            return None
        if method == "random" and len(spec) == 2 and all(_is_number(x) for x in spec):
            spec = {"low": spec[0], "high": spec[1]}
        else:
            return {"values": list(spec)}
    elif _is_scalar(spec):
        return {"values": [spec]}
    if not isinstance(spec, dict):
        problems.append((field, f"expected a list of values or {{low, high[, step]}} (got {type(spec).__name__})"))
        return None
    allowed = {"values", "low", "high", "step", "log"}
    extra = sorted(set(spec) - allowed)
    if extra:
        problems.append((field, f"unknown key '{extra[0]}'{suggest(extra[0], allowed)}; allowed: {', '.join(sorted(allowed))}"))
        return None
    if "values" in spec:
        vals = spec["values"]
        if set(spec) != {"values"} or not isinstance(vals, list) or not vals or not all(_is_scalar(x) for x in vals):
            problems.append((field, "`values` must be a non-empty list of numbers/strings and stand alone"))
            return None
        return {"values": list(vals)}
    low, high, step = spec.get("low"), spec.get("high"), spec.get("step")
    log = spec.get("log", False)
    if not (_is_number(low) and _is_number(high)):
        problems.append((field, "a range needs numeric `low` and `high`"))
        return None
    if low > high:
        problems.append((field, f"low {low} is greater than high {high}"))
        return None
    if step is not None and (not _is_number(step) or step <= 0):
        problems.append((field, f"step must be a positive number (got {step!r})"))
        return None
    if not isinstance(log, bool):
        problems.append((field, f"log must be true or false (got {log!r})"))
        return None
    if log and low <= 0:
        problems.append((field, "a log range needs low > 0"))
        return None
    is_int = isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int))
    if method == "grid":
        if step is None and not is_int:
            problems.append((field, "a grid needs a finite set: give a list of values or a `step`"))
            return None
        st = step if step is not None else 1
        n = int(math.floor((high - low) / st + 1e-9)) + 1
        if n > MAX_GRID_SIZE:
            problems.append((field, f"{n} values is too many for a grid"))
            return None
        values = [low + i * st for i in range(n)]
        if not is_int:
            values = [round(x, 12) for x in values]
        return {"values": values}
    return {"low": low, "high": high, "step": step, "log": log, "type": "int" if is_int else "float"}


def _strategy_registry() -> Any:
    """The engine's strategy registry, or None when it cannot be imported.

    Strategy and parameter names are checked against it (best effort: the workflow
    layer does not depend on the engine being importable)."""
    try:
        from admf_assets.engine import strategies as registry

        registry.get_strategy, registry.strategy_names  # noqa: B018 - the API we use
        return registry
    except Exception:  # noqa: BLE001
        return None


def _known_strategy(registry: Any, name: str, field: str, problems: Problems) -> Any:
    try:
        return registry.get_strategy(name)
    except KeyError:
        known = registry.strategy_names(include_aliases=True)
        problems.append((field, f"unknown strategy '{name}'{suggest(name.lower(), known)}; "
                                f"known: {', '.join(registry.strategy_names())}"))
        return None


def _param_names(spec: Any) -> list[str]:
    return list(spec.params) + list(spec.param_aliases)


def _check_strategy_params(specs: list[Any], names: Any, field: str, problems: Problems) -> None:
    specs = [s for s in specs if s is not None]
    if not specs:
        return
    for name in names:
        if all(s.canonical_param(name) is None for s in specs):
            if len(specs) == 1:
                msg = (f"strategy '{specs[0].name}' has no parameter '{name}'"
                       f"{suggest(name, _param_names(specs[0]))}; its parameters: {', '.join(specs[0].params)}")
            else:
                every = [n for s in specs for n in _param_names(s)]
                msg = (f"none of the strategies ({', '.join(s.name for s in specs)}) has a parameter "
                       f"'{name}'{suggest(name, every)}")
            problems.append((f"{field}.{name}", msg))


def _best_effort(check: Any, *args: Any) -> None:
    """Run an engine-registry check; if the engine misbehaves, skip it (never a traceback)."""
    registry = _strategy_registry()
    if registry is None:
        return
    problems: Problems = args[-1]
    found: Problems = []
    try:
        check(registry, *args[:-1], found)
    except Exception:  # noqa: BLE001
        return
    problems.extend(found)


def _check_search_strategies(registry: Any, cfg: "ParameterSearchConfig", params: dict[str, Any],
                             problems: Problems) -> None:
    targets = []
    for i, s in enumerate(cfg.strategies):
        if not s.type.strip():
            continue
        spec = _known_strategy(registry, s.type, f"strategies[{i}].type", problems)
        _check_strategy_params([spec], s.parameters, f"strategies[{i}].parameters", problems)
        if s.optimization_target:
            targets.append(spec)
    if params:
        _check_strategy_params(targets, params, "optimization.parameters", problems)


def _check_backtest_strategy(registry: Any, cfg: "BacktestConfig", problems: Problems) -> None:
    if cfg.strategy is not None or cfg.parameters:
        spec = _known_strategy(registry, cfg.strategy or "momentum", "strategy", problems)
        _check_strategy_params([spec], cfg.parameters or {}, "parameters", problems)


def _check_parameter_search(cfg: ParameterSearchConfig, problems: Problems) -> dict[str, Any]:
    opt = cfg.optimization
    method = opt.method.strip().lower()
    if method in catalog.UNAVAILABLE_OPTIMIZATION_METHODS:
        problems.append(("optimization.method",
                         f"optimization method '{method}' is not available yet "
                         f"(available: {', '.join(catalog.OPTIMIZATION_METHODS)})"))
    elif method not in catalog.OPTIMIZATION_METHODS:
        known = catalog.OPTIMIZATION_METHODS + catalog.UNAVAILABLE_OPTIMIZATION_METHODS
        problems.append(("optimization.method",
                         f"unknown optimization method '{opt.method}'{suggest(method, known)} "
                         f"(available: {', '.join(catalog.OPTIMIZATION_METHODS)})"))
    if opt.objective not in catalog.OBJECTIVES:
        problems.append(("optimization.objective",
                         f"unknown objective '{opt.objective}'{suggest(opt.objective, catalog.OBJECTIVES)}; "
                         f"known: {', '.join(catalog.OBJECTIVES)}"))
    if method == "random" and opt.n_trials is None:
        problems.append(("optimization.n_trials", "required for method 'random'"))
    params: dict[str, Any] = {}
    if not opt.parameters:
        problems.append(("optimization.parameters",
                         "required for phase type 'parameter_search': a mapping of parameter name -> values"))
    else:
        grid_size = 1
        for name, spec in opt.parameters.items():
            norm = _normalise_param(name, spec, method, problems)
            if norm is not None:
                params[name] = norm
                if "values" in norm:
                    grid_size *= len(norm["values"])
        if method == "grid" and grid_size > MAX_GRID_SIZE:
            problems.append(("optimization.parameters",
                             f"the grid has {grid_size} combinations (more than {MAX_GRID_SIZE}); "
                             "use method 'random' with n_trials"))
    for i, s in enumerate(cfg.strategies):
        if not s.type.strip():
            problems.append((f"strategies[{i}].type", "empty strategy type"))
    _best_effort(_check_search_strategies, cfg, params, problems)
    return {
        "strategies": [s.model_dump() for s in cfg.strategies],
        "optimization": {
            "method": method,
            "parameters": params,
            "objective": opt.objective,
            "direction": opt.direction or catalog.OBJECTIVES.get(opt.objective, "maximize"),
            "n_trials": opt.n_trials,
            "seed": opt.seed,
        },
        "data_split": cfg.data_split,
        "top_n": cfg.top_n,
        **{k: getattr(cfg, k) for k in TRADING_KEYS},
    }


def _suggest_canonical(word: str, aliases: dict[str, str] | Any) -> str:
    from .errors import closest

    best = closest(word, aliases)
    return f" (did you mean '{aliases[best]}'?)" if best is not None else ""


def _check_analysis(cfg: AnalysisConfig, problems: Problems) -> dict[str, Any]:
    analyzers: list[str] = []
    for i, a in enumerate(cfg.analyzers):
        canon = catalog.ANALYZER_ALIASES.get(a.strip().lower())
        if canon is None:
            problems.append((f"analyzers[{i}]",
                             f"unknown analyzer '{a}'{_suggest_canonical(a, catalog.ANALYZER_ALIASES)}; "
                             f"available: {', '.join(catalog.ANALYZERS)}"))
        elif canon not in analyzers:
            analyzers.append(canon)
    return {"analyzers": analyzers, **cfg.model_dump(exclude={"analyzers"})}


def _data_config(cfg: DataPreparationConfig, data: DataSpec | None, problems: Problems) -> dict[str, Any]:
    symbols = cfg.symbols if cfg.symbols is not None else (data.symbols if data else None)
    start = cfg.start_date or (data.start_date if data else None)
    end = cfg.end_date or (data.end_date if data else None)
    split = cfg.split or (data.split if data else DataSplit())
    for key, val in (("symbols", symbols), ("start_date", start), ("end_date", end)):
        if not val:
            problems.append((key, f"no {key}: set data.{key} (or config.{key} of this phase)"))
    if start and end and not problems:
        try:
            check_dates(start, end, split)
        except ValueError as exc:
            problems.append(("start_date", str(exc)))
    return {
        "symbols": list(symbols or []),
        "start_date": start.isoformat() if start else None,
        "end_date": end.isoformat() if end else None,
        "split": split.as_config(),
    }


def validate_config(
    phase_type: catalog.PhaseType,
    config: dict[str, Any],
    data: DataSpec | None,
    *,
    file: str | None = None,
    phase: str | None = None,
) -> tuple[dict[str, Any] | None, list[WorkflowError]]:
    """Validate ``config`` for ``phase_type``: (effective config, []) or (None, errors)."""
    model = CONFIG_MODELS[phase_type.name]
    try:
        cfg = model.model_validate(config)
    except ValidationError as exc:
        return None, pydantic_errors(exc, model=model, file=file, phase=phase, prefix="config")
    problems: Problems = []
    if isinstance(cfg, ParameterSearchConfig):
        eff = _check_parameter_search(cfg, problems)
    elif isinstance(cfg, BacktestConfig):
        eff = cfg.model_dump()
        _best_effort(_check_backtest_strategy, cfg, problems)
    elif isinstance(cfg, AnalysisConfig):
        eff = _check_analysis(cfg, problems)
    elif isinstance(cfg, DataPreparationConfig):
        eff = _data_config(cfg, data, problems)
    else:
        eff = cfg.model_dump()
    if problems:
        return None, [WorkflowError(msg, file=file, phase=phase, field=f"config.{f}") for f, msg in problems]
    return eff, []
