"""The market data a phase reads, as an observable asset of its workflow.

Why: the workflow's data phase is not partitioned and reads ~800 weekday partitions of
``market/clean_bars``.  Dagster's stale-status resolution skips a partitioned dependency with
100 or more partitions under a non-partitioned asset, so re-ingesting market data would never
make a workflow stale.  Instead, every phase that reads market data (a kind with a
``market_range``) gets an observable source asset ``[workflow, phase, "market_snapshot"]``
as an extra dependency.  Its data version is a hash of the Parquet files of exactly the
partitions the phase reads, so Dagster marks the phase unsynced when those files change,
and only then: a backfill of other dates, or of identical bars, changes nothing.

Observations are recorded by ``admf run`` before it decides what is stale, by ``admf backfill``
for every workflow after ingesting, by a sensor (running whenever the daemon runs, e.g. under
``admf ui``) after any market-data materialization, and by "Observe" in the UI.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date
from typing import Iterable, Sequence

import dagster as dg
from dagster._core.definitions.data_version import (
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    extract_data_version_from_entry,
)

from admf_assets import market
from admf_assets.versions import FileDigests, files_version

# observable source assets (the Dagster way to version data from outside a run) are labelled beta
warnings.filterwarnings("ignore", message=".*observable_source_asset.*", category=dg.BetaWarning)

OUTPUT = "market_snapshot"
#: under the storage root: the remembered digests of the market-data partition files
DIGESTS_FILE = ".admf/market_file_digests.json"
SENSOR = "market_snapshots"


@dataclass(frozen=True)
class Snapshot:
    """The market data one phase of one workflow reads: clean bars, first..last date."""

    workflow: str
    phase: str
    start: date
    end: date

    @property
    def key(self) -> dg.AssetKey:
        return snapshot_key(self.workflow, self.phase)

    def version(self, store) -> tuple[str, dict]:
        """The snapshot's data version from the stored partition files, and its metadata."""
        keys = market.partition_keys_between(self.start, self.end)
        table = list(market.CLEAN_KEY.path)
        cache = FileDigests(store.root / DIGESTS_FILE) if store.local else None  # local files: stat, not reread
        version, missing = files_version(zip(keys, store.partition_paths(table, keys)), cache)
        meta = {"first_date": str(self.start), "last_date": str(self.end), "partitions": len(keys),
                "partitions_missing": missing}
        return version, meta


def snapshot_key(workflow: str, phase: str) -> dg.AssetKey:
    return dg.AssetKey([workflow, phase, OUTPUT])


def snapshots_of(graph) -> list[Snapshot]:
    """One snapshot per phase of ``graph`` that reads market data (``kind.market_range``)."""
    out = []
    for name in graph.order:
        node = graph.phases[name]
        r = node.kind.market_range(node.settings)
        if r is not None and node.kind.reads_assets:
            out.append(Snapshot(graph.workflow_id, name, r[0], r[1]))
    return out


def snapshot_asset(snap: Snapshot) -> dg.SourceAsset:
    @dg.observable_source_asset(
        key=snap.key,
        group_name=snap.workflow,
        required_resource_keys={"storage"},
        description=(f"The market data phase '{snap.phase}' reads: market/clean_bars {snap.start}..{snap.end}. "
                     "Its data version hashes exactly those partition files, so re-ingesting changed bars "
                     "in this range (and only then) marks the phase unsynced."),
    )
    def _observe(context) -> dg.ObserveResult:
        version, meta = snap.version(context.resources.storage.store())
        return dg.ObserveResult(data_version=dg.DataVersion(version), metadata=meta)

    return _observe


# ---------------------------------------------------------------------- recording observations
def latest_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    record = instance.get_latest_data_version_record(key, True)
    if record is None:
        return None
    v = extract_data_version_from_entry(record.event_log_entry)
    return v.value if v else None


def observation(snap: Snapshot, store) -> tuple[dg.AssetObservation, str]:
    version, meta = snap.version(store)
    tags = {DATA_VERSION_TAG: version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"}
    return dg.AssetObservation(asset_key=snap.key, metadata=meta, tags=tags), version


def changed_observations(instance: dg.DagsterInstance, snapshots: Iterable[Snapshot], store) -> list[dg.AssetObservation]:
    """Observations of the snapshots whose files differ from their last recorded version."""
    out = []
    for snap in snapshots:
        obs, version = observation(snap, store)
        if latest_version(instance, snap.key) != version:
            out.append(obs)
    return out


def observe(instance: dg.DagsterInstance, snapshots: Iterable[Snapshot], store) -> list[dg.AssetKey]:
    """Record an observation for every snapshot that changed; returns their keys."""
    events = changed_observations(instance, snapshots, store)
    for ev in events:
        instance.report_runless_asset_event(ev)
    return [ev.asset_key for ev in events]


def snapshot_sensor(snapshots: Sequence[Snapshot]) -> dg.SensorDefinition:
    """Observes every workflow's market snapshots after market data was materialized (and on
    the first tick), so the UI shows the workflows a backfill made stale."""

    @dg.sensor(
        name=SENSOR,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"storage"},
        description="Records the data version of each workflow's market snapshot after market data "
        "changes, so the workflows that read re-ingested dates show as unsynced.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        records = context.instance.fetch_materializations(market.CLEAN_KEY, limit=1).records
        latest = str(records[0].storage_id) if records else "0"
        if context.cursor == latest:
            return dg.SkipReason("no market data materialized since the last observation")
        events = changed_observations(context.instance, snapshots, context.resources.storage.store())
        return dg.SensorResult(asset_events=events, cursor=latest)

    return _sensor
