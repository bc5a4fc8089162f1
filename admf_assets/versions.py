"""Content hashes: the data versions Dagster records for every stored output.

A data version is derived from what was stored, not from when or by which run, so a phase
recomputed with identical results keeps its data version and leaves everything downstream
fresh (Dagster compares the data versions an asset was computed from with the current ones).
No Dagster here: the compiler wraps the strings in ``dg.DataVersion``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: length of the hex digests shown as data versions in the UI
DIGEST = 16


def content_version(value: Any) -> str:
    """A hash of a phase output's content: column names and dtypes plus every value, row order
    included (the index is not stored, so it is not hashed).

    >>> a = pd.DataFrame({"x": [1.0, 2.0], "p": [{"n": 5}, {"n": 10}]})
    >>> content_version(a) == content_version(a.copy())
    True
    >>> content_version(a) == content_version(a.assign(x=[1.0, 2.5]))
    False
    """
    h = hashlib.sha256()
    if isinstance(value, pd.Series):
        value = value.to_frame()
    if isinstance(value, pd.DataFrame):
        h.update(repr([(str(c), str(t)) for c, t in value.dtypes.items()]).encode())
        h.update(str(len(value)).encode())
        for col in value.columns:
            h.update(_column_digest(value[col]))
    elif value is None:
        h.update(b"None")
    else:
        h.update(repr(value).encode())
    return h.hexdigest()[:DIGEST]


def _column_digest(col: pd.Series) -> bytes:
    try:
        hashed = pd.util.hash_pandas_object(col, index=False)
    except TypeError:  # unhashable cells (dicts, lists): hash their text
        hashed = pd.util.hash_pandas_object(col.map(repr), index=False)
    return hashlib.sha256(np.ascontiguousarray(hashed.to_numpy()).tobytes()).digest()


def files_version(paths: Iterable[tuple[str, Path]]) -> tuple[str, int]:
    """One hash over ``(label, file)`` pairs, in the order given: each file's bytes, or a
    "missing" marker. Returns the digest and how many files were missing.

    The market data a workflow reads is hashed this way from the Parquet files the data phase
    will read (Parquet writing is deterministic, so identical bars give identical bytes).
    """
    h = hashlib.sha256()
    missing = 0
    for label, path in paths:
        h.update(label.encode())
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            missing += 1
            h.update(b"\0missing")
            continue
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()[:DIGEST], missing
