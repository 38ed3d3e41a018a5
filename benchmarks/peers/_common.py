"""What every peer driver shares: its command line, the Redis address, result printing.

A driver is run as ``python -m benchmarks.peers.<name> <command>`` with the peer's venv
python and the project root on ``PYTHONPATH``; standard library only. Commands:

* ``spec``: JSON describing the worker command lines for each scenario and the enqueue modes;
* ``enqueue --n N --mode single|bulk --api sync|async``: time N enqueues (A);
* ``fill --n N --task async|sync|io``: put N jobs on the queue, untimed (B, D);
* ``latency --n N --warmup W``: N sequential enqueue-and-wait round trips (C).

Each command prints one line ``RESULT <json>`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from importlib import metadata

HOST = os.environ.get("FENNEL_BENCH_REDIS_HOST", "127.0.0.1")
PORT = int(os.environ.get("FENNEL_BENCH_REDIS_PORT", "0"))
URL = f"redis://{HOST}:{PORT}/0"
#: Round trips run before the timed ones in C (they also wait for the worker to be ready).
WARMUP = 20


def versions(*dists: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for d in dists:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = None
    return out


def bin_of(exe: str) -> str:
    """A console script installed next to this interpreter (the peer's venv)."""
    return os.path.join(os.path.dirname(sys.executable), exe)


def worker(argv: list[str], *, procs: int = 1, env: dict[str, str] | None = None,
           conc: int | str | None = None, note: str = "") -> dict[str, object]:
    """A worker configuration: ``procs`` copies of ``argv`` (unless the peer forks itself)."""
    return {"cmds": [argv] * procs, "env": env or {}, "conc": conc, "note": note}


def emit(result: dict[str, object]) -> None:
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("spec")
    e = sub.add_parser("enqueue")
    e.add_argument("--n", type=int, required=True)
    e.add_argument("--mode", choices=("single", "bulk"), default="single")
    e.add_argument("--api", choices=("sync", "async"), default="async")
    f = sub.add_parser("fill")
    f.add_argument("--n", type=int, required=True)
    f.add_argument("--task", choices=("async", "sync", "io"), default="async")
    lat = sub.add_parser("latency")
    lat.add_argument("--n", type=int, required=True)
    lat.add_argument("--warmup", type=int, default=WARMUP)
    lat.add_argument("--api", choices=("sync", "async"), default="async")
    sub.add_parser("worker")  # for peers whose worker we start ourselves
    return p.parse_args(argv)


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def run_async_peer(spec: Callable[[], dict[str, object]],
                   enqueue: Callable[[int], Awaitable[float]],
                   fill: Callable[[int, str], Awaitable[object]],
                   latency: Callable[[int, int], Awaitable[list[float]]]) -> None:
    """The command line of a driver whose library is async-only: ``spec``, ``enqueue`` (timed,
    returns seconds), ``fill`` and ``latency``, each coroutine run with ``asyncio.run``."""
    a = parse()
    if a.cmd == "spec":
        emit(spec())
    elif a.cmd == "enqueue":
        emit(rate(a.n, asyncio.run(enqueue(a.n))))
    elif a.cmd == "fill":
        asyncio.run(fill(a.n, a.task))
        emit({"filled": a.n})
    elif a.cmd == "latency":
        emit(latencies(asyncio.run(latency(a.n, a.warmup))))


def rate(n: int, seconds: float, **extra: object) -> dict[str, object]:
    return {"n": n, "seconds": seconds, "rate": n / seconds, **extra}


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_ms:
        return float("nan")
    rank = max(1, min(len(sorted_ms), int(-(-q * len(sorted_ms) // 100))))
    return sorted_ms[rank - 1]


def latencies(samples_s: list[float], **extra: object) -> dict[str, object]:
    ms = sorted(s * 1000 for s in samples_s)
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": ms[-1] if ms else None,
            "mean_ms": sum(ms) / len(ms) if ms else None, **extra}
