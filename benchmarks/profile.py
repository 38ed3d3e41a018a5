"""Where Fennel's time goes: the measurements behind docs/performance.md, reproducible.

::

    python -m benchmarks.profile drain --kind async --n 20000 --concurrency 16 64 [--py-spy]
    python -m benchmarks.profile enqueue --n 5000

``drain`` queues N jobs, runs one ``fennel worker`` at each concurrency and reports the
steady rate, worker and Redis CPU per job, and the round trips per job from Redis'
``INFO commandstats``; with ``--py-spy`` (``pip install py-spy``) it also samples the worker
and sorts its on-CPU time into categories (syscalls, redis-py, asyncio, Fennel...).
``enqueue`` reports CPU per call of Fennel's ``delay()`` (sync and async), ``map()``, and the
bare redis-py calls they are built on. Starts its own Redis; Fennel from this checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
ENVELOPE = b'{"id":"0123456789abcdef0123456789abcdef","task":"noop","args":[],"kwargs":{}}'
IDLE = ("EpollSelector.select", "_report", "Thread.wait", "Condition.wait", "Event.wait",
        "_worker (concurrent", "sleep")


def categorise(stack: str) -> str:
    """A category for a py-spy stack (frames ``function (path:line)``, paths shortened)."""
    leaf = stack.rsplit(";", 1)[-1]
    m = re.search(r"\((.+?):\d+\)$", leaf.strip())
    path = m.group(1) if m else ""
    if "_SelectorSocketTransport.write" in leaf or "_write_to_self" in leaf:
        return "socket send (syscall)"
    if "_read_ready__data_received" in leaf or "_read_from_self" in leaf:
        return "socket recv (syscall)"
    if "run_hooks" in stack:
        return "middleware hooks"
    if path.endswith("asyncio/timeouts.py"):
        return "redis-py asyncio.timeout per read"
    if path.startswith(("redis/", "hiredis")):
        return "redis-py (pack, parse, pool)"
    if path == "fennel/job.py":
        return "fennel envelope decode/encode"
    if path.startswith("fennel/"):
        return "fennel python"
    if path.startswith("asyncio/") or path == "selectors.py":
        return "asyncio scheduling"
    return "other: " + leaf.strip()[:60]


def py_spy_breakdown(raw: Path, us_per_job: float | None) -> None:
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if "MainThread" not in stack:
            continue
        leaf = stack.rsplit(";", 1)[-1].strip()
        if leaf.startswith(IDLE):
            continue
        counts[categorise(stack)] += int(n)
    total = sum(counts.values()) or 1
    print(f"    loop thread, {total} on-CPU samples:")
    for name, n in counts.most_common(12):
        extra = f"  {us_per_job * n / total:6.1f} us/job" if us_per_job else ""
        print(f"    {100 * n / total:5.1f}%{extra}  {name}")


def drain(url: str, port: int, args: argparse.Namespace) -> None:
    from benchmarks.peers import _tally
    from benchmarks.run import group_cpu

    env = {**os.environ, "PYTHONPATH": str(ROOT), "FENNEL_BENCH_REDIS_PORT": str(port),
           "FENNEL_LOG_LEVEL": "warning", "FENNEL_REDIS_URL": url}
    r = redis.Redis.from_url(url)
    redis_pid = int(r.info("server")["process_id"])
    for conc in args.concurrency:
        r.flushall()
        subprocess.run([sys.executable, "-m", "benchmarks.peers.fennel", "fill", "--n",
                        str(args.n), "--task", args.kind], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        r.config_resetstat()
        worker = subprocess.Popen([sys.executable, "-m", "fennel", "worker", "--app",
                                   "benchmarks.peers.fennel:async_app", "-c", str(conc)],
                                  env=env, cwd=ROOT, start_new_session=True)
        spy = None
        try:
            while int(r.get(_tally.DONE_KEY) or 0) == 0:
                time.sleep(0.005)
            d0, c0 = int(r.get(_tally.DONE_KEY) or 0), group_cpu({worker.pid})
            rc0 = _redis_cpu(redis_pid)
            if args.py_spy:
                raw = Path(tempfile.mkdtemp()) / "spy.txt"
                spy = subprocess.Popen(["py-spy", "record", "--pid", str(worker.pid), "-r",
                                        "1000", "--threads", "--format",
                                        "raw", "-o", str(raw), "--duration", "3"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while int(r.get(_tally.DONE_KEY) or 0) < args.n:
                time.sleep(0.01)
            d1, c1 = int(r.get(_tally.DONE_KEY) or 0), group_cpu({worker.pid})
            rc1 = _redis_cpu(redis_pid)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait()
        h = {k.decode(): float(v) for k, v in
             r.hgetall(r.keys(_tally.PROC_PREFIX + "*")[0]).items()}
        calls = {k.removeprefix("cmdstat_"): v["calls"]
                 for k, v in r.info("commandstats").items()}
        jobs = max(d1 - d0, 1)
        cpu = (c1 - c0) / jobs * 1e6
        reads = calls.get("xreadgroup", 0)
        marks = calls.get("evalsha", 0) - args.n
        print(f"{args.kind} concurrency {conc}: {(h['n'] - 1) / (h['last'] - h['first']):,.0f}"
              f" jobs/s steady; worker CPU {cpu:.1f} us/job, Redis CPU "
              f"{(rc1 - rc0) / jobs * 1e6:.1f} us/job; {args.n / max(reads, 1):.1f} jobs per "
              f"XREADGROUP, {args.n / max(marks, 1):.1f} jobs per start mark "
              f"(load {os.getloadavg()[0]:.1f})")
        if spy is not None:
            spy.wait()
            py_spy_breakdown(raw, cpu)


def _redis_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def enqueue(url: str, port: int, args: argparse.Namespace) -> None:
    os.environ["FENNEL_BENCH_REDIS_PORT"] = str(port)
    from benchmarks.peers import fennel as f
    from fennel.broker.redis import _SCRIPTS

    n = args.n
    r = redis.Redis.from_url(url)

    def measure(name: str, fn: Any, per: int = n) -> None:
        r.flushall()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{name:44s} CPU {cpu / per * 1e6:7.1f} us/op   wall {wall / per * 1e6:7.1f} us/op")

    def sync_evalsha() -> None:
        sha = r.script_load(_SCRIPTS["enqueue"][0])
        for _ in range(n):
            r.evalsha(sha, 2, "q", "job:" + uuid.uuid4().hex, ENVELOPE)

    async def async_evalsha() -> None:
        ar = redis.asyncio.Redis.from_url(url)
        sha = await ar.script_load(_SCRIPTS["enqueue"][0])
        for _ in range(n):
            await ar.evalsha(sha, 2, "q", "job:" + uuid.uuid4().hex, ENVELOPE)
        await ar.aclose()

    async def async_delay() -> None:
        for _ in range(n):
            await f.ASYNC["async"].delay()

    async def async_map() -> None:
        await f.ASYNC["async"].map([()] * (n * 4))

    def xadd_pipelined() -> None:
        pipe = r.pipeline(transaction=False)
        for i in range(n * 4):
            pipe.xadd("s", {"j": ENVELOPE})
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()

    f.SYNC["async"].delay()  # start the loop thread and its connection
    asyncio.run(f.ASYNC["async"].delay())
    measure("sync redis-py EVALSHA enqueue.lua", sync_evalsha)
    measure("asyncio redis-py EVALSHA enqueue.lua", lambda: asyncio.run(async_evalsha()))
    measure("fennel async delay()", lambda: asyncio.run(async_delay()))
    measure("fennel sync delay()", lambda: [f.SYNC["async"].delay() for _ in range(n)])
    measure("fennel async map(), per job", lambda: asyncio.run(async_map()), n * 4)
    measure("redis-py pipelined XADD, per entry", xadd_pipelined, n * 4)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drain")
    d.add_argument("--kind", choices=("async", "sync", "io"), default="async")
    d.add_argument("--n", type=int, default=20000)
    d.add_argument("--concurrency", type=int, nargs="+", default=[16])
    d.add_argument("--py-spy", action="store_true")
    e = sub.add_parser("enqueue")
    e.add_argument("--n", type=int, default=5000)
    args = p.parse_args()
    from fennel.testing import RedisServer

    with RedisServer(extra_args=["--appendfsync", "no"]) as server:
        (drain if args.cmd == "drain" else enqueue)(server.url, server.port, args)


if __name__ == "__main__":
    main()
