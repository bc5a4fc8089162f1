"""signal_capture (signal_generation): the positions of every parameter combination over the whole
data range, stored once in the engine's compact capture format (int8 for positions in {-1, 0, 1})
so later phases (ensembles, validation) replay them instead of recomputing indicators.

    - name: signal_capture
      type: signal_capture
      inputs: [parameter_optimization.top_10_parameter_sets]   # parameter sets to capture
    # or a grid of its own:
    - name: signals
      type: signal_capture
      config:
        strategies:
          - {type: momentum, parameters: {fast_period: [5, 10, 20], slow_period: [50, 100]}}

Outputs: ``compressed_signals`` (dates x captured columns ``<strategy_id>|<symbol>``, raw
positions decided at each close, before exit rules, sizing and the one-bar lag) and
``signal_metadata`` (one row per column: strategy, parameters, dtype, bytes).  Replaying a
captured member with the engine's ``replay`` gives exactly the returns of ``run_grid``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, StrictBool, StrictStr, model_validator

from admf_assets.engine import charts, estimate
from admf_assets.engine.capture import capture_signals, capture_to_frame, concat_captured
from admf_assets.engine.paramsets import PARAMS_COLUMN, parameter_sets
from admf_assets.engine.strategies import MODES, expand_grid
from admf_assets.phases.common import (BARS, MAX_GRID_SIZE, DataSplitName, StrategyEntry, check_has_valid_combination,
                                       check_param_values, check_strategy_params, close_matrix, data_shape,
                                       known_strategy, normalise_param, space_from_config)
from admf_assets.phases.kind import ConfigEnv, Consumes, Output, PhaseContext, PhaseError, PhaseKind, PhaseResult, \
    PhaseView, ResourceDemand, StrictModel

#: the parameter-set tables it can capture, in the order they are merged (a per-regime search's
#: ``regime_optimized_strategies``: the best set of each regime and strategy)
SET_OUTPUTS = ("top_parameter_sets", "optimization_history", "best_parameters", "regime_optimized_strategies")


class Config(StrictModel):
    __key_aliases__ = ("strategy", "parameters", "signal_compression")

    strategies: list[StrategyEntry] | None = None
    mode: Literal[MODES] | None = None  # type: ignore[valid-type]
    data_split: DataSplitName = "all"
    compression: StrictBool = True
    capture_all_signals: StrictBool = True
    include_regime_context: StrictBool = False
    capture_context: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _shortcuts(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        v = dict(v)
        if "signal_compression" in v:
            if "compression" in v:
                raise ValueError("[signal_compression] give compression or signal_compression, not both")
            v["compression"] = v.pop("signal_compression")
        if "strategy" in v or "parameters" in v:
            if "strategies" in v:
                raise ValueError("[strategy] give `strategy` + `parameters` or `strategies`, not both")
            v["strategies"] = [{"type": v.pop("strategy", "momentum"), "parameters": v.pop("parameters", {})}]
        return v


class SignalCapture(PhaseKind):
    name = "signal_capture"
    aliases = ("signal_generation", "signal_logging")
    description = ("Capture the positions of every parameter combination over the data range in a compact "
                   "format, for replay by later phases.")
    Config = Config
    example_config = {"strategies": [{"type": "momentum",
                                      "parameters": {"fast_period": [5, 10], "slow_period": [20, 40]}}]}
    outputs = (
        Output("compressed_signals", "Raw positions (dates x captured strategy|symbol columns), compact dtype",
               aliases=("signals", "captured_signals", "signal_logs", "raw_signals"),
               columns=("date",), storage="array", time_series=True),
        Output("signal_metadata", "One row per captured column: strategy, parameters, symbol, dtype, bytes",
               aliases=("signal_index", "capture_metadata"),
               columns=("column", "strategy_id", "strategy", "combo", "symbol", "mode", PARAMS_COLUMN,
                        "dtype", "bytes")),
    )
    unproduced_outputs = {"regime_signal_distribution": "captured positions carry no regime context; an "
                                                        "ensemble_optimization with regime_conditional: true joins "
                                                        "the regime labels at replay"}
    consumes = (BARS, Consumes(SET_OUTPUTS, required=True, unless_config="strategies"))
    metrics = ("n_strategies", "n_columns", "n_bars", "bytes", "compression_ratio", "capture_seconds")
    #: chunks sized from the limit (one thread: capturing is bound by writing the positions)
    resource_keys = ("memory_limit_gb",)

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        if not cfg.capture_all_signals:
            env.warn("capture_all_signals", "ignored: every combination is captured (capture fewer by "
                                            "capturing fewer parameter sets)")
        for key in ("include_regime_context", "capture_context"):
            if getattr(cfg, key):
                env.warn(key, "ignored: captured positions carry no context; join regime labels at replay")
        entries = []
        for i, s in enumerate(cfg.strategies or []):
            spec = known_strategy(s.type, f"strategies[{i}].type", env)
            check_strategy_params([spec], s.parameters, f"strategies[{i}].parameters", env)
            params, size = {}, 1
            for name, value in s.parameters.items():
                norm = normalise_param(name, value, "grid", env, f"strategies[{i}].parameters")
                if norm is not None:
                    params[name] = norm
                    size *= len(norm["values"])
            if size > MAX_GRID_SIZE:
                env.problem(f"strategies[{i}].parameters", f"{size} combinations is too many to capture")
            shape = data_shape(env, cfg.data_split)
            if spec is not None and check_param_values([spec], params, f"strategies[{i}].parameters", env,
                                                       shape[0] if shape else None):
                check_has_valid_combination(spec, space_from_config(params), f"strategies[{i}].parameters", env)
            entries.append(s.model_copy(update={"parameters": params}))
        return cfg.model_copy(update={"strategies": entries or None})

    def demand(self, cfg: Config, env: ConfigEnv) -> ResourceDemand | None:
        """Grids of its own only (sets from an upstream search are known at run time)."""
        shape = data_shape(env, cfg.data_split)
        if shape is None or not cfg.strategies:
            return None
        n_bars, n_symbols = shape
        combos = sum(math.prod(len(d["values"]) for d in s.parameters.values()) for s in cfg.strategies)
        windows = max(sum(len(d["values"]) for d in s.parameters.values()
                          if all(isinstance(v, int) and not isinstance(v, bool) for v in d["values"]))
                      for s in cfg.strategies)
        est = estimate.search_estimate(combos, n_bars, n_symbols, 1, distinct_windows=windows)
        captured = float(combos) * n_symbols * n_bars * 3  # int8 positions, joined, then the stored frame
        est = dataclasses.replace(est, fixed_bytes=est.fixed_bytes + captured)
        return ResourceDemand(est, f"capturing {combos:,} combinations x {n_bars:,} bars x {n_symbols:,} symbol(s)",
                              "strategies", "capture fewer parameter sets (smaller grids), fewer symbols or a "
                                            "shorter date range")

    def run(self, ctx: PhaseContext) -> PhaseResult:
        cfg: Config = ctx.config
        bars = ctx.need("bars")
        close = close_matrix(bars, None if cfg.data_split == "all" else cfg.data_split)
        groups, mode = self._sets(ctx)
        t0 = time.perf_counter()
        try:
            caps = [capture_signals(close, strategy, params, mode=mode, id_prefix=strategy,
                                    chunk_size=_chunk(ctx, close, groups, params))
                    for strategy, params in groups.items()]
        except ValueError as exc:
            raise PhaseError(str(exc)) from None
        cap = concat_captured(caps) if len(caps) > 1 else caps[0]
        seconds = time.perf_counter() - t0
        positions = cap.positions if cfg.compression else cap.positions.astype(np.float64)
        wide, table = capture_to_frame(type(cap)(cap.index, cap.symbols, positions, cap.columns))
        wide = wide.reset_index(names="date")
        table["dtype"] = str(positions.dtype)
        table["bytes"] = int(positions.shape[0] * positions.dtype.itemsize)
        n_bars, n_cols = positions.shape
        nbytes = int(positions.nbytes)
        dense = n_bars * n_cols * 8
        ratio = dense / nbytes if nbytes else float("nan")
        n_strategies = int(table["strategy_id"].nunique())
        common = {"strategies": n_strategies, "symbols": ", ".join(map(str, cap.symbols)),
                  "period": f"{close.index[0].date()}..{close.index[-1].date()}", "mode": mode}
        meta = {
            "compressed_signals": {**common, "shape": f"{n_bars} rows x {n_cols} columns", "dtype": str(positions.dtype),
                                   "bytes_in_memory": nbytes, "float64_bytes": dense,
                                   "compression_ratio_vs_float64": round(ratio, 3),
                                   "capture_seconds": round(seconds, 4)},
            "signal_metadata": {**common, "rows": len(table),
                                "preview": table.drop(columns=[PARAMS_COLUMN]).drop_duplicates("strategy_id").head(10)},
        }
        metrics = {"n_strategies": n_strategies, "n_columns": n_cols, "n_bars": n_bars, "bytes": nbytes,
                   "compression_ratio": ratio, "capture_seconds": seconds}
        return PhaseResult(outputs={"compressed_signals": wide, "signal_metadata": table}, metadata=meta,
                           metrics=metrics)

    def _sets(self, ctx: PhaseContext) -> tuple[dict[str, pd.DataFrame], str]:
        """Parameter sets to capture, grouped by strategy, and the position mode."""
        cfg: Config = ctx.config
        rows: list[tuple[str, dict]] = []
        mode = cfg.mode
        if cfg.strategies:
            for s in cfg.strategies:
                grid = expand_grid(s.type, space_from_config(s.parameters))
                rows += [(s.type, r) for r in grid.to_dict("records")]
        else:
            for canonical in SET_OUTPUTS:
                table = ctx.inputs.get(canonical)
                if table is None:
                    continue
                try:
                    rows += parameter_sets(table)
                except ValueError as exc:
                    raise PhaseError(f"input {canonical}: {exc}") from None
                mode = mode or (ctx.upstream_config(canonical) or {}).get("mode")
        if not rows:
            raise PhaseError("no parameter sets to capture (the inputs are empty)")
        groups: dict[str, list[dict]] = {}
        seen: set[tuple[str, str]] = set()
        for strategy, params in rows:
            key = (strategy, repr(sorted(params.items())))
            if key not in seen:
                seen.add(key)
                groups.setdefault(strategy, []).append(params)
        return {s: pd.DataFrame(p) for s, p in groups.items()}, mode or "long_only"

    def sections(self, view: PhaseView) -> list[dict]:
        table = view.outputs.get("signal_metadata")
        wide = view.outputs.get("compressed_signals")
        if table is None or not len(table):
            return []
        per = table.drop_duplicates("strategy_id")[["strategy_id", "strategy", PARAMS_COLUMN, "mode", "dtype"]]
        out = [{"title": f"{view.phase}: captured signals",
                "text": f"{len(per)} strategies x {table['symbol'].nunique()} symbol(s) captured as "
                        f"{table['dtype'].iloc[0]} positions ({int(table['bytes'].sum()):,} bytes).",
                "table": per, "max_rows": 20, "detail": True}]
        if wide is not None and len(wide):
            cols = [c for c in wide.columns if c != "date"]
            exposure = pd.Series(np.abs(wide[cols].to_numpy(dtype=np.float64)).mean(axis=1),
                                 index=pd.DatetimeIndex(wide["date"]))
            out.append({"title": f"{view.phase}: mean exposure",
                        "text": "Mean absolute position over every captured strategy and symbol.",
                        "chart_svg": charts.line_chart_svg(exposure, "Mean |position|")})
        return out


def _chunk(ctx: PhaseContext, close: pd.DataFrame, groups: dict[str, pd.DataFrame], params: pd.DataFrame) -> int | None:
    """Combinations per chunk under the phase's memory limit: the captured positions of every
    group (int8, plus one copy while they are joined) are the fixed part."""
    if ctx.memory_limit_bytes is None:
        return None
    T, S = close.shape
    captured = sum(len(g) for g in groups.values()) * S * T * 2
    try:
        return estimate.chunk_combinations(ctx.memory_limit_bytes - captured, len(params), T, S,
                                           estimate.distinct_windows(params))
    except ValueError as exc:
        raise PhaseError(f"field 'memory_limit_gb': {exc} (plus {estimate.format_bytes(captured)} of captured "
                         "positions)") from None


KIND = SignalCapture()

__all__ = ["KIND", "Config", "SignalCapture", "SET_OUTPUTS"]
