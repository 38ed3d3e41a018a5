"""The chaos soak (run by hand, not in CI):

    python -m tests.reliability.chaos --jobs 100000 --workers 3

Starts a private Redis with AOF (``appendfsync always``), N worker processes, enqueues the
jobs in bulk (``task.map``) while, at random intervals, it SIGKILLs and restarts workers and
SIGKILLs and restarts Redis. At the end it prints the oracle (lost / unexpected /
duplicates), the worst redelivery time (a start of a job to its next start, over jobs
that ran more than once), the worst stall after a Redis restart (restart to the next
completion), the peak worker RSS, and the Redis key count before and after (after results expire).

Each worker reaches Redis through its own fault proxy. A second phase then enqueues more jobs
(``--partition-jobs``) with no kills and no Redis restarts, while random workers are cut off
from Redis by a network partition shorter than half a lease: a worker cut off that briefly
must keep its jobs, so this phase must report 0 duplicates (and 0 lost). Partitions are of
three kinds, at random: what was sent meanwhile arrives when it ends (as TCP would deliver it);
every open connection of that worker is reset when it ends; or what was sent meanwhile is lost
without a word, so a call in flight is ended only by its caller's deadline.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from fennel import App, _portal
from fennel.exceptions import BrokerError
from fennel.job import Job
from fennel.task import _enqueue_many
from fennel.testing import RedisServer
from tests.reliability import apps
from tests.reliability.faultproxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Workers:
    def __init__(self, n: int, env: dict[str, str], concurrency: int, logdir: Path,
                 redis_port: int) -> None:
        self.env = env
        self.concurrency = concurrency
        self.logdir = logdir
        #: one fault proxy per worker slot, so a partition cuts off one worker alone
        self.proxies = [FaultProxy("127.0.0.1", redis_port).start() for _ in range(n)]
        self.procs: list[subprocess.Popen[bytes]] = [self._start(i) for i in range(n)]
        self.peak_rss_kb = 0
        self.kills = 0

    def _start(self, slot: int) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"worker{slot}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "fennel", "worker", "--app", "tests.reliability.apps:app",
             "--concurrency", str(self.concurrency)],
            cwd=ROOT, env={**self.env, "FENNEL_REDIS_URL": self.proxies[slot].url},
            stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def kill_and_restart(self, slot: int) -> None:
        p = self.procs[slot]
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        self.kills += 1
        self.procs[slot] = self._start(slot)

    def sample(self) -> None:
        for p in self.procs:
            self.peak_rss_kb = max(self.peak_rss_kb, rss_kb(p.pid))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for proxy in self.proxies:
            proxy.close()


def terminal_statuses(r: redis.Redis, ids: list[str]) -> dict[str, str]:
    """The jobs among ``ids`` that reached a terminal state, and that state."""
    out: dict[str, str] = {}
    for s in range(0, len(ids), 10_000):
        chunk = ids[s:s + 10_000]
        pipe = r.pipeline(transaction=False)
        for job_id in chunk:
            pipe.hget(f"fennel:{{rel}}:job:{job_id}", "status")
        for job_id, st in zip(chunk, pipe.execute(), strict=True):
            if st in (b"SUCCESS", b"DEAD"):
                out[job_id] = st.decode()
    return out


def enqueue_until_done(app: App[Any], jobs: Sequence[Job]) -> None:
    """Enqueue ``jobs`` in bulk, retrying through Redis outages (idempotent per job id)."""
    delay = 0.1
    while True:
        try:
            _portal.call(_enqueue_many, app, jobs)
            return
        except BrokerError as exc:
            print(f"  enqueue retry: {type(exc).__name__}", flush=True)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def partition_phase(args: argparse.Namespace, rnd: random.Random, app: App[Any], work: Any,
                    workers: Workers, r: redis.Redis, marks: Path) -> dict[str, float]:
    """Jobs run while random workers are partitioned from Redis for under half a lease."""
    keys = [f"p{i}" for i in range(args.partition_jobs)]
    jobs = work._bulk_jobs([(k, args.partition_task_seconds) for k in keys])
    t0 = time.time()
    enqueue_until_done(app, jobs)
    remaining = {j.id for j in jobs}
    stop = threading.Event()
    cuts: list[float] = []

    def cutter() -> None:
        while not stop.wait(rnd.expovariate(1 / args.partition_every)):
            proxy = workers.proxies[rnd.randrange(len(workers.proxies))]
            seconds = rnd.uniform(0.1, 0.45) * args.lease
            kind = rnd.choice(("hold", "reset", "silent"))
            if kind == "silent":
                # What is sent meanwhile is lost and nobody is told: a call in flight never
                # gets its reply, and only the caller's own deadline ends it.
                proxy.blackhole = True
            else:
                proxy.partitioned = True
            stop.wait(seconds)
            if kind == "reset":
                # As if a middlebox lost the connections' state: each open one is reset.
                proxy.cut()
            proxy.partitioned = proxy.blackhole = False
            cuts.append(seconds)

    thread = threading.Thread(target=cutter, daemon=True)
    thread.start()
    deadline = time.monotonic() + args.timeout
    while remaining and time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            remaining -= set(terminal_statuses(r, list(remaining)))
        except redis.RedisError:
            continue
    elapsed = time.time() - t0
    stop.set()
    thread.join()
    wanted = set(keys)
    runs: Counter[str] = Counter()
    for line in marks.read_text().splitlines():
        key = line.split(" ")[1]
        if key in wanted:
            runs[key] += 1
    return {"jobs": len(keys), "elapsed": elapsed, "partitions": len(cuts),
            "longest": max(cuts, default=0.0), "lost": len(remaining),
            "duplicates": sum(n - 1 for n in runs.values() if n > 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--task-seconds", type=float, default=0.05, help="each job sleeps this long")
    ap.add_argument("--lease", type=float, default=5.0)
    ap.add_argument("--kill-every", type=float, default=2.0, help="mean seconds between kills")
    ap.add_argument("--redis-every", type=float, default=15.0,
                    help="mean seconds between Redis restarts")
    ap.add_argument("--results-ttl", type=int, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--partition-jobs", type=int, default=5000,
                    help="jobs of the partition phase (0 skips it)")
    ap.add_argument("--partition-task-seconds", type=float, default=0.2)
    ap.add_argument("--partition-every", type=float, default=1.5,
                    help="mean seconds between partitions")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rnd = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="fennel-chaos-"))
    marks = tmp / "marks.txt"
    marks.touch()
    server = RedisServer(data_dir=str(tmp / "redis"), appendonly=True)
    os.makedirs(server.data_dir)
    server.start()
    url = server.url
    env = {**os.environ, "FENNEL_REDIS_URL": url, "FENNEL_TEST_MARKS": str(marks),
           "FENNEL_LOG_FORMAT": "json", "FENNEL_LOG_LEVEL": "warning",
           "FENNEL_LEASE_TIMEOUT": str(args.lease), "FENNEL_GRACE_PERIOD": "5",
           "FENNEL_RESULTS_TTL": str(args.results_ttl), "PYTHONUNBUFFERED": "1"}
    print(f"chaos: seed={seed} jobs={args.jobs} workers={args.workers} "
          f"concurrency={args.concurrency} lease={args.lease}s dir={tmp}", flush=True)
    workers = Workers(args.workers, env, args.concurrency, tmp, server.port)
    r = redis.Redis.from_url(url, socket_timeout=5)
    # Baseline once every worker has joined (queue stream, worker registry, lease clock).
    deadline0 = time.monotonic() + 60
    while time.monotonic() < deadline0:
        try:
            if r.zcard("fennel:{rel}:workers") >= args.workers and r.exists("fennel:{rel}:lease"):
                break
        except redis.RedisError:
            pass
        time.sleep(0.2)
    keys_before = r.dbsize()
    app = apps.build(url, results_ttl=args.results_ttl, socket_timeout=5.0)
    work = app.tasks["rel.work"]

    remaining: dict[str, str] = {}
    statuses: dict[str, str] = {}
    enqueued: dict[str, str] = {}
    lock = threading.Lock()
    done_enqueue = threading.Event()
    redis_restarts: list[float] = []
    stop = threading.Event()

    def producer() -> None:
        for start in range(0, args.jobs, args.batch):
            jobs = work._bulk_jobs([(f"j{i}", args.task_seconds) for i in range(start,
                                                            min(args.jobs, start + args.batch))])
            enqueue_until_done(app, jobs)
            with lock:
                for j in jobs:
                    enqueued[j.id] = j.args[0]
                    remaining[j.id] = j.args[0]
        done_enqueue.set()

    def chaos() -> None:
        next_redis = time.monotonic() + rnd.expovariate(1 / args.redis_every)
        while not stop.is_set():
            stop.wait(rnd.expovariate(1 / args.kill_every))
            if stop.is_set():
                return
            if time.monotonic() >= next_redis:
                server.kill()
                time.sleep(rnd.uniform(0.2, 2.0))
                server.start()
                redis_restarts.append(time.time())
                print(f"  redis restarted ({len(redis_restarts)})", flush=True)
                next_redis = time.monotonic() + rnd.expovariate(1 / args.redis_every)
            else:
                workers.kill_and_restart(rnd.randrange(args.workers))

    t0 = time.time()
    threading.Thread(target=producer, daemon=True).start()
    chaos_thread = threading.Thread(target=chaos, daemon=True)
    chaos_thread.start()
    deadline = time.monotonic() + args.timeout
    last_report = 0.0
    while time.monotonic() < deadline:
        workers.sample()
        time.sleep(0.5)
        with lock:
            ids = list(remaining)
        try:
            found = terminal_statuses(r, ids)
        except redis.RedisError:
            continue
        statuses.update(found)
        with lock:
            for job_id in found:
                remaining.pop(job_id, None)
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            print(f"  t={time.time() - t0:6.1f}s terminal={len(statuses)} "
                  f"enqueued={len(enqueued)} kills={workers.kills} "
                  f"redis_restarts={len(redis_restarts)}", flush=True)
        if done_enqueue.is_set() and not remaining:
            break
    elapsed = time.time() - t0
    stop.set()
    chaos_thread.join()
    # Unexpected: terminal jobs or executions that were never enqueued.
    prefix = "fennel:{rel}:job:"
    unexpected = [k.decode()[len(prefix):] for k in r.scan_iter(match=prefix + "*", count=5000)
                  if k.decode()[len(prefix):] not in enqueued]
    runs: Counter[str] = Counter()
    last_start: dict[str, float] = {}
    redelivery = 0.0
    completions: list[float] = []
    for line in marks.read_text().splitlines():
        _kind, key, _pid, t = line.split(" ")
        runs[key] += 1
        ts = float(t)
        completions.append(ts)
        if key in last_start:
            redelivery = max(redelivery, ts - last_start[key])
        last_start[key] = ts
    keys = set(enqueued.values())
    unexpected += [k for k in runs if k not in keys]
    duplicates = sum(n - 1 for n in runs.values() if n > 1)
    completions.sort()
    import bisect
    stall = 0.0
    for restart in redis_restarts:
        i = bisect.bisect_right(completions, restart)
        if i < len(completions):
            stall = max(stall, completions[i] - restart)
    dead = sum(1 for s in statuses.values() if s == "DEAD")
    lost = len(enqueued) - len(statuses) + (args.jobs - len(enqueued))
    part = (partition_phase(args, rnd, app, work, workers, r, marks)
            if args.partition_jobs else None)
    # Let results expire, then count keys again.
    time.sleep(args.results_ttl + 5)
    for _ in range(60):
        if r.dbsize() <= keys_before:
            break
        time.sleep(1)
    keys_after = r.dbsize()
    workers.sample()
    print("chaos soak result")
    print(f"  jobs enqueued        {len(enqueued)}")
    print(f"  wall time            {elapsed:.1f} s ({len(enqueued) / elapsed:.0f} jobs/s)")
    print(f"  worker SIGKILLs      {workers.kills}")
    print(f"  redis restarts       {len(redis_restarts)} (SIGKILL, AOF appendfsync always)")
    print(f"  lost                 {lost}")
    print(f"  unexpected           {len(unexpected)}")
    print(f"  duplicates           {duplicates} (executions beyond one)")
    print(f"  dead (DLQ)           {dead}")
    print(f"  worst redelivery     {redelivery:.2f} s (a start of a job -> its next start)")
    print(f"  worst redis stall    {stall:.2f} s (restart -> next completion)")
    print(f"  peak worker RSS      {workers.peak_rss_kb / 1024:.1f} MiB")
    print(f"  redis keys           before={keys_before} after={keys_after}")
    if part is not None:
        print("partition phase (no kills, no Redis restarts)")
        print(f"  jobs enqueued        {part['jobs']:.0f} in {part['elapsed']:.1f} s")
        print(f"  partitions           {part['partitions']:.0f} (longest {part['longest']:.2f} s, "
              f"lease {args.lease:g} s)")
        print(f"  lost                 {part['lost']:.0f}")
        print(f"  duplicates           {part['duplicates']:.0f} (executions beyond one)")
    workers.stop()
    r.close()
    _portal.stop()
    server.close()
    part_ok = part is None or (part["lost"] == 0 and part["duplicates"] == 0)
    return 0 if lost == 0 and not unexpected and part_ok else 1


if __name__ == "__main__":
    sys.exit(main())
