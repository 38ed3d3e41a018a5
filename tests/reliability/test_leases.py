"""Scenarios 27 and 29: a worker cut off for less than half its lease keeps its jobs; Redis
losing its data (restart without persistence, FLUSHALL, the group destroyed) while every
slot is busy costs no job and no worker."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis

from fennel import App
from fennel.client import gather
from fennel.exceptions import ConfigurationError, ResultMissing
from fennel.testing import RedisServer
from tests.reliability.conftest import oracle, read_marks, settled, wait_until
from tests.reliability.faultproxy import FaultProxy

APP = "rel"


def test_27_worker_cut_off_for_less_than_half_its_lease_keeps_its_job(server, spawn,
                                                                     make_app, marks):
    lease = 3.0
    # Every other setting at its default (socket_timeout 10 s, connect_timeout 5 s).
    env = {"FENNEL_LEASE_TIMEOUT": str(lease)}
    app = make_app(server.url)
    with FaultProxy("127.0.0.1", server.port) as proxy:
        cut = spawn(proxy.url, "--concurrency", "1", env=env, fast=False)
        h = app.tasks["rel.work"].delay("long", 7.0)
        wait_until(lambda: read_marks(marks), 15, what="the job to start")
        assert read_marks(marks)[0][1] == cut.pid
        idle = spawn(server.url, "--concurrency", "1", env=env, fast=False)
        idle.wait_for("worker.started")
        proxy.blackhole = True  # every byte either way is swallowed, new connections too
        t0 = time.monotonic()
        wait_until(lambda: time.monotonic() - t0 >= 0.45 * lease, 10, step=0.01)
        proxy.blackhole = False
        assert h.get(timeout=30) == "long"
    v = oracle(server.url, APP, {h.job_id: "long"}, marks)
    assert not v.lost and v.duplicates == 0 and v.pending == 0, v
    assert [pid for _k, pid, _t in read_marks(marks)] == [cut.pid]
    assert not idle.named("worker.reclaimed")
    assert not cut.named("job.lease_lost")


def test_27_leases_too_short_to_renew_are_refused(redis_server):
    with pytest.raises(ConfigurationError) as info:
        App("short", redis_url=redis_server.url, lease_timeout=0.2)
    assert "lease_timeout" in str(info.value)
    App("ok", redis_url=redis_server.url, lease_timeout=2)  # every other setting default


def _destroy_group(srv: RedisServer) -> None:
    r = redis.Redis.from_url(srv.url, socket_timeout=10)
    assert r.xgroup_destroy(f"fennel:{{{APP}}}:queue", "fennel") == 1
    r.close()


def _flushall(srv: RedisServer) -> None:
    r = redis.Redis.from_url(srv.url, socket_timeout=10)
    r.flushall()
    r.close()


def _restart_empty(srv: RedisServer) -> None:
    srv.restart(kill=True)  # no persistence: everything is gone


@pytest.mark.parametrize("fault", ["destroy_group", "flushall", "restart_empty"])
def test_29_redis_loses_its_data_while_every_slot_is_busy(fault, server, spawn, make_app,
                                                          marks):
    app = make_app(server.url)
    w = spawn(server.url, "--concurrency", "2")
    # The first to finish frees a slot, the worker reads new jobs, then the second finishes:
    # its outcome must still be recorded though the new group has handed out later entries.
    busy = [app.tasks["rel.work"].delay(f"busy{i}", 2.0 + 3.0 * i) for i in range(2)]
    wait_until(lambda: len(read_marks(marks)) == 2, 15, what="both slots busy")
    answers: dict[str, Any] = {}

    def waiter(h: Any) -> None:  # a client blocked in .get() across the fault
        t0 = time.monotonic()
        try:
            answers[h.job_id] = h.get(timeout=40)
        except ResultMissing as exc:  # the record vanished with the data: also an answer
            answers[h.job_id] = exc
        answers[h.job_id + ":took"] = time.monotonic() - t0

    threads = [threading.Thread(target=waiter, args=(h,)) for h in busy]
    for t in threads:
        t.start()
    r = redis.Redis.from_url(server.url, socket_timeout=10)
    wait_until(lambda: r.pubsub_channels("fennel:*"), 15, what="the waiters' subscription")
    wait_until(lambda: r.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0) >= 2,
               15, what="the waiters' first reads")
    r.close()
    {"destroy_group": _destroy_group, "flushall": _flushall,
     "restart_empty": _restart_empty}[fault](server)
    t_fault = time.monotonic()
    fresh = app.tasks["rel.work"].map([(f"new{i}",) for i in range(5)])
    # New jobs run within seconds, as soon as a slot frees.
    assert gather(fresh, timeout=20) == [f"new{i}" for i in range(5)]
    assert time.monotonic() - t_fault < 15
    for t in threads:
        t.join(30)
    for i, h in enumerate(busy):
        answer = answers.get(h.job_id)
        assert answer == f"busy{i}" or isinstance(answer, ResultMissing), answers
        assert answers[h.job_id + ":took"] < 20, answers
    # The in-flight jobs' outcomes were recorded, on the job record that is left.
    jobs = {h.job_id: f"busy{i}" for i, h in enumerate(busy)}
    jobs.update({h.job_id: f"new{i}" for i, h in enumerate(fresh)})
    settled(server.url, APP, jobs, 20)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected and v.statuses == {"SUCCESS": 7}, v
    assert v.pending == 0 and v.queued == 0, v
    # Each fault recovered at once: no loop spinning on NOGROUP.
    noise = [e for e in w.events if e.get("level") in ("warning", "error")]
    assert len(noise) < 20, noise[-10:]
    assert w.proc.poll() is None


@pytest.mark.slow
def test_heartbeat_never_removes_a_consumer_whose_read_just_landed(server, make_app):
    """A consumer that looks dead (no heartbeat, nothing pending, idle over a minute) reads
    an entry at the worst moment: between the heartbeat's check and its delete. The entry
    must stay in the pending list, owned by that consumer."""
    from fennel.keys import GROUP
    from fennel.worker import Worker

    app = make_app(server.url)
    q = app.keys.queue

    async def main() -> None:
        w = Worker(app, install_signal_handlers=False, concurrency=1)
        r = w.broker.redis
        await w.broker.ensure_group()
        await r.xgroup_createconsumer(q, GROUP, "ghost")  # the consumer, with nothing

        async def ghost_idle() -> bool:
            return any(c["name"] == b"ghost" and c["idle"] > 61_000
                       for c in await r.xinfo_consumers(q, GROUP))

        deadline = time.monotonic() + 120
        while not await ghost_idle():
            assert time.monotonic() < deadline, "the ghost consumer never went idle"
            await asyncio.sleep(1)
        entry = (await r.xadd(q, {"j": b"{}"})).decode()
        delivered: list[Any] = []

        async def ghost_reads() -> None:
            delivered.extend(await r.xreadgroup(GROUP, "ghost", {q: ">"}, count=1))

        # The read lands inside the heartbeat's check-then-delete, wherever the heartbeat
        # makes that a separate round trip.
        real_delete = r.xgroup_delconsumer

        async def delete_after_the_read(*args: Any, **kwargs: Any) -> Any:
            if not delivered:
                await ghost_reads()
            return await real_delete(*args, **kwargs)

        r.xgroup_delconsumer = delete_after_the_read  # type: ignore[method-assign]
        await w._heartbeat()
        if not delivered:
            await ghost_reads()
        pending = await r.xpending_range(q, GROUP, "-", "+", 10)
        assert [(p["message_id"].decode(), p["consumer"]) for p in pending] == [
            (entry, b"ghost")]
        await w.broker.aclose()

    asyncio.run(main())
