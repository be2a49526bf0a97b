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
In one process the per-task series are plain numbers a collector renders at scrape time (a microsecond
or two a task); in multi-process mode they are prometheus-client's value objects writing to the shared
directory (a lock and a file write each: several times that).
"""

from __future__ import annotations

import bisect
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, tzinfo
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

    In one process the per-task series are plain numbers in this process (:class:`_PlainSink`),
    exposed by a collector on the default registry: an attempt costs a few attribute adds and a bisect,
    not prometheus-client's lock and validation per operation (issue #18's microsecond budget). In
    multi-process mode they are prometheus-client's own (:class:`_SharedSink`), whose values live in
    the shared directory where the scraping process reads them.
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
        self.sink: _PlainSink | _SharedSink
        if self.multiprocess:
            self.sink = _SharedSink(self)
        else:
            self.sink = _PlainSink()
            pc.REGISTRY.register(_InProcessCollector(self.sink))  # registering collects: after the sink


def _runnable_for(task: Task[Any]) -> float:
    """Seconds since ``task`` became runnable (:func:`_telemetry.runnable_since`)."""
    since = _telemetry.runnable_since(task)
    epoch = _epoch
    if since.tzinfo is not epoch.tzinfo:
        found = _epoch_in(since.tzinfo)
        if found is None:
            return _now() - since.timestamp()
        epoch = found
    return _now() - (since - epoch).total_seconds()


def _epoch_in(zone: tzinfo | None) -> datetime | None:
    """The Unix epoch in ``zone`` when it is a fixed offset (kept for the next task), else None.

    Why: ``moment.timestamp()`` asks the zone for its offset, which costs more than the rest of an
    attempt's metrics with pydantic's zone (a task read from a store); the difference of two datetimes
    sharing one zone object does not ask, and it is exact when the zone's offset never changes
    (``utcoffset(None)`` answers only then: a zone with daylight saving time returns None).
    """
    global _epoch
    try:
        fixed = zone is not None and zone.utcoffset(None) is not None
    except Exception:  # a zone that cannot answer without a moment
        fixed = False
    if not fixed:
        return None
    _epoch = _UNIX_EPOCH.astimezone(zone)
    return _epoch


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_epoch = _UNIX_EPOCH  # in the zone of the last task seen (on a worker, pydantic's one UTC object)
_now = time.time
_bucket_of = bisect.bisect_left  # a bucket's bound is inclusive (le): a value on it counts in it


class _Active:
    """The attempts running now of one queue, shared by its (queue, task) series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class _PlainSeries:
    """The numbers of one (queue, task) pair in one process.

    Histograms are counts per bucket (not cumulative; the last one is +Inf) and a sum. Changed only by
    the worker's event loop thread (the attempt hooks), except ``enqueued`` (under the sink's lock);
    read by the scrape's thread.
    """

    __slots__ = (
        "active", "duration_counts", "duration_sum", "enqueued", "finished", "leases_expired", "retried",
        "started", "wait_counts", "wait_sum",
    )

    def __init__(self, active: _Active) -> None:
        self.enqueued = self.started = self.retried = self.leases_expired = 0
        self.finished: dict[str, int] = {}
        self.duration_counts = [0] * (len(_DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.wait_counts = [0] * (len(_WAIT_BUCKETS) + 1)
        self.wait_sum = 0.0
        self.active = active


class _PlainSink:
    """The ``_telemetry.MetricsSink`` of one process: plain numbers, no lock on the attempt path.

    The attempt hooks (and ``redelivered``, ``finished_unrun``) run on the worker's event loop thread:
    a sync task runs in a thread of its own, but its attempt is started and ended on the loop.
    ``enqueued`` can come from any thread that adds tasks (a ``SyncQueue``'s loop, ``asyncio.run`` in a
    thread): it takes a lock, so no increment is lost.
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], _PlainSeries] = {}
        self._active: dict[str, _Active] = {}
        self._lock = threading.Lock()

    def series(self, queue: str, func: str) -> _PlainSeries:
        found = self._series.get((queue, func))
        if found is None:
            with self._lock:  # a series made twice at once would lose the first one's counts
                found = self._series.get((queue, func))
                if found is None:
                    active = self._active.get(queue)
                    if active is None:
                        active = self._active[queue] = _Active()
                    found = self._series[(queue, func)] = _PlainSeries(active)
        return found

    def series_items(self) -> list[tuple[tuple[str, str], _PlainSeries]]:
        return list(self._series.items())  # one C call: safe against the loop adding a series

    def active_items(self) -> list[tuple[str, _Active]]:
        return list(self._active.items())

    def enqueued(self, queue: str, func: str) -> None:
        series = self._series.get((queue, func)) or self.series(queue, func)
        with self._lock:
            series.enqueued += 1

    def redelivered(self, queue: str, func: str) -> None:
        self.series(queue, func).leases_expired += 1

    def attempt_started(self, queue: str, task: Task[Any]) -> _PlainSeries:
        func = task.spec.func
        series = self._series.get((queue, func)) or self.series(queue, func)
        series.started += 1
        series.active.value += 1
        wait = _runnable_for(task)
        if wait > 0:
            series.wait_counts[_bucket_of(_WAIT_BUCKETS, wait)] += 1
            series.wait_sum += wait
        else:  # due later than it ran (a clock ahead of this one): no negative wait
            series.wait_counts[0] += 1
        return series

    def attempt_ended(self, series: _PlainSeries, outcome: Task[Any] | None, duration: float) -> None:
        series.active.value -= 1
        if outcome is None:
            return
        series.duration_counts[_bucket_of(_DURATION_BUCKETS, duration)] += 1
        series.duration_sum += duration
        status = outcome.status
        if status == "retrying":
            series.retried += 1
        elif status in _FINAL:
            series.finished[status] = series.finished.get(status, 0) + 1

    def finished_unrun(self, queue: str, outcome: Task[Any]) -> None:
        series, status = self.series(queue, outcome.spec.func), outcome.status
        if status == "retrying":
            series.retried += 1
        elif status in _FINAL:
            series.finished[status] = series.finished.get(status, 0) + 1


class _TaskSeries:
    """The prometheus-client children of one (queue, task) pair (multi-process mode)."""

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


class _SharedSink:
    """The ``_telemetry.MetricsSink`` of multi-process mode: prometheus-client's value objects, whose
    values the scraping process reads from the shared directory (each operation takes their lock)."""

    def __init__(self, metrics: _Metrics) -> None:
        self._metrics = metrics
        # Label lookups cost more than the increments: children are kept per (queue, task).
        self._series: dict[tuple[str, str], _TaskSeries] = {}

    def series(self, queue: str, func: str) -> _TaskSeries:
        found = self._series.get((queue, func))
        if found is None:
            found = self._series[(queue, func)] = _TaskSeries(self._metrics, queue, func)
        return found

    def enqueued(self, queue: str, func: str) -> None:
        self.series(queue, func).enqueued.inc()

    def redelivered(self, queue: str, func: str) -> None:
        self.series(queue, func).leases_expired.inc()

    def attempt_started(self, queue: str, task: Task[Any]) -> _TaskSeries:
        series = self.series(queue, task.spec.func)
        series.started.inc()
        wait = _runnable_for(task)
        series.queue_wait.observe(wait if wait > 0 else 0.0)
        series.active.inc()
        return series

    def attempt_ended(self, series: _TaskSeries, outcome: Task[Any] | None, duration: float) -> None:
        series.active.dec()
        if outcome is None:
            return
        series.duration.observe(duration)
        self._count_outcome(series, outcome)

    def finished_unrun(self, queue: str, outcome: Task[Any]) -> None:
        self._count_outcome(self.series(queue, outcome.spec.func), outcome)

    @staticmethod
    def _count_outcome(series: _TaskSeries, outcome: Task[Any]) -> None:
        status = outcome.status
        if status == "retrying":
            series.retried.inc()
        elif status in _FINAL:
            series.finished_with(status).inc()


class _InProcessCollector:
    """Exposes the plain series of this process under their metric names, as prometheus-client's own
    Counter, Histogram and Gauge would (names, HELP, labels, buckets)."""

    def __init__(self, sink: _PlainSink) -> None:
        self._sink = sink

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        items = self._sink.series_items()
        labels = ["queue", "task"]
        for name, field in (
            (_ENQUEUED, "enqueued"), (_STARTED, "started"), (_RETRIED, "retried"), (_LEASES, "leases_expired")
        ):
            counter = CounterMetricFamily(name, _HELP[name], labels=labels)
            for (queue, func), series in items:
                counter.add_metric([queue, func], float(getattr(series, field)))
            yield counter
        finished = CounterMetricFamily(_FINISHED, _HELP[_FINISHED], labels=[*labels, "status"])
        for (queue, func), series in items:
            for status, number in list(series.finished.items()):
                finished.add_metric([queue, func, status], float(number))
        yield finished
        for name, bounds, field in (
            (_DURATION, _DURATION_BUCKETS, "duration"), (_WAIT, _WAIT_BUCKETS, "wait")
        ):
            histogram = HistogramMetricFamily(name, _HELP[name], labels=labels)
            uppers = [floatToGoString(bound) for bound in (*bounds, math.inf)]  # type: ignore[no-untyped-call]
            for (queue, func), series in items:
                counts: list[int] = list(getattr(series, f"{field}_counts"))
                total: float = getattr(series, f"{field}_sum")
                cumulative, running = [], 0
                for upper, count in zip(uppers, counts, strict=True):
                    running += count
                    cumulative.append((upper, float(running)))
                histogram.add_metric([queue, func], cumulative, total)
            yield histogram
        active = GaugeMetricFamily(_ACTIVE, _HELP[_ACTIVE], labels=["queue"])
        for queue, attempts in self._sink.active_items():
            active.add_metric([queue], float(attempts.value))
        yield active


def _ensure_metrics() -> _Metrics:
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = _Metrics()
        return _metrics


def enable() -> None:
    """Count and time tasks in this process from now on (idempotent). Raises ``ImportError`` with the
    install line when prometheus-client is missing."""
    _telemetry.install_metrics(_ensure_metrics().sink)


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
