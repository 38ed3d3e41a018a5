"""Celery with the Redis transport: sync tasks only (no native async tasks)."""

from __future__ import annotations

import os
import time

from celery import Celery

from benchmarks.peers import _common as c
from benchmarks.peers import _tally

RESULTS = os.environ.get("FENNEL_BENCH_RESULTS") == "1"
app = Celery("fbench", broker=c.URL, backend=c.URL if RESULTS else None)


@app.task(name="noop_sync")
def noop_sync() -> None:
    _tally.hit()


@app.task(name="sleep_sync")
def sleep_sync() -> None:
    time.sleep(0.01)
    _tally.hit()


@app.task(name="ping")
def ping() -> int:
    return 1


TASKS = {"sync": noop_sync, "io": sleep_sync}


def spec() -> dict[str, object]:
    def w(procs: int = 1, extra: tuple[str, ...] = (), conc: object = "prefork 2") -> dict:
        cmds = [[c.bin_of("celery"), "-A", "benchmarks.peers.celery", "worker", "-l", "WARNING",
                 "-n", f"fbench{i}@%h", *extra] for i in range(procs)]
        return {"cmds": cmds, "env": {}, "conc": conc, "note": " ".join(extra) or "prefork"}

    return {
        "versions": c.versions("celery", "kombu", "redis"),
        "A": [("single", "sync")],
        "B": {"sync": w(), "io": w(extra=("-P", "threads", "-c", "100"), conc=100)},
        "D": {"sync": w(procs=2)},
        "C": {"worker": w(), "env": {"FENNEL_BENCH_RESULTS": "1"}, "apis": ["sync"],
              "note": "delay().get() with the Redis result backend"},
    }


def main() -> None:
    a = c.parse()
    if a.cmd == "spec":
        c.emit(spec())
    elif a.cmd == "enqueue":
        noop_sync.delay()
        with c.Stopwatch() as sw:
            for _ in range(a.n):
                noop_sync.delay()
        c.emit(c.rate(a.n, sw.seconds))
    elif a.cmd == "fill":
        task = TASKS[a.task if a.task in TASKS else "sync"]
        for _ in range(a.n):
            task.delay()
        c.emit({"filled": a.n})
    elif a.cmd == "latency":
        samples = []
        for i in range(a.warmup + a.n):
            t0 = time.perf_counter()
            assert ping.delay().get(timeout=30) == 1
            if i >= a.warmup:
                samples.append(time.perf_counter() - t0)
        c.emit(c.latencies(samples))


if __name__ == "__main__":
    from benchmarks.peers import celery as module

    module.main()
