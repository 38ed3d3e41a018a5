"""The sync API never freezes an event loop: called from a thread running one (an ``async def``
task on a worker, a hook on Fennel's own loop thread) it refuses at once with
SyncCallInEventLoop, naming what to use instead."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest

from fennel.client import gather, purge_dead, read_dead, replay_dead, wait
from fennel.exceptions import SyncCallInEventLoop, TaskFailed
from fennel.job import Status
from tests.apps import concurrency
from tests.conftest import ROOT


def test_a_sync_get_inside_an_async_task_fails_that_job_at_once(start_worker, marks):
    app = concurrency.build()
    w = start_worker("tests.apps.concurrency:app", "--concurrency", "2")
    started = time.monotonic()
    h = app.tasks["conc.asks_synchronously"].delay("outer")
    with pytest.raises(TaskFailed) as info:
        h.get(timeout=30)
    assert info.value.original_type == "SyncCallInEventLoop", info.value
    assert "await" in str(info.value.original_args)
    # Refused at once, not after the inner get()'s 10 s timeout on a frozen loop.
    assert time.monotonic() - started < 8
    assert app.tasks["conc.quick"].delay("after").get(timeout=20) == "after"
    assert w.proc.poll() is None


def test_every_sync_entry_point_refuses_inside_a_running_loop():
    app = concurrency.build()
    quick = app.tasks["conc.quick"]
    handle = quick.delay("never-run")  # no worker: it stays queued
    calls: dict[str, Callable[[], Any]] = {
        "delay": lambda: quick.delay("x"),
        "options.delay": lambda: quick.options(on_success=quick.s()).delay("x"),
        "signature.delay": lambda: quick.s("x").delay(),
        "map": lambda: quick.map([("x",)]),
        "delay_many": lambda: app.delay_many([(quick, ("x",), {})]),
        "get": lambda: handle.get(timeout=5),
        "status": handle.status,
        "gather": lambda: gather([handle], timeout=5),
        "wait": lambda: wait([handle], timeout=5),
        "read_dead": lambda: read_dead(app),
        "replay_dead": lambda: replay_dead(app),
        "purge_dead": lambda: purge_dead(app),
    }

    async def main() -> dict[str, float]:
        took = {}
        for name, call in calls.items():
            t0 = time.monotonic()
            with pytest.raises(SyncCallInEventLoop, match="async API"):
                call()
            took[name] = time.monotonic() - t0
        return took

    took = asyncio.run(main())
    assert max(took.values()) < 1.0, took
    # Outside a loop the same calls work as before.
    assert handle.status() is Status.SENT
    app.close()


def test_a_sync_delay_from_a_hook_on_fennels_loop_thread_raises_instead_of_deadlocking(
        redis_server):
    """A hook runs on Fennel's loop thread; a sync enqueue there would wait on that very
    loop. The script below hung for ever before."""
    script = textwrap.dedent("""
        from fennel import App, Middleware
        from fennel.exceptions import SyncCallInEventLoop

        other = App("other")

        @other.task
        def noop() -> None: ...

        seen = []

        class Forward(Middleware):
            def before_enqueue(self, app, job):
                try:
                    noop.delay()
                except SyncCallInEventLoop as exc:
                    seen.append(exc)

        main = App("main", middleware=[Forward()])

        @main.task
        def work() -> None: ...

        noop.delay()  # warm the fast path's client, as a busy process would have
        work.delay()
        print("refused:", len(seen), type(seen[0]).__name__ if seen else None, flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "refused: 1 SyncCallInEventLoop"
