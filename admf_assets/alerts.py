"""Alerts (seed 001 ``monitoring.alerts``): failed runs and failed blocking checks, recorded in a
table and a log file under the storage root; nothing leaves the machine.

* ``admf_alerts``: a Dagster run-failure sensor (on by default; the daemon runs it) that records
  every failed run of this code location: one ``run_failed`` row with the failure's one-line
  message, one ``check_failed`` row per failed blocking asset check (a blocking check that
  fails with severity error is what fails a run, e.g. a paper ledger's deviation alert);
* ``admf run`` / ``admf backfill`` record their own failed runs the same way, so alerts exist
  without the daemon (a run is recorded once, whoever sees it first);
* the table: ``tables/monitoring/alerts/<day>.parquet`` (one file per UTC day, appended
  atomically under a lock), the DuckDB view ``monitoring.alerts``
  (``admf db "SELECT * FROM monitoring.alerts ORDER BY recorded_at DESC"``), and one line per alert
  in ``alerts.log``.
"""

from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pandas as pd

from admf_assets import settings

__all__ = ["ALERTS_KEY", "COLUMNS", "alerts_for_run", "record_run", "read_alerts", "alerts_sensor"]

ALERTS_KEY = ("monitoring", "alerts")
COLUMNS = ["recorded_at", "run_id", "job", "alert", "asset", "check_name", "severity", "partitions", "message",
           "launched_by"]
_KEY_COLUMNS = ["run_id", "alert", "asset", "check_name"]
logger = logging.getLogger("admf.alerts")
logger.addHandler(logging.NullHandler())  # no terminal output unless the application configures logging


def _store(store=None):
    from resources.storage import TableStore

    return store or TableStore(settings.storage_root())


def _failure_line(event) -> str:
    data = event.event_specific_data
    ufd = getattr(data, "user_failure_data", None)
    if ufd is not None and ufd.description:  # a dg.Failure: its description is the one-line message
        return ufd.description
    err = getattr(data, "error", None)
    msg = (getattr(err, "message", None) or str(err or "failed")).strip()
    return f"{event.step_key}: {msg.splitlines()[0] if msg else 'failed'}"


def alerts_for_run(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """The alert rows of a finished run: a failed run and its failed blocking checks."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return []
    kinds = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION,
             dg.DagsterEventType.RUN_FAILURE}
    events = [e.dagster_event for e in instance.all_logs(run_id, of_type=kinds) if e.dagster_event is not None]
    base = {"run_id": run_id, "job": run.job_name, "launched_by": run.tags.get("admf/launched_by", ""),
            "partitions": run.tags.get("dagster/partition") or "..".join(
                filter(None, (run.tags.get("dagster/asset_partition_range_start"),
                              run.tags.get("dagster/asset_partition_range_end"))))}
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = []
    checks = []
    for ev in events:
        if ev.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            data = ev.event_specific_data
            if not data.passed and (data.blocking or data.severity == dg.AssetCheckSeverity.ERROR):
                desc = data.description or ""
                checks.append({**base, "recorded_at": now, "alert": "check_failed",
                               "asset": data.asset_key.to_user_string(), "check_name": data.check_name, "severity": data.severity.value,
                               "message": f"check {data.check_name} on {data.asset_key.to_user_string()} failed"
                                          + (f": {desc}" if desc else "")})
    failures = [_failure_line(ev) for ev in events if ev.event_type == dg.DagsterEventType.STEP_FAILURE]
    if run.status == dg.DagsterRunStatus.FAILURE:
        message = "; ".join(dict.fromkeys(f for f in failures if "blocking asset check" not in f)) or \
            next((c["message"] for c in checks), "") or "run failed"
        rows.append({**base, "recorded_at": now, "alert": "run_failed", "asset": "", "check_name": "",
                     "severity": "ERROR", "message": message})
    return rows + checks


@contextmanager
def _locked(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".alerts.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def record_run(instance: dg.DagsterInstance, run_id: str, store=None, log=None) -> list[dict]:
    """Record the alerts of ``run_id`` that are not recorded yet; returns the new rows."""
    rows = alerts_for_run(instance, run_id)
    if not rows:
        return []
    from resources.storage import write_parquet_atomic

    store = _store(store)
    day = rows[0]["recorded_at"].strftime("%Y-%m-%d")
    path = store.partition_path(list(ALERTS_KEY), day)
    with _locked(store.root):
        old = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=COLUMNS)
        new = pd.DataFrame(rows, columns=COLUMNS)
        seen = set(map(tuple, old[_KEY_COLUMNS].astype(str).to_numpy())) if len(old) else set()
        new = new[[tuple(r) not in seen for r in new[_KEY_COLUMNS].astype(str).to_numpy()]]
        if new.empty:
            return []
        write_parquet_atomic(pd.concat([old, new], ignore_index=True) if len(old) else new, path)
        with open(store.root / "alerts.log", "a", encoding="utf-8") as fh:
            for r in new.to_dict("records"):
                fh.write(f"{r['recorded_at']:%Y-%m-%d %H:%M:%S} UTC {r['alert']} {r['job']} run {r['run_id'][:8]}: "
                         f"{r['message']}\n")
    store.register_view(list(ALERTS_KEY), partitioned=True)
    for r in new.to_dict("records"):  # the sensor's log (the command line prints its failures itself)
        (log or logger).error(f"alert: {r['alert']} {r['job']} run {r['run_id'][:8]}: {r['message']}")
    return new.to_dict("records")


def read_alerts(store=None) -> pd.DataFrame:
    """Every recorded alert, oldest first."""
    store = _store(store)
    days = sorted(store.stored_partitions(list(ALERTS_KEY)))
    if not days:
        return pd.DataFrame(columns=COLUMNS)
    return store.read_partitions(list(ALERTS_KEY), days).sort_values("recorded_at", kind="stable",
                                                                      ignore_index=True)


@dg.run_failure_sensor(name="admf_alerts", default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
                       description="Records every failed run and its failed blocking checks in the alerts table "
                                   "(admf db \"SELECT * FROM monitoring.alerts\") and alerts.log; no network")
def alerts_sensor(context: dg.RunFailureSensorContext):
    new = record_run(context.instance, context.dagster_run.run_id, log=context.log)
    if not new:
        return dg.SkipReason(f"run {context.dagster_run.run_id[:8]} is recorded already")
    return None
