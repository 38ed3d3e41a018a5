"""Liveness, readiness and metrics over HTTP for Kubernetes probes and Prometheus.

The server runs in a thread, so a worker whose event loop is blocked (a CPU-bound async
task) still answers, and answers *not live*: the verdicts are computed from timestamps the
loop itself refreshes.

- ``/livez``: 200 while the event loop ticked within ``liveness_timeout`` and the consume loop
  made progress within it (idle waiting counts; all slots busy counts).
- ``/readyz``: 200 while the last Redis check (every second, on the loop) succeeded recently
  and found the consumer group.
- ``/metrics``: Prometheus text format.
"""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from fennel._log import get_logger
from fennel.exceptions import BrokerError, ConfigurationError

if TYPE_CHECKING:
    from fennel.broker import QueueStats
    from fennel.worker.supervisor import Worker

__all__ = ["HealthServer", "Verdict"]

log = get_logger("fennel.worker")

Verdict = tuple[bool, str]


class HealthServer:
    def __init__(self, worker: Worker, port: int, registry: CollectorRegistry,
                 check_interval: float = 1.0) -> None:
        self.worker = worker
        self.registry = registry
        self.timeout = worker.settings.liveness_timeout
        self.check_interval = check_interval
        self.last_tick = time.monotonic()
        self.last_check = 0.0
        self.stats: QueueStats | None = None
        self.redis_error: str | None = "not checked yet"
        try:
            self._server = ThreadingHTTPServer(("0.0.0.0", port), _handler(self))
        except (OSError, OverflowError) as exc:
            raise ConfigurationError(
                "health_port", port, f"a port this worker can listen on ({exc}); pick a free "
                "one with --health-port or FENNEL_HEALTH_PORT") from None
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fennel-health", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("worker.health_server", port=self.port,
                 endpoints=["/livez", "/readyz", "/metrics"])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    async def monitor(self) -> None:
        """Runs on the worker's loop: proves the loop is alive, and checks Redis."""
        while True:
            self.last_tick = time.monotonic()
            try:
                self.stats = await asyncio.wait_for(self.worker.broker.queue_stats(),
                                                    self.timeout)
                self.redis_error = None if self.stats.group_exists else "consumer group missing"
            except (BrokerError, asyncio.TimeoutError) as exc:
                self.redis_error = str(exc) or "Redis did not answer in time"
            self.last_check = time.monotonic()
            await asyncio.sleep(self.check_interval)

    def live(self) -> Verdict:
        now = time.monotonic()
        loop_age = now - self.last_tick
        if loop_age > self.timeout:
            return False, f"event loop blocked for {loop_age:.1f}s"
        consume_age = now - self.worker.last_progress
        if self.worker.state == "running" and consume_age > self.timeout:
            return False, f"consume loop stalled for {consume_age:.1f}s"
        return True, "ok"

    def ready(self) -> Verdict:
        if self.worker.state != "running":
            return False, f"worker is {self.worker.state}"
        age = time.monotonic() - self.last_check
        if age > max(3 * self.check_interval, 5.0):
            return False, f"no Redis check for {age:.1f}s"
        if self.redis_error is not None:
            return False, self.redis_error
        return True, "ok"


def _handler(health: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(health.registry), CONTENT_TYPE_LATEST)
                return
            checks = {"/livez": health.live, "/readyz": health.ready}
            if path not in checks:
                self._send(404, b"not found\n")
                return
            ok, reason = checks[path]()
            self._send(200 if ok else 503, (reason + "\n").encode())

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would flood the worker's log

    return Handler
