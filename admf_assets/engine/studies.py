"""Where Optuna studies live: journal files under the storage root, or an RDB URL.

A search records every finished trial in an Optuna study, so a killed run continues where it
stopped and ``optuna-dashboard`` can show the study while it runs.  Each study has its own
journal file, in a folder per phase and version of what its trials depend on: Optuna replays a
whole journal when it opens one (about 0.2 ms per trial here), so a file holds one study and
opening it replays nothing else.

>>> from pathlib import Path
>>> journal_path(Path("/data/admf"), "basic_research", "parameter_optimization", "3f2a9c", "momentum").as_posix()
'/data/admf/optuna/basic_research/parameter_optimization@3f2a9c/momentum.journal'
>>> study_name("basic_research", "parameter_optimization", "momentum", version="3f2a9c")
'basic_research/parameter_optimization/momentum@3f2a9c'

``open_storage(spec)``: ``None`` -> Optuna's in-memory storage (nothing persists); a string
with ``://`` -> an RDB storage (``sqlite:///x.db``, ``postgresql://...``); anything else -> a
journal file (created with its folder).  The journal is Optuna's ``JournalFileBackend``
format with its file lock (several processes may share a file), with one difference:
Optuna syncs the file to disk after every record (measured here: 1-4 ms per trial); this
backend syncs at most once per ``sync_seconds`` (and on ``sync()``), so a killed process
loses nothing (written data is in the OS page cache) and a power cut at most that much.
"""

from __future__ import annotations

import functools
import json
import os
import time
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # optuna is imported when a storage is opened, not with this module (see __getattr__)
    import optuna
    from optuna.storages import BaseStorage

__all__ = ["JOURNAL_SUFFIX", "journal_dir", "journal_path", "workflow_journals", "study_name", "open_storage",
           "describe_storage", "sync_storage", "SyncedJournalFile", "record_trials"]

JOURNAL_SUFFIX = ".journal"


def journal_dir(root: str | os.PathLike, workflow_id: str) -> Path:
    """The folder of a workflow's journal files under the storage root."""
    return Path(root) / "optuna" / workflow_id


def journal_path(root: str | os.PathLike, workflow_id: str, phase: str, version: str, study: str) -> Path:
    """The journal file of one study of a phase's search configuration (``study``: the
    strategy, with its regime when grouped)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.=@" else "_" for ch in study)
    return journal_dir(root, workflow_id) / f"{phase}@{version}" / f"{safe}{JOURNAL_SUFFIX}"


def workflow_journals(root: str | os.PathLike, workflow_id: str, phase: str | None = None) -> list[Path]:
    """A workflow's journal files (of one phase when given), most recently written first."""
    d = journal_dir(root, workflow_id)
    if not d.is_dir():
        return []
    files = [p for p in d.glob(f"*/*{JOURNAL_SUFFIX}") if phase is None or p.parent.name.startswith(f"{phase}@")]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def study_name(*parts: str, version: str | None = None) -> str:
    """``workflow/phase/strategy[/regime]@version``: one study per searched space."""
    name = "/".join(str(p) for p in parts if p not in (None, ""))
    return f"{name}@{version}" if version else name


@functools.cache
def _synced_journal_file() -> type:
    """The class below, built the first time a journal is opened (it subclasses Optuna's)."""
    from optuna.storages.journal import JournalFileBackend

    class SyncedJournalFile(JournalFileBackend):
        """Optuna's journal file backend, synced to disk at most every ``sync_seconds``."""

        def __init__(self, file_path: str, sync_seconds: float = 1.0):
            super().__init__(file_path)
            self.sync_seconds = float(sync_seconds)
            self._last_sync = time.monotonic()
            self._unsynced = False
            #: record_trials' encoded record heads (what every trial of a search shares), kept
            #: with the distribution objects they encode (so their ids stay theirs)
            self.heads: dict[tuple, tuple[tuple, str]] = {}

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            self.append_lines([json.dumps(log, separators=(",", ":")) for log in logs])

        def append_lines(self, lines: list[str]) -> None:
            """Append journal records already encoded as JSON (one per line) in one locked write."""
            text = "\n".join(lines) + "\n"
            self._lock.acquire()
            try:
                with open(self._file_path, "ab") as f:
                    f.write(text.encode("utf-8"))
                    f.flush()
                    self._unsynced = True
                    if time.monotonic() - self._last_sync >= self.sync_seconds:
                        os.fsync(f.fileno())
                        self._mark_synced()
            finally:
                self._lock.release()

        def sync(self) -> None:
            """Flush what was written to disk now."""
            if not self._unsynced:
                return
            fd = os.open(self._file_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._mark_synced()

        def _mark_synced(self) -> None:
            self._unsynced = False
            self._last_sync = time.monotonic()

    SyncedJournalFile.__qualname__ = "SyncedJournalFile"  # pickled by name, found via __getattr__
    return SyncedJournalFile


def __getattr__(name: str) -> Any:
    if name == "SyncedJournalFile":  # ``from admf_assets.engine.studies import SyncedJournalFile``
        return _synced_journal_file()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_storage(spec: str | os.PathLike | None, sync_seconds: float = 1.0) -> BaseStorage | None:
    """An Optuna storage for ``spec`` (see the module docstring); ``None`` for in-memory."""
    if spec is None:
        return None
    text = str(spec)
    from optuna.storages import JournalStorage, RDBStorage

    if "://" in text:
        return RDBStorage(text)
    path = Path(text).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(_synced_journal_file()(str(path), sync_seconds))


def sync_storage(storage: BaseStorage | None) -> None:
    """Sync a journal file to disk (RDB storages commit every write themselves)."""
    backend = getattr(storage, "_backend", None)
    if backend is not None and isinstance(backend, _synced_journal_file()):
        backend.sync()


def record_trials(study: optuna.Study, trials: list) -> None:
    """Add finished trials to ``study`` -- ``Study.add_trials``, written as ONE journal append.

    ``JournalStorage.create_new_trial`` writes one record, then re-reads and replays it (about
    0.6 ms per trial measured here, more than the engine's cost of evaluating it).  For a
    journal file this writes the same CREATE_TRIAL records (Optuna's journal format, built as
    ``create_new_trial`` builds them) in one locked append without the replay; the storage
    object is not read again by the search (a fresh one replays the file).  The trials are the
    search's own (built valid), so they are not validated again.  Other storages take
    ``add_trials``.  ``tests/engine/test_engine_optimize.py`` checks that the records read
    back as ``add_trials``' would.
    """
    storage = study._storage
    backend = getattr(storage, "_backend", None)
    from optuna.storages import JournalStorage

    fast = isinstance(storage, JournalStorage) and isinstance(backend, _synced_journal_file())
    if fast:
        try:
            from optuna.distributions import distribution_to_json
            from optuna.storages.journal._storage import JournalOperation

            worker = storage._replay_result.worker_id
        except (ImportError, AttributeError):  # another Optuna: the public path
            fast = False
    if not fast:
        study.add_trials(trials)
        return
    # one JSON line per trial; the parts every trial of a search shares (its distributions, the
    # worker, the study) are encoded once per search, each distinct timestamp once per batch
    enc = json.JSONEncoder(separators=(",", ":"))
    heads = backend.heads
    if len(heads) > 256:  # trials with distributions of their own: a bounded cache
        heads.clear()
    stamps: dict[Any, str] = {}

    def stamp(dt) -> str:
        if dt not in stamps:
            stamps[dt] = enc.encode(dt.astimezone(timezone.utc).isoformat(timespec="microseconds"))
        return stamps[dt]

    lines = []
    for t in trials:
        key = (study._study_id, worker, int(t.state), bool(t.intermediate_values),
               tuple((k, id(d)) for k, d in t.distributions.items()))
        if key not in heads:
            fixed = {"op_code": JournalOperation.CREATE_TRIAL, "worker_id": worker, "study_id": study._study_id,
                     "state": t.state,
                     "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()}}
            if not t.intermediate_values:
                fixed["intermediate_values"] = {}
            heads[key] = (tuple(t.distributions.values()), enc.encode(fixed)[:-1])  # without the closing brace
        head = heads[key][1]
        values = t.values
        multi = values is not None and len(values) > 1
        rest = {"value": None if multi else t.value, "values": values if multi else None,
                "params": {k: t.distributions[k].to_internal_repr(v) for k, v in t.params.items()},
                "user_attrs": t.user_attrs, "system_attrs": t.system_attrs}
        if t.intermediate_values:
            rest["intermediate_values"] = t.intermediate_values
        line = head + "," + enc.encode(rest)[1:-1]
        line += ',"datetime_start":' + (stamp(t.datetime_start) if t.datetime_start else "null")
        if t.datetime_complete:
            line += ',"datetime_complete":' + stamp(t.datetime_complete)
        lines.append(line + "}")
    if lines:
        backend.append_lines(lines)


def describe_storage(spec: str | os.PathLike | None) -> str:
    """What to show users: the URL without a password, or the journal file's path."""
    if spec is None:
        return "in-memory (not persisted)"
    text = str(spec)
    if "://" in text and "@" in text:
        scheme, rest = text.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return text
