"""The worker's periodic background loops: lease renewal, reclaiming dead workers' jobs,
promoting due retries, and the heartbeat. Each survives Redis errors with capped backoff."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable

from fennel._asyncio import cancel_requested
from fennel._log import get_logger
from fennel.exceptions import BrokerError

log = get_logger("fennel.worker")


async def every(interval: float, name: str, step: Callable[[], Awaitable[object]],
                max_delay: float = 2.0) -> None:
    """Run ``step`` every ``interval`` seconds forever; errors are logged and backed off up
    to ``max_delay`` (the lease loop caps it at its interval: a renewal must never wait
    longer than that once Redis is back)."""
    delay = interval
    while True:
        try:
            await step()
            delay = interval
        except BrokerError as exc:
            log.warning("worker.loop_error", loop=name, error=exc, retry_in=round(delay, 3))
            delay = min(max(delay * 2, 0.1), max_delay)
        except Exception:
            log.exception("worker.loop_crashed", loop=name)
            delay = min(max(delay * 2, 0.1), max_delay)
        if cancel_requested():
            # A cancel that arrived inside step() can be swallowed by the libraries below
            # (asyncio.wait_for before 3.12 loses a cancel that races its inner future).
            raise asyncio.CancelledError
        await asyncio.sleep(delay)


def renew_deadline(lease_timeout: float) -> float:
    """The time limit of one lease renewal: ``L/6``, but at least ``min(0.5 s, L/3)`` so a
    short lease still allows a slow round trip.

    Renewals run every ``L/3`` and a failed one is retried at once. A worker cut off for
    ``P < L/2`` right after a renewal has its next one through by ``P`` + this deadline,
    under ``5L/6`` (``L/2 + L/3`` for leases under 3 s): the lease never runs out.
    """
    return max(lease_timeout / 6, min(0.5, lease_timeout / 3))


def consumer_name() -> str:
    """Unique per process: host, pid, and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
