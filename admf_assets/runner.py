"""Launching runs from the command line into the shared instance (the one the UI shows)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import dagster as dg
import pandas as pd

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def load_defs() -> dg.Definitions:
    import definitions

    return definitions.defs


def job_by_name(name: str) -> dg.JobDefinition:
    """Module-level reconstructor so the multiprocess executor can rebuild the job in workers."""
    return load_defs().resolve_job_def(name)


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    failures: list[str]


def partition_range(start, end) -> tuple[str, str, list[str]]:
    """Clamp [start, end] to the market partitions; returns first key, last key, all keys."""
    from admf_assets.market import market_partitions

    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if end < start:
        raise ValueError(f"--end {end.date()} is before --start {start.date()}")
    keys = [k for k in market_partitions.get_partition_keys()
            if start <= pd.Timestamp(k) <= end]
    if not keys:
        first, last = market_partitions.get_first_partition_key(), market_partitions.get_last_partition_key()
        raise ValueError(
            f"no market-data partitions between {start.date()} and {end.date()} "
            f"(partitions run weekdays {first}..{last})"
        )
    return keys[0], keys[-1], keys


def run_job(job_name: str, instance: dg.DagsterInstance, tags: dict | None = None,
            executor: str | None = None, log_level: str = "WARNING") -> RunOutcome:
    """Run a job of the code location as ONE run recorded in ``instance``."""
    kind = (executor or os.environ.get("ADMF_EXECUTOR") or "in_process").lower()
    tags = {"admf/launched_by": "admf-cli", **(tags or {})}
    run_config = {"loggers": {"console": {"config": {"log_level": log_level.upper()}}}}
    if kind.startswith("in"):
        result = job_by_name(job_name).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, run_config=run_config
        )
    else:
        os.environ["ADMF_EXECUTOR"] = kind
        recon = dg.build_reconstructable_job(
            "admf_assets.runner", "job_by_name", reconstructable_args=(job_name,)
        )
        with dg.execute_job(recon, instance=instance, tags=tags, raise_on_error=False,
                            run_config=run_config) as result:
            return RunOutcome(result.run_id, result.success, _failures(result))
    return RunOutcome(result.run_id, result.success, _failures(result))


def _failures(result) -> list[str]:
    out = []
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error
            msg = getattr(err, "message", str(err)).strip()
            out.append(f"{ev.step_key}: {msg.splitlines()[-1] if msg else 'failed'}")
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if not data.passed:
                out.append(f"check {data.check_name} on {data.asset_key.to_user_string()} failed")
    return out


def backfill(start, end, instance: dg.DagsterInstance, executor: str | None = None,
             log_level: str = "WARNING") -> RunOutcome:
    first, last, _ = partition_range(start, end)
    return run_job("market_data", instance, tags={RANGE_START: first, RANGE_END: last},
                   executor=executor, log_level=log_level)
