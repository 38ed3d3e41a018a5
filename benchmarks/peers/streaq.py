"""streaq: Redis streams on coredis and anyio; sync tasks run in worker threads."""

from __future__ import annotations

import logging
import os
import sys
import time

import anyio
from streaq import TaskStatus, Worker

from benchmarks.peers import _common as c
from benchmarks.peers import _tally

worker = Worker(redis_url=c.URL, concurrency=int(os.environ.get("FENNEL_BENCH_CONC", "16")))


@worker.task
async def noop_async() -> None:
    _tally.hit()


@worker.task
def noop_sync() -> None:
    _tally.hit()


@worker.task
async def sleep_async() -> None:
    await anyio.sleep(0.01)
    _tally.hit()


@worker.task
async def ping() -> int:
    return 1


TASKS = {"async": noop_async, "sync": noop_sync, "io": sleep_async}


def spec() -> dict[str, object]:
    # What `streaq run` does, but with WARNING logging (its CLI logs two INFO lines per task).
    cmd = [sys.executable, "-m", "benchmarks.peers.streaq", "worker"]

    def w(procs: int = 1, conc: int = 16) -> dict[str, object]:
        return c.worker(cmd, procs=procs, env={"FENNEL_BENCH_CONC": str(conc)}, conc=conc)

    return {
        "versions": c.versions("streaq", "coredis", "anyio"),
        "A": [("single", "async"), ("bulk", "async")],
        "B": {"async": w(), "sync": w(), "io": w(conc=100)},
        "D": {"async": w(procs=2)},
        "C": {"worker": w(), "apis": ["async"],
              "note": "enqueue() then task.status() every 1 ms (task.result() waits ~100 ms "
                      "in coredis' unsubscribe)"},
    }


async def _enqueue(n: int, kind: str, mode: str) -> float:
    task = TASKS[kind]
    async with worker:
        await task.enqueue()
        with c.Stopwatch() as sw:
            if mode == "single":
                for _ in range(n):
                    await task.enqueue()
            else:
                for start in range(0, n, 1000):
                    await worker.enqueue_many(
                        [task.enqueue() for _ in range(min(1000, n - start))])
    return sw.seconds


async def _latency(n: int, warmup: int) -> list[float]:
    samples = []
    async with worker:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            handle = await ping.enqueue()
            with anyio.fail_after(30):
                while await handle.status() != TaskStatus.DONE:  # noqa: ASYNC110 - polling is the point
                    await anyio.sleep(0.001)
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
    return samples


def main() -> None:
    if sys.argv[1:] == ["worker"]:
        logging.basicConfig(level=logging.WARNING)
        worker.run_sync()
        return
    a = c.parse()
    if a.cmd == "spec":
        c.emit(spec())
    elif a.cmd == "enqueue":
        c.emit(c.rate(a.n, anyio.run(_enqueue, a.n, "async", a.mode)))
    elif a.cmd == "fill":
        anyio.run(_enqueue, a.n - 1, a.task, "bulk")
        c.emit({"filled": a.n})
    elif a.cmd == "latency":
        c.emit(c.latencies(anyio.run(_latency, a.n, a.warmup)))


if __name__ == "__main__":
    from benchmarks.peers import streaq as module

    module.main()
