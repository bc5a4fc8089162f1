"""Vectorized backtest of whole parameter grids.

Timing and accounting conventions (one place, used by run_grid, replay and search):

* A position is decided at the close of bar t (with data up to t) and earns the
  asset return from t to t+1: ``gross[t] = pos[t-1] * ret[t]``, ``ret[t] =
  close[t] / close[t-1] - 1``; bar 0 earns nothing. Returns are indexed by the bar
  at whose close they are realized, so the first portfolio return is 0 (minus a
  cost if a position is opened at the first close).
* Each symbol is a sleeve whose position is a fraction of the sleeve's equity,
  held constant from bar to bar (the standard vectorized "position x return"
  model; for positions in {0, 1} this is exactly a buy-all / sell-all account).
* Costs: ``rate = (cost_bps + slippage_bps) / 1e4`` of the traded notional, traded
  at the close of the bar where the position changes, paid out of the sleeve's
  equity. With ``a`` the old and ``w`` the new position the sleeve keeps the factor
  ``1 - rate*|w-a| / (1 + rate*sign(w-a)*w)`` of its equity, i.e. the cost is
  ``rate*|w - a|`` of post-trade equity (to first order ``rate*|change in position|``).
  This is exactly how vectorbt charges ``fees``, so the two engines agree to
  floating-point precision with costs too.
* Sizing ``vol_target`` scales the strategy's position by
  ``min(target_vol / realized_vol, max_leverage)`` where realized_vol is the
  annualized std (ddof=1) of the symbol's last ``vol_lookback`` returns up to and
  including bar t (flat until that estimate exists). ``position_size`` then scales
  every position by a constant fraction (1 = the whole sleeve). Both, like the exit
  rules, may be one value per combination (a search over trading settings).
* Path-dependent exits (stop_loss, take_profit, trailing_stop, max_holding) are
  evaluated at each close on the strategy's direction before sizing; after such an
  exit the sleeve stays flat until the strategy's signal changes. They are a loop
  over time vectorized over symbols x combinations.
* Symbols are combined with fixed weights (equal by default, or ``weights``):
  ``portfolio[t] = sum_s weight_s * sleeve_s[t]`` (rebalanced every bar).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .indicators import Indicators
from .metrics import (METRIC_COLUMNS, POSITION_METRICS, _check_which, _metrics_of_block_rows,
                      _position_stats_scb, positions_bsc)
from .strategies import MODES, get_strategy, n_rows, normalize_params, raw_positions

SIZINGS = ("fixed", "vol_target")
#: the cost model a phase charges when it includes transaction costs (bps of traded notional)
DEFAULT_COST_BPS = 5.0
DEFAULT_SLIPPAGE_BPS = 2.0

# Chunking of the grid: at most this many (symbols x combos x bars) elements per chunk
# (the strategy step's float64 temporaries: 32 MB each) and this many (combos x bars)
# elements (the backtest/metrics temporaries: 1 MB each). Small, reused temporaries
# measured faster than big ones (fewer page faults) and bound the peak memory.
DEFAULT_CHUNK_ELEMENTS = 4_000_000
DEFAULT_CHUNK_ROW_ELEMENTS = 125_000  # (combos x bars) per chunk: 1 MB float64 temporaries


@dataclass
class BacktestConfig:
    cost_bps: float = 0.0
    slippage_bps: float = 0.0
    mode: str = "long_only"
    sizing: str = "fixed"
    target_vol: float = 0.10
    vol_lookback: int = 20
    weights: Any = None  # dict symbol -> weight (missing symbols: 0), or a sequence; None = equal
    periods_per_year: int = 252
    stop_loss: Any = None  # fraction, e.g. 0.05; scalar or one value per combination
    take_profit: Any = None
    trailing_stop: Any = None
    max_holding: Any = None  # bars
    max_leverage: float = 1.0  # cap of the vol-target scale
    position_size: Any = 1.0  # fraction of the sleeve held; scalar or one value per combination

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"BacktestConfig.mode must be one of {MODES}, got {self.mode!r}")
        if self.sizing not in SIZINGS:
            raise ValueError(f"BacktestConfig.sizing must be one of {SIZINGS}, got {self.sizing!r}")
        for name in ("cost_bps", "slippage_bps"):
            v = getattr(self, name)
            if v is None or not np.isfinite(v) or v < 0:
                raise ValueError(f"BacktestConfig.{name} must be a finite number >= 0, got {v!r}")
        if not (self.periods_per_year and self.periods_per_year > 0):
            raise ValueError(f"BacktestConfig.periods_per_year must be > 0, got {self.periods_per_year!r}")
        for name in ("target_vol", "position_size"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.size == 0 or not np.all(np.isfinite(arr) & (arr > 0)):
                raise ValueError(f"BacktestConfig.{name} must be > 0 (scalar or one value per combination), "
                                 f"got {getattr(self, name)!r}")
        if self.sizing == "vol_target":
            if int(self.vol_lookback) < 2:
                raise ValueError(f"BacktestConfig.vol_lookback must be >= 2, got {self.vol_lookback!r}")
            if not (self.max_leverage and self.max_leverage > 0):
                raise ValueError(f"BacktestConfig.max_leverage must be > 0, got {self.max_leverage!r}")
        for name in ("stop_loss", "take_profit", "trailing_stop", "max_holding"):
            v = getattr(self, name)
            if v is None:
                continue
            arr = np.asarray(v, dtype=np.float64)
            if np.any(~np.isnan(arr) & (arr <= 0)):
                raise ValueError(f"BacktestConfig.{name} must be > 0 (or None), got {v!r}")
            if name in ("stop_loss", "trailing_stop") and np.any(arr >= 1):
                raise ValueError(f"BacktestConfig.{name} is a fraction in (0, 1), got {v!r}")

    @property
    def cost_rate(self) -> float:
        return (float(self.cost_bps) + float(self.slippage_bps)) / 1e4

    @property
    def has_exit_rules(self) -> bool:
        return any(getattr(self, k) is not None for k in ("stop_loss", "take_profit", "trailing_stop", "max_holding"))


@dataclass
class GridResult:
    params: pd.DataFrame
    returns: pd.DataFrame | None  # dates x combos (column i = params row i); None with keep_returns=False
    metrics: pd.DataFrame  # params columns + metric columns, one row per combo
    positions: np.ndarray | None = None  # (bars x symbols x combos) held positions, compact dtype
    strategy: str = ""
    symbols: list = field(default_factory=list)
    config: BacktestConfig | None = None


# ------------------------------------------------------------------- helpers
def asset_returns_from_close(close) -> np.ndarray:
    """(bars x symbols) simple returns close[t]/close[t-1]-1; bar 0 and gaps are 0."""
    c = np.asarray(close, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None]
    r = np.zeros_like(c)
    if len(c) > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(c[1:], c[:-1], out=r[1:])
        r[1:] -= 1.0
    r[~np.isfinite(r)] = 0.0
    return r


def resolve_weights(symbols: Sequence | None, n_symbols: int, weights) -> np.ndarray:
    """Weights per symbol: None = equal (1/n); dict symbol -> weight (others 0); sequence."""
    if weights is None:
        return np.full(n_symbols, 1.0 / n_symbols)
    if isinstance(weights, (Mapping, pd.Series)):
        wmap = dict(weights.items())
        if symbols is None:
            raise ValueError("weights given by symbol but the symbols are unknown (pass a DataFrame)")
        sym = [str(s) for s in symbols]
        unknown = [k for k in wmap if str(k) not in sym]
        if unknown:
            raise ValueError(f"weights name unknown symbols {unknown}; symbols are {sym}")
        wm = {str(k): float(v) for k, v in wmap.items()}
        w = np.array([wm.get(s, 0.0) for s in sym], dtype=np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(w) != n_symbols:
            raise ValueError(f"{len(w)} weights for {n_symbols} symbols")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite, got {w}")
    return w


def _per_combo(value, ncomb: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        return np.full(ncomb, arr[0])
    if arr.size != ncomb:
        raise ValueError(f"{name} has {arr.size} values for {ncomb} combinations")
    return arr


def apply_exit_rules(pos_scb: np.ndarray, price_sb: np.ndarray, config: BacktestConfig, combo_slice: slice | None = None) -> np.ndarray:
    """Apply stop loss / take profit / trailing stop / max holding to positions.

    pos_scb: (symbols x combos x bars) positions decided at each close; price_sb:
    (symbols x bars) prices (any scale). Returns positions of the same shape and
    dtype where a triggered rule sets the position to 0 from that close on, until
    the strategy's direction changes. Loop over bars, vectorized over symbols x combos.
    Rule parameters may be scalars or one value per combination (``combo_slice``
    selects the chunk's values).
    """
    S, C, T = pos_scb.shape
    if T == 0 or C == 0:
        return pos_scb

    def param(name):
        v = getattr(config, name)
        if v is None:
            return None
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
        if arr.size > 1 and combo_slice is not None:
            arr = arr[combo_slice]
        arr = _per_combo(arr, C, name)
        return np.where(np.isnan(arr), np.inf, arr)[None, :]  # NaN = rule off

    sl, tp, ts, mh = param("stop_loss"), param("take_profit"), param("trailing_stop"), param("max_holding")
    raw = np.ascontiguousarray(pos_scb.transpose(2, 0, 1))  # (T, S, C): contiguous per bar
    direction = np.sign(raw).astype(np.int8)
    out = np.zeros_like(raw)
    price = np.ascontiguousarray(price_sb.T)[:, :, None]  # (T, S, 1)
    d = np.zeros((S, C), dtype=np.int8)
    blocked = np.zeros((S, C), dtype=np.int8)
    entry = np.ones((S, C))
    ext = np.ones((S, C))
    held = np.zeros((S, C), dtype=np.int64)
    lo_sl = 1.0 - sl if sl is not None else None
    hi_sl = 1.0 + sl if sl is not None else None
    for t in range(T):
        raw_d = direction[t]
        p = price[t]
        blocked = np.where(raw_d == blocked, blocked, 0).astype(np.int8)
        desired = np.where(blocked != 0, 0, raw_d).astype(np.int8)
        cont = (d != 0) & (desired == d)
        is_long = d > 0
        is_short = d < 0
        if cont.any():
            held += cont
            hit = np.zeros((S, C), dtype=bool)
            if ts is not None:
                ext = np.where(cont & is_long, np.maximum(ext, p), np.where(cont & is_short, np.minimum(ext, p), ext))
                hit |= is_long & (p <= ext * (1.0 - ts))
                hit |= is_short & (p >= ext * (1.0 + ts))
            if sl is not None:
                hit |= is_long & (p <= entry * lo_sl)
                hit |= is_short & (p >= entry * hi_sl)
            if tp is not None:
                hit |= is_long & (p >= entry * (1.0 + tp))
                hit |= is_short & (p <= entry * (1.0 - tp))
            if mh is not None:
                hit |= held >= mh
            hit &= cont
            blocked = np.where(hit, d, blocked).astype(np.int8)
            new_d = np.where(hit, 0, desired).astype(np.int8)
        else:
            new_d = desired
        entering = (new_d != 0) & (new_d != d)
        if entering.any():
            pb = np.broadcast_to(p, (S, C))
            entry = np.where(entering, pb, entry)
            ext = np.where(entering, pb, ext)
            held = np.where(entering, 0, held)
        d = new_d
        out[t] = np.where(d != 0, raw[t], 0)
    return out.transpose(1, 2, 0)


def _combo_values(value, combo_slice: slice | None, n_combos: int, name: str) -> np.ndarray | None:
    """A per-combination setting for one chunk: None when it is one scalar for all."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        return None
    if combo_slice is not None:
        arr = arr[combo_slice]
    return _per_combo(arr, n_combos, name)


def _annual_vol(ret_sb: np.ndarray, config: BacktestConfig) -> np.ndarray:
    """(symbols x bars) annualized std (ddof=1) of the last ``vol_lookback`` returns."""
    L = int(config.vol_lookback)
    vol = pd.DataFrame(ret_sb.T).rolling(L, min_periods=L).std(ddof=1).to_numpy().T
    return vol * np.sqrt(config.periods_per_year)


def _vol_scale(ret_sb: np.ndarray, config: BacktestConfig, target: np.ndarray | None = None,
               vol: np.ndarray | None = None) -> np.ndarray:
    """Position scale for vol targeting (0 during warm-up): (symbols x bars) for the config's
    scalar ``target_vol``, or (symbols x combos x bars) for one ``target`` per combination."""
    L = int(config.vol_lookback)
    vol = _annual_vol(ret_sb, config) if vol is None else vol
    if target is not None:
        vol = vol[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (config.target_vol if target is None else target[None, :, None]) / vol
    scale = np.where(vol == 0, config.max_leverage, scale)
    scale = np.minimum(scale, config.max_leverage)
    # a volatility estimate needs L returns; bar 0's return is a placeholder 0
    scale[..., : min(L, scale.shape[-1])] = np.nan
    return np.nan_to_num(scale, nan=0.0)


def _sleeve_returns(pos: np.ndarray, ret: np.ndarray, rate: float, scale: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sleeve returns (symbols x combos x bars) * scale, written into ``out``.

    pos: (G x combos x bars) positions decided at each close, for a group of G
    symbols; ret: (G x bars) asset returns; rate: cost per unit of traded notional;
    scale: (G,) factor per symbol (its portfolio weight, or 1). Every element is
    computed independently of G, so grouping symbols does not change any value.
    """
    G, C, T = pos.shape
    scale = np.asarray(scale, dtype=np.float64).reshape(G)
    out[:, :, 0] = 0.0
    if T > 1:
        # small-integer positions are converted first: a float x float product is much
        # faster than numpy's mixed-type (buffered) loop, and the conversion is exact
        pf = pos if pos.dtype == np.float64 else pos.astype(np.float64)
        np.multiply(pf[:, :, :-1], (ret[:, 1:] * scale[:, None])[:, None, :], out=out[:, :, 1:])
        del pf
    if rate > 0.0 and T > 0:
        # sleeve return after costs: (1 + g) * (1 - k) - 1 = g - k * (1 + g), with
        # k = rate*|d| / (1 + rate*sign(d)*w) the fraction of equity paid (0 when d == 0)
        if pos.dtype.kind == "f":  # fractional (netted, vol-targeted) positions trade on many bars
            d = np.empty((G, C, T), dtype=np.float64)
            d[:, :, 0] = pos[:, :, 0]
            np.subtract(pos[:, :, 1:], pos[:, :, :-1], out=d[:, :, 1:])
            den = np.sign(d)
            den *= pos
            den *= rate
            den += 1.0
            np.abs(d, out=d)
            d *= rate
            d /= den  # k, exactly 0 where the position does not change
            np.add(out, scale[:, None, None], out=den)  # scale * (1 + g)
            den *= d
            out -= den
            return out
        changed = np.empty((G, C, T), dtype=bool)
        np.not_equal(pos[:, :, 0], 0, out=changed[:, :, 0])
        np.not_equal(pos[:, :, 1:], pos[:, :, :-1], out=changed[:, :, 1:])
        flat = np.flatnonzero(changed)  # trades are sparse: fix up only those bars (works on strided ``out``)
        if flat.size:
            gs, rest = np.divmod(flat, C * T)
            rows, cols = np.divmod(rest, T)
            wz = pos[gs, rows, cols].astype(np.float64)
            prev = np.where(cols > 0, pos[gs, rows, np.maximum(cols - 1, 0)], 0).astype(np.float64)
            dz = wz - prev  # exact: small integers
            k = rate * np.abs(dz) / (1.0 + rate * np.sign(dz) * wz)
            out[gs, rows, cols] -= k * (scale[gs] + out[gs, rows, cols])
    return out


def _symbol_groups(symbols: Sequence[int], n_combos: int, n_bars: int) -> list[list[int]]:
    """Symbols processed together by ``_sleeve_returns``: as many as keep one
    (group x combos x bars) temporary within DEFAULT_CHUNK_ROW_ELEMENTS, so a
    small grid (few combos, e.g. one ensemble) is one vectorized step instead of one
    per symbol, and a large one keeps its small, cache-friendly temporaries."""
    size = max(1, DEFAULT_CHUNK_ROW_ELEMENTS // max(1, n_combos * n_bars))
    symbols = list(symbols)
    return [symbols[i : i + size] for i in range(0, len(symbols), size)]


def _backtest_core(pos_scb: np.ndarray, ret_sb: np.ndarray, config: BacktestConfig, w: np.ndarray,
                   combine: bool = True, combo_slice: slice | None = None, vol_scale: np.ndarray | None = None,
                   out: np.ndarray | None = None, vol: np.ndarray | None = None):
    """Core on (symbols x combos x bars) positions and (symbols x bars) returns.

    Returns (returns, effective positions): returns is (combos x bars) when
    ``combine`` else (symbols x combos x bars) -- written into ``out`` when given
    (any strides); effective positions (S x C x T) are the positions actually held
    (after exit rules and sizing). ``vol``: the annualized volatility (symbols x bars), reused
    when the target volatility is one value per combination.
    """
    S, C, T = pos_scb.shape
    pos = pos_scb
    if config.has_exit_rules:
        price = np.cumprod(1.0 + ret_sb, axis=1)
        pos = apply_exit_rules(pos, price, config, combo_slice)
    if config.sizing == "vol_target":
        target = _combo_values(config.target_vol, combo_slice, C, "target_vol")
        if target is None:
            scale = vol_scale if vol_scale is not None else _vol_scale(ret_sb, config)
            pos = pos * scale[:, None, :]
        else:
            pos = pos * _vol_scale(ret_sb, config, target, vol)
    size = _combo_values(config.position_size, combo_slice, C, "position_size")
    if size is not None:
        pos = pos * size[None, :, None]
    elif float(np.asarray(config.position_size).reshape(-1)[0]) != 1.0:  # one size for every combination
        pos = pos * float(np.asarray(config.position_size).reshape(-1)[0])
    rate = config.cost_rate
    if combine:
        acc = np.empty((C, T), dtype=np.float64) if out is None else out
        active = [s for s in range(S) if w[s] != 0.0]
        if not active:
            acc[...] = 0.0
            return acc, pos
        # sleeves are summed in symbol order, the first one written in place
        first = True
        tmp = None
        for grp in _symbol_groups(active, C, T):
            if len(grp) == 1:
                p_g, r_g = pos[grp[0]][None], ret_sb[grp[0]][None]
            else:
                sl = slice(grp[0], grp[-1] + 1)
                contiguous = grp[-1] - grp[0] + 1 == len(grp)
                p_g = pos[sl] if contiguous else pos[grp]
                r_g = ret_sb[sl] if contiguous else ret_sb[grp]
            w_g = w[grp]
            if first and len(grp) == 1:
                _sleeve_returns(p_g, r_g, rate, w_g, acc[None])
                first = False
                continue
            if tmp is None or tmp.shape[0] < len(grp):
                tmp = np.empty((len(grp), C, T), dtype=np.float64)
            blk = _sleeve_returns(p_g, r_g, rate, w_g, tmp[: len(grp)])
            for i in range(len(grp)):  # few symbols: summed one by one, always in the same order
                if first:
                    acc[...] = blk[i]
                    first = False
                else:
                    acc += blk[i]
        return acc, pos
    res = np.empty((S, C, T), dtype=np.float64) if out is None else out
    for grp in _symbol_groups(range(S), C, T):
        sl = slice(grp[0], grp[-1] + 1)
        _sleeve_returns(pos[sl], ret_sb[sl], rate, np.ones(len(grp)), res[sl])
    return res, pos


def _as_scb(positions, n_symbols: int | None = None) -> np.ndarray:
    """(bars x symbols x combos) or (bars x combos) -> (symbols x combos x bars) view."""
    if np.ndim(positions) == 2 and n_symbols not in (None, 1):
        raise ValueError(f"2-D positions (bars x combos) need 1 symbol, got {n_symbols}")
    return positions_bsc(positions).transpose(1, 2, 0)


def _as_returns_sb(asset_returns) -> tuple[np.ndarray, list | None]:
    if isinstance(asset_returns, pd.DataFrame):
        syms = list(asset_returns.columns)
        arr = asset_returns.to_numpy(dtype=np.float64)
    elif isinstance(asset_returns, pd.Series):
        syms = [asset_returns.name]
        arr = asset_returns.to_numpy(dtype=np.float64)[:, None]
    else:
        syms = None
        arr = np.asarray(asset_returns, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
    arr = np.where(np.isfinite(arr), arr, 0.0)
    return np.ascontiguousarray(arr.T), syms


def backtest_positions(positions, asset_returns, config: BacktestConfig = BacktestConfig(), *, combine: bool = True,
                       symbols: Sequence | None = None) -> np.ndarray:
    """Portfolio returns (bars x combos) of positions (bars x symbols x combos).

    asset_returns: (bars x symbols) simple returns, ret[t] = close[t]/close[t-1]-1
    (NaN = 0). Applies exit rules, sizing, the one-bar lag, costs and symbol weights
    (see the module docstring). ``combine=False`` returns the per-symbol sleeve
    returns (bars x symbols x combos) instead.
    """
    ret_sb, syms = _as_returns_sb(asset_returns)
    S, T = ret_sb.shape
    pos = _as_scb(positions, S)
    if pos.shape[0] != S or pos.shape[2] != T:
        raise ValueError(f"positions {pos.transpose(2, 0, 1).shape} do not match asset returns (bars={T}, symbols={S})")
    w = resolve_weights(symbols if symbols is not None else syms, S, config.weights)
    out, _ = _backtest_core(pos, ret_sb, config, w, combine)
    return out.T if combine else out.transpose(2, 0, 1)


def compact_positions(pos: np.ndarray) -> np.ndarray:
    """Smallest exact dtype: int8 for values in {-1, 0, 1}, else float16 / float32 when
    exact, else float64."""
    if pos.dtype == np.int8 or pos.dtype == bool:
        return pos.astype(np.int8, order="K", copy=False)
    if pos.dtype.kind in "iu":
        if pos.size == 0 or (pos.min() >= -1 and pos.max() <= 1):
            return pos.astype(np.int8, order="K")
        return pos
    if pos.size and np.all((pos == -1) | (pos == 0) | (pos == 1)):
        return pos.astype(np.int8, order="K")
    for dt in (np.float16, np.float32):
        c = pos.astype(dt, order="K")
        if np.array_equal(c.astype(pos.dtype), pos):
            return c
    return pos


def _chunk_size(n_symbols: int, n_bars: int, chunk_size: int | None) -> int:
    """Combinations per chunk: bounded by the (symbols x combos x bars) arrays of the
    strategy step and by the (combos x bars) float temporaries of the backtest step;
    small temporaries are reused by the allocator instead of being page-faulted in."""
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return int(chunk_size)
    by_3d = DEFAULT_CHUNK_ELEMENTS // max(1, n_symbols * n_bars)
    by_2d = DEFAULT_CHUNK_ROW_ELEMENTS // max(1, n_bars)
    return max(1, min(by_3d, by_2d))


def _close_frame(close) -> pd.DataFrame:
    if isinstance(close, pd.Series):
        close = close.to_frame(close.name if close.name is not None else "asset")
    if not isinstance(close, pd.DataFrame):
        raise TypeError(f"close must be a pandas DataFrame (dates x symbols), got {type(close).__name__}")
    if close.shape[1] == 0:
        raise ValueError("close has no symbol columns")
    if close.shape[0] < 2:
        raise ValueError(f"close has {close.shape[0]} bar(s); at least 2 are needed")
    try:
        close.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"close must be numeric: {exc}") from exc
    vals = close.to_numpy(dtype=np.float64)
    if np.any(vals[np.isfinite(vals)] <= 0):
        raise ValueError("close prices must be > 0")
    return close


def run_grid(close, strategy: str, params, config: BacktestConfig = BacktestConfig(), keep_positions: bool = False,
             chunk_size: int | None = None, per_symbol: bool = False, metrics=None,
             indicators: Indicators | None = None, checked: bool = False, *, keep_returns: bool = True,
             workers: int = 1, progress: Callable[[int, int], None] | None = None) -> GridResult:
    """Backtest every parameter combination of ``strategy`` on ``close`` at once.

    close: DataFrame (DatetimeIndex x symbols). params: DataFrame (one row per
    combination, e.g. from ``expand_grid``), missing parameters get defaults.
    The grid is processed in chunks of ``chunk_size`` combinations (default: see
    ``DEFAULT_CHUNK_ELEMENTS``) so memory stays bounded (10,000 combos x 20 symbols x
    2520 bars peaks well under 1 GiB); indicators are computed once per distinct
    window and shared by all chunks.

    Returns a GridResult whose ``returns`` column i is params row i. With
    ``per_symbol=True`` each (combo, symbol) sleeve is reported separately:
    columns are a MultiIndex (combo, symbol) and metrics get a ``symbol`` column.
    ``keep_positions`` keeps the held positions (bars x symbols x combos) in the
    smallest exact dtype. ``metrics``: names of the metric columns to compute
    (default all of ``METRIC_COLUMNS``); skipping drawdowns/trade statistics is faster.
    ``indicators``: an ``Indicators`` over the same closes, kept by a caller that calls
    ``run_grid`` many times (a search's batches) so each window is computed once.
    Trading settings of ``config`` given as arrays (``target_vol``, ``position_size``,
    exit rules) hold one value per row of ``params``. ``checked=True``: the caller has
    already tested the rows against the strategy's constraint (a search's batches).

    ``keep_returns=False`` computes the metrics without keeping the (bars x combos) returns
    (``returns`` is None): memory then grows with the combinations only by their metrics, the
    chunk temporaries are bounded by ``chunk_size``.  ``workers`` threads evaluate chunks at
    once (numpy releases the GIL; every chunk is computed independently, so the results are
    bit-for-bit those of ``workers=1``).  ``progress(done, total)`` is called after each chunk
    with the combinations finished so far.
    """
    which = _check_which(metrics)
    mcols = list(METRIC_COLUMNS) if which is None else which
    want_pos = any(k in mcols for k in POSITION_METRICS)
    close = _close_frame(close)
    spec = get_strategy(strategy)
    p = normalize_params(spec, params, check=not checked)
    values = close.to_numpy(dtype=np.float64)
    if indicators is not None and (indicators.n_bars, indicators.n_symbols) != values.shape:
        raise ValueError(f"indicators cover {indicators.n_bars} bars x {indicators.n_symbols} symbols, "
                         f"close is {values.shape[0]} x {values.shape[1]}")
    ind = indicators if indicators is not None else Indicators(values)
    ret_sb = np.ascontiguousarray(asset_returns_from_close(values).T)
    S, T = ret_sb.shape
    C = len(p)
    symbols = list(close.columns)
    w = resolve_weights(symbols, S, config.weights)
    vol_scale, vol = _sizing_arrays(ret_sb, config)
    step = _chunk_size(S, T, chunk_size)
    if workers > 1 and C > 1:  # at least one chunk per worker (chunks are independent: same numbers)
        step = max(1, min(step, -(-C // int(workers))))
    rows = S if per_symbol else 1  # rows of ``out`` per combination (combo-major with per_symbol)
    out = np.empty((C * rows, T), dtype=np.float64) if keep_returns else None  # (columns x bars)
    ppy = float(config.periods_per_year)
    starts = list(range(0, C, step))
    chunks: dict[int, tuple[dict, np.ndarray | None]] = {}
    done = [0]
    lock = threading.Lock()
    local = threading.local()  # with keep_returns=False: one reusable chunk buffer per thread

    def evaluate(start: int) -> None:
        stop = min(C, start + step)
        if out is not None:
            block = out[start * rows : stop * rows]
        else:
            buf = getattr(local, "buf", None)
            if buf is None:
                buf = local.buf = np.empty((step * rows, T), dtype=np.float64)
            block = buf[: (stop - start) * rows]
        pc = p if (start, stop) == (0, C) else p.iloc[start:stop].reset_index(drop=True)
        raw = raw_positions(spec, None, pc, config.mode, ind)  # (T, S, c)
        pos = raw.transpose(1, 2, 0)  # (S, c, T) view
        if per_symbol:
            dest = block.reshape(stop - start, S, T).transpose(1, 0, 2)
            _, eff = _backtest_core(pos, ret_sb, config, w, False, slice(start, stop), vol_scale, out=dest,
                                    vol=vol)
            m = _metrics_of_block_rows(block, ppy, which)
            ps = _per_sleeve_stats(eff, ppy) if want_pos else {}
        else:
            m, eff = _combined_block(pos, ret_sb, config, w, slice(start, stop), vol_scale, vol, block, which,
                                     want_pos)
            ps = {}
        m.update(ps)
        chunks[start] = ({k: m[k] for k in mcols},
                         compact_positions(np.ascontiguousarray(eff)) if keep_positions else None)
        del raw, pos, eff
        if progress is not None:
            with lock:
                done[0] += stop - start
                progress(done[0], C)

    n_workers = max(1, min(int(workers), len(starts)))
    if n_workers == 1:
        for start in starts:
            evaluate(start)
    elif starts:
        # the indicator cache is shared: a window two threads miss at once is computed twice
        # (same values), so the results never depend on the number of workers
        evaluate(starts[0])
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="admf-grid") as pool:
            list(pool.map(evaluate, starts[1:]))
    mets = {k: [chunks[s_][0][k] for s_ in starts] for k in mcols}
    kept = [chunks[s_][1] for s_ in starts] if keep_positions else None
    metrics = {k: (np.concatenate(v) if v else np.empty(0)) for k, v in mets.items()}
    if per_symbol:
        codes_c, codes_s = np.repeat(np.arange(C), S), np.tile(np.arange(S), C)
        cols = pd.MultiIndex(levels=[pd.RangeIndex(C), pd.Index(symbols)], codes=[codes_c, codes_s],
                             names=["combo", "symbol"], verify_integrity=False)
        data = {"combo": codes_c, "symbol": np.asarray(symbols, dtype=object)[codes_s]}
        data.update({k: p[k].to_numpy()[codes_c] for k in p.columns})
        data.update({k: metrics[k] for k in mcols})
        mframe = pd.DataFrame(data, index=cols)
    else:
        cols = pd.RangeIndex(C)
        data = {k: p[k].to_numpy() for k in p.columns}
        data.update({k: metrics[k] for k in mcols})
        mframe = pd.DataFrame(data, index=cols)
    returns = pd.DataFrame(out.T, index=close.index, columns=cols, copy=False) if out is not None else None
    positions = None
    if kept is not None:
        dt = np.result_type(*[k.dtype for k in kept]) if kept else np.int8
        positions = np.concatenate([k.astype(dt, copy=False) for k in kept], axis=1).transpose(2, 0, 1) if kept else None
    return GridResult(params=p, returns=returns, metrics=mframe, positions=positions, strategy=spec.name,
                      symbols=symbols, config=config)


def _sizing_arrays(ret_sb: np.ndarray, config: BacktestConfig) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(vol_scale, vol) for ``_backtest_core``: both None without vol targeting; the scale of a
    scalar ``target_vol``, or the annualized vol when ``target_vol`` holds one value per row."""
    if config.sizing != "vol_target":
        return None, None
    if np.size(config.target_vol) > 1:
        return None, _annual_vol(ret_sb, config)
    return _vol_scale(ret_sb, config), None


def _combined_block(pos, ret_sb, config, w, combos: slice, vol_scale, vol, block: np.ndarray, which,
                    want_pos: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Portfolio returns of positions ``pos`` (symbols x combos x bars) written into ``block``
    (combos x bars) and their metrics: ``(metrics, effective positions)``."""
    _, eff = _backtest_core(pos, ret_sb, config, w, True, combos, vol_scale, out=block, vol=vol)
    m = _metrics_of_block_rows(block, float(config.periods_per_year), which)
    if want_pos:
        m.update(_position_stats_scb(eff, w, float(config.periods_per_year)))
    return m, eff


class GridMetrics:
    """``run_grid``'s metrics of many small batches over the same closes, without its per-call
    work: the closes are checked and their returns computed once, each call evaluates its rows
    in one block (at most ``max_rows``, run_grid's default chunk) and returns plain arrays, not
    frames.  For a search that calls the engine once per batch of a few dozen trials, where that
    fixed work would dominate (measured here: one row, 2.4 ms by run_grid, 0.95 ms by
    ``BacktestEvaluator.evaluate_columns`` through this).

    ``GridMetrics(close, indicators)(strategy, params, config, checked)`` returns
    ``{metric: array}`` (``METRIC_COLUMNS``, one value per row of ``params``), the values
    ``run_grid(close, strategy, params, config).metrics`` holds.  ``params`` is a frame, or with
    ``normalized=True`` (and ``checked``) ``{name: array}`` columns of normalized values, which a
    strategy that ``takes_columns`` gets as they are.
    """

    def __init__(self, close, indicators: Indicators | None = None):
        close = _close_frame(close)
        values = close.to_numpy(dtype=np.float64)
        self.indicators = indicators if indicators is not None else Indicators(values)
        if (self.indicators.n_bars, self.indicators.n_symbols) != values.shape:
            raise ValueError("indicators do not cover the closes")
        self.ret_sb = np.ascontiguousarray(asset_returns_from_close(values).T)
        self.symbols = list(close.columns)
        self._sizing: dict[tuple, tuple] = {}
        #: the most rows one call takes: ``run_grid``'s default chunk (its memory bound)
        self.max_rows = _chunk_size(values.shape[1], values.shape[0], None)

    def __call__(self, strategy: str, params, config: BacktestConfig = BacktestConfig(),
                 checked: bool = False, normalized: bool = False) -> dict[str, np.ndarray]:
        """``normalized`` with ``checked``: ``params`` are ``{name: array}`` columns of the strategy's
        normalized parameters (``strategy_frame``'s values) that satisfy its constraint; a strategy
        that ``takes_columns`` gets them as they are."""
        spec = get_strategy(strategy)
        if normalized and checked and isinstance(params, Mapping):
            p = params if spec.takes_columns else pd.DataFrame(dict(params), copy=False)
        else:
            p = normalize_params(spec, params, check=not checked)
        S, T = self.ret_sb.shape
        C = n_rows(p)
        if C == 0:
            return {k: np.empty(0) for k in METRIC_COLUMNS}
        if C > self.max_rows:
            raise ValueError(f"{C} rows exceed one block of {self.max_rows}; use run_grid, which chunks")
        w = resolve_weights(self.symbols, S, config.weights)
        key = (config.sizing, config.vol_lookback, config.periods_per_year, config.max_leverage,
               None if np.size(config.target_vol) > 1 else float(config.target_vol))
        if key not in self._sizing:  # the sizing arrays depend on the config only
            self._sizing[key] = _sizing_arrays(self.ret_sb, config)
        vol_scale, vol = self._sizing[key]
        raw = raw_positions(spec, None, p, config.mode, self.indicators)
        block = np.empty((C, T), dtype=np.float64)
        m, _ = _combined_block(raw.transpose(1, 2, 0), self.ret_sb, config, w, slice(0, C), vol_scale, vol, block,
                               None, True)
        return {k: m[k] for k in METRIC_COLUMNS}


def _per_sleeve_stats(eff: np.ndarray, ppy: float) -> dict[str, np.ndarray]:
    """Position stats of each (combo, symbol) sleeve, rows ordered combo-major."""
    S, C, T = eff.shape
    flat = eff.transpose(1, 0, 2).reshape(1, C * S, T)
    return _position_stats_scb(flat, np.ones(1), ppy)


def run_backtest(close, strategy: str, params: Mapping[str, Any] | None = None,
                 config: BacktestConfig = BacktestConfig()) -> GridResult:
    """One parameter set (dict) -> GridResult with a single combination (positions kept)."""
    return run_grid(close, strategy, pd.DataFrame([dict(params or {})]), config, keep_positions=True)


__all__ = [
    "BacktestConfig",
    "DEFAULT_COST_BPS",
    "DEFAULT_SLIPPAGE_BPS",
    "GridMetrics",
    "GridResult",
    "SIZINGS",
    "apply_exit_rules",
    "asset_returns_from_close",
    "backtest_positions",
    "compact_positions",
    "resolve_weights",
    "run_backtest",
    "run_grid",
    "tune_allocator",
]


def tune_allocator(mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1) -> bool:
    """Opt-in: keep freed large arrays in the process heap (glibc ``mallopt``).

    By default glibc returns every large numpy temporary to the OS and the next
    allocation page-faults it back in; on VMs where page faults are expensive that
    can double the engine's run time on small grids. This trades a higher resident
    memory (the heap keeps its peak size) for speed. Process-wide; returns False
    where glibc is not available. Call it once from a long-running research process.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = libc.mallopt(m_mmap_threshold, int(mmap_threshold)) == 1
    ok &= libc.mallopt(m_trim_threshold, int(trim_threshold)) == 1
    return bool(ok)
