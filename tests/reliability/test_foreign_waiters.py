"""Waiters of jobs another client enqueued, under faults: a registration Redis refuses, and
waiters that went away."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import redis

from fennel.client import AsyncResult
from tests.reliability.conftest import wait_until

APP = "rel"


def _reads(r: redis.Redis) -> int:
    stats = r.info("commandstats").get("cmdstat_hmget")
    return int(stats["calls"]) if stats else 0


def test_a_registration_refused_under_maxmemory_is_made_once_memory_frees(server, spawn,
                                                                           make_app):
    app = make_app(server.url)
    h = app.tasks["rel.work"].delay("m")  # enqueued by the sync facade's client; no worker
    r = redis.Redis.from_url(server.url, socket_timeout=20)
    box: dict[str, Any] = {}

    async def main() -> None:  # another client: it hears the outcome only if registered
        try:
            box["value"] = await AsyncResult(app, h.job_id).get(timeout=40)
        except Exception as exc:
            box["value"] = exc
        box["at"] = time.monotonic()

    before = _reads(r)
    r.config_set("maxmemory", "1")
    try:
        t = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        t.start()
        # The read is answered; only the registration is refused.
        wait_until(lambda: _reads(r) > before, 30, what="the waiter's first read")
        assert not r.hexists(f"fennel:{{{APP}}}:job:{h.job_id}", "watchers")
    finally:
        r.config_set("maxmemory", "0")
    freed = time.monotonic()
    spawn(server.url, "--concurrency", "2")
    t.join(60)
    assert not t.is_alive()
    assert box["value"] == "m"
    # The registration is retried at the listener's next sweep (every 2 s), not at the
    # waiter's 40 s deadline.
    assert box["at"] - freed < 15
    r.close()


def test_waiters_that_went_away_cost_nothing_and_expire_with_the_record(server, spawn,
                                                                        make_app):
    app = make_app(server.url)
    h = app.tasks["rel.work"].delay("gone")
    key = f"fennel:{{{APP}}}:job:{h.job_id}"
    r = redis.Redis.from_url(server.url, socket_timeout=20)

    async def give_up() -> None:  # waits briefly on its own loop, then its client is closed
        try:
            await AsyncResult(app, h.job_id).get(timeout=0.2)
        except TimeoutError:
            pass
        finally:
            await app.aclose()

    for _ in range(3):
        asyncio.run(give_up())
    watchers = r.hget(key, "watchers")
    assert watchers is not None and len(watchers.split()) == 3  # one per client, each once
    spawn(server.url, "--concurrency", "2")
    assert h.get(timeout=30) == "gone"
    assert r.hget(key, "status") == b"SUCCESS"
    assert r.ttl(key) > 0  # the watchers expire with the record (results_ttl)
    r.close()
