"""Scenarios 6, 7: a frozen worker's late outcome is refused; a long healthy task is never
stolen."""

from __future__ import annotations

import signal
import time

import redis

from tests.reliability.conftest import oracle, read_marks, settled, wait_until

APP = "rel"


def test_6_frozen_worker_loses_its_job_and_its_late_result_is_refused(server, spawn,
                                                                       make_app, marks):
    app = make_app(server.url)
    frozen = spawn(server.url, "--concurrency", "1")
    h = app.tasks["rel.slow_once"].delay("x", 3.0)
    wait_until(lambda: read_marks(marks), 10, what="the job to start")
    frozen.signal(signal.SIGSTOP)
    t_stop = time.monotonic()
    thief = spawn(server.url, "--concurrency", "1")
    # Lease 2 s: the thief reclaims it, runs it (quickly, second run) and records its pid.
    assert h.get(timeout=20) == thief.pid
    took = time.monotonic() - t_stop
    assert took < 2 + 1.5 + 3, took
    wait_until(lambda: time.monotonic() - t_stop > 3.5, 5)
    frozen.signal(signal.SIGCONT)
    # The frozen worker finishes its copy and tries to record it: refused by the fence.
    frozen.wait_for("job.lease_lost", 10)
    time.sleep(0.5)
    assert h.get(timeout=1) == thief.pid  # not overwritten
    done = [pid for k, pid, _t in read_marks(marks, "done")]
    assert sorted(done) == sorted([frozen.pid, thief.pid])
    assert not frozen.named("job.succeeded")
    v = oracle(server.url, APP, {h.job_id: "x"}, marks)
    assert not v.lost and not v.unexpected and v.duplicates == 1, v
    assert v.pending == 0 and v.queued == 0, v
    r = redis.Redis.from_url(server.url)
    assert r.hget(f"fennel:{{{APP}}}:job:{h.job_id}", "status") == b"SUCCESS"
    r.close()


def test_7_task_longer_than_the_lease_is_never_stolen(server, spawn, make_app, marks):
    app = make_app(server.url)
    env = {"FENNEL_LEASE_TIMEOUT": "1"}
    a = spawn(server.url, "--concurrency", "2", env=env)
    b = spawn(server.url, "--concurrency", "2", env=env)
    handles = app.tasks["rel.work"].map([("long0", 4.0), ("long1", 4.0)])
    jobs = {h.job_id: f"long{i}" for i, h in enumerate(handles)}
    settled(server.url, APP, jobs, 20)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected and v.duplicates == 0, v
    assert v.statuses == {"SUCCESS": 2}
    assert not a.named("worker.reclaimed") and not b.named("worker.reclaimed")
    assert not a.named("job.lease_lost") and not b.named("job.lease_lost")
