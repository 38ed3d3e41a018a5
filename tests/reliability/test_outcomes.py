"""Scenario 30 and its neighbours: every job reaches exactly one terminal state, recorded
once, whatever it carries, and the DLQ survives records written around Fennel.

Real ``fennel worker`` subprocesses on a private Redis; faults are envelopes and outcomes that
cannot be recorded as they are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio

from fennel import App
from fennel.client import purge_dead, read_dead, replay_dead
from fennel.exceptions import TaskFailed, Timeout
from fennel.job import Job
from tests.conftest import ROOT
from tests.reliability import outcome_apps
from tests.reliability.conftest import Spawner, app_maker, read_marks, wait_until

APP = "rel"
PREFIX = f"fennel:{{{APP}}}:"
Q = PREFIX + "queue"
DEAD = PREFIX + "dead"
OUT_APP = "tests.reliability.outcome_apps:app"


@pytest.fixture
def worker(marks: Path) -> Iterator[Spawner]:
    spawner = Spawner(marks, OUT_APP)
    yield spawner
    spawner.close()


@pytest.fixture
def client() -> Iterator[Callable[..., App[Any]]]:
    yield from app_maker(outcome_apps.build)


def runs(marks: Path, key: str) -> int:
    return sum(1 for k, _pid, _t in read_marks(marks) if k == key)


def settled_entry(r: redis.Redis, job_id: str) -> dict[bytes, bytes]:
    """The job's hash once terminal, with the queue drained and nothing pending."""
    def done() -> dict[bytes, bytes] | None:
        h = r.hgetall(PREFIX + "job:" + job_id)
        if h.get(b"status") in (b"SUCCESS", b"DEAD") and r.xlen(Q) == 0:
            return h
        return None
    return wait_until(done, 30, what=f"job {job_id} to be terminal")


def inject(r: redis.Redis, envelope: bytes, job_id: str | None) -> None:
    """Write an entry around the client, as a buggy or hostile producer would."""
    if job_id is not None:
        r.hset(PREFIX + "job:" + job_id, "status", "SENT")
    r.xadd(Q, {"j": envelope})


def handle_of(app: App[Any], job_id: str) -> Any:
    return type(app.tasks["rel.work"].delay("warmup"))(app, job_id)


# -- the error history never pushes a job over max_payload ---------------------------------

def test_30_a_retry_near_max_payload_still_fits_and_runs(server, worker, client, marks):
    app = client(server.url, max_payload=10_000)
    worker(server.url, env={"FENNEL_MAX_PAYLOAD": "10000"})
    r = redis.Redis.from_url(server.url)
    # ~9.2 kB: accepted at enqueue. Its first attempt fails with a 3 kB message and a longer
    # traceback; that history appended whole would make the retry's envelope ~15 kB.
    h = app.tasks["rel.out.fail_once_loudly"].delay("near", "b" * 9000)
    assert h.get(timeout=30) == "near"
    assert runs(marks, "near") == 2
    assert r.xlen(DEAD) == 0
    # Retries exhausted near the limit: one DEAD record with the job's id, its waiter answered.
    h2 = app.tasks["rel.out.always_fails_loudly"].delay("near2", "b" * 9000)
    with pytest.raises(TaskFailed) as info:
        h2.get(timeout=30)
    assert info.value.original_type == "RuntimeError"
    assert runs(marks, "near2") == 4
    ((_eid, fields),) = r.xrange(DEAD)
    assert fields[b"id"].decode() == h2.job_id
    (dead,) = read_dead(app)
    assert dead.id == h2.job_id and dead.attempts_failed == 4 and dead.errors
    assert r.ttl(PREFIX + "job:" + h2.job_id) > 0
    r.close()


# -- outcomes that cannot be recorded as they are: recorded once, as failures --------------

def test_30_an_exception_whose_repr_raises_is_one_recorded_failure(server, worker, client,
                                                                   marks):
    app = client(server.url)
    worker(server.url)
    r = redis.Redis.from_url(server.url)
    h = app.tasks["rel.out.bad_repr_error"].delay("repr")
    with pytest.raises(TaskFailed) as info:
        h.get(timeout=30)
    assert info.value.original_type == "ValueError"
    assert "repr() raised" in str(info.value.original_args)
    settled_entry(r, h.job_id)
    assert r.xpending(Q, "fennel")["pending"] == 0
    assert runs(marks, "repr") == 1
    r.close()


def test_30_a_retry_that_cannot_be_encoded_is_one_recorded_failure(server, worker, client,
                                                                 marks):
    app = client(server.url)
    worker(server.url)
    r = redis.Redis.from_url(server.url)
    h = app.tasks["rel.out.spoiled_by_middleware"].delay("spoiled")
    with pytest.raises(TaskFailed) as info:
        h.get(timeout=30)
    assert info.value.original_type == "UnrecordableOutcome"
    assert "could not be recorded" in str(info.value.original_args)
    settled_entry(r, h.job_id)
    assert r.xpending(Q, "fennel")["pending"] == 0
    assert runs(marks, "spoiled") == 1
    ((_eid, fields),) = r.xrange(DEAD)
    assert fields[b"id"].decode() == h.job_id
    assert orjson.loads(fields[b"j"])["args"] == ["spoiled"]  # the job as it was delivered
    r.close()


@pytest.mark.parametrize("field", [
    {"max_retries": 18446744073709551616},   # an integer over 64 bits, read as a float
    {"tries": 2**70},
    {"on_success": [1]},                      # callbacks that are not signatures
    {"on_failure": [{"task": "rel.work", "args": "not a list"}]},
])
def test_30_envelopes_whose_outcome_cannot_be_recorded_die_once_unrun(server, worker, client,
                                                                      marks, field):
    app = client(server.url)
    worker(server.url)
    r = redis.Redis.from_url(server.url)
    job_id = uuid.uuid4().hex
    body = {"id": job_id, "task": "rel.out.always_fails", "args": [job_id], "kwargs": {},
            "tries": 0, "max_retries": 1, "enqueued_at": 1.0, **field}
    raw = json.dumps(body).encode()  # orjson cannot write integers over 64 bits
    inject(r, raw, job_id)
    with pytest.raises(TaskFailed) as info:
        handle_of(app, job_id).get(timeout=30)
    assert info.value.original_type == "UndecodableJob"
    settled_entry(r, job_id)
    assert r.xpending(Q, "fennel")["pending"] == 0
    assert runs(marks, job_id) == 0
    ((_eid, fields),) = r.xrange(DEAD)
    assert fields[b"id"].decode() == job_id and fields[b"j"] == raw
    r.close()


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_30_results_with_nan_or_infinity_are_recorded_failures(server, worker, client, marks,
                                                               pool):
    app = client(server.url)
    worker(server.url, "--pool", pool)
    for task in ("rel.out.nan_result", "rel.out.inf_in_result"):
        h = app.tasks[task].delay(task)
        with pytest.raises(TaskFailed) as info:
            h.get(timeout=30)
        assert info.value.original_type == "SerializationError"
        assert "NaN" in str(info.value.original_args)
        assert runs(marks, task) == 1


# -- undecodable envelopes whose id can be read answer their waiter ------------------------

@pytest.mark.parametrize("make", [
    lambda i: b'{"id": "%s", "task": 3, "args": [], "kwargs": {}}' % i.encode(),
    lambda i: b'{"id":"%s","task":"rel.work","args":[' % i.encode(),   # not JSON
    lambda i: b'{"id":"%s","task":"rel.work","args":["%s"],"kwargs":{}}' % (
        i.encode(), b"z" * 20_000),                                      # over max_payload
])
def test_16b_undecodable_envelope_with_an_id_marks_its_job_dead(server, worker, client, make):
    app = client(server.url)
    worker(server.url, env={"FENNEL_MAX_PAYLOAD": "10000"})
    r = redis.Redis.from_url(server.url)
    job_id = uuid.uuid4().hex
    raw = make(job_id)
    inject(r, raw, job_id)
    with pytest.raises(TaskFailed) as info:
        handle_of(app, job_id).get(timeout=20)
    assert info.value.original_type == "UndecodableJob"
    assert r.ttl(PREFIX + "job:" + job_id) > 0
    ((_eid, fields),) = r.xrange(DEAD)
    assert fields[b"j"] == raw and fields[b"id"].decode() == job_id
    r.close()


def test_16c_undecodable_entry_naming_a_finished_job_leaves_its_outcome(server, worker,
                                                                        client):
    """An entry written around the client with the id of a job that succeeded: the bytes go
    to the DLQ, the job keeps its one terminal state, and a replay never touches it."""
    app = client(server.url)
    w = worker(server.url)
    done = app.tasks["rel.work"].delay("done")
    assert done.get(timeout=20) == "done"
    r = redis.Redis.from_url(server.url)
    raw = orjson.dumps({"id": done.job_id, "task": 7})
    r.xadd(Q, {"j": raw})
    wait_until(lambda: r.xlen(DEAD) == 1, 20, what="the entry in the DLQ")
    wait_until(lambda: r.xlen(Q) == 0, 20, what="the entry acknowledged")
    ((_eid, fields),) = r.xrange(DEAD)
    assert fields[b"j"] == raw
    assert done.status().value == "SUCCESS" and done.get(timeout=5) == "done"
    replay_dead(app)
    wait_until(lambda: r.xlen(DEAD) == 1 and r.xlen(Q) == 0, 20, what="the replay buried again")
    assert done.status().value == "SUCCESS" and done.get(timeout=5) == "done"
    assert w.proc.poll() is None
    r.close()


# -- the DLQ survives records written around Fennel ----------------------------------------

def _malformed_dlq(r: redis.Redis) -> dict[str, bytes]:
    odd_errors = orjson.dumps({
        "id": "odd-errors", "task": "rel.work", "args": ["a"], "kwargs": {},
        "enqueued_at": 1e300, "errors": ["boom", 3, None, {"type": "X", "args": 5}]})
    not_a_list = orjson.dumps({"id": "not-a-list", "task": "rel.work", "args": [],
                               "kwargs": {}, "errors": "oops"})
    garbage = b"\x80\x04 not json \xff"
    r.xadd(DEAD, {"j": odd_errors, "reason": "x", "id": "odd-errors"})
    r.xadd(DEAD, {"j": not_a_list, "reason": "y", "id": "not-a-list"})
    r.xadd(DEAD, {"j": garbage, "reason": "undecodable job: not JSON", "id": ""})
    return {"odd-errors": odd_errors, "not-a-list": not_a_list, "": garbage}


def test_dlq_read_replay_purge_survive_malformed_error_records(server, client):
    app = client(server.url)
    r = redis.Redis.from_url(server.url)
    written = _malformed_dlq(r)
    env = {**os.environ, "FENNEL_REDIS_URL": server.url}
    for extra in ([], ["--json"]):
        out = subprocess.run([sys.executable, "-m", "fennel", "dlq", "read", "--app", OUT_APP,
                              *extra], cwd=ROOT, env=env, capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode()[-2000:]
        assert b"odd-errors" in out.stdout and b"not-a-list" in out.stdout
    jobs = read_dead(app)
    assert len(jobs) == 3
    odd = next(j for j in jobs if j.id == "odd-errors")
    assert [e["type"] for e in odd.errors][:3] == ["MalformedErrorRecord"] * 3
    replayed = replay_dead(app)
    assert len(replayed) == 3 and r.xlen(DEAD) == 0
    queued = [fields[b"j"] for _id, fields in r.xrange(Q)]
    # The undecodable entries go back byte for byte, never as a job made up to describe them.
    assert written[""] in queued and written["not-a-list"] in queued
    assert not any(b"<undecodable>" in q for q in queued)
    assert r.hget(PREFIX + "job:not-a-list", "status") == b"SENT"
    r.delete(Q)
    _malformed_dlq(r)
    assert len(purge_dead(app)) == 3 and r.xlen(DEAD) == 0
    r.close()


# -- waiting on a callback whose parent is still running -----------------------------------

def test_followup_get_times_out_while_its_parent_runs(server, client):
    app = client(server.url)
    work = app.tasks["rel.work"]
    h = work.options(on_success=work).delay("parent")  # no worker: the parent never runs
    with pytest.raises(Timeout):
        h.followup().get(timeout=0.5)
    with pytest.raises(Timeout):
        h.followup().followup().get(timeout=0.5)


def test_replayed_job_keeps_fitting_after_many_failures(server, client):
    """Replaying a job with a long history sheds history, never the job."""
    app = client(server.url, max_payload=12_000)
    r = redis.Redis.from_url(server.url)
    job = Job(id="long", task="rel.work", args=["q" * 9000], kwargs={},
              errors=[{"type": "E", "args": ["e" * 1500], "traceback": "t" * 4000,
                       "attempt": i} for i in range(10)], failures=10)
    r.xadd(DEAD, {"j": job.encode(), "reason": "r", "id": "long"})
    assert [j.id for j in replay_dead(app)] == ["long"]
    ((_id, fields),) = r.xrange(Q)
    assert len(fields[b"j"]) <= 12_000
    back = orjson.loads(fields[b"j"])
    assert back["args"] == job.args and back["failures"] == 10
    r.close()


# -- worker-side state and fencing, in-process against the same real Redis ------------------

def _deliver_to(app: App[Any], broker: Any, consumer: str, task: str, *args: Any) -> Any:
    """Enqueue a job and have ``consumer`` read it: that consumer owns its entry."""
    async def run() -> Any:
        job = app.tasks[task].make_job(list(args), {})
        await broker.ensure_group()
        await broker.enqueue(job.id, job.encode())
        (entry,) = await broker.read(consumer, 1, 1000)
        return job, entry
    return run()


@pytest.mark.parametrize("task", ["rel.work", "rel.out.always_fails", "rel.out.bad_repr_error"])
def test_tracing_state_does_not_grow_when_a_completion_is_refused(server, task):
    import asyncio

    from fennel.broker import Broker
    from fennel.tracing import TracingMiddleware
    from fennel.worker.executor import Executor
    from fennel.worker.runner import InFlight, JobRunner

    async def scenario() -> TracingMiddleware:
        app = outcome_apps.build(server.url)
        tracing = TracingMiddleware()
        app.add_middleware(tracing)
        broker = Broker(server.url, app.keys)
        executor = Executor("thread", 2, None)
        try:
            for _ in range(3):
                _job, entry = await _deliver_to(app, broker, "owner", task, "t")
                # A worker whose lease was taken: every outcome it records is refused.
                runner = JobRunner(app, broker, executor, "stale")
                await runner.handle(InFlight(entry))
        finally:
            await executor.aclose(wait=False)
            await broker.aclose()
        return tracing

    tracing = asyncio.run(scenario())
    assert tracing._running == {} and tracing._finished == {}


def test_the_executing_mark_is_fenced(server):
    import asyncio

    from fennel.broker import Broker
    from fennel.worker.executor import Executor
    from fennel.worker.runner import JobRunner

    async def scenario() -> tuple[bytes, bytes]:
        app = outcome_apps.build(server.url)
        broker = Broker(server.url, app.keys)
        executor = Executor("thread", 1, None)
        r = redis.asyncio.Redis.from_url(server.url)
        try:
            job, entry = await _deliver_to(app, broker, "owner", "rel.work", "m")
            key = PREFIX + "job:" + job.id
            await r.hset(key, "status", "RETRY")  # the owner scheduled its retry meanwhile
            stale = JobRunner(app, broker, executor, "stale")
            stale._mark_started(job.id, entry.entry_id)
            await asyncio.gather(*stale._background)
            after_stale = await r.hget(key, "status")
            owner = JobRunner(app, broker, executor, "owner")
            owner._mark_started(job.id, entry.entry_id)
            await asyncio.gather(*owner._background)
            return after_stale, await r.hget(key, "status")
        finally:
            await r.aclose()
            await executor.aclose(wait=False)
            await broker.aclose()

    after_stale, after_owner = asyncio.run(scenario())
    assert after_stale == b"RETRY"
    assert after_owner == b"EXECUTING"
