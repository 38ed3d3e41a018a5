"""OpenTelemetry tracing for Fennel (``pip install 'fennel-queue[otel]'``).

:class:`TracingMiddleware` carries the trace context from ``.delay()`` into the worker: the
producer records a ``fennel.send <task>`` span and injects its context into the job's headers;
the worker runs each attempt inside a ``fennel.run <task>`` span that is its child. A retry is
a new span in the same trace, *linked* to the failed attempt's span, so a trace shows every
attempt and how they relate. Register it on the app used by both producers and workers::

    from fennel.tracing import TracingMiddleware

    app = App(name="myapp", middleware=[TracingMiddleware()])

The tracer provider and exporter are yours to configure (the OpenTelemetry SDK); without one,
the API's no-op tracer makes this middleware cost next to nothing.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from fennel.middleware import Middleware

if TYPE_CHECKING:
    from fennel.app import App
    from fennel.job import Job

__all__ = ["TracingMiddleware"]

_CARRIER = "otel"
_PREVIOUS = "otel_previous_attempt"
#: Failed attempts awaiting their on_failure hook; a bound, should one never come.
_MAX_FINISHED = 10_000


class TracingMiddleware(Middleware):
    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("fennel", tracer_provider=tracer_provider)
        self._running: dict[str, tuple[trace.Span, object]] = {}
        self._finished: dict[str, SpanContext] = {}

    # -- producer -----------------------------------------------------------------------------

    def before_enqueue(self, app: App[Any], job: Job) -> None:
        with self._tracer.start_as_current_span(
            f"fennel.send {job.task}", kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "fennel", "messaging.message.id": job.id,
                        "fennel.app": app.name, "fennel.task": job.task},
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            job.headers[_CARRIER] = carrier

    # -- worker -------------------------------------------------------------------------------

    def before_execute(self, app: App[Any], job: Job) -> None:
        parent = propagate.extract(job.headers.get(_CARRIER) or {})
        links = []
        prev = job.headers.get(_PREVIOUS)
        if isinstance(prev, dict):
            links.append(Link(SpanContext(
                trace_id=int(prev["trace_id"], 16), span_id=int(prev["span_id"], 16),
                is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED),
            ), attributes={"fennel.link": "previous_attempt"}))
        span = self._tracer.start_span(
            f"fennel.run {job.task}", context=parent, kind=SpanKind.CONSUMER, links=links,
            attributes={"messaging.system": "fennel", "messaging.message.id": job.id,
                        "fennel.app": app.name, "fennel.task": job.task,
                        "fennel.attempt": job.tries + 1},
        )
        # The task body runs in this context (threads get a copy), so its spans nest here.
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._running[job.id] = (span, token)

    def after_execute(self, app: App[Any], job: Job, error: BaseException | None,
                      duration: float) -> None:
        entry = self._running.pop(job.id, None)
        if entry is None:
            return
        span, token = entry
        if error is not None:
            # A user's exception may have a __str__ or __repr__ that raises: the span must
            # still end, with what can be said.
            with contextlib.suppress(Exception):
                span.record_exception(error)
            try:
                description = f"{type(error).__name__}: {error}"
            except Exception:
                description = type(error).__name__
            span.set_status(Status(StatusCode.ERROR, description))
        span.end()
        # Detaching from another task's context is harmless to skip.
        with contextlib.suppress(Exception):
            otel_context.detach(token)  # type: ignore[arg-type]
        if error is not None:
            # Only a failed attempt is linked to (by on_failure, which follows at once): a
            # success whose completion is refused (lease lost) gets no further hook, and
            # must leave nothing behind.
            self._finished[job.id] = span.get_span_context()
            if len(self._finished) > _MAX_FINISHED:
                del self._finished[next(iter(self._finished))]

    def on_failure(self, app: App[Any], job: Job, error: BaseException) -> None:
        ctx = self._finished.pop(job.id, None)
        if ctx is not None:
            # Travels with the retry's envelope, so the next attempt can link to this one.
            job.headers[_PREVIOUS] = {"trace_id": format(ctx.trace_id, "032x"),
                                      "span_id": format(ctx.span_id, "016x")}

    def on_success(self, app: App[Any], job: Job, result: Any, duration: float) -> None:
        self._finished.pop(job.id, None)

    def on_dead(self, app: App[Any], job: Job, reason: str) -> None:
        self._finished.pop(job.id, None)
