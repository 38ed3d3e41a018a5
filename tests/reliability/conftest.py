"""Harness of the reliability suite: a private ``redis-server`` per test, real worker
processes pointed at it, and the oracle (see /work/shared/RELIABILITY.md).

- ``server`` / ``aof_server``: a fresh Redis on a free port for this test only (the second
  with AOF, ``appendfsync always``, for scenarios that kill and restart it).
- ``spawn``: starts ``python -m fennel worker --app tests.reliability.apps:app`` with
  ``FENNEL_REDIS_URL`` set to the test's server (or a fault proxy), JSON logs, short leases.
- ``client``: the same app built in-process against the same URL, for ``delay``/``map``.
- :func:`oracle`: per job id, executions (from the marks file) and terminal states.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from fennel import App, _portal
from fennel.testing import RedisServer
from tests.conftest import WorkerProcess
from tests.reliability import apps

WORKER_APP = "tests.reliability.apps:app"
#: Short timings so each fault recovers in seconds; never used to skip a fault.
FAST = {
    "FENNEL_LEASE_TIMEOUT": "2",
    "FENNEL_GRACE_PERIOD": "3",
    "FENNEL_SOCKET_TIMEOUT": "2",
    "FENNEL_CONNECT_TIMEOUT": "2",
    "FENNEL_MAX_DELIVERIES": "3",
    "FENNEL_SCHEDULE_INTERVAL": "0.05",
}


def _server(tmp_path: Path, **kwargs: Any) -> Iterator[RedisServer]:
    srv = RedisServer(data_dir=str(tmp_path / f"redis-{os.urandom(2).hex()}"),
                      extra_args=["--enable-debug-command", "yes"], **kwargs)
    os.makedirs(srv.data_dir, exist_ok=True)
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    yield from _server(tmp_path)


@pytest.fixture
def aof_server(tmp_path: Path) -> Iterator[RedisServer]:
    yield from _server(tmp_path, appendonly=True)


class Spawner:
    """Starts real worker processes; stops (SIGKILLs if need be) all of them at the end."""

    def __init__(self, marks: Path, app_spec: str = WORKER_APP) -> None:
        self.marks = marks
        self.app_spec = app_spec
        self.workers: list[WorkerProcess] = []

    def __call__(self, url: str, *extra: str, env: dict[str, str] | None = None,
                 ready: bool = True, fast: bool = True) -> WorkerProcess:
        full_env = {**os.environ, "FENNEL_LOG_FORMAT": "json", "FENNEL_LOG_LEVEL": "info",
                    "PYTHONUNBUFFERED": "1", **(FAST if fast else {}),
                    "FENNEL_REDIS_URL": url, "FENNEL_TEST_MARKS": str(self.marks),
                    **(env or {})}
        w = WorkerProcess([sys.executable, "-m", "fennel", "worker", "--app", self.app_spec,
                           *extra], full_env)
        self.workers.append(w)
        if ready:
            w.wait_for("worker.started", timeout=30)
        return w

    def close(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                w.kill()


@pytest.fixture
def spawn(marks: Path) -> Iterator[Spawner]:
    s = Spawner(marks)
    yield s
    s.close()


def app_maker(build: Callable[..., App[Any]]) -> Iterator[Callable[..., App[Any]]]:
    """Yields ``make(url, **settings)``: ``build(url, ...)`` with short timeouts, each app
    closed afterwards. For fixtures that give tests a client of a worker's app."""
    made: list[App[Any]] = []

    def make(url: str, **settings: Any) -> App[Any]:
        settings.setdefault("socket_timeout", 2.0)
        settings.setdefault("connect_timeout", 2.0)
        a = build(url, **settings)
        made.append(a)
        return a

    yield make
    for a in made:
        with contextlib.suppress(Exception):
            a.close()
    _portal.stop()


@pytest.fixture
def make_app() -> Iterator[Callable[..., App[Any]]]:
    """``make_app(url, **settings)``: the suite's app in this process, closed afterwards."""
    yield from app_maker(apps.build)


# -- the oracle -----------------------------------------------------------------------------

def read_marks(path: Path, kind: str = "run") -> list[tuple[str, int, float]]:
    """``(key, pid, wall time)`` of every mark of ``kind``."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split(" ")
        if len(parts) == 4 and parts[0] == kind:
            out.append((parts[1], int(parts[2]), float(parts[3])))
    return out


@dataclass
class Verdict:
    enqueued: int
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicates: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    executions: Counter[str] = field(default_factory=Counter)
    pending: int = 0
    queued: int = 0
    scheduled: int = 0

    def __str__(self) -> str:
        return (f"enqueued={self.enqueued} lost={len(self.lost)} "
                f"unexpected={len(self.unexpected)} duplicates={self.duplicates} "
                f"statuses={dict(self.statuses)} pending={self.pending} queued={self.queued} "
                f"scheduled={self.scheduled} lost_ids={self.lost[:5]} "
                f"unexpected_ids={self.unexpected[:5]}")


def oracle(url: str, app_name: str, jobs: dict[str, str], marks: Path | None) -> Verdict:
    """Check every enqueued job: ``jobs`` maps job id -> the key its task marks with.

    lost: enqueued but not terminal; unexpected: terminal (or executed) but never enqueued;
    duplicates: executions beyond one per job.
    """
    r = redis.Redis.from_url(url)
    prefix = f"fennel:{{{app_name}}}:"
    try:
        v = Verdict(enqueued=len(jobs))
        ids = list(jobs)
        pipe = r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(prefix + "job:" + job_id, "status")
        for job_id, status in zip(ids, pipe.execute(), strict=True):
            st = status.decode() if status else "UNKNOWN"
            v.statuses[st] += 1
            if st not in ("SUCCESS", "DEAD"):
                v.lost.append(job_id)
        known = set(ids)
        for key in r.scan_iter(match=prefix + "job:*", count=1000):
            job_id = key.decode()[len(prefix) + 4:]
            if job_id not in known and r.hget(key, "status") in (b"SUCCESS", b"DEAD"):
                v.unexpected.append(job_id)
        if marks is not None:
            keys = set(jobs.values())
            v.executions = Counter(k for k, _pid, _t in read_marks(marks))
            v.unexpected += [k for k in v.executions if k not in keys]
            v.duplicates = sum(max(0, n - 1) for n in v.executions.values())
        if r.exists(prefix + "queue"):
            try:
                v.pending = int(r.xpending(prefix + "queue", "fennel")["pending"])
            except redis.ResponseError:
                v.pending = 0
            v.queued = int(r.xlen(prefix + "queue"))
        v.scheduled = int(r.zcard(prefix + "schedule"))
        return v
    finally:
        r.close()


def wait_until(pred: Callable[[], Any], timeout: float, step: float = 0.05,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = pred()
        except redis.RedisError:  # the fault under test may still be going on
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def settled(url: str, app_name: str, jobs: dict[str, str], timeout: float) -> None:
    """Wait until every job is terminal."""
    wait_until(lambda: not oracle(url, app_name, jobs, None).lost, timeout,
               step=0.2, what=f"{len(jobs)} jobs to finish")
