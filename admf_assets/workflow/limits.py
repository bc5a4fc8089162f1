"""Phase resources at validation: what ``memory_limit_gb`` / ``max_workers`` do, and whether
a phase's estimated memory and time fit before anything runs.

* A kind declares the resources its run honours (``PhaseKind.resource_keys``); a resource set
  for a kind that ignores it draws a one-line "ignored" warning.
* A kind estimates what its run will need (``PhaseKind.demand``: the engine's memory and time
  estimate of a search from trials x bars x symbols).  Refused, with what to change:
  a ``memory_limit_gb`` below what the phase needs with one combination at a time; a phase that
  needs more memory than the machine has available; a phase whose estimated time exceeds its
  ``timeout``.  A phase estimated to take more than an hour gets a warning.
"""

from __future__ import annotations

import os
from typing import Any

from admf_assets.engine.estimate import format_bytes, format_seconds

from .errors import ErrorCollector, WorkflowError

__all__ = ["available_memory", "check_phase", "LONG_PHASE_SECONDS"]

#: a phase estimated to run longer than this gets a warning
LONG_PHASE_SECONDS = 3600.0


def available_memory() -> float:
    """Bytes this machine can give a run now: ``MemAvailable`` of /proc/meminfo (Linux), else
    half the physical memory; ``ADMF_MEMORY_AVAILABLE_GB`` overrides both."""
    env = os.environ.get("ADMF_MEMORY_AVAILABLE_GB")
    if env:
        return float(env) * 1e9
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not a POSIX system
        return float("inf")


def _owners(kinds: Any, key: str) -> str:
    names = [k.name for k in kinds if k.available and key in k.resource_keys]
    return ", ".join(names) or "no phase type"


def check_phase(name: str, pspec: Any, kind: Any, cfg: Any, env: Any, spec: Any, errs: ErrorCollector,
                warnings: list[str], kinds: Any = ()) -> None:
    """Resource checks of one configured phase (see the module docstring)."""
    file = errs.file
    res = spec.infrastructure.phase_resources.get(name)
    memory_gb = res.memory_limit_gb if res is not None else None
    workers = pspec.max_workers or (res.max_workers if res is not None else None)
    given = {"memory_limit_gb": memory_gb, "max_workers": workers}
    for key, value in given.items():
        if value is not None and key not in kind.resource_keys:
            fld = f"infrastructure.phase_resources.{name}.{key}" if res is not None and getattr(res, key) \
                else key
            warnings.append(WorkflowError(
                f"ignored: phase type '{kind.name}' does not use {key} (it applies to: {_owners(kinds, key)})",
                file=file, phase=name, field=fld).format())
    demand = kind.demand(cfg, env)
    if demand is None:
        return
    est, n = demand.estimate, int(workers or 1)
    field = f"config.{demand.field}"
    mem_field = f"infrastructure.phase_resources.{name}.memory_limit_gb"
    if memory_gb is not None:
        budget = float(memory_gb) * 1e9
        if est.min_bytes(n) > budget:
            errs.add(f"memory_limit_gb {memory_gb:g} ({format_bytes(budget)}) is too small: {demand.what} needs at "
                     f"least {format_bytes(est.min_bytes(n))} even one combination at a time; raise memory_limit_gb "
                     f"or {demand.advice}", phase=name, field=mem_field)
            return
        peak = min(budget, est.peak_bytes(workers=n))
    else:
        peak = est.peak_bytes(workers=n)
    available = available_memory()
    if max(peak, est.min_bytes(n)) > available:
        fits = est.max_combinations(min(available, peak), n)
        errs.add(f"{demand.what} needs about {format_bytes(max(peak, est.min_bytes(n)))} of memory, more than "
                 f"the {format_bytes(available)} this machine has available: {demand.advice} (about {fits:,} "
                 f"{demand.unit} fit)", phase=name, field=field)
        return
    seconds = est.time(n)
    if pspec.timeout is not None and seconds > pspec.timeout:
        errs.add(f"{demand.what} would take about {format_seconds(seconds)}, longer than the phase's timeout "
                 f"({format_seconds(pspec.timeout)}): {demand.advice}, or raise the timeout", phase=name,
                 field=field)
    elif seconds > LONG_PHASE_SECONDS:
        warnings.append(WorkflowError(f"{demand.what} will take about {format_seconds(seconds)} "
                                      f"(memory about {format_bytes(peak)}); {demand.advice} to shorten it",
                                      file=file, phase=name, field=field).format())
