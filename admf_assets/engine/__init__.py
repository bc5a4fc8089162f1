"""Research engine: pure numpy/pandas code (no Dagster import).

Modules:
  metrics     compute_metrics and the metric conventions (annualization, ddof, ...)
  indicators  per-window indicator cache shared by a whole parameter grid
  strategies  strategy registry (register_strategy), expand_grid, generate_positions
  backtest    BacktestConfig, run_grid, backtest_positions (lag, costs, sizing, exits)
  capture     capture_signals / replay of compact captured positions
  search      grid and seeded random parameter search (search.search; not re-exported
              here so that ``admf_assets.engine.search`` stays the module)
"""
from .backtest import BacktestConfig, GridResult, backtest_positions, run_backtest, run_grid, tune_allocator
from .capture import CapturedSignals, capture_signals, capture_to_frame, concat_captured, from_frame, replay
from .metrics import METRIC_COLUMNS, TRADING_DAYS, compute_metrics
from .search import SearchResult  # the search() function: admf_assets.engine.search.search
from .strategies import STRATEGIES, expand_grid, generate_positions, get_strategy, register_strategy

__all__ = [
    "BacktestConfig",
    "CapturedSignals",
    "GridResult",
    "METRIC_COLUMNS",
    "STRATEGIES",
    "SearchResult",
    "TRADING_DAYS",
    "backtest_positions",
    "capture_signals",
    "capture_to_frame",
    "compute_metrics",
    "concat_captured",
    "expand_grid",
    "from_frame",
    "generate_positions",
    "get_strategy",
    "register_strategy",
    "replay",
    "run_backtest",
    "run_grid",
    "tune_allocator",
]
