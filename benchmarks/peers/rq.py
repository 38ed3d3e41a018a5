"""RQ: one job at a time per worker process. Its default worker forks a work horse per job
(~60 jobs/s here); we run ``SimpleWorker`` (no fork), RQ's fastest documented worker."""

from __future__ import annotations

import time

from redis import Redis
from rq import Queue

from benchmarks.peers import _common as c
from benchmarks.peers import _tally


def noop_sync() -> None:
    _tally.hit()


async def noop_async() -> None:
    _tally.hit()


def sleep_sync() -> None:
    time.sleep(0.01)
    _tally.hit()


def ping() -> int:
    return 1


NAMES = {"sync": "benchmarks.peers.rq.noop_sync", "async": "benchmarks.peers.rq.noop_async",
         "io": "benchmarks.peers.rq.sleep_sync"}


def spec() -> dict[str, object]:
    cmd = [c.bin_of("rq"), "worker", "--url", c.URL, "--quiet",
           "--worker-class", "rq.worker.SimpleWorker", "default"]
    return {
        "versions": c.versions("rq", "redis"),
        "A": [("single", "sync"), ("bulk", "sync")],
        # ~300 jobs/s (100/s when sleeping): smaller N keeps a run within minutes.
        "B": {"async": {**c.worker(cmd, conc=1), "n": 5000},
              "sync": {**c.worker(cmd, conc=1), "n": 5000},
              "io": {**c.worker(cmd, conc=1, note="one job at a time"), "n": 500}},
        "D": {"sync": {**c.worker(cmd, procs=2, conc=1), "n": 5000}},
        "C": {"worker": c.worker(cmd, conc=1), "apis": ["sync"],
              "note": "enqueue + job.latest_result(timeout=30), SimpleWorker"},
    }


def _queue() -> Queue:
    return Queue("default", connection=Redis.from_url(c.URL))


def _enqueue(n: int, kind: str, mode: str) -> float:
    q = _queue()
    name = NAMES[kind]
    q.enqueue(name)
    with c.Stopwatch() as sw:
        if mode == "single":
            for _ in range(n):
                q.enqueue(name)
        else:
            for start in range(0, n, 1000):
                q.enqueue_many([Queue.prepare_data(name) for _ in range(min(1000, n - start))])
    return sw.seconds


def main() -> None:
    a = c.parse()
    if a.cmd == "spec":
        c.emit(spec())
    elif a.cmd == "enqueue":
        c.emit(c.rate(a.n, _enqueue(a.n, "sync", a.mode)))
    elif a.cmd == "fill":
        _enqueue(a.n - 1, a.task, "bulk")
        c.emit({"filled": a.n})
    elif a.cmd == "latency":
        q = _queue()
        samples = []
        for i in range(a.warmup + a.n):
            t0 = time.perf_counter()
            job = q.enqueue(NAMES["sync"].replace("noop_sync", "ping"))
            result = job.latest_result(timeout=30)
            assert result is not None and result.return_value == 1, result
            if i >= a.warmup:
                samples.append(time.perf_counter() - t0)
        c.emit(c.latencies(samples))


if __name__ == "__main__":
    from benchmarks.peers import rq as module

    module.main()
