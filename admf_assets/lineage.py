"""What the report says about where its numbers come from: for every input asset, its latest
materialization (time, run, code version, data version, partitions), and each phase's
execution time and peak memory as recorded in that materialization's metadata."""

from __future__ import annotations

import time
from typing import Iterable

import dagster as dg

__all__ = ["lineage_rows", "EXECUTION_KEYS"]

CODE_VERSION_TAG = "dagster/code_version"
DATA_VERSION_TAG = "dagster/data_version"
INPUT_POINTER_TAG = "dagster/input_event_pointer/"
#: metadata copied into a row when an event has it (the market data source, ...)
DESCRIPTIVE_KEYS = ("source",)
#: metadata the compiler records per phase (see profile.PhaseProfile.metadata)
EXECUTION_KEYS = {"compute_seconds": "seconds", "cpu_seconds": "cpu_seconds", "peak_rss_mb": "peak_rss_mb",
                  "rss_increase_mb": "rss_increase_mb", "memory_measured": "measured"}


def _value(entry):
    return getattr(entry, "value", entry)


def _row(phase: str, key: dg.AssetKey, ev) -> dict:
    row: dict = {"phase": phase, "asset": key.to_user_string(), "materialized_at": "", "run_id": "",
                 "code_version": "", "data_version": ""}
    if ev is None:
        return row
    mat = ev.asset_materialization
    tags = (mat.tags or {}) if mat is not None else {}
    row.update({"materialized_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ev.timestamp)),
                "run_id": ev.run_id[:8], "code_version": tags.get(CODE_VERSION_TAG, ""),
                "data_version": tags.get(DATA_VERSION_TAG, "")[:12]})
    meta = mat.metadata if mat is not None else {}
    for src, dst in EXECUTION_KEYS.items():
        if src in meta:
            row[dst] = _value(meta[src])
    for k in DESCRIPTIVE_KEYS:
        if k in meta:
            row[k] = _value(meta[k])
    return row


def _upstream(instance: dg.DagsterInstance, ev) -> list[tuple[dg.AssetKey, object]]:
    """The input materializations an event points to (Dagster's input event pointer tags)."""
    mat = ev.asset_materialization if ev is not None else None
    out = []
    for tag, value in ((mat.tags or {}) if mat is not None else {}).items():
        if not tag.startswith(INPUT_POINTER_TAG):
            continue
        key = dg.AssetKey.from_user_string(tag[len(INPUT_POINTER_TAG):])
        try:
            recs = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, storage_ids=[int(value)]),
                                                   limit=1).records
        except (ValueError, TypeError):
            continue
        if recs:
            out.append((key, recs[0].event_log_entry))
    return out


def lineage_rows(instance: dg.DagsterInstance, assets: Iterable[tuple[str, dg.AssetKey, bool]]) -> list[dict]:
    """One row per ``(phase, key, shared)``: ``phase``, ``asset``, ``materialized_at``
    (local time), ``run_id`` (first 8 characters), ``code_version``, ``data_version`` (first
    12 characters), the phase's execution measurements (``seconds``, ``cpu_seconds``,
    ``peak_rss_mb``, ``rss_increase_mb``, ``measured``) and ``source`` when its metadata
    has them.  A ``shared`` asset (market data, partitioned, outside the workflow) also gets
    ``partitions`` (materialized count and range) and a row for each input its latest
    materialization read (the raw bars and their source).  An asset never materialized has
    empty fields."""
    assets = list(assets)
    events = instance.get_latest_materialization_events([k for _, k, _ in assets]) if assets else {}
    out = []
    for phase, key, shared in assets:
        ev = events.get(key)
        row = _row(phase, key, ev)
        if shared:
            parts = sorted(instance.get_materialized_partitions(key))
            if parts:
                row["partitions"] = f"{len(parts)} ({parts[0]}..{parts[-1]})"
            out.append(row)
            out += [_row(f"{phase} (input of {key.to_user_string()})", k, e) for k, e in _upstream(instance, ev)]
            continue
        out.append(row)
    return out
