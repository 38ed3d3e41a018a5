"""Scenario 28: pooled connections that went stale (the server restarted, `CLIENT KILL`,
the server's idle `timeout`) heal: with Redis up again, the next call of every API
succeeds, single calls and pipelined ones, for sync and async apps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from fennel.client import gather
from fennel.job import Status
from fennel.testing import RedisServer
from tests.reliability.conftest import wait_until

#: The test process's connections carry this name, so the idle-timeout fault can wait until
#: the server has reaped exactly those.
PROBE = "fennel-probe"


def _clients(srv: RedisServer) -> list[dict[str, Any]]:
    r = redis.Redis.from_url(srv.url, socket_timeout=10)
    try:
        return list(r.client_list())
    finally:
        r.close()


def _restart(srv: RedisServer) -> None:
    srv.restart()  # graceful (the AOF is flushed): data survives, every connection does not


def _client_kill(srv: RedisServer) -> None:
    r = redis.Redis.from_url(srv.url, socket_timeout=10)
    try:
        assert r.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes") > 0
    finally:
        r.close()


def _idle_timeout(srv: RedisServer) -> None:
    r = redis.Redis.from_url(srv.url, socket_timeout=10)
    try:
        assert any(c["name"] == PROBE and "P" not in c["flags"] for c in r.client_list())
        r.config_set("timeout", "1")

        def reaped() -> bool:
            # Pub/sub connections are exempt from the idle timeout; the pooled ones are not.
            return not any(c["name"] == PROBE and "P" not in c["flags"]
                           for c in r.client_list())

        wait_until(reaped, 20, step=0.2, what="the server to close the idle connections")
        r.config_set("timeout", "0")
    finally:
        r.close()


FAULTS: dict[str, Callable[[RedisServer], None]] = {
    "restart": _restart, "client_kill": _client_kill, "idle_timeout": _idle_timeout,
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_28_sync_calls_heal_after_stale_connections(fault, aof_server, spawn, make_app):
    spawn(aof_server.url, "--concurrency", "4")
    app = make_app(f"{aof_server.url}?client_name={PROBE}")
    work = app.tasks["rel.work"]
    warm = [work.delay(f"w{i}") for i in range(4)]
    assert gather(warm, timeout=20) == [f"w{i}" for i in range(4)]

    FAULTS[fault](aof_server)
    # First calls after the fault: status reads from several threads at once, which the
    # broker coalesces into pipelines.
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda h: h.status(), warm)) == [Status.SUCCESS] * 4

    FAULTS[fault](aof_server)
    h = work.delay("after")  # the first call after the fault: a single script call
    assert h.status() in (Status.SENT, Status.EXECUTING, Status.SUCCESS)
    assert h.get(timeout=20) == "after"
    more = work.map([(f"m{i}",) for i in range(20)])
    assert gather(more, timeout=20) == [f"m{i}" for i in range(20)]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_28_async_calls_heal_after_stale_connections(fault, aof_server, spawn, make_app):
    spawn(aof_server.url, "--concurrency", "4")
    app = make_app(f"{aof_server.url}?client_name={PROBE}", interface="async")
    work = app.tasks["rel.work"]

    async def main() -> None:
        warm = [await work.delay(f"w{i}") for i in range(4)]
        assert [await h.get(timeout=20) for h in warm] == [f"w{i}" for i in range(4)]

        await asyncio.to_thread(FAULTS[fault], aof_server)
        # Calls made together share one pipeline: it meets the dead connection.
        handles = await asyncio.gather(*(work.delay(f"p{i}") for i in range(10)))
        statuses = await asyncio.gather(*(h.status() for h in warm))
        assert statuses == [Status.SUCCESS] * 4

        await asyncio.to_thread(FAULTS[fault], aof_server)
        h = await work.delay("after")
        assert await h.status() in (Status.SENT, Status.EXECUTING, Status.SUCCESS)
        assert await h.get(timeout=20) == "after"
        assert [await x.get(timeout=20) for x in handles] == [f"p{i}" for i in range(10)]
        await app.aclose()

    asyncio.run(main())
