"""Small helpers shared across the engine."""

from __future__ import annotations

import numpy as np


def py_scalar(v):
    """A numpy scalar as the plain Python value (for JSON and metadata); others unchanged."""
    return v.item() if isinstance(v, np.generic) else v
