"""Bootstrap of a traced worker process for the telemetry tests: an OpenTelemetry SDK provider whose
exporter appends each finished span as one JSON line to ``$SHEPPY_TEST_SPANS``, tracing enabled, then
the ``sheppy`` command with this process's arguments (``python -c ... work --import ...``)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            context = span.get_span_context()
            assert context is not None
            lines.append(json.dumps({
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": format(context.trace_id, "032x"),
                "span_id": format(context.span_id, "016x"),
                "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
                "links": [format(link.context.span_id, "016x") for link in span.links],
                "attributes": dict(span.attributes or {}),
            }))
        with self._lock, open(self._path, "a") as out:
            out.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS


def main() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(os.environ["SHEPPY_TEST_SPANS"])))
    trace.set_tracer_provider(provider)

    from sheppy_core import tracing
    from sheppy_core.cli import main as sheppy

    tracing.enable()
    sheppy()


if __name__ == "__main__":
    main()
