"""App for the operations features: middleware, callbacks, probes, metrics."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from fennel import App, Middleware
from fennel.job import Job

app = App(name="tests-ops", default_retries=0, retry_backoff=lambda retries: 0.05)


def _mark(line: str) -> None:
    path = os.environ.get("FENNEL_TEST_MARKS")
    if path:
        with Path(path).open("a") as f:
            f.write(line + "\n")


class Recorder(Middleware):
    """Writes every worker-side hook call to the marks file, in order."""

    def on_worker_start(self, app: App[Any], worker: Any) -> None:
        _mark("on_worker_start")

    def on_worker_stop(self, app: App[Any], worker: Any) -> None:
        _mark("on_worker_stop")

    def before_execute(self, app: App[Any], job: Job) -> None:
        _mark(f"before_execute {job.task} {job.id} {job.tries}")

    async def after_execute(self, app: App[Any], job: Job, error: BaseException | None,
                            duration: float) -> None:
        _mark(f"after_execute {job.task} {job.id} {type(error).__name__ if error else None}")

    def on_success(self, app: App[Any], job: Job, result: Any, duration: float) -> None:
        _mark(f"on_success {job.task} {job.id} {result!r}")

    def on_failure(self, app: App[Any], job: Job, error: BaseException) -> None:
        _mark(f"on_failure {job.task} {job.id} {type(error).__name__}")

    def on_retry(self, app: App[Any], job: Job, error: BaseException, delay: float) -> None:
        _mark(f"on_retry {job.task} {job.id}")

    def on_dead(self, app: App[Any], job: Job, reason: str) -> None:
        _mark(f"on_dead {job.task} {job.id}")


class Broken(Middleware):
    """Every hook raises: jobs must still run and be recorded."""

    def before_execute(self, app: App[Any], job: Job) -> None:
        raise RuntimeError("hook exploded")

    async def on_success(self, app: App[Any], job: Job, result: Any, duration: float) -> None:
        raise RuntimeError("async hook exploded")


if os.environ.get("FENNEL_TEST_MIDDLEWARE") == "1":
    app.add_middleware(Recorder())
    app.add_middleware(Broken())


@app.task
def double(n: int) -> int:
    _mark(f"run double {n}")
    return n * 2


@app.task
def add_one(n: int) -> int:
    _mark(f"run add_one {n}")
    return n + 1


@app.task
def concat(prefix: str, value: Any) -> str:
    _mark(f"run concat {prefix} {value}")
    return f"{prefix}{value}"


@app.task(retries=1)
def explode(n: int) -> None:
    _mark(f"run explode {n}")
    raise ValueError(f"bad {n}")


@app.task
def handle_error(tag: str, error: dict[str, Any]) -> str:
    _mark(f"run handle_error {tag} {error['type']}")
    return f"{tag}:{error['type']}"


@app.task
def slow(seconds: float) -> float:
    _mark(f"start slow {seconds}")
    time.sleep(seconds)
    _mark(f"end slow {seconds}")
    return seconds


@app.task
async def block_loop(seconds: float) -> float:
    """A badly written async task: blocks the worker's event loop."""
    time.sleep(seconds)  # noqa: ASYNC251 - blocking on purpose
    return seconds
