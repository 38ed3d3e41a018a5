"""Waiting for jobs that another client enqueued: another process, another ``asyncio.run()``,
the sync facade's handles awaited on an application's own loop. The outcome reaches every
waiter as soon as the job ends, never only at the waiter's deadline (nor never, without one).

Each test enqueues with no worker running, starts the waiter, waits until it has read the
job's state (so the job is certainly unfinished then), and only then starts a real worker.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from fennel import App
from fennel.client import AsyncResult, gather
from fennel.exceptions import TaskFailed
from tests.apps import aio, basic

ROOT = Path(__file__).resolve().parent.parent
#: A waiter woken by the outcome returns within moments of the job's end; one that is not
#: returns only at its 30 s deadline (or never).
PROMPT = 5.0


def _wait_until(pred: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _reads(r: redis.Redis) -> int:
    """Job state reads Redis has served so far (a waiter's first read included)."""
    stats = r.info("commandstats").get("cmdstat_hmget")
    return int(stats["calls"]) if stats else 0


def _enqueue_in_process() -> tuple[App[Any], str, str]:
    code = ("from tests.apps.basic import fail, foo\n"
            "print(foo.delay(0.2).job_id, fail.delay('nope').job_id)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=60, check=True)
    ok, dead = done.stdout.split()
    return basic.app, ok, dead


def _enqueue_in_event_loop() -> tuple[App[Any], str, str]:
    async def main() -> tuple[str, str]:
        try:
            return (await aio.foo.delay(0.2)).job_id, (await aio.boom.delay(1)).job_id
        finally:
            await aio.app.aclose()

    ok, dead = asyncio.run(main())
    return aio.app, ok, dead


def _enqueue_by_sync_facade() -> tuple[App[Any], str, str]:
    return basic.app, basic.foo.delay(0.2).job_id, basic.fail.delay("nope").job_id


def _await_each(app: App[Any], job_ids: Sequence[str], box: dict[str, Any]) -> threading.Thread:
    """A thread awaiting each job's ``AsyncResult.get(timeout=30)`` on its own new loop; each
    outcome (value or error) lands in ``box`` with the time it arrived."""

    async def one(job_id: str) -> None:
        try:
            box[job_id] = await AsyncResult(app, job_id).get(timeout=30)
        except Exception as exc:
            box[job_id] = exc
        box[job_id + ":at"] = time.monotonic()

    async def main() -> None:
        try:
            await asyncio.gather(*(one(j) for j in job_ids))
        finally:
            await app.aclose()

    t = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("enqueue", [_enqueue_in_process, _enqueue_in_event_loop,
                                     _enqueue_by_sync_facade],
                         ids=["another_process", "another_event_loop", "sync_facade"])
def test_a_job_enqueued_by_another_client_wakes_its_waiter_when_it_ends(
        redis_server, start_worker, enqueue):
    app, ok, dead = enqueue()
    r = redis.Redis.from_url(redis_server.url)
    before = _reads(r)
    box: dict[str, Any] = {}
    t = _await_each(app, [ok, dead], box)
    _wait_until(lambda: _reads(r) >= before + 2, 30, "the waiter's first reads")
    start_worker("tests.apps.aio:app" if app is aio.app else "tests.apps.basic:app")
    started = time.monotonic()
    t.join(60)
    assert not t.is_alive()
    assert box[ok] == 0.2
    assert isinstance(box[dead], TaskFailed)
    assert box[ok + ":at"] - started < PROMPT
    assert box[dead + ":at"] - started < PROMPT
    r.close()


def test_get_without_a_timeout_returns_when_a_foreign_job_ends(redis_server, start_worker):
    _app, ok, _dead = _enqueue_in_event_loop()
    r = redis.Redis.from_url(redis_server.url)
    before = _reads(r)
    box: dict[str, Any] = {}

    async def main() -> None:
        try:
            box["value"] = await AsyncResult(aio.app, ok).get()  # no timeout of its own
        finally:
            await aio.app.aclose()

    t = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    t.start()
    _wait_until(lambda: _reads(r) >= before + 1, 30, "the waiter's first read")
    start_worker("tests.apps.aio:app")
    t.join(30)  # the outer deadline: without the outcome it would wait for ever
    assert not t.is_alive(), "get() never heard that the job ended"
    assert box["value"] == 0.2
    r.close()


def test_gather_over_handles_another_client_enqueued(redis_server, start_worker):
    async def enqueue() -> list[str]:
        try:
            return [(await aio.foo.delay(i / 10)).job_id for i in range(5)]
        finally:
            await aio.app.aclose()

    ids = asyncio.run(enqueue())
    r = redis.Redis.from_url(redis_server.url)
    before = _reads(r)
    box: dict[str, Any] = {}

    def waiter() -> None:
        box["values"] = gather([AsyncResult(aio.app, j) for j in ids], timeout=30)
        box["at"] = time.monotonic()

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    _wait_until(lambda: _reads(r) >= before + len(ids), 30, "the waiters' first reads")
    start_worker("tests.apps.aio:app")
    started = time.monotonic()
    t.join(60)
    assert not t.is_alive()
    assert box["values"] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert box["at"] - started < PROMPT
    r.close()
