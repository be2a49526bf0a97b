"""Prometheus metrics of sheppy-core (``pip install 'sheppy-core[prometheus]'``).

:func:`enable` registers the metrics on prometheus-client's default registry and installs the hooks the
enqueue and attempt paths call (``sheppy work --metrics-port`` and the dashboard call it). Labels are
``queue``, ``task`` (the function's import name) and ``status``; never an id, so the number of series
stays bounded by queues times task functions.

Per process (counted where it happens): ``sheppy_tasks_enqueued_total``, ``sheppy_tasks_started_total``,
``sheppy_tasks_finished_total{status}`` (a final state: completed, failed, cancelled, crashed),
``sheppy_tasks_retried_total`` (an attempt that ends in a retry), ``sheppy_leases_expired_total`` (a
task redelivered after its worker lost the lease), ``sheppy_task_duration_seconds``,
``sheppy_task_queue_wait_seconds`` (from when the task became runnable to its attempt's start),
``sheppy_worker_active_tasks{queue}``.

Of the store (refreshed by :func:`collect_queue_metrics`, the dashboard does before each scrape):
``sheppy_queue_tasks{queue,status}``, ``sheppy_queue_oldest_ready_age_seconds{queue}``,
``sheppy_workers_online{queue}``.

Multi-process mode: set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, shared by the processes)
before prometheus-client is imported; :func:`metrics_response_body` then merges every process's values.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sheppy_core import _telemetry
from sheppy_core.backend import WORKER_REGISTRY, Backend
from sheppy_core.models import Task

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["collect_queue_metrics", "disable", "enable", "metrics_response_body", "serve"]

_FINAL = frozenset({"completed", "failed", "cancelled", "crashed"})
_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)

_ENQUEUED, _STARTED, _FINISHED = "sheppy_tasks_enqueued", "sheppy_tasks_started", "sheppy_tasks_finished"
_RETRIED, _LEASES = "sheppy_tasks_retried", "sheppy_leases_expired"
_DURATION, _WAIT = "sheppy_task_duration_seconds", "sheppy_task_queue_wait_seconds"
_ACTIVE = "sheppy_worker_active_tasks"
_HELP = {
    _ENQUEUED: "Tasks added to a queue.",
    _STARTED: "Attempts started.",
    _FINISHED: "Tasks that reached a final state.",
    _RETRIED: "Attempts that ended in a retry.",
    _LEASES: "Tasks redelivered after their worker lost the lease.",
    _DURATION: "Duration of an attempt.",
    _WAIT: "From when a task became runnable (created, scheduled or retry due) to its attempt's start.",
    _ACTIVE: "Attempts running now.",
}

_lock = threading.Lock()
_metrics: _Metrics | None = None


def _require() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ImportError(
            "sheppy_core.prometheus needs prometheus-client: pip install 'sheppy-core[prometheus]'"
        ) from None
    return prometheus_client


class _Metrics:
    """The metric objects (created once per process) and the hot-path sink over them.

    In one process the per-task series are plain numbers in this process, exposed by a collector on
    the default registry (an increment is an attribute add, not a lock and a validation: the
    microsecond budget). In multi-process mode they are prometheus-client's own, whose values live in
    the shared directory.
    """

    def __init__(self) -> None:
        pc = _require()
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        task_labels = ("queue", "task")
        if self.multiprocess:
            self.enqueued: Counter = pc.Counter(_ENQUEUED, _HELP[_ENQUEUED], task_labels)
            self.started: Counter = pc.Counter(_STARTED, _HELP[_STARTED], task_labels)
            self.finished: Counter = pc.Counter(_FINISHED, _HELP[_FINISHED], (*task_labels, "status"))
            self.retried: Counter = pc.Counter(_RETRIED, _HELP[_RETRIED], task_labels)
            self.leases_expired: Counter = pc.Counter(_LEASES, _HELP[_LEASES], task_labels)
            self.duration: Histogram = pc.Histogram(
                _DURATION, _HELP[_DURATION], task_labels, buckets=_DURATION_BUCKETS
            )
            self.queue_wait: Histogram = pc.Histogram(_WAIT, _HELP[_WAIT], task_labels, buckets=_WAIT_BUCKETS)
            self.active: Gauge = pc.Gauge(_ACTIVE, _HELP[_ACTIVE], ("queue",), multiprocess_mode="livesum")
        self.queue_tasks: Gauge = pc.Gauge(
            "sheppy_queue_tasks", "Tasks of a queue by status (capped count).", ("queue", "status"),
            multiprocess_mode="mostrecent",
        )
        self.oldest_ready_age: Gauge = pc.Gauge(
            "sheppy_queue_oldest_ready_age_seconds", "Age of the task at the head of the queue.", ("queue",),
            multiprocess_mode="mostrecent",
        )
        self.workers_online: Gauge = pc.Gauge(
            "sheppy_workers_online", "Live workers serving a queue.", ("queue",),
            multiprocess_mode="mostrecent",
        )
        # Label lookups cost more than the increments: children are kept per (queue, task).
        self._children: dict[tuple[str, str], Any] = {}
        self.active_by_queue: dict[str, _Number] = {}
        if not self.multiprocess:
            pc.REGISTRY.register(_InProcessCollector(self))  # registering collects: after the fields

    def series(self, queue: str, func: str) -> Any:
        found = self._children.get((queue, func))
        if found is None:
            if self.multiprocess:
                found = _TaskSeries(self, queue, func)
            else:
                active = self.active_by_queue.get(queue)
                if active is None:
                    active = self.active_by_queue[queue] = _Number()
                found = _PlainSeries(active)
            self._children[(queue, func)] = found
        return found

    def series_items(self) -> list[tuple[tuple[str, str], Any]]:
        return list(self._children.items())  # one C call: safe against the loop adding a series

    # -- MetricsSink -------------------------------------------------------------------------------

    def enqueued_(self, queue: str, func: str) -> None:
        self.series(queue, func).enqueued.inc()

    def redelivered(self, queue: str, func: str) -> None:
        self.series(queue, func).leases_expired.inc()

    def attempt_started(self, queue: str, task: Task[Any]) -> Any:
        series = self._children.get((queue, task.spec.func)) or self.series(queue, task.spec.func)
        series.started.inc()
        wait = time.time() - _telemetry.runnable_since(task).timestamp()
        series.queue_wait.observe(wait if wait > 0 else 0.0)
        series.active.inc()
        return series

    def attempt_ended(self, series: Any, outcome: Task[Any] | None, duration: float) -> None:
        series.active.dec()
        if outcome is None:
            return
        series.duration.observe(duration)
        status = outcome.status
        if status == "retrying":
            series.retried.inc()
        elif status in _FINAL:
            series.finished_with(status).inc()

    def finished_unrun(self, queue: str, outcome: Task[Any]) -> None:
        self._count_outcome(self.series(queue, outcome.spec.func), outcome)

    def _count_outcome(self, series: Any, outcome: Task[Any]) -> None:
        status = outcome.status
        if status == "retrying":
            series.retried.inc()
        elif status in _FINAL:
            series.finished_with(status).inc()


class _TaskSeries:
    """The children of one (queue, task) pair."""

    def __init__(self, metrics: _Metrics, queue: str, func: str) -> None:
        self._metrics, self._queue, self._func = metrics, queue, func
        self.enqueued = metrics.enqueued.labels(queue, func)
        self.started = metrics.started.labels(queue, func)
        self.retried = metrics.retried.labels(queue, func)
        self.leases_expired = metrics.leases_expired.labels(queue, func)
        self.duration = metrics.duration.labels(queue, func)
        self.queue_wait = metrics.queue_wait.labels(queue, func)
        self.active = metrics.active.labels(queue)
        self._finished: dict[str, Any] = {}

    def finished_with(self, status: str) -> Any:
        child = self._finished.get(status)
        if child is None:
            child = self._finished[status] = self._metrics.finished.labels(self._queue, self._func, status)
        return child


class _Number:
    """A number changed only by the event loop's thread (read by the scrape's)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


class _Buckets:
    """A histogram's counts per bucket (not cumulative; the last one is +Inf) and its sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _PlainSeries:
    """The series of one (queue, task) pair in one process."""

    def __init__(self, active: _Number) -> None:
        self.enqueued, self.started = _Number(), _Number()
        self.retried, self.leases_expired = _Number(), _Number()
        self.duration = _Buckets(_DURATION_BUCKETS)
        self.queue_wait = _Buckets(_WAIT_BUCKETS)
        self.active = active
        self.finished: dict[str, _Number] = {}

    def finished_with(self, status: str) -> _Number:
        number = self.finished.get(status)
        if number is None:
            number = self.finished[status] = _Number()
        return number


class _InProcessCollector:
    """Exposes the plain series of this process under their metric names."""

    def __init__(self, metrics: _Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        items = self._metrics.series_items()
        labels = ["queue", "task"]
        for name, field in (
            (_ENQUEUED, "enqueued"), (_STARTED, "started"), (_RETRIED, "retried"), (_LEASES, "leases_expired")
        ):
            counter = CounterMetricFamily(name, _HELP[name], labels=labels)
            for (queue, func), series in items:
                counter.add_metric([queue, func], getattr(series, field).value)
            yield counter
        finished = CounterMetricFamily(_FINISHED, _HELP[_FINISHED], labels=[*labels, "status"])
        for (queue, func), series in items:
            for status, number in list(series.finished.items()):
                finished.add_metric([queue, func, status], number.value)
        yield finished
        for name, field in ((_DURATION, "duration"), (_WAIT, "queue_wait")):
            histogram = HistogramMetricFamily(name, _HELP[name], labels=labels)
            for (queue, func), series in items:
                buckets: _Buckets = getattr(series, field)
                counts, total, running = list(buckets.counts), buckets.sum, 0
                cumulative = []
                for bound, count in zip((*buckets.bounds, math.inf), counts, strict=True):
                    running += count
                    cumulative.append((floatToGoString(bound), float(running)))  # type: ignore[no-untyped-call]
                histogram.add_metric([queue, func], cumulative, total)
            yield histogram
        active = GaugeMetricFamily(_ACTIVE, _HELP[_ACTIVE], labels=["queue"])
        for queue, number in list(self._metrics.active_by_queue.items()):
            active.add_metric([queue], number.value)
        yield active


class _Sink:
    """The ``_telemetry.MetricsSink`` over the metric objects."""

    def __init__(self, metrics: _Metrics) -> None:
        self.enqueued = metrics.enqueued_
        self.redelivered = metrics.redelivered
        self.attempt_started = metrics.attempt_started
        self.attempt_ended = metrics.attempt_ended
        self.finished_unrun = metrics.finished_unrun


def _ensure_metrics() -> _Metrics:
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = _Metrics()
        return _metrics


def enable() -> None:
    """Count and time tasks in this process from now on (idempotent). Raises ``ImportError`` with the
    install line when prometheus-client is missing."""
    _telemetry.install_metrics(_Sink(_ensure_metrics()))


def disable() -> None:
    """Stop counting (the metrics stay registered, with their values)."""
    _telemetry.install_metrics(None)


async def collect_queue_metrics(backend: Backend, queues: Sequence[str] | None = None) -> None:
    """Refresh the store gauges for ``queues`` (default: every queue ``list_queues`` knows).

    ``sheppy_queue_tasks{queue,status}`` from ``count_by_status`` (capped counts),
    ``sheppy_queue_oldest_ready_age_seconds{queue}`` from ``oldest_ready_at`` (0 when nothing is queued),
    ``sheppy_workers_online{queue}`` from ``list_workers`` when the backend declares ``WORKER_REGISTRY``.
    """
    metrics = _ensure_metrics()
    names = list(queues) if queues is not None else sorted(await backend.list_queues())
    now = datetime.now(UTC)
    for name in names:
        for status, count in (await backend.count_by_status(name)).items():
            metrics.queue_tasks.labels(name, status).set(count)
        oldest = await backend.oldest_ready_at(name)
        age = 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)
        metrics.oldest_ready_age.labels(name).set(age)
    if WORKER_REGISTRY in backend.capabilities:
        online = dict.fromkeys(names, 0)
        for worker in await backend.list_workers():
            for name in worker.get("queues") or ():
                if queues is None or name in online:
                    online[name] = online.get(name, 0) + 1
        for name, count in online.items():
            metrics.workers_online.labels(name).set(count)


def _scrape_registry() -> CollectorRegistry:
    pc = _require()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry: CollectorRegistry = pc.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    default: CollectorRegistry = pc.REGISTRY
    return default


def metrics_response_body() -> tuple[bytes, str]:
    """The ``/metrics`` payload and its content type (every process's values in multi-process mode)."""
    pc = _require()
    _ensure_metrics()
    payload: bytes = pc.generate_latest(_scrape_registry())
    return payload, str(pc.CONTENT_TYPE_LATEST)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` of this process (all processes in multi-process mode) on ``host:port``, from a
    daemon thread; enables the metrics."""
    enable()
    _require().start_http_server(port, addr=host, registry=_scrape_registry())
