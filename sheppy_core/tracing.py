"""OpenTelemetry traces of sheppy-core (``pip install 'sheppy-core[otel]'``: opentelemetry-api only; the
SDK, its exporters and sampling are the application's).

Tracing is off until :func:`enable` is called, in the producer and in the worker process (for a worker:
from ``--prestart`` or the module that configures the SDK). Then:

- every add (``Queue.add``, ``Queue.schedule``, chained tasks, workflow steps) runs in a ``send {queue}``
  span (PRODUCER) and, when that span is recording, writes its W3C context (``traceparent``,
  ``tracestate``) into the task record's ``trace_context`` (a task that carries one already, e.g. a
  retry, keeps the original);
- every attempt runs in a ``process {queue}`` span (CONSUMER) whose parent is the stored context and
  which links to it; tasks added while it runs continue the same trace.

Attributes: ``messaging.system="sheppy"``, ``messaging.destination.name``, ``messaging.message.id``
(the task id), ``messaging.operation.type``, ``sheppy.task.name``, ``sheppy.task.attempt`` and, for an
attempt that did not complete, ``error.type`` (the exception's class name, or the status).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sheppy_core import _telemetry
from sheppy_core.models import Task

__all__ = ["disable", "enable"]

_INSTRUMENTATION = "sheppy_core"


def _require() -> None:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        raise ImportError(
            "sheppy_core.tracing needs opentelemetry-api: pip install 'sheppy-core[otel]'"
        ) from None


class _Tracing:
    """The ``_telemetry.TracingSink`` over the OpenTelemetry API (the global tracer provider)."""

    def __init__(self) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()

    def _tracer(self) -> Any:
        # Looked up per span: the application may set its provider after enable().
        return self._trace.get_tracer(_INSTRUMENTATION)

    @contextlib.contextmanager
    def sending(self, queue: str, records: Sequence[dict[str, Any]]) -> Iterator[None]:
        attributes: dict[str, Any] = {
            "messaging.system": "sheppy",
            "messaging.destination.name": queue,
            "messaging.operation.type": "send",
        }
        if len(records) == 1:
            attributes["messaging.message.id"] = str(records[0].get("id"))
            attributes["sheppy.task.name"] = str(records[0].get("spec", {}).get("func"))
        else:
            attributes["messaging.batch.message_count"] = len(records)
        kind = self._trace.SpanKind.PRODUCER
        with self._tracer().start_as_current_span(f"send {queue}", kind=kind, attributes=attributes) as span:
            if span.is_recording():
                carrier: dict[str, str] = {}
                self._propagator.inject(carrier)
                for record in records:
                    if not record.get("trace_context"):
                        record["trace_context"] = dict(carrier)
            yield

    @contextlib.contextmanager
    def processing(self, queue: str, task: Task[Any], attempt: int) -> Iterator[Callable[[Task[Any]], None]]:
        trace = self._trace
        parent = self._propagator.extract(task.trace_context) if task.trace_context else None
        links = []
        if parent is not None:
            enqueuer = trace.get_current_span(parent).get_span_context()
            if enqueuer.is_valid:
                links.append(trace.Link(enqueuer))
        attributes: dict[str, Any] = {
            "messaging.system": "sheppy",
            "messaging.destination.name": queue,
            "messaging.operation.type": "process",
            "messaging.message.id": str(task.id),
            "sheppy.task.name": task.spec.func,
            "sheppy.task.attempt": attempt,
        }
        span = self._tracer().start_span(
            f"process {queue}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
        )

        def ended(outcome: Task[Any]) -> None:
            if outcome.status == "completed" or not span.is_recording():
                return
            error = outcome.exception.type if outcome.exception is not None else outcome.status
            span.set_attribute("error.type", error)
            description = str(outcome.exception) if outcome.exception is not None else outcome.status
            span.set_status(trace.Status(trace.StatusCode.ERROR, description))

        with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
            yield ended


def enable() -> None:
    """Trace adds and attempts in this process from now on (idempotent). Raises ``ImportError`` with the
    install line when opentelemetry-api is missing."""
    _require()
    _telemetry.install_tracing(_Tracing())


def disable() -> None:
    _telemetry.install_tracing(None)
