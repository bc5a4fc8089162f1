"""Content hashes: the data versions Dagster records for every stored output.

A data version is derived from what was stored, not from when or by which run, so a phase
recomputed with identical results keeps its data version and leaves everything downstream
fresh (Dagster compares the data versions an asset was computed from with the current ones).
No Dagster here: the compiler wraps the strings in ``dg.DataVersion``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
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


def files_version(paths: Iterable[tuple[str, Path]], cache: FileDigests | None = None) -> tuple[str, int]:
    """One hash over ``(label, file)`` pairs, in the order given: each file's bytes, or a
    "missing" marker. Returns the digest and how many files were missing.

    The market data a workflow reads is hashed this way from the Parquet files the data phase
    will read (Parquet writing is deterministic, so identical bars give identical bytes).
    ``cache``: remembered digests of unchanged files (see :class:`FileDigests`).
    """
    h = hashlib.sha256()
    missing = 0
    for label, path in paths:
        h.update(label.encode())
        digest = cache.digest(path) if cache is not None else _file_digest(path)
        if digest is None:
            missing += 1
            h.update(b"\0missing")
            continue
        h.update(digest)
    if cache is not None:
        cache.save()
    return h.hexdigest()[:DIGEST], missing


def _file_digest(path) -> bytes | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).digest()
    except FileNotFoundError:
        return None


class FileDigests:
    """The SHA-256 of local files, remembered in one JSON file by each file's size, mtime and
    inode, so an unchanged file is not read again (``git``'s index does the same).

    Every ``admf run`` hashes the market-data partitions its phases read (~800 files for three
    years); with this it stats them instead.  Stored files are replaced by a rename (a new
    inode and mtime), never edited in place.  A digest is remembered only for a file last
    modified over ``settle`` seconds before it was read (a write in the same clock tick as the
    read could otherwise keep the same signature).  A missing, unreadable or foreign cache file
    is ignored and rewritten; the cache is written atomically when it changed.
    """

    def __init__(self, path: str | os.PathLike, settle: float = 2.0):
        self.path = Path(path)
        self.settle = settle
        self._changed = False
        try:
            data = json.loads(self.path.read_text())
            self._known = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self._known = {}

    def digest(self, path) -> bytes | None:
        """The file's SHA-256, or None when it does not exist."""
        key = os.fspath(path)
        try:
            st = os.stat(key)
        except FileNotFoundError:
            return None
        sig = [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = self._known.get(key)
        if isinstance(entry, list) and len(entry) == 4 and entry[:3] == sig and isinstance(entry[3], str):
            try:
                return bytes.fromhex(entry[3])
            except ValueError:
                pass
        digest = _file_digest(key)
        if digest is not None and time.time_ns() - st.st_mtime_ns > self.settle * 1e9:
            self._known[key] = [*sig, digest.hex()]
            self._changed = True
        return digest

    def save(self) -> None:
        if not self._changed:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._known, separators=(",", ":")))
            os.replace(tmp, self.path)  # concurrent writers: the last one wins, both are right
            self._changed = False
        except OSError:
            tmp.unlink(missing_ok=True)  # a read-only store: hash again next time
