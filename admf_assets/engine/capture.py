"""Signal capture and replay.

``capture_signals`` runs a strategy over a parameter grid once and stores every
combination's raw positions (decided at each close, before exit rules, sizing and
the one-bar lag) in the smallest exact dtype -- int8 for positions in {-1, 0, 1},
else float16 / float32 when exact, else float64 -- together with a table mapping
each stored column to its strategy, parameters and symbol.

``replay`` evaluates returns, costs, exit rules, sizing and weighted ensembles
from the captured positions and the asset returns only: no indicator is
recomputed. It uses the very same backtest core as ``run_grid``, so replaying a
capture with the same config gives bit-for-bit the returns of ``run_grid``.

Layout: ``positions`` is (bars x columns) with column ``j = strategy_row * n_symbols
+ symbol_index`` (strategy-major, symbols in ``symbols`` order); its memory is
column-major so each column is contiguous (which is also what pandas and Parquet use).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .backtest import (
    BacktestConfig,
    _backtest_core,
    _chunk_size,
    _close_frame,
    _vol_scale,
    compact_positions,
    resolve_weights,
)
from .indicators import Indicators
from .strategies import MODES, get_strategy, normalize_params, raw_positions
from .util import py_scalar

TABLE_BASE_COLUMNS = ("column", "strategy_id", "strategy", "combo", "symbol", "mode", "params")


@dataclass
class CapturedSignals:
    index: pd.DatetimeIndex
    symbols: list
    positions: np.ndarray  # (bars x columns), compact dtype, column-major memory
    columns: pd.DataFrame  # one row per column of ``positions``

    @property
    def n_bars(self) -> int:
        return self.positions.shape[0]

    @property
    def strategy_ids(self) -> list[str]:
        """Captured strategies (one per strategy x parameter combination), in order."""
        sid = self.columns["strategy_id"].to_numpy()
        S = len(self.symbols)
        if S and len(sid) == self.positions.shape[1] and len(sid) % S == 0:
            # strategy-major layout: every S-th row starts a new strategy id
            return sid[::S].tolist()
        return list(pd.unique(self.columns["strategy_id"]))

    @property
    def strategy_table(self) -> pd.DataFrame:
        """One row per strategy id: strategy, combo, mode and parameter columns."""
        t = self.columns.drop(columns=["column", "symbol"]).drop_duplicates("strategy_id")
        return t.set_index("strategy_id")

    def positions_scb(self, strategy_ids: Sequence[str] | None = None) -> np.ndarray:
        """(symbols x strategies x bars) view (or copy when selecting) of the positions."""
        S = len(self.symbols)
        cm = self.positions.T  # (columns x bars), contiguous rows when column-major
        K = cm.shape[0] // S
        arr = cm.reshape(K, S, cm.shape[1])
        if strategy_ids is not None:
            order = {sid: i for i, sid in enumerate(self.strategy_ids)}
            missing = [s for s in strategy_ids if s not in order]
            if missing:
                raise KeyError(f"strategy ids not captured: {missing[:5]}")
            arr = arr[[order[s] for s in strategy_ids]]
        return arr.transpose(1, 0, 2)

    def select(self, strategy_ids: Sequence[str]) -> "CapturedSignals":
        """A capture restricted to some strategy ids (in the given order)."""
        scb = self.positions_scb(strategy_ids)
        S, K, T = scb.shape
        pos = np.ascontiguousarray(scb.transpose(1, 0, 2)).reshape(K * S, T).T
        keep = self.columns.set_index("strategy_id").loc[list(strategy_ids)].reset_index()
        keep = keep[list(self.columns.columns)].reset_index(drop=True)
        return CapturedSignals(self.index, list(self.symbols), pos, keep)


def _params_json(row: Mapping[str, Any]) -> str:
    return json.dumps({k: py_scalar(v) for k, v in row.items()}, sort_keys=True)


def capture_signals(close, strategy: str, params, mode: str = "long_only", chunk_size: int | None = None,
                    id_prefix: str | None = None) -> CapturedSignals:
    """Run ``strategy`` for every row of ``params`` on ``close`` (dates x symbols) and
    keep the raw positions compactly (see the module docstring)."""
    close = _close_frame(close)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    spec = get_strategy(strategy)
    p = normalize_params(spec, params)
    values = close.to_numpy(dtype=np.float64)
    ind = Indicators(values)
    S, T, C = values.shape[1], values.shape[0], len(p)
    step = _chunk_size(S, T, chunk_size)
    parts = []
    for start in range(0, C, step):
        pc = p.iloc[start : start + step].reset_index(drop=True)
        raw = raw_positions(spec, None, pc, mode, ind)  # (T, S, c)
        # -> (c, S, T) rows = columns of the capture, contiguous per column
        parts.append(np.ascontiguousarray(raw.transpose(2, 1, 0)).reshape(-1, T))
    cm = np.concatenate(parts, axis=0) if parts else np.zeros((0, T), dtype=np.int8)
    cm = compact_positions(cm)
    prefix = id_prefix or spec.name
    width = max(4, len(str(max(C - 1, 0))))
    sids = [f"{prefix}#{i:0{width}d}" for i in range(C)]
    symbols = [str(s) for s in close.columns]
    table = pd.DataFrame({
        "column": [f"{sid}|{sym}" for sid in sids for sym in symbols],
        "strategy_id": np.repeat(sids, S),
        "strategy": spec.name,
        "combo": np.repeat(np.arange(C), S),
        "symbol": np.tile(np.asarray(symbols, dtype=object), C),
        "mode": mode,
        "params": np.repeat([_params_json(r) for r in p.to_dict("records")], S),
    })
    prep = p.loc[p.index.repeat(S)].reset_index(drop=True)
    table = pd.concat([table, prep], axis=1)
    return CapturedSignals(index=close.index, symbols=symbols, positions=cm.T, columns=table)


def concat_captured(captures: Sequence[CapturedSignals]) -> CapturedSignals:
    """Stack captures of several strategies made on the same dates and symbols."""
    captures = list(captures)
    if not captures:
        raise ValueError("nothing to concatenate")
    first = captures[0]
    for c in captures[1:]:
        if not c.index.equals(first.index) or list(c.symbols) != list(first.symbols):
            raise ValueError("captures must share the same dates and symbols")
    table = pd.concat([c.columns for c in captures], ignore_index=True)
    if table["column"].duplicated().any():
        raise ValueError("duplicate strategy ids; capture with distinct id_prefix values")
    dt = np.result_type(*[c.positions.dtype for c in captures])
    cm = np.concatenate([c.positions.T.astype(dt, copy=False) for c in captures], axis=0)
    return CapturedSignals(first.index, list(first.symbols), cm.T, table)


def capture_to_frame(captured: CapturedSignals) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(wide DataFrame dates x column names, column table) -- both Parquet friendly."""
    wide = pd.DataFrame(captured.positions, index=captured.index, columns=list(captured.columns["column"]), copy=False)
    return wide, captured.columns.copy()


def from_frame(wide: pd.DataFrame, columns: pd.DataFrame) -> CapturedSignals:
    """Inverse of ``capture_to_frame`` (the dates may also be a ``date`` column, as stored)."""
    if "date" in wide.columns and "date" not in set(columns["column"]):
        wide = wide.set_index("date")
    missing = [c for c in TABLE_BASE_COLUMNS if c not in columns.columns]
    if missing:
        raise ValueError(f"column table lacks {missing}")
    names = list(columns["column"])
    absent = [c for c in names if c not in wide.columns]
    if absent:
        raise ValueError(f"wide frame lacks captured columns, e.g. {absent[:3]}")
    syms = list(pd.unique(columns["symbol"]))
    K = len(pd.unique(columns["strategy_id"]))
    if K * len(syms) != len(columns):
        raise ValueError("column table is not strategy x symbol complete")
    expected = list(np.tile(np.asarray(syms, dtype=object), K))
    if list(columns["symbol"]) != expected:
        raise ValueError("column table must be ordered strategy-major with the same symbol order")
    cm = np.ascontiguousarray(wide[names].to_numpy().T)
    cm = compact_positions(cm)
    index = wide.index
    if not isinstance(index, pd.DatetimeIndex):
        try:
            index = pd.DatetimeIndex(index)
        except (TypeError, ValueError):
            pass
    return CapturedSignals(index, syms, cm.T, columns.reset_index(drop=True))


captured_from_frame = from_frame


# ---------------------------------------------------------------------- replay
def _asset_returns_for(captured: CapturedSignals, close_or_returns, kind: str) -> np.ndarray:
    """(symbols x bars) asset returns aligned on the capture's dates and symbols."""
    if isinstance(close_or_returns, pd.Series):
        close_or_returns = close_or_returns.to_frame(captured.symbols[0] if len(captured.symbols) == 1 else None)
    if not isinstance(close_or_returns, pd.DataFrame):
        raise TypeError("close_or_returns must be a DataFrame (dates x symbols)")
    df = close_or_returns
    cols = [str(c) for c in df.columns]
    missing = [s for s in captured.symbols if s not in cols]
    if missing:
        raise ValueError(f"close_or_returns lacks captured symbols {missing}")
    if cols != list(captured.symbols):
        df = df.iloc[:, [cols.index(s) for s in captured.symbols]]
    if not (df.index is captured.index or df.index.equals(captured.index)):
        lacking = captured.index.difference(df.index)
        if len(lacking):
            raise ValueError(f"close_or_returns lacks {len(lacking)} captured dates, e.g. {lacking[:3].tolist()}")
        df = df.loc[captured.index]
    vals = np.ascontiguousarray(df.to_numpy(dtype=np.float64).T)  # (symbols x bars)
    if kind == "auto":
        finite = np.isfinite(vals)
        kind = "close" if finite.any() and not np.any((vals <= 0) & finite) else "returns"
    if kind == "close":
        ret = np.zeros_like(vals)
        if vals.shape[1] > 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                np.divide(vals[:, 1:], vals[:, :-1], out=ret[:, 1:])
            ret[:, 1:] -= 1.0
        bad = ~np.isfinite(ret)
        if bad.any():
            ret[bad] = 0.0
        return ret  # == asset_returns_from_close(vals.T).T
    if kind == "returns":
        return np.where(np.isfinite(vals), vals, 0.0)
    raise ValueError(f"kind must be 'auto', 'close' or 'returns', got {kind!r}")


def _ensemble_weights(weights, sids: list[str]) -> tuple[np.ndarray, list]:
    """(ensembles x strategies) weight matrix and ensemble names."""
    if isinstance(weights, pd.DataFrame):
        known = set(sids)
        unknown = [c for c in weights.columns if c not in known]
        if unknown:
            raise ValueError(f"weights name unknown strategy ids {unknown[:5]}")
        W = weights.reindex(columns=sids).fillna(0.0).to_numpy(dtype=np.float64)
        names = [f"ensemble_{i}" if isinstance(i, (int, np.integer)) else str(i) for i in weights.index]
        return W, names
    if isinstance(weights, (Mapping, pd.Series)):
        wmap = dict(weights.items())
        known = set(sids)
        unknown = [k for k in wmap if k not in known]
        if unknown:
            raise ValueError(f"weights name unknown strategy ids {unknown[:5]}")
        W = np.array([[float(wmap.get(s, 0.0)) for s in sids]])
        return W, ["ensemble"]
    W = np.asarray(weights, dtype=np.float64)
    if W.ndim == 1:
        W = W[None, :]
    if W.shape[1] != len(sids):
        raise ValueError(f"weights have {W.shape[1]} entries for {len(sids)} captured strategies")
    names = ["ensemble"] if W.shape[0] == 1 else [f"ensemble_{i}" for i in range(W.shape[0])]
    return W, names


def replay(captured: CapturedSignals, close_or_returns, config: BacktestConfig = BacktestConfig(), weights=None, *,
           kind: str = "auto", include_strategies: bool | None = None, chunk_size: int | None = None) -> pd.DataFrame:
    """Portfolio returns from captured positions, without recomputing any indicator.

    close_or_returns: DataFrame (dates x symbols) of closes (``kind='close'``) or of
    simple returns (``kind='returns'``); 'auto' treats an all-positive frame as
    closes. config: costs, sizing, exit rules, symbol weights (the strategy mode was
    fixed at capture time).

    Returns a DataFrame (dates x columns): one column per captured strategy id
    (symbols combined with ``config.weights``) and, when ``weights`` is given, the
    weighted ensemble(s): ``weights`` maps strategy ids to weights (dict/Series ->
    one column "ensemble"), or is a DataFrame (ensembles x strategy ids) for many
    ensembles at once. An ensemble nets the strategies' positions per symbol
    (``sum_k w_k pos_k``) before costs, so offsetting trades cost nothing.
    By default strategy columns are included only when no weights are given.
    """
    ret_sb = _asset_returns_for(captured, close_or_returns, kind)
    S, T = ret_sb.shape
    w_sym = resolve_weights(captured.symbols, S, config.weights)
    vol_scale = _vol_scale(ret_sb, config) if config.sizing == "vol_target" else None
    pos = captured.positions_scb()  # (S, K, T)
    sids = captured.strategy_ids
    K = len(sids)
    if include_strategies is None:
        include_strategies = weights is None
    blocks, names = [], []
    step = _chunk_size(S, T, chunk_size)
    if include_strategies:
        for start in range(0, K, step):
            stop = min(K, start + step)
            rets, _ = _backtest_core(pos[:, start:stop], ret_sb, config, w_sym, True, slice(start, stop), vol_scale)
            blocks.append(rets)
        names += sids
    if weights is not None:
        W, enames = _ensemble_weights(weights, sids)
        E = W.shape[0]
        ens_cfg = config
        if config.has_exit_rules and any(np.ndim(getattr(config, k)) > 0 for k in
                                         ("stop_loss", "take_profit", "trailing_stop", "max_holding")):
            raise ValueError("per-strategy exit-rule arrays cannot be applied to ensembles; use scalars")
        for start in range(0, E, step):
            stop = min(E, start + step)
            Wc = W[start:stop]
            ens = np.empty((S, stop - start, T), dtype=np.float64)
            for s in range(S):  # symbols: few; each is one matrix product over strategies
                np.matmul(Wc, pos[s].astype(np.float64), out=ens[s])
            rets, _ = _backtest_core(ens, ret_sb, ens_cfg, w_sym, True, None, vol_scale)
            blocks.append(rets)
        names += enames
    data = np.concatenate(blocks, axis=0) if blocks else np.zeros((0, T))
    return pd.DataFrame(data.T, index=captured.index, columns=names, copy=False)


def ensemble_positions(captured: CapturedSignals, weights) -> np.ndarray:
    """Net ensemble positions (bars x symbols x ensembles) for the given weights."""
    pos = captured.positions_scb()
    W, _ = _ensemble_weights(weights, captured.strategy_ids)
    S, K, T = pos.shape
    out = np.empty((S, W.shape[0], T))
    for s in range(S):
        np.matmul(W, pos[s].astype(np.float64), out=out[s])
    return out.transpose(2, 0, 1)


__all__ = [
    "CapturedSignals",
    "capture_signals",
    "capture_to_frame",
    "captured_from_frame",
    "concat_captured",
    "ensemble_positions",
    "from_frame",
    "replay",
]
