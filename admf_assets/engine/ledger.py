"""Forward ledger of a deployed configuration (paper trading), and its tracking statistics.

A :class:`Deployment` is what is traded: one strategy with fixed parameters, a weighted
ensemble of several (their positions netted per symbol, as ``capture.replay`` nets them), or
buy and hold; plus the trading behaviour it was researched with (mode, sizing, exit rules,
symbol weights).  :func:`book` keeps its account from a start date with the engine's own
conventions (``engine.backtest``):

* the position held over day t was decided at the close of day t-1 with bars up to t-1; it
  earns the asset return from close t-1 to close t;
* at the close of day t the strategy, with bars up to t, sets the position for day t+1: the
  trade to it is filled at the close of t, and its cost (``rate * |change|`` of post-trade
  equity, the engine's cost model) is paid on day t;
* the book starts flat: on the first day nothing is held and the first fill, at its close,
  opens the deployed position;
* symbols are sleeves with fixed weights, rebalanced every day.

So from the second day on, each day's return equals the engine's backtest return of the same
configuration on the same bars exactly; the first day differs only by the opening trade.
Indicators, vol-targeting and exit rules run over all the history given, so the book of a
day depends on bars up to that day only, and a day's rows never change when later days are
added.

>>> import pandas as pd
>>> close = pd.DataFrame({"SPY": [100.0, 101.0, 99.0, 102.0]},
...                      index=pd.bdate_range("2024-01-01", periods=4))
>>> b = book(close, Deployment.buy_and_hold(), BacktestConfig(), start="2024-01-02")
>>> b.daily["return"].round(4).tolist()   # flat on the 1st day, then long from its close
[0.0, -0.0198, 0.0303]
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .backtest import BacktestConfig, _backtest_core, _vol_scale, asset_returns_from_close, resolve_weights
from .capture import capture_signals, concat_captured, ensemble_positions
from .strategies import get_strategy, normalize_params, raw_positions
from .util import py_scalar

__all__ = ["Member", "Deployment", "Book", "book", "backtest_deployment", "BEHAVIOUR_KEYS", "Tracking", "tracking",
           "tracking_path"]

#: the trading settings that are part of what a deployment trades (costs are the ledger's own)
BEHAVIOUR_KEYS = ("mode", "sizing", "target_vol", "vol_lookback", "weights", "stop_loss", "take_profit",
                  "trailing_stop", "max_holding")
BUY_AND_HOLD = "buy_and_hold"


@dataclass(frozen=True)
class Member:
    strategy: str
    params: Mapping[str, Any]
    weight: float = 1.0


@dataclass(frozen=True)
class Deployment:
    """What a ledger trades: ``members`` (one, or a weighted ensemble; none = buy and hold) and
    the behaviour ``settings`` (``BEHAVIOUR_KEYS``) they were researched with."""

    members: tuple[Member, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    @classmethod
    def buy_and_hold(cls, settings: Mapping[str, Any] | None = None) -> "Deployment":
        """Every symbol held long at full exposure (the same symbol weights), never traded again."""
        keep = {k: v for k, v in (settings or {}).items() if k == "weights"}
        return cls((), keep, BUY_AND_HOLD)

    @property
    def is_buy_and_hold(self) -> bool:
        return not self.members

    def to_json(self) -> str:
        return json.dumps({"members": [{"strategy": m.strategy, "params": {k: py_scalar(v) for k, v in m.params.items()},
                                        "weight": float(m.weight)} for m in self.members],
                           "settings": {k: self.settings[k] for k in sorted(self.settings)}, "label": self.label},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Deployment":
        d = json.loads(text)
        return cls(tuple(Member(m["strategy"], m["params"], float(m["weight"])) for m in d["members"]),
                   d.get("settings", {}), d.get("label", ""))

    @property
    def config_id(self) -> str:
        """A short hash of what is traded (members and behaviour; not the label)."""
        blob = json.loads(self.to_json())
        blob.pop("label", None)
        return hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> str:
        if self.is_buy_and_hold:
            return "buy and hold"
        parts = [f"{m.strategy} {json.dumps(dict(m.params), sort_keys=True)}" + (f" x {m.weight:.3g}"
                 if len(self.members) > 1 else "") for m in self.members]
        return " + ".join(parts)

    def config(self, base: BacktestConfig) -> BacktestConfig:
        """``base`` (costs, periods) with this deployment's behaviour settings."""
        if self.is_buy_and_hold:
            return replace(base, mode="long_only", sizing="fixed", stop_loss=None, take_profit=None,
                           trailing_stop=None, max_holding=None, weights=self.settings.get("weights", base.weights))
        known = {k: v for k, v in self.settings.items() if k in BEHAVIOUR_KEYS}
        return replace(base, **known)


def deployed_positions(close: pd.DataFrame, deployment: Deployment, mode: str) -> np.ndarray:
    """(bars x symbols) positions decided at each close, before exit rules and sizing: one
    member's raw positions (its own dtype), the weighted sum of several members' per symbol
    (float64), or 1 everywhere for buy and hold."""
    T, S = close.shape
    if deployment.is_buy_and_hold:
        return np.ones((T, S), dtype=np.int8)
    if len(deployment.members) == 1 and deployment.members[0].weight == 1.0:
        m = deployment.members[0]
        spec = get_strategy(m.strategy)
        return raw_positions(spec, close.to_numpy(dtype=np.float64), normalize_params(spec, dict(m.params)), mode)[:, :, 0]
    caps, weights = [], {}
    for i, m in enumerate(deployment.members):
        cap = capture_signals(close, m.strategy, pd.DataFrame([dict(m.params)]), mode=mode, id_prefix=f"m{i}")
        caps.append(cap)
        weights[cap.strategy_ids[0]] = float(m.weight)
    return ensemble_positions(concat_captured(caps), weights)[:, :, 0]


def backtest_deployment(close: pd.DataFrame, deployment: Deployment, config: BacktestConfig) -> tuple[pd.Series, np.ndarray]:
    """The engine's backtest of ``deployment`` over all of ``close`` (dates x symbols): daily
    portfolio returns (a Series on the dates; the first is 0) and the positions held after
    exit rules and sizing, (symbols x bars).  ``config``: costs and periods (its behaviour
    settings are replaced by the deployment's).  From its second day a :func:`book` of the
    same deployment earns exactly these returns.

    >>> import pandas as pd
    >>> close = pd.DataFrame({"SPY": [100.0, 101.0, 99.0]}, index=pd.bdate_range("2024-01-01", periods=3))
    >>> r, _ = backtest_deployment(close, Deployment.buy_and_hold(), BacktestConfig())
    >>> r.round(4).tolist()
    [0.0, 0.01, -0.0198]
    """
    cfg = deployment.config(config)
    values = close.to_numpy(dtype=np.float64)
    S = values.shape[1]
    ret_sb = np.ascontiguousarray(asset_returns_from_close(values).T)
    w = resolve_weights([str(s) for s in close.columns], S, cfg.weights)
    pos = np.ascontiguousarray(deployed_positions(close, deployment, cfg.mode).T)[:, None, :]
    vol = _vol_scale(ret_sb, cfg) if cfg.sizing == "vol_target" else None
    port, eff = _backtest_core(pos, ret_sb, cfg, w, True, None, vol)
    return pd.Series(port[0], index=close.index, name="return"), np.asarray(eff)[:, 0, :]


@dataclass
class Book:
    """``rows``: one row per booked day and symbol; ``daily``: one row per booked day."""

    rows: pd.DataFrame
    daily: pd.DataFrame
    config_id: str


def book(close: pd.DataFrame, deployment: Deployment, config: BacktestConfig, start, *,
         capital: float = 100_000.0, book_name: str = "deployed") -> Book:
    """Keep the account of ``deployment`` on ``close`` (dates x symbols, all the history to use)
    from the first date >= ``start`` (see the module docstring for the conventions).

    ``config``: costs and periods (its behaviour settings are replaced by the deployment's).
    Returns the per-symbol rows (position held, the fill at the close, cost, P&L in money
    from ``capital``) and the daily account (return, gross return, costs, value, drawdown)."""
    cfg = deployment.config(config)
    dates = pd.DatetimeIndex(close.index)
    values = close.to_numpy(dtype=np.float64)
    T, S = values.shape
    i0 = int(np.searchsorted(dates, pd.Timestamp(start)))
    if i0 >= T:
        raise ValueError(f"no bars on or after {pd.Timestamp(start).date()}")
    symbols = [str(s) for s in close.columns]
    ret_sb = np.ascontiguousarray(asset_returns_from_close(values).T)
    w = resolve_weights(symbols, S, cfg.weights)
    raw = deployed_positions(close, deployment, cfg.mode)
    pos = np.ascontiguousarray(raw.T)[:, None, :]  # (S, 1, T)
    vol = _vol_scale(ret_sb, cfg) if cfg.sizing == "vol_target" else None
    _, eff = _backtest_core(pos, ret_sb, cfg, w, False, None, vol)  # positions held after exit rules, sizing
    held = np.array(eff, copy=True)
    held[:, :, :i0] = 0  # flat before the first day: its close opens the position
    plain = replace(cfg, sizing="fixed", stop_loss=None, take_profit=None, trailing_stop=None, max_holding=None)
    port, _ = _backtest_core(held, ret_sb, plain, w, True)  # (1, T): the engine's portfolio returns
    net, _ = _backtest_core(held, ret_sb, plain, w, False)  # (S, 1, T) sleeve returns after costs
    free = replace(plain, cost_bps=0.0, slippage_bps=0.0)
    gross, _ = _backtest_core(held, ret_sb, free, w, False)
    gross_port, _ = _backtest_core(held, ret_sb, free, w, True)
    sl = slice(i0, T)
    r = port[0, sl]
    value = capital * np.cumprod(1.0 + r)
    before = np.r_[capital, value[:-1]]  # account value at the previous close
    hp = held[:, 0, :].astype(np.float64)  # (S, T)
    position = np.where(np.arange(T) > 0, np.roll(hp, 1, axis=1), 0.0)[:, sl]
    target = hp[:, sl]
    trade = target - position
    net_s = net[:, 0, sl] * w[:, None]
    gross_s = gross[:, 0, sl] * w[:, None]
    sleeve_after = before[None, :] * w[:, None] * (1.0 + net[:, 0, sl])  # post-trade sleeve equity
    notional = np.abs(trade) * sleeve_after
    px = values[sl].T
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(px > 0, np.sign(trade) * notional / px, 0.0)
    n = T - i0
    day = dates[sl]
    prev = np.arange(i0, T) - 1  # the close each held position was decided at
    decided = pd.DatetimeIndex(np.where(prev >= 0, dates.values[np.maximum(prev, 0)], np.datetime64("NaT")))
    rows = pd.DataFrame({
        "date": np.repeat(day, S),
        "symbol": np.tile(np.asarray(symbols, dtype=object), n),
        "book": book_name,
        "config_id": deployment.config_id,
        "weight": np.tile(w, n),
        "decided_at": np.repeat(decided, S),
        "position": position.T.reshape(-1),
        "asset_return": ret_sb[:, sl].T.reshape(-1),
        "close": px.T.reshape(-1),
        "target_position": target.T.reshape(-1),
        "trade": trade.T.reshape(-1),
        "fill_price": np.where(trade.T.reshape(-1) != 0, px.T.reshape(-1), np.nan),
        "shares": shares.T.reshape(-1),
        "traded_notional": notional.T.reshape(-1),
        "gross_contribution": gross_s.T.reshape(-1),
        "cost": ((gross_s - net_s) * before[None, :]).T.reshape(-1),
        "pnl": (net_s * before[None, :]).T.reshape(-1),
        "return_contribution": net_s.T.reshape(-1),
    })
    peak = np.maximum.accumulate(np.r_[capital, value])[1:]
    daily = pd.DataFrame({
        "date": day,
        "book": book_name,
        "config_id": deployment.config_id,
        "return": r,
        "gross_return": gross_port[0, sl],
        "costs": gross_port[0, sl] - r,
        "value": value,
        "pnl": value - before,
        "cumulative_return": value / capital - 1.0,
        "drawdown": value / peak - 1.0,
        "gross_exposure": (np.abs(position) * w[:, None]).sum(axis=0),
        "n_trades": (trade != 0).sum(axis=0),
    })
    return Book(rows, daily, deployment.config_id)


# ---------------------------------------------------------------------- tracking
@dataclass(frozen=True)
class Tracking:
    """Realized daily returns against an expected distribution (the backtest's daily returns),
    after ``n`` days; see :func:`tracking_path`.  p-values are two-sided, from the z-scores."""

    n: int
    expected_mean: float
    expected_std: float
    n_expected: int
    realized_mean: float
    tracking_z: float
    tracking_p: float
    volatility_ratio: float
    volatility_z: float
    volatility_p: float


def tracking_path(realized: Sequence[float], expected: Sequence[float], *, n_boot: int = 2000, block: int = 10,
                  seed: int = 42) -> dict[str, np.ndarray]:
    """Day by day, how the realized returns compare with paths drawn from the expected ones.

    ``n_boot`` paths of expected returns are drawn by a moving-block bootstrap (blocks of
    ``block`` consecutive days, so volatility clustering and fat tails are kept); for each day
    t (1-based):

    * ``daily_z``: ``(r_t - mean) / std`` of the expected returns;
    * ``tracking_z``: the realized sum of days 1..t against the bootstrap sums of t days:
      ``(sum - mean(S*_t)) / std(S*_t)`` (for i.i.d. returns about ``(sum - t mu) / (sigma sqrt t)``);
    * ``volatility_ratio``: realized std of days 1..t over the expected std (from t = 2);
    * ``volatility_z``: the log of the realized std against the bootstrap's log stds of t days.

    The draws of block j do not depend on how many days there are: a day's numbers are the
    same whether it is booked alone or in a longer run.
    """
    r = np.asarray(realized, dtype=np.float64)
    x = np.asarray(expected, dtype=np.float64)
    x = x[np.isfinite(x)]
    n, m = len(r), len(x)
    mu = float(x.mean()) if m else math.nan
    sigma = float(x.std(ddof=1)) if m > 1 else math.nan
    out = {k: np.full(n, np.nan) for k in ("daily_z", "tracking_z", "volatility_ratio", "volatility_z")}
    if n == 0 or not (sigma > 0):
        return out
    L = max(1, min(int(block), m))
    k = -(-n // L)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, m - L + 1, size=(k, n_boot))  # row j: block j of every path
    idx = (starts.T[:, :, None] + np.arange(L)).reshape(n_boot, k * L)[:, :n]
    paths = x[idx]  # (n_boot, n)
    t = np.arange(1, n + 1)
    sums = np.cumsum(paths, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["daily_z"] = (r - mu) / sigma
        out["tracking_z"] = (np.cumsum(r) - sums.mean(axis=0)) / sums.std(axis=0, ddof=1)
        boot_std = _expanding_std(paths)
        real_std = _expanding_std(r[None, :])[0]
        out["volatility_ratio"] = real_std / sigma
        log_b = np.log(boot_std)
        out["volatility_z"] = (np.log(real_std) - log_b.mean(axis=0)) / log_b.std(axis=0, ddof=1)
    out["volatility_ratio"][t < 2] = np.nan
    out["volatility_z"][t < 2] = np.nan
    return out


def _expanding_std(a: np.ndarray) -> np.ndarray:
    """Row-wise expanding sample std (ddof=1) of a 2-D array (NaN for the first column)."""
    t = np.arange(1, a.shape[1] + 1)
    s1 = np.cumsum(a, axis=1)
    s2 = np.cumsum(a * a, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1 * s1 / t) / (t - 1)
    return np.sqrt(np.maximum(var, 0.0))


def tracking(realized: Sequence[float], expected: Sequence[float], **kw) -> Tracking:
    """The tracking statistics after the last realized day (see :func:`tracking_path`).

    >>> t = tracking([0.01, -0.01, 0.02], [0.0, 0.01, -0.01, 0.02, -0.02] * 8, block=1)
    >>> t.n, round(t.expected_std, 4), abs(t.tracking_z - 0.02 / (t.expected_std * 3 ** 0.5)) < 0.1
    (3, 0.0143, True)
    """
    from scipy import stats

    r = np.asarray(realized, dtype=np.float64)
    r = r[np.isfinite(r)]
    x = np.asarray(expected, dtype=np.float64)
    x = x[np.isfinite(x)]
    path = tracking_path(r, x, **kw)
    last = {k: float(v[-1]) if len(v) else math.nan for k, v in path.items()}

    def p(z: float) -> float:
        return float(2.0 * stats.norm.sf(abs(z))) if math.isfinite(z) else math.nan

    return Tracking(len(r), float(x.mean()) if len(x) else math.nan, float(x.std(ddof=1)) if len(x) > 1 else math.nan,
                    len(x), float(r.mean()) if len(r) else math.nan, last["tracking_z"], p(last["tracking_z"]),
                    last["volatility_ratio"], last["volatility_z"], p(last["volatility_z"]))
