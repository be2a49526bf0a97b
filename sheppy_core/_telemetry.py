"""The hook points the hot path calls for metrics and traces; free when neither is enabled.

``current`` is None unless :func:`sheppy_core.prometheus.enable` or :func:`sheppy_core.tracing.enable`
installed a sink: the enqueue and attempt paths test it once and go on. This module imports neither
prometheus-client nor OpenTelemetry; the sinks live in ``sheppy_core.prometheus`` and
``sheppy_core.tracing``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sheppy_core.models import Task

__all__ = [
    "MetricsSink",
    "Telemetry",
    "TracingSink",
    "current",
    "install_metrics",
    "install_tracing",
    "observe_attempt",
    "runnable_since",
]

# The workflow engine's own tasks (watches, resumes) are plumbing, not the user's work.
_ENGINE_PREFIX = "sheppy_core._workflow:"


class MetricsSink(Protocol):
    """What the metrics side is told (``sheppy_core.prometheus``)."""

    def enqueued(self, queue: str, func: str) -> None: ...

    def redelivered(self, queue: str, func: str) -> None: ...

    def attempt_started(self, queue: str, task: Task[Any]) -> Any:
        """Returns what ``attempt_ended`` is handed back (the attempt's series)."""
        ...

    def attempt_ended(self, started: Any, outcome: Task[Any] | None, duration: float) -> None:
        """``outcome`` None: the attempt was cut off (cancelled, an error storing it)."""
        ...

    def finished_unrun(self, queue: str, outcome: Task[Any]) -> None:
        """A task that reached a final state without an attempt (a lost lease with no retry left)."""
        ...


class TracingSink(Protocol):
    """What the tracing side is asked (``sheppy_core.tracing``)."""

    def sending(
        self, queue: str, records: Sequence[dict[str, Any]]
    ) -> contextlib.AbstractContextManager[None]:
        """A ``send`` span around an add; writes its context into ``records`` with none yet."""
        ...

    def processing(
        self, queue: str, task: Task[Any], attempt: int
    ) -> contextlib.AbstractContextManager[Callable[[Task[Any]], None]]:
        """A ``process`` span, current while the attempt runs; yields the callback told its outcome."""
        ...


class Telemetry:
    """The installed sinks, as the hot path sees them."""

    def __init__(self, metrics: MetricsSink | None, tracing: TracingSink | None) -> None:
        self.metrics = metrics
        self.tracing = tracing

    def adding(
        self, queue: str, records: Sequence[dict[str, Any]]
    ) -> contextlib.AbstractContextManager[None]:
        """Around one add of ``records`` (a send span when tracing)."""
        if self.tracing is None:
            return _NO_SPAN  # not a generator-based context manager: metrics alone cost no frame here
        user_records = [r for r in records if not _is_engine(r.get("spec", {}).get("func", ""))]
        if not user_records:
            return _NO_SPAN
        return self.tracing.sending(queue, user_records)

    def added(self, queue: str, records: Sequence[dict[str, Any]], stored: Sequence[bool]) -> None:
        """After an add: count the records the queue took."""
        if self.metrics is None:
            return
        for record, new in zip(records, stored, strict=False):
            func = record.get("spec", {}).get("func", "")
            if new and not _is_engine(func):
                self.metrics.enqueued(queue, func)

    def redelivered(self, queue: str, task: Task[Any]) -> None:
        if self.metrics is not None:
            self.metrics.redelivered(queue, task.spec.func)

    def finished_unrun(self, queue: str, outcome: Task[Any]) -> None:
        if self.metrics is not None:
            self.metrics.finished_unrun(queue, outcome)


_NO_SPAN: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


def _is_engine(func: str) -> bool:
    return func.startswith(_ENGINE_PREFIX)


current: Telemetry | None = None
"""The installed sinks; None when neither metrics nor tracing is enabled (the hot path's one check)."""

_metrics: MetricsSink | None = None
_tracing: TracingSink | None = None


def install_metrics(sink: MetricsSink | None) -> None:
    global _metrics
    _metrics = sink
    _refresh()


def install_tracing(sink: TracingSink | None) -> None:
    global _tracing
    _tracing = sink
    _refresh()


def _refresh() -> None:
    global current
    current = None if _metrics is None and _tracing is None else Telemetry(_metrics, _tracing)


def runnable_since(task: Task[Any]) -> datetime:
    """When ``task`` became runnable: the latest of its creation, its schedule and its next retry."""
    since = task.created_at
    if task.scheduled_at is not None and task.scheduled_at > since:
        since = task.scheduled_at
    if task.next_retry_at is not None and task.next_retry_at > since:
        since = task.next_retry_at
    return since


async def observe_attempt(
    telemetry: Telemetry,
    queue: str,
    task: Task[Any],
    attempt: int,
    run: Callable[[], Awaitable[tuple[Task[Any], float]]],
) -> Task[Any]:
    """Run one attempt of ``task`` (``run`` returns its stored outcome and the attempt's duration) under
    the installed sinks: counted, timed and inside a ``process`` span."""
    metrics, tracing = telemetry.metrics, telemetry.tracing
    started = metrics.attempt_started(queue, task) if metrics is not None else None
    outcome: Task[Any] | None = None
    duration = 0.0
    try:
        if tracing is None:
            outcome, duration = await run()
        else:
            with tracing.processing(queue, task, attempt) as ended:
                outcome, duration = await run()
                ended(outcome)
    finally:
        if metrics is not None:
            metrics.attempt_ended(started, outcome, duration)
    return outcome
