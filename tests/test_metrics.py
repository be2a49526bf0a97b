"""Prometheus metrics (``sheppy_core.prometheus``): what a worker counts, by queue, task and status.

The metrics live on prometheus-client's default registry for the whole test process, so every test uses
a queue of its own and reads the series of that queue.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tasks_for_tests as t
from prometheus_client import REGISTRY

from sheppy_core import MemoryBackend, Queue, Worker, prometheus


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
