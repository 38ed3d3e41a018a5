"""Fennel, run from the project checkout (``python -m fennel worker``)."""

from __future__ import annotations

import asyncio
import sys
import time

from benchmarks.peers import _common as c
from benchmarks.peers import _tally
from fennel import App

# Two handles on one app name (one queue): the sync and the async client interface.
sync_app = App("fbench", redis_url=c.URL, interface="sync")
async_app = App("fbench", redis_url=c.URL, interface="async")


def _register(app: App) -> dict[str, object]:
    @app.task(name="noop_async")
    async def noop_async() -> None:
        _tally.hit()

    @app.task(name="noop_sync")
    def noop_sync() -> None:
        _tally.hit()

    @app.task(name="sleep_async")
    async def sleep_async() -> None:
        await asyncio.sleep(0.01)
        _tally.hit()

    @app.task(name="ping")
    async def ping() -> int:
        return 1

    return {"async": noop_async, "sync": noop_sync, "io": sleep_async, "ping": ping}


SYNC = _register(sync_app)
ASYNC = _register(async_app)
ENV = {"FENNEL_LOG_LEVEL": "warning", "FENNEL_REDIS_URL": c.URL}


def spec() -> dict[str, object]:
    cmd = [sys.executable, "-m", "fennel", "worker", "--app", "benchmarks.peers.fennel:async_app"]
    return {
        "versions": c.versions("fennel-queue", "redis", "hiredis", "orjson", "uvloop"),
        "A": [("single", "sync"), ("single", "async"), ("bulk", "sync"), ("bulk", "async")],
        "B": {
            "async": c.worker(cmd, env=ENV, conc=16, note="default concurrency 16"),
            "sync": c.worker(cmd, env=ENV, conc=16, note="thread pool, default concurrency 16"),
            "io": c.worker([*cmd, "-c", "100"], env=ENV, conc=100),
        },
        "D": {"async": c.worker(cmd, procs=2, env=ENV, conc=16)},
        "C": {"worker": c.worker(cmd, env=ENV, conc=16),
              "apis": ["async", "sync"],
              "note": "await (await t.delay()).get() / t.delay().get(): pub/sub reply"},
    }


def enqueue(n: int, mode: str, api: str) -> dict[str, object]:
    if api == "sync":
        task = SYNC["async"]
        task.delay()  # warm-up: loop thread, connection, script cache
        with c.Stopwatch() as sw:
            if mode == "single":
                for _ in range(n):
                    task.delay()
            else:
                task.map([()] * n)
        sync_app.close()
        return c.rate(n, sw.seconds)

    async def run() -> float:
        task = ASYNC["async"]
        await task.delay()
        with c.Stopwatch() as sw:
            if mode == "single":
                for _ in range(n):
                    await task.delay()
            else:
                await task.map([()] * n)
        await async_app.aclose()
        return sw.seconds

    return c.rate(n, asyncio.run(run()))


def fill(n: int, kind: str) -> None:
    task = ASYNC[kind]

    async def run() -> None:
        await task.map([()] * n)
        await async_app.aclose()

    asyncio.run(run())


def latency(n: int, warmup: int, api: str) -> list[float]:
    samples = []
    if api == "sync":
        task = SYNC["ping"]
        for i in range(warmup + n):
            t0 = time.perf_counter()
            assert task.delay().get(timeout=30) == 1
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
        sync_app.close()
        return samples

    async def run() -> None:
        task = ASYNC["ping"]
        for i in range(warmup + n):
            t0 = time.perf_counter()
            assert await (await task.delay()).get(timeout=30) == 1
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
        await async_app.aclose()

    asyncio.run(run())
    return samples


def main() -> None:
    a = c.parse()
    if a.cmd == "spec":
        c.emit(spec())
    elif a.cmd == "enqueue":
        c.emit(enqueue(a.n, a.mode, a.api))
    elif a.cmd == "fill":
        fill(a.n, a.task)
        c.emit({"filled": a.n})
    elif a.cmd == "latency":
        c.emit(c.latencies(latency(a.n, a.warmup, a.api), api=a.api))


if __name__ == "__main__":
    from benchmarks.peers import fennel as module  # the importable name the worker uses

    module.main()
