"""Did-you-mean hints for names a user typed (phase types, fields, outputs, strategies)."""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["closest", "suggest"]


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word`` (difflib), or None."""
    cands = sorted({str(c) for c in candidates})
    if not cands:
        return None
    lowered = {c.lower(): c for c in cands}
    if str(word).lower() in lowered:
        return lowered[str(word).lower()]
    match = difflib.get_close_matches(str(word), cands, n=1, cutoff=cutoff)
    if not match:
        match = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=cutoff)
        match = [lowered[m] for m in match]
    return match[0] if match else None


def suggest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    best = closest(word, candidates, cutoff)
    return f" (did you mean '{best}'?)" if best is not None and best != word else ""
