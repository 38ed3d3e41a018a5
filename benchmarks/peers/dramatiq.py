"""Dramatiq with its Redis broker: thread workers; async actors through its AsyncIO middleware."""

from __future__ import annotations

import asyncio
import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO

from benchmarks.peers import _common as c
from benchmarks.peers import _tally

RESULTS = os.environ.get("FENNEL_BENCH_RESULTS") == "1"
broker = RedisBroker(url=c.URL)
broker.add_middleware(AsyncIO())
if RESULTS:
    from dramatiq.results import Results
    from dramatiq.results.backends import RedisBackend

    broker.add_middleware(Results(backend=RedisBackend(url=c.URL)))
dramatiq.set_broker(broker)


@dramatiq.actor
async def noop_async() -> None:
    _tally.hit()


@dramatiq.actor
def noop_sync() -> None:
    _tally.hit()


@dramatiq.actor
async def sleep_async() -> None:
    await asyncio.sleep(0.01)
    _tally.hit()


@dramatiq.actor(**({"store_results": True} if RESULTS else {}))
def ping() -> int:
    return 1


ACTORS = {"async": noop_async, "sync": noop_sync, "io": sleep_async}


def spec() -> dict[str, object]:
    def w(procs: int = 1, threads: int = 8) -> dict[str, object]:
        cmd = [c.bin_of("dramatiq"), "benchmarks.peers.dramatiq", "--processes", str(procs),
               "--threads", str(threads)]
        return c.worker(cmd, conc=threads, note=f"--processes {procs} --threads {threads}")

    return {
        "versions": c.versions("dramatiq", "redis"),
        "A": [("single", "sync")],
        "B": {"async": w(), "sync": w(), "io": w(threads=100)},
        "D": {"sync": w(procs=2)},
        "C": {"worker": w(), "env": {"FENNEL_BENCH_RESULTS": "1"}, "apis": ["sync"],
              "note": "send() + message.get_result(block=True), Results with RedisBackend"},
    }


def _send(n: int, kind: str) -> None:
    actor = ACTORS[kind]
    for _ in range(n):
        actor.send()


def main() -> None:
    a = c.parse()
    if a.cmd == "spec":
        c.emit(spec())
    elif a.cmd == "enqueue":
        noop_async.send()
        with c.Stopwatch() as sw:
            _send(a.n, "async")
        c.emit(c.rate(a.n, sw.seconds))
    elif a.cmd == "fill":
        _send(a.n, a.task)
        c.emit({"filled": a.n})
    elif a.cmd == "latency":
        samples = []
        for i in range(a.warmup + a.n):
            t0 = time.perf_counter()
            assert ping.send().get_result(block=True, timeout=30_000) == 1
            if i >= a.warmup:
                samples.append(time.perf_counter() - t0)
        c.emit(c.latencies(samples))


if __name__ == "__main__":
    from benchmarks.peers import dramatiq as module

    module.main()
