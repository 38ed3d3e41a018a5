"""App with OpenTelemetry tracing; the worker's spans are written to FENNEL_TEST_SPANS."""

from __future__ import annotations

import os
from collections.abc import Sequence

import orjson
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from fennel import App
from fennel.tracing import TracingMiddleware


class FileExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        path = os.environ.get("FENNEL_TEST_SPANS")
        if path:
            with open(path, "ab") as f:
                for s in spans:
                    ctx = s.get_span_context()
                    f.write(orjson.dumps({
                        "name": s.name,
                        "trace_id": format(ctx.trace_id, "032x"),
                        "span_id": format(ctx.span_id, "016x"),
                        "parent": format(s.parent.span_id, "016x") if s.parent else None,
                        "links": [format(link.context.span_id, "016x") for link in s.links],
                        "attempt": (s.attributes or {}).get("fennel.attempt"),
                        "status": s.status.status_code.name,
                    }) + b"\n")
        return SpanExportResult.SUCCESS


if os.environ.get("FENNEL_TEST_SPANS"):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    trace.set_tracer_provider(provider)

app = App(name="tests-traced", middleware=[TracingMiddleware()],
          retry_backoff=lambda retries: 0.05)
_attempts: dict[str, int] = {}


@app.task(retries=2)
def wobbly(key: str) -> str:
    """Fails twice, then succeeds; opens a child span of its own each time."""
    with trace.get_tracer("tests").start_as_current_span("inside wobbly"):
        _attempts[key] = _attempts.get(key, 0) + 1
        if _attempts[key] < 3:
            raise RuntimeError(f"attempt {_attempts[key]}")
        return key
