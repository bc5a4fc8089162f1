"""Train/test split of a sorted list of trading dates.

Exactly one rule applies:

* ``test_start``: the first test date (the first trading date on or after it);
* ``train_end``: the last train date (test starts at the first trading date after it);
* ``test_fraction``: the last share of trading days is the test set (rounded up, at least one).

>>> import pandas as pd
>>> dates = list(pd.bdate_range("2023-01-02", periods=10))
>>> DataSplit(test_fraction=0.3).test_start_index(dates)
7
>>> DataSplit(test_start=pd.Timestamp("2023-01-09").date()).test_start_index(dates)
5
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any, Sequence

__all__ = ["DEFAULT_TEST_FRACTION", "SPLIT_RULES", "DataSplit"]

#: the test share of the data when no split is given
DEFAULT_TEST_FRACTION = 0.3
SPLIT_RULES = ("test_start", "train_end", "test_fraction")


def _as_date(d: Any) -> date:
    if hasattr(d, "date") and callable(d.date):
        return d.date()
    return d


@dataclass(frozen=True)
class DataSplit:
    test_start: date | None = None
    train_end: date | None = None
    test_fraction: float | None = None

    def __post_init__(self) -> None:
        given = [k for k in SPLIT_RULES if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of {', '.join(SPLIT_RULES)} (got {', '.join(given)})")
        if self.test_fraction is not None and not 0.0 < float(self.test_fraction) < 1.0:
            raise ValueError(f"test_fraction must lie strictly between 0 and 1 (got {self.test_fraction})")

    @property
    def rule(self) -> str:
        """The rule in force (``test_fraction`` when none was given)."""
        return next((k for k in SPLIT_RULES if getattr(self, k) is not None), "test_fraction")

    def test_start_index(self, dates: Sequence[Any]) -> int:
        """Index of the first test date in sorted trading ``dates`` (``len(dates)`` if none)."""
        n = len(dates)
        if self.test_start is not None:
            return next((i for i, d in enumerate(dates) if _as_date(d) >= self.test_start), n)
        if self.train_end is not None:
            return next((i for i, d in enumerate(dates) if _as_date(d) > self.train_end), n)
        fraction = float(self.test_fraction if self.test_fraction is not None else DEFAULT_TEST_FRACTION)
        n_test = max(1, int(math.ceil(n * fraction))) if n else 0
        return n - n_test
