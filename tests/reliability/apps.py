"""Tasks run by the reliability suite's workers.

``build(url)`` makes the app: the worker process imports ``tests.reliability.apps:app`` (the
URL comes from ``FENNEL_REDIS_URL``, the name from ``FENNEL_TEST_APP``, default ``rel``), and
a test builds its own copy pointing at its private server, so both sides share task names.

Every execution appends one line ``<kind> <key> <pid> <wall time>`` to the file named by
``FENNEL_TEST_MARKS`` (one ``write`` on an ``O_APPEND`` descriptor, so lines from many
processes never interleave); the oracle counts executions from it.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import time
from typing import Any

from fennel import App

_real_time = time.time

# Clock skew for scenario 21: this worker's wall clock runs FENNEL_TEST_CLOCK_SKEW seconds off.
_skew = float(os.environ.get("FENNEL_TEST_CLOCK_SKEW", "0") or 0)
if _skew:
    time.time = lambda: _real_time() + _skew


def mark(kind: str, key: str) -> None:
    path = os.environ.get("FENNEL_TEST_MARKS")
    if not path:
        return
    line = f"{kind} {key} {os.getpid()} {_real_time():.6f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def runs_so_far(kind: str, key: str) -> int:
    path = os.environ.get("FENNEL_TEST_MARKS")
    if not path or not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.split(" ", 2)[:2] == [kind, key])


# -- task bodies (module-level so the process pool's children find them too) --------------

def work(key: str, seconds: float = 0.0) -> str:
    mark("run", key)
    if seconds:
        time.sleep(seconds)
    return key


async def awork(key: str, seconds: float = 0.0) -> str:
    mark("run", key)
    if seconds:
        await asyncio.sleep(seconds)
    return key


def slow_once(key: str, seconds: float) -> int:
    """Sleeps ``seconds`` on its first execution only; returns the pid that ran it."""
    first = runs_so_far("run", key) == 0
    mark("run", key)
    if first:
        time.sleep(seconds)
    mark("done", key)
    return os.getpid()


def suicide(key: str) -> None:
    """A poison job: kills the worker process that runs it (thread pool)."""
    mark("run", key)
    os.kill(os.getpid(), signal.SIGKILL)


def child_exit(key: str) -> None:
    mark("run", key)
    os._exit(3)


def segfault(key: str) -> None:
    mark("run", key)
    ctypes.string_at(0)


def hang(key: str) -> None:
    mark("run", key)
    time.sleep(3600)


def hang_briefly(key: str, seconds: float) -> str:
    """Over its time limit, then returns: the late result must be discarded."""
    mark("run", key)
    time.sleep(seconds)
    mark("late", key)
    return "late"


async def ahang(key: str) -> None:
    mark("run", key)
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        mark("cancelled", key)
        raise


def bad_result(key: str) -> Any:
    mark("run", key)
    return {1, 2, 3}


def fail_first(key: str) -> str:
    """Fails on the first execution, succeeds on the next."""
    n = runs_so_far("run", key)
    mark("run", key)
    if n == 0:
        raise RuntimeError("first attempt fails")
    return key


def whoami() -> int:
    return os.getpid()


def quick_backoff(retries: int) -> float:
    return 0.05


def one_second_backoff(retries: int) -> float:
    return 1.0


def build(url: str | None = None, name: str | None = None, **settings: Any) -> App[Any]:
    """The suite's app; ``url``/``name`` default to FENNEL_REDIS_URL / FENNEL_TEST_APP."""
    if "FENNEL_RETRY_BACKOFF" not in os.environ:
        settings.setdefault("retry_backoff", quick_backoff)
    app: App[Any] = App(name or os.environ.get("FENNEL_TEST_APP", "rel"), redis_url=url,
                        default_retries=0, **settings)
    app.task(name="rel.work")(work)
    app.task(name="rel.awork")(awork)
    app.task(name="rel.slow_once")(slow_once)
    app.task(name="rel.suicide")(suicide)
    app.task(name="rel.child_exit")(child_exit)
    app.task(name="rel.segfault")(segfault)
    app.task(name="rel.hang", timeout=0.5)(hang)
    app.task(name="rel.hang_briefly", timeout=0.5)(hang_briefly)
    app.task(name="rel.ahang", timeout=0.5)(ahang)
    app.task(name="rel.bad_result")(bad_result)
    app.task(name="rel.fail_first", retries=1)(fail_first)
    app.task(name="rel.whoami")(whoami)
    return app


app = build()
