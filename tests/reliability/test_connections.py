"""Scenario 28: pooled connections that went stale (the server restarted, `CLIENT KILL`,
the server's idle `timeout`) heal: with Redis up again, the next call of every API
succeeds, single calls and pipelined ones, for sync and async apps."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from fennel.client import gather
from fennel.job import Status
from fennel.testing import RedisServer, free_port
from tests.reliability.conftest import wait_until
from tests.reliability.faultproxy import FaultProxy

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
def test_28_first_wait_after_the_fault_subscribes_on_a_fresh_connection(fault, aof_server,
                                                                        spawn, make_app):
    app = make_app(f"{aof_server.url}?client_name={PROBE}")
    work = app.tasks["rel.work"]
    handles = [work.delay(f"w{i}") for i in range(3)]
    assert [h.status() for h in handles] == [Status.SENT] * 3
    spawn(aof_server.url, "--concurrency", "4")
    FAULTS[fault](aof_server)
    # The first call after the fault starts the listener: its subscription is what meets a
    # dead pooled connection.
    assert handles[0].get(timeout=20) == "w0"
    assert gather(handles, timeout=20) == ["w0", "w1", "w2"]


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


# -- worker start-up -------------------------------------------------------------------------

SECRET = "s3cret-Start"


@pytest.fixture
def locked(tmp_path):
    srv = RedisServer(data_dir=str(tmp_path / "locked"), password=SECRET)
    (tmp_path / "locked").mkdir()
    srv.start()
    yield srv
    srv.kill()


def _startup_failure(w: Any, reason: str, bound: float) -> dict[str, Any]:
    t0 = time.monotonic()
    code = w.wait(timeout=bound + 20)
    assert code != 0
    assert time.monotonic() - t0 < bound + 10
    failed = w.wait_for("worker.startup_failed", 1)
    assert failed["reason"] == reason, failed
    assert all(e["reason"] == reason for e in w.named("worker.connect_failed"))
    text = "\n".join(w.raw)
    assert SECRET not in text and "***" in failed["redis"], text[-2000:]
    return failed


def test_worker_with_a_wrong_password_says_so_and_exits(locked, spawn):
    bad = f"redis://:wrong-{SECRET}@127.0.0.1:{locked.port}/0"
    w = spawn(bad, ready=False, env={"FENNEL_CONNECT_TIMEOUT": "1"})
    failed = _startup_failure(w, "authentication refused", 3 * 1.0)
    assert "refused the credentials" in failed["error"]
    assert "Cannot reach" not in failed["error"]



def test_worker_without_a_password_is_told_the_url_needs_one(locked, spawn):
    w = spawn(f"redis://127.0.0.1:{locked.port}/0", ready=False,
              env={"FENNEL_CONNECT_TIMEOUT": "1"})
    failed = w.wait_for("worker.startup_failed", 3 * 1.0 + 20)
    assert failed["reason"] == "authentication refused", failed
    assert "requires a password and the URL has none" in failed["error"], failed
    assert w.wait(timeout=20) != 0

def test_worker_with_unreachable_redis_says_so_and_exits(spawn):
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    w = spawn(url, ready=False, env={"FENNEL_CONNECT_TIMEOUT": "1"})
    failed = _startup_failure(w, "unreachable", 3 * 1.0)
    assert "Cannot reach Redis" in failed["error"]



def test_worker_that_gives_up_reports_why_it_could_not_connect(spawn):
    # Every attempt is refused; the one that ends the wait must say so too, not report the
    # time-out of a last attempt squeezed into what was left of startup_timeout.
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    w = spawn(url, ready=False, env={"FENNEL_CONNECT_TIMEOUT": "1",
                                     "FENNEL_STARTUP_TIMEOUT": "3"})
    failed = _startup_failure(w, "unreachable", 3.0)
    assert "no reply within" not in failed["error"], failed
    assert "111" in failed["error"] or "refused" in failed["error"].lower(), failed

def test_worker_facing_a_silent_redis_gives_up_within_its_startup_timeout(server, spawn):
    with FaultProxy("127.0.0.1", server.port, password=SECRET) as proxy:
        proxy.blackhole = True  # accepts connections, never answers
        w = spawn(proxy.url, ready=False, env={"FENNEL_CONNECT_TIMEOUT": "1",
                                               "FENNEL_SOCKET_TIMEOUT": "30",
                                               "FENNEL_STARTUP_TIMEOUT": "3"})
        _startup_failure(w, "unreachable", 3.0)


def test_worker_may_wait_for_redis_for_ever(spawn):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    w = spawn(url, ready=False, env={"FENNEL_CONNECT_TIMEOUT": "1",
                                     "FENNEL_STARTUP_TIMEOUT": "inf"})
    # Well past 3 x connect_timeout it still waits; then Redis comes and it starts.
    wait_until(lambda: len(w.named("worker.connect_failed")) >= 8, 30,
               what="the worker to keep retrying")
    assert w.proc.poll() is None
    with RedisServer(port=port):
        w.wait_for("worker.started", 30)


# -- clients do not leak ---------------------------------------------------------------------

def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_each_asyncio_run_leaves_no_client_behind(server, spawn, make_app):
    spawn(server.url, "--concurrency", "4")
    app = make_app(server.url, interface="async")
    work = app.tasks["rel.work"]

    async def script(i: int) -> None:  # a script, a CLI command, a per-request loop
        h = await work.delay(f"r{i}")
        assert await h.get(timeout=20) == f"r{i}"
        assert await h.status() is Status.SUCCESS

    asyncio.run(script(-1))
    gc.collect()
    before = _open_fds()
    for i in range(50):
        asyncio.run(script(i))
    gc.collect()
    assert _open_fds() - before <= 3, (before, _open_fds())
    assert len(app._clients) == 0

    async def explicit() -> None:
        async with app:
            await work.delay("x")
            assert len(app._clients) == 1
        assert len(app._clients) == 0
        await work.delay("y")  # a fresh client after an explicit close
        await app.aclose()

    asyncio.run(explicit())
    gc.collect()
    assert _open_fds() - before <= 3, (before, _open_fds())


# -- waiting does not poll -------------------------------------------------------------------

def _calls(r: redis.Redis, command: str) -> int:
    stats = r.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


def test_waiting_handles_are_not_polled(server, spawn, make_app):
    app = make_app(server.url)
    n = 2000
    handles = app.tasks["rel.work"].map([(f"k{i}",) for i in range(n)])  # no worker yet
    r = redis.Redis.from_url(server.url, socket_timeout=10)
    box: dict[str, Any] = {}

    def waiter() -> None:
        box["values"] = gather(handles, timeout=120)

    t = threading.Thread(target=waiter)
    t.start()
    # The waiters' first reads are done once every one was read once (each job's HMGET inside
    # watch.lua counts as a call, as would one sent on its own).
    wait_until(lambda: _calls(r, "hmget") >= n, 30, what="the first status reads")
    start, t0 = _calls(r, "hmget"), time.monotonic()
    scripts = _calls(r, "evalsha")
    wait_until(lambda: time.monotonic() - t0 > 7, 10, step=0.2)  # 3 sweep intervals and more
    polled = _calls(r, "hmget") - start
    assert polled < n / 10, f"{polled} status reads while {n} handles waited 7 s"
    rerun = _calls(r, "evalsha") - scripts  # no worker yet: every script call is a re-read
    assert rerun < 3, f"{rerun} script calls while {n} handles waited 7 s"
    spawn(server.url, "--concurrency", "16")
    t.join(120)
    assert box.get("values") == [f"k{i}" for i in range(n)]
    r.close()


def test_a_record_that_vanishes_under_a_waiter_still_ends_the_wait(server, make_app):
    app = make_app(server.url)
    h = app.tasks["rel.work"].delay("never-run")
    r = redis.Redis.from_url(server.url, socket_timeout=10)
    t0 = time.monotonic()
    box: dict[str, Any] = {}

    def waiter() -> None:
        try:
            h.get()
        except Exception as exc:
            box["error"] = exc

    t = threading.Thread(target=waiter)
    t.start()
    wait_until(lambda: _calls(r, "hmget") >= 1, 10)
    r.delete(f"fennel:{{{app.name}}}:job:{h.job_id}")
    t.join(15)
    assert not t.is_alive()
    assert type(box["error"]).__name__ == "ResultMissing"
    assert time.monotonic() - t0 < 10
    r.close()


def test_an_enqueue_whose_reply_is_lost_is_retried_once_written(server, spawn, make_app,
                                                                marks):
    from fennel.broker.redis import _SCRIPTS
    from tests.reliability.conftest import oracle

    with FaultProxy("127.0.0.1", server.port) as proxy:
        app = make_app(proxy.url)
        work = app.tasks["rel.work"]
        assert work.delay("warm").status() is not Status.UNKNOWN
        # Redis runs the enqueue script; its reply is lost with the connection.
        proxy.lose_reply(_SCRIPTS["enqueue"][1].encode())
        h = work.delay("once")  # no error: retried, and the script is idempotent by id
        assert proxy.lost_replies == 1
        spawn(server.url)
        assert h.get(timeout=20) == "once"
    v = oracle(server.url, "rel", {h.job_id: "once"}, marks)
    assert v.executions["once"] == 1 and not v.lost, v
