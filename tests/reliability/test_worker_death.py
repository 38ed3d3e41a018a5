"""Scenarios 1, 2, 4, 8: workers SIGKILLed mid-task; prefetched entries; a poison job; many
workers reclaiming the same stale entries."""

from __future__ import annotations

import signal
import time

import orjson
import redis

from fennel.job import Status
from tests.reliability.conftest import oracle, read_marks, settled, wait_until

APP = "rel"


def test_1_sigkill_sync_workers_repeatedly(server, spawn, make_app, marks):
    app = make_app(server.url)
    work = app.tasks["rel.work"]
    handles = work.map([(f"k{i}", 0.03) for i in range(1000)])
    jobs = {h.job_id: f"k{i}" for i, h in enumerate(handles)}
    conc = 8
    a = spawn(server.url, "--concurrency", str(conc))
    spawn(server.url, "--concurrency", str(conc))
    kills = 0
    for _ in range(3):
        a.wait_for("job.started", 20)
        time.sleep(0.4)
        a.signal(signal.SIGKILL)
        a.wait(10)
        kills += 1
        a = spawn(server.url, "--concurrency", str(conc))
    settled(server.url, APP, jobs, 60)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected, v
    assert v.statuses == {"SUCCESS": 1000}, v
    assert v.duplicates <= kills * conc, v
    assert v.pending == 0 and v.queued == 0, v


def test_1b_a_busy_worker_takes_a_dead_workers_jobs_before_new_ones(server, spawn, make_app,
                                                                    marks):
    # Under a backlog every freed slot is refilled by the next read; a dead worker's jobs must
    # not trickle back one reclaim tick at a time behind all the new work.
    app = make_app(server.url)
    work = app.tasks["rel.work"]
    handles = work.map([(f"k{i}", 0.1) for i in range(400)])
    jobs = {h.job_id: f"k{i}" for i, h in enumerate(handles)}
    r = redis.Redis.from_url(server.url)
    r.xgroup_create(f"fennel:{{{APP}}}:queue", "fennel", id="0", mkstream=True)
    got = r.xreadgroup("fennel", "died-holding-these", {f"fennel:{{{APP}}}:queue": ">"},
                       count=40)
    held_keys = {orjson.loads(f[b"j"])["args"][0] for _s, entries in got for _e, f in entries}
    assert len(held_keys) == 40
    spawn(server.url, "--concurrency", "2")
    settled(server.url, APP, jobs, 120)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected and v.statuses == {"SUCCESS": 400}, v
    starts = sorted(read_marks(marks), key=lambda m: m[2])
    last_held = max(i for i, (key, _pid, _t) in enumerate(starts) if key in held_keys)
    new_before = sum(1 for key, _pid, _t in starts[:last_held] if key not in held_keys)
    # About a lease's worth of new jobs (2 s at 20 jobs/s) runs before the dead worker's
    # entries are due; after that they go first, not one per reclaim tick among the rest.
    assert new_before < 120, new_before
    r.close()


def test_2_async_tasks_and_prefetched_entries_come_back(server, spawn, make_app, marks):
    app = make_app(server.url)
    awork = app.tasks["rel.awork"]
    handles = awork.map([(f"k{i}", 0.2) for i in range(200)])
    jobs = {h.job_id: f"k{i}" for i, h in enumerate(handles)}
    # A consumer that read 20 entries and died before starting any: prefetched, never run.
    r = redis.Redis.from_url(server.url)
    r.xgroup_create(f"fennel:{{{APP}}}:queue", "fennel", id="0", mkstream=True)
    got = r.xreadgroup("fennel", "crashed-before-start", {f"fennel:{{{APP}}}:queue": ">"},
                       count=20)
    prefetched = [eid.decode() for _s, entries in got for eid, _f in entries]
    assert len(prefetched) == 20
    t_dead = time.monotonic()
    a = spawn(server.url, "--concurrency", "30")
    wait_until(lambda: len(a.named("job.started")) >= 30, 20, what="async jobs running")
    a.signal(signal.SIGKILL)
    a.wait(10)
    t_kill = time.monotonic()
    b = spawn(server.url, "--concurrency", "30")
    settled(server.url, APP, jobs, 40)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected and v.statuses == {"SUCCESS": 200}, v
    assert v.duplicates <= 30, v
    assert v.pending == 0 and v.queued == 0, v
    # The prefetched entries were reclaimed like the killed worker's started ones, within
    # the lease (2 s) plus a reclaim tick and the new worker's start-up.
    reclaimed = sum(ev["count"] for w in (a, b) for ev in w.named("worker.reclaimed"))
    assert reclaimed >= len(prefetched) + 1, reclaimed  # the 20 never-started ones and more
    assert b.named("worker.reclaimed")
    assert time.monotonic() - t_kill < 40
    assert t_dead < t_kill
    r.close()


def test_4_poison_job_goes_to_dlq_after_max_deliveries(server, spawn, make_app, marks):
    app = make_app(server.url)
    poison = app.tasks["rel.suicide"].delay("poison")
    healthy = app.tasks["rel.work"].map([(f"ok{i}",) for i in range(20)])
    env = {"FENNEL_MAX_DELIVERIES": "2", "FENNEL_LEASE_TIMEOUT": "1"}
    deadline = time.monotonic() + 60
    started = 0
    while poison.status() is not Status.DEAD:
        assert time.monotonic() < deadline, "poison job never reached the DLQ"
        # One job at a time, to count the poison job's runs exactly (test_4b covers
        # neighbours sharing its workers).
        w = spawn(server.url, "--concurrency", "1", env=env)
        started += 1
        while w.proc.poll() is None and poison.status() is not Status.DEAD:
            time.sleep(0.1)
    runs = [k for k, _p, _t in read_marks(marks) if k == "poison"]
    # Delivered max_deliveries (2) times, each killing its worker; the third delivery is
    # checked before running and goes to the DLQ.
    assert len(runs) == 2, runs
    dead = [j for j in _read_dead(app) if j.id == poison.job_id]
    assert len(dead) == 1 and dead[0].errors[-1]["type"] == "MaxDeliveriesExceeded"
    jobs = {h.job_id: f"ok{i}" for i, h in enumerate(healthy)}
    jobs[poison.job_id] = "poison"
    settled(server.url, APP, jobs, 30)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected, v
    assert v.statuses == {"SUCCESS": 20, "DEAD": 1}, v


def test_4b_a_poison_job_does_not_take_its_neighbours_to_the_dlq(server, spawn, make_app,
                                                                   marks):
    """The poison job shares a worker with slow healthy jobs, so each crash also kills them.
    Jobs in flight at two deaths become suspects and run alone, so only the poison job's
    delivery count keeps growing: it reaches the DLQ and its neighbours all succeed."""
    app = make_app(server.url)
    healthy = app.tasks["rel.work"].map([(f"ok{i}", 1.5) for i in range(6)])
    w = spawn(server.url, "--concurrency", "8", env={"FENNEL_LEASE_TIMEOUT": "1"})
    wait_until(lambda: len(read_marks(marks)) >= 6, 10, what="the healthy jobs to start")
    poison = app.tasks["rel.suicide"].delay("poison")
    deadline = time.monotonic() + 90
    while poison.status() is not Status.DEAD:
        assert time.monotonic() < deadline, "poison job never reached the DLQ"
        if w.proc.poll() is not None:
            w = spawn(server.url, "--concurrency", "8", env={"FENNEL_LEASE_TIMEOUT": "1"})
        time.sleep(0.1)
    jobs = {h.job_id: f"ok{i}" for i, h in enumerate(healthy)}
    jobs[poison.job_id] = "poison"
    settled(server.url, APP, jobs, 60)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected, v
    assert v.statuses == {"SUCCESS": 6, "DEAD": 1}, v
    assert [j.id for j in _read_dead(app)] == [poison.job_id]
    runs = [k for k, _p, _t in read_marks(marks) if k == "poison"]
    assert len(runs) == 3  # max_deliveries (3 in this suite), then dead-lettered unrun


def _read_dead(app):
    from fennel.client import read_dead

    return read_dead(app)


def test_8_many_workers_reclaim_the_same_stale_entries(server, spawn, make_app, marks):
    app = make_app(server.url)
    handles = app.tasks["rel.work"].map([(f"k{i}", 1.0) for i in range(24)])
    jobs = {h.job_id: f"k{i}" for i, h in enumerate(handles)}
    victim = spawn(server.url, "--concurrency", "24")
    wait_until(lambda: len(read_marks(marks)) >= 24, 20, what="all 24 jobs started")
    victim.signal(signal.SIGKILL)
    victim.wait(10)
    first_pid = victim.pid
    thieves = [spawn(server.url, "--concurrency", "24", ready=False) for _ in range(4)]
    for t in thieves:
        t.wait_for("worker.started", 30)
    settled(server.url, APP, jobs, 30)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected and v.statuses == {"SUCCESS": 24}, v
    reruns = [k for k, pid, _t in read_marks(marks) if pid != first_pid]
    # every stale entry reclaimed and run exactly once among the four thieves
    assert sorted(reruns) == sorted(jobs.values()), reruns
    assert v.pending == 0 and v.queued == 0
