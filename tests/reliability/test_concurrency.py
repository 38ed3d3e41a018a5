"""A worker runs at most ``concurrency`` jobs, whatever delivers them (a read, a reclaim, an
adoption); a thread's time limit counts from when it starts; KeyboardInterrupt and SystemExit
raised by a task fail that job and never stop the worker."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from fennel import _portal
from fennel.exceptions import TaskFailed
from fennel.testing import RedisServer
from fennel.worker.executor import Executor
from tests.apps import concurrency
from tests.reliability.conftest import Spawner, read_marks, wait_until

APP = "conc"
WORKER_APP = "tests.apps.concurrency:app"


@pytest.fixture
def conc_worker(marks: Path) -> Iterator[Spawner]:
    """Starts ``fennel worker`` on the concurrency app against a given server."""
    spawner = Spawner(marks, WORKER_APP)
    yield spawner
    spawner.close()


@pytest.fixture
def conc_app(server: RedisServer) -> Iterator[Any]:
    a = concurrency.build(url=server.url, socket_timeout=2.0, connect_timeout=2.0)
    yield a
    a.close()
    _portal.stop()


def max_overlap(marks: Path, pid: int) -> int:
    """The most ``span`` jobs that ran at the same time in process ``pid``."""
    events = [(t, 1) for _k, p, t in read_marks(marks, "start") if p == pid]
    events += [(t, -1) for _k, p, t in read_marks(marks, "end") if p == pid]
    running = peak = 0
    for _t, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def test_reclaim_during_a_blocking_read_never_exceeds_concurrency(server, conc_app,
                                                                   conc_worker, marks):
    """Two entries of a dead consumer are reclaimed while the worker's read waits on an empty
    queue; two jobs enqueued then must wait for a slot, not run (or queue for a thread) beside
    them, where their 2.5 s time limit would run out."""
    limited = conc_app.tasks["conc.span_limited"]
    stale = [limited.delay(f"stale{i}", 1.5) for i in range(2)]
    r = redis.Redis.from_url(server.url)
    queue = f"fennel:{{{APP}}}:queue"
    r.xgroup_create(queue, "fennel", id="0", mkstream=True)
    got = r.xreadgroup("fennel", "died-holding-these", {queue: ">"}, count=2)
    assert sum(len(entries) for _s, entries in got) == 2
    r.close()
    # A long blocking read (socket_timeout 6 s -> 2 s reads) keeps the race window wide.
    w = conc_worker(server.url, "--concurrency", "2", env={"FENNEL_SOCKET_TIMEOUT": "6"})
    w.wait_for("worker.reclaimed", timeout=30)
    fresh = [limited.delay(f"fresh{i}", 1.5) for i in range(2)]
    for h in stale + fresh:
        assert h.get(timeout=30) in {f"stale{i}" for i in range(2)} | {f"fresh{i}"
                                                                        for i in range(2)}
    assert max_overlap(marks, w.pid) <= 2
    assert w.proc.poll() is None


def test_a_thread_time_limit_starts_when_the_thread_does():
    """A job waiting for a free thread is not charged for the wait."""
    task = concurrency.build(name="conc-exec").tasks["conc.span_limited"]  # timeout 2.5 s

    async def main() -> list[Any]:
        executor = Executor("thread", 1, None)
        try:
            return await asyncio.gather(*(
                executor.run(task, [f"k{i}", 1.5], {}, task.timeout, b"") for i in range(2)))
        finally:
            await executor.aclose(wait=True)

    assert asyncio.run(main()) == ["k0", "k1"]


@pytest.mark.parametrize("kind", ["interrupt", "exit"])
@pytest.mark.parametrize("pool", ["thread", "process"])
def test_keyboard_interrupt_and_system_exit_fail_only_their_job(server, conc_app, conc_worker,
                                                                 marks, kind, pool):
    w = conc_worker(server.url, "--concurrency", "4", "--pool", pool)
    neighbour = conc_app.tasks["conc.span"].delay("neighbour", 2.0)
    wait_until(lambda: read_marks(marks, "start"), 30, what="the neighbour to start")
    bad = [conc_app.tasks[name].delay(f"{name}-{kind}", kind)
           for name in ("conc.araise_base_limited", "conc.araise_base", "conc.raise_base")]
    expected = "KeyboardInterrupt" if kind == "interrupt" else "SystemExit"
    for h in bad:
        with pytest.raises(TaskFailed) as info:
            h.get(timeout=30)
        # In-process it is recorded as a RuntimeError naming it; from a child, as itself.
        assert expected in info.value.original_type + str(info.value.original_args), info.value
    assert neighbour.get(timeout=30) == "neighbour"
    # Still serving, never exited, and nothing was handed back.
    assert conc_app.tasks["conc.quick"].delay("after").get(timeout=30) == "after"
    assert w.proc.poll() is None
    assert not w.named("worker.handed_back") and not w.named("worker.stopping")


@pytest.mark.parametrize("kind", ["interrupt", "exit"])
def test_keyboard_interrupt_and_system_exit_in_a_child_task_fail_only_their_job(
        server, conc_app, conc_worker, marks, kind):
    """Raised in a task the job spawned, asyncio lets it out of the event loop itself."""
    w = conc_worker(server.url, "--concurrency", "4")
    neighbour = conc_app.tasks["conc.span"].delay("neighbour", 2.0)
    wait_until(lambda: read_marks(marks, "start"), 30, what="the neighbour to start")
    bad = [conc_app.tasks[name].delay(f"{name}-{kind}", kind)
           for name in ("conc.araise_base_in_child", "conc.araise_base_in_child_limited")]
    expected = "KeyboardInterrupt" if kind == "interrupt" else "SystemExit"
    for h in bad:
        with pytest.raises(TaskFailed) as info:
            h.get(timeout=30)
        assert expected in info.value.original_type + str(info.value.original_args), info.value
    assert neighbour.get(timeout=30) == "neighbour"
    assert conc_app.tasks["conc.quick"].delay("after").get(timeout=30) == "after"
    assert w.proc.poll() is None
    assert not w.named("worker.handed_back") and not w.named("worker.stopping")
    assert [k for k, _p, _t in read_marks(marks)].count(f"conc.araise_base_in_child-{kind}") == 1


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_generator_exit_raised_by_a_task_is_one_recorded_failure(server, conc_app, conc_worker,
                                                                 marks, pool):
    """GeneratorExit, delivered through a future, must not close the job's coroutine."""
    w = conc_worker(server.url, "--concurrency", "4", "--pool", pool)
    bad = [conc_app.tasks[name].delay(f"{name}-g", "generator_exit")
           for name in ("conc.araise_base_limited", "conc.araise_base", "conc.raise_base")]
    for h in bad:
        with pytest.raises(TaskFailed) as info:
            h.get(timeout=30)
        assert "GeneratorExit" in info.value.original_type + str(info.value.original_args)
    assert conc_app.tasks["conc.quick"].delay("after").get(timeout=30) == "after"
    assert w.proc.poll() is None
    assert not w.named("worker.job_crashed") and not w.named("job.unrecordable"), [
        (e.get("entry_id"), e.get("traceback")) for e in w.named("worker.job_crashed")]


def test_a_suspect_waiting_for_isolation_does_not_stall_other_workers(server, conc_app,
                                                                      conc_worker, marks):
    """A suspect (in flight at two worker deaths) is held by the busy worker that takes it
    and run there alone once its neighbour is done; another worker keeps reading meanwhile."""
    span = conc_app.tasks["conc.span"]
    suspect = span.delay("suspect", 6.0)
    r = redis.Redis.from_url(server.url)
    queue = f"fennel:{{{APP}}}:queue"
    r.xgroup_create(queue, "fennel", id="0", mkstream=True)
    ((_s, ((entry_id, _f),)),) = r.xreadgroup("fennel", "died-once", {queue: ">"}, count=1)
    r.xclaim(queue, "fennel", "died-twice", 0, [entry_id])  # second delivery, second death
    long_job = span.delay("neighbour", 14.0)
    w1 = conc_worker(server.url, "--concurrency", "4")
    wait_until(lambda: read_marks(marks, "start"), 30, what="the neighbour to start on w1")

    def suspect_seen() -> bool:
        (p,) = r.xpending_range(queue, "fennel", entry_id, entry_id, 1)
        # Taken by w1, or idle long enough for w1's reclaim loop to have looked at it.
        return p["consumer"] != b"died-twice" or p["time_since_delivered"] > 3500

    wait_until(suspect_seen, 30, what="w1 to see the suspect")
    w2 = conc_worker(server.url, "--concurrency", "4")
    t0 = time.monotonic()
    quick = conc_app.tasks["conc.quick"].map([(f"q{i}",) for i in range(50)])
    assert [h.get(timeout=60) for h in quick] == [f"q{i}" for i in range(50)]
    took = time.monotonic() - t0
    assert took < 5, f"50 quick jobs took {took:.1f}s while a suspect waited"
    assert long_job.get(timeout=60) == "neighbour"
    assert suspect.get(timeout=60) == "suspect"
    starts = {k: (p, t) for k, p, t in read_marks(marks, "start")}
    ends = {k: (p, t) for k, p, t in read_marks(marks, "end")}
    # Run alone: nothing else ran on its worker while it did.
    pid, began = starts["suspect"]
    _pid, finished = ends["suspect"]
    for key, (p, t) in starts.items():
        if key != "suspect" and p == pid:
            assert ends[key][1] <= began or t >= finished, key
    for key, p, t in read_marks(marks, "run"):
        assert p != pid or not began <= t <= finished, key
    assert {w1.pid, w2.pid} >= {pid}
    r.close()


def test_a_process_job_cancelled_at_shutdown_starts_no_new_child(server, conc_app,
                                                                 conc_worker, marks):
    w = conc_worker(server.url, "--concurrency", "1", "--pool", "process",
                    env={"FENNEL_GRACE_PERIOD": "1"})
    conc_app.tasks["conc.span"].delay("long", 30.0)
    wait_until(lambda: read_marks(marks, "start"), 30, what="the job to start in a child")
    w.signal(signal.SIGTERM)
    assert w.wait(60) == 0
    assert sum(e["count"] for e in w.named("worker.handed_back")) == 1
    children = {p for _k, p, _t in read_marks(marks, "import")} - {w.pid, os.getpid()}
    assert len(children) == 1, f"{len(children)} children were started for one slot"


def test_drain_is_bounded_when_a_job_swallows_its_cancellation(server, conc_app, conc_worker,
                                                               marks):
    w = conc_worker(server.url, "--concurrency", "2", env={"FENNEL_GRACE_PERIOD": "1"})
    conc_app.tasks["conc.swallows_cancel"].delay("stubborn")
    wait_until(lambda: read_marks(marks, "start"), 30, what="the job to start")
    t0 = time.monotonic()
    w.signal(signal.SIGTERM)
    assert w.wait(45) == 0  # it used to wait out the job's minute after cancelling it
    assert time.monotonic() - t0 < 20
    assert read_marks(marks, "swallowed")
    assert sum(e["count"] for e in w.named("worker.handed_back")) == 1


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_an_embedded_worker_stops_every_thread_it_started(server, conc_app, pool):
    from fennel.worker import Worker

    handles = [conc_app.tasks["conc.span"].delay(f"e{i}", 0.05) for i in range(4)]

    async def main() -> set[threading.Thread]:
        before = set(threading.enumerate())
        w = Worker(conc_app, concurrency=2, pool=pool, app_spec=WORKER_APP,
                   install_signal_handlers=False, health_port=0)
        run = asyncio.create_task(w.run())
        for h in handles:
            await h.aio().get(timeout=60)
        w.stop()
        assert await asyncio.wait_for(run, 60) == 0
        # Still inside the embedding app's loop, which lives on after the worker.
        for _ in range(400):  # up to 20 s for threads told to stop to finish
            if not set(threading.enumerate()) - before:
                break
            await asyncio.sleep(0.05)
        return set(threading.enumerate()) - before

    left = asyncio.run(main())
    assert not left, sorted(t.name for t in left)


def test_a_process_slot_emptied_by_a_cancelled_job_is_refilled_when_needed():
    task = concurrency.build(name="conc-proc").tasks["conc.span"]

    async def main() -> Any:
        executor = Executor("process", 1, WORKER_APP)
        await executor.start()
        try:
            first = asyncio.create_task(executor.run(task, ["cut", 30.0], {}, None,
                                                     b'{"args": ["cut", 30.0], "kwargs": {}}'))
            await asyncio.sleep(0.5)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            return await asyncio.wait_for(executor.run(
                task, ["next", 0.0], {}, None, b'{"args": ["next", 0.0], "kwargs": {}}'), 60)
        finally:
            await executor.aclose(wait=False)

    assert asyncio.run(main()) == "next"
