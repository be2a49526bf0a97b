# mypy: disable-error-code="import-not-found,untyped-decorator"
"""The four contenders of ``compare.py``: their no-op tasks and their enqueue/work phases.

Imported by name (``contenders``) in the child processes that ``compare.py`` starts with ``--python``,
because sheppy 0.0.7 resolves a task by its module path: tasks must live in an importable module. The
Redis URL comes from ``SHEPPY_BENCH_URL`` (set by ``compare.py``), since taskiq binds a broker at import.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from saq import Queue as SaqQueue
from saq import Worker as SaqWorker
from sheppy import Queue as Queue007
from sheppy import RedisBackend as Redis007
from sheppy import Worker as Worker007
from sheppy import task as task007
from sheppy_redis import RedisBackend
from taskiq.api.receiver import run_receiver_task
from taskiq_redis import RedisStreamBroker

from sheppy_core import Queue, Worker, task

URL = os.environ.get("SHEPPY_BENCH_URL", "redis://127.0.0.1:6379/12")
BATCH = 1000
SLOTS = 50

done_count = 0
done_event: asyncio.Event | None = None
target = 0


def _count() -> None:
    global done_count
    done_count += 1
    if done_count >= target and done_event is not None:
        done_event.set()


@task
async def noop_core(i: int) -> None:
    _count()


@task007
async def noop_007(i: int) -> None:
    _count()


broker = RedisStreamBroker(URL, queue_name="bench", consumer_id="0")


@broker.task(task_name="noop")
async def noop_taskiq(i: int) -> None:
    _count()


async def noop_saq(ctx: Any, *, i: int) -> None:
    _count()


def _batches(n: int) -> list[range]:
    return [range(start, min(n, start + BATCH)) for start in range(0, n, BATCH)]


async def enqueue_sheppy_redis(n: int) -> None:
    backend = RedisBackend(URL, prefix="bench")
    queue = Queue(backend, "bench")
    for batch in _batches(n):
        await queue.add([noop_core(i) for i in batch])
    await backend.disconnect()


async def add_only_sheppy_redis(n: int) -> float:
    """Seconds spent in ``Queue.add`` alone (task objects built beforehand)."""
    backend = RedisBackend(URL, prefix="bench")
    queue = Queue(backend, "bench")
    batches = [[noop_core(i) for i in batch] for batch in _batches(n)]
    await queue.add([noop_core(-1)])  # warm up: connect, load the scripts
    started = time.perf_counter()
    for tasks in batches:
        await queue.add(tasks)
    elapsed = time.perf_counter() - started
    await backend.disconnect()
    return elapsed


async def work_sheppy_redis(n: int) -> None:
    backend = RedisBackend(URL, prefix="bench")
    worker = Worker(
        "bench", backend, max_concurrent_tasks=SLOTS, enable_cron_manager=False, enable_scheduler=False
    )
    await worker.work(max_tasks=n, register_signal_handlers=False)
    await backend.disconnect()


async def enqueue_sheppy_007(n: int) -> None:
    queue = Queue007(Redis007(URL), "bench")
    for batch in _batches(n):
        await queue.add([noop_007(i) for i in batch])


async def add_only_sheppy_007(n: int) -> float:
    """Seconds spent in ``Queue.add`` alone (task objects built beforehand)."""
    queue = Queue007(Redis007(URL), "bench")
    batches = [[noop_007(i) for i in batch] for batch in _batches(n)]
    await queue.add([noop_007(-1)])  # warm up: connect, create the consumer group
    started = time.perf_counter()
    for tasks in batches:
        await queue.add(tasks)
    return time.perf_counter() - started


async def work_sheppy_007(n: int) -> None:
    worker = Worker007("bench", Redis007(URL), max_concurrent_tasks=SLOTS, enable_cron_manager=False,
                       enable_scheduler=False)
    await worker.work(max_tasks=n, register_signal_handlers=False)


async def enqueue_taskiq(n: int) -> None:
    await broker.startup()
    for batch in _batches(n):
        await asyncio.gather(*(noop_taskiq.kiq(i) for i in batch))
    await broker.shutdown()


async def work_taskiq(n: int) -> None:
    broker.is_worker_process = True
    await broker.startup()
    receiver = asyncio.create_task(run_receiver_task(broker, max_async_tasks=SLOTS))
    assert done_event is not None
    await done_event.wait()
    receiver.cancel()


async def enqueue_saq(n: int) -> None:
    queue = SaqQueue.from_url(URL, name="bench")
    await queue.connect()
    for batch in _batches(n):
        await asyncio.gather(*(queue.enqueue("noop_saq", i=i) for i in batch))
    await queue.disconnect()


async def work_saq(n: int) -> None:
    queue = SaqQueue.from_url(URL, name="bench")
    await queue.connect()
    worker = SaqWorker(queue, functions=[noop_saq], concurrency=SLOTS)
    running = asyncio.create_task(worker.start())
    assert done_event is not None
    await done_event.wait()
    running.cancel()


ADD_ONLY: dict[str, Any] = {"sheppy-redis": add_only_sheppy_redis, "sheppy-0.0.7": add_only_sheppy_007}

PHASES: dict[str, Any] = {
    "sheppy-redis": (enqueue_sheppy_redis, work_sheppy_redis),
    "sheppy-0.0.7": (enqueue_sheppy_007, work_sheppy_007),
    "taskiq-redis": (enqueue_taskiq, work_taskiq),
    "saq": (enqueue_saq, work_saq),
}


def run_phase(name: str, phase: str, n: int) -> float:
    """Run one phase of one system; returns its seconds (work: until the n-th task ran)."""
    enqueue, work = PHASES[name]

    async def main() -> float:
        global done_event, target
        done_event, target = asyncio.Event(), n
        if phase == "add":
            seconds: float = await ADD_ONLY[name](n)
            return seconds
        started = time.perf_counter()
        if phase == "enqueue":
            await enqueue(n)
            return time.perf_counter() - started
        # Timed until the n-th task ran; then each worker gets a few seconds to shut down.
        working = asyncio.create_task(work(n))
        finished = asyncio.create_task(done_event.wait())
        await asyncio.wait([working, finished], timeout=600, return_when=asyncio.FIRST_COMPLETED)
        if not finished.done():
            await asyncio.wait([finished], timeout=5)
        elapsed = time.perf_counter() - started
        if done_count < n:
            raise SystemExit(f"{name}: only {done_count} of {n} tasks ran")
        await asyncio.wait([working], timeout=5)
        working.cancel()
        return elapsed

    return asyncio.run(main())
