"""arq: async tasks only; its worker polls the queue every ``poll_delay`` (0.5 s default)."""

from __future__ import annotations

import asyncio
import os
import time

from arq import create_pool
from arq.connections import RedisSettings

from benchmarks.peers import _common as c
from benchmarks.peers import _tally

REDIS = RedisSettings(host=c.HOST, port=c.PORT, database=0)


async def noop_async(ctx: object) -> None:
    _tally.hit()


async def sleep_async(ctx: object) -> None:
    await asyncio.sleep(0.01)
    _tally.hit()


async def ping(ctx: object) -> int:
    return 1


class WorkerSettings:
    functions = [noop_async, sleep_async, ping]
    redis_settings = REDIS
    max_jobs = int(os.environ.get("FENNEL_BENCH_CONC", "10"))  # arq's default
    poll_delay = float(os.environ.get("FENNEL_BENCH_POLL", "0.5"))  # arq's default


# arq logs two INFO lines per job; keep warnings only, as for every peer.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}
NAMES = {"async": "noop_async", "io": "sleep_async"}


def spec() -> dict[str, object]:
    cmd = [c.bin_of("arq"), "benchmarks.peers.arq.WorkerSettings",
           "--custom-log-dict", "benchmarks.peers.arq.LOGGING"]

    def w(procs: int = 1, conc: int = 10, poll: float = 0.5) -> dict[str, object]:
        return c.worker(cmd, procs=procs, conc=conc,
                        env={"FENNEL_BENCH_CONC": str(conc), "FENNEL_BENCH_POLL": str(poll)},
                        note=f"max_jobs={conc} poll_delay={poll}")

    return {
        "versions": c.versions("arq", "redis", "hiredis"),
        "A": [("single", "async")],
        # With the default poll_delay=0.5 s arq drains ~200 jobs/s; 1 ms is its best case.
        "B": {"async": w(poll=0.001), "io": w(conc=100, poll=0.001)},
        "D": {"async": w(procs=2, poll=0.001)},
        "C": {"worker": w(poll=0.001), "apis": ["async"],
              "note": "enqueue_job + job.result(poll_delay=0.001), worker poll_delay=0.001"},
    }


async def _enqueue(n: int, kind: str, timed: bool) -> float:
    pool = await create_pool(REDIS)
    name = NAMES.get(kind, "noop_async")
    await pool.enqueue_job(name)
    n -= 0 if timed else 1
    with c.Stopwatch() as sw:
        if timed:
            for _ in range(n):
                await pool.enqueue_job(name)
        else:
            async def lane(m: int) -> None:
                for _ in range(m):
                    await pool.enqueue_job(name)

            await asyncio.gather(*(lane(n // 32 + (i < n % 32)) for i in range(32)))
    await pool.aclose()
    return sw.seconds


async def _latency(n: int, warmup: int) -> list[float]:
    pool = await create_pool(REDIS)
    samples = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        job = await pool.enqueue_job("ping")
        assert await job.result(timeout=30, poll_delay=0.001) == 1
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    await pool.aclose()
    return samples


def main() -> None:
    c.run_async_peer(spec, lambda n: _enqueue(n, "async", True),
                     lambda n, task: _enqueue(n, task, False), _latency)


if __name__ == "__main__":
    from benchmarks.peers import arq as module

    module.main()
