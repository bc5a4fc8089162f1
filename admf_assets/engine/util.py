"""Small helpers shared across the engine."""

from __future__ import annotations

import importlib

import numpy as np


class LazyModule:
    """A module (or one of its attributes) imported on first use: ``norm = LazyModule("scipy.stats",
    "norm")``, then ``norm.ppf(0.05)``.  Keeps heavy imports (scipy.stats: about a second) out
    of every process that only loads the phase kinds (the CLI, a forkserver, a Celery worker)."""

    def __init__(self, module: str, attr: str | None = None):
        self._module, self._attr, self._obj = module, attr, None

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._obj is None:
            mod = importlib.import_module(self._module)
            self._obj = getattr(mod, self._attr) if self._attr else mod
        return getattr(self._obj, name)


def py_scalar(v):
    """A numpy scalar as the plain Python value (for JSON and metadata); others unchanged."""
    return v.item() if isinstance(v, np.generic) else v
