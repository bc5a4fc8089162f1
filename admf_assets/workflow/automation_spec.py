"""Validation of a workflow's ``schedule`` / ``timezone`` keys (before anything runs).

    workflow:
      schedule: "0 22 * * 1-5"          # cron: minute hour day-of-month month day-of-week
      timezone: America/New_York        # IANA name; default UTC
      # or: schedule: {cron: "0 22 * * 1-5", timezone: America/New_York}
      run_on_new_market_data: true

The cron string is checked by Dagster's own parser (the one the schedule will use, in
``admf_assets.automation``), loaded only when a workflow has a schedule; the time zone by the
standard library's tz database.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_cron", "check_timezone", "schedule_mapping"]


def schedule_mapping(section: dict[str, Any]) -> dict[str, Any]:
    """``schedule: {cron, timezone}`` -> ``schedule: cron`` plus ``timezone``."""
    section = dict(section)
    sched = dict(section["schedule"])
    extra = sorted(set(sched) - {"cron", "timezone"})
    if extra:
        raise ValueError(f"[schedule] unknown key '{extra[0]}'; allowed: cron, timezone")
    if "cron" not in sched:
        raise ValueError("[schedule] give the cron string: schedule: {cron: \"0 22 * * 1-5\"}")
    if "timezone" in sched:
        if section.get("timezone") not in (None, sched["timezone"]):
            raise ValueError("[timezone] give the time zone once (in schedule or beside it)")
        section["timezone"] = sched["timezone"]
    section["schedule"] = sched["cron"]
    return section


def check_cron(value: str | None) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    from admf_assets.automation import check_cron as dagster_accepts

    if not dagster_accepts(text):
        raise ValueError(f"invalid cron schedule {value!r}: expected five fields, minute hour day-of-month "
                         "month day-of-week, e.g. \"0 22 * * 1-5\" (22:00 on weekdays)")
    return text


def check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as 'UTC', 'America/New_York', "
                         "'Europe/London'") from None
    return value
