"""Scenarios 9-15: Redis restarted (with and without persistence), unreachable, connections
dropped during a blocking read, replies lost, out of memory, paused or slow."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from fennel.broker.redis import _SCRIPTS
from fennel.client import gather
from fennel.exceptions import ConnectionFailed, OutOfMemory
from fennel.testing import free_port
from tests.reliability.conftest import oracle, read_marks, settled, wait_until
from tests.reliability.faultproxy import FaultProxy

APP = "rel"


def _r(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=20)


def test_9_redis_killed_and_restarted_with_aof(aof_server, spawn, make_app, marks):
    app = make_app(aof_server.url)
    spawn(aof_server.url, "--concurrency", "8")
    spawn(aof_server.url, "--concurrency", "8")
    handles = app.tasks["rel.work"].map([(f"k{i}", 0.02) for i in range(400)])
    jobs = {h.job_id: f"k{i}" for i, h in enumerate(handles)}
    box: dict[str, object] = {}

    def waiter() -> None:  # a client blocked in gather() across the restart
        try:
            box["values"] = gather(handles, timeout=60)
        except Exception as exc:
            box["error"] = exc

    t = threading.Thread(target=waiter)
    t.start()
    wait_until(lambda: len(read_marks(marks)) >= 50, 20, what="work under way")
    aof_server.kill()
    time.sleep(1.0)
    more = []
    with pytest.raises(ConnectionFailed):
        app.tasks["rel.work"].delay("never")  # says it was not enqueued
    aof_server.start()
    more = app.tasks["rel.work"].map([(f"m{i}",) for i in range(50)])
    jobs.update({h.job_id: f"m{i}" for i, h in enumerate(more)})
    t.join(60)
    assert box.get("values") == [f"k{i}" for i in range(400)], box.get("error")
    settled(aof_server.url, APP, jobs, 40)
    v = oracle(aof_server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected and v.statuses == {"SUCCESS": 450}, v
    assert v.duplicates <= 16, v
    assert v.pending == 0 and v.queued == 0, v


def test_10_restart_without_persistence_recreates_the_group(server, spawn, make_app, marks):
    app = make_app(server.url)
    w = spawn(server.url, "--concurrency", "4")
    first = app.tasks["rel.work"].map([(f"a{i}",) for i in range(10)])
    gather(first, timeout=20)
    server.restart(kill=True)  # everything is gone, the consumer group too
    r = _r(server.url)
    assert r.dbsize() == 0
    # A producer gets there first: its XADD creates the stream without the group.
    handles = app.tasks["rel.work"].map([(f"b{i}",) for i in range(50)])
    jobs = {h.job_id: f"b{i}" for i, h in enumerate(handles)}
    assert gather(handles, timeout=30) == [f"b{i}" for i in range(50)]
    groups = r.xinfo_groups(f"fennel:{{{APP}}}:queue")
    assert [g["name"] for g in groups] == [b"fennel"]
    v = oracle(server.url, APP, jobs, None)
    assert not v.lost and not v.unexpected and v.pending == 0, v
    assert w.proc.poll() is None
    r.close()


def test_11_unreachable_redis_fails_fast_with_a_masked_url(make_app, spawn):
    port = free_port()
    app = make_app(f"redis://:s3cret@127.0.0.1:{port}/0", connect_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        app.tasks["rel.work"].delay("x")
    assert time.monotonic() - t0 < 3 * 1.0 + 2
    msg = str(info.value)
    assert "s3cret" not in msg and "redis://:***@127.0.0.1" in msg, msg
    assert "s3cret" not in repr(info.value.__cause__ or "")
    # A server that accepts the connection and never answers: a timeout, not a hang.
    with FaultProxy("127.0.0.1", port, password="s3cret") as proxy:
        proxy.blackhole = True
        app2 = make_app(proxy.url, socket_timeout=1.0, connect_timeout=1.0)
        t0 = time.monotonic()
        with pytest.raises(ConnectionFailed) as info:
            app2.tasks["rel.work"].delay("x")
        assert time.monotonic() - t0 < 3 * 1.0 + 3
        assert "s3cret" not in str(info.value)


def test_12_connection_dropped_during_a_blocking_read(server, spawn, make_app, marks):
    app = make_app(server.url)
    with FaultProxy("127.0.0.1", server.port) as proxy:
        # A long lease: recovery must come from the pending list, not from a reclaim.
        w = spawn(proxy.url, "--concurrency", "4", env={"FENNEL_LEASE_TIMEOUT": "20"})
        # The reply carrying the entries is lost with its connection. The proxy arms on the
        # next XREADGROUP the worker sends (its blocking reads last 1 s here), so wait past
        # one before enqueueing.
        proxy.lose_reply(b"XREADGROUP", b"rel.work")
        time.sleep(1.5)
        handles = app.tasks["rel.work"].map([(f"k{i}",) for i in range(3)])
        r = _r(server.url)
        wait_until(lambda: proxy.lost_replies == 1, 5, what="the read's reply to be lost")
        t0 = time.monotonic()
        assert gather(handles, timeout=15) == ["k0", "k1", "k2"]
        assert time.monotonic() - t0 < 10  # well inside the 20 s lease
        w.wait_for("worker.orphans_adopted", timeout=10)
        jobs = {h.job_id: f"k{i}" for i, h in enumerate(handles)}
        v = oracle(server.url, APP, jobs, marks)
        assert not v.lost and not v.unexpected and v.duplicates == 0, v
        assert v.pending == 0
        r.close()


def test_13_reply_lost_after_the_completion_was_written(server, spawn, make_app, marks):
    app = make_app(server.url)
    r = _r(server.url)
    with FaultProxy("127.0.0.1", server.port) as proxy:
        w = spawn(proxy.url, "--concurrency", "2")
        h = app.tasks["rel.work"].delay("r", 1.0)
        w.wait_for("job.started", 10)
        key = f"fennel:{{{APP}}}:job:{h.job_id}"
        proxy.lose_reply(_SCRIPTS["succeed_many"][1].encode(), b":1\r\n")
        wait_until(lambda: proxy.lost_replies == 1, 10, what="the completion's reply to be lost")
        assert r.hget(key, "status") == b"SUCCESS"
        assert h.get(timeout=10) == "r"
        # the worker retried the completion (its reply was lost), recognised its own
        # recorded outcome, and goes on working
        assert app.tasks["rel.work"].delay("after").get(timeout=15) == "after"
        w.wait_for("job.already_recorded", 10, where=lambda e: e.get("job_id") == h.job_id)
        assert not w.named("job.lease_lost")
    v = oracle(server.url, APP, {h.job_id: "r"}, marks)
    assert not v.lost and v.duplicates == 0 and v.pending == 0, v
    assert r.hget(key, "result") == b'"r"'
    r.close()


def test_14_out_of_memory(server, spawn, make_app, marks):
    app = make_app(server.url)
    r = _r(server.url)
    w = spawn(server.url, "--concurrency", "2")
    h = app.tasks["rel.work"].delay("m", 1.0)
    w.wait_for("job.started", 10)
    r.config_set("maxmemory", "1")
    try:
        before = r.dbsize()
        with pytest.raises(OutOfMemory) as info:
            app.tasks["rel.work"].delay("refused")
        assert "out of memory" in str(info.value) and "nothing was written" in str(info.value)
        assert r.dbsize() == before
        time.sleep(2.5)  # the task has finished; its outcome cannot be written
        key = f"fennel:{{{APP}}}:job:{h.job_id}"
        # Not recorded (the status stays SENT or EXECUTING, no result) and not acked.
        assert r.hget(key, "status") in (b"SENT", b"EXECUTING")
        assert r.hget(key, "result") is None
        assert r.xpending(f"fennel:{{{APP}}}:queue", "fennel")["pending"] == 1  # not acked
        assert w.named("job.record_failed")
    finally:
        r.config_set("maxmemory", "0")
    assert h.get(timeout=15) == "m"
    v = oracle(server.url, APP, {h.job_id: "m"}, marks)
    assert not v.lost and v.duplicates == 0 and v.pending == 0, v
    r.close()


def test_15_paused_redis_times_out_and_nothing_is_falsely_reclaimed(server, spawn, make_app,
                                                                     marks):
    app = make_app(server.url, socket_timeout=1.0)
    a = spawn(server.url, "--concurrency", "2")
    b = spawn(server.url, "--concurrency", "2")
    handles = app.tasks["rel.work"].map([(f"k{i}", 10.0) for i in range(4)])
    wait_until(lambda: len(read_marks(marks)) == 4, 10, what="4 long jobs running")
    r = _r(server.url)
    r.execute_command("CLIENT", "PAUSE", "7000", "ALL")  # longer than the 2 s lease
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed):
        app.tasks["rel.work"].delay("during-pause")
    assert time.monotonic() - t0 < 6
    jobs = {h.job_id: f"k{i}" for i, h in enumerate(handles)}
    settled(server.url, APP, jobs, 30)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected and v.duplicates == 0, v
    for w in (a, b):
        assert not w.named("worker.reclaimed"), w.named("worker.reclaimed")
        assert not w.named("job.lease_lost")
        noise = [e for e in w.events if e.get("level") in ("warning", "error")]
        assert len(noise) < 60, len(noise)  # backed off, no busy spinning
    assert app.tasks["rel.work"].delay("after").get(timeout=10) == "after"
    r.close()


def test_15b_slow_redis_debug_sleep(server, spawn, make_app, marks):
    app = make_app(server.url)
    a = spawn(server.url, "--concurrency", "2")
    handles = app.tasks["rel.work"].map([(f"k{i}", 6.0) for i in range(2)])
    wait_until(lambda: len(read_marks(marks)) == 2, 10)
    sleeper = threading.Thread(target=lambda: _r(server.url).execute_command("DEBUG", "SLEEP",
                                                                             "4"))
    sleeper.start()
    jobs = {h.job_id: f"k{i}" for i, h in enumerate(handles)}
    settled(server.url, APP, jobs, 30)
    sleeper.join()
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and v.duplicates == 0, v
    assert not a.named("worker.reclaimed")
