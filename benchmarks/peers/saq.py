"""SAQ: async-first; sync functions run in its thread pool."""

from __future__ import annotations

import asyncio
import os
import time

from saq import Queue

from benchmarks.peers import _common as c
from benchmarks.peers import _tally

queue = Queue.from_url(c.URL)


async def noop_async(ctx: object) -> None:
    _tally.hit()


def noop_sync(ctx: object) -> None:
    _tally.hit()


async def sleep_async(ctx: object) -> None:
    await asyncio.sleep(0.01)
    _tally.hit()


async def ping(ctx: object) -> int:
    return 1


settings = {
    "queue": queue,
    "functions": [noop_async, noop_sync, sleep_async, ping],
    "concurrency": int(os.environ.get("FENNEL_BENCH_CONC", "10")),  # SAQ's default
}
NAMES = {"async": "noop_async", "sync": "noop_sync", "io": "sleep_async"}


def spec() -> dict[str, object]:
    cmd = [c.bin_of("saq"), "benchmarks.peers.saq.settings", "--quiet"]

    def w(procs: int = 1, conc: int = 10) -> dict[str, object]:
        return c.worker(cmd, procs=procs, env={"FENNEL_BENCH_CONC": str(conc)}, conc=conc)

    return {
        "versions": c.versions("saq", "redis", "hiredis"),
        "A": [("single", "async")],
        "B": {"async": w(), "sync": w(), "io": w(conc=100)},
        "D": {"async": w(procs=2)},
        "C": {"worker": w(), "apis": ["async"],
              "note": "queue.apply(poll_interval=0.001) (default poll 0.5 s)"},
    }


async def _enqueue(n: int, kind: str) -> float:
    await queue.connect()
    name = NAMES[kind]
    await queue.enqueue(name)
    with c.Stopwatch() as sw:
        for _ in range(n):
            await queue.enqueue(name)
    await queue.disconnect()
    return sw.seconds


async def _fill(n: int, kind: str) -> None:
    await queue.connect()
    name = NAMES[kind]

    async def lane(m: int) -> None:
        for _ in range(m):
            await queue.enqueue(name)

    await asyncio.gather(*(lane(n // 16 + (i < n % 16)) for i in range(16)))
    await queue.disconnect()


async def _latency(n: int, warmup: int) -> list[float]:
    await queue.connect()
    samples = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        assert await queue.apply("ping", timeout=30, poll_interval=0.001) == 1
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    await queue.disconnect()
    return samples


def main() -> None:
    c.run_async_peer(spec, lambda n: _enqueue(n, "async"), _fill, _latency)


if __name__ == "__main__":
    from benchmarks.peers import saq as module

    module.main()
