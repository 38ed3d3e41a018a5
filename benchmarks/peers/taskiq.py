"""taskiq with taskiq-redis's RedisStreamBroker (async-first; sync tasks in its thread pool)."""

from __future__ import annotations

import asyncio
import os
import time

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from benchmarks.peers import _common as c
from benchmarks.peers import _tally

broker = RedisStreamBroker(url=c.URL)
if os.environ.get("FENNEL_BENCH_RESULTS") == "1":
    broker = broker.with_result_backend(RedisAsyncResultBackend(redis_url=c.URL))


@broker.task(task_name="noop_async")
async def noop_async() -> None:
    _tally.hit()


@broker.task(task_name="noop_sync")
def noop_sync() -> None:
    _tally.hit()


@broker.task(task_name="sleep_async")
async def sleep_async() -> None:
    await asyncio.sleep(0.01)
    _tally.hit()


@broker.task(task_name="ping")
async def ping() -> int:
    return 1


TASKS = {"async": noop_async, "sync": noop_sync, "io": sleep_async}


def spec() -> dict[str, object]:
    def w(procs: int = 1, conc: int | None = None) -> dict[str, object]:
        cmd = [c.bin_of("taskiq"), "worker", "benchmarks.peers.taskiq:broker",
               "--workers", str(procs), "--log-level", "WARNING"]
        if conc:
            cmd += ["--max-async-tasks", str(conc)]
        return c.worker(cmd, conc=conc or 100,
                        note=f"--workers {procs}: taskiq forks its own processes")

    return {
        "versions": c.versions("taskiq", "taskiq-redis", "redis"),
        "A": [("single", "async")],
        "B": {"async": w(), "sync": w(), "io": w()},
        "D": {"async": w(procs=2)},
        "C": {"worker": {**w(), "env": {"FENNEL_BENCH_RESULTS": "1"}},
              "env": {"FENNEL_BENCH_RESULTS": "1"},
              "apis": ["async"],
              "note": "kiq() + wait_result(check_interval=0.001), RedisAsyncResultBackend"},
    }


async def _enqueue(n: int, kind: str) -> float:
    await broker.startup()
    task = TASKS[kind]
    await task.kiq()
    with c.Stopwatch() as sw:
        for _ in range(n):
            await task.kiq()
    await broker.shutdown()
    return sw.seconds


async def _fill(n: int, kind: str) -> None:
    await broker.startup()
    task = TASKS[kind]

    async def lane(m: int) -> None:
        for _ in range(m):
            await task.kiq()

    await asyncio.gather(*(lane(n // 32 + (i < n % 32)) for i in range(32)))
    await broker.shutdown()


async def _latency(n: int, warmup: int) -> list[float]:
    await broker.startup()
    samples = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        handle = await ping.kiq()
        res = await handle.wait_result(check_interval=0.001, timeout=30)
        assert res.return_value == 1, res
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    await broker.shutdown()
    return samples


def main() -> None:
    c.run_async_peer(spec, lambda n: _enqueue(n, "async"), _fill, _latency)


if __name__ == "__main__":
    from benchmarks.peers import taskiq as module

    module.main()
