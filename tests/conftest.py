"""Shared fixtures: one private Redis server per test session, and real worker processes.

The server starts in ``pytest_configure`` (before test modules import their apps) and its URL
is exported as ``FENNEL_REDIS_URL``, which every test app reads. Each test starts from an
empty database. Workers are ``python -m fennel worker`` subprocesses with JSON logs, which the
fixture collects so tests can wait for and assert on lifecycle events.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fennel.testing import RedisServer

ROOT = Path(__file__).resolve().parent.parent
_server: RedisServer | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _server
    _server = RedisServer().start()
    os.environ["FENNEL_REDIS_URL"] = _server.url


def pytest_unconfigure(config: pytest.Config) -> None:
    from fennel import _portal

    _portal.stop()  # close clients before their server goes away
    if _server is not None:
        _server.close()


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    assert _server is not None
    return _server


@pytest.fixture(autouse=True)
def _flush(redis_server: RedisServer) -> None:
    redis_server.command("FLUSHALL")


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file the test apps append execution records to (see tests/apps/basic.py)."""
    path = tmp_path / "marks.txt"
    path.touch()
    monkeypatch.setenv("FENNEL_TEST_MARKS", str(path))
    return path


class WorkerProcess:
    """A running ``fennel worker`` subprocess and the JSON log events it printed."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            text = line.decode(errors="replace").rstrip()
            with self._cond:
                self.raw.append(text)
                try:
                    event = orjson.loads(text)
                    if isinstance(event, dict):
                        self.events.append(event)
                except orjson.JSONDecodeError:
                    pass
                self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(self, event: str, timeout: float = 20.0,
                  where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if e.get("event") == event and (where is None or where(e)):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no {event!r} event from worker within {timeout}s; "
                                         f"output:\n" + "\n".join(self.raw[-40:]))
                self._cond.wait(min(left, 0.2))

    def named(self, event: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == event]

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                return self.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.wait(10)


@pytest.fixture
def start_worker(redis_server: RedisServer) -> Iterator[Callable[..., WorkerProcess]]:
    """``start_worker("tests.apps.basic:app", "--concurrency", "4", env={...})``: a real
    worker process, ready (its ``worker.started`` event seen) when returned."""
    workers: list[WorkerProcess] = []

    def start(app: str = "tests.apps.basic:app", *extra: str, env: dict[str, str] | None = None,
              ready: bool = True) -> WorkerProcess:
        full_env = {**os.environ, "FENNEL_LOG_FORMAT": "json", "FENNEL_LOG_LEVEL": "info",
                    "PYTHONUNBUFFERED": "1", "FENNEL_GRACE_PERIOD": "5",
                    **(env or {})}
        w = WorkerProcess([sys.executable, "-m", "fennel", "worker", "--app", app, *extra],
                          full_env)
        workers.append(w)
        if ready:
            w.wait_for("worker.started", timeout=30)
        return w

    yield start
    for w in workers:
        w.stop(timeout=20)
