"""Scenarios 3 and 20: a process-pool child that crashes; tasks that hang past their
``timeout`` on each kind of executor."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from fennel.exceptions import TaskFailed
from tests.reliability.conftest import oracle, read_marks, settled

APP = "rel"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_3_process_pool_child_crash_is_a_recorded_attempt(server, spawn, make_app, marks):
    app = make_app(server.url)
    w = spawn(server.url, "--pool", "process", "--concurrency", "2")
    crash = app.tasks["rel.child_exit"].delay("exit")
    segv = app.tasks["rel.segfault"].delay("segv")
    others = app.tasks["rel.work"].map([(f"ok{i}", 0.05) for i in range(20)])
    for h in (crash, segv):
        with pytest.raises(TaskFailed) as info:
            h.get(timeout=30)
        assert info.value.original_type == "ChildDied"
    jobs = {crash.job_id: "exit", segv.job_id: "segv"}
    jobs.update({h.job_id: f"ok{i}" for i, h in enumerate(others)})
    settled(server.url, APP, jobs, 30)
    v = oracle(server.url, APP, jobs, marks)
    assert not v.lost and not v.unexpected and v.duplicates == 0, v
    assert v.statuses == {"SUCCESS": 20, "DEAD": 2}, v
    assert w.proc.poll() is None  # the worker itself never went down
    # the pool was rebuilt: jobs after the crashes ran in fresh children
    assert app.tasks["rel.whoami"].delay().get(timeout=15) != w.pid


def test_20_async_task_over_its_timeout_is_cancelled(server, spawn, make_app, marks):
    app = make_app(server.url)
    spawn(server.url)
    h = app.tasks["rel.ahang"].delay("a")
    with pytest.raises(TaskFailed) as info:
        h.get(timeout=15)
    assert info.value.original_type == "TaskTimeout"
    assert [k for k, _p, _t in read_marks(marks, "cancelled")] == ["a"]


def test_20_process_task_over_its_timeout_has_its_child_killed(server, spawn, make_app, marks):
    app = make_app(server.url)
    spawn(server.url, "--pool", "process", "--concurrency", "1")
    h = app.tasks["rel.hang"].delay("p")
    with pytest.raises(TaskFailed) as info:
        h.get(timeout=20)
    assert info.value.original_type == "TaskTimeout"
    ((_k, child, _t),) = read_marks(marks)
    deadline = time.monotonic() + 5
    while _pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(child)
    # one slot, rebuilt: the next job runs in a new child
    assert app.tasks["rel.whoami"].delay().get(timeout=20) not in (child,)


def test_20_thread_task_over_its_timeout_is_failed_and_its_late_result_discarded(
        server, spawn, make_app, marks):
    app = make_app(server.url)
    w = spawn(server.url, "--concurrency", "1")
    h = app.tasks["rel.hang_briefly"].delay("t", 2.0)
    t0 = time.monotonic()
    with pytest.raises(TaskFailed) as info:
        h.get(timeout=15)
    assert info.value.original_type == "TaskTimeout"
    assert time.monotonic() - t0 < 2.0
    # a hung thread does not take the worker's only slot with it
    assert app.tasks["rel.work"].delay("next").get(timeout=5) == "next"
    # the abandoned thread finishes later; its result is thrown away
    deadline = time.monotonic() + 5
    while not read_marks(marks, "late") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_marks(marks, "late")
    time.sleep(0.3)
    with pytest.raises(TaskFailed):
        h.get(timeout=1)
    assert not [e for e in w.named("job.succeeded") if e.get("job_id") == h.job_id]
    # forever-hanging thread tasks: each gets a fresh pool, the worker keeps working
    hangs = [app.tasks["rel.hang"].delay(f"h{i}") for i in range(3)]
    for x in hangs:
        with pytest.raises(TaskFailed):
            x.get(timeout=15)
    assert app.tasks["rel.work"].delay("after-hangs").get(timeout=5) == "after-hangs"


def test_a_process_slot_whose_child_cannot_be_started_is_started_again_later(
        server, spawn, make_app, marks):
    """The worker runs out of file descriptors just as a timed-out job's child is replaced:
    the slot must come back once descriptors are free, not be lost (with one slot, every
    later job would wait for it for ever)."""
    app = make_app(server.url)
    w = spawn(server.url, "--pool", "process", "--concurrency", "1")
    assert app.tasks["rel.work"].delay("before").get(timeout=30) == "before"
    soft, hard = (int(v) for v in subprocess.run(
        ["prlimit", "--pid", str(w.pid), "--nofile", "--raw", "--noheadings",
         "--output", "SOFT,HARD"], capture_output=True, text=True, check=True).stdout.split())
    in_use = len(os.listdir(f"/proc/{w.pid}/fd"))
    # No descriptor beyond those open now: a new child's pipe cannot be made.
    subprocess.run(["prlimit", "--pid", str(w.pid), f"--nofile={in_use}:{hard}"], check=True)
    try:
        with pytest.raises(TaskFailed):
            app.tasks["rel.hang"].delay("hung").get(timeout=30)
    finally:
        subprocess.run(["prlimit", "--pid", str(w.pid), f"--nofile={soft}:{hard}"], check=True)
    assert app.tasks["rel.work"].delay("after").get(timeout=30) == "after"
    assert w.proc.poll() is None
