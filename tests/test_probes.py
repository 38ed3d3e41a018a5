"""Health probes, metrics and `fennel info` / `fennel health` against real workers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from fennel.client import gather
from fennel.exceptions import TaskFailed
from fennel.testing import RedisServer, free_port
from tests.apps.ops import block_loop, double, explode, slow

OPS = "tests.apps.ops:app"


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_status(port: int, path: str, code: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    last = (0, "")
    while time.monotonic() < deadline:
        try:
            last = get(port, path)
        except OSError as exc:
            last = (0, str(exc))
        if last[0] == code:
            return last[1]
        time.sleep(0.1)
    raise AssertionError(f"{path} never returned {code}; last: {last}")


def fennel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fennel", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})},
                          cwd=os.path.dirname(os.path.dirname(__file__)))


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def test_metrics_match_what_ran(start_worker):
    port = free_port()
    start_worker(OPS, "--health-port", str(port))
    wait_status(port, "/readyz", 200)
    assert gather([double.delay(i) for i in range(7)], timeout=20) == [i * 2 for i in range(7)]
    bad = explode.delay(1)  # one retry, then dead
    with contextlib.suppress(TaskFailed):
        bad.get(timeout=20)
    time.sleep(1.5)  # the queue figures are refreshed every second
    _, text = get(port, "/metrics")
    assert metric(text, "fennel_jobs_succeeded_total", task="tests.apps.ops.double") == 7
    assert metric(text, "fennel_jobs_started_total", task="tests.apps.ops.explode") == 2
    assert metric(text, "fennel_jobs_failed_total", task="tests.apps.ops.explode") == 2
    assert metric(text, "fennel_jobs_retried_total", task="tests.apps.ops.explode") == 1
    assert metric(text, "fennel_jobs_dead_total", task="tests.apps.ops.explode") == 1
    assert metric(text, "fennel_job_duration_seconds_count", task="tests.apps.ops.double") == 7
    assert metric(text, "fennel_dead") == 1
    assert metric(text, "fennel_queue_pending") == 0
    assert metric(text, "fennel_workers_alive") == 1
    assert metric(text, "fennel_jobs_in_flight") == 0


def test_queue_figures_come_from_redis(start_worker):
    handles = [slow.delay(1.5) for _ in range(4)]  # enqueued before any worker runs
    port = free_port()
    start_worker(OPS, "--health-port", str(port), "--concurrency", "1")
    deadline = time.monotonic() + 15
    while True:
        _, text = get(port, "/metrics")
        figures = (metric(text, "fennel_queue_depth"), metric(text, "fennel_queue_pending"),
                   metric(text, "fennel_jobs_in_flight"), metric(text, "fennel_workers_alive"))
        if figures == (3, 1, 1, 1) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert figures == (3, 1, 1, 1)
    gather(handles, timeout=30)


def test_liveness_fails_when_the_loop_is_blocked(start_worker):
    port = free_port()
    start_worker(OPS, "--health-port", str(port), env={"FENNEL_LIVENESS_TIMEOUT": "1"})
    wait_status(port, "/livez", 200)
    block_loop.delay(4)
    body = wait_status(port, "/livez", 503, timeout=10)
    assert "event loop blocked" in body
    wait_status(port, "/livez", 200, timeout=15)  # recovers once the task is done


def test_readiness_flips_when_redis_stops(start_worker):
    server = RedisServer().start()
    try:
        port = free_port()
        env = {"FENNEL_REDIS_URL": server.url, "FENNEL_SOCKET_TIMEOUT": "1",
               "FENNEL_CONNECT_TIMEOUT": "1"}
        start_worker(OPS, "--health-port", str(port), env=env)
        wait_status(port, "/readyz", 200)
        assert fennel("health", "--app", OPS, "--port", str(port), env=env).returncode == 0
        server.stop()
        body = wait_status(port, "/readyz", 503, timeout=20)
        assert "127.0.0.1" in body
        failed = fennel("health", "--app", OPS, "--port", str(port), env=env)
        assert failed.returncode == 1, failed.stdout
        assert get(port, "/livez")[0] == 200  # Redis down is not a reason to restart
        server.start()
        wait_status(port, "/readyz", 200, timeout=30)
    finally:
        server.close()


def test_health_command_without_port_checks_redis_and_heartbeat(start_worker, redis_server):
    no_worker = fennel("health", "--app", OPS, "--check", "live")
    assert no_worker.returncode == 1
    start_worker(OPS)
    assert fennel("health", "--app", OPS).returncode == 0
    live = fennel("health", "--app", OPS, "--check", "live")
    assert live.returncode == 0, live.stdout + live.stderr
    down = fennel("health", "--app", OPS, env={"FENNEL_REDIS_URL": "redis://:pw@127.0.0.1:1/0",
                                               "FENNEL_CONNECT_TIMEOUT": "1"})
    assert down.returncode == 1
    assert "pw" not in down.stdout + down.stderr


def test_info_shows_queue_and_workers(start_worker):
    start_worker(OPS)
    gather([double.delay(i) for i in range(3)], timeout=20)
    time.sleep(5.5)  # one heartbeat carries the throughput
    out = fennel("info", "--app", OPS)
    assert out.returncode == 0, out.stderr
    assert "tests-ops" in out.stdout
    assert "Workers" in out.stdout and "thread" in out.stdout
