"""Prometheus metrics (``sheppy_core.prometheus``): what a worker counts, by queue, task and status.

The metrics live on prometheus-client's default registry for the whole test process, so every test uses
a queue of its own and reads the series of that queue.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tasks_for_tests as t
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from sheppy_core import MemoryBackend, Queue, Worker, _telemetry, prometheus
from sheppy_core.models import Task


@pytest.fixture(autouse=True)
def metrics_on() -> Iterator[None]:
    prometheus.enable()
    yield
    prometheus.disable()


@pytest.fixture
def queue(backend: MemoryBackend) -> Queue:
    return Queue(backend, f"m-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def start_worker(backend: MemoryBackend, queue: Queue) -> AsyncIterator[Callable[..., Worker]]:
    started: list[tuple[Worker, asyncio.Task[None]]] = []

    def start(**options: Any) -> Worker:
        worker = Worker(queue.name, backend, enable_cron_manager=False, **options)
        worker._scheduler_polling_interval = 0.05
        started.append((worker, asyncio.create_task(worker.work(register_signal_handlers=False))))
        return worker

    yield start
    for worker, job in started:
        worker.stop()
        await asyncio.wait_for(job, 10)


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds (metrics are recorded just after the outcome is stored)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


def func(task: Any) -> str:
    return str(task.spec.func)


async def test_counters_by_queue_task_and_status(queue: Queue, start_worker: Callable[..., Worker]) -> None:
    plain, flaky, broken = t.add(1, 2), t.fails_once(f"k-{uuid.uuid4()}"), t.always_fails()
    await queue.add([plain, flaky, broken])
    q = queue.name
    for task in (plain, flaky, broken):
        assert value("sheppy_tasks_enqueued_total", queue=q, task=func(task)) == 1
    start_worker()
    await queue.wait_for([plain, flaky, broken], timeout=10)

    def settled() -> bool:
        return value("sheppy_tasks_finished_total", queue=q, task=func(broken), status="failed") == 1

    await eventually(settled, "the failed task counted")
    attempts = {func(plain): 1, func(flaky): 2, func(broken): 3}
    for name, n in attempts.items():
        assert value("sheppy_tasks_started_total", queue=q, task=name) == n
        assert value("sheppy_task_duration_seconds_count", queue=q, task=name) == n
        assert value("sheppy_task_queue_wait_seconds_count", queue=q, task=name) == n
    assert value("sheppy_tasks_finished_total", queue=q, task=func(plain), status="completed") == 1
    assert value("sheppy_tasks_finished_total", queue=q, task=func(flaky), status="completed") == 1
    assert value("sheppy_tasks_finished_total", queue=q, task=func(flaky), status="failed") == 0
    assert value("sheppy_tasks_retried_total", queue=q, task=func(flaky)) == 1
    assert value("sheppy_tasks_retried_total", queue=q, task=func(broken)) == 2
    assert value("sheppy_worker_active_tasks", queue=q) == 0


async def test_queue_wait_starts_when_the_task_became_runnable(
    queue: Queue, start_worker: Callable[..., Worker]
) -> None:
    start_worker()
    # Created well before it is due: the wait must count from its due time, not its creation.
    later = t.add(2, 2).model_copy(update={"created_at": datetime.now(UTC) - timedelta(seconds=30)})
    await queue.schedule(later, timedelta(seconds=0.3))
    await queue.wait_for(later, timeout=10)
    name = func(later)
    await eventually(lambda: value("sheppy_task_queue_wait_seconds_count", queue=queue.name, task=name) == 1,
                     "the attempt counted")
    waited = value("sheppy_task_queue_wait_seconds_sum", queue=queue.name, task=name)
    assert 0 <= waited < 10


async def test_a_redelivery_counts_an_expired_lease_and_a_crash(
    queue: Queue, backend: MemoryBackend, start_worker: Callable[..., Worker]
) -> None:
    lost = t.add(1, 1)
    await queue.add(lost)
    assert len(await backend.pop(queue.name, limit=1, worker_id="dead-worker", lease=0.05)) == 1
    await asyncio.sleep(0.1)  # the dead worker's lease runs out
    start_worker()
    done = await queue.wait_for(lost, timeout=10)
    assert done is not None and done.status == "crashed"
    name = func(lost)
    await eventually(
        lambda: value("sheppy_tasks_finished_total", queue=queue.name, task=name, status="crashed") == 1,
        "the crash counted",
    )
    assert value("sheppy_leases_expired_total", queue=queue.name, task=name) == 1
    assert value("sheppy_tasks_started_total", queue=queue.name, task=name) == 0


async def test_active_tasks_while_an_attempt_runs(queue: Queue, start_worker: Callable[..., Worker]) -> None:
    start_worker()
    nap = t.sleeper(1.0)
    await queue.add(nap)
    await eventually(lambda: value("sheppy_worker_active_tasks", queue=queue.name) == 1, "one task active")
    await queue.wait_for(nap, timeout=10)
    await eventually(lambda: value("sheppy_worker_active_tasks", queue=queue.name) == 0, "none active")


async def test_nothing_is_counted_once_disabled(queue: Queue) -> None:
    prometheus.disable()
    task = t.add(1, 1)
    await queue.add(task)
    assert value("sheppy_tasks_enqueued_total", queue=queue.name, task=func(task)) == 0


async def test_store_gauges_and_the_scrape_body(backend: MemoryBackend, queue: Queue) -> None:
    first = t.add(1, 1).model_copy(update={"created_at": datetime.now(UTC) - timedelta(seconds=60)})
    second = t.add(2, 2)
    await queue.add([first, second])
    await backend.register_worker({"id": "worker-a", "queues": [queue.name]}, ttl=30)
    await backend.register_worker({"id": "worker-b", "queues": ["elsewhere"]}, ttl=30)
    await prometheus.collect_queue_metrics(backend, [queue.name])
    assert value("sheppy_queue_tasks", queue=queue.name, status="pending") == 2
    assert value("sheppy_queue_tasks", queue=queue.name, status="completed") == 0
    assert 59 <= value("sheppy_queue_oldest_ready_age_seconds", queue=queue.name) < 600
    assert value("sheppy_workers_online", queue=queue.name) == 1
    assert REGISTRY.get_sample_value("sheppy_workers_online", {"queue": "elsewhere"}) is None

    body, content_type = prometheus.metrics_response_body()
    assert content_type.startswith("text/plain")
    text = body.decode()
    assert f'sheppy_queue_tasks{{queue="{queue.name}",status="pending"}} 2.0' in text
    assert f'sheppy_tasks_enqueued_total{{queue="{queue.name}",task="{func(first)}"}} 2.0' in text
    assert str(first.id) not in text and str(second.id) not in text


def test_import_sheppy_core_loads_neither_library(tmp_path: Path) -> None:
    # A task module of its own: the shared one imports FastAPI, which imports OpenTelemetry itself.
    (tmp_path / "plain_tasks.py").write_text(
        "from sheppy_core import task\n\n@task\nasync def add(x: int, y: int) -> int:\n    return x + y\n"
    )
    script = (
        "import sys, sheppy_core\n"
        "from sheppy_core import TestQueue\n"
        "import plain_tasks\n"
        "q = TestQueue()\n"
        "q.add(plain_tasks.add(1, 2))\n"
        "assert q.process_all()[0].result == 3\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prometheus_client', 'opentelemetry')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_metrics_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "sheppy_core", "work", "--backend-url", "memory://", "--allow-empty",
             "--oneshot", "--metrics-port", str(port)],
            capture_output=True, text=True, timeout=60,
        )
    assert out.returncode == 1, out.stderr
    assert f"error: --metrics-port: cannot listen on 127.0.0.1:{port}" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scraped(queue_name: str) -> tuple[Samples, dict[str, tuple[str, str]]]:
    """This queue's samples in the ``/metrics`` body, and every sheppy_* family's (type, HELP)."""
    body, _ = prometheus.metrics_response_body()
    samples: Samples = {}
    families: dict[str, tuple[str, str]] = {}
    for family in text_string_to_metric_families(body.decode()):
        if family.name.startswith("sheppy_"):
            families[family.name] = (family.type, family.documentation)
        for sample in family.samples:
            if sample.labels.get("queue") == queue_name:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, families


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def installed_sink() -> _telemetry.MetricsSink:
    """The hooks the enqueue and attempt paths call (to feed them durations and times a test knows)."""
    assert _telemetry.current is not None and _telemetry.current.metrics is not None
    return _telemetry.current.metrics


async def test_the_scrape_body_has_exact_counters_histograms_and_label_sets(
    queue: Queue, start_worker: Callable[..., Worker]
) -> None:
    first, second = t.add(1, 2), t.add(3, 4)
    flaky, broken = t.fails_once(f"k-{uuid.uuid4()}"), t.always_fails()
    await queue.add([first, second, flaky, broken])
    start_worker()
    await queue.wait_for([first, second, flaky, broken], timeout=10)
    q, add, once, fails = queue.name, func(first), func(flaky), func(broken)
    await eventually(lambda: scraped(q)[0].get(key("sheppy_tasks_finished_total", queue=q, task=fails,
                                                   status="failed")) == 1, "the failed task counted")
    await eventually(lambda: scraped(q)[0].get(key("sheppy_worker_active_tasks", queue=q)) == 0, "idle")
    samples, families = scraped(q)

    attempts = {add: 2, once: 2, fails: 3}
    counters: Samples = {key("sheppy_worker_active_tasks", queue=q): 0}
    for name, n in attempts.items():
        counters[key("sheppy_tasks_enqueued_total", queue=q, task=name)] = 2 if name == add else 1
        counters[key("sheppy_tasks_started_total", queue=q, task=name)] = n
        counters[key("sheppy_tasks_retried_total", queue=q, task=name)] = n - 1 if name != add else 0
        counters[key("sheppy_leases_expired_total", queue=q, task=name)] = 0
    counters[key("sheppy_tasks_finished_total", queue=q, task=add, status="completed")] = 2
    counters[key("sheppy_tasks_finished_total", queue=q, task=once, status="completed")] = 1
    counters[key("sheppy_tasks_finished_total", queue=q, task=fails, status="failed")] = 1
    histogram_names = ("sheppy_task_duration_seconds", "sheppy_task_queue_wait_seconds")
    assert {k: v for k, v in samples.items() if not k[0].startswith(histogram_names)} == counters

    bounds = {"sheppy_task_duration_seconds": prometheus._DURATION_BUCKETS,
              "sheppy_task_queue_wait_seconds": prometheus._WAIT_BUCKETS}
    for histogram, uppers in bounds.items():
        for name, n in attempts.items():
            assert samples[key(f"{histogram}_count", queue=q, task=name)] == n
            assert 0 <= samples[key(f"{histogram}_sum", queue=q, task=name)] < 10 * n
            cumulative = [samples[key(f"{histogram}_bucket", queue=q, task=name, le=le)]
                          for le in [*(floatToGoString(u) for u in uppers), "+Inf"]]
            assert cumulative == sorted(cumulative) and cumulative[-1] == n
        lines = {k for k in samples if k[0] == f"{histogram}_bucket"}
        assert len(lines) == len(attempts) * (len(uppers) + 1)  # no other label set, no other bound

    assert families == {
        "sheppy_tasks_enqueued": ("counter", "Tasks added to a queue."),
        "sheppy_tasks_started": ("counter", "Attempts started."),
        "sheppy_tasks_finished": ("counter", "Tasks that reached a final state."),
        "sheppy_tasks_retried": ("counter", "Attempts that ended in a retry."),
        "sheppy_leases_expired": ("counter", "Tasks redelivered after their worker lost the lease."),
        "sheppy_task_duration_seconds": ("histogram", "Duration of an attempt."),
        "sheppy_task_queue_wait_seconds": (
            "histogram",
            "From when a task became runnable (created, scheduled or retry due) to its attempt's start.",
        ),
        "sheppy_worker_active_tasks": ("gauge", "Attempts running now."),
        "sheppy_queue_tasks": ("gauge", "Tasks of a queue by status (capped count)."),
        "sheppy_queue_oldest_ready_age_seconds": ("gauge", "Age of the task at the head of the queue."),
        "sheppy_workers_online": ("gauge", "Live workers serving a queue."),
    }


# Durations on and next to the bucket bounds (a bound is inclusive: le), beyond the last, and sums
# whose float rendering is not round.
DURATIONS = (0.0, 0.001, 0.0011, 0.005, 0.1 + 0.2, 1.0, 2.5000001, 299.9, 300.0, 300.5, 1e6, 0.1 / 3)


def oracle_histogram_lines(name: str, buckets: tuple[float, ...], values: tuple[float, ...]) -> list[str]:
    """What prometheus-client's own Histogram renders for ``values`` (the lines after HELP and TYPE)."""
    registry = CollectorRegistry()
    reference = Histogram(name, "reference", ("queue", "task"), buckets=buckets, registry=registry)
    for value_ in values:
        reference.labels("Q", "T").observe(value_)
    return [line for line in generate_latest(registry).decode().splitlines()
            if line.startswith(f"{name}_") and "_created" not in line]


def our_lines(name: str, queue_name: str) -> list[str]:
    body, _ = prometheus.metrics_response_body()
    return [line for line in body.decode().splitlines()
            if line.startswith(f"{name}_") and f'queue="{queue_name}"' in line]


async def test_histograms_render_as_prometheus_client_would(queue: Queue) -> None:
    sink = installed_sink()
    # Due in a day: not runnable yet when it starts, so its wait is 0 (never negative).
    early = t.add(1, 1).model_copy(update={"scheduled_at": datetime.now(UTC) + timedelta(days=1)})
    done = early.model_copy(update={"status": "completed"})
    for duration in DURATIONS:
        sink.attempt_ended(sink.attempt_started(queue.name, early), done, duration)

    rename = {'queue="Q"': f'queue="{queue.name}"', 'task="T"': f'task="{func(early)}"'}

    def renamed(lines: list[str]) -> list[str]:
        for old, new in rename.items():
            lines = [line.replace(old, new) for line in lines]
        return lines

    duration_name, wait_name = "sheppy_task_duration_seconds", "sheppy_task_queue_wait_seconds"
    assert our_lines(duration_name, queue.name) == renamed(
        oracle_histogram_lines(duration_name, prometheus._DURATION_BUCKETS, DURATIONS)
    )
    zeros = tuple(0.0 for _ in DURATIONS)
    assert our_lines(wait_name, queue.name) == renamed(
        oracle_histogram_lines(wait_name, prometheus._WAIT_BUCKETS, zeros)
    )


async def test_queue_wait_lands_in_the_bucket_of_its_age(queue: Queue) -> None:
    sink = installed_sink()
    now = datetime.now(UTC)
    # Runnable 45 s ago, by each of the three clocks (the latest of them counts).
    by_creation = t.add(1, 1).model_copy(update={"created_at": now - timedelta(seconds=45)})
    by_schedule = t.add(1, 1).model_copy(
        update={"created_at": now - timedelta(hours=2), "scheduled_at": now - timedelta(seconds=45)}
    )
    by_retry = t.add(1, 1).model_copy(update={
        "created_at": now - timedelta(hours=3), "scheduled_at": now - timedelta(hours=2),
        "next_retry_at": now - timedelta(seconds=45),
    })
    for task in (by_creation, by_schedule, by_retry):
        sink.attempt_ended(sink.attempt_started(queue.name, task), None, 0.0)
    samples, _ = scraped(queue.name)
    name, labels = "sheppy_task_queue_wait_seconds", {"queue": queue.name, "task": func(by_creation)}
    assert samples[key(f"{name}_bucket", le="30.0", **labels)] == 0
    assert samples[key(f"{name}_bucket", le="60.0", **labels)] == 3
    assert 3 * 45 <= samples[key(f"{name}_sum", **labels)] < 3 * 55
    assert samples[key("sheppy_task_duration_seconds_count", **labels)] == 0  # cut off: no duration


async def test_enqueues_from_many_threads_are_all_counted(backend: MemoryBackend, queue: Queue) -> None:
    threads, each = 8, 300
    start = threading.Barrier(threads)
    sink = installed_sink()
    name = func(t.add(1, 1))

    def producer() -> None:
        start.wait()
        for _ in range(each):
            sink.enqueued(queue.name, name)

    workers = [threading.Thread(target=producer) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(30)
    assert value("sheppy_tasks_enqueued_total", queue=queue.name, task=name) == threads * each


SCENARIO = """
import json, sys
from datetime import UTC, datetime, timedelta
import tasks_for_tests as t
from prometheus_client.parser import text_string_to_metric_families
from sheppy_core import _telemetry, prometheus

prometheus.enable()
sink = _telemetry.current.metrics
early = t.add(1, 1).model_copy(update={"scheduled_at": datetime.now(UTC) + timedelta(days=1)})
fails = t.always_fails().model_copy(update={"scheduled_at": early.scheduled_at})
for _ in range(3):
    sink.enqueued("mp", early.spec.func)
for duration in DURATIONS:
    sink.attempt_ended(sink.attempt_started("mp", early), early.model_copy(update={"status": "completed"}),
                       duration)
running = sink.attempt_started("mp", fails)
sink.attempt_ended(sink.attempt_started("mp", fails), fails.model_copy(update={"status": "retrying"}), 0.2)
sink.redelivered("mp", fails.spec.func)
sink.finished_unrun("mp", fails.model_copy(update={"status": "crashed"}))
body, _ = prometheus.metrics_response_body()
print(json.dumps(sorted(
    [sample.name, sorted(sample.labels.items()), sample.value]
    for family in text_string_to_metric_families(body.decode())
    for sample in family.samples
    if sample.labels.get("queue") == "mp"
)))
"""


def test_multiprocess_mode_scrapes_the_same_samples_as_one_process(tmp_path: Path) -> None:
    def run(env: dict[str, str]) -> list[Any]:
        script = f"DURATIONS = {DURATIONS!r}\n{SCENARIO}"
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
            env={"PYTHONPATH": str(Path(__file__).parent), "PATH": "", **env},
        )
        return list(json.loads(out.stdout))

    (tmp_path / "prom").mkdir()
    shared = run({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")})
    assert any(tmp_path.joinpath("prom").iterdir())  # the values went through the shared directory
    assert run({}) == shared
    found = {(name, tuple(map(tuple, labels))): number for name, labels, number in shared}
    add, fails = "tasks_for_tests:add", "tasks_for_tests:always_fails"
    assert found[("sheppy_tasks_enqueued_total", (("queue", "mp"), ("task", add)))] == 3
    assert found[("sheppy_task_duration_seconds_count", (("queue", "mp"), ("task", add)))] == len(DURATIONS)
    assert found[("sheppy_tasks_started_total", (("queue", "mp"), ("task", fails)))] == 2
    assert found[("sheppy_tasks_retried_total", (("queue", "mp"), ("task", fails)))] == 1
    assert found[("sheppy_leases_expired_total", (("queue", "mp"), ("task", fails)))] == 1
    crashed = ("sheppy_tasks_finished_total", (("queue", "mp"), ("status", "crashed"), ("task", fails)))
    assert found[crashed] == 1
    assert found[("sheppy_worker_active_tasks", (("queue", "mp"),))] == 1


async def test_queue_wait_is_exact_in_any_time_zone(queue: Queue) -> None:
    sink = installed_sink()
    ago = datetime.now(UTC) - timedelta(seconds=45)
    # The same moment in UTC, in fixed offsets (one read back from JSON, as a worker gets it) and in
    # zones whose offset now is not their offset of 1970 (Singapore moved, London had British Standard
    # Time, Sydney had no summer time), one after the other: no zone may skew the wait.
    moments = [
        ago, ago.astimezone(timezone(timedelta(hours=-5))), ago.astimezone(ZoneInfo("Asia/Singapore")),
        Task.model_validate(t.add(1, 1).model_copy(
            update={"created_at": ago.astimezone(timezone(timedelta(hours=5, minutes=30)))}
        ).model_dump(mode="json")).created_at,
        ago.astimezone(ZoneInfo("Europe/London")), ago.astimezone(ZoneInfo("Australia/Sydney")), ago,
    ]
    for moment in moments:
        task = t.add(1, 1).model_copy(update={"created_at": moment})
        sink.attempt_ended(sink.attempt_started(queue.name, task), None, 0.0)
    samples, _ = scraped(queue.name)
    name, labels = "sheppy_task_queue_wait_seconds", {"queue": queue.name, "task": func(t.add(1, 1))}
    assert samples[key(f"{name}_bucket", le="30.0", **labels)] == 0
    assert samples[key(f"{name}_bucket", le="60.0", **labels)] == len(moments)
    assert len(moments) * 45 <= samples[key(f"{name}_sum", **labels)] < len(moments) * 55
