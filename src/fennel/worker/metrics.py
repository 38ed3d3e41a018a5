"""Prometheus metrics of a worker, served on its health port at ``/metrics``.

Per-task job counters and execution times come from :class:`MetricsMiddleware` (metrics are
just another middleware). Queue figures (ready, pending, scheduled, dead) are read from Redis
(``XLEN``, ``XPENDING``, ``ZCARD``) by the worker's monitor, not counted in-process, so every
worker reports the same truth about the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fennel.middleware import Middleware

if TYPE_CHECKING:
    from fennel.app import App
    from fennel.broker import QueueStats
    from fennel.job import Job

__all__ = ["MetricsMiddleware", "WorkerCollector"]


class MetricsMiddleware(Middleware):
    """Counts jobs by task and outcome, and times their execution."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["task"]
        self.started = Counter("fennel_jobs_started", "Jobs started.", labels, registry=registry)
        self.succeeded = Counter("fennel_jobs_succeeded", "Jobs that succeeded.", labels,
                                 registry=registry)
        self.failed = Counter("fennel_jobs_failed", "Failed attempts (each retry counts).",
                              labels, registry=registry)
        self.retried = Counter("fennel_jobs_retried", "Retries scheduled.", labels,
                               registry=registry)
        self.dead = Counter("fennel_jobs_dead", "Jobs moved to the dead-letter queue.", labels,
                            registry=registry)
        self.duration = Histogram(
            "fennel_job_duration_seconds", "Execution time of jobs (successful or not).",
            labels, registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, float("inf")),
        )

    def before_execute(self, app: App[Any], job: Job) -> None:
        self.started.labels(job.task).inc()

    def after_execute(self, app: App[Any], job: Job, error: BaseException | None,
                      duration: float) -> None:
        self.duration.labels(job.task).observe(duration)

    def on_success(self, app: App[Any], job: Job, result: Any, duration: float) -> None:
        self.succeeded.labels(job.task).inc()

    def on_failure(self, app: App[Any], job: Job, error: BaseException) -> None:
        self.failed.labels(job.task).inc()

    def on_retry(self, app: App[Any], job: Job, error: BaseException, delay: float) -> None:
        self.retried.labels(job.task).inc()

    def on_dead(self, app: App[Any], job: Job, reason: str) -> None:
        self.dead.labels(job.task).inc()


class WorkerCollector(Collector):
    """Gauges read at scrape time: in flight, and the queue figures last read from Redis."""

    def __init__(self, stats: Callable[[], QueueStats | None], in_flight: Callable[[], int],
                 redeliveries: Callable[[], int]) -> None:
        self._stats = stats
        self._in_flight = in_flight
        self._redeliveries = redeliveries

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("fennel_jobs_in_flight", "Jobs this worker is running now.",
                                value=self._in_flight())
        yield CounterMetricFamily("fennel_redeliveries",
                                  "Jobs this worker took over from dead workers.",
                                  value=self._redeliveries())
        stats = self._stats()
        if stats is None:
            return
        for name, value, doc in (
            ("fennel_queue_depth", stats.queue,
             "Jobs waiting to be delivered (XLEN minus pending)."),
            ("fennel_queue_pending", stats.pending,
             "Jobs delivered to workers and not yet acknowledged (XPENDING)."),
            ("fennel_scheduled", stats.scheduled, "Jobs waiting for a retry (ZCARD)."),
            ("fennel_dead", stats.dead, "Jobs in the dead-letter queue (XLEN)."),
            ("fennel_workers_alive", len(stats.workers), "Workers with a recent heartbeat."),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
