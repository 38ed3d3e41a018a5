"""Tasks for the concurrency and loop-safety tests: jobs that record when they run, and jobs
that misbehave (KeyboardInterrupt, SystemExit, a sync ``.get()`` inside ``async def``).

Every execution appends ``<kind> <key> <pid> <wall time>`` to ``FENNEL_TEST_MARKS`` (one
``write`` on an ``O_APPEND`` descriptor, so lines from many processes never interleave).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from fennel import App


def mark(kind: str, key: str) -> None:
    path = os.environ.get("FENNEL_TEST_MARKS")
    if not path:
        return
    line = f"{kind} {key} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


async def swallows_cancel(key: str) -> None:
    """Ignores its first cancellation and goes on for a minute."""
    mark("start", key)
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        mark("swallowed", key)
    await asyncio.sleep(60)


def span(key: str, seconds: float) -> str:
    """Marks ``start`` and ``end`` around a sleep, so tests can count overlapping runs."""
    mark("start", key)
    time.sleep(seconds)
    mark("end", key)
    return key


def quick(key: str) -> str:
    mark("run", key)
    return key


def _exception(kind: str) -> BaseException:
    if kind == "generator_exit":
        return GeneratorExit()
    return KeyboardInterrupt("from a task") if kind == "interrupt" else SystemExit(3)


def raise_base(key: str, kind: str) -> None:
    mark("run", key)
    raise _exception(kind)


async def araise_base(key: str, kind: str) -> None:
    mark("run", key)
    await asyncio.sleep(0)
    raise _exception(kind)


async def araise_base_in_child(key: str, kind: str) -> None:
    """Raises it in a task of its own that it awaits, where asyncio lets it out of the loop."""
    mark("run", key)

    async def child() -> None:
        await asyncio.sleep(0)
        raise _exception(kind)

    await asyncio.gather(child())


async def asks_synchronously(key: str) -> Any:
    """Waits for another job with the *sync* API inside ``async def``."""
    mark("run", key)
    return app.tasks["conc.quick"].delay(key + "-inner").get(timeout=10)


def build(name: str = "conc", url: str | None = None, **settings: Any) -> App[Any]:
    a: App[Any] = App(name, redis_url=url, default_retries=0, **settings)
    a.task(name="conc.span")(span)
    a.task(name="conc.span_limited", timeout=2.5)(span)
    a.task(name="conc.quick")(quick)
    a.task(name="conc.raise_base")(raise_base)
    a.task(name="conc.araise_base")(araise_base)
    a.task(name="conc.araise_base_limited", timeout=5)(araise_base)
    a.task(name="conc.araise_base_in_child")(araise_base_in_child)
    a.task(name="conc.araise_base_in_child_limited", timeout=5)(araise_base_in_child)
    a.task(name="conc.asks_synchronously")(asks_synchronously)
    a.task(name="conc.swallows_cancel")(swallows_cancel)
    return a


app = build()
# Every process that imports the app says so: the process pool's children among them.
mark("import", __name__)
