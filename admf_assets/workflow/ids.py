"""One workflow id, one file: two files never share a workflow's tables, history and reports.

A workflow id (``workflow.id``, else the slugified file name) prefixes every asset key, names
the DuckDB schema and the report folder.  Two different files with the same id would silently
replace each other's results, e.g. a copy ``~/experiments/basic-research.yaml`` of
``workflows/basic_research.yaml``.  Two guards refuse that, naming both files:

* at validation: a file outside the workflows folder whose id is the id of a file in it (ids
  compared ignoring case, like DuckDB schema names);
* at run time: the storage root records which file each id ran from
  (``<storage>/workflow_ids/<id>.json``); another file is refused while the recorded one still
  exists (a moved or deleted file hands its id over).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import yaml

from .errors import WorkflowError

__all__ = ["declared_id", "check_against_folder", "check_registered", "claim"]

_SUFFIXES = (".yaml", ".yml")


def declared_id(path: Path, slugify) -> str | None:
    """The id a workflow file maps to (``workflow.id`` or its slugified name), read cheaply;
    None when the file cannot be read (its own validation reports that)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a broken neighbour is not this file's problem
        return None
    wf = doc.get("workflow") if isinstance(doc, dict) else None
    wid = wf.get("id") if isinstance(wf, dict) else None
    return wid if isinstance(wid, str) and wid else slugify(path.stem)


def _advice(wid: str) -> str:
    return f"give this file its own id, e.g. `workflow: {{id: {wid}_copy}}`"


def check_against_folder(wid: str, path: Path | None, folder: Path, file: str | None, slugify) -> None:
    """Refuse ``path`` when another file of the workflows ``folder`` maps to the same id."""
    if path is None or not folder.is_dir():
        return
    here = path.resolve()
    for other in sorted(folder.iterdir()):
        if other.suffix not in _SUFFIXES or not other.is_file() or other.resolve() == here:
            continue
        if slugify(other.stem) != wid.lower() and not _may_declare(other, wid):
            continue  # cheap: only files whose name matches, or that set an id, are read
        oid = declared_id(other, slugify)
        if oid is not None and oid.lower() == wid.lower():
            raise WorkflowError(f"workflow id '{wid}' is also the id of {other} (its tables, asset history and "
                                f"reports); running this file would replace them: {_advice(wid)}",
                                file=file, field="workflow.id")


def _may_declare(path: Path, wid: str) -> bool:
    try:
        return wid.lower() in path.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False


def _record_path(storage_root: Path, wid: str) -> Path:
    return storage_root / "workflow_ids" / f"{wid.lower()}.json"


def _recorded(storage_root: Path, wid: str) -> dict[str, Any] | None:
    try:
        return json.loads(_record_path(storage_root, wid).read_text())
    except (OSError, ValueError):
        return None


def check_registered(wid: str, path: Path | None, storage_root: Path, file: str | None) -> None:
    """Refuse ``path`` when the storage root recorded another, still existing, file for ``wid``."""
    if path is None:
        return
    rec = _recorded(storage_root, wid)
    if rec is None:
        return
    other = Path(rec.get("file", ""))
    if other.resolve() == Path(path).resolve() or not other.is_file():
        return
    raise WorkflowError(f"workflow id '{wid}' already holds the results of {other} in {storage_root} (tables, "
                        f"asset history, reports); running this file would replace them: {_advice(wid)}",
                        file=file, field="workflow.id")


def claim(wid: str, path: Path | None, storage_root: Path, file: str | None) -> None:
    """Record ``path`` as the file of ``wid`` (after :func:`check_registered`); atomic."""
    if path is None:
        return
    check_registered(wid, path, storage_root, file)
    rec = _recorded(storage_root, wid)
    resolved = str(Path(path).resolve())
    if rec is not None and rec.get("file") == resolved and rec.get("id") == wid:
        return
    target = _record_path(storage_root, wid)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(target, os.PathLike):  # an fsspec root (UPath): no hard links; one object write
        target.write_text(json.dumps({"id": wid, "file": resolved}))
        return
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps({"id": wid, "file": resolved}))
    try:
        if rec is None:
            try:
                os.link(tmp, target)  # first claim: atomic, fails if another process claimed meanwhile
            except FileExistsError:
                check_registered(wid, path, storage_root, file)
                os.replace(tmp, target)
        else:  # the recorded file moved away (or is this one): take the id over
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
