"""Execution time and peak memory of one phase (seed 000 "execution time"), measured by the
compiler around a kind's ``run``.

* ``seconds``: wall time (``time.perf_counter``); ``cpu_seconds``: CPU time of the whole
  process over the same span (``time.process_time``; above ``seconds`` when numpy/BLAS or
  Arrow use several threads).
* ``peak_rss_mb``: the largest resident set size of the process while the phase ran, and
  ``rss_increase_mb`` that peak minus the RSS when the phase started.  On Linux a daemon
  thread reads ``/proc/self/statm`` every 5 ms (``measured = "rss sampled every 5 ms"``);
  elsewhere the process's lifetime peak from ``getrusage`` is reported
  (``measured = "lifetime peak rss"``), which a phase only moves when it exceeds every
  earlier phase of the process.

Why RSS and not ``tracemalloc``: tracemalloc sees only allocations made through Python's
allocator hooks (numpy reports its buffers; pyarrow, DuckDB and matplotlib's C++ buffers are
invisible to it) and it slows every allocation while it traces; RSS is what the machine
actually gave the process, at the cost of missing spikes shorter than the sampling interval
and of counting memory the allocator keeps after a free (a later phase's increase can look
smaller than what it used).
"""

from __future__ import annotations

import os
import sys
import threading
import time

__all__ = ["PhaseProfile"]

_INTERVAL = 0.005
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = "/proc/self/statm"


def _rss_bytes() -> int | None:
    try:
        with open(_STATM, "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _lifetime_peak_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes on macOS, KiB on Linux


class PhaseProfile:
    """Context manager measuring wall time, CPU time and peak RSS of its block.

    >>> with PhaseProfile() as prof:
    ...     _ = bytearray(50 * 2**20)
    >>> prof.seconds >= 0 and prof.peak_rss_mb >= prof.start_rss_mb
    True
    """

    def __init__(self, interval: float = _INTERVAL):
        self.interval = interval
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.start_rss_mb: float | None = None
        self.peak_rss_mb: float | None = None
        self.rss_increase_mb: float | None = None
        self.measured = ""
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            rss = _rss_bytes()
            if rss is not None and rss > self._peak:
                self._peak = rss

    def __enter__(self) -> "PhaseProfile":
        start = _rss_bytes()
        if start is not None:
            self._start, self._peak = start, start
            self.measured = f"rss sampled every {self.interval * 1000:.0f} ms"
            self._thread = threading.Thread(target=self._sample, name="admf-phase-rss", daemon=True)
            self._thread.start()
        else:
            self._start = _lifetime_peak_bytes()
            self.measured = "lifetime peak rss" if self._start is not None else "not available"
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.cpu_seconds = time.process_time() - self._c0
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            end = _rss_bytes()
            peak = max(self._peak, end or 0)
        else:
            peak = _lifetime_peak_bytes()
        if self._start is not None and peak is not None:
            mb = 2.0**20
            self.start_rss_mb = self._start / mb
            self.peak_rss_mb = peak / mb
            self.rss_increase_mb = max(0.0, (peak - self._start) / mb)

    def metadata(self) -> dict[str, float | str]:
        """The measurements as metadata values (seconds to 4 decimals, MB to 1)."""
        out: dict[str, float | str] = {"compute_seconds": round(self.seconds, 4),
                                       "cpu_seconds": round(self.cpu_seconds, 4)}
        if self.peak_rss_mb is not None:
            out["peak_rss_mb"] = round(self.peak_rss_mb, 1)
            out["rss_increase_mb"] = round(self.rss_increase_mb, 1)
        out["memory_measured"] = self.measured
        return out
