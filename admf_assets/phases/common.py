"""Config pieces and helpers that several kinds share.

* :class:`SplitConfig` -- the YAML form of the engine's train/test :class:`DataSplit`;
* :class:`TradingSettings` -- how positions become returns (mode, sizing, costs, exit
  rules, symbol weights).  Its defaults are read from the engine's ``BacktestConfig`` and
  cost constants, so they are written once; ``settings.trading()`` builds the engine
  object a phase runs with;
* :class:`StrategyEntry` -- one strategy of a search or capture, with its own grid;
* strategy/parameter checks against the engine's strategy registry (validate-time);
* ``close_matrix`` / ``split_mask`` over the ``bars`` table of the data phase.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, StrictBool, StrictInt, StrictStr, model_serializer, model_validator

from admf_assets.engine import strategies as strategy_registry
from admf_assets.engine.marketdata import last_market_day
from admf_assets.engine.backtest import DEFAULT_COST_BPS, DEFAULT_SLIPPAGE_BPS, SIZINGS, BacktestConfig
from admf_assets.engine.marketdata import SOURCES as MARKET_SOURCES
from admf_assets.engine.split import DEFAULT_TEST_FRACTION, SPLIT_RULES, DataSplit
from admf_assets.engine.strategies import MODES
from admf_assets.phases.kind import ConfigEnv, Consumes, PhaseError, StrictModel
from admf_assets.suggest import suggest

__all__ = [
    "BARS",
    "DataSplitName",
    "MarketSourceName",
    "SplitConfig",
    "check_dates",
    "renamed_keys",
    "check_calendar",
    "check_universe",
    "TradingSettings",
    "inherited_trading",
    "check_fixed_parameters",
    "StrategyEntry",
    "known_strategy",
    "check_strategy_params",
    "check_param_values",
    "check_has_valid_combination",
    "data_shape",
    "suggest",
    "MAX_GRID_SIZE",
    "normalise_param",
    "space_from_config",
    "close_matrix",
    "split_mask",
    "canonical_list",
]

DataSplitName = Literal["train", "test", "all"]
#: a market-data source a workflow may declare it needs (``data.source``)
MarketSourceName = Literal[MARKET_SOURCES]  # type: ignore[valid-type]
#: what every kind that trades consumes: the bars of the workflow's data phase (connected
#: automatically when the YAML names no provider)
BARS = Consumes(("bars",), required=False, auto=True)
_ENGINE = BacktestConfig()  # the engine's defaults: the one place they are written


# ------------------------------------------------------------------ data split
class SplitConfig(StrictModel):
    """Train/test split: exactly one of ``test_start``, ``train_end``, ``test_fraction``.

    ``test_start``: the first test date; ``train_end``: the last train date;
    ``test_fraction``: the last share of trading days is the test set.
    Default when nothing is given: ``test_fraction: 0.3``.
    """

    test_start: date | None = None
    train_end: date | None = None
    test_fraction: float | None = Field(default=None, gt=0.0, lt=1.0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        # `split: 0.3` or `split: 2022-01-01`
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return {"test_fraction": v}
        if isinstance(v, (date, str)):
            return {"test_start": v}
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> "SplitConfig":
        given = [k for k in SPLIT_RULES if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"[{given[1]}] give only one of {', '.join(SPLIT_RULES)} (got {', '.join(given)})")
        if not given:
            self.test_fraction = DEFAULT_TEST_FRACTION
        return self

    @property
    def method(self) -> str:
        return self.engine().rule

    @model_serializer(mode="plain")
    def _as_config(self) -> dict[str, Any]:
        """JSON-safe and minimal: ``{"test_start": "2022-01-01"}`` or ``{"test_fraction": 0.3}``."""
        value = getattr(self, self.method)
        return {self.method: value.isoformat() if isinstance(value, date) else value}

    def as_config(self) -> dict[str, Any]:
        return self._as_config()

    def engine(self) -> DataSplit:
        return DataSplit(self.test_start, self.train_end, self.test_fraction)

    def test_start_index(self, dates) -> int:
        return self.engine().test_start_index(dates)


def renamed_keys(v: Any, aliases: dict[str, str]) -> Any:
    """A config mapping with its alias keys renamed to the canonical ones (for a
    ``model_validator(mode="before")``); an alias given together with its key is an error."""
    if not isinstance(v, dict) or not any(a in v for a in aliases):
        return v
    v = dict(v)
    for alias, key in aliases.items():
        if alias in v:
            if key in v:
                raise ValueError(f"[{alias}] give {key} or {alias}, not both")
            v[key] = v.pop(alias)
    return v


def check_dates(start: date, end: date, split: SplitConfig) -> None:
    if start >= end:
        raise ValueError(f"start_date {start} must be before end_date {end}")
    for key in ("test_start", "train_end"):
        d = getattr(split, key)
        if d is not None and not (start < d < end):
            raise ValueError(f"split.{key} {d} must lie strictly between start_date {start} and end_date {end}")


def check_calendar(start: date, end: date, source: str | None = None, today=None) -> list[tuple[str, str]]:
    """Problems (field, message) of a date range against the market-data calendar of
    ``source`` (default ``ADMF_MARKET_SOURCE``): it starts on its first day (``ADMF_MARKET_START``)
    and ends on the last complete weekday (nothing exists after it yet)."""
    from admf_assets import settings

    out = []
    first = pd.Timestamp(settings.market_start(source)).date()  # a bad ADMF_* value: SettingError
    last = last_market_day(today).date()
    if start < first:
        out.append(("start_date", f"start_date {start} is before the market-data calendar starts ({first})"))
    if end > last:
        out.append(("end_date", f"end_date {end} is after the last complete market day ({last}): "
                                "there is no market data for it yet"))
    return out


def check_universe(symbols: list[str], env: ConfigEnv, source: str | None = None, limit: int = 8) -> None:
    """Every symbol must be one the market-data source delivers: ``source`` when the workflow
    declares it, else ``ADMF_MARKET_SOURCE`` (the synthetic universe, the sample's two indices,
    the files in ``ADMF_MARKET_PATH``; ``ADMF_SYMBOLS`` narrows each)."""
    from admf_assets import settings
    from admf_assets.engine.sample import SAMPLE_SYMBOLS

    kind = source or settings.market_source_kind()  # a bad ADMF_MARKET_SOURCE: SettingError
    try:
        where, universe = settings.market_universe(kind)
    except settings.SettingError:
        raise
    except ValueError as exc:  # a files source without a readable directory
        env.problem("symbols", str(exc))
        return
    have = {s.upper() for s in universe}
    missing = [s for s in symbols if s.upper() not in have]  # linear: a set lookup per symbol
    if not missing:
        return
    shown = ", ".join(missing[:limit]) + (f" and {len(missing) - limit} more" if len(missing) > limit else "")
    hint = suggest(missing[0].upper(), sorted(have)) if len(have) <= 10_000 else ""
    known = ", ".join(sorted(have)[:limit]) + (", ..." if len(have) > limit else "")
    if kind != "sample" and {s.upper() for s in missing} <= set(SAMPLE_SYMBOLS):
        hint += f" ({', '.join(SAMPLE_SYMBOLS)} are the built-in real sample: ADMF_MARKET_SOURCE=sample, or data.source)"
    env.problem("symbols", f"{len(missing)} symbol(s) not in {where}: {shown}{hint}; it has {len(have)}: {known}")


# ------------------------------------------------------------------ trading settings
class TradingSettings(StrictModel):
    """How positions become returns; shared by every kind that backtests.  Defaults are the
    engine's (``BacktestConfig`` and its cost model)."""

    mode: Literal[MODES] = _ENGINE.mode  # type: ignore[valid-type]
    sizing: Literal[SIZINGS] = _ENGINE.sizing  # type: ignore[valid-type]
    target_vol: float = Field(default=_ENGINE.target_vol, gt=0)
    vol_lookback: StrictInt = Field(default=_ENGINE.vol_lookback, ge=2)
    weights: dict[StrictStr, float] | None = _ENGINE.weights
    include_transaction_costs: StrictBool = False
    cost_bps: float = Field(default=DEFAULT_COST_BPS, ge=0)
    slippage_bps: float = Field(default=DEFAULT_SLIPPAGE_BPS, ge=0)
    stop_loss: float | None = Field(default=_ENGINE.stop_loss, gt=0, lt=1)
    take_profit: float | None = Field(default=_ENGINE.take_profit, gt=0)
    trailing_stop: float | None = Field(default=_ENGINE.trailing_stop, gt=0, lt=1)
    max_holding: StrictInt | None = Field(default=_ENGINE.max_holding, ge=1)

    def trading(self, costs: bool | None = None) -> BacktestConfig:
        """The engine's config; ``costs`` overrides ``include_transaction_costs``."""
        return trading_config(self.model_dump(include=set(TRADING_KEYS)), costs)


TRADING_KEYS = tuple(TradingSettings.model_fields)


def inherited_trading(upstream: dict[str, Any], phase: TradingSettings) -> BacktestConfig:
    """The trading settings of an upstream phase's effective config (a search's, whose trials a
    phase re-evaluates) with the keys ``phase``'s YAML set explicitly on top."""
    own = {k: getattr(phase, k) for k in phase.model_fields_set if k in TRADING_KEYS}
    return trading_config({**{k: v for k, v in upstream.items() if k in TRADING_KEYS}, **own})


def check_fixed_parameters(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """A fixed parameter set (``parameters:`` of a backtest or validation): scalar values only."""
    for key, value in (params or {}).items():
        if not is_scalar(value):
            raise ValueError(f"[{key}] a fixed parameter must be a number, string or boolean (got {value!r})")
    return params


def trading_config(settings: dict[str, Any], costs: bool | None = None) -> BacktestConfig:
    """The engine's ``BacktestConfig`` from trading settings as stored in an effective
    config (any phase's: missing keys take the defaults above)."""
    s = TradingSettings.model_validate({k: settings[k] for k in TRADING_KEYS if k in settings})
    on = s.include_transaction_costs if costs is None else costs
    return BacktestConfig(
        cost_bps=float(s.cost_bps) if on else 0.0,
        slippage_bps=float(s.slippage_bps) if on else 0.0,
        mode=s.mode, sizing=s.sizing, target_vol=float(s.target_vol), vol_lookback=int(s.vol_lookback),
        weights=s.weights, stop_loss=s.stop_loss, take_profit=s.take_profit,
        trailing_stop=s.trailing_stop, max_holding=s.max_holding,
    )


# ------------------------------------------------------------------ strategies
class StrategyEntry(StrictModel):
    """``{type: momentum, parameters: {...}, optimization_target: true}`` or just ``momentum``."""

    type: StrictStr
    optimization_target: StrictBool = True
    parameters: dict[StrictStr, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _name_only(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v


def known_strategy(name: str, field: str, env: ConfigEnv) -> Any:
    """The engine's StrategySpec for ``name``, or None after reporting the problem."""
    try:
        return strategy_registry.get_strategy(name)
    except KeyError:
        known = strategy_registry.strategy_names(include_aliases=True)
        env.problem(field, f"unknown strategy '{name}'{suggest(name.lower(), known)}; "
                           f"known: {', '.join(strategy_registry.strategy_names())}")
        return None


def _param_names(spec: Any) -> list[str]:
    return list(spec.params) + list(spec.param_aliases)


def check_strategy_params(specs: list[Any], names, field: str, env: ConfigEnv) -> None:
    """Each of ``names`` must be a parameter of at least one of the strategies ``specs``."""
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
            env.problem(f"{field}.{name}", msg)


def check_param_values(specs: list[Any], params: dict[str, Any], field: str, env: ConfigEnv,
                       n_bars: int | None = None) -> bool:
    """Every value of every parameter has the type and range its strategy declares (whole
    numbers for windows, finite numbers, ``bounds``); ``params``: name -> normalised
    dimension (``{"values": [...]}`` or ``{low, high, ...}``) or a scalar.  With ``n_bars``, a
    window whose every value is longer than the data is a problem too.  True when all hold."""
    ok = True
    for name, dim in params.items():
        if isinstance(dim, dict):
            values = list(dim["values"]) if "values" in dim else [dim.get("low"), dim.get("high")]
        else:
            values = [dim]
        for spec in (s for s in specs if s is not None):
            canon = spec.canonical_param(name)
            if canon is None:
                continue
            for i, v in enumerate(values):
                why = spec.check_value(canon, v)
                if why is not None:
                    which = f" (value #{i + 1} of {len(values)})" if len(values) > 1 else ""
                    env.problem(f"{field}.{name}", f"strategy '{spec.name}': parameter '{canon}' {why}{which}")
                    ok = False
                    break
            else:
                default = spec.params[canon]
                windowed = canon in spec.bounds and isinstance(default, int) and not isinstance(default, bool)
                if n_bars is not None and windowed and values and min(values) > n_bars:
                    env.problem(f"{field}.{name}", f"strategy '{spec.name}': every {canon} ({min(values)} and up) is "
                                                   f"longer than the data ({n_bars} bars): no bar would get a signal")
                    ok = False
                continue
            break
    return ok


#: search spaces up to this size are expanded at validation to find one valid combination
CONSTRAINT_CHECK_MAX = 2_000_000


def check_has_valid_combination(spec: Any, space: dict[str, Any], field: str, env: ConfigEnv, *,
                                method: str = "grid", n_trials: int | None = None, seed: int = 0,
                                strict: bool = True) -> None:
    """A search space in which every combination breaks the strategy's constraint (a momentum
    grid with every fast_period >= slow_period) fails at validation, not after the run
    started.  ``space``: the engine's form (``space_from_config``); the check does exactly what
    the run will do (``expand_grid`` / ``sample_params`` with the same seed), for spaces up to
    :data:`CONSTRAINT_CHECK_MAX` combinations or trials."""
    from admf_assets.engine.search import sample_params
    from admf_assets.engine.strategies import expand_grid

    if spec is None or spec.constraint is None:
        return
    try:
        if method == "grid":
            sizes = [len(v) if isinstance(v, list) else 1 for v in space.values()]
            if math.prod(sizes) > CONSTRAINT_CHECK_MAX:
                return
            n = math.prod(sizes)
            kept = len(expand_grid(spec, space, strict=strict))
            tried = "its only combination breaks it" if n == 1 else f"all {n:,} combinations break it"
        else:
            if n_trials is None or n_trials > CONSTRAINT_CHECK_MAX:
                return
            kept = len(sample_params(spec, space, n_trials, seed, strict)[0])
            tried = f"all {n_trials:,} trials drawn (seed {seed}) break it"
    except (ValueError, TypeError):
        return  # reported by the other checks
    if kept == 0:
        rule = spec.constraint_text or "its constraint"
        env.problem(field, f"no valid parameter combination for strategy '{spec.name}': it needs {rule}, and "
                           f"{tried}")


def data_shape(env: ConfigEnv, split: str) -> tuple[int, int] | None:
    """(bars, symbols) the phase will see, from the data section: weekdays of the date range
    (of its train or test part) and the number of symbols; None without a data section."""
    data = env.data
    if data is None or not getattr(data, "symbols", None):
        return None
    days = pd.bdate_range(data.start_date, data.end_date)
    if split in ("train", "test") and len(days):
        i = data.split.test_start_index(list(days))
        days = days[:i] if split == "train" else days[i:]
    return len(days), len(data.symbols)


def canonical_list(values: list[str], aliases: dict[str, str], available, what: str, field: str,
                   env: ConfigEnv) -> list[str]:
    """``values`` as canonical names (``aliases``: every accepted lower-case spelling -> its
    canonical name), duplicates dropped; an unknown one is a problem with a did-you-mean."""
    from admf_assets.suggest import closest

    out: list[str] = []
    for i, v in enumerate(values):
        canon = aliases.get(str(v).strip().lower())
        if canon is None:
            best = closest(v, aliases)
            hint = f" (did you mean '{aliases[best]}'?)" if best is not None else ""
            env.problem(f"{field}[{i}]", f"unknown {what} '{v}'{hint}; available: {', '.join(available)}")
        elif canon not in out:
            out.append(canon)
    return out


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_scalar(x: Any) -> bool:
    return isinstance(x, (str, int, float, bool))


def finite(x: Any) -> bool:
    return not is_number(x) or math.isfinite(x)


# ------------------------------------------------------------------ search spaces
#: a grid larger than this is almost certainly a mistake (use method: random)
MAX_GRID_SIZE = 1_000_000


def normalise_param(name: str, spec: Any, method: str, env: ConfigEnv, prefix: str) -> dict[str, Any] | None:
    """One search dimension -> ``{"values": [...]}`` or ``{"low", "high", "step", "log", "type"}``.

    grid: a list is the values; ``{low, high, step}`` is expanded (step 1 for integers).
    random: a two-number list ``[low, high]`` is a range (integers if both are integers),
    any other list is a set of choices; ``{values: [...]}`` forces choices.
    """
    field = f"{prefix}.{name}"
    if isinstance(spec, list):
        if not spec:
            env.problem(field, "empty list of values")
            return None
        if not all(is_scalar(x) for x in spec):
            env.problem(field, "values must be numbers, strings or booleans")
            return None
        if method == "random" and len(spec) == 2 and all(is_number(x) for x in spec):
            spec = {"low": spec[0], "high": spec[1]}
        else:
            return {"values": list(spec)}
    elif is_scalar(spec):
        return {"values": [spec]}
    if not isinstance(spec, dict):
        env.problem(field, f"expected a list of values or {{low, high[, step]}} (got {type(spec).__name__})")
        return None
    allowed = {"values", "low", "high", "step", "log"}
    extra = sorted(set(spec) - allowed)
    if extra:
        env.problem(field, f"unknown key '{extra[0]}'{suggest(extra[0], allowed)}; allowed: {', '.join(sorted(allowed))}")
        return None
    if "values" in spec:
        vals = spec["values"]
        if set(spec) != {"values"} or not isinstance(vals, list) or not vals or not all(is_scalar(x) for x in vals):
            env.problem(field, "`values` must be a non-empty list of numbers/strings and stand alone")
            return None
        return {"values": list(vals)}
    low, high, step = spec.get("low"), spec.get("high"), spec.get("step")
    log = spec.get("log", False)
    if not (is_number(low) and is_number(high)):
        env.problem(field, "a range needs numeric `low` and `high`")
        return None
    if low > high:
        env.problem(field, f"low {low} is greater than high {high}")
        return None
    if step is not None and (not is_number(step) or step <= 0):
        env.problem(field, f"step must be a positive number (got {step!r})")
        return None
    if not isinstance(log, bool):
        env.problem(field, f"log must be true or false (got {log!r})")
        return None
    if log and low <= 0:
        env.problem(field, "a log range needs low > 0")
        return None
    is_int = isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int))
    if method == "grid":
        if step is None and not is_int:
            env.problem(field, "a grid needs a finite set: give a list of values or a `step`")
            return None
        st = step if step is not None else 1
        n = int(math.floor((high - low) / st + 1e-9)) + 1
        if n > MAX_GRID_SIZE:
            env.problem(field, f"{n} values is too many for a grid")
            return None
        values = [low + i * st for i in range(n)]
        if not is_int:
            values = [round(x, 12) for x in values]
        return {"values": values}
    return {"low": low, "high": high, "step": step, "log": log, "type": "int" if is_int else "float"}


def space_from_config(parameters: dict | None) -> dict:
    """The normalised YAML form ({'values': [...]} or {low, high, step, log}) -> engine form."""
    out = {}
    for name, v in (parameters or {}).items():
        if isinstance(v, dict) and set(v) == {"values"}:
            out[name] = list(v["values"])
        elif isinstance(v, dict):
            out[name] = {k: x for k, x in v.items() if x is not None}
        else:
            out[name] = v
    return out


# ------------------------------------------------------------------ bars
def close_matrix(bars: pd.DataFrame, split: str | None = None) -> pd.DataFrame:
    """dates x symbols close prices; ``split`` 'train'/'test' restricts the rows, None keeps all."""
    if split in ("train", "test"):
        bars = bars[bars["split"] == split]
    close = bars.pivot(index="date", columns="symbol", values="close").sort_index()
    close.index = pd.DatetimeIndex(close.index, name="date")
    return close


def split_mask(bars: pd.DataFrame, dates: pd.DatetimeIndex, split: str) -> np.ndarray:
    """Bars whose return lies entirely inside the split: for 'test', dates after the first test
    date (the first test close is the starting equity); for 'train', up to the last train date."""
    test = pd.DatetimeIndex(bars.loc[bars["split"] == "test", "date"].unique())
    first_test = test.min() if len(test) else None
    if split == "test":
        if first_test is None:
            raise PhaseError("the data split has no test dates (field 'data.split')")
        return np.asarray(dates > first_test)
    if split == "train":
        return np.asarray(dates < first_test) if first_test is not None else np.ones(len(dates), bool)
    return np.ones(len(dates), bool)
