"""OpenTelemetry: the trace context travels from .delay() into the worker's spans."""

from __future__ import annotations

import orjson
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fennel import App
from fennel.tracing import TracingMiddleware


def test_worker_spans_continue_the_producers_trace_with_linked_retries(start_worker, tmp_path):
    spans_file = tmp_path / "spans.jsonl"
    start_worker("tests.apps.traced:app", "--concurrency", "1",
                 env={"FENNEL_TEST_SPANS": str(spans_file)})

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = App(name="tests-traced", middleware=[TracingMiddleware(tracer_provider=provider)])

    @app.task(name="tests.apps.traced.wobbly", retries=2)
    def wobbly(key: str) -> str: ...

    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("web request") as root:
        x = wobbly.delay("k1")
    assert x.get(timeout=30) == "k1"
    app.close()

    (send,) = [s for s in exporter.get_finished_spans() if s.name.startswith("fennel.send")]
    trace_id = format(root.get_span_context().trace_id, "032x")
    send_id = format(send.context.span_id, "016x")
    worker_spans = [orjson.loads(line) for line in spans_file.read_text().splitlines()]
    runs = sorted((s for s in worker_spans if s["name"] == "fennel.run tests.apps.traced.wobbly"),
                  key=lambda s: s["attempt"])
    assert [r["attempt"] for r in runs] == [1, 2, 3]
    assert all(r["trace_id"] == trace_id and r["parent"] == send_id for r in runs)
    assert [r["status"] for r in runs] == ["ERROR", "ERROR", "UNSET"]
    # each retry is linked to the attempt before it
    assert runs[0]["links"] == []
    assert runs[1]["links"] == [runs[0]["span_id"]]
    assert runs[2]["links"] == [runs[1]["span_id"]]
    # spans opened by the task body nest under the attempt's span
    inner = [s for s in worker_spans if s["name"] == "inside wobbly"]
    assert sorted(s["parent"] for s in inner) == sorted(r["span_id"] for r in runs)
