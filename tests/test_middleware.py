"""Middleware hooks, producer and worker side, against real workers."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fennel import App, Middleware
from fennel.exceptions import TaskFailed
from fennel.job import Job
from tests.apps.ops import double, explode

OPS = "tests.apps.ops:app"
MW_ENV = {"FENNEL_TEST_MIDDLEWARE": "1"}


def hook_lines(marks) -> list[str]:
    return [ln for ln in marks.read_text().splitlines() if not ln.startswith("run ")]


def test_worker_hooks_fire_in_order_and_a_failing_hook_loses_nothing(start_worker, marks):
    w = start_worker(OPS, env={**MW_ENV, "FENNEL_TEST_MARKS": str(marks)})
    x = double.delay(4)
    assert x.get(timeout=20) == 8  # the Broken middleware raises in two hooks
    w.stop()
    lines = hook_lines(marks)
    job = x.job_id
    assert lines == [
        "on_worker_start",
        f"before_execute tests.apps.ops.double {job} 0",
        f"after_execute tests.apps.ops.double {job} None",
        f"on_success tests.apps.ops.double {job} 8",
        "on_worker_stop",
    ]
    failures = [e for e in w.named("fennel.middleware.hook_failed")]
    assert {e["hook"] for e in failures} == {"before_execute", "on_success"}


def test_failure_retry_and_dead_hooks(start_worker, marks):
    start_worker(OPS, env={**MW_ENV, "FENNEL_TEST_MARKS": str(marks)})
    x = explode.delay(3)
    with pytest.raises(TaskFailed):
        x.get(timeout=20)
    job = x.job_id
    task = "tests.apps.ops.explode"
    # on_dead runs right after the outcome is recorded, so it may trail .get() a little.
    deadline = time.monotonic() + 10
    while f"on_dead {task} {job}" not in hook_lines(marks) and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = [ln for ln in hook_lines(marks) if job in ln]
    assert lines == [
        f"before_execute {task} {job} 0",
        f"after_execute {task} {job} ValueError",
        f"on_failure {task} {job} ValueError",
        f"on_retry {task} {job}",
        f"before_execute {task} {job} 1",
        f"after_execute {task} {job} ValueError",
        f"on_failure {task} {job} ValueError",
        f"on_dead {task} {job}",
    ]


class Stamp(Middleware):
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def before_enqueue(self, app: App[Any], job: Job) -> None:
        job.headers["stamp"] = "from-producer"
        self.seen.append(f"before {job.task}")

    def after_enqueue(self, app: App[Any], job: Job) -> None:
        self.seen.append(f"after {job.id}")


class Exploding(Middleware):
    def before_enqueue(self, app: App[Any], job: Job) -> None:
        raise RuntimeError("producer hook exploded")


def test_producer_hooks_edit_headers_and_never_block_enqueue(start_worker, redis_server):
    app = App(name="tests-ops", middleware=[Exploding()])
    stamp = Stamp()
    app.add_middleware(stamp)

    @app.task(name="tests.apps.ops.double")
    def double_again(n: int) -> int:
        return n * 2

    start_worker(OPS)
    x = double_again.delay(5)
    assert x.get(timeout=20) == 10
    assert stamp.seen == ["before tests.apps.ops.double", f"after {x.job_id}"]
    app.close()
