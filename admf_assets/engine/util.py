"""Small helpers shared across the engine."""

from __future__ import annotations

import numpy as np


def py_scalar(v):
    """A numpy scalar as the plain Python value (for JSON and metadata); others unchanged."""
    return v.item() if isinstance(v, np.generic) else v


class LazyImport:
    """A module, or one attribute of it, imported on first use.

    ``stats = LazyImport("scipy.stats")`` then ``stats.norm.ppf(0.05)``; ``brentq =
    LazyImport("scipy.optimize", "brentq")`` then ``brentq(f, a, b)``.  scipy.stats and
    scipy.optimize cost about a second of start-up, paid otherwise by every ``admf`` command
    (validate, a run with nothing stale) that never computes a statistic.
    """

    def __init__(self, module: str, attr: str | None = None):
        self._module, self._attr, self._obj = module, attr, None

    def _load(self):
        if self._obj is None:
            import importlib

            obj = importlib.import_module(self._module)
            self._obj = getattr(obj, self._attr) if self._attr else obj
        return self._obj

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._load(), name)

    def __call__(self, *args, **kwargs):
        return self._load()(*args, **kwargs)
