"""Tables of parameter sets: the rows a search reports and later phases evaluate again.

A parameter-set table has one row per set with (at least) a ``strategy`` column and a
``params`` column holding the set's parameters as JSON (``{"fast_period": 10, ...}``);
search results (``best_parameters``, ``top_parameter_sets``, ``optimization_history``)
are such tables.  A search over trading settings adds a ``trading`` column, the set's
settings as JSON (``{"stop_loss": 0.04}``; ``{}`` when none was searched), which the
phases that evaluate a set apply over their own (``trading_overrides``).

>>> import pandas as pd
>>> t = pd.DataFrame({"strategy": ["momentum"], "params": ['{"fast_period": 5, "slow_period": 20}']})
>>> parameter_sets(t)
[('momentum', {'fast_period': 5, 'slow_period': 20})]
"""

from __future__ import annotations

import json

import pandas as pd

from .backtest import BacktestConfig, run_grid

__all__ = ["PARAMS_COLUMN", "TRADING_COLUMN", "params_json", "parameter_set", "parameter_sets", "set_labels",
           "evaluate_sets", "trading_overrides", "with_trading", "per_set_config"]

PARAMS_COLUMN = "params"
TRADING_COLUMN = "trading"


def params_json(params: dict) -> str:
    return json.dumps(params)


def parameter_set(row: pd.Series) -> tuple[str, dict]:
    """(strategy, parameters) of one row of a parameter-set table."""
    if PARAMS_COLUMN not in row.index or "strategy" not in row.index:
        raise ValueError("a parameter-set table needs 'strategy' and 'params' columns (is it a search output?)")
    return str(row["strategy"]), json.loads(row[PARAMS_COLUMN])


def trading_overrides(row: pd.Series) -> dict:
    """The trading settings a search chose for the set in ``row`` (``{}`` when none)."""
    value = row.get(TRADING_COLUMN) if hasattr(row, "get") else None
    if value is None or (isinstance(value, float) and value != value):
        return {}
    return dict(json.loads(value))


def with_trading(config: BacktestConfig, overrides: dict) -> BacktestConfig:
    """``config`` with a set's searched trading settings (a searched ``target_vol`` implies
    ``sizing='vol_target'``)."""
    if not overrides:
        return config
    from dataclasses import replace

    extra = {"sizing": "vol_target"} if "target_vol" in overrides else {}
    return replace(config, **overrides, **extra)


def per_set_config(config: BacktestConfig, overrides: list[dict]) -> BacktestConfig:
    """``config`` with one value per set (a combination of ``run_grid`` / ``backtest_positions``
    each) of every trading setting some set overrides; a set without it keeps the config's
    value, and an exit rule the config leaves unset is off for that set (NaN).

    >>> cfg = per_set_config(BacktestConfig(), [{"stop_loss": 0.05}, {}])
    >>> cfg.stop_loss.tolist()
    [0.05, nan]
    """
    import numpy as np
    from dataclasses import replace

    keys = sorted({k for t in overrides for k in t})
    if not keys:
        return config

    def value(t, k):
        v = t.get(k, getattr(config, k))
        return np.nan if v is None else float(np.asarray(v, dtype=np.float64).reshape(-1)[0])

    arrays = {k: np.array([value(t, k) for t in overrides]) for k in keys}
    extra = {"sizing": "vol_target"} if "target_vol" in arrays else {}
    return replace(config, **arrays, **extra)


def parameter_sets(table: pd.DataFrame) -> list[tuple[str, dict]]:
    """Every row of a parameter-set table as (strategy, parameters)."""
    return [parameter_set(r) for _, r in table.iterrows()]


def set_labels(sets: list[tuple[str, dict]]) -> list[str]:
    """Short unique labels: ``#1 (10, 30, 0.0)``, with the strategy when several are mixed."""
    multi = len({s for s, _ in sets}) > 1
    return [f"#{i + 1} " + (f"{s} " if multi else "") + "(" + ", ".join(str(v) for v in p.values()) + ")"
            for i, (s, p) in enumerate(sets)]


def evaluate_sets(close: pd.DataFrame, sets: list[tuple[str, dict]], config: BacktestConfig,
                  labels: list[str] | None = None, trading: list[dict] | None = None, *, workers: int = 1,
                  memory_limit_bytes: float | None = None) -> pd.DataFrame:
    """Daily returns (dates x sets) of parameter sets, one vectorized ``run_grid`` per strategy;
    ``trading``: each set's searched trading settings (``trading_overrides``), applied per set;
    ``workers`` threads; chunks sized to stay under ``memory_limit_bytes`` (see ``estimate``)."""
    from .estimate import chunk_combinations, distinct_windows

    labels = labels or set_labels(sets)
    if trading is not None and len(trading) != len(sets):
        raise ValueError(f"{len(sets)} parameter sets but {len(trading)} trading settings")
    cols: dict[int, pd.Series] = {}
    for strategy in dict.fromkeys(s for s, _ in sets):
        idx = [i for i, (s, _) in enumerate(sets) if s == strategy]
        params = pd.DataFrame([sets[i][1] for i in idx])
        cfg = per_set_config(config, [trading[i] for i in idx]) if trading else config
        chunk = None
        if memory_limit_bytes is not None:
            chunk = chunk_combinations(memory_limit_bytes, len(params), close.shape[0], close.shape[1],
                                       distinct_windows(params), workers=workers, keep_returns=True)
        res = run_grid(close, strategy, params, cfg, chunk_size=chunk, workers=workers)
        for j, i in enumerate(idx):
            cols[i] = res.returns.iloc[:, j]
    out = pd.concat([cols[i] for i in range(len(sets))], axis=1)
    out.columns = labels
    return out
