"""Scenario 5: SIGTERM with a long task running and jobs queued."""

from __future__ import annotations

import signal
import time

import redis

from tests.reliability.conftest import oracle, read_marks, settled, wait_until

APP = "rel"


def test_5_sigterm_drains_within_grace_and_hands_back_the_rest(server, spawn, make_app,
                                                                marks):
    app = make_app(server.url)
    # Long lease: anything that comes back fast was handed back, not reclaimed.
    env = {"FENNEL_LEASE_TIMEOUT": "30", "FENNEL_GRACE_PERIOD": "2"}
    a = spawn(server.url, "--concurrency", "2", env=env)
    short = app.tasks["rel.work"].delay("short", 1.0)
    wait_until(lambda: len(read_marks(marks)) >= 1, 10)
    long = app.tasks["rel.slow_once"].delay("long", 60.0)
    wait_until(lambda: len(read_marks(marks)) >= 2, 10)
    queued = app.tasks["rel.work"].map([(f"q{i}",) for i in range(10)])  # no free slot
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    code = a.wait(15)
    took = time.monotonic() - t0
    assert code == 0
    assert took < 2 + 2, took  # grace period plus hand-back
    assert a.named("worker.handed_back")
    r = redis.Redis.from_url(server.url)
    job = r.hgetall(f"fennel:{{{APP}}}:job:{long.job_id}")
    assert job[b"status"] in (b"SENT", b"EXECUTING"), job  # not RETRY, not DEAD
    b = spawn(server.url, "--concurrency", "4", env=env)
    t1 = time.monotonic()
    assert long.get(timeout=10) == b.pid
    assert time.monotonic() - t1 < 5  # at once, not after the 30 s lease
    jobs = {short.job_id: "short", long.job_id: "long"}
    jobs.update({h.job_id: f"q{i}" for i, h in enumerate(queued)})
    settled(server.url, APP, jobs, 20)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected and v.statuses == {"SUCCESS": 12}, v
    assert v.duplicates == 1  # the long job, interrupted once
    # nothing counted as a failure: no error recorded, no retry used
    final = r.hgetall(f"fennel:{{{APP}}}:job:{long.job_id}")
    assert b"error" not in final, final
    assert not a.named("job.retrying") and not a.named("job.dead")
    r.close()


def test_5b_second_signal_stops_at_once(server, spawn, make_app, marks):
    app = make_app(server.url)
    a = spawn(server.url, "--concurrency", "1", env={"FENNEL_GRACE_PERIOD": "30"})
    app.tasks["rel.work"].delay("long", 60.0)
    wait_until(lambda: read_marks(marks), 10)
    a.signal(signal.SIGTERM)
    a.wait_for("worker.draining", 5)
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    assert a.wait(5) != 0
    assert time.monotonic() - t0 < 3
