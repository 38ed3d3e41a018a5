"""Small public helpers named by the user guide."""

from __future__ import annotations

import random

__all__ = ["backoff"]


def backoff(retries: int, base: float = 1.0, cap: float = 3600.0) -> float:
    """Seconds to wait before retry number ``retries`` (0 for the first retry).

    Exponential backoff with "full jitter": a uniformly random delay between zero and
    ``base * 2 ** retries`` (capped at ``cap``), so that many jobs failing at once do not retry
    in lock-step::

        >>> 0 <= backoff(3) <= 8
        True
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    ceiling = min(cap, base * (2 ** min(retries, 64)))
    # Keep a small floor so the delay is never exactly zero.
    return max(0.001, random.uniform(0, ceiling))
