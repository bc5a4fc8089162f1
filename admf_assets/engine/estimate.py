"""How much memory and time a grid evaluation needs, before it runs; chunk sizes from a budget.

A search's memory has two parts:

* **fixed**: what grows with the number of combinations and cannot be chunked -- the
  parameter table, the drawn trials of a random search, the metrics and trial history, the
  per-window indicator cache (one (symbols x bars) array per distinct window) and, when the
  returns are kept, one float64 per combination and bar;
* **working**: the temporaries of one chunk of combinations (the strategy's (symbols x combos
  x bars) arrays, the sleeve returns), per worker thread.

``run_grid`` evaluates chunks, so a memory budget bounds the working part by the chunk size
(:func:`chunk_combinations`); the fixed part must fit by itself.  The constants were measured
on this project's engine (``tracemalloc`` and peak RSS, 2 to 20 symbols x 2,600 bars, 2,000 to
20,000 combinations of ``momentum``) and rounded up (tracemalloc: about 500 bytes per combination of the trial history and 50 per drawn
parameter value; a chunk's temporaries about 17 bytes per symbol x combination x bar).

>>> e = search_estimate(1_000_000_000, 522, 2, 3, distinct_windows=20)
>>> e.fixed_bytes > 100e9
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

__all__ = ["Estimate", "search_estimate", "chunk_combinations", "distinct_windows", "format_bytes",
           "format_seconds", "BYTES_PER_COMBO", "BYTES_PER_DRAWN_TRIAL", "BYTES_PER_CHUNK_ELEMENT",
           "ELEMENTS_PER_SECOND"]

#: trial table, metrics, history, ranking copies, per kept combination (measured ~500 B)
BYTES_PER_COMBO = 1_000
#: one drawn trial of a random search before de-duplication, per parameter (measured ~50 B)
BYTES_PER_DRAWN_TRIAL = 64
#: working memory per (symbol x combination x bar) element of a chunk (measured ~17 B)
BYTES_PER_CHUNK_ELEMENT = 24
#: working memory per (combination x bar) of a chunk: returns block and metric temporaries
BYTES_PER_CHUNK_ROW = 48
#: copies of the (symbols x bars) data a grid keeps (closes, returns, caches)
DATA_COPIES = 8
#: bytes of one cached indicator per distinct window, per (symbol x bar) element (one float64
#: array plus the cumulative sums and gathering copies, measured ~9 B)
BYTES_PER_WINDOW_ELEMENT = 10
#: what a phase allocates outside the grid: its input pivot, the history frame, sorting, previews
PHASE_OVERHEAD_BYTES = 8e6
#: (symbol x combination x bar) elements evaluated per second and worker (measured 3e7 at 20
#: symbols, 8e6 at 2 symbols on a 2-core machine; the lower one is used)
ELEMENTS_PER_SECOND = 8e6


@dataclass(frozen=True)
class Estimate:
    """Memory and time of one grid evaluation (see the module docstring)."""

    combinations: int
    bars: int
    symbols: int
    fixed_bytes: float
    chunk_bytes_per_combo: float  #: working memory of one combination in a chunk, per worker
    default_chunk: int  #: combinations per chunk without a budget
    seconds: float  #: with one worker

    def _workers(self, workers: int) -> int:
        return max(1, min(int(workers), self.combinations))  # a thread per chunk at most

    def working_bytes(self, chunk: int | None = None, workers: int = 1) -> float:
        c = max(1, min(self.default_chunk if chunk is None else chunk, self.combinations))
        n = max(1, min(self._workers(workers), -(-self.combinations // c)))
        return self.chunk_bytes_per_combo * c * n

    def peak_bytes(self, chunk: int | None = None, workers: int = 1) -> float:
        return self.fixed_bytes + self.working_bytes(chunk, workers)

    def min_bytes(self, workers: int = 1) -> float:
        """One combination per chunk: the least it can run in."""
        return self.fixed_bytes + self.chunk_bytes_per_combo * self._workers(workers)

    def time(self, workers: int = 1) -> float:
        return self.seconds / self._workers(workers)

    def max_combinations(self, budget: float, workers: int = 1) -> int:
        """About how many combinations fit in ``budget`` bytes (same bars and symbols)."""
        per = self.fixed_bytes / max(1, self.combinations)
        room = budget - self.chunk_bytes_per_combo * self._workers(workers)
        return max(0, int(room / per)) if per > 0 else self.combinations

    def describe(self) -> str:
        return (f"{self.combinations:,} combinations x {self.bars:,} bars x {self.symbols:,} symbol(s): "
                f"about {format_bytes(self.peak_bytes())} of memory and {format_seconds(self.seconds)}")


def _default_chunk(n_symbols: int, n_bars: int) -> int:
    from .backtest import _chunk_size

    return _chunk_size(n_symbols, n_bars, None)


def search_estimate(n_combos: int, n_bars: int, n_symbols: int, n_params: int, *, distinct_windows: int = 0,
                    n_drawn: int | None = None, keep_returns: bool = False) -> Estimate:
    """Estimate of evaluating ``n_combos`` combinations over ``n_bars`` x ``n_symbols``
    (``n_drawn`` trials drawn first by a random search; ``distinct_windows``: distinct
    integer parameter values, each one cached (symbols x bars) indicator)."""
    n_combos, n_bars, n_symbols = int(n_combos), max(1, int(n_bars)), max(1, int(n_symbols))
    data = float(n_symbols) * n_bars * 8
    fixed = (PHASE_OVERHEAD_BYTES + DATA_COPIES * data
             + float(distinct_windows) * n_symbols * n_bars * BYTES_PER_WINDOW_ELEMENT + float(n_combos) * BYTES_PER_COMBO
             + float(n_drawn or 0) * max(1, n_params) * BYTES_PER_DRAWN_TRIAL)
    if keep_returns:
        fixed += float(n_combos) * n_bars * 8
    per_combo = float(n_symbols) * n_bars * BYTES_PER_CHUNK_ELEMENT + float(n_bars) * BYTES_PER_CHUNK_ROW
    seconds = float(n_combos) * n_bars * n_symbols / ELEMENTS_PER_SECOND
    return Estimate(n_combos, n_bars, n_symbols, fixed, per_combo, _default_chunk(n_symbols, n_bars), seconds)


def chunk_combinations(budget_bytes: float, n_combos: int, n_bars: int, n_symbols: int, distinct_windows: int = 0,
                       *, workers: int = 1, keep_returns: bool = False, n_params: int = 1) -> int:
    """Combinations per chunk so that the evaluation's memory (fixed part + ``workers`` chunks)
    stays under ``budget_bytes``; never more than the default chunk.  A ValueError (saying how
    much is needed) when not even one combination at a time fits."""
    est = search_estimate(n_combos, n_bars, n_symbols, n_params, distinct_windows=distinct_windows,
                          keep_returns=keep_returns)
    room = budget_bytes - est.fixed_bytes
    chunk = int(room // (est.chunk_bytes_per_combo * max(1, min(workers, n_combos)))) if room > 0 else 0
    if chunk < 1:
        raise ValueError(f"a memory limit of {format_bytes(budget_bytes)} is too small for {n_combos:,} combinations "
                         f"x {n_bars:,} bars x {n_symbols:,} symbol(s): it needs at least "
                         f"{format_bytes(est.min_bytes(workers))}")
    return max(1, min(chunk, est.default_chunk))


def distinct_windows(params) -> int:
    """Distinct values of the integer parameters (each a cached indicator array) of a parameter frame
    or of ``{name: array}`` columns."""
    cols = params if isinstance(params, Mapping) else {c: params[c].to_numpy() for c in params.columns}
    return int(sum(len(np.unique(v)) for v in cols.values() if np.issubdtype(np.asarray(v).dtype, np.integer)))


def format_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} B"


def format_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "forever"
    if s >= 86400:
        return f"{s / 86400:,.1f} days"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"
