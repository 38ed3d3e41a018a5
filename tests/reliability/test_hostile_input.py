"""Scenarios 16-19 and 24: undecodable messages, unknown task names, values that are not
JSON, huge payloads, malicious payloads. Nothing executes, each lands in the DLQ with its
reason, and the worker goes on."""

from __future__ import annotations

import os
import pickle
import uuid
from pathlib import Path

import orjson
import pytest
import redis

from fennel.client import read_dead
from fennel.exceptions import PayloadTooLarge, SerializationError, TaskFailed
from fennel.job import Job
from tests.reliability.conftest import wait_until

APP = "rel"
Q = f"fennel:{{{APP}}}:queue"
DEAD = f"fennel:{{{APP}}}:dead"


def _inject(r: redis.Redis, envelope: bytes | None, job_id: str | None = None) -> None:
    """Write an entry around the client, as a buggy or hostile producer would."""
    if job_id is not None:
        r.hset(f"fennel:{{{APP}}}:job:{job_id}", "status", "SENT")
    r.xadd(Q, {"j": envelope} if envelope is not None else {"x": b"no envelope"})


def _dead_entries(r: redis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _id, fields in r.xrange(DEAD)]


class Evil:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.path}",))


def _alive_and_working(app, w) -> None:
    assert w.proc.poll() is None
    assert app.tasks["rel.work"].delay("still-alive").get(timeout=15) == "still-alive"


def test_16_undecodable_messages_go_to_the_dlq_with_raw_bytes(server, spawn, make_app):
    app = make_app(server.url)
    w = spawn(server.url)
    r = redis.Redis.from_url(server.url)
    raw = b"\x80\x04not json at all \xff"
    _inject(r, raw)
    _inject(r, None)
    _inject(r, b'["a", "list"]')
    _inject(r, b'{"id": "x", "task": 3}')
    wait_until(lambda: len(_dead_entries(r)) == 4, 15, what="4 DLQ entries")
    dead = {d[b"j"]: d[b"reason"] for d in _dead_entries(r)}  # the raw bytes, kept
    assert b"not valid JSON" in dead[raw]
    assert b"no job envelope" in dead[b""]
    assert b"not a JSON object" in dead[b'["a", "list"]']
    assert b"'task'" in dead[b'{"id": "x", "task": 3}']
    assert r.xpending(Q, "fennel")["pending"] == 0 and r.xlen(Q) == 0
    # the DLQ API shows them as undecodable jobs with the reason
    jobs = read_dead(app)
    assert [j.task for j in jobs] == ["<undecodable>"] * 4
    _alive_and_working(app, w)
    r.close()


def test_17_unknown_task_is_retried_then_dead_and_never_imported(server, spawn, make_app,
                                                                 tmp_path: Path):
    app = make_app(server.url)
    w = spawn(server.url)
    r = redis.Redis.from_url(server.url)
    marker = tmp_path / "imported"
    job = Job(id=uuid.uuid4().hex, task="os.system", args=[f"touch {marker}"], kwargs={},
              max_retries=2)
    _inject(r, job.encode(), job.id)
    handle = type(app.tasks["rel.work"].delay("warmup"))(app, job.id)
    with pytest.raises(TaskFailed) as info:
        handle.get(timeout=20)
    assert info.value.original_type == "UnknownTask"
    assert not marker.exists()
    assert len(w.named("job.retrying")) == 2  # retried with backoff (rolling deploys)
    (dead,) = [j for j in read_dead(app) if j.id == job.id]
    assert [e["type"] for e in dead.errors] == ["UnknownTask"] * 3
    _alive_and_working(app, w)
    r.close()


def test_18_values_that_are_not_json(server, spawn, make_app, marks):
    app = make_app(server.url)
    r = redis.Redis.from_url(server.url)
    before = r.dbsize()
    with pytest.raises(SerializationError, match="not JSON-serialisable"):
        app.tasks["rel.work"].delay(object())
    with pytest.raises(SerializationError):
        app.tasks["rel.work"].map([("ok",), (object(),)])  # nothing of the batch written
    assert r.dbsize() == before
    w = spawn(server.url)
    h = app.tasks["rel.bad_result"].delay("b")
    with pytest.raises(TaskFailed) as info:
        h.get(timeout=15)
    assert info.value.original_type == "SerializationError"
    _alive_and_working(app, w)
    r.close()


def test_19_huge_payload(server, spawn, make_app):
    app = make_app(server.url, max_payload=10_000)
    r = redis.Redis.from_url(server.url)
    before = r.dbsize()
    with pytest.raises(PayloadTooLarge, match="max_payload"):
        app.tasks["rel.work"].delay("x" * 10_001)
    assert r.dbsize() == before
    # Written around the client: the worker refuses to parse it.
    w = spawn(server.url, env={"FENNEL_MAX_PAYLOAD": "10000"})
    job = Job(id=uuid.uuid4().hex, task="rel.work", args=["y" * 20_000], kwargs={})
    _inject(r, job.encode(), job.id)
    wait_until(lambda: _dead_entries(r), 15, what="the DLQ entry")
    (dead,) = _dead_entries(r)
    assert b"max_payload" in dead[b"reason"]
    _alive_and_working(app, w)
    r.close()


def test_24_malicious_payloads(server, spawn, make_app, marks, tmp_path: Path):
    app = make_app(server.url)
    w = spawn(server.url)
    r = redis.Redis.from_url(server.url)
    marker = tmp_path / "pwned"
    pickled = pickle.dumps(Evil(str(marker)))
    _inject(r, pickled)
    # pickle bytes inside a valid envelope, as an argument
    j1 = Job(id=uuid.uuid4().hex, task="rel.work", args=[pickled.hex()], kwargs={})
    _inject(r, j1.encode(), j1.id)
    # dotted import paths as task names
    j2 = Job(id=uuid.uuid4().hex, task="subprocess.check_call", args=[["touch", str(marker)]],
             kwargs={})
    j3 = Job(id=uuid.uuid4().hex, task="builtins.eval",
             args=[f"__import__('os').system('touch {marker}')"], kwargs={})
    for j in (j2, j3):
        _inject(r, j.encode(), j.id)
    # JSON bombs: nesting far past any parser's depth limit, and a huge flat envelope
    _inject(r, b"[" * 200_000 + b"]" * 200_000)
    _inject(r, b'{"id":"bomb","task":"rel.work","args":[' + b"[[[[[[[[[[]]]]]]]]]]," * 55_000
            + b'1],"kwargs":{}}', "bomb")
    # a kwargs name the task does not take
    j4 = Job(id=uuid.uuid4().hex, task="rel.work", args=[], kwargs={"__class__": "x"})
    _inject(r, j4.encode(), j4.id)
    wait_until(lambda: len(_dead_entries(r)) >= 6, 20, what="the DLQ entries")
    assert not marker.exists()
    by_id = {d[b"id"]: d[b"reason"] for d in _dead_entries(r)}
    assert by_id[j2.id.encode()] == by_id[j3.id.encode()] == b"UnknownTask: retries exhausted"
    assert by_id[j4.id.encode()] == b"TypeError: retries exhausted"
    reasons = b"\n".join(d[b"reason"] for d in _dead_entries(r))
    assert b"not valid JSON" in reasons and b"depth limit" in reasons, reasons
    assert b"max_payload" in reasons, reasons
    # j1 ran as plain data: the hex string is an argument, never unpickled
    assert r.hget(f"fennel:{{{APP}}}:job:{j1.id}", "status") == b"SUCCESS"
    assert orjson.loads(r.hget(f"fennel:{{{APP}}}:job:{j1.id}", "result")) == pickled.hex()
    _alive_and_working(app, w)
    r.close()
