"""Indicator cache shared by every combination of a parameter grid.

``Indicators(close)`` wraps a (bars x symbols) close array. Each indicator is
computed once per distinct window (``sma(20)`` is computed the first time it is
asked for and reused afterwards, including across grid chunks), and the
``*_grid`` helpers gather the per-window arrays into a (bars x symbols x combos)
array for a vector of per-combination windows.

Internally arrays are stored symbol-major, (symbols x bars) and
(symbols x combos x bars): a combination's time series is contiguous, which keeps
the time-axis scans (latches, cumulative sums, lags) cache friendly. The public
methods return (bars x symbols [x combos]) *views* of that memory, so user code
written against the documented shapes works unchanged.

Every indicator at bar t uses closes up to and including t only.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd


def rolling_mean(a: np.ndarray, window: int) -> np.ndarray:
    """Rolling mean along the last axis, NaN until ``window`` valid values.

    Cumulative-sum formulation, bit-for-bit the same as vectorbt's
    ``rolling_mean_nb`` (and within ~1e-13 of a direct window sum).
    NaNs are skipped: the mean is NaN unless the window holds ``window`` valid values.
    """
    window = int(window)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    a = np.asarray(a, dtype=np.float64)
    nan = np.isnan(a)
    has_nan = bool(nan.any())
    cs = np.cumsum(np.where(nan, 0.0, a) if has_nan else a, axis=-1)
    out = np.empty_like(cs)
    n = a.shape[-1]
    if n == 0:
        return out
    w = min(window, n)
    out[..., : w - 1] = np.nan
    if window <= n:
        out[..., window - 1] = cs[..., window - 1] / window
        np.subtract(cs[..., window:], cs[..., :-window], out=out[..., window:])
        out[..., window:] /= window
    else:
        out[..., :] = np.nan
    if has_nan:
        nc = np.cumsum(nan, axis=-1)
        cnt = np.empty_like(nc)
        cnt[..., :window] = nc[..., : min(window, n)]
        if window < n:
            cnt[..., window:] = nc[..., window:] - nc[..., :-window]
        out[cnt > 0] = np.nan
    return out


def _rolling_pandas(a_sb: np.ndarray, window: int, how: str, shift: int = 0) -> np.ndarray:
    """Rolling statistic along the last axis of a (symbols x bars) array via pandas."""
    df = pd.DataFrame(a_sb.T)
    roll = df.rolling(int(window), min_periods=int(window))
    if how == "std":
        res = roll.std(ddof=1)
    elif how == "max":
        res = roll.max()
    elif how == "min":
        res = roll.min()
    elif how == "mean":
        res = roll.mean()
    else:  # pragma: no cover - internal misuse
        raise ValueError(how)
    if shift:
        res = res.shift(shift)
    return np.ascontiguousarray(res.to_numpy(dtype=np.float64).T)


class Indicators:
    """Per-window indicator cache over a (bars x symbols) close array."""

    def __init__(self, close):
        if isinstance(close, pd.DataFrame):
            close = close.to_numpy(dtype=np.float64)
        arr = np.asarray(close, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"close must be (bars x symbols), got shape {arr.shape}")
        self._close_sb = np.ascontiguousarray(arr.T)  # (symbols x bars)
        self._cache: dict[tuple, np.ndarray] = {}

    # ----------------------------------------------------------------- basics
    @property
    def n_bars(self) -> int:
        return self._close_sb.shape[1]

    @property
    def n_symbols(self) -> int:
        return self._close_sb.shape[0]

    @property
    def close(self) -> np.ndarray:
        """(bars x symbols) close prices (a read-only view)."""
        v = self._close_sb.T
        v.flags.writeable = False
        return v

    def cached(self, key: tuple, fn: Callable[[], np.ndarray]) -> np.ndarray:
        """Memoize a user indicator: ``fn()`` must return a (symbols x bars) array."""
        if key not in self._cache:
            self._cache[key] = np.ascontiguousarray(fn(), dtype=np.float64)
        return self._cache[key]

    # ---------------------------------------- per-window arrays, (symbols x bars)
    def _sma_sb(self, window: int) -> np.ndarray:
        return self.cached(("sma", int(window)), lambda: self._fast_sma(int(window)))

    def _fast_sma(self, window: int) -> np.ndarray:
        """rolling_mean() reusing one cumulative sum for every window (identical values)."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if "cumsum" not in self.__dict__:
            self.__dict__["cumsum"] = None if np.isnan(self._close_sb).any() else np.cumsum(self._close_sb, axis=1)
        cs = self.__dict__["cumsum"]
        if cs is None:  # gaps: the general NaN-aware version
            return rolling_mean(self._close_sb, window)
        n = cs.shape[1]
        out = np.full(cs.shape, np.nan)
        if window <= n:
            out[:, window - 1] = cs[:, window - 1] / window
            np.subtract(cs[:, window:], cs[:, :-window], out=out[:, window:])
            out[:, window:] /= window
        return out

    def _std_sb(self, window: int) -> np.ndarray:
        return self.cached(("std", int(window)), lambda: _rolling_pandas(self._close_sb, int(window), "std"))

    def _zscore_sb(self, window: int) -> np.ndarray:
        def make():
            mean = _rolling_pandas(self._close_sb, int(window), "mean")
            std = self._std_sb(window)
            with np.errstate(invalid="ignore", divide="ignore"):
                z = (self._close_sb - mean) / std
            z[~np.isfinite(z)] = np.nan  # zero dispersion -> no signal
            return z

        return self.cached(("zscore", int(window)), make)

    def _prior_max_sb(self, window: int) -> np.ndarray:
        """Max of the ``window`` bars *before* t (Donchian upper band of previous bars)."""
        return self.cached(("prior_max", int(window)), lambda: _rolling_pandas(self._close_sb, int(window), "max", 1))

    def _prior_min_sb(self, window: int) -> np.ndarray:
        return self.cached(("prior_min", int(window)), lambda: _rolling_pandas(self._close_sb, int(window), "min", 1))

    # ------------------------------------------------- public (bars x symbols)
    def sma(self, window: int) -> np.ndarray:
        return self._sma_sb(window).T

    def rolling_std(self, window: int) -> np.ndarray:
        return self._std_sb(window).T

    def zscore(self, window: int) -> np.ndarray:
        return self._zscore_sb(window).T

    def prior_max(self, window: int) -> np.ndarray:
        return self._prior_max_sb(window).T

    def prior_min(self, window: int) -> np.ndarray:
        return self._prior_min_sb(window).T

    # ------------------------------- grids: (bars x symbols x combos) views
    def grid(self, name: str, windows) -> np.ndarray:
        """Gather indicator ``name`` for per-combination ``windows`` -> (bars x symbols x combos).

        Each distinct window is computed once; the result is a view of a
        (symbols x combos x bars) contiguous array.
        """
        return self._grid_scb(name, windows).transpose(2, 0, 1)

    def _grid_scb(self, name: str, windows) -> np.ndarray:
        getter = {
            "sma": self._sma_sb,
            "rolling_std": self._std_sb,
            "zscore": self._zscore_sb,
            "prior_max": self._prior_max_sb,
            "prior_min": self._prior_min_sb,
        }.get(name)
        if getter is None:
            raise KeyError(f"unknown indicator {name!r}")
        windows = np.asarray(windows).astype(np.int64).reshape(-1)
        arrays = {w: getter(w) for w in map(int, np.unique(windows))}  # each distinct window once
        return np.stack([arrays[w] for w in windows.tolist()], axis=1)  # (S, C, T), contiguous, one copy


def latch(set_events: np.ndarray, reset_events: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stateful enter/exit without a Python loop: True from a set event until a reset event.

    State at t is True iff the last set event at or before t is more recent than the
    last reset event at or before t (a reset on the same bar wins). Starts False.
    """
    set_events = np.asarray(set_events, dtype=bool)
    reset_events = np.asarray(reset_events, dtype=bool)
    n = set_events.shape[axis]
    dtype = np.int16 if n < 32000 else np.int32
    shape = [1] * set_events.ndim
    shape[axis] = n
    idx = np.arange(n, dtype=dtype).reshape(shape)
    last_set = np.where(set_events, idx, dtype(-1))
    np.maximum.accumulate(last_set, axis=axis, out=last_set)
    last_reset = np.where(reset_events, idx, dtype(-1))
    np.maximum.accumulate(last_reset, axis=axis, out=last_reset)
    return last_set > last_reset


__all__ = ["Indicators", "latch", "rolling_mean"]
